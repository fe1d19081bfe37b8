"""From a user's network and data to ranked candidate edges (``gsnn-fast infer``).

Over ~450 lines on purpose: :func:`infer_edges` runs the steps of a run in order, in
one place (inputs from :mod:`.data`, training from :mod:`.training`, plots from
:mod:`.plots`), so that a reader follows a run top to bottom; the candidate frame and
the results record are built here too.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from ..inference.metrics import frame_target_ranks, pair_auc, roc_curve
from ..io import (
    InputError,
    RunFolder,
)
from .config import InferConfig
from .data import prepare_data, split_counts
from .plots import PLOT_FILES, write_run_plots
from .training import TrainHistory, batch_loader, train_joint, train_model

__all__ = ["infer_edges", "InferResult"]

METHODS = ("mei_partial", "mei_corr", "regressor")
MODEL_FORMAT = "gsnn_fast.gsnn_model"
#: every file a run may write (removed from the folder first when overwriting)
RUN_FILES = (
    "candidates.tsv",
    "candidates.parquet",
    "results.json",
    "config.toml",
    "model.pt",
    "inferer_stats.pt",
    "held_out_edges.tsv",
    "samples.tsv",
    *PLOT_FILES,
)
PLOT_HINT = (
    "matplotlib is not installed: no plots written (pip install matplotlib, or the "
    "gsnn_fast[plots] extra)"
)


# ----------------------------------------------------------------------------- result


@dataclass
class InferResult:
    """What :func:`infer_edges` returns.

    Attributes:
        candidates: the ranked candidate edges (what ``candidates.tsv`` holds).
        frames: each method's own result frame (``mei_partial``, ``mei_corr``:
            ``MagnitudeEdgeInferer.evaluate``; ``regressor``: the best checkpoint's
            ``MagnitudeEdgeRegressor.evaluate``; ``gradient`` with the ``gradient``
            option: ``GradientEdgeScorer.evaluate``).
        model, regressor, inferer, data: the trained GSNN, the regressor (best
            checkpoint loaded), the fitted inferer and the model's graph (GraphData).
        history: the training history.
        held_out_edges: the known function->function edges withheld from the model.
        splits: the split of each sample id (``train`` / ``val`` / ``test``).
        results: the ``results.json`` content.
        out_dir: where the run was written (None when not written).
    """

    candidates: pd.DataFrame
    frames: dict[str, pd.DataFrame]
    model: Any
    regressor: Any
    inferer: Any
    data: Any
    history: TrainHistory
    held_out_edges: list[tuple[str, str]]
    splits: pd.Series
    config: InferConfig
    results: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _versions() -> dict[str, str]:
    from .. import __version__

    return {
        "gsnn_fast": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "networkx": nx.__version__,
        "python": platform.python_version(),
    }


def _candidates(
    frames: dict[str, tuple[pd.DataFrame, str]],
    names: list[str],
    in_graph: np.ndarray,
    held_out: np.ndarray,
    top_k: int,
    q_threshold: float,
) -> pd.DataFrame:
    """One row per (src, dst) kept by some method, the model graph's own edges left out;
    columns per method: score, p, q, rank within the target (among all its sources)."""
    N = len(names)
    per: dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]] = {}
    for m, (df, col) in frames.items():
        rank = frame_target_ranks(df, col)
        key = df["src_idx"].to_numpy(np.int64) * N + df["dst_idx"].to_numpy(np.int64)
        keep = np.ones(len(df), dtype=bool)
        if top_k:
            keep &= ~np.isnan(rank) & (rank <= top_k)
        cols = {
            m: df[col].to_numpy(np.float64),
            f"p_{m}": df["p_value"].to_numpy(np.float64),
            f"q_{m}": df["q_value"].to_numpy(np.float64),
            f"rank_{m}": rank,
        }
        per[m] = (key, cols, keep)
    keys = np.unique(np.concatenate([k[kp] for k, _c, kp in per.values()]))
    keys = keys[~in_graph.ravel()[keys]]
    out: dict[str, Any] = {
        "src": pd.Categorical.from_codes(keys // N, names),
        "dst": pd.Categorical.from_codes(keys % N, names),
    }
    aligned: dict[str, np.ndarray] = {}
    for _m, (key, cols, kp) in per.items():
        order = np.argsort(key, kind="stable")
        pos = np.searchsorted(key[order], keys)
        found = (pos < len(key)) & (key[order][np.minimum(pos, len(key) - 1)] == keys)
        rows = order[np.minimum(pos, len(key) - 1)]
        found &= kp[rows]  # a method's columns only where it kept the pair
        for c, v in cols.items():
            aligned[c] = np.where(found, v[rows], np.nan)
    for prefix in ("", "p_", "q_", "rank_"):
        for m in frames:
            out[f"{prefix}{m}"] = aligned[f"{prefix}{m}"]
    out["held_out"] = held_out.ravel()[keys]
    cand = pd.DataFrame(out)
    for m in frames:
        cand[f"rank_{m}"] = cand[f"rank_{m}"].astype("Int64")
    if q_threshold < 1.0:
        qs = np.column_stack([cand[f"q_{m}"].to_numpy() for m in frames])
        cand = cand[(np.nan_to_num(qs, nan=2.0) <= q_threshold).any(axis=1)]
    primary = next(iter(frames))
    score = cand[primary].to_numpy()
    order = np.lexsort((np.arange(len(cand)), np.where(np.isnan(score), np.inf, -score)))
    return cand.iloc[order].reset_index(drop=True)


def _score_matrix_from(df: pd.DataFrame, col: str, n: int) -> np.ndarray:
    S = np.full((n, n), np.nan)
    S[df["src_idx"].to_numpy(), df["dst_idx"].to_numpy()] = df[col].to_numpy()
    return S


# ----------------------------------------------------------------------------- pipeline


def infer_edges(
    graph: Any = None,
    x: Any = None,
    y: Any = None,
    out: str | os.PathLike | None = None,
    *,
    config: InferConfig | str | os.PathLike | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    progress: bool | None = None,
    **options: Any,
) -> InferResult:
    """Train a GSNN on a network and data, then rank candidate function->function edges.

    Args:
        graph: network file (edge list TSV/CSV, SIF, GraphML) or an ``nx.DiGraph``.
        x, y: INPUTS / OUTPUTS tables: files (CSV/TSV/Parquet, first column sample ids)
            or DataFrames indexed by sample id. Their columns name the input and output
            nodes; every other network node is a function node (unless ``nodes=`` gives
            a nodes table with roles).
        out: folder to write the run into (None: nothing written). Refused when it
            already holds a run, unless ``overwrite``.
        config: an :class:`InferConfig` or a TOML file; ``options`` override it.
        log: receives the progress lines (None: silent).
        progress: self-overwriting batch progress lines (default: when stdout is a tty).
        **options: any :class:`InferConfig` field (``epochs=``, ``seed=``, ``top_k=``...).

    Steps: validate (InputError on bad input, before anything is written); split the
    samples (train / val / test, seeded); hold out ``edge_val_fraction`` of the known
    function->function edges (removed from the model's graph); standardise the outputs
    with the training mean / std; train the GSNN jointly with the online
    MagnitudeEdgeRegressor (early stopping on the validation loss; the regressor
    checkpoint with the best held-out-edge AUC is kept); fit the MagnitudeEdgeInferer on
    the training split; score (corr and partial) and write the results.

    Returns:
        :class:`InferResult`.
    """
    t_start = time.perf_counter()
    from ..data import nx2pyg
    from ..demo import _run_settings, r2_score, resolve_device
    from ..inference import (
        CompletionEdgeScorer,
        GradientEdgeScorer,
        MagnitudeEdgeInferer,
        MagnitudeEdgeRegressor,
    )
    from ..inference.statistics import save_statistics
    from ..models import GSNN

    say = log if log is not None else (lambda _m: None)
    if isinstance(config, (str, os.PathLike)):
        base = InferConfig.from_toml(config).to_dict()
    elif isinstance(config, InferConfig):
        base = config.to_dict()
    elif config is None:
        base = {}
    else:
        raise InputError(f"config must be an InferConfig or a TOML path, got {config!r}")
    objects: dict[str, Any] = {}
    for key, value in (("graph", graph), ("x", x), ("y", y)):
        if isinstance(value, (str, os.PathLike)):
            base[key] = str(Path(value).resolve())
        elif value is not None:
            objects[key] = value
            base[key] = f"<{type(value).__name__}>"
    if isinstance(options.get("nodes"), (str, os.PathLike)):
        options["nodes"] = str(Path(options["nodes"]).resolve())
    base.update(options)
    cfg = InferConfig.from_dict(base)
    folder = RunFolder(out, overwrite=overwrite) if out is not None else None
    if folder is not None:
        folder.check()
    if cfg.device == "cuda" or cfg.device == "auto":
        try:
            dev = resolve_device(cfg.device)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    else:
        dev = "cpu"

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    prep = prepare_data(cfg, objects.get("graph"), objects.get("x"), objects.get("y"))
    n = len(prep.x)
    n_train, n_val, n_test = split_counts(n, cfg)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    test_idx = np.sort(perm[:n_test])
    val_idx = np.sort(perm[n_test : n_test + n_val])
    train_idx = np.sort(perm[n_test + n_val :])
    split = np.empty(n, dtype=object)
    split[train_idx], split[val_idx], split[test_idx] = "train", "val", "test"
    splits = pd.Series(split, index=prep.x.index, name="split")

    ff = prep.ff_edges
    k_hold = int(round(len(ff) * cfg.edge_val_fraction))
    if cfg.edge_val_fraction > 0:
        k_hold = min(max(k_hold, 1), len(ff))
    edge_rng = np.random.default_rng([cfg.seed, 1])
    hold_pos = np.sort(edge_rng.choice(len(ff), size=k_hold, replace=False)) if k_hold else []
    held_out = [ff[i] for i in hold_pos]
    G_model = prep.graph.copy()
    G_model.remove_edges_from(held_out)
    data = nx2pyg(G_model, prep.input_nodes, prep.function_nodes, prep.output_nodes)
    timings["validate"] = time.perf_counter() - t0

    rep = prep.report
    say(
        f"network: {rep['nodes']['input']} inputs | {rep['nodes']['function']} functions | "
        f"{rep['nodes']['output']} outputs | {len(ff)} function->function edges "
        f"({k_hold} held out to select and calibrate) | device {dev}"
    )
    say(
        f"samples: {n} used of {rep['samples']['read']} "
        f"({rep['samples']['with_nan_dropped']} with NaN dropped) | train {n_train} / "
        f"val {n_val} / test {n_test}"
    )
    for what, items in rep["isolated_nodes"].items():
        say(f"note: {len(items)} {what}: {', '.join(items[:5])}")
    for which, items in rep["data_columns_not_in_network"].items():
        say(f"note: dropped {which} columns not in the network: {', '.join(items[:5])}")
    if rep["edges"]["ignored (kind)"]:
        say(f"note: edges ignored by kind: {rep['edges']['ignored (kind)']}")

    threads = cfg.threads or torch.get_num_threads()
    with _run_settings(cfg.seed, threads, dev):
        t0 = time.perf_counter()

        def tensor(df: pd.DataFrame, rows: np.ndarray) -> torch.Tensor:
            return torch.tensor(df.to_numpy()[rows], dtype=torch.float32, device=dev)

        x_tr, x_va, x_te = (tensor(prep.x, r) for r in (train_idx, val_idx, test_idx))
        y_tr, y_va, y_te = (tensor(prep.y, r) for r in (train_idx, val_idx, test_idx))
        y_mu, y_std = y_tr.mean(0), y_tr.std(0)
        y_tr, y_va, y_te = ((t - y_mu) / (y_std + 1e-8) for t in (y_tr, y_va, y_te))
        x_mu = torch.zeros(x_tr.shape[1], device=dev)
        x_std = torch.ones(x_tr.shape[1], device=dev)
        if cfg.standardize_x:
            x_mu, x_std = x_tr.mean(0), x_tr.std(0)
            x_tr, x_va, x_te = ((t - x_mu) / (x_std + 1e-8) for t in (x_tr, x_va, x_te))

        gsnn_kwargs = {
            "channels": cfg.channels,
            "layers": cfg.layers,
            "share_layers": False,
            "bias": True,
            "add_function_self_edges": True,
            "norm": "none",
            "dropout": cfg.dropout,
            "node_mlp": False,
            "checkpoint": False,
        }
        model = GSNN(
            data.edge_index_dict, data.node_names_dict, nonlin=torch.nn.ELU, **gsnn_kwargs
        ).to(dev)
        reg_kwargs = {
            "aggregators": tuple(cfg.aggregators),
            "lr": cfg.reg_lr,
            "weight_decay": cfg.reg_weight_decay,
            "ridge": cfg.reg_ridge,
            "dropout": cfg.reg_dropout,
        }
        regressor = MagnitudeEdgeRegressor(model, data, **reg_kwargs).to(dev)
        timings["setup"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        batch = min(cfg.batch_size, n_train)
        loader = batch_loader(
            x_tr,
            y_tr,
            batch,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0, fused=True)
        crit = torch.nn.MSELoss()
        history = train_joint(
            model,
            regressor,
            loader,
            epochs=cfg.epochs,
            optimizer=optim,
            crit=crit,
            val_edges=held_out or None,
            val_data=(x_va, y_va) if n_val else None,
            patience=cfg.patience or None,
            restore_best_model=True,
            log=log,
            progress=progress,
        )
        timings["train"] = time.perf_counter() - t0
        if history.best_regressor_epoch is not None:
            regressor.load_best()

        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        model.eval()
        if n_test:
            with torch.inference_mode():
                yhat = model(x_te)
                metrics["test_loss"] = float(crit(yhat, y_te))
            metrics["test_r2"] = r2_score(y_te.cpu().numpy(), yhat.cpu().numpy())
        if n_val:
            metrics["best_val_loss"] = min(history.val_loss)

        inferer = MagnitudeEdgeInferer(model, data, reduction=cfg.reduction)
        fit_loader = batch_loader(x_tr, y_tr, batch, shuffle=False, drop_last=False)
        verbose = progress if progress is not None else sys.stdout.isatty()
        inferer.fit(fit_loader, crit=crit, device=dev, verbose=bool(verbose))
        timings["mei_fit"] = time.perf_counter() - t0
        scorer = None
        if cfg.gradient != "off":
            t0 = time.perf_counter()
            if cfg.gradient == "complete":
                # silent pairs: a second model, same recipe and epochs, on the completed graph
                def make_model(d: Any) -> torch.nn.Module:
                    torch.manual_seed(cfg.seed + 1)
                    return GSNN(
                        d.edge_index_dict, d.node_names_dict, nonlin=torch.nn.ELU, **gsnn_kwargs
                    ).to(dev)

                def retrain(m: torch.nn.Module) -> None:
                    gen = torch.Generator().manual_seed(cfg.seed + 1)
                    ld = batch_loader(
                        x_tr, y_tr, batch, shuffle=True, drop_last=True, generator=gen
                    )
                    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=0, fused=True)
                    train_model(m, ld, epochs=len(history.epochs), optimizer=opt, crit=crit)

                scorer = CompletionEdgeScorer(
                    model, data, make_model, retrain, score="partial", seed=cfg.seed
                )
            else:
                scorer = GradientEdgeScorer(model, data, score=cfg.gradient, seed=cfg.seed)
            scorer.fit(fit_loader, crit=crit, device=dev)
            timings["gradient_fit"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        top_k = cfg.top_k or None
        frames = {
            "mei_partial": inferer.evaluate(layer_agg=cfg.layer_agg, score="partial", top_k=top_k),
            "mei_corr": inferer.evaluate(layer_agg=cfg.layer_agg, score="corr", top_k=top_k),
            "regressor": regressor.evaluate(),
        }
        cols = {"mei_partial": "corr", "mei_corr": "corr", "regressor": "score"}
        if scorer is not None:
            frames["gradient"] = scorer.evaluate(top_k=top_k)
            cols["gradient"] = "score"
        N = len(prep.function_nodes)
        idx = {name: i for i, name in enumerate(prep.function_nodes)}
        in_graph = np.zeros((N, N), dtype=bool)
        for s, d in ff:
            in_graph[idx[s], idx[d]] = True
        held = np.zeros((N, N), dtype=bool)
        for s, d in held_out:
            held[idx[s], idx[d]] = True
        model_graph = in_graph & ~held
        candidates = _candidates(
            {m: (frames[m], cols[m]) for m in frames},
            prep.function_nodes,
            model_graph,
            held,
            cfg.top_k,
            cfg.q_threshold,
        )
        timings["evaluate"] = time.perf_counter() - t0

        # calibration: the held-out known edges against the non-edges, per method
        t0 = time.perf_counter()
        rocs: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        held_metrics: dict[str, dict[str, float]] = {}
        if held_out:
            neg = ~in_graph
            np.fill_diagonal(neg, False)
            mats = {
                "mei_partial": inferer.score_matrices(
                    "partial", layer_agg=cfg.layer_agg, per_pair=False
                )
                .aggregated.cpu()
                .numpy(),
                "mei_corr": inferer.score_matrices("corr", layer_agg=cfg.layer_agg, per_pair=False)
                .aggregated.cpu()
                .numpy(),
                "regressor": regressor.score_matrix(),
            }
            if scorer is not None:
                mats["gradient"] = scorer.score_matrix()[0]
            for m, S in mats.items():
                auc = pair_auc(S[held], S[neg])
                fpr, tpr = roc_curve(S[held], S[neg])
                rocs[m] = (fpr, tpr, auc)
                held_metrics[m] = {"auc": auc}
        val_best = (
            history.epochs[history.best_regressor_epoch - 1].val_auc
            if history.best_regressor_epoch is not None
            else None
        )
        metrics["calibration"] = {
            "val_edge_auc": val_best,
            "note": (
                "ROC-AUC of the held-out known edges against the non-edges: val_edge_auc "
                "is the regressor's at its selected epoch (the selection criterion, so "
                "optimistic); held_out_auc scores each final method on the same edges"
            ),
            "held_out_auc": {m: v["auc"] for m, v in held_metrics.items()},
        }
        timings["metrics"] = time.perf_counter() - t0

    say(
        f"kept model: epoch {history.best_model_epoch or len(history.epochs)} | regressor "
        f"checkpoint: epoch {history.best_regressor_epoch}"
        + (f" | val edge AUC {val_best:.3f}" if val_best is not None else "")
        + (
            f" | test loss {metrics['test_loss']:.4f} | test R^2 {metrics['test_r2']:.3f}"
            if n_test
            else ""
        )
    )
    if held_metrics:
        say(
            "held-out known edges, ROC-AUC vs non-edges: "
            + ", ".join(f"{m} {v['auc']:.3f}" for m, v in held_metrics.items())
        )
    say(f"candidates: {len(candidates)} rows (model-graph edges left out)")

    result = InferResult(
        candidates=candidates,
        frames=frames,
        model=model,
        regressor=regressor,
        inferer=inferer,
        data=data,
        history=history,
        held_out_edges=held_out,
        splits=splits,
        config=cfg,
    )
    results: dict[str, Any] = {
        "config": cfg.to_dict(),
        "versions": _versions(),
        "device": dev,
        "threads": threads,
        "build": _build_info(),
        "validation": prep.report,
        "splits": {"train": n_train, "val": n_val, "test": n_test},
        "held_out_edges": len(held_out),
        "training": {
            "epochs_run": len(history.epochs),
            "stopped_early": history.stopped_early,
            "best_model_epoch": history.best_model_epoch,
            "best_regressor_epoch": history.best_regressor_epoch,
            "history": [vars(r) for r in history.epochs],
        },
        "metrics": metrics,
        "n_candidates": len(candidates),
        "n_gsnn_params": sum(p.numel() for p in model.parameters()),
    }
    result.results = results
    if folder is None:
        timings["total"] = time.perf_counter() - t_start
        results["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        return result

    t0 = time.perf_counter()
    with folder as tmp:
        candidates.to_csv(tmp / "candidates.tsv", sep="\t", index=False, float_format="%.10g")
        files = ["candidates.tsv"]
        try:
            import pyarrow  # noqa: F401

            candidates.to_parquet(tmp / "candidates.parquet", index=False)
            files.append("candidates.parquet")
        except ImportError:
            say("pyarrow is not installed: candidates.parquet not written")
        pd.DataFrame(held_out, columns=["src", "dst"]).to_csv(
            tmp / "held_out_edges.tsv", sep="\t", index=False
        )
        splits.rename_axis("sample").to_csv(tmp / "samples.tsv", sep="\t")
        files += ["held_out_edges.tsv", "samples.tsv"]
        torch.save(
            {
                "format": MODEL_FORMAT,
                "version": 1,
                "library_version": _versions()["gsnn_fast"],
                "gsnn_kwargs": {**gsnn_kwargs, "nonlin": "ELU"},
                "node_names_dict": {k: list(v) for k, v in data.node_names_dict.items()},
                "edge_index_dict": {
                    "|".join(k): v.detach().cpu() for k, v in data.edge_index_dict.items()
                },
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "regressor_kwargs": {**reg_kwargs, "aggregators": list(cfg.aggregators)},
                "regressor_state_dict": {
                    k: v.detach().cpu() for k, v in regressor.state_dict().items()
                },
                "inferer_kwargs": {"reduction": cfg.reduction},
                "y_mean": y_mu.cpu(),
                "y_std": y_std.cpu(),
                "x_mean": x_mu.cpu(),
                "x_std": x_std.cpu(),
            },
            tmp / "model.pt",
        )
        files.append("model.pt")
        if cfg.statistics:
            save_statistics(inferer, tmp / "inferer_stats.pt")
            files.append("inferer_stats.pt")
        plots: list[str] = []
        if cfg.plots:
            plots = write_run_plots(
                tmp,
                train_loss=history.train_loss,
                val_loss=history.val_loss,
                val_auc=history.val_auc,
                best_model_epoch=history.best_model_epoch,
                best_regressor_epoch=history.best_regressor_epoch,
                rocs=rocs,
                candidates=candidates,
            )
            if not plots:
                say(PLOT_HINT)
        results["plots"] = plots
        files += plots
        timings["write"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        results["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        results["files"] = files + ["results.json", "config.toml"]
        with open(tmp / "results.json", "w") as fh:
            json.dump(_json_safe(results), fh, indent=2)
        cfg.to_toml(
            tmp / "config.toml",
            header="gsnn-fast infer settings of this run; repeat it with\n"
            "gsnn-fast infer --config config.toml --out NEW_FOLDER",
        )
        if folder.out.is_dir() and overwrite:
            for name in RUN_FILES:
                (folder.out / name).unlink(missing_ok=True)
        folder.commit()
    result.out_dir = folder.out
    say(f"wrote {folder.out}: {', '.join(results['files'])}")
    return result


def _build_info() -> dict[str, Any]:
    try:
        from .. import build_info

        return {k: v for k, v in build_info().items() if isinstance(v, (str, int, float, bool))}
    except Exception:  # informational only
        return {}
