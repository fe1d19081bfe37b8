"""``gsnn_fast::pair_stats_update``: the streaming statistics of the layer pairs."""

from __future__ import annotations

import torch

from . import _extension  # noqa: F401  (loads the extension: the op schemas)


@torch.library.register_fake("gsnn_fast::pair_stats_update")
def _pair_stats_update_fake(xmag, ymag, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx):
    torch._check(xmag.dim() == 3, lambda: "pair_stats_update: xmag must be (L, B, N)")
    torch._check(ymag.shape == xmag.shape, lambda: "pair_stats_update: ymag must match xmag")
    return None


def pair_stats_update(
    xmag: torch.Tensor,
    ymag: torch.Tensor,
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    sum_xx: torch.Tensor | None = None,
) -> None:
    """Adds one batch to the streaming sums of the P = L - 1 layer pairs, in place.

    Pair p couples activation layer p with gradient layer p + 1.

    Args:
        xmag: (L, B, N) float64 activation magnitudes (L >= 1; L = 1 has no pair).
        ymag: (L, B, N) float64 gradient magnitudes, on xmag's device.
        sum_x, sum_x2: [P, N] float64, ``+= sum_b xmag[p, b, i]`` and its square.
        sum_y, sum_y2: [P, N] float64, ``+= sum_b ymag[p + 1, b, j]`` and its square.
        sum_xy: [P, N, N] float64, ``[p, i, j] += sum_b xmag[p, b, i] * ymag[p + 1, b, j]``.
        sum_xx: optional [P, N, N] float64, ``[p, i, k] += sum_b xmag[p, b, i] * xmag[p, b, k]``;
            None skips it.

    The accumulators must be contiguous float64 on xmag's device (non-contiguous
    xmag / ymag are copied). Every output element sums its batch partial from 0.0 in
    ascending b (product rounded, then added; no fma) and adds it once to the
    accumulator, so the result is bit-identical on CPU and CUDA and independent of
    the number of threads; a NaN sum is stored as the canonical quiet NaN.
    """
    torch.ops.gsnn_fast.pair_stats_update.default(
        xmag, ymag, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx
    )
