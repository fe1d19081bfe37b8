"""MagnitudeEdgeRegressor against direct numpy / loop computations.

Longer than ~450 lines on purpose: every public method of the one class under test, each
against its own direct computation, kept beside the small model they share.

The regressor is exercised on a tiny model of our own that honours the capture contract
(gsnn_fast/inference/capture.py) -- dense layers, optionally with the channels of the
function nodes scattered over the channel axis -- so these tests do not depend on
gsnn_fast.GSNN.
"""

from __future__ import annotations

import gc
import math
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import special

from gsnn_fast.inference.magnitude_edge_regressor import MagnitudeEdgeRegressor
from gsnn_fast.inference.metrics import evaluate_target_ranking

FF = ("function", "to", "function")


# ----------------------------------------------------------------------------- fixtures
class _Block(nn.Module):
    """A contract ResBlock: dense C -> C layer, captures pre-norm and post activations."""

    def __init__(self, channel_groups: torch.Tensor, squeeze: bool) -> None:
        super().__init__()
        C = channel_groups.numel()
        self.lin = nn.Linear(C, C)
        self.register_buffer("channel_groups", channel_groups.clone())
        self._store_activations = False
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        out = out if self.squeeze else out.unsqueeze(-1)  # (B, C) or (B, C, 1)
        if self._store_activations:
            self._last_pre_norm_activation = out
        act = torch.nn.functional.elu(out)
        if self._store_activations:
            self._last_activation = act
        return act.reshape(x.shape[0], -1) + x


class ContractModel(nn.Module):
    """Minimal model honouring the capture contract: N function nodes with ``ch`` channels each,
    then ``n_in`` inputs and ``n_out`` outputs in the homogeneous node order."""

    def __init__(
        self,
        n_func: int = 6,
        ch: int = 3,
        layers: int = 3,
        n_in: int = 4,
        n_out: int = 3,
        shuffle_channels: bool = False,
        squeeze: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        cg = torch.arange(n_func).repeat_interleave(ch)
        if shuffle_channels:
            cg = cg[torch.randperm(cg.numel(), generator=g)]
        torch.manual_seed(seed)
        self.inp = nn.Linear(n_in, cg.numel())
        self.ResBlocks = nn.ModuleList([_Block(cg, squeeze) for _ in range(layers)])
        self.out = nn.Linear(cg.numel(), n_out)
        n = n_func + n_in + n_out
        in_mask = torch.zeros(n, dtype=torch.bool)
        in_mask[n_func : n_func + n_in] = True
        out_mask = torch.zeros(n, dtype=torch.bool)
        out_mask[n_func + n_in :] = True
        self.register_buffer("input_node_mask", in_mask)
        self.register_buffer("output_node_mask", out_mask)
        self.checkpoint = False
        self.norm = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for blk in self.ResBlocks:
            h = blk(h)
        return self.out(h)


def make_data(n_func: int = 6, edges=((0, 1), (1, 2), (2, 3))) -> SimpleNamespace:
    ei = torch.tensor(list(edges), dtype=torch.long).T.reshape(2, -1)
    names = {
        "input": [f"in{i}" for i in range(4)],
        "function": [f"f{i}" for i in range(n_func)],
        "output": [f"o{i}" for i in range(3)],
    }
    return SimpleNamespace(edge_index_dict={FF: ei}, node_names_dict=names)


def batch(B: int = 16, seed: int = 1, n_in: int = 4, n_out: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n_in, generator=g), torch.randn(B, n_out, generator=g)


def protocol_step(reg, model, x, y, *, keep: dict | None = None, aux_seed: int | None = None):
    """One full training-loop step; optionally copies the captured tensors into ``keep``."""
    reg.pre_forward()
    yhat = model(x)
    loss = torch.nn.functional.mse_loss(yhat, y)
    reg.arm_retained_grads()
    model.zero_grad()
    loss.backward()
    if keep is not None:
        attr = reg._act_attr
        acts = [getattr(b, attr) for b in model.ResBlocks]
        keep["acts"] = [a.detach().reshape(a.shape[0], -1).double().clone() for a in acts]
        # block 0's gradient is not needed (not retained)
        grads = [a.grad.reshape(a.shape[0], -1).double().clone() for a in acts[1:]]
        keep["grads"] = [None, *grads]
    if aux_seed is not None:
        torch.manual_seed(aux_seed)
    return reg.aux_step()


# ------------------------------------------------------------------- direct reference
_AGG = {
    "sum": lambda v: np.abs(v).sum(-1),
    "max": lambda v: np.abs(v).max(-1),
    "mean": lambda v: np.abs(v).mean(-1),
    "l2": lambda v: np.sqrt((v * v).sum(-1)),
}


def direct_magnitudes(reg, model, keep):
    """Per-node magnitudes with a Python loop over nodes and channel masks."""
    cg = model.ResBlocks[0].channel_groups.numpy()
    N, P = reg.N, reg.n_pairs
    acts = [a.numpy() for a in keep["acts"]]
    grads = keep["grads"]
    X = np.zeros((P, reg.n_aggs, acts[0].shape[0], N))
    Y = np.zeros((P, acts[0].shape[0], N))
    for p in range(P):
        g = grads[p + 1].numpy()
        for i in range(N):
            cols = cg == reg.function_homo_idxs[i]
            Y[p, :, i] = np.abs(g[:, cols]).sum(-1)
            for k, agg in enumerate(reg.aggregators):
                X[p, k, :, i] = _AGG[agg](acts[p][:, cols])
    return X, Y


def direct_standardise(v, mean, var, eps_mode="relative", eps=1e-8):
    e = eps * (var + mean**2) + np.finfo(np.float64).tiny if eps_mode == "relative" else eps
    return (v - mean) / np.sqrt(var + e)


# ------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("aggs", [("sum", "max"), ("mean", "l2", "sum")])
def test_step_against_direct_computation(shuffle, aggs):
    """Loss, W update, running buffers, gram, residual and counters of one training step."""
    model = ContractModel(shuffle_channels=shuffle, squeeze=shuffle)
    ridge = 0.05
    reg = MagnitudeEdgeRegressor(
        model, make_data(), aggregators=aggs, ridge=ridge, lr=1e-2, weight_decay=1e-4
    )
    P, K, N = reg.n_pairs, reg.n_aggs, reg.N
    W0 = reg.W.detach().double().clone().requires_grad_(True)
    x, y = batch()
    keep: dict = {}
    out = protocol_step(reg, model, x, y, keep=keep)
    X, Y = direct_magnitudes(reg, model, keep)
    B = X.shape[2]

    # per-term loop, as in the pure-torch library
    total = 0.0
    gram = np.zeros((N, N))
    rss = 0.0
    mean_x, var_x = X.mean(2), X.var(2)
    mean_y, var_y = Y.mean(1), Y.var(1)
    terms = []
    for p in range(P):
        ys = direct_standardise(Y[p], mean_y[p], var_y[p])
        for k in range(K):
            xs = direct_standardise(X[p, k], mean_x[p, k], var_x[p, k])
            xs_t, ys_t = torch.from_numpy(xs), torch.from_numpy(ys)
            terms.append(((xs_t @ W0 - ys_t) ** 2).mean())
            gram += xs.T @ xs
            rss += float(((xs_t @ W0.detach() - ys_t) ** 2).sum())
    loss = sum(terms) + ridge * (W0**2).sum()
    total = float(loss.detach())
    assert out["n_terms"] == P * K
    assert math.isclose(out["aux_loss"], total / (P * K), rel_tol=1e-5)

    # W after one AdamW step on the direct loss
    loss.backward()
    W_ref = W0.detach().clone().float().requires_grad_(True)
    opt = torch.optim.AdamW([W_ref], lr=1e-2, weight_decay=1e-4)
    W_ref.grad = W0.grad.float()
    opt.step()
    torch.testing.assert_close(reg.W.detach(), W_ref.detach(), rtol=1e-5, atol=1e-6)

    np.testing.assert_allclose(reg.gram.numpy(), gram, rtol=1e-10, atol=1e-10)
    assert reg.gram.dtype == torch.float64
    assert int(reg.n_samples) == P * K * B
    assert math.isclose(float(reg.residual_sum_sq), rss, rel_tol=1e-5)
    assert int(reg.n_batches_tracked) == P * K
    # running += 0.1 * (batch - running), starting from zeros / ones; targets once per term
    np.testing.assert_allclose(reg.running_mean_x.numpy(), 0.1 * mean_x, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(reg.running_var_x.numpy(), 0.9 + 0.1 * var_x, rtol=1e-5)
    m_y = 1 - 0.9**K
    np.testing.assert_allclose(reg.running_mean_y.numpy(), m_y * mean_y, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(reg.running_var_y.numpy(), 1 - m_y + m_y * var_y, rtol=1e-5)


def test_eval_mode_uses_running_buffers():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data(), aggregators=("sum",), eps_mode="absolute")
    x, y = batch()
    protocol_step(reg, model, x, y)  # training mode: buffers move
    reg.eval()
    buffers = {k: v.clone() for k, v in reg.state_dict().items() if k.startswith("running")}
    tracked = int(reg.n_batches_tracked)
    W0 = reg.W.detach().double().clone()
    keep: dict = {}
    out = protocol_step(reg, model, x, y, keep=keep)
    for k, v in buffers.items():
        assert torch.equal(reg.state_dict()[k], v), k
    assert int(reg.n_batches_tracked) == tracked
    X, Y = direct_magnitudes(reg, model, keep)
    rmx, rvx = buffers["running_mean_x"].double().numpy(), buffers["running_var_x"].double().numpy()
    rmy, rvy = buffers["running_mean_y"].double().numpy(), buffers["running_var_y"].double().numpy()
    loss = 0.0
    for p in range(reg.n_pairs):
        xs = (X[p, 0] - rmx[p, 0]) / np.sqrt(rvx[p, 0] + 1e-8)
        ys = (Y[p] - rmy[p]) / np.sqrt(rvy[p] + 1e-8)
        loss += ((xs @ W0.numpy() - ys) ** 2).mean()
    assert math.isclose(out["aux_loss"], loss / reg.n_pairs, rel_tol=1e-5)


def test_relative_eps_is_scale_free():
    """Tiny-scale features are standardised to unit variance unless eps_mode='absolute'."""
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    g = torch.Generator().manual_seed(0)
    X = torch.rand(2, 2, 64, 6, generator=g, dtype=torch.float64) * 1e-6
    Y = torch.rand(2, 64, 6, generator=g, dtype=torch.float64) * 1e-6
    Xs, Ys = reg._standardise(X, Y)
    torch.testing.assert_close(Xs.var(2, unbiased=False), torch.ones(2, 2, 6, dtype=torch.float64))
    torch.testing.assert_close(Ys.var(1, unbiased=False), torch.ones(2, 6, dtype=torch.float64))
    # an all-zero feature gives zeros, not NaN
    X[0, 0, :, 0] = 0.0
    Xs, _ = reg._standardise(X, Y)
    assert torch.isfinite(Xs).all() and (Xs[0, 0, :, 0] == 0).all()
    reg_abs = MagnitudeEdgeRegressor(model, make_data(), eps_mode="absolute")
    Xs_abs, _ = reg_abs._standardise(X, Y)
    assert float(Xs_abs[1].var(1, unbiased=False).max()) < 1e-3  # swamped by eps = 1e-8
    off = MagnitudeEdgeRegressor(model, make_data(), standardize=False)
    Xo, Yo = off._standardise(X, Y)
    assert Xo is X and Yo is Y


def test_pvalues_and_frame_against_numpy():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data(), ridge=1e-2)
    res0 = reg.evaluate()
    assert (res0["p_value"] == 1.0).all()  # n_samples < N + 2
    for s in range(3):
        protocol_step(reg, model, *batch(seed=s))
    N, P, K = reg.N, reg.n_pairs, reg.n_aggs
    n = int(reg.n_samples)
    G = reg.gram.numpy() / n + (1e-2 + 1e-8) * np.eye(N)
    Ginv = np.linalg.inv(G)
    sigma2 = float(reg.residual_sum_sq) / max(n * P * K * N - N, 1)
    w = reg.W.detach().double().numpy()
    p_ref = np.empty((N, N))
    for i in range(N):
        se = math.sqrt(max(sigma2 * Ginv[i, i], 1e-12))
        p_ref[i] = 0.5 * (1 - special.erf(w[i] / se / math.sqrt(2)))
    np.testing.assert_allclose(reg.coefficient_pvalues(), p_ref, rtol=1e-9, atol=1e-12)

    res = reg.evaluate()
    assert list(res.columns) == [
        "src_func",
        "dst_func",
        "src_idx",
        "dst_idx",
        "score",
        "has_edge",
        "p_value",
        "q_value",
    ]
    assert len(res) == N * (N - 1)
    assert (np.diff(res["score"].to_numpy()) <= 0).all()
    np.testing.assert_allclose(
        res["p_value"], p_ref[res["src_idx"], res["dst_idx"]], rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(res["score"], np.abs(w[res["src_idx"], res["dst_idx"]]), 1e-6)
    edges = {(i, j) for i, j in [(0, 1), (1, 2), (2, 3)]}
    has = [(i, j) in edges for i, j in zip(res["src_idx"], res["dst_idx"])]
    assert res["has_edge"].tolist() == has
    # BH over the rows
    p = res["p_value"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    q = p[order] * m / np.arange(1, m + 1)
    q = np.minimum(np.minimum.accumulate(q[::-1])[::-1], 1)
    q_ref = np.empty(m)
    q_ref[order] = q
    np.testing.assert_allclose(res["q_value"], q_ref, rtol=1e-12)
    assert len(reg.evaluate(exclude_self=False)) == N * N


def test_score_modes():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    w = torch.linspace(-1, 1, 36).reshape(6, 6)
    with torch.no_grad():
        reg.W.copy_(w)
    np.testing.assert_array_equal(reg.score_matrix(), w.abs().numpy())
    reg.score_mode = "relu"
    np.testing.assert_array_equal(reg.score_matrix(), w.clamp_min(0).numpy())
    reg.score_mode = "signed"
    np.testing.assert_array_equal(reg.score_matrix(), w.numpy())
    assert torch.equal(reg.score_matrix(as_tensor=True), w)
    reg.score_mode = "bogus"
    with pytest.raises(ValueError, match="score_mode"):
        reg.score_matrix()
    with pytest.raises(ValueError, match="score_mode"):
        MagnitudeEdgeRegressor(model, make_data(), score_mode="square")


def test_best_checkpoint_save_and_load():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    with pytest.raises(RuntimeError, match="nothing to restore"):
        reg.load_best()
    assert not reg.maybe_save_best(float("nan"))
    assert not reg.maybe_save_best(None)
    protocol_step(reg, model, *batch(seed=0))
    assert reg.maybe_save_best(0.5)
    saved = {k: v.clone() for k, v in reg.state_dict().items()}
    exp_avg = reg.optim.state[reg.W]["exp_avg"].clone()
    step = float(reg.optim.state[reg.W]["step"])
    protocol_step(reg, model, *batch(seed=1))
    assert not reg.maybe_save_best(0.4)
    assert not reg.maybe_save_best(np.float64("nan"))
    assert not reg.maybe_save_best(0.5)  # equal is not an improvement
    assert not torch.equal(reg.W.detach(), saved["W"])
    reg.load_best()
    for k, v in saved.items():
        assert torch.equal(reg.state_dict()[k], v), k
    assert torch.equal(reg.optim.state[reg.W]["exp_avg"], exp_avg)
    assert float(reg.optim.state[reg.W]["step"]) == step
    # the saved copy is independent of later training and of the restore
    protocol_step(reg, model, *batch(seed=2))
    reg.load_best()
    assert torch.equal(reg.W.detach(), saved["W"])
    assert reg.maybe_save_best(torch.tensor(0.9)) and reg.best_metric == pytest.approx(0.9)
    # mode='min'
    reg2 = MagnitudeEdgeRegressor(model, make_data())
    assert reg2.maybe_save_best(1.0, mode="min")
    assert not reg2.maybe_save_best(2.0, mode="min")
    assert reg2.maybe_save_best(0.5, mode="min")
    with pytest.raises(ValueError, match="mode"):
        reg2.maybe_save_best(0.1, mode="best")


def _direct_auc(pos, neg):
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@pytest.mark.parametrize("mode", ["abs", "relu"])
def test_evaluate_against_auc_and_ranking_with_ties(mode):
    n_func = 12
    model = ContractModel(n_func=n_func)
    edges = [(0, 1), (1, 2), (2, 3), (5, 7), (9, 3)]
    reg = MagnitudeEdgeRegressor(model, make_data(n_func, edges), score_mode=mode)
    g = torch.Generator().manual_seed(3)
    w = torch.randint(-3, 4, (n_func, n_func), generator=g).float() / 4  # many ties
    with torch.no_grad():
        reg.W.copy_(w)
    names = reg.function_nodes
    positives = [("f0", "f2"), ("f4", "f3"), ("f3", "f3"), ("f8", "f11"), ("f10", "f2")]
    out = reg.evaluate_against(positives, top_k=(1, 2, 3))

    S = reg.score_matrix()
    pos_set = {(names.index(s), names.index(d)) for s, d in positives if s != d}
    pos_scores = [S[i, j] for i, j in pos_set]
    neg_scores = [
        S[i, j]
        for i in range(n_func)
        for j in range(n_func)
        if i != j and (i, j) not in pos_set and (i, j) not in set(edges)
    ]
    assert out["auc"] == pytest.approx(_direct_auc(pos_scores, neg_scores), abs=1e-12)

    # the ranking summary equals evaluate_target_ranking on the full evaluate() frame
    _, summary = evaluate_target_ranking(reg.evaluate(), positives, "score", (1, 2, 3))
    for key, value in summary.items():
        assert out[key] == pytest.approx(value), key
    assert set(out) == {"auc", "n_positives", "mrr", "top@1", "top@2", "top@3"}
    _, s2 = MagnitudeEdgeRegressor.evaluate_target_ranking(reg.evaluate(), positives)
    assert set(s2) == {"n_positives", "mrr", "top@1", "top@3", "top@5"}

    with pytest.raises(ValueError, match="empty"):
        reg.evaluate_against([])
    with pytest.raises(ValueError, match="unknown"):
        reg.evaluate_against([("f0", "nope")])


def test_evaluate_against_nan_when_no_positive_left():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    out = reg.evaluate_against([("f1", "f1")])
    assert math.isnan(out["auc"]) and out["mrr"] == 0.0


def test_out_of_order_protocol_calls():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    x, y = batch()
    with pytest.raises(RuntimeError, match="without pre_forward"):
        reg.arm_retained_grads()
    with pytest.raises(RuntimeError, match="before pre_forward"):
        reg.aux_step()
    # pre_forward but no forward
    reg.pre_forward()
    with pytest.raises(RuntimeError, match="run model"):
        reg.arm_retained_grads()
    # forward without autograd
    reg.pre_forward()
    with torch.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        reg.arm_retained_grads()
    # aux_step without arm
    reg.pre_forward()
    model(x)
    with pytest.raises(RuntimeError, match="arm_retained_grads"):
        reg.aux_step()
    assert all(not hasattr(b, "_last_pre_norm_activation") for b in model.ResBlocks)
    # arm twice
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(x), y)
    reg.arm_retained_grads()
    with pytest.raises(RuntimeError, match="twice"):
        reg.arm_retained_grads()
    # backward not run
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(x), y)
    reg.arm_retained_grads()
    W0 = reg.W.detach().clone()
    with pytest.raises(RuntimeError, match=r"loss.backward\(\)"):
        reg.aux_step()
    assert torch.equal(reg.W.detach(), W0)
    assert all(not hasattr(b, "_last_pre_norm_activation") for b in model.ResBlocks)
    assert all(b._store_activations is False for b in model.ResBlocks)
    del loss
    # and the protocol works again afterwards
    out = protocol_step(reg, model, x, y)
    assert math.isfinite(out["aux_loss"])


def test_activations_released_and_no_gradient_leak():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    x, y = batch()
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(x), y)
    reg.arm_retained_grads()
    refs = [weakref.ref(b._last_pre_norm_activation) for b in model.ResBlocks]
    model.zero_grad()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    del loss
    out = reg.aux_step(sync=False)
    assert torch.is_tensor(out["aux_loss"]) and out["n_terms"] == reg.n_pairs * reg.n_aggs
    for b in model.ResBlocks:
        assert b._store_activations is False
        assert not hasattr(b, "_last_pre_norm_activation")
        assert not hasattr(b, "_last_activation")
    assert reg._acts is None
    gc.collect()
    assert all(r() is None for r in refs)  # nothing keeps the captured tensors alive
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)  # aux_step wrote no gradient into the model
    assert reg.W.grad is not None


def test_model_is_not_a_submodule():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data())
    params = list(reg.parameters())
    assert len(params) == 1 and params[0] is reg.W
    assert sum(p.numel() for p in reg.parameters()) == reg.N * reg.N
    assert set(reg.state_dict()) == {
        "W",
        "running_mean_x",
        "running_var_x",
        "running_mean_y",
        "running_var_y",
        "n_batches_tracked",
        "gram",
        "n_samples",
        "residual_sum_sq",
    }
    assert reg.running_mean_x.shape == (2, 2, 6) and reg.running_var_y.shape == (2, 6)
    model.train()
    reg.eval()
    assert model.training  # regressor.eval() leaves the model alone
    reg.to(torch.float64)
    assert model.inp.weight.dtype == torch.float32
    assert reg.W.dtype == torch.float64
    assert reg.model is model


def test_constructor_validation():
    model = ContractModel()
    data = make_data()
    with pytest.raises(ValueError, match="aggregator 'median'"):
        MagnitudeEdgeRegressor(model, data, aggregators=("sum", "median"))
    with pytest.raises(ValueError, match="at least one"):
        MagnitudeEdgeRegressor(model, data, aggregators=())
    assert MagnitudeEdgeRegressor(model, data, aggregators="max").aggregators == ("max",)
    for kwargs, word in [
        ({"lr": 0.0}, "lr"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"dropout": 1.0}, "dropout"),
        ({"ridge": float("nan")}, "ridge"),
        ({"ema_momentum": 0.0}, "ema_momentum"),
        ({"eps_mode": "rel"}, "eps_mode"),
        ({"lr": "fast"}, "lr"),
    ]:
        with pytest.raises(ValueError, match=word):
            MagnitudeEdgeRegressor(model, data, **kwargs)
    model.checkpoint = True
    with pytest.raises(ValueError, match="checkpoint"):
        MagnitudeEdgeRegressor(model, data)
    model.checkpoint = False
    model.norm = "layer"
    with pytest.raises(ValueError, match="use_pre_norm"):
        MagnitudeEdgeRegressor(model, data, use_pre_norm=False)
    MagnitudeEdgeRegressor(model, data)  # pre-norm is fine with any norm
    with pytest.raises(ValueError, match="needs two or more"):
        MagnitudeEdgeRegressor(ContractModel(layers=1), data)
    with pytest.raises(ValueError, match="function nodes"):
        MagnitudeEdgeRegressor(model, make_data(n_func=5, edges=[(0, 1)]))


def test_post_activation_and_dropout_paths():
    model = ContractModel()
    reg = MagnitudeEdgeRegressor(model, make_data(), use_pre_norm=False, dropout=0.5)
    torch.manual_seed(0)
    a = protocol_step(reg, model, *batch())
    torch.manual_seed(0)
    model2 = ContractModel()
    reg2 = MagnitudeEdgeRegressor(model2, make_data(), use_pre_norm=False, dropout=0.5)
    torch.manual_seed(0)
    b = protocol_step(reg2, model2, *batch())
    assert a == b  # same RNG state -> same dropout mask -> same numbers
    assert torch.equal(reg.W, reg2.W)


def test_closed_form_gradient_with_dropout_matches_autograd():
    """W's gradient (left in W.grad by the step) equals autograd's through the dropout."""
    model = ContractModel()
    p, ridge = 0.3, 0.02
    reg = MagnitudeEdgeRegressor(model, make_data(), dropout=p, ridge=ridge)
    W0 = reg.W.detach().double().clone().requires_grad_(True)
    keep: dict = {}
    protocol_step(reg, model, *batch(), keep=keep, aux_seed=123)
    torch.manual_seed(123)
    scale = torch.nn.functional.dropout(torch.ones(reg.N, reg.N), p, training=True).double()
    assert (scale == 0).any()
    X, Y = direct_magnitudes(reg, model, keep)
    terms = []
    for pi in range(reg.n_pairs):
        ys = torch.from_numpy(direct_standardise(Y[pi], Y[pi].mean(0), Y[pi].var(0)))
        for k in range(reg.n_aggs):
            xs = torch.from_numpy(direct_standardise(X[pi, k], X[pi, k].mean(0), X[pi, k].var(0)))
            terms.append(((xs @ (W0 * scale) - ys) ** 2).mean())
    (sum(terms) + ridge * (W0**2).sum()).backward()
    torch.testing.assert_close(reg.W.grad.double(), W0.grad, rtol=1e-4, atol=1e-7)


def test_bad_edge_index():
    with pytest.raises(ValueError, match="edge_index"):
        MagnitudeEdgeRegressor(ContractModel(), make_data(edges=[(0, 6)]))


@pytest.mark.parametrize("n_pos,n_neg", [(5, 400), (400, 5), (1, 1), (50, 50)])
def test_fast_auc_equals_rank_based_auc(n_pos, n_neg):
    from scipy.stats import rankdata

    from gsnn_fast.inference.metrics import pair_auc

    rng = np.random.default_rng(n_pos * 1000 + n_neg)
    pos = rng.integers(0, 8, n_pos).astype(np.float32)  # heavy ties
    neg = rng.integers(0, 8, n_neg).astype(np.float32)
    neg[: min(3, n_neg - 1)] = np.nan
    p, n = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    ranks = rankdata(np.concatenate([p, n]))  # average ranks: ties count half
    expected = (ranks[: p.size].sum() - p.size * (p.size + 1) / 2) / (p.size * n.size)
    assert pair_auc(pos, neg) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(pair_auc(pos[:0], neg))
