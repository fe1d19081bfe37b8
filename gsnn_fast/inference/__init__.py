"""Tier-0 function -> function edge inference from activation/gradient magnitudes."""

from __future__ import annotations

from .completion_edge_scorer import CompletionEdgeScorer
from .gradient_edge_scorer import GradientEdgeScorer
from .magnitude_edge_inferer import MagnitudeEdgeInferer, ScoreMatrices
from .magnitude_edge_regressor import MagnitudeEdgeRegressor

__all__ = [
    "CompletionEdgeScorer",
    "GradientEdgeScorer",
    "MagnitudeEdgeInferer",
    "MagnitudeEdgeRegressor",
    "ScoreMatrices",
]
