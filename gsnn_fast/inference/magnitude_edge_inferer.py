"""Post-hoc Tier-0 edge inference from activation / gradient magnitudes (SPEC §4).

For every pair of consecutive blocks ``(p, p + 1)`` of a trained GSNN and every pair of
function nodes ``(i, j)``, the score of the candidate edge ``i -> j`` is the correlation
over samples between the activation magnitude of ``i`` at layer ``p`` and the gradient
magnitude of ``j`` at layer ``p + 1`` (or the partial correlation given the graph's own
parents of ``j``). Scores of the ``P = L - 1`` pairs are aggregated (NaN-ignoring mean or
signed max-|.|), tested with one-sided Fisher-z p-values and Benjamini-Hochberg q-values.

Data path of one batch: :mod:`.capture` switches activation capture on, the forward and
``torch.autograd.grad`` give ``(L, B, C)`` activations and gradients,
``gsnn_fast::segment_magnitude`` reduces them per node to float64 ``(L, B, N)``, and
``gsnn_fast::pair_stats_update`` adds the batch to the float64 streaming sums. ``evaluate``
turns the sums into scores -- ``gsnn_fast::pair_corr`` for ``score='corr'`` (every pair and
the layer aggregation in one pass over ``sum_xy``), one pair at a time through
``gsnn_fast::pair_corr`` and ``gsnn_fast::partial_corr`` for ``score='partial'`` -- and builds
the frame from arrays (:mod:`.ranking`).

Differences from the pure-torch ``gsnn.optim.MagnitudeEdgeInferer`` (same API otherwise):

* zero variance is scale-relative by default (``var <= tol * mean^2``; partial variances
  ``<= tol`` times the variance they were reduced from); ``zero_var='absolute'``
  reproduces the old absolute ``1e-12`` rule, including the LU solve of the partial score;
* the sums are float64 torch tensors on the ``fit`` device (numpy arrays there);
* ``fit`` is transactional: an error mid-way leaves the previous statistics and the model
  as they were (no ``.grad`` on parameters, same train/eval mode of every submodule, same
  device, capture flags off, captured tensors released);
* ``evaluate(top_k=..., q_threshold=...)`` and :meth:`score_matrices` serve large N;
* ties in the frame's sort keep (src, dst) order (stable sort).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, TextIO

import numpy as np
import pandas as pd
import torch

from .. import _ops
from . import ranking
from .capture import (
    activation_gradients,
    capturing,
    channel_ptr,
    collect_captured,
    function_node_ids,
    model_blocks,
    preserved_mode,
    stack_layers,
)

__all__ = ["MagnitudeEdgeInferer", "ScoreMatrices"]

REDUCTIONS: tuple[str, ...] = ("l1", "l2")
LAYER_AGGS: tuple[str, ...] = ("mean", "max")
SCORES: tuple[str, ...] = ("corr", "partial")
ZERO_VARS: tuple[str, ...] = ("relative", "absolute")
NONFINITE: tuple[str, ...] = ("raise", "skip")
#: Norms under which post-norm (``use_pre_norm=False``) magnitudes stay meaningful.
POST_NORM_OK: tuple[str, ...] = ("batch", "groupbatch", "none")

_FF = ("function", "to", "function")


def _check_choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: unknown value {value!r}; options are {list(options)}")


class ScoreMatrices(NamedTuple):
    """Raw score tensors (float64, on the device of the statistics), indexed [src, dst].

    ``per_pair`` is ``[P, N, N]`` (pair p = activations of layer p, gradients of layer
    p + 1) or None when not requested; ``aggregated`` is ``[N, N]``.
    """

    per_pair: torch.Tensor | None
    aggregated: torch.Tensor


class _Progress:
    """One updating line (``\\r``) over batches, then a one-line summary."""

    def __init__(self, enabled: bool, total: int | None, stream: TextIO | None = None):
        self.enabled = enabled
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.width = 0
        self.open = False

    def _write(self, msg: str, end: str = "") -> None:
        pad = " " * max(self.width - len(msg), 0)
        self.width = len(msg)
        self.stream.write("\r" + msg + pad + end)
        self.stream.flush()
        self.open = not end

    def update(self, batches: int, n: int, skipped: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.1 and batches != self.total:
            return
        self.last = now
        rate = n / max(now - self.t0, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        skip = f" ({skipped} skipped)" if skipped else ""
        self._write(
            f"MagnitudeEdgeInferer.fit: batch {batches}{of} | n={n}{skip} | {rate:.0f} samples/s"
        )

    def close(self, batches: int, n: int, skipped: int) -> None:
        if not self.enabled:
            return
        dt = time.perf_counter() - self.t0
        skip = f", {skipped} skipped" if skipped else ""
        self._write(
            f"MagnitudeEdgeInferer.fit: {batches} batches, n={n}{skip} in {dt:.2f} s "
            f"({n / max(dt, 1e-9):.0f} samples/s)",
            end="\n",
        )

    def abort(self) -> None:
        if self.enabled and self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def _model_devices(model: Any) -> set[torch.device]:
    if not isinstance(model, torch.nn.Module):
        return set()
    devs = {p.device for p in model.parameters()}
    devs |= {b.device for b in model.buffers()}
    return devs


@contextmanager
def _model_on(model: Any, device: torch.device) -> Iterator[None]:
    """Move a single-device model to ``device`` for the block, then back where it was."""
    devs = _model_devices(model)
    orig = next(iter(devs)) if len(devs) == 1 else None
    move = orig is not None and not _same_device(orig, device)
    if move:
        model.to(device)
    try:
        yield
    finally:
        if move:
            model.to(orig)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


def _edge_array(edge_index: Any) -> np.ndarray:
    if isinstance(edge_index, torch.Tensor):
        arr = edge_index.detach().cpu().numpy()
    else:
        arr = np.asarray(edge_index)
    if arr.size == 0:
        return np.zeros((2, 0), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[0] != 2:
        raise ValueError(
            f"data: edge_index_dict[{_FF}] must have shape (2, E), got {tuple(arr.shape)}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"data: edge_index_dict[{_FF}] must hold integers, got {arr.dtype}")
    return arr.astype(np.int64)


def _partial_corr_absolute(
    corr: torch.Tensor,
    cov_xy: torch.Tensor,
    cov_xx: torch.Tensor,
    var_x: torch.Tensor,
    var_y: torch.Tensor,
    cond_ptr: torch.Tensor,
    cond_idx: torch.Tensor,
    ridge: float,
    tol: float,
) -> torch.Tensor:
    """Partial correlation of one pair under the pure-torch library's absolute rule.

    Reproduces the old NaN pattern: LU solves (a singular system leaves the target's
    column NaN), ``vy <= tol`` or non-finite -> NaN column, ``vx <= tol`` -> NaN, NaN for
    the conditioning set and ``i == j``; targets without parents keep ``corr``'s column.
    Targets are batched by conditioning-set size (chunks bounded in memory). Inputs
    ``[N, N]`` / ``[N]`` float64; returns ``[N, N]`` float64 (deterministic on one device).
    """
    N = corr.shape[0]
    dev = corr.device
    out = corr.clone()
    sizes = (cond_ptr[1:] - cond_ptr[:-1]).cpu()
    if bool((sizes > 0).any()):
        for s in torch.unique(sizes[sizes > 0]).tolist():
            targets = torch.nonzero(sizes == s).reshape(-1)
            chunk = max(1, (1 << 23) // (s * max(N, 1)))
            for c0 in range(0, targets.numel(), chunk):
                J = targets[c0 : c0 + chunk].to(dev)
                T = J.numel()
                S = cond_idx[cond_ptr[J][:, None] + torch.arange(s, device=dev)[None, :]]  # (T, s)
                A = cov_xx[S[:, :, None], S[:, None, :]].clone()  # (T, s, s)
                if ridge > 0:
                    A.diagonal(dim1=-2, dim2=-1).add_(ridge)
                b = cov_xy[S, J[:, None]]  # (T, s)
                C = cov_xx[S, :]  # (T, s, N)
                rhs = torch.cat([b[:, :, None], C], dim=2)
                lu, piv, info = torch.linalg.lu_factor_ex(A)
                # A^-1 from the LU factors, then one batched matmul for all N + 1
                # right-hand sides (much faster than lu_solve on wide right-hand sides)
                eye = torch.eye(s, dtype=A.dtype, device=dev).expand(T, s, s)
                sol = torch.linalg.lu_solve(lu, piv, eye) @ rhs
                alpha, M = sol[:, :, 0], sol[:, :, 1:]
                vy = var_y[J] - (b * alpha).sum(1)  # (T,)
                vx = var_x[None, :] - (C * M).sum(1)  # (T, N)
                num = cov_xy[:, J].T - torch.einsum("tsn,ts->tn", C, alpha)
                denom = torch.sqrt(torch.clamp(vx, min=0.0) * vy[:, None])
                row = num / denom
                bad = (vx <= tol) | ~torch.isfinite(row)
                bad |= ((info != 0) | ~torch.isfinite(vy) | (vy <= tol))[:, None]
                row = torch.where(bad, torch.full_like(row, math.nan), row)
                row.scatter_(1, S, math.nan)
                row[torch.arange(T, device=dev), J] = math.nan
                out[:, J] = torch.clamp(row, -1.0, 1.0).T
    return out


class MagnitudeEdgeInferer:
    """Post-hoc inference of function -> function edges from magnitude correlations.

    Args:
        model: a trained GSNN or any model honouring the capture contract (SPEC §3:
            ``ResBlocks`` with ``_store_activations`` / ``_last_pre_norm_activation`` /
            ``_last_activation``, ``ResBlocks[0].channel_groups``, ``input_node_mask``,
            ``output_node_mask``, ``checkpoint``, ``norm``). Must have ``checkpoint`` off.
        data: graph container with ``node_names_dict`` and ``edge_index_dict`` (the
            function->function edges are the kept graph G_partial).
        reduction: ``'l1'`` (sum |v|) or ``'l2'`` (sqrt sum v^2) over a node's channels.
        use_pre_norm: score the pre-norm activations (default) rather than the post
            activations; False needs ``model.norm`` in batch / groupbatch / none.
        track_xx: keep ``sum_xx`` ``[P, N, N]`` (needed by ``score='partial'``; False
            halves the memory and makes ``score='partial'`` raise).
        zero_var: ``'relative'`` (default; ``var <= tol * mean^2`` counts as zero) or
            ``'absolute'`` (``var <= tol``, the pure-torch library's rule).
        tol: the zero-variance tolerance (1e-12).

    Attributes:
        n, n_skipped, n_batches: samples accumulated, samples dropped as non-finite,
            batches seen by the last ``fit``.
        sum_x, sum_y, sum_x2, sum_y2: ``[P, N]`` float64; sum_xy, sum_xx: ``[P, N, N]``
            float64 (``sum_xx`` None without ``track_xx``), on the last ``fit``'s device.
            After :meth:`reset_stats` they are read-only zero views that hold no memory.
        function_nodes, N, L, n_pairs, edges, parents_by_target, n_cond: graph facts.

    Determinism: ``fit`` and ``evaluate`` give the same bits run to run on a device; the
    magnitude, statistics and (relative-rule) partial-correlation kernels also give the
    same bits on CPU and CUDA.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        reduction: Literal["l1", "l2"] = "l1",
        use_pre_norm: bool = True,
        *,
        track_xx: bool = True,
        zero_var: Literal["relative", "absolute"] = "relative",
        tol: float = 1e-12,
    ):
        if getattr(model, "checkpoint", False):
            raise ValueError(
                "model: checkpoint must be False; gradient checkpointing recomputes the "
                "activations during backward, so the captured tensors get no gradient"
            )
        _check_choice("reduction", reduction, REDUCTIONS)
        _check_choice("zero_var", zero_var, ZERO_VARS)
        if not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"tol: must be a finite number >= 0, got {tol!r}")
        if not use_pre_norm:
            norm = getattr(model, "norm", None)
            if norm not in POST_NORM_OK:
                raise ValueError(
                    f"use_pre_norm: False needs model.norm in {list(POST_NORM_OK)}, got "
                    f"{norm!r}; layer / RMS-style norms remove the per-sample magnitude "
                    "variation, use use_pre_norm=True (the default)"
                )
        blocks = model_blocks(model)
        try:
            names = list(data.node_names_dict["function"])
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError("data: needs node_names_dict['function']") from exc
        if len(set(names)) != len(names):
            raise ValueError("data: node_names_dict['function'] has duplicate names")

        self.model = model
        self.data = data
        self.reduction = reduction
        self.use_pre_norm = bool(use_pre_norm)
        self.track_xx = bool(track_xx)
        self.zero_var = zero_var
        self.tol = float(tol)
        self.function_nodes: list[str] = names
        self.N = len(names)
        self.L = len(blocks)
        self.n_pairs = max(self.L - 1, 0)

        node_ids = function_node_ids(model)
        if node_ids.numel() != self.N:
            raise ValueError(
                f"data: has {self.N} function nodes but the model's homogeneous graph has "
                f"{node_ids.numel()} (nodes neither input nor output)"
            )
        cg = getattr(blocks[0], "channel_groups", None)
        if cg is None:
            raise ValueError("model: ResBlocks[0] has no `channel_groups`")
        self.channel_groups = torch.as_tensor(cg).detach().cpu().reshape(-1)
        self._n_channels = self.channel_groups.numel()
        self._ptr, self._perm = channel_ptr(self.channel_groups, node_ids, names)
        self._n_in = int(torch.as_tensor(model.input_node_mask).sum())
        self._n_out = int(torch.as_tensor(model.output_node_mask).sum())

        ei = getattr(data, "edge_index_dict", None)
        if ei is None:
            raise ValueError("data: needs edge_index_dict")
        arr = _edge_array(ei[_FF]) if _FF in ei else np.zeros((2, 0), dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.N):
            raise ValueError(
                f"data: a function->function edge index is outside [0, {self.N}) "
                f"(min {arr.min()}, max {arr.max()})"
            )
        adj = np.zeros((self.N, self.N), dtype=bool)
        adj[arr[0], arr[1]] = True
        self._adjacency = adj
        self.edges: set[tuple[str, str]] = {(names[i], names[j]) for i, j in zip(*np.nonzero(adj))}
        par = adj.copy()
        np.fill_diagonal(par, False)
        self.parents_by_target: list[np.ndarray] = [
            np.flatnonzero(par[:, j]).astype(np.int64) for j in range(self.N)
        ]
        self.n_cond = par.sum(0).astype(np.int64)
        self._cond_ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(self.n_cond)]))
        self._cond_idx = torch.from_numpy(np.nonzero(par.T)[1].astype(np.int64))
        self.reset_stats()

    # ------------------------------------------------------------------ statistics

    def _zeros(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.float64, device=device)

    def reset_stats(self) -> None:
        """Clear the accumulated statistics (n = 0) and release their memory.

        The sums become zero tensors of the documented shapes that hold no memory
        (read-only expanded views); ``fit`` allocates fresh ones.
        """
        P, N = self.n_pairs, self.N
        z = torch.zeros((), dtype=torch.float64)
        self.n: int = 0
        self.n_skipped: int = 0
        self.n_batches: int = 0
        self.sum_x = z.expand(P, N)
        self.sum_y = z.expand(P, N)
        self.sum_x2 = z.expand(P, N)
        self.sum_y2 = z.expand(P, N)
        self.sum_xy = z.expand(P, N, N)
        self.sum_xx: torch.Tensor | None = z.expand(P, N, N) if self.track_xx else None

    def _check_model_for_fit(self) -> list[Any]:
        if getattr(self.model, "checkpoint", False):
            raise ValueError("model: checkpoint must be False (it was switched on)")
        blocks = model_blocks(self.model)
        if len(blocks) != self.L:
            raise ValueError(f"model: has {len(blocks)} ResBlocks, had {self.L} at construction")
        if self.L < 2:
            raise ValueError(
                f"model: needs at least 2 ResBlocks to form activation/gradient layer pairs, "
                f"got {self.L}"
            )
        return blocks

    def _unpack(self, batch: Any, bi: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            x, y = batch
        except (TypeError, ValueError) as exc:
            raise ValueError(f"dataloader: batch {bi} is not an (x, y) pair") from exc
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(f"dataloader: batch {bi}: x and y must be tensors")
        if x.dim() != 2 or x.shape[1] != self._n_in:
            raise ValueError(
                f"dataloader: batch {bi}: x has shape {tuple(x.shape)}, the model has "
                f"{self._n_in} input nodes (expected (B, {self._n_in}))"
            )
        if y.dim() != 2 or y.shape[1] != self._n_out or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"dataloader: batch {bi}: y has shape {tuple(y.shape)}, the model has "
                f"{self._n_out} output nodes (expected ({x.shape[0]}, {self._n_out}))"
            )
        return x, y

    def _batch_magnitudes(
        self,
        blocks: list[Any],
        x: torch.Tensor,
        y: torch.Tensor,
        crit: Any,
        ptr: torch.Tensor,
        perm: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Activation and gradient magnitudes ``(L, B, N)`` float64 of one batch."""
        with capturing(self.model, blocks), torch.enable_grad():
            if x.is_floating_point():
                # activations then require grad even if the parameters are frozen
                x = x.detach().requires_grad_(True)
            yhat = self.model(x)
            loss = crit(yhat, y)
            acts = collect_captured(blocks, self.use_pre_norm)
            grads = activation_gradients(loss, acts)
            stacked = stack_layers(list(acts) + list(grads))  # (2L, B, C)
            del yhat, loss, acts, grads
        if stacked.shape[-1] != self._n_channels:
            raise RuntimeError(
                f"model: captured tensors have {stacked.shape[-1]} channels, "
                f"ResBlocks[0].channel_groups has {self._n_channels}"
            )
        if perm is not None:
            stacked = stacked.index_select(2, perm)
        mags = _ops.segment_magnitude(stacked, ptr, [self.reduction])[0]
        return mags[: self.L], mags[self.L :]

    def _nonfinite(
        self, xmag: torch.Tensor, ymag: torch.Tensor, bi: int, mode: str
    ) -> torch.Tensor | None:
        """None when all used magnitudes are finite; else the bool mask of samples to
        keep (``mode='skip'``) or a RuntimeError (``'raise'``)."""
        P = self.n_pairs
        xs, ys = xmag[:P], ymag[1:]
        if bool(torch.isfinite(xs).all() & torch.isfinite(ys).all()):
            return None
        bad_x = ~torch.isfinite(xs)  # (P, B, N)
        bad_y = ~torch.isfinite(ys)
        bad = bad_x.any(2).any(0) | bad_y.any(2).any(0)  # (B,)
        if mode == "skip":
            return ~bad
        for l in range(self.L):
            for kind, m in (
                ("activation", bad_x[l] if l < P else None),
                ("gradient", bad_y[l - 1] if l >= 1 else None),
            ):
                if m is not None and bool(m.any()):
                    raise RuntimeError(
                        f"non-finite {kind} magnitude in layer {l} (ResBlocks[{l}]) of batch "
                        f"{bi} ({int(bad.sum())} of {bad.numel()} samples affected); pass "
                        "nonfinite='skip' to drop such samples"
                    )
        raise AssertionError("unreachable")

    def fit(
        self,
        dataloader: Iterable[Any],
        crit: Any = None,
        device: str | torch.device = "cpu",
        verbose: bool = True,
        *,
        nonfinite: Literal["raise", "skip"] = "raise",
    ) -> int:
        """Accumulate the magnitude statistics over ``dataloader`` (replacing old ones).

        Args:
            dataloader: iterable of ``(x, y)`` batches, x ``(B, n_inputs)``,
                y ``(B, n_outputs)``; batch sizes may differ (1 is fine).
            crit: loss ``crit(yhat, y) -> scalar``; default ``torch.nn.MSELoss()``.
            device: where the forward/backward passes and the statistics live. A model
                elsewhere is moved there for the pass and moved back afterwards.
            verbose: one updating progress line (batches, n, samples/s) and a summary.
            nonfinite: ``'raise'`` (RuntimeError naming the layer and batch) or
                ``'skip'`` (drop the samples with a non-finite magnitude in a used layer;
                counted in ``n_skipped``).

        Returns:
            n, the number of samples accumulated.

        The model runs in eval mode; gradients come from ``torch.autograd.grad`` w.r.t.
        the captured activations, so no parameter gets a ``.grad``. Whether fit succeeds
        or raises, the model is left as found; on an error the previous statistics are
        kept. Deterministic: the same batches give the same sums, bit for bit.
        """
        _check_choice("nonfinite", nonfinite, NONFINITE)
        if crit is None:
            crit = torch.nn.MSELoss()
        if not callable(crit):
            raise ValueError(f"crit: must be callable, got {type(crit).__name__}")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device: not a valid torch device: {device!r}") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available")
        if torch.is_inference_mode_enabled():
            raise RuntimeError("fit needs autograd; it cannot run under torch.inference_mode()")
        blocks = self._check_model_for_fit()
        try:
            total: int | None = len(dataloader)  # type: ignore[arg-type]
        except TypeError:
            total = None

        P, N = self.n_pairs, self.N
        sums = [self._zeros((P, N), dev) for _ in range(4)]
        sum_xy = self._zeros((P, N, N), dev)
        sum_xx = self._zeros((P, N, N), dev) if self.track_xx else None
        ptr = self._ptr.to(dev)
        perm = self._perm.to(dev) if self._perm is not None else None
        n = skipped = batches = 0
        progress = _Progress(bool(verbose), total)
        try:
            with _model_on(self.model, dev), preserved_mode(self.model, training=False):
                for bi, batch in enumerate(dataloader):
                    x, y = self._unpack(batch, bi)
                    x, y = x.to(dev), y.to(dev)
                    xmag, ymag = self._batch_magnitudes(blocks, x, y, crit, ptr, perm)
                    keep = self._nonfinite(xmag, ymag, bi, nonfinite)
                    if keep is not None:
                        skipped += int((~keep).sum())
                        xmag, ymag = xmag[:, keep].contiguous(), ymag[:, keep].contiguous()
                    if xmag.shape[1] > 0:
                        _ops.pair_stats_update(xmag, ymag, *sums, sum_xy, sum_xx)
                        n += int(xmag.shape[1])
                    batches = bi + 1
                    progress.update(batches, n, skipped)
        except BaseException:
            progress.abort()
            raise
        progress.close(batches, n, skipped)
        self.sum_x, self.sum_y, self.sum_x2, self.sum_y2 = sums
        self.sum_xy, self.sum_xx = sum_xy, sum_xx
        self.n, self.n_skipped, self.n_batches = n, skipped, batches
        return n

    # ------------------------------------------------------------------ scoring

    def _check_ready(self, score: str) -> None:
        if self.n_pairs == 0:
            raise RuntimeError(
                f"need at least 2 ResBlocks to form activation/gradient pairs; got L={self.L}"
            )
        if self.n < 3:
            raise RuntimeError(f"need at least 3 samples to compute correlations; got n={self.n}")
        if score == "partial" and self.sum_xx is None:
            raise ValueError(
                "score: 'partial' needs sum_xx, which is not tracked; construct the "
                "inferer with track_xx=True and fit again"
            )

    def _corr(self, p: slice, layer_agg: str, per_pair: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``gsnn_fast::pair_corr`` of the pairs ``p``: ``(per_pair [P', N, N] or empty,
        aggregated [N, N])`` float64 (SPEC §4's corr and layer_agg, one pass)."""
        return _ops.pair_corr(
            self.sum_x[p], self.sum_y[p], self.sum_x2[p], self.sum_y2[p], self.sum_xy[p],
            float(self.n), self.tol, self.zero_var, layer_agg, per_pair,
        )  # fmt: skip

    def _pair_scores_absolute(self, ridge: float) -> Iterator[torch.Tensor]:
        """Yield the ``[N, N]`` float64 partial-correlation matrix of each pair p = 0..P-1
        under the absolute zero-variance rule (the pure-torch library's NaN pattern)."""
        n = float(self.n)
        tol = self.tol
        dev = self.sum_x.device
        cptr, cidx = self._cond_ptr.to(dev), self._cond_idx.to(dev)
        assert self.sum_xx is not None
        for p in range(self.n_pairs):
            corr, _, _, var_x, var_y, cov_xy, cov_xx = _ops.pair_moments_torch(
                self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy, self.sum_xx,
                p, n, tol, self.zero_var,
            )  # fmt: skip
            yield _partial_corr_absolute(corr, cov_xy, cov_xx, var_x, var_y, cptr, cidx, ridge, tol)
            del cov_xy, cov_xx, corr  # before the next pair's are formed

    def _validate_scoring(self, layer_agg: str, score: str, ridge: float) -> None:
        _check_choice("layer_agg", layer_agg, LAYER_AGGS)
        _check_choice("score", score, SCORES)
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)):
            raise ValueError(f"ridge: must be a number >= 0, got {ridge!r}")
        if not math.isfinite(ridge) or ridge < 0:
            raise ValueError(f"ridge: must be a finite number >= 0, got {ridge!r}")

    def score_matrices(
        self,
        score: Literal["corr", "partial"] = "corr",
        ridge: float = 1e-8,
        layer_agg: Literal["mean", "max"] = "mean",
        per_pair: bool = True,
    ) -> ScoreMatrices:
        """Raw score tensors without building a frame (what large N needs).

        ``mean`` = NaN-ignoring mean over pairs, ``max`` = the signed value with the
        largest |score| (first pair on ties; NaN where every pair is NaN). ``'corr'``:
        every pair and the aggregate in one pass over ``sum_xy`` (``gsnn_fast::pair_corr``;
        memory: the outputs only). ``'partial'``: one layer pair at a time, aggregated
        incrementally (peak memory a few ``[N, N]`` float64 buffers plus ``[P, N, N]`` when
        ``per_pair``). NaN scores are the canonical quiet NaN.

        Returns:
            :class:`ScoreMatrices` ``(per_pair [P, N, N] or None, aggregated [N, N])``,
            float64, indexed [src, dst], on the device of the statistics. Deterministic.

        Raises:
            RuntimeError: P == 0 or fewer than 3 samples.
            ValueError: unknown ``score`` / ``layer_agg``, bad ``ridge``, or 'partial'
                without ``track_xx``.
        """
        self._validate_scoring(layer_agg, score, ridge)
        self._check_ready(score)
        ridge = float(ridge)
        if score == "corr":
            pairs, agg = self._corr(slice(None), layer_agg, per_pair)
            return ScoreMatrices(pairs if per_pair else None, agg)
        if self.zero_var == "relative":
            dev = self.sum_x.device
            assert self.sum_xx is not None
            pairs, agg = _ops.pair_partial_corr(
                self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy, self.sum_xx,
                self._cond_ptr.to(dev), self._cond_idx.to(dev), float(self.n), ridge, self.tol,
                layer_agg, per_pair,
            )  # fmt: skip
            return ScoreMatrices(pairs if per_pair else None, agg)
        pairs, agg = _ops.fold_pairs(
            self._pair_scores_absolute(ridge), self.n_pairs, self.N, self.sum_x.device,
            _ops.LAYER_AGGS[layer_agg], per_pair,
        )  # fmt: skip
        return ScoreMatrices(pairs if per_pair else None, agg)

    def evaluate(
        self,
        layer_agg: Literal["mean", "max"] = "mean",
        exclude_self: bool = True,
        score: Literal["corr", "partial"] = "corr",
        ridge: float = 1e-8,
        *,
        top_k: int | None = None,
        q_threshold: float | None = None,
    ) -> pd.DataFrame:
        """Scores, p-values and q-values of every candidate edge (SPEC §4).

        Args:
            layer_agg: ``'mean'`` (NaN-ignoring) or ``'max'`` (signed max-|.|) over pairs.
            exclude_self: omit ``i -> i`` rows.
            score: ``'corr'`` or ``'partial'`` (conditioning on the target's parents in
                the data's function->function edges).
            ridge: added to the conditioning covariance's diagonal (``'partial'``).
            top_k: keep only the ``top_k`` highest-scoring sources of each target (NaN
                scores never kept; ties to the lower source index).
            q_threshold: keep only rows with ``q_value <= q_threshold``. q-values are
                always BH over all candidate rows, whatever is kept.

        Returns:
            DataFrame with columns ``src_func, dst_func, src_idx, dst_idx, corr, has_edge``,
            ``n_cond`` (partial only), ``corr_a{p}_g{p+1}`` per pair, ``p_value,
            q_value``; sorted by ``corr`` descending (NaN last, ties in (src, dst) order),
            index reset. p-values: one-sided Fisher z with df = n - 3 (- |S_j|).

        Raises:
            RuntimeError: P == 0 or fewer than 3 samples.
            ValueError: unknown ``layer_agg`` / ``score``, bad ``ridge`` / ``top_k`` /
                ``q_threshold``, or 'partial' without ``track_xx``.
        """
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1
        ):
            raise ValueError(f"top_k: must be None or a positive integer, got {top_k!r}")
        if q_threshold is not None and (
            isinstance(q_threshold, bool)
            or not isinstance(q_threshold, (int, float))
            or not 0.0 <= q_threshold <= 1.0
        ):
            raise ValueError(f"q_threshold: must be None or in [0, 1], got {q_threshold!r}")
        mats = self.score_matrices(score=score, ridge=ridge, layer_agg=layer_agg, per_pair=True)
        agg = mats.aggregated.cpu().numpy()
        assert mats.per_pair is not None
        pairs = mats.per_pair.cpu().numpy()
        N = self.N
        if score == "partial":
            df_of_target = (self.n - 3 - self.n_cond).astype(np.float64)

            def p_value(r: np.ndarray, dst: np.ndarray) -> np.ndarray:
                return ranking.fisher_p_values(r, df_of_target, df_index=dst)
        else:

            def p_value(r: np.ndarray, dst: np.ndarray) -> np.ndarray:
                return ranking.fisher_p_values(r, np.float64(self.n - 3))

        columns: dict[str, np.ndarray] = {"corr": agg, "has_edge": self._adjacency}
        if score == "partial":
            columns["n_cond"] = np.broadcast_to(self.n_cond[None, :], (N, N))
        for p in range(self.n_pairs):
            columns[f"corr_a{p}_g{p + 1}"] = pairs[p]
        return ranking.pair_frame(
            self.function_nodes,
            columns,
            p_value,
            "corr",
            exclude_self=exclude_self,
            top_k=None if top_k is None else int(top_k),
            q_threshold=q_threshold,
            # Fisher p is monotone in r for one df: per target-set size, p follows r
            p_groups=self.n_cond if score == "partial" else None,
        )

    @staticmethod
    def evaluate_target_ranking(
        res: pd.DataFrame,
        positive_edges: Iterable[tuple[str, str]],
        score_col: str = "corr",
        top_k: tuple[int, ...] = (1, 3, 5),
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """Within-target ranking of ``positive_edges`` in a result frame (SPEC §4).

        Rows with a NaN score are dropped; the sources of each ``dst_func`` are ranked by
        ``score_col`` descending, ties by row order. Returns ``(detail, summary)``; see
        :func:`gsnn_fast.inference.ranking.evaluate_target_ranking`. Raises ValueError on
        empty positives or positives naming nodes absent from ``res``.
        """
        return ranking.evaluate_target_ranking(
            res, positive_edges, score_col=score_col, top_k=tuple(top_k)
        )
