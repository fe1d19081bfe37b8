"""gsnn_fast::pair_corr: float64 numpy reference, the same rounded steps written in torch
bit for bit, NaN rules, max-agg ties, argument checks, opcheck, thread / SIMD-variant
independence, CUDA parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gsnn_fast.inference.torch_scoring import fold_pairs
from gsnn_fast.ops import pair_corr

from .conftest import ISAS, bits, require_cuda, require_isa_ran, use_isa, wide_range

TOL = 1e-12
NAN_BITS = 0x7FF8000000000000
KEYS = ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy")
RULES = ("relative", "absolute")
AGGS = ("mean", "max")


def sample_sums(P, B, M, N, seed, scale_exp=8):
    """Streaming sums of random samples: x [P, B, M], y [P, B, N], correlated, with
    per-node scales 2^[-scale_exp, scale_exp] and positive offsets (cancellation in
    sum2 / n - mean^2), plus a few constant nodes (zero variance). Returns (sums, n)."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    x = torch.randn(P, B, M, generator=g, dtype=f64)
    y = torch.randn(P, B, N, generator=g, dtype=f64)
    k = min(M, N)
    y[:, :, :k] += 0.7 * x[:, :, :k]
    sx = torch.pow(2.0, torch.randint(-scale_exp, scale_exp + 1, (P, 1, M), generator=g).to(f64))
    sy = torch.pow(2.0, torch.randint(-scale_exp, scale_exp + 1, (P, 1, N), generator=g).to(f64))
    x = x * sx + 3.0 * sx
    y = y * sy + 2.0 * sy
    if M > 2:
        x[0, :, 1] = 5.0  # constant: variance zero (relative rule)
    if N > 3:
        y[-1, :, 3] = 0.0  # all-zero column
    s = {
        "sum_x": x.sum(1),
        "sum_y": y.sum(1),
        "sum_x2": (x * x).sum(1),
        "sum_y2": (y * y).sum(1),
        "sum_xy": torch.einsum("pbi,pbj->pij", x, y),
    }
    return {k: v.contiguous() for k, v in s.items()}, float(B)


def garbage_sums(P, M, N, seed):
    """Unrelated wide-range sums: negative 'variances' (clamped to 0), huge / tiny
    ratios, |corr| far above 1 (clipped)."""
    g = torch.Generator().manual_seed(seed)
    s = {
        "sum_x": wide_range((P, M), g),
        "sum_y": wide_range((P, N), g),
        "sum_x2": wide_range((P, M), g),
        "sum_y2": wide_range((P, N), g),
        "sum_xy": wide_range((P, M, N), g),
    }
    return s, 7.0


def run(s, n, rule="relative", agg="mean", per_pair=True, device="cpu", tol=TOL):
    return pair_corr(*[s[k].to(device) for k in KEYS], n, tol, rule, agg, per_pair)


def numpy_reference(s, n, rule, agg, tol=TOL):
    """pair_corr in float64 numpy: moments, corr with NaN for zero variances, clip,
    NaN-ignoring mean / signed max-|.| (first pair on ties) over pairs."""
    sx, sy, sx2, sy2, sxy = (s[k].numpy() for k in KEYS)
    mx, my = sx / n, sy / n
    vx = np.maximum(sx2 / n - mx * mx, 0.0)
    vy = np.maximum(sy2 / n - my * my, 0.0)
    zx = vx <= (tol * (mx * mx) if rule == "relative" else tol)
    zy = vy <= (tol * (my * my) if rule == "relative" else tol)
    with np.errstate(all="ignore"):
        cov = sxy / n - mx[:, :, None] * my[:, None, :]
        corr = cov / np.sqrt(vx[:, :, None] * vy[:, None, :])
    corr[zx[:, :, None] | zy[:, None, :]] = np.nan
    corr = np.clip(corr, -1.0, 1.0)
    valid = ~np.isnan(corr)
    if agg == "mean":
        cnt = valid.sum(0)
        with np.errstate(all="ignore"):
            out = np.where(valid, corr, 0.0).sum(0) / cnt
    else:
        key = np.where(valid, np.abs(corr), -np.inf)
        first = np.argmax(key, axis=0)  # first pair among equal |corr|
        out = np.take_along_axis(corr, first[None], 0)[0]
        out[~valid.any(0)] = np.nan
    return corr, out


def torch_steps(s, n, rule, agg, per_pair, tol=TOL, cr_sqrt=True):
    """pair_corr as separate torch operations per pair, each rounded once, in the order
    the op performs them: ``mean = sum / n``, ``var = max(sum2 / n - mean^2, 0)``,
    ``cov = sum_xy / n - mean_x mean_y``, ``corr = cov / sqrt(var_x var_y)``, NaN where
    a variance counts as zero, clamp to [-1, 1], then the fold over pairs. With
    ``cr_sqrt`` the square root is numpy's correctly rounded one: torch's CPU sqrt of
    a large float64 tensor (MKL VML) is not correctly rounded (1 ulp off in ~1% of
    elements), while the op uses IEEE sqrt (__dsqrt_rn on CUDA) for CPU/CUDA parity."""
    P, N = s["sum_y"].shape
    M = s["sum_x"].shape[1]

    def scores():
        for p in range(P):
            mean_x = s["sum_x"][p] / n
            mean_y = s["sum_y"][p] / n
            var_x = torch.clamp(s["sum_x2"][p] / n - mean_x * mean_x, min=0.0)
            var_y = torch.clamp(s["sum_y2"][p] / n - mean_y * mean_y, min=0.0)
            if rule == "absolute":
                zx, zy = var_x <= tol, var_y <= tol
            else:
                zx, zy = var_x <= tol * (mean_x * mean_x), var_y <= tol * (mean_y * mean_y)
            cov_xy = s["sum_xy"][p] / n
            cov_xy.sub_(torch.outer(mean_x, mean_y))
            prod = torch.outer(var_x, var_y)
            denom = torch.from_numpy(np.sqrt(prod.numpy())) if cr_sqrt else prod.sqrt_()
            corr = cov_xy.div_(denom)
            corr.masked_fill_(zx[:, None] | zy[None, :], math.nan)
            yield corr.clamp_(-1.0, 1.0)

    assert M == N
    pairs, acc = fold_pairs(scores(), P, N, torch.device("cpu"), AGGS.index(agg), per_pair)
    return (pairs if per_pair else None), acc


def same_up_to_nan_payload(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-equal where numbers (-0.0 included), NaN at the same places."""
    na, nb = torch.isnan(a), torch.isnan(b)
    return torch.equal(na, nb) and torch.equal(bits(a)[~na], bits(b)[~nb])


def assert_canonical_nans(*ts):
    for t in ts:
        nan = torch.isnan(t)
        assert (bits(t)[nan] == NAN_BITS).all()


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("per_pair", [True, False])
def test_matches_numpy_reference(device, rule, agg, per_pair):
    for s, n in (sample_sums(3, 9, 21, 19, seed=0), garbage_sums(3, 21, 19, seed=1)):
        pp, out = run(s, n, rule, agg, per_pair, device)
        pp, out = pp.cpu(), out.cpu()
        ref_pp, ref_out = numpy_reference(s, n, rule, agg)
        assert out.shape == (21, 19) and out.dtype == torch.float64
        if per_pair:
            assert pp.shape == (3, 21, 19) and pp.dtype == torch.float64
            np.testing.assert_allclose(pp.numpy(), ref_pp, rtol=1e-13, atol=1e-15)
        else:
            assert pp.shape == (0,)
        np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-13, atol=1e-15)
        assert_canonical_nans(pp, out)
        assert np.isnan(ref_pp).any()  # zero variances were exercised


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("agg", AGGS)
def test_bit_identical_to_rounded_steps_in_torch(rule, agg):
    for s, n in (sample_sums(4, 13, 50, 50, seed=2), garbage_sums(4, 50, 50, seed=3)):
        pp, out = run(s, n, rule, agg, True)
        ref_pp, ref_out = torch_steps(s, n, rule, agg, True)
        assert same_up_to_nan_payload(pp, ref_pp)
        assert same_up_to_nan_payload(out, ref_out)
        _, out2 = run(s, n, rule, agg, False)
        assert torch.equal(bits(out2), bits(out))
        # with torch's own sqrt (not correctly rounded): the same NaN pattern, values
        # within a few ulp (of 1, for the cancellation in the mean)
        tp, to = torch_steps(s, n, rule, agg, True, cr_sqrt=False)
        for a, b in ((pp, tp), (out, to)):
            assert torch.equal(torch.isnan(a), torch.isnan(b))
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-15, atol=4e-16)


def test_zero_variance_rules():
    n = 4.0
    # node 0: mean 1, var 1 (fine); node 1: all zero (zero under both rules);
    # node 2: mean 1e3, var 2^-20 (exact): <= 1e-12 * mean^2 = 1e-6, so zero under
    # the relative rule, but > 1e-12, so fine under the absolute one
    first = torch.tensor([[4.0, 0.0, 4e3]], dtype=torch.float64)
    second = torch.tensor([[8.0, 0.0, n * (1e6 + 2.0**-20)]], dtype=torch.float64)
    s = {"sum_x": first, "sum_y": first.clone(), "sum_x2": second, "sum_y2": second.clone()}
    s["sum_xy"] = torch.full((1, 3, 3), 4.0, dtype=torch.float64)
    rel, _ = run(s, n, "relative")
    ab, _ = run(s, n, "absolute")
    # relative: rows / columns 1 and 2 NaN; absolute: only node 1 (var exactly 0)
    assert torch.equal(torch.isnan(rel[0]), torch.tensor([[0, 1, 1], [1, 1, 1], [1, 1, 1]]).bool())
    assert torch.equal(torch.isnan(ab[0]), torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]]).bool())
    assert_canonical_nans(rel, ab)


def _unit_pairs(values):
    """Sums whose corr[p, 0, 0] is exactly values[p]: mean 0, var 1, n = 4."""
    P = len(values)
    s = {
        "sum_x": torch.zeros(P, 1, dtype=torch.float64),
        "sum_y": torch.zeros(P, 1, dtype=torch.float64),
        "sum_x2": torch.full((P, 1), 4.0, dtype=torch.float64),
        "sum_y2": torch.full((P, 1), 4.0, dtype=torch.float64),
        "sum_xy": (4.0 * torch.tensor(values, dtype=torch.float64)).reshape(P, 1, 1),
    }
    return s, 4.0


@pytest.mark.parametrize(
    "values, mean, mx",
    [
        ([0.5, -0.5], 0.0, 0.5),  # tie: first pair
        ([-0.5, 0.5], 0.0, -0.5),
        ([-0.25, 0.5, -0.5], -0.25 / 3, 0.5),
        ([0.25, 3.0, -0.75], 0.5 / 3, 1.0),  # 3.0 clipped to 1
        ([-5.0, 0.0, 1.0], 0.0, -1.0),  # clipped -1 ties with 1: first
        ([float("nan"), -0.5, 0.5], 0.0, -0.5),  # NaN pair skipped
        ([float("nan"), float("nan")], math.nan, math.nan),  # all pairs NaN
    ],
)
def test_aggregation_ties_and_nan(device, values, mean, mx):
    s, n = _unit_pairs(values)
    pp, out_mean = run(s, n, agg="mean", device=device)
    _, out_max = run(s, n, agg="max", device=device)
    want = np.clip(np.array(values), -1.0, 1.0)
    np.testing.assert_array_equal(pp.cpu().numpy()[:, 0, 0], want)
    np.testing.assert_allclose(out_mean.cpu().item(), mean, rtol=1e-15, atol=1e-17)
    np.testing.assert_array_equal(out_max.cpu().item(), mx)
    assert_canonical_nans(pp, out_mean, out_max)


def test_nan_and_inf_inputs_give_canonical_nan():
    s, n = sample_sums(2, 7, 9, 11, seed=4)
    s["sum_xy"][0, 2, 3] = float("nan")
    s["sum_xy"][1, 2, 3] = -float("nan")
    s["sum_xy"][0, 4, 5] = float("inf")  # (inf - finite) / finite -> +inf -> clipped to 1
    s["sum_x"][1, 6] = float("nan")  # row 6 of pair 1 NaN
    s["sum_y2"][0, 7] = float("-inf")  # var -inf -> clamped to 0 -> zero variance
    for agg in AGGS:
        pp, out = run(s, n, agg=agg)
        assert torch.isnan(pp[:, 2, 3]).all() and torch.isnan(out[2, 3])
        assert pp[0, 4, 5] == 1.0
        assert torch.isnan(pp[1, 6]).all() and torch.isnan(pp[0, :, 7]).all()
        assert not torch.isnan(pp[0, 6]).all()
        assert_canonical_nans(pp, out)


def test_shapes_rectangular_empty_and_noncontiguous():
    s, n = sample_sums(2, 8, 5, 13, seed=5)
    pp, out = run(s, n)
    assert pp.shape == (2, 5, 13) and out.shape == (5, 13)
    ref_pp, ref_out = numpy_reference(s, n, "relative", "mean")
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-13, atol=1e-15)
    # non-contiguous inputs are copied first: same bits
    nc = {k: torch.stack([v, v], -1)[..., 0] for k, v in s.items()}
    assert not nc["sum_xy"].is_contiguous()
    pp2, out2 = run(nc, n)
    assert torch.equal(bits(pp2), bits(pp)) and torch.equal(bits(out2), bits(out))
    # N = 0, M = 0, P = 0 (aggregate over no pair: NaN)
    for P, M, N in ((2, 4, 0), (2, 0, 4), (0, 3, 2)):
        e = {
            "sum_x": torch.zeros(P, M, dtype=torch.float64),
            "sum_x2": torch.ones(P, M, dtype=torch.float64),
            "sum_y": torch.zeros(P, N, dtype=torch.float64),
            "sum_y2": torch.ones(P, N, dtype=torch.float64),
            "sum_xy": torch.zeros(P, M, N, dtype=torch.float64),
        }
        for agg in AGGS:
            pp, out = run(e, 5.0, agg=agg)
            assert pp.shape == (P, M, N) and out.shape == (M, N)
            assert torch.isnan(out).all()
            assert_canonical_nans(out)


def test_argument_errors():
    s, n = sample_sums(2, 5, 4, 4, seed=6)
    with pytest.raises(ValueError, match="rule"):
        run(s, n, rule="bogus")
    with pytest.raises(ValueError, match="agg"):
        run(s, n, agg="median")
    op = torch.ops.gsnn_fast.pair_corr.default
    args = [s[k] for k in KEYS]
    with pytest.raises(RuntimeError, match="unknown rule"):
        op(*args, n, TOL, 2, 0, True)
    with pytest.raises(RuntimeError, match="unknown agg"):
        op(*args, n, TOL, 0, 5, True)
    with pytest.raises(RuntimeError, match="n .the sample count"):
        op(*args, 0.0, TOL, 0, 0, True)
    with pytest.raises(RuntimeError, match="tol"):
        op(*args, n, -1.0, 0, 0, True)
    with pytest.raises(RuntimeError, match="tol"):
        op(*args, n, float("nan"), 0, 0, True)
    bad = dict(s, sum_y2=s["sum_y2"][:, :3])
    with pytest.raises(RuntimeError, match="sum_y2 must have shape"):
        run(bad, n)
    bad = dict(s, sum_x=s["sum_x"].float())
    with pytest.raises(RuntimeError, match="sum_x must be float64"):
        run(bad, n)
    bad = dict(s, sum_xy=s["sum_xy"][0])
    with pytest.raises(RuntimeError, match=r"sum_xy must be \[P, M, N\]"):
        run(bad, n)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("isa", ISAS)
def test_thread_count_and_simd_variant_independence(monkeypatch, isa):
    """Rows are split across threads and each row runs on AVX-512F / AVX2 / SSE2
    lanes with a scalar tail (N = 37: every vector width leaves one); every lane
    follows the scalar sequence, so each variant, on 1 or 2 threads, gives the bits of
    the baseline on one thread. The variant that ran is checked."""
    s, n = garbage_sums(3, 41, 37, seed=7)
    s2, _ = sample_sums(3, 11, 41, 37, seed=8)

    def all_outputs():
        out = [t for rule in RULES for agg in AGGS for t in run(s, n, rule, agg)]
        return out + [t for agg in AGGS for t in run(s2, 11.0, "relative", agg)]

    outs = []
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        use_isa(monkeypatch, "baseline")
        want = all_outputs()
        use_isa(monkeypatch, isa)
        for threads in (2, 1):
            torch.set_num_threads(threads)
            outs.append(all_outputs())
            require_isa_ran("pair_corr", isa)
    finally:
        torch.set_num_threads(old)
    for got in outs:
        for a, b in zip(want, got):
            assert torch.equal(bits(a), bits(b))


def test_unknown_simd_variant_is_an_error(monkeypatch):
    s, n = garbage_sums(1, 4, 5, seed=7)
    monkeypatch.setenv("GSNN_FAST_ISA", "bogus")
    with pytest.raises(RuntimeError, match="GSNN_FAST_ISA must be"):
        run(s, n)


@pytest.mark.parametrize("per_pair", [True, False])
def test_opcheck(device, per_pair):
    s, n = sample_sums(2, 9, 6, 6, seed=9)
    s = {k: v.clone() for k, v in s.items()}
    # opcheck compares outputs with assert_close (NaN != NaN): no zero variances here
    s["sum_x2"][0, 1] += 9.0  # the constant node gets variance 1
    s["sum_y2"][-1, 3] += 3.0  # the all-zero node gets variance 1/3
    args = [s[k].to(device) for k in KEYS]
    assert not torch.isnan(run(s, n)[0]).any()
    for agg in (0, 1):
        torch.library.opcheck(
            torch.ops.gsnn_fast.pair_corr.default, (*args, n, TOL, 0, agg, per_pair)
        )


def test_cuda_matches_cpu_bit_for_bit():
    require_cuda()
    cases = [garbage_sums(3, 45, 37, seed=10), sample_sums(4, 17, 65, 33, seed=11)]
    s, n = sample_sums(2, 9, 300, 257, seed=12)
    s["sum_xy"][0, 5, 7] = float("nan")
    cases.append((s, n))
    for s, n in cases:
        for rule in RULES:
            for agg in AGGS:
                for per_pair in (True, False):
                    cpu = run(s, n, rule, agg, per_pair)
                    gpu = run(s, n, rule, agg, per_pair, device="cuda")
                    for a, b in zip(cpu, gpu):
                        assert b.device.type == "cuda"
                        assert torch.equal(bits(a), bits(b)), (rule, agg, per_pair)
