"""gsnn_fast::sparse_linear(_backward): dense float64 reference, documented summation
order (bit for bit), gradcheck, opcheck, determinism, thread independence, edge cases,
the torch fallback, SparsePlan, and CUDA parity. (Over ~450 lines on purpose: every
test of the op family, forward and backward, in one place.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast.sparse import SparsePlan, has_kernel, sparse_linear, sparse_linear_torch

from .conftest import require_cuda, require_isa_ran, use_isa, wide_range


def fbits(t: torch.Tensor) -> torch.Tensor:
    """Bit pattern of a float32 / float64 tensor, on the CPU."""
    t = t.detach().cpu().contiguous()
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def random_problem(n_in, n_out, nnz, B, dtype=torch.float64, seed=0, wide=False):
    """Random COO pattern with duplicates, plus x, values, bias. Input n_in - 1 and
    output n_out - 1 get no entries (empty CSR rows on both sides)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, max(n_in - 1, 1), (nnz,), generator=g)
    cols = torch.randint(0, max(n_out - 1, 1), (nnz,), generator=g)
    if nnz >= 4:  # an exact duplicate entry
        rows[-1], cols[-1] = rows[0], cols[0]
    indices = torch.stack([rows, cols])
    make = (
        (lambda s: wide_range(s, g, dtype))
        if wide
        else (lambda s: torch.randn(s, generator=g, dtype=torch.float64).to(dtype))
    )
    return indices, make((B, n_in)), make((nnz,)), make((n_out,))


def dense_reference(indices, x, values, bias, n_in, n_out, g):
    """Float64 dense reference of y and of the three gradients for upstream g."""
    x, values, g = x.double(), values.double(), g.double()
    W = torch.zeros(n_in, n_out, dtype=torch.float64)
    W.index_put_((indices[0], indices[1]), values, accumulate=True)
    y = x @ W
    if bias is not None:
        y = y + bias.double()
    gx = g @ W.t()
    gv = (x[:, indices[0]] * g[:, indices[1]]).sum(0)
    gb = g.sum(0)
    return y, gx, gv, gb


def run_op(x, values, bias, plan, g):
    """y and (grad_x, grad_values, grad_bias) through the public function."""
    x = x.detach().clone().requires_grad_()
    values = values.detach().clone().requires_grad_()
    inputs = [x, values]
    if bias is not None:
        bias = bias.detach().clone().requires_grad_()
        inputs.append(bias)
    y = sparse_linear(x, values, bias, plan)
    grads = torch.autograd.grad(y, inputs, g)
    return (y.detach(), *grads)


# --- NaN bits ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_outputs_are_canonical(device, dtype):
    """inf - inf and NaN inputs (with a sign and a payload) give the positive quiet NaN
    in every output, on the vector paths and the scalar tails alike."""
    canon = {torch.float32: 0x7FC00000, torch.float64: 0x7FF8000000000000}[dtype]
    B, n_in, n_out = 37, 5, 4  # 37: full tiles, a partial tile and scalar tails
    idx = torch.tensor([[0, 1, 2, 3, 4, 0], [0, 0, 1, 2, 3, 3]])
    plan = SparsePlan.from_indices(idx, (n_in, n_out)).to(device)
    x = torch.ones(B, n_in, dtype=dtype)
    x[:, 0] = float("inf")
    x[:, 1] = float("-inf")  # output 0: inf - inf
    neg_nan = torch.tensor([-float("nan")], dtype=dtype)
    x[3:, 2] = neg_nan  # output 1: a negative NaN input
    values = torch.ones(6, dtype=dtype)
    g = torch.ones(B, n_out, dtype=dtype)
    g[5, 2] = neg_nan[0]
    outs = run_op(x.to(device), values.to(device), torch.zeros(n_out, dtype=dtype).to(device),
                  plan, g.to(device))  # fmt: skip
    assert any(torch.isnan(t).any() for t in outs)
    itype = torch.int32 if dtype == torch.float32 else torch.int64
    for t in outs:
        t = t.detach().cpu().contiguous()
        nan = torch.isnan(t)
        assert (t.view(itype)[nan] == canon).all()


# --- shapes and values ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B", [1, 7, 64, 130])
def test_matches_dense_reference(device, dtype, B):
    n_in, n_out, nnz = 41, 37, 300
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, dtype, seed=B)
    plan = SparsePlan.from_indices(indices, (n_in, n_out)).to(device)
    g = torch.randn(B, n_out, dtype=torch.float64).to(dtype)
    y, gx, gv, gb = run_op(x.to(device), values.to(device), bias.to(device), plan, g.to(device))
    ref = dense_reference(indices, x, values, bias, n_in, n_out, g)
    # float32 inputs are multiplied and summed in float32 (documented), B up to 130 terms
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-4)
    for got, want in zip((y, gx, gv, gb), ref):
        assert got.dtype == dtype
        torch.testing.assert_close(got.cpu().double(), want, **tol)
    # inputs / outputs without entries
    torch.testing.assert_close(y[:, -1].cpu(), bias[-1].expand(B), rtol=0, atol=0)
    assert (gx[:, -1] == 0).all()


def _emulate(indices, x, values, bias, g, n_in, n_out):
    """The documented arithmetic, term by term, in numpy scalars of the input dtype
    (float32 ops round to float32 each): see csrc/include/gsnn_fast/sparse_linear.h."""
    rows, cols = indices[0].numpy(), indices[1].numpy()
    X, V, G = x.numpy(), values.numpy(), g.numpy()
    zero = X.dtype.type(0)
    Bb = X.shape[0]
    out_order = np.argsort(cols, kind="stable")
    in_order = np.argsort(rows, kind="stable")

    def entry_sums(inp, key, other, n, order):
        """out[b, m] = sum of V[e] * inp[b, other[e]] over the entries with key m, in
        ascending entry order, each product and sum rounded in the input dtype."""
        out = np.zeros((Bb, n), X.dtype)
        for m in range(n):
            ents = order[key[order] == m]
            for b in range(Bb):
                acc = zero
                for e in ents:
                    acc = acc + V[e] * inp[b, other[e]]
                out[b, m] = acc
        return out

    y = entry_sums(X, cols, rows, n_out, out_order)
    if bias is not None:
        y = y + bias.numpy()  # one rounded add per output, after the sum
    gx = entry_sums(G, rows, cols, n_in, in_order)
    gv = np.zeros(len(rows), X.dtype)
    for e in range(len(rows)):
        l = [zero] * 8
        for b in range(Bb):
            l[b % 8] = l[b % 8] + X[b, rows[e]] * G[b, cols[e]]
        gv[e] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    gb = np.zeros(n_out, X.dtype)
    for m in range(n_out):
        acc = zero
        for b in range(Bb):
            acc = acc + G[b, m]
        gb[m] = acc
    return [torch.from_numpy(a) for a in (y, gx, gv, gb)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("B", [3, 9, 64, 67])
def test_documented_summation_order_bit_for_bit(device, dtype, B):
    """Every output equals the header's documented arithmetic exactly: products and sums
    in the input dtype, CSR order = ascending entry order, bias last, 8-lane tree for
    values, b ascending for the bias."""
    n_in, n_out, nnz = 13, 11, 90
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, dtype, seed=10 + B, wide=True)
    g = wide_range((B, n_out), torch.Generator().manual_seed(B), dtype)
    plan = SparsePlan.from_indices(indices, (n_in, n_out)).to(device)
    got = run_op(x.to(device), values.to(device), bias.to(device), plan, g.to(device))
    want = _emulate(indices, x, values, bias, g, n_in, n_out)
    for a, w in zip(got, want):
        assert w.dtype == dtype
        assert torch.equal(fbits(a), fbits(w))


def test_summation_order_examples():
    one, tiny = 1.0, 2.0**-53
    # forward: 1 + tiny + tiny in ascending entry order stays 1 (another order gives 1 + 2^-52)
    idx = torch.tensor([[0, 1, 2], [0, 0, 0]])
    plan = SparsePlan.from_indices(idx, (3, 1))
    x = torch.ones(1, 3, dtype=torch.float64)
    v = torch.tensor([one, tiny, tiny], dtype=torch.float64)
    assert sparse_linear(x, v, None, plan).item() == 1.0
    # the bias is added after the sum: (tiny + tiny) + 1 = 1 + 2^-52
    v2 = torch.tensor([tiny, tiny, 0.0], dtype=torch.float64)
    assert sparse_linear(x, v2, torch.ones(1, 1, dtype=torch.float64), plan).item() == 1 + 2**-52
    # grad_values: lanes b mod 8 then a tree. products p0 = 1, p1 = p9 = tiny:
    # lane0 = 1, lane1 = 2 tiny -> 1 + 2^-52 (a sequential sum would give 1)
    idx1 = torch.tensor([[0], [0]])
    plan1 = SparsePlan.from_indices(idx1, (1, 1))
    xb = torch.zeros(16, 1, dtype=torch.float64)
    xb[0, 0], xb[1, 0], xb[9, 0] = one, tiny, tiny
    vals = torch.ones(1, dtype=torch.float64, requires_grad=True)
    (gv,) = torch.autograd.grad(sparse_linear(xb, vals, None, plan1).sum(), [vals])
    assert gv.item() == 1 + 2**-52
    # grad_bias: b ascending -> 1
    bias = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    gout = torch.tensor([[one], [tiny], [tiny]], dtype=torch.float64)
    y = sparse_linear(torch.zeros(3, 1, dtype=torch.float64), vals.detach(), bias, plan1)
    (gb,) = torch.autograd.grad(y, [bias], gout)
    assert gb.item() == 1.0


def test_gradcheck():
    n_in, n_out, nnz, B = 9, 7, 30, 5
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, torch.float64, seed=3)
    plan = SparsePlan.from_indices(indices, (n_in, n_out))
    args = [t.clone().requires_grad_() for t in (x, values, bias)]
    assert torch.autograd.gradcheck(lambda a, v, b: sparse_linear(a, v, b, plan), args)
    assert torch.autograd.gradcheck(lambda a, v: sparse_linear(a, v, None, plan), args[:2])
    # (B, N_in, 1) input and (M_out, 1) bias, as the model passes them
    args3 = [args[0].detach().unsqueeze(2).requires_grad_(), args[1], bias.view(-1, 1)]
    args3[2] = args3[2].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, v, b: sparse_linear(a, v, b, plan), args3)


def test_opcheck(device):
    n_in, n_out, nnz, B = 17, 12, 60, 6
    for dtype in (torch.float32, torch.float64):
        indices, x, values, bias = random_problem(n_in, n_out, nnz, B, dtype, seed=4)
        p = SparsePlan.from_indices(indices, (n_in, n_out)).to(device)
        x, values, bias = x.to(device), values.to(device), bias.to(device)
        csr = (p.out_ptr, p.out_rows, p.out_perm, p.in_ptr, p.in_cols, p.in_perm)
        for b in (bias, None):
            args = (x.requires_grad_(), values.requires_grad_(), b, *csr, n_out)
            torch.library.opcheck(torch.ops.gsnn_fast.sparse_linear.default, args)
        g = torch.randn(B, n_out, dtype=dtype, device=device)
        for flags in [(True, True, True), (True, False, False), (False, True, True)]:
            args = (g, x.detach(), values.detach(), p.in_ptr, p.in_cols, p.in_perm, *flags)
            torch.library.opcheck(torch.ops.gsnn_fast.sparse_linear_backward.default, args)


# --- determinism -----------------------------------------------------------------------


def _medium(dtype=torch.float32):
    n_in, n_out, nnz, B = 400, 300, 6000, 64
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, dtype, seed=5, wide=True)
    g = wide_range((B, n_out), torch.Generator().manual_seed(6), dtype)
    return SparsePlan.from_indices(indices, (n_in, n_out)), x, values, bias, g


def test_two_runs_bit_identical():
    plan, x, values, bias, g = _medium()
    a = run_op(x, values, bias, plan, g)
    b = run_op(x, values, bias, plan, g)
    for u, v in zip(a, b):
        assert torch.equal(fbits(u), fbits(v))


def test_independent_of_thread_count():
    plan, x, values, bias, g = _medium()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = run_op(x, values, bias, plan, g)
        torch.set_num_threads(2)
        b = run_op(x, values, bias, plan, g)
    finally:
        torch.set_num_threads(old)
    for u, v in zip(a, b):
        assert torch.equal(fbits(u), fbits(v))


def test_fused_and_separate_backward_agree():
    plan, x, values, _bias, g = _medium(torch.float64)
    op = torch.ops.gsnn_fast.sparse_linear_backward.default
    csr = (plan.in_ptr, plan.in_cols, plan.in_perm)
    gx, gv, gb = op(g, x, values, *csr, True, True, True)
    assert torch.equal(fbits(gx), fbits(op(g, x, values, *csr, True, False, False)[0]))
    assert torch.equal(fbits(gv), fbits(op(g, x, values, *csr, False, True, False)[1]))
    assert torch.equal(fbits(gb), fbits(op(g, x, values, *csr, False, False, True)[2]))
    assert op(g, x, values, *csr, False, False, False)[0].shape == (0, 0)


# --- edge cases ------------------------------------------------------------------------


def test_no_entries_and_degenerate_shapes(device):
    # nnz = 0: y = bias (or 0); all gradients 0 (grad_bias = column sums)
    idx = torch.zeros(2, 0, dtype=torch.int64)
    plan = SparsePlan.from_indices(idx, (5, 4)).to(device)
    x = torch.randn(3, 5, dtype=torch.float64, device=device, requires_grad=True)
    v = torch.zeros(0, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(4, 1, dtype=torch.float64, device=device, requires_grad=True)
    y = sparse_linear(x, v, b, plan)
    assert torch.equal(y, b.detach().view(1, 4).expand(3, 4))
    gx, gv, gb = torch.autograd.grad(y.sum(), [x, v, b])
    assert (gx == 0).all() and gv.shape == (0,) and (gb == 3).all()
    # B = 0
    idx = torch.tensor([[0, 1], [1, 0]])
    plan = SparsePlan.from_indices(idx, (2, 2)).to(device)
    x0 = torch.zeros(0, 2, dtype=torch.float32, device=device, requires_grad=True)
    v0 = torch.ones(2, dtype=torch.float32, device=device, requires_grad=True)
    y0 = sparse_linear(x0, v0, None, plan)
    assert y0.shape == (0, 2)
    (gv0,) = torch.autograd.grad(y0.sum(), [v0])
    assert (gv0 == 0).all()
    # M_out = 0 and N_in = 0
    for size in [(3, 0), (0, 3)]:
        p = SparsePlan.from_indices(torch.zeros(2, 0, dtype=torch.int64), size).to(device)
        xe = torch.randn(2, size[0], device=device)
        assert sparse_linear(xe, torch.zeros(0, device=device), None, p).shape == (2, size[1])


def test_non_contiguous_x(device):
    n_in, n_out, nnz, B = 21, 17, 120, 10
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, torch.float32, seed=7)
    plan = SparsePlan.from_indices(indices, (n_in, n_out)).to(device)
    g = torch.randn(B, n_out)
    base = torch.randn(n_in, 2 * B).to(device)
    xs = base.t()[::2]  # (B, n_in), strides (2, 2B)
    assert not xs.is_contiguous()
    a = run_op(xs, values.to(device), bias.to(device), plan, g.to(device))
    b = run_op(xs.contiguous(), values.to(device), bias.to(device), plan, g.to(device))
    for u, v in zip(a, b):
        assert torch.equal(fbits(u), fbits(v))
    # a non-contiguous upstream gradient
    gg = torch.randn(n_out, B).to(device).t()
    c = run_op(xs, values.to(device), bias.to(device), plan, gg)
    d = run_op(xs, values.to(device), bias.to(device), plan, gg.contiguous())
    for u, v in zip(c, d):
        assert torch.equal(fbits(u), fbits(v))


def test_bad_arguments():
    idx = torch.tensor([[0, 1, 2], [1, 0, 1]])
    plan = SparsePlan.from_indices(idx, (3, 2))
    x = torch.randn(4, 3)
    v = torch.randn(3)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 3\)"):
        sparse_linear(torch.randn(4, 5), v, None, plan)
    with pytest.raises(ValueError, match="values"):
        sparse_linear(x, torch.randn(4), None, plan)
    with pytest.raises(ValueError, match="bias"):
        sparse_linear(x, v, torch.randn(3), plan)
    with pytest.raises(ValueError, match="x: expected shape"):
        sparse_linear(torch.randn(4, 3, 2), v, None, plan)
    with pytest.raises(ValueError, match="indices\\[0\\]"):
        SparsePlan.from_indices(torch.tensor([[3], [0]]), (3, 2))
    with pytest.raises(ValueError, match="indices\\[1\\]"):
        SparsePlan.from_indices(torch.tensor([[0], [-1]]), (3, 2))
    with pytest.raises(ValueError, match="indices must be"):
        SparsePlan.from_indices(torch.zeros(3, 2, dtype=torch.int64), (3, 2))


def test_bad_csr_contents(device):
    """The op's checks, with the same messages on both devices (CUDA checks the CSR
    contents on host copies, once per unmodified index tensor)."""
    idx = torch.tensor([[0, 1, 2], [1, 0, 1]])
    plan = SparsePlan.from_indices(idx, (3, 2)).to(device)
    x = torch.randn(4, 3).to(device)
    v = torch.randn(3).to(device)
    op = torch.ops.gsnn_fast.sparse_linear.default
    csr = (plan.out_ptr, plan.out_rows, plan.out_perm, plan.in_ptr, plan.in_cols, plan.in_perm)
    with pytest.raises(RuntimeError, match="values dtype"):
        op(x, v.double(), None, *csr, 2)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        op(x.half(), v.half(), None, *csr, 2)
    with pytest.raises(RuntimeError, match="out_ptr must have"):
        op(x, v, None, *csr, 3)
    op(x, v, None, *csr, 2)  # valid: passes (and is remembered on CUDA)
    bad_rows = plan.out_rows.clone()
    bad_rows[0] = 7
    with pytest.raises(RuntimeError, match="out CSR index 7 at slot 0 is out of range"):
        op(x, v, None, plan.out_ptr, bad_rows, *csr[2:], 2)
    bad_perm = plan.out_perm.clone()
    bad_perm[1] = 99
    with pytest.raises(RuntimeError, match="permutation"):
        op(x, v, None, plan.out_ptr, plan.out_rows, bad_perm, *csr[3:], 2)
    rep_perm = torch.zeros_like(plan.in_perm)  # in range, not a permutation
    bwd = torch.ops.gsnn_fast.sparse_linear_backward.default
    g = torch.randn(4, 2).to(device)
    with pytest.raises(RuntimeError, match="in_perm must be a permutation .* repeats"):
        bwd(g, x, v, plan.in_ptr, plan.in_cols, rep_perm, True, True, True)
    bad_ptr = plan.out_ptr.flip(0)
    with pytest.raises(RuntimeError, match=r"out_ptr\[0\] must be 0"):
        op(x, v, None, bad_ptr, *csr[1:], 2)
    # an in-place change of a tensor that passed is seen
    plan.out_rows[1] = -1
    with pytest.raises(RuntimeError, match="out CSR index -1 at slot 1 is out of range"):
        op(x, v, None, *csr, 2)


# --- fallback and plan -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fallback_for_dtypes_without_kernel(dtype):
    n_in, n_out, nnz, B = 15, 11, 50, 4
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, torch.float64, seed=8)
    plan = SparsePlan.from_indices(indices, (n_in, n_out))
    xl, vl, bl = (t.to(dtype) for t in (x, values, bias))
    assert not has_kernel(xl, vl, bl)
    g = torch.randn(B, n_out, dtype=torch.float64)
    y, gx, gv, gb = run_op(xl, vl, bl, plan, g.to(dtype))
    ref = dense_reference(indices, xl, vl, bl, n_in, n_out, g.to(dtype))
    for got, want in zip((y, gx, gv, gb), ref):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, rtol=3e-2, atol=3e-2)


def test_torch_fallback_matches_kernel():
    n_in, n_out, nnz, B = 33, 29, 200, 12
    indices, x, values, bias = random_problem(n_in, n_out, nnz, B, torch.float64, seed=9)
    plan = SparsePlan.from_indices(indices, (n_in, n_out))
    g = torch.randn(B, n_out, dtype=torch.float64)
    got = run_op(x, values, bias, plan, g)
    xr, vr, br = (t.clone().requires_grad_() for t in (x, values, bias))
    y = sparse_linear_torch(xr.unsqueeze(2), indices, vr, br.view(-1, 1), (n_in, n_out))
    assert y.shape == (B, n_out, 1)
    want = (y.detach().squeeze(2), *torch.autograd.grad(y.squeeze(2), [xr, vr, br], g))
    for a, w in zip(got, want):
        torch.testing.assert_close(a, w, rtol=1e-12, atol=1e-12)
    # torch.autograd through the fallback's own backward
    assert torch.autograd.gradcheck(
        lambda a, v, b: sparse_linear_torch(a, indices, v, b, (n_in, n_out)),
        [t.clone().requires_grad_() for t in (x[:3], values, bias)],
    )


def test_plan_structures():
    idx = torch.tensor([[2, 0, 2, 1, 0], [1, 1, 0, 1, 1]])
    plan = SparsePlan.from_indices(idx, (4, 3))
    assert plan.out_ptr.tolist() == [0, 1, 5, 5]
    assert plan.out_perm.tolist() == [2, 0, 1, 3, 4]  # stable: entry order within an output
    assert plan.out_rows.tolist() == [2, 2, 0, 1, 0]
    assert plan.in_ptr.tolist() == [0, 2, 3, 5, 5]
    assert plan.in_perm.tolist() == [1, 4, 3, 0, 2]
    assert plan.in_cols.tolist() == [1, 1, 1, 1, 0]
    rebuilt = SparsePlan.from_buffers(plan.buffers(), plan.size)
    assert torch.equal(rebuilt.indices(), idx)  # rebuilt from the CSR alone
    assert plan.to("cpu") is plan
    assert all(t.dtype == torch.int64 for t in plan.buffers().values())
    assert "nnz=5" in repr(plan)


# --- CUDA --------------------------------------------------------------------------------


def test_cuda_parity_bit_for_bit():
    require_cuda()
    lengths = [0, 1, 31, 32, 33, 1025, 3]  # entries per output
    cols = torch.cat([torch.full((n,), m) for m, n in enumerate(lengths)])
    g = torch.Generator().manual_seed(11)
    n_in, n_out = 200, len(lengths)
    rows = torch.randint(0, n_in, (cols.numel(),), generator=g)
    indices = torch.stack([rows, cols])
    plan = SparsePlan.from_indices(indices, (n_in, n_out))
    plan_gpu = plan.to("cuda")
    for dtype in (torch.float32, torch.float64):
        for B in (1, 7, 64, 65):
            x = wide_range((B, n_in), g, dtype)
            v = wide_range((cols.numel(),), g, dtype)
            b = wide_range((n_out,), g, dtype)
            up = wide_range((B, n_out), g, dtype)
            cpu = run_op(x, v, b, plan, up)
            gpu = run_op(x.cuda(), v.cuda(), b.cuda(), plan_gpu, up.cuda())
            for c, d in zip(cpu, gpu):
                assert torch.equal(fbits(c), fbits(d)), (dtype, B)


def test_torch_kernels_for_devices_without_compiled_ones():
    """The torch kernels registered for devices without a compiled kernel (CUDA in a
    CPU-only build, MPS) compute the op's contract; the dispatcher has a CUDA kernel
    in every build."""
    from gsnn_fast.sparse import (
        _sparse_linear_backward_kernel_torch,
        _sparse_linear_kernel_torch,
    )

    for name in ("gsnn_fast::sparse_linear", "gsnn_fast::sparse_linear_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA")
    g = torch.Generator().manual_seed(7)
    n_in, n_out, nnz, B = 9, 6, 25, 11
    idx = torch.stack(
        [torch.randint(0, n_in, (nnz,), generator=g), torch.randint(0, n_out, (nnz,), generator=g)]
    )
    plan = SparsePlan.from_indices(idx, (n_in, n_out))
    x = torch.randn(B, n_in, generator=g, dtype=torch.float64)
    v = torch.randn(nnz, generator=g, dtype=torch.float64)
    b = torch.randn(n_out, generator=g, dtype=torch.float64)
    gout = torch.randn(B, n_out, generator=g, dtype=torch.float64)
    csr = (plan.out_ptr, plan.out_rows, plan.out_perm, plan.in_ptr, plan.in_cols, plan.in_perm)
    want = torch.ops.gsnn_fast.sparse_linear.default(x, v, b, *csr, n_out)
    got = _sparse_linear_kernel_torch(x, v, b, *csr, n_out)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    bwd = (gout, x, v, plan.in_ptr, plan.in_cols, plan.in_perm)
    for need in [(True, True, True), (False, True, False), (True, False, True)]:
        want = torch.ops.gsnn_fast.sparse_linear_backward.default(*bwd, *need)
        got = _sparse_linear_backward_kernel_torch(*bwd, *need)
        for a, w in zip(got, want):
            assert a.shape == w.shape
            torch.testing.assert_close(a, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("isa", ["avx512f", "avx2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_simd_variant_gives_the_baseline_bits(monkeypatch, isa, dtype):
    """The CPU loops run as AVX-512F, AVX2 or baseline code (GSNN_FAST_ISA caps the
    variant; the one that ran is checked): forward and backward give the baseline's
    bits, with full tiles, partial tiles and scalar tails (B = 77)."""
    g = torch.Generator().manual_seed(5)
    n_in, n_out, nnz, B = 40, 33, 300, 77
    idx = torch.stack(
        [torch.randint(0, n_in, (nnz,), generator=g), torch.randint(0, n_out, (nnz,), generator=g)]
    )
    plan = SparsePlan.from_indices(idx, (n_in, n_out))
    x = wide_range((B, n_in), g, dtype)
    v = wide_range((nnz,), g, dtype)
    b = wide_range((n_out,), g, dtype)
    gout = wide_range((B, n_out), g, dtype)
    outs = {}
    for variant in ("baseline", isa):
        use_isa(monkeypatch, variant)
        outs[variant] = run_op(x, v, b, plan, gout)
        require_isa_ran("sparse_linear", variant)
        require_isa_ran("sparse_linear_backward", variant)
    for a, w in zip(outs[isa], outs["baseline"]):
        assert torch.equal(fbits(a), fbits(w)), isa
