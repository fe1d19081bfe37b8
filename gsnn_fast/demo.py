"""``gsnn-fast demo``: the seed notebook (online edge inference) end to end.

Steps, as in the seed notebook (over ~450 lines on purpose: the notebook's settings,
its data, its training run and its report, each a section below):

1. the converging-tier DAG (``width`` tier-A nodes -> ``2 * width`` function nodes), its
   default held-out function->function edges (35 for width 25) removed from the graph
   the model sees, and the notebook's stratified validation / test split of them
   (``np.random.default_rng(0)``: fixed, whatever ``seed``);
2. simulated data (2,000 train / 500 test samples, noise 0.15), targets standardised
   with the training mean / std;
3. a GSNN (channels 8, layers 6, share_layers False, norm none, dropout 0.2, ELU, no
   node MLP) trained with AdamW(1e-4) for ``epochs`` epochs (batch 64, shuffled,
   drop_last) jointly with a :class:`MagnitudeEdgeRegressor` (aggregators sum + max,
   lr 1e-3, weight decay 1e-4, ridge 1e-2, dropout 0.2); validation ROC-AUC on the
   validation edges picks the regressor's best checkpoint;
4. post-hoc :class:`MagnitudeEdgeInferer` (l1) on the final model over the training
   data (no shuffling), scored with ``corr`` and ``partial`` (``layer_agg='max'``);
5. test ROC-AUC (test edges against the non-edges, i.e. every pair that is neither a
   test edge nor in the graph, as the notebook counts them), MRR and top@k per method,
   test R^2 of the GSNN; ``results.json``, ``val_auc.png`` and ``roc.png`` in ``out``.

Reproducibility: ``seed`` seeds torch (model init, dropout, the shuffling generator)
and numpy (simulation); on CUDA deterministic algorithms are switched on for the run
(and switched back afterwards); so the same seed on the same device and thread count
gives the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DemoConfig", "run_demo", "r2_score", "default_out_dir"]

PLOT_HINT = (
    "matplotlib is not installed: no plots written. Install it with `pip install matplotlib` "
    "(or `pip install gsnn_fast[plots]`) to get val_auc.png and roc.png."
)


_LABELS = {"regressor": "regressor (best)", "mei_corr": "MEI corr", "mei_partial": "MEI partial"}


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of the demo (written to ``results.json``); defaults = the notebook."""

    width: int = 25
    epochs: int = 30
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    n_train: int = 2000
    n_test: int = 500
    noise_scale: float = 0.15
    b2sink_stride: int = 2
    split_seed: int = 0
    batch_size: int = 64
    channels: int = 8
    layers: int = 6
    gsnn_dropout: float = 0.2
    gsnn_lr: float = 1e-4
    aggregators: tuple[str, ...] = ("sum", "max")
    reg_lr: float = 1e-3
    reg_weight_decay: float = 1e-4
    reg_ridge: float = 1e-2
    reg_dropout: float = 0.2
    mei_reduction: str = "l1"
    mei_layer_agg: str = "max"


def default_out_dir(base: str | os.PathLike = ".") -> Path:
    """A new folder ``gsnn_fast_demo_<YYYYmmdd-HHMMSS>`` (suffixed when it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"gsnn_fast_demo_{stamp}"
    k = 1
    while path.exists():
        path = Path(base) / f"gsnn_fast_demo_{stamp}_{k}"
        k += 1
    return path


def resolve_device(device: str) -> str:
    """``'auto'`` -> ``'cuda'`` when a GPU and a CUDA build of gsnn_fast exist, else ``'cpu'``."""
    from . import build_info

    has_cuda = torch.cuda.is_available() and bool(build_info().get("cuda", False))
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not has_cuda:
            raise ValueError(
                "device='cuda' but no CUDA device is available or gsnn_fast was built "
                "without CUDA kernels (gsnn_fast.build_info()['cuda'] is False)"
            )
        return "cuda"
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged over output columns (sklearn's default
    ``multioutput='uniform_average'``; a constant column scores 1 if predicted exactly,
    else 0)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    ok = ss_tot > 0
    scores = np.where(ok, 1.0 - ss_res / np.where(ok, ss_tot, 1.0), (ss_res == 0).astype(float))
    return float(scores.mean())


@contextmanager
def _run_settings(seed: int, threads: int, device: str):
    """Seed torch/numpy and fix the thread count for the run; on CUDA also turn on
    deterministic algorithms (cuBLAS workspace config included). Everything is put back
    afterwards.

    The CPU path needs no flag: its kernels are deterministic for a fixed thread count,
    and ``torch.use_deterministic_algorithms`` would import torch's compiler stack
    (about 1.6 s) for nothing.
    """
    prev_threads = torch.get_num_threads()
    cuda = device == "cuda"
    if cuda:
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        if cuda:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def _score_matrix(df: Any, n: int, score_col: str) -> np.ndarray:
    """(N, N) matrix of ``df[score_col]`` at (src_idx, dst_idx); NaN where no row."""
    S = np.full((n, n), np.nan)
    S[df["src_idx"].to_numpy(), df["dst_idx"].to_numpy()] = df[score_col].to_numpy()
    return S


def _pos_neg(
    S: np.ndarray, positives: np.ndarray, graph: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positive scores and non-edge scores (neither positive nor in the graph, no self pair);
    NaN dropped."""
    neg = ~(positives | graph)
    np.fill_diagonal(neg, False)
    pos = S[positives & ~np.eye(len(S), dtype=bool)]
    negs = S[neg]
    return pos[~np.isnan(pos)], negs[~np.isnan(negs)]


def _write_plots(out: Path, val_auc: Sequence[float], best_epoch: int | None, rocs: dict) -> bool:
    """val_auc.png and roc.png (the pipeline's plot helpers). Returns False when
    matplotlib is missing."""
    from .pipeline.plots import have_matplotlib, plot_roc, plot_val_auc

    if not have_matplotlib():
        return False
    plot_val_auc(
        out / "val_auc.png",
        val_auc,
        best_epoch,
        ylabel="val AUC (held-out vs non-edge)",
        title="Online regressor: validation edge recovery during training",
    )
    title = "ROC: test held-out edges vs non-edges"
    plot_roc(out / "roc.png", rocs, xlabel="FPR", ylabel="TPR", title=title)
    return True


def run_demo(
    width: int = 25,
    epochs: int = 30,
    seed: int = 0,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    threads: int | None = None,
    plots: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the notebook end to end and write ``results.json`` (+ plots) into ``out``.

    Args:
        width: tier-A width of the converging graph (function nodes = 2 * width), >= 3.
        epochs: training epochs (>= 1).
        seed: seeds torch and numpy.
        device: ``'auto'``, ``'cpu'`` or ``'cuda'``.
        out: output folder (created); default :func:`default_out_dir`.
        threads: CPU threads for torch during the run (default 1: at this size the work
            per op is far too small for a second thread to pay off).
        plots: write ``val_auc.png`` / ``roc.png`` when matplotlib is importable.
        log: where progress lines go (None: silent).

    Returns:
        The ``results.json`` content: ``config``, ``test_r2``, ``best_epoch``,
        ``val_auc_history``, ``methods`` (``regressor``, ``mei_corr``, ``mei_partial``,
        each ``{'auc', 'mrr', 'top@1', 'top@3'}``), ``timings_s`` (wall seconds per
        phase: imports, setup, train, test_predict, regressor_evaluate, mei_fit,
        mei_evaluate, metrics, plots, total; plus total_cpu, this process's CPU seconds),
        ``test_loss``, ``n_gsnn_params``, ``plots``; the returned dict also has ``out_dir``.
    """
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    from .data import (
        build_convergence_graph,
        default_held_out_edges,
        nx2pyg,
        simulate,
        split_held_out,
    )
    from .inference import MagnitudeEdgeInferer, MagnitudeEdgeRegressor
    from .inference.metrics import pair_auc, roc_curve
    from .models import GSNN
    from .pipeline.training import batch_loader, train_joint

    evaluate_target_ranking = MagnitudeEdgeInferer.evaluate_target_ranking

    say = log if log is not None else (lambda _msg: None)
    for name, value, lo in (("width", width, 3), ("epochs", epochs, 1), ("threads", threads, 1)):
        if value is None and name == "threads":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    dev = resolve_device(device)
    cfg = DemoConfig(width=width, epochs=epochs, seed=seed, device=dev, threads=threads or 1)
    out_dir = Path(out) if out is not None else default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)

    timings: dict[str, float] = {"imports": time.perf_counter() - t_start}
    with _run_settings(cfg.seed, cfg.threads, dev):
        # -- 1. graph, held-out edges, split -------------------------------------------
        t0 = time.perf_counter()
        G, _pos, input_nodes, function_nodes, output_nodes, ff_true = build_convergence_graph(
            cfg.width
        )
        held_out = default_held_out_edges(cfg.width, b2sink_stride=cfg.b2sink_stride)
        held_set = set(held_out)
        kept_edges = [e for e in ff_true if e not in held_set]
        G_partial = G.copy()
        G_partial.remove_edges_from(held_out)
        data = nx2pyg(G_partial, input_nodes, function_nodes, output_nodes)
        sink = function_nodes[-1]
        edges_val, edges_test = split_held_out(held_out, sink, seed=cfg.split_seed)
        n_func = len(function_nodes)

        # -- 2. data ------------------------------------------------------------------
        x_train, x_test, y_train, y_test = simulate(
            G,
            n_train=cfg.n_train,
            n_test=cfg.n_test,
            input_nodes=input_nodes,
            output_nodes=output_nodes,
            noise_scale=cfg.noise_scale,
            special_functions=None,
        )
        x_train = torch.tensor(x_train, dtype=torch.float32, device=dev)
        x_test = torch.tensor(x_test, dtype=torch.float32, device=dev)
        y_train = torch.tensor(y_train, dtype=torch.float32, device=dev)
        y_test = torch.tensor(y_test, dtype=torch.float32, device=dev)
        y_mu, y_std = y_train.mean(0), y_train.std(0)
        y_train = (y_train - y_mu) / (y_std + 1e-8)
        y_test = (y_test - y_mu) / (y_std + 1e-8)

        # -- 3. model + regressor -----------------------------------------------------
        model = GSNN(
            data.edge_index_dict,
            data.node_names_dict,
            channels=cfg.channels,
            layers=cfg.layers,
            share_layers=False,
            bias=True,
            add_function_self_edges=True,
            norm="none",
            dropout=cfg.gsnn_dropout,
            nonlin=torch.nn.ELU,
            node_mlp=False,
            checkpoint=False,
        ).to(dev)
        regressor = MagnitudeEdgeRegressor(
            model,
            data,
            aggregators=cfg.aggregators,
            lr=cfg.reg_lr,
            weight_decay=cfg.reg_weight_decay,
            ridge=cfg.reg_ridge,
            dropout=cfg.reg_dropout,
        ).to(dev)
        n_params = sum(p.numel() for p in model.parameters())
        timings["setup"] = time.perf_counter() - t0
        say(
            f"graph: {len(input_nodes)} inputs | {n_func} functions | {len(output_nodes)} "
            f"outputs | held-out edges {len(held_out)} (val {len(edges_val)} / test "
            f"{len(edges_test)}) | GSNN params {n_params} | device {dev}"
        )

        # -- training -----------------------------------------------------------------
        t0 = time.perf_counter()
        shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        # Whole batches per fetch: the same batches as DataLoader(batch_size=64,
        # shuffle=True, drop_last=True, generator=shuffle_gen), without per-sample collation.
        train_loader = batch_loader(
            x_train, y_train, cfg.batch_size, shuffle=True, drop_last=True, generator=shuffle_gen
        )
        # fused=True: the same AdamW update in one kernel per step (about 6x cheaper than
        # the default per-parameter loop on the CPU for the GSNN's 30 small parameters).
        gsnn_optim = torch.optim.AdamW(
            model.parameters(), lr=cfg.gsnn_lr, weight_decay=0, fused=True
        )
        crit = torch.nn.MSELoss()
        history = train_joint(
            model,
            regressor,
            train_loader,
            epochs=cfg.epochs,
            optimizer=gsnn_optim,
            crit=crit,
            val_edges=edges_val,
            log=log,
        )
        val_auc_history = history.val_auc
        best_epoch = history.best_regressor_epoch
        timings["train"] = time.perf_counter() - t0

        # -- test fit -----------------------------------------------------------------
        t0 = time.perf_counter()
        model.eval()
        with torch.inference_mode():
            yhat_test = model(x_test)
            test_loss = float(crit(yhat_test, y_test))
        test_r2 = r2_score(y_test.cpu().numpy(), yhat_test.cpu().numpy())
        timings["test_predict"] = time.perf_counter() - t0
        say(
            f"test loss: {test_loss:.4f} | test r2: {test_r2:.3f} "
            f"| best val-AUC epoch: {best_epoch}"
        )

        # -- 4. best regressor checkpoint, post-hoc inferer ---------------------------
        t0 = time.perf_counter()
        regressor.load_best()
        res_reg = regressor.evaluate()
        timings["regressor_evaluate"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        mei = MagnitudeEdgeInferer(model, data, reduction=cfg.mei_reduction)
        infer_loader = batch_loader(x_train, y_train, cfg.batch_size, shuffle=False, drop_last=True)
        mei.fit(infer_loader, crit=crit, device=dev, verbose=False)
        timings["mei_fit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res_corr = mei.evaluate(layer_agg=cfg.mei_layer_agg, score="corr")
        res_partial = mei.evaluate(layer_agg=cfg.mei_layer_agg, score="partial")
        timings["mei_evaluate"] = time.perf_counter() - t0

        # -- 5. metrics ---------------------------------------------------------------
        t0 = time.perf_counter()
        idx = {name: i for i, name in enumerate(function_nodes)}
        graph = np.zeros((n_func, n_func), dtype=bool)
        for s, d in kept_edges:
            graph[idx[s], idx[d]] = True
        positives = np.zeros((n_func, n_func), dtype=bool)
        for s, d in edges_test:
            positives[idx[s], idx[d]] = True
        methods: dict[str, dict[str, float]] = {}
        rocs: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        frames = {
            "regressor": (res_reg, "score"),
            "mei_corr": (res_corr, "corr"),
            "mei_partial": (res_partial, "corr"),
        }
        for name, (df, col) in frames.items():
            pos_s, neg_s = _pos_neg(_score_matrix(df, n_func, col), positives, graph)
            auc = pair_auc(pos_s, neg_s)
            _, summary = evaluate_target_ranking(df, edges_test, score_col=col, top_k=(1, 3))
            methods[name] = {
                "auc": float(auc),
                "mrr": summary["mrr"],
                "top@1": summary["top@1"],
                "top@3": summary["top@3"],
            }
            fpr, tpr = roc_curve(pos_s, neg_s)
            rocs[_LABELS[name]] = (fpr, tpr, float(auc))
        timings["metrics"] = time.perf_counter() - t0

    say("")
    say(f"{'method':<18} {'test AUC':>8} {'MRR':>6} {'top@1':>6} {'top@3':>6}")
    for name, m in methods.items():
        say(
            f"{_LABELS[name]:<18} {m['auc']:8.3f} {m['mrr']:6.3f} {m['top@1']:6.3f} "
            f"{m['top@3']:6.3f}"
        )
    say(f"test R^2 (GSNN): {test_r2:.3f}")

    t0 = time.perf_counter()
    wrote_plots = False
    if plots:
        wrote_plots = _write_plots(out_dir, val_auc_history, best_epoch, rocs)
        if not wrote_plots:
            say(PLOT_HINT)
    timings["plots"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    timings["total_cpu"] = time.process_time() - cpu_start  # this process's CPU time

    config = asdict(cfg)
    config["aggregators"] = list(cfg.aggregators)
    results: dict[str, Any] = {
        "config": config,
        "test_r2": test_r2,
        "test_loss": test_loss,
        "best_epoch": best_epoch,
        "val_auc_history": val_auc_history,
        "methods": methods,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "n_gsnn_params": n_params,
        "plots": ["val_auc.png", "roc.png"] if wrote_plots else [],
    }
    with open(out_dir / "results.json", "w") as fh:
        json.dump(_json_safe(results), fh, indent=2)
    say(
        "timings (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        + f"\nwrote {out_dir / 'results.json'}"
        + (" (+ val_auc.png, roc.png)" if wrote_plots else "")
    )
    results["out_dir"] = str(out_dir)
    return results


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> None so that results.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
