"""Typed wrappers around the gsnn_fast::* torch ops, and their fake (meta) kernels.

Importing this module loads the compiled extension ``gsnn_fast._C``, whose static
initialisers register the op schemas (csrc/ops.cpp) and the CPU (and, in CUDA
builds, CUDA) kernels with the dispatcher. Every op is deterministic: CPU and CUDA
give the same bits for the same inputs (see csrc/include/gsnn_fast/*.h).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _C

#: Magnitude reductions of a node's channel vector v, by name -> op code.
#: 'l1' and 'sum' are the same reduction (sum |v|).
MAG_MODES: dict[str, int] = {"l1": 0, "sum": 0, "l2": 1, "max": 2, "mean": 3}


def build_info() -> dict:
    """What the extension was built with: ``cuda`` (bool), the parity-relevant
    ``cxx_flags`` / ``nvcc_flags``, the host ``compiler``, and torch's versions."""
    info = dict(_C.build_info())
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    return info


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
