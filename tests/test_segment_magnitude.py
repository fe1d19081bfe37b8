"""gsnn_fast::segment_magnitude against a float64 numpy reference, opcheck, CUDA parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast.ops import segment_magnitude

from .conftest import bits, require_cuda, wide_range

MODES = ["l1", "l2", "max", "mean"]
# Segment lengths at the edges that matter: empty, one channel, around a warp (32), and
# a long one.
LENGTHS = [0, 1, 31, 32, 33, 1025, 3]


def _ptr(lengths):
    return torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)


def _reference(x: np.ndarray, ptr: np.ndarray, modes) -> np.ndarray:
    """Independent float64 reference: numpy reductions per segment."""
    L, B, _ = x.shape
    N = len(ptr) - 1
    out = np.zeros((len(modes), L, B, N))
    a = np.abs(x.astype(np.float64))
    for n in range(N):
        seg = a[:, :, ptr[n] : ptr[n + 1]]
        if seg.shape[2] == 0:
            continue
        for k, m in enumerate(modes):
            if m in ("l1", "sum"):
                out[k, :, :, n] = seg.sum(-1)
            elif m == "l2":
                out[k, :, :, n] = np.sqrt((seg**2).sum(-1))
            elif m == "max":
                out[k, :, :, n] = seg.max(-1)
            else:
                out[k, :, :, n] = seg.mean(-1)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_float64_reference(device, dtype):
    g = torch.Generator().manual_seed(0)
    ptr = _ptr(LENGTHS)
    x = wide_range((3, 5, int(ptr[-1]) + 4), g, dtype)  # 4 trailing channels owned by nobody
    out = segment_magnitude(x.to(device), ptr.to(device), MODES).cpu()
    assert out.shape == (4, 3, 5, len(LENGTHS)) and out.dtype == torch.float64
    ref = _reference(x.numpy(), ptr.numpy(), MODES)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-13, atol=0)
    # max and the empty segment are exact
    np.testing.assert_array_equal(out[2].numpy(), ref[2])
    assert (out[:, :, :, 0] == 0).all()


def test_l1_and_sum_share_bits_and_mean_is_sum_over_count():
    g = torch.Generator().manual_seed(1)
    ptr = _ptr([5, 7, 1])
    x = torch.randn(2, 3, 13, generator=g, dtype=torch.float64)
    out = segment_magnitude(x, ptr, ["l1", "sum", "mean"])
    assert torch.equal(bits(out[0]), bits(out[1]))
    counts = torch.tensor([5.0, 7.0, 1.0], dtype=torch.float64)
    assert torch.equal(bits(out[2]), bits(out[0] / counts))


def test_summation_order_is_ascending():
    # 1 + 2^-53 + 2^-53 summed left to right stays 1; any other order gives 1 + 2^-52.
    x = torch.tensor([[[1.0, 2.0**-53, 2.0**-53]]], dtype=torch.float64)
    out = segment_magnitude(x, _ptr([3]), ["l1"])
    assert out.item() == 1.0


def test_nan_and_inf_propagate():
    x = torch.tensor([[[1.0, float("nan"), 3.0, 2.0, float("-inf"), 1.0]]], dtype=torch.float64)
    out = segment_magnitude(x, _ptr([3, 3]), MODES)[:, 0, 0]
    assert torch.isnan(out[:, 0]).all()
    # one NaN bit pattern (positive quiet NaN), whatever NaN came in: CPU == CUDA bits
    assert (bits(out[:, 0]) == 0x7FF8000000000000).all()
    neg_nan = torch.from_numpy(np.array([0xFFF8000000000123], dtype=np.uint64).view(np.float64))
    x2 = torch.cat([neg_nan, torch.ones(2, dtype=torch.float64)]).view(1, 1, 3)
    assert (bits(segment_magnitude(x2, _ptr([3]), MODES)) == 0x7FF8000000000000).all()
    assert torch.isinf(out[:, 1]).all() and (out[:, 1] > 0).all()


def test_empty_and_degenerate_shapes(device):
    for L, B, C, lengths in [(0, 4, 6, [6]), (2, 0, 6, [6]), (2, 3, 0, [0, 0]), (1, 1, 1, [1])]:
        x = torch.randn(L, B, C, dtype=torch.float64, device=device)
        out = segment_magnitude(x, _ptr(lengths).to(device), ["l2", "max"])
        assert out.shape == (2, L, B, len(lengths))
    x = torch.randn(1, 2, 4, dtype=torch.float64, device=device)
    assert segment_magnitude(x, torch.zeros(1, dtype=torch.int64, device=device), ["l1"]).shape == (
        1,
        1,
        2,
        0,
    )


def test_non_contiguous_input(device):
    g = torch.Generator().manual_seed(2)
    base = torch.randn(5, 3, 12, generator=g, dtype=torch.float64)
    x = base.transpose(0, 1)  # (3, 5, 12), non-contiguous
    ptr = _ptr([4, 8])
    out = segment_magnitude(x.to(device), ptr.to(device), ["l2"]).cpu()
    ref = segment_magnitude(x.contiguous(), ptr, ["l2"])
    assert torch.equal(bits(out), bits(ref))


def test_bad_arguments(device):
    """The same clear errors on both devices (CUDA checks ptr on a host copy)."""
    x = torch.randn(2, 3, 4).to(device)

    def ptr(*v, dtype=torch.int64):
        return torch.tensor(v, dtype=dtype).to(device)

    with pytest.raises(ValueError, match="modes"):
        segment_magnitude(x, ptr(0, 4), ["l3"])
    with pytest.raises(RuntimeError, match="x must be"):
        segment_magnitude(x[0], ptr(0, 4), ["l1"])
    with pytest.raises(RuntimeError, match=r"ptr must be non-decreasing \(ptr\[1\] = 3 > ptr"):
        segment_magnitude(x, ptr(0, 3, 2), ["l1"])
    with pytest.raises(RuntimeError, match=r"ptr\[0\] must be 0, got 1"):
        segment_magnitude(x, ptr(1, 3), ["l1"])
    with pytest.raises(RuntimeError, match="ptr\\[N\\] = 5 exceeds the 4 channels"):
        segment_magnitude(x, ptr(0, 5), ["l1"])
    with pytest.raises(RuntimeError, match="int64"):
        segment_magnitude(x, ptr(0, 4, dtype=torch.int32), ["l1"])
    with pytest.raises(RuntimeError, match="float32 or float64"):
        segment_magnitude(x.half(), ptr(0, 4), ["l1"])


def test_changed_ptr_is_checked_again(device):
    """A ptr that passed is checked again after an in-place change (on CUDA the check
    remembers unmodified index tensors)."""
    x = torch.randn(2, 3, 4).to(device)
    ptr = torch.tensor([0, 2, 4]).to(device)
    segment_magnitude(x, ptr, ["l1"])
    segment_magnitude(x, ptr, ["l1"])
    ptr[2] = 9
    with pytest.raises(RuntimeError, match="exceeds"):
        segment_magnitude(x, ptr, ["l1"])


def test_opcheck(device):
    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 4, 20, generator=g, dtype=dtype).to(device)
        ptr = _ptr([0, 1, 7, 12]).to(device)
        torch.library.opcheck(torch.ops.gsnn_fast.segment_magnitude.default, (x, ptr, [0, 1, 2, 3]))


def test_cuda_parity_bit_for_bit():
    require_cuda()
    g = torch.Generator().manual_seed(4)
    ptr = _ptr(LENGTHS * 3)
    for dtype in (torch.float32, torch.float64):
        x = wide_range((4, 7, int(ptr[-1])), g, dtype)
        x[0, 0, 5] = float("nan")
        x[1, 2, 40] = float("inf")
        cpu = segment_magnitude(x, ptr, MODES)
        gpu = segment_magnitude(x.cuda(), ptr.cuda(), MODES)
        assert torch.equal(bits(cpu), bits(gpu))
