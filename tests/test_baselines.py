"""The benchmark baselines compute the same numbers as gsnn_fast (small sizes).

``benchmarks/baselines`` holds the two implementations gsnn_fast is timed against:
``reference_style`` (written the way the pure-torch library does it) and ``vectorised``
(the best pure torch without custom kernels). A speed ratio is only fair if both
baselines are correct, so every operation that is benchmarked is checked here against
gsnn_fast: GSNN forward/backward, inferer statistics, evaluate (corr / partial, mean /
max, full frame / top-k), the partial solve and the statistics update alone, the
regressor (step, evaluate, evaluate_against) and simulate. Tolerances: vectorised is
float64 like gsnn_fast (~1e-12 relative); reference_style computes magnitudes and
GEMMs in float32 as the library does (~1e-6 relative on the statistics).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("benchmarks.baselines", reason="run from the repository root")
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

from benchmarks.baselines import reference_style as R  # noqa: E402
from benchmarks.baselines import vectorised as V  # noqa: E402
from gsnn_fast.data import (  # noqa: E402
    build_convergence_graph,
    default_held_out_edges,
    nx2pyg,
    scale_free_graph,
    simulate,
    split_held_out,
)
from gsnn_fast.models import GSNN  # noqa: E402

KW = dict(
    channels=8, layers=4, share_layers=False, norm="none", dropout=0.0, node_mlp=False
)  # fmt: skip
FF = ("function", "to", "function")


def _graph(kind: str):
    if kind == "conv":
        G, _, inp, fn, out, _ = build_convergence_graph(25)
        held = default_held_out_edges(25)
        val, _ = split_held_out(held, fn[-1])
    else:
        G, inp, fn, out = scale_free_graph(80, max_in_degree=12, seed=1)
        ff = [(u, v) for u, v in G.edges if u in set(fn) and v in set(fn)]
        held = ff[::7]
        val = held
    Gp = G.copy()
    Gp.remove_edges_from(held)
    return G, nx2pyg(Gp, inp, fn, out), inp, out, val


@pytest.fixture(scope="module", params=["conv", "scalefree"])
def setup(request):
    G, data, inp, out, val = _graph(request.param)
    torch.manual_seed(0)
    fast = GSNN(data.edge_index_dict, data.node_names_dict, **KW)
    sd = fast.state_dict()
    models = {"gsnn_fast": fast}
    for name, mod in (("reference_style", R), ("vectorised", V)):
        m = mod.GSNN(data.edge_index_dict, data.node_names_dict, **KW)
        m.load_state_dict({k: sd[k] for k in m.state_dict()})  # same parameters
        models[name] = m
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(64, len(inp), generator=g), torch.randn(64, len(out), generator=g))
        for _ in range(4)
    ]
    return dict(G=G, data=data, models=models, batches=batches, val=val, inp=inp, out=out)


def _by_pair(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["src_idx", "dst_idx"]).reset_index(drop=True)


def _same_frame(a: pd.DataFrame, b: pd.DataFrame, atol: float) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    # same rows in the same order (sort by score, ties in (src, dst) order)
    np.testing.assert_array_equal(
        a[["src_idx", "dst_idx"]].to_numpy(), b[["src_idx", "dst_idx"]].to_numpy()
    )
    a, b = _by_pair(a), _by_pair(b)
    for c in a.columns:
        if c in ("src_func", "dst_func", "has_edge", "n_cond", "src_idx", "dst_idx"):
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=c)
        else:
            x, y = a[c].to_numpy(float), b[c].to_numpy(float)
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=c)
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, equal_nan=True, err_msg=c)


# ----------------------------------------------------------------------------- GSNN
@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_gsnn_forward_backward(setup, impl):
    x, y = setup["batches"][0]
    res = {}
    for name in ("gsnn_fast", impl):
        m = setup["models"][name]
        m.zero_grad(set_to_none=True)
        out = m(x)
        torch.nn.functional.mse_loss(out, y).backward()
        res[name] = (out.detach(), {k: p.grad.clone() for k, p in m.named_parameters()})
        m.zero_grad(set_to_none=True)
    (o0, g0), (o1, g1) = res["gsnn_fast"], res[impl]
    torch.testing.assert_close(o1, o0, rtol=1e-5, atol=1e-6)
    assert set(g0) == set(g1)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6, msg=k)


# ----------------------------------------------------------------------------- inferer
@pytest.fixture(scope="module")
def inferers(setup):
    from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer

    # every inferer reads the same model (any model honouring the capture contract):
    # this isolates the inferers; the models are compared in test_gsnn_forward_backward
    data, model, batches = setup["data"], setup["models"]["gsnn_fast"], setup["batches"]
    fast = MagnitudeEdgeInferer(model, data)
    fast.fit(batches, verbose=False)
    ref = R.MagnitudeEdgeInferer(model, data)
    ref.fit(batches)
    vec = V.MagnitudeEdgeInferer(model, data)
    vec.fit(batches)
    return fast, ref, vec


def test_inferer_statistics(inferers):
    fast, ref, vec = inferers
    assert fast.n == ref.n == vec.n
    for k in ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx"):
        f = getattr(fast, k).numpy()
        scale = np.abs(f).max()
        np.testing.assert_allclose(getattr(ref, k), f, rtol=0, atol=2e-6 * scale, err_msg=k)
        np.testing.assert_allclose(getattr(vec, k).numpy(), f, rtol=0, atol=1e-6 * scale)


def _stats(fast) -> dict:
    keys = ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx")
    return {k: getattr(fast, k).clone() for k in keys} | {"n": fast.n}


@pytest.mark.parametrize("score", ["corr", "partial"])
@pytest.mark.parametrize("layer_agg", ["mean", "max"])
@pytest.mark.parametrize("top_k", [None, 3])
def test_inferer_evaluate(inferers, score, layer_agg, top_k):
    """Same statistics in -> same frame out (rows, order, NaN pattern, values)."""
    fast, ref, vec = inferers
    st = _stats(fast)
    ref.n = vec.n = st["n"]
    for k, v in st.items():
        if k != "n":
            setattr(ref, k, v.numpy().copy())
            setattr(vec, k, v.clone())
    want = fast.evaluate(layer_agg=layer_agg, score=score, top_k=top_k)
    assert len(want) > 0
    for inf in (ref, vec):
        got = inf.evaluate(layer_agg=layer_agg, score=score, top_k=top_k)
        _same_frame(want, got, atol=1e-9)


def test_partial_solve_matches_kernel(setup):
    """``partial_from_moments`` of both baselines == ``gsnn_fast::partial_corr``."""
    from benchmarks import cases
    from gsnn_fast import ops

    data = setup["data"]
    N = len(data.node_names_dict["function"])
    st = cases.synthetic_stats(N, 2, n=256, rank=8)
    n = float(st["n"])
    mx, my = st["sum_x"] / n, st["sum_y"] / n
    vx = (st["sum_x2"] / n - mx * mx).clamp_min(0)
    vy = (st["sum_y2"] / n - my * my).clamp_min(0)
    cxy = st["sum_xy"] / n - mx[:, :, None] * my[:, None, :]
    cxx = st["sum_xx"] / n - mx[:, :, None] * mx[:, None, :]
    corr = (cxy / torch.sqrt(vx[:, :, None] * vy[:, None, :])).clamp(-1, 1)
    ff = data.edge_index_dict[FF].numpy()
    par = np.zeros((N, N), dtype=bool)
    par[ff[0], ff[1]] = True
    np.fill_diagonal(par, False)
    sizes = par.sum(0)
    ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]))
    idx = torch.from_numpy(np.nonzero(par.T)[1].astype(np.int64))
    want = ops.partial_corr(corr, cxy, cxx, vx, vy, ptr, idx, 1e-8, 1e-12)
    groups = []
    for s in np.unique(sizes[sizes > 0]):
        t = np.flatnonzero(sizes == s)
        S = torch.from_numpy(np.nonzero(par[:, t].T)[1]).reshape(t.size, int(s))
        groups.append((torch.from_numpy(t), S))
    got_v = V.partial_from_moments(corr, cxy, cxx, vx, vy, groups, 1e-8)
    parents = [np.flatnonzero(par[:, j]) for j in range(N)]
    got_r = np.stack(
        [
            R.partial_from_moments(*(t[p].numpy() for t in (corr, cxy, cxx, vx, vy)), parents, 1e-8)
            for p in range(2)
        ]
    )
    for got in (got_v.numpy(), got_r):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want.numpy()))
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-10, equal_nan=True)


def test_stats_update_matches_kernel():
    from gsnn_fast import ops

    L, B, N = 4, 32, 30
    g = torch.Generator().manual_seed(3)
    xm = torch.rand(L, B, N, generator=g, dtype=torch.float64)
    ym = torch.rand(L, B, N, generator=g, dtype=torch.float64)
    P = L - 1
    sums = [torch.zeros(P, N, dtype=torch.float64) for _ in range(4)]
    sxy, sxx = torch.zeros(P, N, N, dtype=torch.float64), torch.zeros(P, N, N, dtype=torch.float64)
    ops.pair_stats_update(xm, ym, *sums, sxy, sxx)
    want = dict(zip(("sum_x", "sum_y", "sum_x2", "sum_y2"), sums), sum_xy=sxy, sum_xx=sxx)

    class _M:  # the minimum an inferer needs: a model honouring the capture contract
        pass

    for mod, x, y, atol in ((V, xm, ym, 1e-12), (R, xm.float(), ym.float(), 1e-4)):
        inf = mod.MagnitudeEdgeInferer.__new__(mod.MagnitudeEdgeInferer)
        inf.n_pairs, inf.N = P, N
        inf.reset_stats()
        if mod is V:
            inf.update_stats(x, y)
        else:
            inf._update_stats(x, y)
        for k, w in want.items():
            got = getattr(inf, k)
            got = got.numpy() if torch.is_tensor(got) else got
            np.testing.assert_allclose(got, w.numpy(), rtol=1e-6, atol=atol, err_msg=k)


# ----------------------------------------------------------------------------- regressor
REG_KW = dict(aggregators=("sum", "max", "mean", "l2"), lr=1e-3, weight_decay=1e-4, ridge=1e-2)


@pytest.fixture(scope="module")
def regressors(setup):
    from gsnn_fast.inference.magnitude_edge_regressor import MagnitudeEdgeRegressor

    # all regressors train on the same model (see the inferers fixture)
    data, model = setup["data"], setup["models"]["gsnn_fast"]
    torch.manual_seed(5)
    regs = {"gsnn_fast": MagnitudeEdgeRegressor(model, data, **REG_KW)}
    for name, mod in (("reference_style", R), ("vectorised", V)):
        regs[name] = mod.MagnitudeEdgeRegressor(model, data, **REG_KW)
        regs[name].W.data.copy_(regs["gsnn_fast"].W.data)
    crit = torch.nn.MSELoss()
    N = len(data.node_names_dict["function"])
    steps = max(3, (N + 2) // (3 * 4 * 64) + 2)  # enough samples for p-values
    for i in range(steps):
        x, y = setup["batches"][i % len(setup["batches"])]
        for reg in regs.values():
            m = model
            m.train()
            reg.train()
            reg.pre_forward()
            loss = crit(m(x), y)
            reg.arm_retained_grads()
            m.zero_grad(set_to_none=True)
            loss.backward()
            reg.aux_step()
            m.zero_grad(set_to_none=True)
    return regs


@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_regressor_state(regressors, impl):
    f, b = regressors["gsnn_fast"], regressors[impl]
    tight = impl == "vectorised"
    torch.testing.assert_close(b.W, f.W, rtol=0, atol=1e-7 if tight else 1e-5)
    gscale = float(f.gram.abs().max())
    torch.testing.assert_close(
        b.gram.double(), f.gram, rtol=0, atol=(1e-12 if tight else 1e-5) * gscale
    )
    assert int(b.n_samples) == int(f.n_samples)
    assert int(b.n_batches_tracked) == int(f.n_batches_tracked)
    torch.testing.assert_close(
        b.residual_sum_sq.double(), f.residual_sum_sq, rtol=1e-9 if tight else 1e-4, atol=0
    )
    for k in ("running_mean_x", "running_var_x", "running_mean_y", "running_var_y"):
        torch.testing.assert_close(getattr(b, k), getattr(f, k), rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_regressor_evaluate(regressors, impl):
    f, b = regressors["gsnn_fast"], regressors[impl]
    b.W.data.copy_(f.W.data)  # isolate evaluate from float32 drift in the step
    b.gram.copy_(f.gram)
    b.residual_sum_sq.copy_(f.residual_sum_sq)
    want, got = f.evaluate(), b.evaluate()
    assert int(f.n_samples) >= f.N + 2  # p-values are exercised
    _same_frame(want, got, atol=1e-6 if impl == "reference_style" else 1e-12)


@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_regressor_evaluate_against(setup, regressors, impl):
    f, b = regressors["gsnn_fast"], regressors[impl]
    b.W.data.copy_(f.W.data)
    want = f.evaluate_against(setup["val"])
    got = b.evaluate_against(setup["val"])
    assert set(want) == set(got)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-12), k


# ----------------------------------------------------------------------------- simulate
@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_simulate_same_model(setup, impl):
    """Noise-free, y is a fixed linear map of x: identical maps; with noise, matching
    output covariances (same distribution; the random draws differ by design)."""
    mod = {"reference_style": R, "vectorised": V}[impl]
    G, inp, out = setup["G"], setup["inp"], setup["out"]

    def linmap(sim, n):
        np.random.seed(0)
        torch.manual_seed(0)
        xt, _, yt, _ = sim(G, n, 2, inp, out, noise_scale=0.0)
        return np.linalg.lstsq(xt, yt, rcond=None)[0]

    n = 3 * len(inp)
    np.testing.assert_allclose(linmap(mod.simulate, n), linmap(simulate, n), atol=1e-5)

    def cov(sim, n):
        np.random.seed(1)
        torch.manual_seed(1)
        _, _, yt, _ = sim(G, n, 2, inp, out, noise_scale=0.5)
        return np.cov(yt.T)

    n = 600 if impl == "reference_style" else 4000
    c0, c1 = cov(simulate, 4000), cov(mod.simulate, n)
    assert np.abs(c1 - c0).max() <= 0.25 * np.abs(c0).max()


@pytest.mark.parametrize("impl", ["reference_style", "vectorised"])
def test_baseline_demo_runs(impl, tmp_path):
    """The baseline demo driver runs the notebook end to end (tiny: width 4, 1 epoch)."""
    from benchmarks.baselines import demo

    mod = {"reference_style": R, "vectorised": V}[impl]
    res = demo.run_demo(mod, width=4, epochs=1, out=tmp_path, plots=False)
    assert set(res["methods"]) == {"regressor", "mei_corr", "mei_partial"}
    assert (tmp_path / "results.json").exists()


def test_vectorised_segments_general_path():
    """The index_add / scatter_reduce path (channels not contiguous per node) gives the
    same per-node reductions as the reshape path the GSNN layout takes."""
    from types import SimpleNamespace

    from benchmarks.baselines.vectorised import _Segments

    N, ch = 7, 3
    blk = SimpleNamespace(channel_groups=torch.arange(N).repeat_interleave(ch))
    model = SimpleNamespace(
        input_node_mask=torch.tensor([False] * N + [True, True, False]),
        output_node_mask=torch.tensor([False] * N + [False, False, True]),
        ResBlocks=[blk],
    )
    contiguous = _Segments(model)
    assert contiguous.reshape_ok
    perm = torch.randperm(N * ch, generator=torch.Generator().manual_seed(0))
    blk.channel_groups = blk.channel_groups[perm]
    scattered = _Segments(model)
    assert not scattered.reshape_ok
    x = torch.randn(2, 5, N * ch, generator=torch.Generator().manual_seed(1))
    for mode in ("sum", "mean", "max", "l2"):
        torch.testing.assert_close(scattered.reduce(x[..., perm], mode), contiguous.reduce(x, mode))
