"""The gsnn_fast::* torch ops: typed wrappers and fake (meta) kernels, one module per
op family.

Importing this package loads the compiled extension ``gsnn_fast._C`` (its static
initialisers register the op schemas and the CPU and, in CUDA builds, CUDA kernels
with the dispatcher, which picks the kernel from the tensors' device). Every op is
deterministic, and its CPU and CUDA kernels give the same bits for the same inputs
(csrc/include/gsnn_fast/*.h state each op's order of rounded operations).

- :mod:`.magnitude`: ``segment_magnitude``.
- :mod:`.statistics`: ``pair_stats_update``.
- :mod:`.correlation`: ``pair_corr``, ``partial_corr``, ``pair_partial_corr``,
  ``pair_partial_corr_keep_big``, ``pair_partial_corr_entries``.
- :mod:`.frame`: host-only helpers of result frames (``argsort_stable``,
  ``frame_order``, ``bh_q_grouped``, ``top_k_rows``).
- the sparse linear layer's ops live with their autograd in :mod:`gsnn_fast.sparse`.
"""

from __future__ import annotations

from ._extension import build_info, check_torch_matches, extension, isa_ran
from .correlation import (
    LAYER_AGGS,
    ZERO_VAR_RULES,
    pair_corr,
    pair_partial_corr,
    pair_partial_corr_entries,
    pair_partial_corr_keep_big,
    partial_corr,
)
from .frame import argsort_stable, bh_q_grouped, frame_order, top_k_rows
from .magnitude import MAG_MODES, segment_magnitude
from .statistics import pair_stats_update

__all__ = [
    "LAYER_AGGS",
    "MAG_MODES",
    "ZERO_VAR_RULES",
    "argsort_stable",
    "bh_q_grouped",
    "build_info",
    "check_torch_matches",
    "extension",
    "frame_order",
    "isa_ran",
    "pair_corr",
    "pair_partial_corr",
    "pair_partial_corr_entries",
    "pair_partial_corr_keep_big",
    "pair_stats_update",
    "partial_corr",
    "segment_magnitude",
    "top_k_rows",
]
