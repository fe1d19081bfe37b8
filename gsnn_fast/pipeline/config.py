"""Every option of an edge-inference run, with defaults, checks and a TOML round trip."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..io import InputError, read_toml, write_toml

__all__ = ["InferConfig", "OPTION_HELP"]

#: one line of help per option (the CLI's --help and the README draw on these)
OPTION_HELP: dict[str, str] = {
    "graph": "network file: edge list TSV/CSV, SIF or GraphML",
    "x": "INPUTS table (samples x input nodes; CSV/TSV/Parquet, first column = sample id)",
    "y": "OUTPUTS table (samples x output nodes, same sample ids in the same order)",
    "nodes": "optional nodes table with a role column (input / function / output)",
    "graph_format": "network format: tsv, csv, sif or graphml (default: from the suffix)",
    "source_col": "edge-list column of the source node",
    "target_col": "edge-list column of the target node",
    "sign_col": "edge-list column of the edge sign (optional; recorded, not used)",
    "node_col": "nodes-table column of the node name",
    "role_col": "nodes-table column of the role",
    "unknown_nodes": "data columns that are not network nodes: 'error' or 'drop' (reported)",
    "nan_samples": "samples with a NaN value: 'drop' (reported) or 'error'",
    "val_fraction": "fraction of samples for validation (loss, early stopping)",
    "test_fraction": "fraction of samples for the test loss / R^2",
    "edge_val_fraction": "fraction of function->function edges held out to select the "
    "regressor checkpoint and calibrate the run (0: none)",
    "seed": "seeds the sample split, the held-out edges, the model and the shuffling",
    "epochs": "maximum training epochs",
    "patience": "early stopping: epochs without a lower validation loss (0: off)",
    "batch_size": "training batch size",
    "channels": "GSNN channels per function node",
    "layers": "GSNN layers (ResBlocks)",
    "dropout": "GSNN dropout",
    "lr": "GSNN AdamW learning rate",
    "standardize_x": "also standardise the inputs with the training mean / std",
    "reg_lr": "regressor learning rate",
    "reg_weight_decay": "regressor weight decay",
    "reg_ridge": "regressor ridge penalty",
    "reg_dropout": "regressor dropout on W",
    "aggregators": "regressor source aggregators (comma-separated: sum, max, mean, l2)",
    "reduction": "MagnitudeEdgeInferer reduction over a node's channels: l1 or l2",
    "layer_agg": "MagnitudeEdgeInferer aggregation over layer pairs: max or mean",
    "gradient": "also rank pairs with GradientEdgeScorer (score test of an absent edge, "
    "docs/EDGE_RECOVERY.md): off, corr, partial, or complete (partial, plus the pairs a "
    "source without an input path or a target without an output path hides, from a "
    "second model trained on a completed graph: CompletionEdgeScorer, twice the "
    "training time); adds gradient / p_ / q_ / rank_ columns",
    "top_k": "keep each target's top_k sources per method (0: all)",
    "q_threshold": "keep rows with a q-value <= this in some method (1: all)",
    "device": "auto, cpu or cuda",
    "threads": "CPU threads for torch (0: torch's default)",
    "plots": "write PNG plots (needs matplotlib)",
    "statistics": "write the inferer's statistics (inferer_stats.pt, 16 P N^2 bytes)",
}


@dataclass
class InferConfig:
    """The settings of one ``gsnn-fast infer`` run (``config.toml`` holds them all).

    Defaults follow the seed notebook (channels 8, layers 6, dropout 0.2, AdamW 1e-4,
    batch 64, regressor sum+max / lr 1e-3 / wd 1e-4 / ridge 1e-2 / dropout 0.2, inferer
    l1 / max); the splits are 80 / 10 / 10 of the samples and 20 % of the
    function->function edges.
    """

    graph: str = ""
    x: str = ""
    y: str = ""
    nodes: str = ""
    graph_format: str = ""
    source_col: str = "source"
    target_col: str = "target"
    sign_col: str = "sign"
    node_col: str = "node"
    role_col: str = "role"
    unknown_nodes: str = "error"
    nan_samples: str = "drop"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    edge_val_fraction: float = 0.2
    seed: int = 0
    epochs: int = 30
    patience: int = 10
    batch_size: int = 64
    channels: int = 8
    layers: int = 6
    dropout: float = 0.2
    lr: float = 1e-4
    standardize_x: bool = False
    reg_lr: float = 1e-3
    reg_weight_decay: float = 1e-4
    reg_ridge: float = 1e-2
    reg_dropout: float = 0.2
    aggregators: tuple[str, ...] = ("sum", "max")
    reduction: str = "l1"
    layer_agg: str = "max"
    gradient: str = "off"
    top_k: int = 0
    q_threshold: float = 1.0
    device: str = "auto"
    threads: int = 1
    plots: bool = True
    statistics: bool = True

    # ------------------------------------------------------------------ building

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "options") -> InferConfig:
        """Build from a mapping (unknown keys raise InputError naming them); values are
        coerced to each field's type and checked."""
        names = set(cls.field_names())
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"{source}: unknown option(s) {', '.join(map(repr, unknown))}")
        kwargs: dict[str, Any] = {}
        defaults = cls()
        for k, v in values.items():
            if v is None:
                continue
            kwargs[k] = _coerce(k, v, getattr(defaults, k), source)
        cfg = cls(**kwargs)
        cfg.check(source)
        return cfg

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> InferConfig:
        """Read a config written by :meth:`to_toml` (or by hand). Relative paths of
        graph / x / y / nodes are taken relative to the config file's folder."""
        values = read_toml(path)
        base = Path(path).resolve().parent
        for k in ("graph", "x", "y", "nodes"):
            v = values.get(k)
            if isinstance(v, str) and v and not os.path.isabs(v):
                values[k] = str(base / v)
        return cls.from_dict(values, source=f"config file {str(path)!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aggregators"] = list(self.aggregators)
        return d

    def to_toml(self, path: str | os.PathLike, header: str = "") -> None:
        write_toml(self.to_dict(), path, header=header)

    def check(self, source: str = "options") -> None:
        def bad(name: str, msg: str) -> InputError:
            return InputError(f"{source}: {name} {msg}, got {getattr(self, name)!r}")

        for name in ("val_fraction", "test_fraction", "edge_val_fraction"):
            v = getattr(self, name)
            if not (0.0 <= v < 1.0):
                raise bad(name, "must lie in [0, 1)")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise InputError(
                f"{source}: val_fraction + test_fraction must leave at least 10 % of the "
                f"samples for training, got {self.val_fraction} + {self.test_fraction}"
            )
        for name, lo in (("epochs", 1), ("batch_size", 1), ("channels", 1), ("layers", 2)):
            if getattr(self, name) < lo:
                raise bad(name, f"must be >= {lo}")
        for name in ("patience", "top_k", "threads", "seed"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        for name in ("lr", "reg_lr"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        for name in ("dropout", "reg_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must lie in [0, 1)")
        for name in ("reg_weight_decay", "reg_ridge"):
            if not getattr(self, name) >= 0:
                raise bad(name, "must be >= 0")
        if not 0.0 <= self.q_threshold <= 1.0:
            raise bad("q_threshold", "must lie in [0, 1]")
        choices = {
            "unknown_nodes": ("error", "drop"),
            "nan_samples": ("drop", "error"),
            "reduction": ("l1", "l2"),
            "layer_agg": ("max", "mean"),
            "gradient": ("off", "corr", "partial", "complete"),
            "device": ("auto", "cpu", "cuda"),
            "graph_format": ("", "tsv", "csv", "sif", "graphml"),
        }
        for name, opts in choices.items():
            if getattr(self, name) not in opts:
                raise bad(name, f"must be one of {', '.join(o for o in opts if o)}")
        allowed = ("sum", "max", "mean", "l2")
        if not self.aggregators or any(a not in allowed for a in self.aggregators):
            raise bad("aggregators", f"must name some of {', '.join(allowed)}")


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    err = InputError(f"{source}: {name} must be a {type(default).__name__}, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise err
    if isinstance(default, int):
        if isinstance(value, bool):
            raise err
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise err from None
        raise err
    if isinstance(default, float):
        if isinstance(value, bool):
            raise err
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise err from None
        if not math.isfinite(out):
            raise err
        return out
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{source}: {name} must be a list of names, got {value!r}")
        return tuple(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise err
    return value
