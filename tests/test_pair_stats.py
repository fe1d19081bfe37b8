"""gsnn_fast::pair_stats_update against float64 numpy references, opcheck, determinism,
CUDA parity.

Non-contiguous xmag / ymag are handled (copied); non-contiguous accumulators are
rejected (they are updated in place).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast.ops import pair_stats_update

from .conftest import bits, require_cuda, require_isa_ran, use_isa, wide_range

NAMES = ["sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx"]


def _zeros(L: int, N: int, device="cpu", xx: bool = True):
    P = L - 1
    acc = [torch.zeros(P, N, dtype=torch.float64, device=device) for _ in range(4)]
    acc.append(torch.zeros(P, N, N, dtype=torch.float64, device=device))
    acc.append(torch.zeros(P, N, N, dtype=torch.float64, device=device) if xx else None)
    return acc


def _random_acc(L: int, N: int, g: torch.Generator):
    P = L - 1
    acc = [wide_range((P, N), g) for _ in range(4)]
    acc.append(wide_range((P, N, N), g))
    xx = wide_range((P, N, N), g)
    acc.append(xx + xx.transpose(1, 2))  # symmetric, as the op keeps it
    return acc


def _ordered_reference(x: np.ndarray, y: np.ndarray, init: list) -> list:
    """The documented order, spelled in numpy: per element, the batch partial is summed
    from 0.0 in ascending b (elementwise numpy products and sums: one rounding each,
    no fma), then added once to the accumulator. Bit-exact by construction."""
    L, B, N = x.shape
    out = [None if a is None else a.copy() for a in init]
    for p in range(L - 1):
        part = [np.zeros(N) for _ in range(4)] + [np.zeros((N, N)), np.zeros((N, N))]
        for b in range(B):
            xb, yb = x[p, b], y[p + 1, b]
            part[0] = part[0] + xb
            part[1] = part[1] + yb
            part[2] = part[2] + xb * xb
            part[3] = part[3] + yb * yb
            part[4] = part[4] + np.multiply.outer(xb, yb)
            part[5] = part[5] + np.multiply.outer(xb, xb)
        for k in range(6):
            if out[k] is not None:
                out[k][p] = out[k][p] + part[k]
    return out


def _einsum_reference(x: np.ndarray, y: np.ndarray) -> list:
    """Order-free float64 reference (np.einsum), for tolerance comparisons."""
    xs, ys = x[:-1], y[1:]
    return [
        xs.sum(1),
        ys.sum(1),
        (xs**2).sum(1),
        (ys**2).sum(1),
        np.einsum("pbi,pbj->pij", xs, ys),
        np.einsum("pbi,pbk->pik", xs, xs),
    ]


def _assert_bits(got: list, ref: list):
    for name, a, r in zip(NAMES, got, ref):
        if r is None:
            assert a is None
            continue
        a = a.cpu().numpy()
        assert a.shape == r.shape, name
        assert np.array_equal(a.view(np.int64), r.view(np.int64)), name


# (L, B, N): B = 1, tile edges (the CPU tiles are 8 x 24 / 6 x 8 / 4 x 4, CUDA 64 x 64),
# N = 1 and odd sizes.
SHAPES = [(2, 1, 1), (3, 1, 7), (2, 5, 24), (3, 7, 25), (4, 13, 53), (2, 33, 97), (3, 17, 130)]


@pytest.mark.parametrize("shape", SHAPES)
def test_bit_exact_against_ordered_reference(device, shape):
    L, B, N = shape
    g = torch.Generator().manual_seed(sum(shape))
    x, y = wide_range((L, B, N), g), wide_range((L, B, N), g)
    init = _random_acc(L, N, g)
    ref = _ordered_reference(x.numpy(), y.numpy(), [a.numpy() for a in init])
    acc = [a.to(device) for a in init]
    pair_stats_update(x.to(device), y.to(device), *acc)
    _assert_bits(acc, ref)


def test_matches_einsum_reference_wide_range(device):
    # magnitudes are >= 0: no cancellation, so a tight relative tolerance holds
    g = torch.Generator().manual_seed(1)
    L, B, N = 4, 37, 61
    x, y = wide_range((L, B, N), g).abs(), wide_range((L, B, N), g).abs()
    acc = _zeros(L, N, device)
    pair_stats_update(x.to(device), y.to(device), *acc)
    for name, a, r in zip(NAMES, acc, _einsum_reference(x.numpy(), y.numpy())):
        np.testing.assert_allclose(a.cpu().numpy(), r, rtol=1e-13, atol=0, err_msg=name)


def test_order_partial_first_then_accumulator():
    # acc = 1; batch products 2^-53, 2^-53: the partial is 2^-52 and 1 + 2^-52 is exact.
    # Adding each product to the accumulator directly would leave 1.0.
    x = torch.tensor([[[2.0**-53], [2.0**-53]], [[1.0], [1.0]]], dtype=torch.float64)
    y = torch.ones(2, 2, 1, dtype=torch.float64)
    acc = [torch.ones(1, 1, dtype=torch.float64) for _ in range(4)]
    acc += [torch.ones(1, 1, 1, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64)]
    pair_stats_update(x, y, *acc)
    assert acc[0].item() == 1.0 + 2.0**-52  # sum_x
    assert acc[4].item() == 1.0 + 2.0**-52  # sum_xy
    # ascending b: 1 + 2^-53 + 2^-53 left to right stays 1
    x = torch.tensor([[[1.0], [2.0**-53], [2.0**-53]]] * 2, dtype=torch.float64)
    y = torch.ones(2, 3, 1, dtype=torch.float64)
    acc = _zeros(2, 1)
    pair_stats_update(x, y, *acc)
    assert acc[0].item() == 1.0 and acc[4].item() == 1.0


def test_nan_results_have_one_bit_pattern(device):
    # NaN from a NaN input (any payload, either sign) and from inf * 0 is stored as the
    # canonical quiet NaN 0x7ff8000000000000 (the hardware would differ: x86 vs CUDA).
    x = torch.ones(2, 3, 4, dtype=torch.float64)
    y = torch.ones(2, 3, 4, dtype=torch.float64)
    x[0, 1, 0] = -float("nan")
    x[0, 2, 1] = float("inf")
    y[1, 0, 2] = -float("nan")
    y[1, :, 3] = 0.0
    acc = _zeros(2, 4, device)
    pair_stats_update(x.to(device), y.to(device), *acc)
    canon = 0x7FF8000000000000
    for name, a in zip(NAMES, acc):
        b = bits(a)
        assert (b[torch.isnan(a.cpu())] == canon).all(), name
    assert torch.isnan(acc[4][0, 0]).all() and torch.isnan(acc[4][0, :, 2]).all()
    assert torch.isnan(acc[4][0, 1, 3])  # inf * 0
    assert torch.isfinite(acc[4][0, 2, :2]).all() and torch.isnan(acc[0][0, 0])


def test_accumulate_over_calls_equals_one_call(device):
    g = torch.Generator().manual_seed(2)
    L, N = 3, 45
    sizes = [1, 5, 17, 64, 2]
    xs = [wide_range((L, b, N), g).abs() for b in sizes]
    ys = [wide_range((L, b, N), g).abs() for b in sizes]
    many = _zeros(L, N, device)
    for x, y in zip(xs, ys):
        pair_stats_update(x.to(device), y.to(device), *many)
    one = _zeros(L, N, device)
    pair_stats_update(torch.cat(xs, 1).to(device), torch.cat(ys, 1).to(device), *one)
    for name, a, b in zip(NAMES, many, one):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-12, err_msg=name)


def test_track_xx_none_gives_the_same_other_sums(device):
    g = torch.Generator().manual_seed(3)
    L, B, N = 3, 9, 31
    x, y = wide_range((L, B, N), g).to(device), wide_range((L, B, N), g).to(device)
    with_xx, without = _zeros(L, N, device), _zeros(L, N, device, xx=False)
    pair_stats_update(x, y, *with_xx)
    pair_stats_update(x, y, *without)  # sum_xx=None
    assert without[5] is None
    for a, b in zip(with_xx[:5], without[:5]):
        assert torch.equal(bits(a), bits(b))
    # keyword form, the default
    kw = _zeros(L, N, device, xx=False)
    pair_stats_update(x, y, *kw[:5])
    assert torch.equal(bits(kw[4]), bits(with_xx[4]))


def test_sum_xx_stays_bitwise_symmetric(device):
    g = torch.Generator().manual_seed(4)
    L, B, N = 3, 11, 70
    acc = _zeros(L, N, device)
    for _ in range(2):
        pair_stats_update(
            wide_range((L, B, N), g).to(device), wide_range((L, B, N), g).to(device), *acc
        )
    assert torch.equal(bits(acc[5]), bits(acc[5].transpose(1, 2)))


def test_edge_shapes(device):
    g = torch.Generator().manual_seed(5)
    # N = 0, B = 0 (adds 0.0), L = 1 (no pair): no error, shapes kept
    for L, B, N in [(3, 4, 0), (2, 0, 3), (1, 4, 5)]:
        x = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(device)
        acc = _zeros(L, N, device)
        pair_stats_update(x, x, *acc)
        for a in acc:
            assert (a == 0).all()


def test_non_contiguous_inputs_are_handled(device):
    g = torch.Generator().manual_seed(6)
    base_x = wide_range((9, 3, 20), g)  # (B, L, N) storage
    base_y = wide_range((20, 3, 9), g)  # (N, L, B) storage
    x = base_x.transpose(0, 1).to(device)  # (L, B, N) views, non-contiguous
    y = base_y.permute(1, 2, 0).to(device)
    assert not x.is_contiguous() and not y.is_contiguous()
    a, b = _zeros(3, 20, device), _zeros(3, 20, device)
    pair_stats_update(x, y, *a)
    pair_stats_update(x.contiguous(), y.contiguous(), *b)
    for u, v in zip(a, b):
        assert torch.equal(bits(u), bits(v))


def test_non_contiguous_accumulators_are_rejected():
    x = torch.rand(2, 3, 4, dtype=torch.float64)
    acc = _zeros(2, 4)
    acc[4] = torch.zeros(1, 4, 4, dtype=torch.float64).transpose(1, 2)
    with pytest.raises(RuntimeError, match="sum_xy must be contiguous"):
        pair_stats_update(x, x, *acc)


def test_bad_arguments():
    x = torch.rand(3, 4, 5, dtype=torch.float64)
    good = _zeros(3, 5)
    with pytest.raises(RuntimeError, match="xmag must be float64"):
        pair_stats_update(x.float(), x, *good)
    with pytest.raises(RuntimeError, match=r"xmag must be \(L, B, N\)"):
        pair_stats_update(x[0], x[0], *good)
    with pytest.raises(RuntimeError, match="ymag must have xmag's shape"):
        pair_stats_update(x, x[:, :2], *good)
    with pytest.raises(RuntimeError, match="at least one layer"):
        pair_stats_update(x[:0], x[:0], *_zeros(1, 5))
    bad = list(good)
    bad[1] = torch.zeros(3, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="sum_y must have shape"):
        pair_stats_update(x, x, *bad)
    bad = list(good)
    bad[5] = torch.zeros(2, 5, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="sum_xx must have shape"):
        pair_stats_update(x, x, *bad)
    bad = list(good)
    bad[2] = bad[2].float()
    with pytest.raises(RuntimeError, match="sum_x2 must be float64"):
        pair_stats_update(x, x, *bad)


def test_deterministic_and_thread_count_independent():
    g = torch.Generator().manual_seed(7)
    L, B, N = 3, 23, 203
    x, y = wide_range((L, B, N), g), wide_range((L, B, N), g)
    init = _random_acc(L, N, g)
    runs = []
    old = torch.get_num_threads()
    try:
        for threads in (2, 2, 1):
            torch.set_num_threads(threads)
            acc = [a.clone() for a in init]
            pair_stats_update(x, y, *acc)
            runs.append(acc)
    finally:
        torch.set_num_threads(old)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(bits(a), bits(b))


@pytest.mark.parametrize("track_xx", [True, False])
def test_opcheck(device, track_xx):
    g = torch.Generator().manual_seed(8)
    L, B, N = 3, 6, 10
    x = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(device)
    y = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(device)
    acc = _zeros(L, N, device, xx=track_xx)
    torch.library.opcheck(torch.ops.gsnn_fast.pair_stats_update.default, (x, y, *acc))


def test_schema_declares_the_mutations():
    schema = torch.ops.gsnn_fast.pair_stats_update.default._schema
    mutated = [a.name for a in schema.arguments if a.alias_info and a.alias_info.is_write]
    assert mutated == NAMES
    assert len(schema.returns) == 0


def test_cuda_parity_bit_for_bit():
    require_cuda()
    g = torch.Generator().manual_seed(9)
    for L, B, N in [(2, 1, 1), (3, 33, 63), (4, 64, 64), (3, 17, 65), (2, 100, 257), (6, 64, 300)]:
        x, y = wide_range((L, B, N), g), wide_range((L, B, N), g)
        init = _random_acc(L, N, g)
        cpu = [a.clone() for a in init]
        gpu = [a.cuda() for a in init]
        for _ in range(2):  # two calls: accumulation on top of earlier sums
            pair_stats_update(x, y, *cpu)
            pair_stats_update(x.cuda(), y.cuda(), *gpu)
        for name, a, b in zip(NAMES, cpu, gpu):
            assert torch.equal(bits(a), bits(b)), (name, L, B, N)


@pytest.mark.parametrize("isa", ["avx512f", "avx2"])
def test_simd_variant_gives_the_baseline_bits(monkeypatch, isa):
    """The CPU products run as AVX-512F, AVX2 or baseline code (the widest the CPU
    runs, capped by GSNN_FAST_ISA); each variant gives the baseline's bits (tile shapes
    8 x 24, 6 x 8, 4 x 4: different edge handling). The variant that ran is checked."""
    g = torch.Generator().manual_seed(11)
    L, B, N = 3, 19, 77
    x, y = wide_range((L, B, N), g), wide_range((L, B, N), g)
    init = _random_acc(L, N, g)
    outs = {}
    for variant in ("baseline", isa):
        use_isa(monkeypatch, variant)
        outs[variant] = [a.clone() for a in init]
        pair_stats_update(x, y, *outs[variant])
        require_isa_ran("pair_stats_update", variant)
    for a, b in zip(outs[isa], outs["baseline"]):
        assert torch.equal(bits(a), bits(b)), isa


def test_unknown_simd_variant_is_an_error(monkeypatch):
    g = torch.Generator().manual_seed(11)
    x = wide_range((2, 3, 4), g)
    monkeypatch.setenv("GSNN_FAST_ISA", "bogus")
    with pytest.raises(RuntimeError, match="GSNN_FAST_ISA must be"):
        pair_stats_update(x, x, *_random_acc(2, 4, g))
