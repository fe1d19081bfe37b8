"""Temporary alias of :mod:`gsnn_fast.ops` while its users move over (to be removed)."""

from __future__ import annotations

from .ops import (  # noqa: F401
    LAYER_AGGS,
    MAG_MODES,
    ZERO_VAR_RULES,
    argsort_stable,
    bh_q_grouped,
    build_info,
    frame_order,
    pair_corr,
    pair_partial_corr,
    pair_stats_update,
    partial_corr,
    segment_magnitude,
    top_k_rows,
)
from .ops.frame import argsort_stable_torch  # noqa: F401
