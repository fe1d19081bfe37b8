"""The joint training loop: a GSNN and the online MagnitudeEdgeRegressor, epoch by epoch.

One implementation for ``gsnn-fast demo`` and ``gsnn-fast infer`` (and a notebook user):
each step is the regressor's protocol around the GSNN's own forward / backward
(``pre_forward`` -> forward -> loss -> ``arm_retained_grads`` -> backward -> ``aux_step``
-> optimiser step); after each epoch the regressor's current scores are checked against
the validation edges (ROC-AUC) and its best checkpoint kept (``maybe_save_best``).
Optionally a validation split of samples gives a validation loss per epoch and early
stopping of the GSNN on it.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["EpochRecord", "TrainHistory", "train_joint", "train_model", "batch_loader"]


@dataclass
class EpochRecord:
    """What one epoch gave: mean training loss over its steps, validation loss (None
    without validation samples), the regressor's validation-edge AUC and MRR (None
    without validation edges), steps and wall seconds."""

    epoch: int
    train_loss: float
    val_loss: float | None
    val_auc: float | None
    val_mrr: float | None
    steps: int
    seconds: float


@dataclass
class TrainHistory:
    """The epochs run, the regressor's best epoch (by validation-edge AUC; None when no
    epoch improved or there were no validation edges), the GSNN's best epoch (by
    validation loss; None without validation samples) and whether training stopped
    early."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_regressor_epoch: int | None = None
    best_model_epoch: int | None = None
    stopped_early: bool = False

    @property
    def val_auc(self) -> list[float]:
        return [float("nan") if r.val_auc is None else r.val_auc for r in self.epochs]

    @property
    def train_loss(self) -> list[float]:
        return [r.train_loss for r in self.epochs]

    @property
    def val_loss(self) -> list[float]:
        return [float("nan") if r.val_loss is None else r.val_loss for r in self.epochs]


def batch_loader(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool,
    generator: torch.Generator | None = None,
) -> torch.utils.data.DataLoader:
    """Whole-batch loader over ``(x, y)``: the same batches as
    ``DataLoader(TensorDataset(x, y), batch_size, shuffle, drop_last, generator)``,
    fetched by index without per-sample collation."""
    dataset = torch.utils.data.TensorDataset(x, y)
    sampler: torch.utils.data.Sampler = (
        torch.utils.data.RandomSampler(dataset, generator=generator)
        if shuffle
        else torch.utils.data.SequentialSampler(dataset)
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=torch.utils.data.BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
    )


def _val_loss(model: Any, crit: Any, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Mean loss over the validation samples (eval mode, batches weighted by size)."""
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            xb, yb = x[s : s + batch], y[s : s + batch]
            total += float(crit(model(xb), yb)) * len(xb)
    model.train(was_training)
    return total / max(len(x), 1)


def train_model(
    model: torch.nn.Module,
    train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    crit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[float]:
    """Train the GSNN alone for ``epochs`` epochs (no regressor, no validation, no early
    stop); left in eval mode. Used to retrain a model on a completed graph
    (:class:`~gsnn_fast.CompletionEdgeScorer`). Returns each epoch's mean batch loss."""
    if crit is None:
        crit = torch.nn.MSELoss()
    losses = []
    model.train()
    for _ in range(epochs):
        total, n = 0.0, 0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = crit(model(xb), yb)
            loss.backward()
            optimizer.step()
            total, n = total + float(loss.detach()), n + 1
        losses.append(total / max(n, 1))
    model.eval()
    return losses


def train_joint(
    model: torch.nn.Module,
    regressor: Any,
    train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    crit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    val_edges: Sequence[tuple[str, str]] | None = None,
    val_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    patience: int | None = None,
    restore_best_model: bool = True,
    log: Callable[[str], None] | None = print,
    progress: bool | None = None,
    stream: Any = None,
) -> TrainHistory:
    """Train ``model`` and ``regressor`` together for up to ``epochs`` epochs.

    Args:
        model: the GSNN (any model the regressor accepts).
        regressor: a :class:`~gsnn_fast.MagnitudeEdgeRegressor` built on ``model``.
        train_loader: iterable of ``(x, y)`` batches, iterated once per epoch.
        optimizer: the GSNN's optimiser (the regressor has its own).
        crit: the loss (default ``MSELoss``).
        val_edges: function->function edges withheld from the model's graph; the
            regressor's ROC-AUC on them (against the non-edges) is computed every epoch
            and picks its best checkpoint (``maybe_save_best``). None: no selection.
        val_data: ``(x_val, y_val)`` for a validation loss per epoch.
        patience: with ``val_data``, stop after this many epochs without a lower
            validation loss (None: run every epoch).
        restore_best_model: with ``val_data``, load the GSNN weights of the epoch with
            the lowest validation loss at the end.
        log: receives one line per epoch (None: silent).
        progress: a self-overwriting line over each epoch's batches with an ETA
            (:class:`gsnn_fast.progress.Progress`); default: when the stream is a terminal.
        stream: where the progress line goes (default ``sys.stdout``).

    Returns:
        :class:`TrainHistory`. The regressor is left at its last state (call
        ``regressor.load_best()`` for the best checkpoint).
    """
    from ..progress import Progress, format_seconds

    if crit is None:
        crit = torch.nn.MSELoss()
    say = log if log is not None else (lambda _msg: None)
    stream = stream if stream is not None else sys.stdout
    if progress is None:
        progress = bool(getattr(stream, "isatty", lambda: False)())
    try:
        n_batches: int | None = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        n_batches = None
    dev = next(iter(model.parameters())).device
    history = TrainHistory()
    best_val = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    t_train = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        regressor.train()
        loss_sum = torch.zeros((), device=dev)
        n_steps = 0
        n_seen = 0
        bar = Progress(
            f"epoch {epoch + 1}/{epochs}",
            total=n_batches,
            enabled=progress,
            stream=stream,
        )
        try:
            for x_batch, y_batch in train_loader:
                regressor.pre_forward()
                yhat = model(x_batch)
                loss = crit(yhat, y_batch)
                regressor.arm_retained_grads()
                optimizer.zero_grad()
                loss.backward()
                regressor.aux_step(sync=False)
                optimizer.step()
                loss_sum += loss.detach()
                n_steps += 1
                n_seen += len(x_batch)
                bar.update(n_steps, samples=n_seen)
        except BaseException:
            bar.abort()
            raise
        bar.clear()
        val_auc = val_mrr = None
        if val_edges:
            val = regressor.evaluate_against(val_edges)
            val_auc, val_mrr = float(val["auc"]), float(val["mrr"])
            if regressor.maybe_save_best(val["auc"]):
                history.best_regressor_epoch = epoch + 1
        val_loss = None
        if val_data is not None:
            val_loss = _val_loss(model, crit, val_data[0], val_data[1], 1024)
            if val_loss < best_val:
                best_val, since_best = val_loss, 0
                history.best_model_epoch = epoch + 1
                if restore_best_model:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
        train_loss = float(loss_sum) / max(n_steps, 1)
        rec = EpochRecord(
            epoch + 1, train_loss, val_loss, val_auc, val_mrr, n_steps, time.perf_counter() - t0
        )
        history.epochs.append(rec)
        line = f"epoch {epoch + 1:2d}/{epochs} | train loss: {train_loss:.4f}"
        if val_loss is not None:
            line += f" | val loss: {val_loss:.4f}"
        if val_auc is not None:
            line += f" | val AUC: {val_auc:.3f} | MRR: {val_mrr:.3f}"
        if log is not None and progress and epoch + 1 < epochs:
            per_epoch = (time.perf_counter() - t_train) / (epoch + 1)
            line += f" | ETA {format_seconds(per_epoch * (epochs - epoch - 1))}"
        say(line)
        if patience is not None and val_data is not None and since_best >= patience:
            history.stopped_early = True
            say(
                f"early stop: no lower validation loss for {patience} epochs "
                f"(best epoch {history.best_model_epoch})"
            )
            break
    if restore_best_model and best_state is not None:
        model.load_state_dict(best_state)
    return history
