"""Tier-0 function -> function edge inference from activation/gradient magnitudes."""

from __future__ import annotations

from .magnitude_edge_inferer import MagnitudeEdgeInferer, ScoreMatrices
from .magnitude_edge_regressor import MagnitudeEdgeRegressor

__all__ = ["MagnitudeEdgeInferer", "MagnitudeEdgeRegressor", "ScoreMatrices"]
