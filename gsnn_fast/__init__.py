"""gsnn_fast: fast, exact Graph Structured Neural Networks and Tier-0 edge inference."""

from __future__ import annotations

from ._ops import build_info

__version__ = "0.1.0"
__all__ = ["build_info"]
