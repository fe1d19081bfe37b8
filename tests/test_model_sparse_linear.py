"""SparseLinear: forward/backward against dense matmul, inits, prune, plan caching."""

from __future__ import annotations

import math

import pytest
import torch

import gsnn_fast.models.sparse_linear as sl
from gsnn_fast.models import SparseLinear, sparse_linear_torch


def random_pattern(N, M, nnz, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(N * M, generator=g)[:nnz]
    return torch.stack((flat // M, flat % M))


def dense_of(lin: SparseLinear) -> torch.Tensor:
    W = torch.zeros(lin.size, dtype=lin.values.dtype)
    return W.index_put((lin.indices[0], lin.indices[1]), lin.values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("three_d", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_grads_match_dense(dtype, three_d, bias):
    torch.manual_seed(0)
    lin = SparseLinear(random_pattern(30, 20, 90), size=(30, 20), bias=bias, dtype=dtype)
    if bias:
        with torch.no_grad():
            lin.bias.normal_()
    x = torch.randn(5, 30, dtype=dtype)
    x = (x.unsqueeze(-1) if three_d else x).requires_grad_(True)
    out = lin(x)
    assert out.shape == (5, 20, 1) and out.dtype == dtype
    x2 = x.detach().reshape(5, 30).requires_grad_(True)
    W = dense_of(lin)
    ref = x2 @ W + (lin.bias.view(1, -1) if bias else 0)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0, atol=1e-12)
    torch.testing.assert_close(out.squeeze(-1), ref, **tol)
    w = torch.randn(5, 20, dtype=dtype)
    params = [lin.values] + ([lin.bias] if bias else [])
    g = torch.autograd.grad((out.squeeze(-1) * w).sum(), [x] + params)
    g_ref = torch.autograd.grad((ref * w).sum(), [x2] + params)
    torch.testing.assert_close(g[0].reshape(5, 30), g_ref[0], **tol)
    for a, b in zip(g[1:], g_ref[1:]):
        torch.testing.assert_close(a, b, **tol)


def test_gradcheck_float64():
    torch.manual_seed(1)
    idx = random_pattern(7, 5, 14)
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    v = torch.randn(14, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, v, b: sparse_linear_torch(x, idx, v, b, (7, 5)), (x, v, b)
    )


def test_empty_pattern_and_empty_batch():
    lin = SparseLinear(torch.zeros(2, 0, dtype=torch.long), size=(4, 3))
    with torch.no_grad():
        lin.bias.fill_(2.0)
    x = torch.randn(2, 4, requires_grad=True)
    out = lin(x)
    torch.testing.assert_close(out, torch.full((2, 3, 1), 2.0))
    out.sum().backward()
    assert torch.all(x.grad == 0)
    lin2 = SparseLinear(random_pattern(4, 3, 5), size=(4, 3))
    assert lin2(torch.zeros(0, 4)).shape == (0, 3, 1)


def test_plan_built_once_not_per_forward(monkeypatch):
    lin = SparseLinear(random_pattern(12, 9, 30), size=(12, 9))
    calls = []
    orig = sl.build_sparse_plan
    monkeypatch.setattr(sl, "build_sparse_plan", lambda *a: calls.append(1) or orig(*a))
    x = torch.randn(4, 12, requires_grad=True)
    for _ in range(3):
        lin(x).sum().backward()
    assert calls == []
    lin.prune(torch.arange(10))
    assert calls == [1]


def test_prune_by_positions_and_mask():
    torch.manual_seed(0)
    idx = random_pattern(10, 8, 40)
    lin = SparseLinear(idx, size=(10, 8))
    keep = torch.tensor([0, 3, 5, 17, 39])
    vals = lin.values.detach()[keep].clone()
    lin.prune(keep)
    assert lin.nnz == 5 and lin.indices.shape == (2, 5)
    torch.testing.assert_close(lin.values.detach(), vals)
    torch.testing.assert_close(lin.indices, idx[:, keep])
    x = torch.randn(3, 10)
    torch.testing.assert_close(
        lin(x).squeeze(-1), x @ dense_of(lin).detach() + lin.bias.view(1, -1)
    )
    mask = torch.tensor([True, False, True, False, True])
    lin.prune(mask)
    assert lin.nnz == 3
    torch.testing.assert_close(
        lin(x).squeeze(-1), x @ dense_of(lin).detach() + lin.bias.view(1, -1)
    )


def test_state_dict_names_and_shapes():
    lin = SparseLinear(random_pattern(6, 4, 9), size=(6, 4))
    sd = {k: tuple(v.shape) for k, v in lin.state_dict().items()}
    assert sd == {"values": (9,), "bias": (4, 1), "indices": (2, 9)}
    assert torch.all(lin.bias == 0)
    nob = SparseLinear(random_pattern(6, 4, 9), size=(6, 4), bias=False)
    assert set(nob.state_dict()) == {"values", "indices"}


def test_double_and_dtype_errors():
    lin = SparseLinear(random_pattern(6, 4, 9), size=(6, 4)).double()
    assert lin.values.dtype == torch.float64
    assert lin(torch.randn(2, 6, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(TypeError, match="x: dtype"):
        lin(torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 6\)"):
        lin(torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="indices"):
        SparseLinear(torch.tensor([[0, 6], [0, 1]]), size=(6, 4))


# ------------------------------------------------------------------ inits
def two_block_pattern():
    """Block A: rows 0..39 x cols 0..49 full (n_in=40, n_out=50).
    Block B: rows 40..49 x cols 50..54 full (n_in=10, n_out=5)."""
    ra, ca = torch.meshgrid(torch.arange(40), torch.arange(50), indexing="ij")
    rb, cb = torch.meshgrid(torch.arange(40, 50), torch.arange(50, 55), indexing="ij")
    idx = torch.cat(
        (
            torch.stack((ra.reshape(-1), ca.reshape(-1))),
            torch.stack((rb.reshape(-1), cb.reshape(-1))),
        ),
        dim=1,
    )
    return idx, (50, 55)


INIT_SCALE = {
    # name: (bound or None, std) as functions of (n_in, n_out)
    "degree_normalized": (
        lambda i, o: 1 / math.sqrt((i + 1e-8) * (o + 1e-8)),
        lambda i, o: 1 / math.sqrt(3 * (i + 1e-8) * (o + 1e-8)),
    ),
    "xavier_uniform": (lambda i, o: math.sqrt(6 / (i + o)), lambda i, o: math.sqrt(2 / (i + o))),
    "xavier_normal": (None, lambda i, o: math.sqrt(2 / (i + o))),
    "kaiming_uniform": (lambda i, o: math.sqrt(3 / i), lambda i, o: math.sqrt(1 / i)),
    "kaiming_normal": (None, lambda i, o: 1 / math.sqrt(i)),
    "uniform": (lambda i, o: 1.0, lambda i, o: 1 / math.sqrt(3)),
    "normal": (None, lambda i, o: 1.0),
}


@pytest.mark.parametrize("init", list(INIT_SCALE))
def test_inits_follow_per_entry_degree_rule(init):
    torch.manual_seed(0)
    idx, size = two_block_pattern()
    v = SparseLinear(idx, size=size, init=init).values.detach().double()
    a, b = v[:2000], v[2000:]
    bound, std = INIT_SCALE[init]
    if bound is not None:
        assert a.abs().max() <= bound(40, 50) + 1e-7
        assert b.abs().max() <= bound(10, 5) + 1e-7
    assert abs(a.std().item() / std(40, 50) - 1) < 0.1
    assert abs(a.mean().item()) < 0.15 * std(40, 50)
    if init not in ("uniform", "normal"):  # block B (fewer neighbours) gets a larger scale
        assert b.abs().mean() > a.abs().mean()


def test_zeros_init_and_unknown_init():
    idx, size = two_block_pattern()
    assert torch.all(SparseLinear(idx, size=size, init="zeros").values == 0)
    with pytest.raises(ValueError) as err:
        SparseLinear(idx, size=size, init="orthogonal")
    msg = str(err.value)
    assert "init" in msg and "orthogonal" in msg
    for name in sl.INITS:
        assert name in msg
