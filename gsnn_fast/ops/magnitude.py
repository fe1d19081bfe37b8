"""``gsnn_fast::segment_magnitude``: per-node magnitudes of channel segments."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _extension  # noqa: F401  (loads the extension: the op schemas)

#: Magnitude reductions of a node's channel vector v, by name -> op code.
#: 'l1' and 'sum' are the same reduction (sum |v|).
MAG_MODES: dict[str, int] = {"l1": 0, "sum": 0, "l2": 1, "max": 2, "mean": 3}


@torch.library.register_fake("gsnn_fast::segment_magnitude")
def _segment_magnitude_fake(x, ptr, modes):
    torch._check(x.dim() == 3, lambda: "segment_magnitude: x must be (L, B, C)")
    torch._check(ptr.dim() == 1, lambda: "segment_magnitude: ptr must be 1-d")
    return x.new_empty((len(modes), x.shape[0], x.shape[1], ptr.shape[0] - 1), dtype=torch.float64)


def segment_magnitude(x: torch.Tensor, ptr: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """Per-node magnitudes of channel segments, all layers and reductions at once.

    Args:
        x: (L, B, C) float32 or float64 activations or gradients.
        ptr: (N + 1,) int64 offsets on x's device; node n owns channels
            ``[ptr[n], ptr[n+1])``.
        modes: K names from :data:`MAG_MODES` ('l1'/'sum' = sum|v|, 'l2' = sqrt(sum v^2),
            'max' = max|v|, 'mean' = mean|v|).

    Returns:
        (K, L, B, N) float64. Channels are summed in ascending order in float64;
        an empty segment gives 0; the result is bit-identical on CPU and CUDA.
    """
    codes = []
    for m in modes:
        if m not in MAG_MODES:
            raise ValueError(f"modes: unknown reduction {m!r}; options are {sorted(MAG_MODES)}")
        codes.append(MAG_MODES[m])
    return torch.ops.gsnn_fast.segment_magnitude.default(x, ptr, codes)
