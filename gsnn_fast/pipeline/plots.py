"""PNG plots of an edge-inference run (matplotlib's object API: no pyplot, no global
backend change). Each function returns False when matplotlib is not installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["have_matplotlib", "plot_roc", "plot_val_auc", "write_run_plots", "PLOT_FILES"]

PLOT_FILES = ("loss.png", "val_auc.png", "roc.png", "pvalues.png", "top_candidates.png")
LABELS = {"mei_partial": "MEI partial", "mei_corr": "MEI corr", "regressor": "regressor (best)"}


def have_matplotlib() -> bool:
    try:
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return False
    return True


def plot_val_auc(
    path: Path, val_auc: Sequence[float], best_epoch: int | None, *, ylabel: str, title: str
) -> None:
    """The regressor's validation edge AUC per epoch, its best epoch marked (needs
    matplotlib)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(val_auc) + 1), val_auc, marker="o", ms=3)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="C1", ls="--", label=f"best epoch ({best_epoch})")
    ax.axhline(0.5, color="k", ls=":", alpha=0.5, label="random")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_roc(
    path: Path,
    rocs: dict[str, tuple[np.ndarray, np.ndarray, float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """ROC curves ``{label: (fpr, tpr, auc)}`` against the diagonal (needs matplotlib)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for label, (fpr, tpr, auc) in rocs.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC={auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", alpha=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_run_plots(
    out: Path,
    *,
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    val_auc: Sequence[float],
    best_model_epoch: int | None,
    best_regressor_epoch: int | None,
    rocs: dict[str, tuple[np.ndarray, np.ndarray, float]],
    candidates: pd.DataFrame,
    n_top: int = 20,
) -> list[str]:
    """Write the run's plots into ``out``; returns the file names written ([] without
    matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    written: list[str] = []
    epochs = np.arange(1, len(train_loss) + 1)

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(epochs, train_loss, marker="o", ms=3, label="training loss")
    if np.isfinite(np.asarray(val_loss, dtype=float)).any():
        ax.plot(epochs, val_loss, marker="o", ms=3, label="validation loss")
    if best_model_epoch is not None:
        ax.axvline(best_model_epoch, color="C2", ls="--", label=f"kept model ({best_model_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (standardised outputs)")
    ax.set_title("GSNN training and validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    written.append("loss.png")

    if np.isfinite(np.asarray(val_auc, dtype=float)).any():
        plot_val_auc(
            out / "val_auc.png",
            val_auc,
            best_regressor_epoch,
            ylabel="ROC-AUC (held-out known edges vs non-edges)",
            title="Online regressor: validation edge recovery per epoch",
        )
        written.append("val_auc.png")

    if rocs:
        plot_roc(
            out / "roc.png",
            {LABELS.get(name, name): roc for name, roc in rocs.items()},
            xlabel="false positive rate (non-edges)",
            ylabel="true positive rate (held-out known edges)",
            title="ROC: held-out known edges vs non-edges",
        )
        written.append("roc.png")

    pcols = [c for c in ("p_mei_partial", "p_mei_corr", "p_regressor") if c in candidates]
    if pcols and len(candidates):
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        bins = np.linspace(0.0, 1.0, 41)
        for c in pcols:
            p = candidates[c].to_numpy(dtype=float)
            p = p[np.isfinite(p)]
            if p.size:
                ax.hist(p, bins=bins, histtype="step", lw=1.5, label=LABELS[c[2:]])
        ax.set_xlabel("p-value")
        ax.set_ylabel("candidate edges")
        ax.set_title("p-value histogram of the candidate edges")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "pvalues.png", dpi=110)
        written.append("pvalues.png")

    top = candidates.dropna(subset=["mei_partial"]).head(n_top)
    if len(top):
        fig = Figure(figsize=(7, 0.3 * len(top) + 1.5))
        ax = fig.subplots()
        labels = [f"{s} -> {d}" for s, d in zip(top["src"], top["dst"])]
        colors = ["C1" if h else "C0" for h in top["held_out"]]
        y = np.arange(len(top))[::-1]
        ax.barh(y, top["mei_partial"].to_numpy(dtype=float), color=colors)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel("MEI partial correlation score")
        ax.set_title(f"Strongest {len(top)} candidate edges (orange: held-out known edge)")
        fig.tight_layout()
        fig.savefig(out / "top_candidates.png", dpi=110)
        written.append("top_candidates.png")
    return written
