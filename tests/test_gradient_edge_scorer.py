"""GradientEdgeScorer: its z statistics against a direct float64 computation (projections,
per-pair correlations written out in torch), the result frame, pooling over fits, the
partial / stagewise options, and the model left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast import GSNN, GradientEdgeScorer, nx2pyg
from gsnn_fast.data import build_convergence_graph, default_held_out_edges


def _case(seed: int = 0):
    G, _, inputs, functions, outputs, _ = build_convergence_graph(4)
    G.remove_edges_from(default_held_out_edges(4))
    data = nx2pyg(G, inputs, functions, outputs)
    torch.manual_seed(seed)
    model = GSNN(
        data.edge_index_dict, data.node_names_dict, channels=3, layers=3, share_layers=False,
        norm="none", dropout=0.2, node_mlp=False,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    batches = [
        (torch.randn(b, len(inputs), generator=g), torch.randn(b, len(outputs), generator=g))
        for b in (16, 5, 11)
    ]
    return model, data, batches


def _reference_z(model, data, batches, sc: GradientEdgeScorer) -> torch.Tensor:
    """[K * P, N, N] z statistics computed directly from the captured tensors."""
    blocks = list(model.ResBlocks)
    model.eval()
    acts_all, grads_all = [], []
    for x, y in batches:
        for b in blocks:
            b._store_activations = True
        pre_out = model(x)
        loss = torch.nn.functional.mse_loss(pre_out, y)
        pre = [b._last_pre_norm_activation for b in blocks]
        post = [b._last_activation for b in blocks]
        grads = torch.autograd.grad(loss, pre)
        acts_all.append(torch.stack([p.detach().squeeze(-1) for p in post]).double())
        grads_all.append(torch.stack([g.squeeze(-1) for g in grads]).double())
        for b in blocks:
            b._store_activations = False
    A = torch.cat(acts_all, 1)  # (L, n, C)
    Gr = torch.cat(grads_all, 1)
    cg = blocks[0].channel_groups
    N, L, n = sc.N, sc.L, A.shape[1]
    onehot = torch.zeros(cg.numel(), N, dtype=torch.float64)
    fn = cg < N  # function nodes come first in the homogeneous order
    onehot[fn.nonzero().squeeze(1), cg[fn]] = 1.0
    zs = []
    for k in range(sc.K):
        u = torch.zeros(cg.numel(), dtype=torch.float64)
        v = torch.zeros(cg.numel(), dtype=torch.float64)
        u[fn], v[fn] = sc._u[k], sc._v[k]
        ra = (A * u) @ onehot  # (L, n, N)
        sg = (Gr * v) @ onehot
        for p in range(L - 1):
            a, g = ra[p], sg[p + 1]
            a, g = a - a.mean(0), g - g.mean(0)
            cov = a.T @ g
            r = cov / torch.outer(a.norm(dim=0), g.norm(dim=0))
            zs.append(torch.atanh(r.clamp(-0.9999, 0.9999)) * (n - 3) ** 0.5)
    return torch.stack(zs)


def test_z_matches_direct_computation():
    model, data, batches = _case()
    sc = GradientEdgeScorer(model, data, projections=2, seed=3)
    n = sc.fit(batches)
    assert n == sum(len(x) for x, _ in batches)
    z = sc.z_matrices()
    ref = _reference_z(model, data, batches, sc)
    assert z.shape == ref.shape == (2 * (sc.L - 1), sc.N, sc.N)
    both = ~torch.isnan(z) & ~torch.isnan(ref)
    assert both.sum() > 0
    assert torch.equal(torch.isnan(z), torch.isnan(ref) | (ref.abs() < 0) | torch.isnan(z))
    torch.testing.assert_close(z[both], ref[both], rtol=1e-7, atol=1e-7)


def test_frame_columns_and_calibration():
    model, data, batches = _case()
    sc = GradientEdgeScorer(model, data)
    sc.fit(batches)
    df = sc.evaluate()
    assert list(df.columns) == [
        "src_func", "dst_func", "src_idx", "dst_idx", "score", "has_edge", "p_value", "q_value",
    ]  # fmt: skip
    assert len(df) == sc.N * (sc.N - 1)
    s = df["score"].to_numpy()
    ok = ~np.isnan(s)
    assert np.all(np.diff(s[ok]) <= 0) and not np.isnan(s[: ok.sum()]).any()
    assert ((df["p_value"] >= 0) & (df["p_value"] <= 1)).all()
    assert (df["q_value"] >= df["p_value"] - 1e-15).all()
    top = sc.evaluate(top_k=1)
    assert top.groupby("dst_idx").size().max() == 1


def test_deterministic_and_pooling():
    model, data, batches = _case()
    a = GradientEdgeScorer(model, data, seed=1)
    a.fit(batches)
    b = GradientEdgeScorer(model, data, seed=1)
    b.fit(batches)
    assert torch.equal(a.sum_xy, b.sum_xy)
    b.fit(batches, reset=False)
    assert b.n == 2 * a.n
    torch.testing.assert_close(b.sum_xy, 2 * a.sum_xy)


@pytest.mark.parametrize("stages", [0, 1])
def test_partial_and_stagewise(stages):
    model, data, batches = _case()
    sc = GradientEdgeScorer(model, data, score="partial", stages=stages)
    sc.fit(batches)
    score, p = sc.score_matrix()
    assert score.shape == p.shape == (sc.N, sc.N)
    assert np.isfinite(score).any()


def test_model_left_as_found():
    model, data, batches = _case()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    GradientEdgeScorer(model, data).fit(batches)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert not any(getattr(b, "_store_activations", False) for b in model.ResBlocks)


def test_bad_arguments():
    model, data, _ = _case()
    with pytest.raises(ValueError, match="projections"):
        GradientEdgeScorer(model, data, projections=0)
    with pytest.raises(ValueError, match="score"):
        GradientEdgeScorer(model, data, score="magnitude")
    with pytest.raises(RuntimeError, match="too few samples"):
        GradientEdgeScorer(model, data).score_matrix()
