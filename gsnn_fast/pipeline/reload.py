"""Reloading a written run folder (``load_run``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .config import InferConfig
from .run import MODEL_FORMAT

__all__ = ["load_run"]


def load_run(out_dir: str | os.PathLike, device: str = "cpu") -> dict[str, Any]:
    """Reload a written run: ``{'model', 'data', 'regressor', 'inferer', 'config',
    'candidates', 'y_mean', 'y_std', 'x_mean', 'x_std'}``; the inferer has the run's
    statistics (``evaluate`` gives the run's scores without the data) unless the run was
    written with ``statistics=False``."""
    from ..data import GraphData
    from ..inference import MagnitudeEdgeInferer, MagnitudeEdgeRegressor
    from ..inference.statistics import load_statistics
    from ..models import GSNN

    out = Path(out_dir)
    ckpt = torch.load(out / "model.pt", map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != MODEL_FORMAT:
        raise ValueError(f"{str(out / 'model.pt')!r} is not a gsnn_fast model file")
    edge_index = {tuple(k.split("|")): v for k, v in ckpt["edge_index_dict"].items()}
    data = GraphData(edge_index, ckpt["node_names_dict"])
    kwargs = dict(ckpt["gsnn_kwargs"])
    nonlin = getattr(torch.nn, kwargs.pop("nonlin"))
    model = GSNN(data.edge_index_dict, data.node_names_dict, nonlin=nonlin, **kwargs)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    regressor = MagnitudeEdgeRegressor(model, data, **ckpt["regressor_kwargs"])
    regressor.load_state_dict(ckpt["regressor_state_dict"])
    inferer = MagnitudeEdgeInferer(model, data, **ckpt["inferer_kwargs"])
    if (out / "inferer_stats.pt").exists():  # absent when the run was told not to write it
        load_statistics(inferer, out / "inferer_stats.pt", device=device)
    return {
        "model": model,
        "data": data,
        "regressor": regressor.to(device),
        "inferer": inferer,
        "config": InferConfig.from_toml(out / "config.toml"),
        "candidates": pd.read_csv(out / "candidates.tsv", sep="\t"),
        **{k: ckpt[k] for k in ("y_mean", "y_std", "x_mean", "x_std")},
    }
