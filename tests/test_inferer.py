"""MagnitudeEdgeInferer against the independent float64 reference (tests/inferer_reference.py).

Longer than ~450 lines on purpose: the whole public behaviour of one class against one
shared reference and fixtures; splitting would scatter the fixtures.

Random graphs, mixed batch sizes (including a batch of 1), both reductions, both layer
aggregations, corr and partial (ridge 0 and 1e-8), p- and q-values; partial correlation
against the correlation of regression residuals; the model left as found after success
and after failures; clear errors; large-N options; the GSNN itself.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gsnn_fast import ops
from gsnn_fast.inference import capture
from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
from gsnn_fast.models import GSNN

from . import inferer_reference as ref
from .contract_model import ContractModel, Graph, random_ff_edges

TOL = 1e-10
BATCH_SIZES = (7, 1, 5, 12, 3, 9)


def make_case(layout="gsnn", seed=0, n_in=4, n_func=7, n_out=3, layers=3, n_edges=9):
    model = ContractModel(n_in, n_func, n_out, channels=3, layers=layers, layout=layout, seed=seed)
    data = Graph(n_in, n_func, n_out, random_ff_edges(n_func, n_edges, seed))
    g = torch.Generator().manual_seed(100 + seed)
    batches = [
        (torch.randn(b, n_in, generator=g, dtype=torch.float64), torch.randn(b, n_out, generator=g))
        for b in BATCH_SIZES
    ]
    batches = [(x, y.to(torch.float64)) for x, y in batches]
    return model, data, batches


def model_state(model):
    """Everything 'as found' covers: modes, grads, flags, captured attrs, params, device."""
    return {
        "modes": [m.training for m in model.modules()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "params": [p.detach().clone() for p in model.parameters()],
        "flags": [getattr(b, "_store_activations", None) for b in model.ResBlocks],
        "captured": [[a in vars(b) for a in capture.CAPTURE_ATTRS] for b in model.ResBlocks],
    }


def assert_same_state(a, b):
    assert a["modes"] == b["modes"]
    assert a["flags"] == b["flags"]
    assert a["captured"] == b["captured"]
    for ga, gb in zip(a["grads"], b["grads"]):
        assert (ga is None) == (gb is None)
        if ga is not None:
            assert torch.equal(ga, gb)
    for pa, pb in zip(a["params"], b["params"]):
        assert torch.equal(pa, pb)


def parents_of(inf):
    return inf.parents_by_target


def compare_frames(res, expect):
    """Same rows (by src/dst), same values to TOL, same column order; sort is valid."""
    assert list(res.columns) == list(expect.columns)
    assert len(res) == len(expect)
    assert res.index.equals(pd.RangeIndex(len(res)))
    # sorted by corr descending, NaN last, ties in (src, dst) order
    c = res["corr"].to_numpy()
    nan = np.isnan(c)
    assert not np.any(nan[:-1] & ~nan[1:]), "NaN rows must come last"
    cv = c[~nan]
    assert np.all(cv[:-1] >= cv[1:])
    key = res["src_idx"].to_numpy() * 10_000 + res["dst_idx"].to_numpy()
    for v in np.unique(cv):
        k = key[: len(cv)][cv == v]
        assert np.all(np.diff(k) > 0)
    merged = res.merge(expect, on=["src_idx", "dst_idx"], suffixes=("", "_ref"))
    assert len(merged) == len(res)
    for col in res.columns:
        if col in ("src_idx", "dst_idx"):
            continue
        a, b = merged[col].to_numpy(), merged[col + "_ref"].to_numpy()
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
            np.testing.assert_allclose(a, b, rtol=0, atol=TOL, equal_nan=True, err_msg=col)
        else:
            np.testing.assert_array_equal(a, b, err_msg=col)


@pytest.fixture(scope="module")
def fitted():
    """One fit per (layout, reduction), reused across the comparisons below."""
    cache = {}

    def get(layout, reduction):
        key = (layout, reduction)
        if key not in cache:
            model, data, batches = make_case(layout, seed=1 if layout == "gsnn" else 2)
            inf = MagnitudeEdgeInferer(model, data, reduction=reduction)
            n = inf.fit(batches, verbose=False)
            crit = torch.nn.MSELoss()
            X, Y = ref.reference_magnitudes(model, batches, crit, reduction)
            cache[key] = (inf, data, X, Y, n)
        return cache[key]

    return get


@pytest.mark.parametrize("layout", ["gsnn", "shuffled"])
@pytest.mark.parametrize("reduction", ["l1", "l2"])
def test_sums_match_reference(fitted, layout, reduction):
    inf, data, X, Y, n = fitted(layout, reduction)
    assert n == sum(BATCH_SIZES) == inf.n and inf.n_skipped == 0
    P = inf.n_pairs
    np.testing.assert_allclose(inf.sum_x.numpy(), X[:P].sum(1), rtol=1e-13)
    np.testing.assert_allclose(inf.sum_y.numpy(), Y[1:].sum(1), rtol=1e-13)
    np.testing.assert_allclose(inf.sum_x2.numpy(), (X[:P] ** 2).sum(1), rtol=1e-13)
    np.testing.assert_allclose(
        inf.sum_xy.numpy(), np.einsum("pbi,pbj->pij", X[:P], Y[1:]), rtol=1e-13
    )
    np.testing.assert_allclose(
        inf.sum_xx.numpy(), np.einsum("pbi,pbj->pij", X[:P], X[:P]), rtol=1e-13
    )
    assert inf.sum_xy.dtype == torch.float64


@pytest.mark.parametrize("layout", ["gsnn", "shuffled"])
@pytest.mark.parametrize("reduction", ["l1", "l2"])
@pytest.mark.parametrize(
    "score,ridge", [("corr", 1e-8), ("partial", 0.0), ("partial", 1e-8)], ids=["corr", "p0", "p8"]
)
@pytest.mark.parametrize("layer_agg", ["mean", "max"])
def test_frame_matches_reference(fitted, layout, reduction, score, ridge, layer_agg):
    inf, data, X, Y, n = fitted(layout, reduction)
    res = inf.evaluate(layer_agg=layer_agg, score=score, ridge=ridge)
    pairs = ref.reference_pair_scores(X, Y, parents_of(inf), score=score, ridge=ridge)
    agg = ref.aggregate(pairs, layer_agg)
    expect = ref.reference_frame(
        inf.function_nodes, inf.edges, parents_of(inf), pairs, agg, n, score
    )
    compare_frames(res, expect)
    if score == "partial":
        kept = res[res["has_edge"]]
        assert kept["corr"].isna().all()  # sources in the conditioning set
    assert res["corr"].notna().sum() > 0.5 * len(res)


@pytest.mark.parametrize("layout", ["gsnn", "shuffled"])
def test_partial_equals_residual_correlation(fitted, layout):
    inf, data, X, Y, n = fitted(layout, "l1")
    per_pair = inf.score_matrices("partial", ridge=0.0).per_pair.numpy()
    checked = 0
    for p in range(inf.n_pairs):
        for j in range(inf.N):
            S = inf.parents_by_target[j]
            if S.size == 0:
                continue
            for i in range(inf.N):
                if i == j or i in S:
                    assert np.isnan(per_pair[p, i, j])
                    continue
                r = ref.residual_partial(X[p][:, i], Y[p + 1][:, j], X[p][:, S])
                assert abs(per_pair[p, i, j] - r) < TOL
                checked += 1
    assert checked > 20


def test_score_matrices_and_large_n_options(fitted):
    inf, data, X, Y, n = fitted("gsnn", "l1")
    full = inf.evaluate(score="partial", layer_agg="max")
    sm = inf.score_matrices("partial", layer_agg="max")
    assert sm.per_pair.shape == (inf.n_pairs, inf.N, inf.N) and sm.aggregated.shape == (7, 7)
    assert sm.per_pair.dtype == sm.aggregated.dtype == torch.float64
    agg = sm.aggregated.numpy()
    np.testing.assert_array_equal(
        full["corr"].to_numpy(), agg[full["src_idx"].to_numpy(), full["dst_idx"].to_numpy()]
    )
    assert inf.score_matrices("corr", per_pair=False).per_pair is None

    top = inf.evaluate(score="partial", layer_agg="max", top_k=2)
    assert list(top.columns) == list(full.columns)
    for dst, grp in full.dropna(subset=["corr"]).groupby("dst_idx"):
        want = grp.sort_values(["corr", "src_idx"], ascending=[False, True]).head(2)
        got = top[top["dst_idx"] == dst]
        assert sorted(got["src_idx"]) == sorted(want["src_idx"])
    # rows and q-values are those of the full frame (BH over all candidates)
    m = top.merge(full, on=["src_idx", "dst_idx"], suffixes=("", "_full"))
    assert len(m) == len(top)
    np.testing.assert_array_equal(m["q_value"], m["q_value_full"])
    assert top["corr"].is_monotonic_decreasing

    thr = float(np.quantile(full["q_value"], 0.3))
    qf = inf.evaluate(score="partial", layer_agg="max", q_threshold=thr)
    assert set(zip(qf.src_idx, qf.dst_idx)) == {
        (a, b) for a, b, q in zip(full.src_idx, full.dst_idx, full.q_value) if q <= thr
    }
    both = inf.evaluate(score="partial", layer_agg="max", top_k=2, q_threshold=thr)
    assert set(zip(both.src_idx, both.dst_idx)) == set(zip(top.src_idx, top.dst_idx)) & set(
        zip(qf.src_idx, qf.dst_idx)
    )


def test_exclude_self_false_and_self_edges(fitted):
    inf, data, X, Y, n = fitted("gsnn", "l1")
    res = inf.evaluate(exclude_self=False)
    assert len(res) == inf.N**2
    selfrow = res[(res.src_idx == 0) & (res.dst_idx == 0)]
    assert bool(selfrow["has_edge"].iloc[0])  # the graph has a self edge f0 -> f0
    assert all(0 not in s or j == 0 for j, s in enumerate(inf.parents_by_target) if j == 0)
    assert 0 not in inf.parents_by_target[0]


@pytest.mark.parametrize("score", ["corr", "partial"])
def test_absolute_rule_matches_reference(score):
    model, data, batches = make_case("gsnn", seed=3)
    inf = MagnitudeEdgeInferer(model, data, zero_var="absolute")
    inf.fit(batches, verbose=False)
    X, Y = ref.reference_magnitudes(model, batches, torch.nn.MSELoss())
    pairs = ref.reference_pair_scores(X, Y, inf.parents_by_target, score, 1e-8, rule="absolute")
    got = inf.score_matrices(score, ridge=1e-8).per_pair.numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(pairs))
    np.testing.assert_allclose(got, pairs, atol=TOL, rtol=0)


def _inject(inf, X, Y):
    """Set the inferer's statistics from synthetic magnitudes (L, n, N)."""
    P, N = inf.n_pairs, inf.N
    z = [torch.zeros((P, N), dtype=torch.float64) for _ in range(4)]
    sxy = torch.zeros((P, N, N), dtype=torch.float64)
    sxx = torch.zeros((P, N, N), dtype=torch.float64)
    ops.pair_stats_update(torch.from_numpy(X), torch.from_numpy(Y), *z, sxy, sxx)
    inf.sum_x, inf.sum_y, inf.sum_x2, inf.sum_y2 = z
    inf.sum_xy, inf.sum_xx, inf.n = sxy, sxx, X.shape[1]


def test_zero_variance_relative_vs_absolute():
    model, data, _ = make_case("gsnn", seed=4)
    rng = np.random.default_rng(0)
    n, L, N = 40, 3, 7
    X = rng.uniform(1.0, 2.0, (L, n, N))
    Y = 1e-7 * rng.uniform(1.0, 2.0, (L, n, N))  # gradient-sized: var ~ 1e-16
    X[0, :, 2] = 5.0  # constant source: zero variance in both rules
    Y[1, :, 4] = 3e-7  # constant target
    X[1, :, 5] = 1e3 + 1e-4 * rng.standard_normal(n)  # var / mean^2 ~ 1e-14 -> zero (rel.)
    rel = MagnitudeEdgeInferer(model, data)
    ab = MagnitudeEdgeInferer(model, data, zero_var="absolute")
    for inf in (rel, ab):
        _inject(inf, X, Y)
    # Conditioning on node 5 in pair 1 (variance ~1e-8 under a mean of 1e3) is decided by
    # rounding (streaming sums vs two-pass moments): leave those columns out.
    ill = [j for j, S in enumerate(rel.parents_by_target) if 5 in S]
    for score in ("corr", "partial"):
        for inf, rule in ((rel, "relative"), (ab, "absolute")):
            got = inf.score_matrices(score, ridge=0.0).per_pair.numpy()
            want = ref.reference_pair_scores(X, Y, inf.parents_by_target, score, 0.0, rule=rule)
            got[1][:, ill] = want[1][:, ill] = 0.0
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    c_rel = rel.score_matrices("corr").per_pair.numpy()
    c_abs = ab.score_matrices("corr").per_pair.numpy()
    assert np.isnan(c_abs).all()  # absolute 1e-12 swamps gradient-sized variances
    assert np.isnan(c_rel[0, 2, :]).all() and np.isnan(c_rel[0, :, 4]).all()
    assert np.isnan(c_rel[1, 5, :]).all()
    assert np.isfinite(c_rel[0, 0, 1])


def test_model_left_as_found_and_grads_untouched():
    model, data, batches = make_case("shuffled", seed=5)
    model.train()
    model.ResBlocks[1].eval()  # mixed modes survive
    # a parameter with an existing .grad keeps it unchanged; others stay None
    model.enc.weight.grad = torch.ones_like(model.enc.weight)
    before = model_state(model)
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches, verbose=False)
    assert_same_state(model_state(model), before)
    # eval mode was used: dropout off -> the same as the reference (which uses eval)
    X, _ = ref.reference_magnitudes(model, batches, torch.nn.MSELoss())
    np.testing.assert_allclose(inf.sum_x.numpy(), X[:2].sum(1), rtol=1e-13)


def test_frozen_parameters_still_work():
    model, data, batches = make_case("gsnn", seed=6)
    a = MagnitudeEdgeInferer(model, data)
    a.fit(batches, verbose=False)
    frozen = copy.deepcopy(model)
    for p in frozen.parameters():
        p.requires_grad_(False)
    b = MagnitudeEdgeInferer(frozen, data)
    b.fit(batches, verbose=False)
    assert torch.equal(a.sum_xy, b.sum_xy) and torch.equal(a.sum_xx, b.sum_xx)


class _Boom(Exception):
    pass


def _failing_crit(at):
    calls = {"n": 0}

    def crit(yhat, y):
        calls["n"] += 1
        if calls["n"] >= at:
            raise _Boom("loss failed")
        return torch.nn.functional.mse_loss(yhat, y)

    return crit


@pytest.mark.parametrize("failure", ["crit", "model", "width", "nonfinite", "interrupt"])
def test_failure_mid_fit_leaves_everything_as_found(failure):
    model, data, batches = make_case("gsnn", seed=7)
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches[:3], verbose=False)
    old = {k: getattr(inf, k).clone() for k in ("sum_x", "sum_y", "sum_x2", "sum_xy", "sum_xx")}
    old_n = inf.n
    model.train()
    before = model_state(model)
    crit = None
    bad = list(batches)
    if failure == "crit":
        crit, exc, match = _failing_crit(3), _Boom, "loss failed"
    elif failure == "model":
        model.calls, model.fail_at_call = 0, 3
        exc, match = RuntimeError, "injected"
    elif failure == "width":
        bad[3] = (bad[3][0][:, :2], bad[3][1])
        exc, match = ValueError, r"dataloader: batch 3: x has shape"
    elif failure == "nonfinite":
        y = bad[2][1].clone()
        y[0, 0] = math.nan
        bad[2] = (bad[2][0], y)
        exc, match = RuntimeError, r"non-finite .* layer \d .*batch 2"
    else:

        def gen(src=bad):
            yield src[0]
            yield src[1]
            raise KeyboardInterrupt

        bad, exc, match = gen(), KeyboardInterrupt, None
    with pytest.raises(exc, match=match):
        inf.fit(bad, crit=crit, verbose=False)
    model.fail_at_call = None
    assert_same_state(model_state(model), before)
    assert inf.n == old_n
    for k, v in old.items():
        assert torch.equal(getattr(inf, k), v), k


def test_nonfinite_skip_drops_samples():
    model, data, batches = make_case("gsnn", seed=8)
    y = batches[2][1].clone()
    y[3, 1] = math.inf
    batches[2] = (batches[2][0], y)
    inf = MagnitudeEdgeInferer(model, data)
    n = inf.fit(batches, verbose=False, nonfinite="skip")
    assert n == sum(BATCH_SIZES) - 1 and inf.n_skipped == 1
    X, Y = ref.reference_magnitudes(model, batches, torch.nn.MSELoss())
    keep = np.isfinite(Y).all(axis=(0, 2)) & np.isfinite(X).all(axis=(0, 2))
    assert keep.sum() == n
    X, Y = X[:, keep], Y[:, keep]
    got = inf.score_matrices("partial").per_pair.numpy()
    want = ref.reference_pair_scores(X, Y, inf.parents_by_target, "partial", 1e-8)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_torch_dataloader_and_default_crit():
    model, data, batches = make_case("gsnn", seed=9)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    inf = MagnitudeEdgeInferer(model, data, reduction="l2")
    with torch.no_grad():  # fit enables autograd itself
        assert inf.fit(dl, verbose=False) == x.shape[0]
    again = MagnitudeEdgeInferer(model, data, reduction="l2")
    again.fit(dl, verbose=False)
    for k in ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx"):  # deterministic
        assert torch.equal(getattr(inf, k).view(torch.int64), getattr(again, k).view(torch.int64))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        inf.fit(dl, verbose=False)
    res = inf.evaluate(layer_agg="max", score="partial")
    assert len(res) == inf.N * (inf.N - 1)


def test_verbose_progress_one_line(capsys):
    model, data, batches = make_case("gsnn", seed=10)
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches, verbose=True)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n")
    assert "\r" in out and "samples/s" in out and f"n={sum(BATCH_SIZES)}" in out
    inf.fit(batches, verbose=False)
    assert capsys.readouterr().out == ""


def test_track_xx_false():
    model, data, batches = make_case("gsnn", seed=11)
    full = MagnitudeEdgeInferer(model, data)
    full.fit(batches, verbose=False)
    lite = MagnitudeEdgeInferer(model, data, track_xx=False)
    lite.fit(batches, verbose=False)
    assert lite.sum_xx is None
    pd.testing.assert_frame_equal(lite.evaluate(), full.evaluate())
    with pytest.raises(ValueError, match="score: 'partial' needs sum_xx.*track_xx=True"):
        lite.evaluate(score="partial")


def test_reset_stats():
    model, data, batches = make_case("gsnn", seed=12)
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches, verbose=False)
    inf.reset_stats()
    assert inf.n == 0 and inf.sum_xy.shape == (2, 7, 7) and float(inf.sum_xy.abs().sum()) == 0
    with pytest.raises(RuntimeError, match="too few samples"):
        inf.evaluate()


# ------------------------------------------------------------------ errors


def test_constructor_errors():
    model, data, batches = make_case("gsnn", seed=13)
    model.checkpoint = True
    with pytest.raises(ValueError, match="model: checkpoint"):
        MagnitudeEdgeInferer(model, data)
    model.checkpoint = False
    with pytest.raises(ValueError, match="reduction: unknown value 'l3'"):
        MagnitudeEdgeInferer(model, data, reduction="l3")
    with pytest.raises(ValueError, match="zero_var: unknown"):
        MagnitudeEdgeInferer(model, data, zero_var="rel")
    with pytest.raises(ValueError, match="tol"):
        MagnitudeEdgeInferer(model, data, tol=-1.0)
    model.norm = "layer"
    with pytest.raises(ValueError, match="use_pre_norm: False needs model.norm"):
        MagnitudeEdgeInferer(model, data, use_pre_norm=False)
    MagnitudeEdgeInferer(model, data, use_pre_norm=True)
    model.norm = "groupbatch"
    MagnitudeEdgeInferer(model, data, use_pre_norm=False)
    # a function node without channels
    cg = model.ResBlocks[0].channel_groups.clone()
    model.ResBlocks[0].channel_groups[cg == 3] = 2
    with pytest.raises(ValueError, match="function node 'f3'.*no channels"):
        MagnitudeEdgeInferer(model, data)
    model.ResBlocks[0].channel_groups.copy_(cg)
    # data / model mismatch, bad edges, duplicate names
    small = Graph(4, 6, 3, torch.zeros((2, 0), dtype=torch.int64))
    with pytest.raises(ValueError, match="data: has 6 function nodes"):
        MagnitudeEdgeInferer(model, small)
    bad = Graph(4, 7, 3, torch.tensor([[0], [7]]))
    with pytest.raises(ValueError, match="data: a function->function edge index"):
        MagnitudeEdgeInferer(model, bad)


def test_fit_and_evaluate_errors():
    model, data, batches = make_case("gsnn", seed=14)
    inf = MagnitudeEdgeInferer(model, data)
    with pytest.raises(RuntimeError, match="too few samples.*n=0"):
        inf.evaluate()
    inf.fit([batches[1], (batches[0][0][:1], batches[0][1][:1])], verbose=False)
    assert inf.n == 2
    with pytest.raises(RuntimeError, match="n=2"):
        inf.evaluate()
    inf.fit(batches, verbose=False)
    for kwargs, match in [
        ({"layer_agg": "min"}, "layer_agg: unknown value 'min'"),
        ({"score": "pcorr"}, "score: unknown value 'pcorr'"),
        ({"ridge": -1.0}, "ridge"),
        ({"ridge": math.nan}, "ridge"),
        ({"top_k": 0}, "top_k"),
        ({"q_threshold": 1.5}, "q_threshold"),
    ]:
        with pytest.raises(ValueError, match=match):
            inf.evaluate(**kwargs)
    before = inf.sum_xy.clone()
    with pytest.raises(ValueError, match="nonfinite: unknown value"):
        inf.fit(batches, nonfinite="ignore")
    with pytest.raises(ValueError, match="crit: must be callable"):
        inf.fit(batches, crit=3)
    with pytest.raises(ValueError, match="device"):
        inf.fit(batches, device="not-a-device")
    bad_y = [(batches[0][0], batches[0][1][:, :2])]
    with pytest.raises(ValueError, match=r"dataloader: batch 0: y has shape \(7, 2\)"):
        inf.fit(bad_y)
    with pytest.raises(ValueError, match="crit: must return a scalar"):
        inf.fit(batches, crit=torch.nn.MSELoss(reduction="none"))
    model.checkpoint = True
    with pytest.raises(ValueError, match="model: checkpoint"):
        inf.fit(batches)
    model.checkpoint = False
    assert torch.equal(inf.sum_xy, before) and inf.n == sum(BATCH_SIZES)


def test_single_block_model():
    model, data, batches = make_case("gsnn", seed=15, layers=1)
    inf = MagnitudeEdgeInferer(model, data)
    assert inf.n_pairs == 0
    with pytest.raises(ValueError, match="model: has 1 ResBlock"):
        inf.fit(batches)
    with pytest.raises(RuntimeError, match="no layer pair"):
        inf.evaluate()


# ------------------------------------------------------------------ capture helpers


def test_channel_ptr_and_capturing():
    cg = torch.tensor([5, 3, 5, 9, 3, 3])
    ptr, perm = capture.channel_ptr(cg, [3, 5])
    assert ptr.tolist() == [0, 3, 5] and perm.tolist() == [1, 4, 5, 0, 2]
    ptr, perm = capture.channel_ptr(torch.tensor([0, 0, 1, 1, 7]), [0, 1])
    assert ptr.tolist() == [0, 2, 4] and perm is None  # trailing foreign channel: no gather
    with pytest.raises(ValueError, match="'b'"):
        capture.channel_ptr(cg, [3, 4], names=["a", "b"])

    model, _, batches = make_case("gsnn", seed=16)
    model.ResBlocks[0]._last_activation = "old"
    with pytest.raises(_Boom), capture.capturing(model) as blocks:
        assert all(b._store_activations for b in blocks)
        model(batches[0][0])
        raise _Boom
    assert not any(b._store_activations for b in model.ResBlocks)
    assert model.ResBlocks[0]._last_activation == "old"
    assert "_last_pre_norm_activation" not in vars(model.ResBlocks[0])


# ------------------------------------------------------------------ the GSNN itself


@pytest.mark.parametrize("norm,use_pre_norm", [("layer", True), ("batch", False)])
def test_gsnn_matches_reference(norm, use_pre_norm):
    torch.manual_seed(0)
    n_in, n_func, n_out = 4, 8, 3
    g = torch.Generator().manual_seed(21)
    ff = random_ff_edges(n_func, 12, 21, self_edges=0)
    if_edges = torch.stack([torch.arange(n_in), torch.arange(n_in)])
    fo_edges = torch.stack([torch.arange(n_func - n_out, n_func), torch.arange(n_out)])
    data = Graph(n_in, n_func, n_out, ff)
    data.edge_index_dict[("input", "to", "function")] = if_edges
    data.edge_index_dict[("function", "to", "output")] = fo_edges
    model = GSNN(
        data.edge_index_dict, data.node_names_dict, channels=3, layers=3, norm=norm, dropout=0.2
    )
    model.train()
    batches = [
        (torch.randn(b, n_in, generator=g), torch.randn(b, n_out, generator=g))
        for b in (6, 1, 9, 4)
    ]
    before = model_state(model)
    inf = MagnitudeEdgeInferer(model, data, use_pre_norm=use_pre_norm)
    inf.fit(batches, verbose=False)
    assert_same_state(model_state(model), before)
    X, Y = ref.reference_magnitudes(model, batches, torch.nn.MSELoss(), "l1", use_pre_norm)
    for score in ("corr", "partial"):
        got = inf.score_matrices(score).per_pair.numpy()
        want = ref.reference_pair_scores(X, Y, inf.parents_by_target, score, 1e-8)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
