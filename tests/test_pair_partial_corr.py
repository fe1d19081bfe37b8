"""gsnn_fast::pair_partial_corr (moments, systems and aggregation in one op) against its
composition from the pair_corr and partial_corr ops and torch ops, bit for bit; against
the float64 numpy reference of the inferer tests; CUDA against CPU (on a GPU); argument
checks and opcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast.inference.torch_scoring import fold_pairs, pair_moments
from gsnn_fast.ops import (
    pair_partial_corr,
    pair_partial_corr_entries,
    pair_partial_corr_keep_big,
    partial_corr,
)

from .conftest import ISAS, bits, require_cuda, require_isa_ran, use_isa
from .inferer_reference import aggregate, reference_pair_scores
from .test_pair_corr import same_up_to_nan_payload

TOL = 1e-12
AGGS = ("mean", "max")


def make_case(P, B, N, seed, big=0):
    """Samples with correlated x / y, a constant node, an all-zero gradient node, and
    conditioning sets: empty, small, one with a duplicated column (its system fails
    with ridge 0), and with ``big`` > 0 one set of ``big`` members (the CPU's panel
    path). Returns (sums, n, ptr, idx, parents, x, y)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, B, N, generator=g, dtype=torch.float64) + 2.0
    y = torch.randn(P, B, N, generator=g, dtype=torch.float64) * 0.5
    y[:, :, 1:] += 0.6 * x[:, :, :-1]
    x[:, :, 4] = x[:, :, 3]  # duplicated column: sets holding both fail
    x[0, :, 2] = 7.0  # constant: zero variance in pair 0
    y[-1, :, 5] = 0.0  # all-zero gradient node
    rng = np.random.default_rng(seed)
    parents = []
    for j in range(N):
        if j % 4 == 0:
            S = []
        elif j == 6:
            S = [3, 4]
        elif big and j == N - 1:
            S = sorted(rng.choice(np.arange(N - 1), size=big, replace=False).tolist())
        else:
            S = sorted(rng.choice([i for i in range(N) if i != j], size=1 + j % 3, replace=False))
        parents.append([int(i) for i in S if i != j])
    sizes = [len(S) for S in parents]
    ptr = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.int64)
    idx = torch.tensor([i for S in parents for i in S], dtype=torch.int64)
    sums = (
        x.sum(1),
        y.sum(1),
        (x * x).sum(1),
        (y * y).sum(1),
        torch.einsum("pbi,pbj->pij", x, y),
        torch.einsum("pbi,pbj->pij", x, x),
    )
    return sums, float(B), ptr, idx, parents, x, y


def compose(sums, ptr, idx, n, ridge, tol, agg, per_pair):
    """The op's result composed from pair_corr (moments and plain corr), torch ops
    (covariances, the zero-variance rule) and partial_corr (the systems), one pair at a
    time, folded by torch ops: the same rounded operations in the same order."""
    sum_xy = sums[4]

    def scores():
        for p in range(sum_xy.shape[0]):
            corr, mean_x, mean_y, var_x, var_y, cov_xy, cov_xx = pair_moments(sums, p, n, tol)
            nan = torch.full_like(var_x, float("nan"))
            var_x = torch.where(var_x <= tol * (mean_x * mean_x), nan, var_x)
            var_y = torch.where(var_y <= tol * (mean_y * mean_y), nan, var_y)
            yield partial_corr(
                corr[None], cov_xy[None], cov_xx[None], var_x[None], var_y[None], ptr, idx,
                ridge, tol,
            )[0]  # fmt: skip

    code = {"mean": 0, "max": 1}[agg]
    return fold_pairs(scores(), sum_xy.shape[0], sum_xy.shape[-1], sum_xy.device, code, per_pair)


@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("per_pair", [True, False])
@pytest.mark.parametrize("ridge", [0.0, 1e-8])
@pytest.mark.parametrize("isa", ISAS)
def test_equals_composition_bit_for_bit(monkeypatch, agg, per_pair, ridge, isa):
    """Every SIMD variant (GSNN_FAST_ISA caps it: the corr rows and the systems; the
    one that ran is checked) gives the bits of the composition."""
    use_isa(monkeypatch, isa)
    for P, B, N, big in [(1, 7, 9, 0), (3, 40, 30, 0), (2, 120, 90, 70)]:
        sums, n, ptr, idx, *_ = make_case(P, B, N, seed=P + N, big=big)
        got = pair_partial_corr(*sums, ptr, idx, n, ridge, TOL, agg, per_pair)
        require_isa_ran("pair_partial_corr", isa)
        want = compose(sums, ptr, idx, n, ridge, TOL, agg, per_pair)
        for a, b in zip(got, want):
            assert a.shape == b.shape and a.is_contiguous()
            assert same_up_to_nan_payload(a, b), (P, N, agg, per_pair, ridge)
        nan = torch.isnan(got[1])
        assert (bits(got[1])[nan] == 0x7FF8000000000000).all()  # canonical NaN
        if per_pair:
            assert torch.isnan(got[0][:, :, 6]).all() or ridge > 0  # duplicated parents


@pytest.mark.parametrize("agg", AGGS)
def test_matches_float64_reference(agg):
    sums, n, ptr, idx, parents, x, y = make_case(3, 60, 24, seed=5)
    pairs, out = pair_partial_corr(*sums, ptr, idx, n, 1e-8, TOL, agg, True)
    # the reference pairs activation layer p with gradient layer p + 1: (L, n, N)
    X = np.concatenate([x.numpy(), np.zeros_like(x.numpy()[:1])])
    Y = np.concatenate([np.zeros_like(y.numpy()[:1]), y.numpy()])
    want = reference_pair_scores(X, Y, parents, "partial", 1e-8)
    got = pairs.numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.numpy(), aggregate(want, agg), rtol=0, atol=1e-10)


def test_independent_of_thread_count():
    sums, n, ptr, idx, *_ = make_case(2, 50, 80, seed=3, big=66)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pair_partial_corr(*sums, ptr, idx, n, 1e-8, TOL, "max", True)
        torch.set_num_threads(max(2, old))
        many = pair_partial_corr(*sums, ptr, idx, n, 1e-8, TOL, "max", True)
    finally:
        torch.set_num_threads(old)
    for a, b in zip(one, many):
        assert torch.equal(bits(a), bits(b))


def test_argument_errors():
    sums, n, ptr, idx, *_ = make_case(2, 10, 8, seed=1)
    sx, sy, sx2, sy2, sxy, sxx = sums
    with pytest.raises(RuntimeError, match="pair_partial_corr: sum_xx must have the shape"):
        pair_partial_corr(sx, sy, sx2, sy2, sxy, sxx[:, :, :-1], ptr, idx, n, 0.0, TOL)
    with pytest.raises(RuntimeError, match="pair_partial_corr: ridge"):
        pair_partial_corr(*sums, ptr, idx, n, -1.0, TOL)
    with pytest.raises(RuntimeError, match="pair_partial_corr: n"):
        pair_partial_corr(*sums, ptr, idx, 0.0, 0.0, TOL)
    with pytest.raises(RuntimeError, match="pair_partial_corr: sum_y must have shape"):
        pair_partial_corr(sx, sy[:, :-1], sx2, sy2, sxy, sxx, ptr, idx, n, 0.0, TOL)
    with pytest.raises(RuntimeError, match="pair_partial_corr: ptr must be"):
        pair_partial_corr(*sums, ptr[:-1], idx, n, 0.0, TOL)
    bad = idx.clone()
    bad[0] = 99
    with pytest.raises(RuntimeError, match=r"pair_partial_corr: idx\[0\] = 99 is out of range"):
        pair_partial_corr(*sums, ptr, bad, n, 0.0, TOL)
    with pytest.raises(ValueError, match="agg"):
        pair_partial_corr(*sums, ptr, idx, n, 0.0, TOL, "median")


@pytest.mark.parametrize("ridge", [0.0, 1e-8])
@pytest.mark.parametrize("isa", ISAS)
def test_entries_equal_the_per_pair_scores(monkeypatch, ridge, isa):
    """pair_partial_corr_entries at any entries: the bits of per_pair there, for empty,
    small, failing (duplicated column with ridge 0) and big (panel path) sets, zero
    variances, i == j and i in S; entries in any order, repeated."""
    use_isa(monkeypatch, isa)
    sums, n, ptr, idx, parents, *_ = make_case(3, 60, 90, seed=4, big=70)
    pairs, _ = pair_partial_corr(*sums, ptr, idx, n, ridge, TOL, "mean", True)
    require_isa_ran("pair_partial_corr", isa)
    rng = np.random.default_rng(0)
    N = 90
    src = rng.integers(0, N, 600)
    dst = rng.integers(0, N, 600)
    # every source of the big target, the diagonal and a parent of each target
    src = np.concatenate([src, np.arange(N), np.arange(N), [S[0] for S in parents if S]])
    dst = np.concatenate(
        [dst, np.full(N, N - 1), np.arange(N), [j for j, S in enumerate(parents) if S]]
    )
    src = np.concatenate([src, src[:50]])  # repeated entries
    dst = np.concatenate([dst, dst[:50]])
    vals = pair_partial_corr_entries(
        *sums, ptr, idx, n, ridge, TOL, torch.from_numpy(src), torch.from_numpy(dst)
    )
    assert vals.shape == (3, src.size)
    want = pairs[:, torch.from_numpy(src), torch.from_numpy(dst)]
    assert torch.equal(bits(vals), bits(want))
    assert torch.isnan(vals).any() and torch.isfinite(vals).sum() > src.size


@pytest.mark.parametrize("agg", ["mean", "max"])
@pytest.mark.parametrize("isa", ISAS)
def test_keep_big_columns_equal_the_per_pair_scores(monkeypatch, agg, isa):
    """pair_partial_corr_keep_big: pair_partial_corr's aggregate, the targets with big
    sets (>= 64 members, ascending) and the bits of per_pair in their columns; none
    when no set is big."""
    use_isa(monkeypatch, isa)
    for big in (70, 0):
        sums, n, ptr, idx, *_ = make_case(3, 60, 90, seed=4, big=big)
        pairs, want_agg = pair_partial_corr(*sums, ptr, idx, n, 1e-8, TOL, agg, True)
        got_agg, targets, cols = pair_partial_corr_keep_big(*sums, ptr, idx, n, 1e-8, TOL, agg)
        require_isa_ran("pair_partial_corr", isa)
        assert torch.equal(bits(got_agg), bits(want_agg))
        want_t = torch.nonzero(ptr[1:] - ptr[:-1] >= 64).flatten()
        assert torch.equal(targets, want_t) and targets.numel() == int(big > 0)
        assert cols.shape == (3, targets.numel(), 90)
        assert torch.equal(bits(cols), bits(pairs[:, :, targets].permute(0, 2, 1)))
    with pytest.raises(RuntimeError, match="pair_partial_corr_keep_big: ridge"):
        pair_partial_corr_keep_big(*sums, ptr, idx, n, -1.0, TOL)
    with pytest.raises(RuntimeError, match="pair_partial_corr_keep_big: ptr must be"):
        pair_partial_corr_keep_big(*sums, ptr[:-1], idx, n, 0.0, TOL)


def test_entries_argument_errors():
    sums, n, ptr, idx, *_ = make_case(2, 10, 8, seed=1)
    ok = torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match=r"pair_partial_corr_entries: entry 1 \(9, 1\)"):
        pair_partial_corr_entries(*sums, ptr, idx, n, 0.0, TOL, torch.tensor([0, 9]), ok)
    with pytest.raises(RuntimeError, match="pair_partial_corr_entries: src and dst must be 1-d"):
        pair_partial_corr_entries(*sums, ptr, idx, n, 0.0, TOL, ok, torch.tensor([0]))
    with pytest.raises(RuntimeError, match="pair_partial_corr_entries: src and dst must be int64"):
        pair_partial_corr_entries(*sums, ptr, idx, n, 0.0, TOL, ok.int(), ok)
    with pytest.raises(RuntimeError, match="pair_partial_corr_entries: ridge"):
        pair_partial_corr_entries(*sums, ptr, idx, n, -1.0, TOL, ok, ok)
    with pytest.raises(RuntimeError, match="pair_partial_corr_entries: ptr must be"):
        pair_partial_corr_entries(*sums, ptr[:-1], idx, n, 0.0, TOL, ok, ok)
    empty = torch.empty(0, dtype=torch.int64)
    assert pair_partial_corr_entries(*sums, ptr, idx, n, 0.0, TOL, empty, empty).shape == (2, 0)


def _gaussian_sums(P, B, N, seed):
    """The six sums of B Gaussian samples of N nodes, P pairs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, B, N, generator=g, dtype=torch.float64)
    y = torch.randn(P, B, N, generator=g, dtype=torch.float64)
    return (
        x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1),
        torch.einsum("pbi,pbj->pij", x, y), torch.einsum("pbi,pbj->pij", x, x),
    )  # fmt: skip


@pytest.mark.parametrize("per_pair", [True, False])
def test_opcheck(per_pair):
    # no zero variances and no failing systems: opcheck compares with assert_close
    P, B, N = 2, 12, 6
    sums = _gaussian_sums(P, B, N, seed=2)
    ptr = torch.tensor([0, 0, 1, 3, 3, 4, 5])
    idx = torch.tensor([0, 0, 1, 2, 1])
    pairs, out = pair_partial_corr(*sums, ptr, idx, float(B), 1e-8, TOL, "mean", True)
    # NaN only where the spec puts it: i in S_j and i == j for the 4 targets with a set
    assert torch.isnan(pairs).sum() == P * (5 + 4)
    for agg in (0, 1):
        torch.library.opcheck(
            torch.ops.gsnn_fast.pair_partial_corr.default,
            (*sums, ptr, idx, float(B), 1e-8, TOL, agg, per_pair),
            test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
        )


def test_opcheck_keep_big():
    # one big set (64 members, target 69): the number of kept columns depends on the data
    P, B, N = 2, 80, 70
    sums = _gaussian_sums(P, B, N, seed=3)
    ptr = torch.tensor([0] * N + [64])
    idx = torch.arange(64)
    for agg in (0, 1):
        torch.library.opcheck(
            torch.ops.gsnn_fast.pair_partial_corr_keep_big.default,
            (*sums, ptr, idx, float(B), 1e-8, TOL, agg),
            test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
        )


@pytest.mark.parametrize("per_pair", [True, False])
def test_cuda_matches_cpu_bit_for_bit(per_pair):
    require_cuda()
    for P, B, N, big in [(3, 50, 100, 70), (2, 33, 130, 150), (1, 7, 9, 0), (0, 5, 6, 0)]:
        sums, n, ptr, idx, *_ = make_case(max(P, 1), B, N, seed=8 + N, big=big)
        if P == 0:
            sums = tuple(s[:0] for s in sums)
        for agg in AGGS:
            for ridge in (0.0, 1e-8):
                cpu = pair_partial_corr(*sums, ptr, idx, n, ridge, TOL, agg, per_pair)
                gpu = pair_partial_corr(
                    *(s.cuda() for s in sums), ptr.cuda(), idx.cuda(), n, ridge, TOL, agg,
                    per_pair,
                )  # fmt: skip
                for a, b in zip(cpu, gpu):
                    assert b.device.type == "cuda"
                    assert torch.equal(bits(a), bits(b.cpu())), (P, N, agg, ridge, per_pair)
