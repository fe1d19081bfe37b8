"""Edge inference on a user's own network and data (``gsnn-fast infer``), and the joint
GSNN + online-regressor training loop that ``gsnn-fast demo`` shares.

Main entry point: :func:`infer_edges` (returns an :class:`InferResult` with the
candidate frame and the trained objects); :func:`load_run` reloads a written run.
"""

from __future__ import annotations

from .config import InferConfig
from .data import PreparedData, prepare_data
from .reload import load_run
from .run import InferResult, infer_edges
from .training import EpochRecord, TrainHistory, batch_loader, train_joint

__all__ = [
    "EpochRecord",
    "InferConfig",
    "InferResult",
    "PreparedData",
    "TrainHistory",
    "batch_loader",
    "infer_edges",
    "load_run",
    "prepare_data",
    "train_joint",
]
