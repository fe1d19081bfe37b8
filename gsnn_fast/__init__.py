"""gsnn_fast: fast, exact Graph Structured Neural Networks and Tier-0 edge inference.

Drop-in for the pure-torch ``gsnn`` library (see the README's import table). The
kernels behind it (``gsnn_fast._C``) give bit-identical results on CPU and CUDA.
"""

from __future__ import annotations

from . import sparse  # noqa: F401  (registers the sparse-linear autograd and fakes)
from .data import GraphData, nx2pyg, pyg2nx, simulate
from .inference import (
    CompletionEdgeScorer,
    GradientEdgeScorer,
    MagnitudeEdgeInferer,
    MagnitudeEdgeRegressor,
)
from .models import GSNN, ResBlock, SparseLinear
from .ops import build_info

__version__ = "0.1.0"
__all__ = [
    "CompletionEdgeScorer",
    "GSNN",
    "GradientEdgeScorer",
    "GraphData",
    "MagnitudeEdgeInferer",
    "MagnitudeEdgeRegressor",
    "ResBlock",
    "SparseLinear",
    "build_info",
    "nx2pyg",
    "pyg2nx",
    "simulate",
]
