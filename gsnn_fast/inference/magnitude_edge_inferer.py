"""Post-hoc edge inference from activation / gradient magnitudes of a trained GSNN.

Longer than the package's ~450-line guide on purpose: one class whose fit (with
accumulate / checkpoints / resume and the memory preflight) and scoring routes share
the statistics' state; the large-N route lives in kept_rows.py and frame_query.py.

The candidate edge ``i -> j`` between function nodes is scored, for each pair of
consecutive blocks ``(p, p + 1)``, by the correlation over samples of i's activation
magnitude at block p with j's gradient magnitude at block p + 1 (or by the partial
correlation given j's parents in the known graph). The ``P = L - 1`` pair scores are
aggregated (NaN-ignoring mean or signed max-|.|) and tested with one-sided Fisher-z
p-values and Benjamini-Hochberg q-values.

Where the work happens: :mod:`.batch_magnitudes` (one batch -> float64 per-node
magnitudes), ``gsnn_fast::pair_stats_update`` (the float64 streaming sums),
``gsnn_fast::pair_corr`` / ``gsnn_fast::pair_partial_corr`` (sums -> scores; the
absolute zero-variance rule in :mod:`.torch_scoring`), :mod:`.frame` and
:mod:`.significance` (scores -> result frame). docs/DECISIONS.md lists where the
behaviour differs from the pure-torch ``gsnn`` library on purpose.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

from .. import ops
from ..progress import Progress
from . import memory
from .batch_magnitudes import inferer_batches
from .capture import channel_ptr, function_node_ids, model_blocks, preserved_mode
from .devices import model_on
from .edges import adjacency, function_edges, parent_sets
from .frame import pair_frame
from .kept_rows import selected_frame
from .metrics import evaluate_target_ranking
from .significance import FisherTest
from .statistics import load_statistics, save_statistics
from .torch_scoring import fold_pairs, pair_scores_absolute

__all__ = ["MagnitudeEdgeInferer", "ScoreMatrices"]

REDUCTIONS: tuple[str, ...] = ("l1", "l2")
LAYER_AGGS: tuple[str, ...] = ("mean", "max")
SCORES: tuple[str, ...] = ("corr", "partial")
ZERO_VARS: tuple[str, ...] = ("relative", "absolute")
NONFINITE: tuple[str, ...] = ("raise", "skip")
#: Norms under which post-norm (``use_pre_norm=False``) magnitudes stay meaningful.
POST_NORM_OK: tuple[str, ...] = ("batch", "groupbatch", "none")


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


class MagnitudeEdgeInferer:
    """Post-hoc inference of function -> function edges from magnitude correlations.

    Args:
        model: a trained GSNN or any model honouring the capture contract of
            :mod:`.capture` (plus ``checkpoint`` and ``norm``); ``checkpoint`` off.
        data: graph container with ``node_names_dict`` and ``edge_index_dict`` (its
            function->function edges are the known graph).
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

        adj = adjacency(function_edges(data, self.N), self.N)
        self._adjacency = adj
        self.edges: set[tuple[str, str]] = {(names[i], names[j]) for i, j in zip(*np.nonzero(adj))}
        parents = parent_sets(adj)
        self.parents_by_target: list[np.ndarray] = parents.by_target
        self.n_cond = parents.sizes
        self._cond_ptr, self._cond_idx = parents.ptr, parents.idx
        self.reset_stats()

    # ------------------------------------------------------------------ statistics

    def _zeros(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return memory.zeros_f64(shape, device)

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
                f"model: has {self.L} ResBlock(s); scoring pairs block p's activations with "
                "block p + 1's gradients, so it needs two or more"
            )
        return blocks

    def fit(
        self,
        dataloader: Iterable[Any],
        crit: Any = None,
        device: str | torch.device = "cpu",
        verbose: bool = True,
        *,
        nonfinite: Literal["raise", "skip"] = "raise",
        accumulate: bool = False,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume_from: str | os.PathLike | None = None,
    ) -> int:
        """Accumulate the magnitude statistics over ``dataloader`` (replacing old ones
        unless ``accumulate``).

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
            accumulate: add to the statistics held (from an earlier ``fit``, ``merge`` or
                ``load_statistics``) instead of replacing them; the sums are updated in
                place, batch by batch, so the bits equal one fit over both data sets.
            checkpoint_path, checkpoint_every: write the statistics (with ``n_batches``
                = the batches of this ``dataloader`` counted so far) to
                ``checkpoint_path`` every ``checkpoint_every`` batches and at the end,
                atomically (temporary file, then ``os.replace``).
            resume_from: a checkpoint of an interrupted fit over the same
                ``dataloader`` (same batches in the same order): its statistics are
                loaded, its ``n_batches`` first batches are skipped (not run), and the
                result equals the uninterrupted fit bit for bit.

        Returns:
            n, the number of samples accumulated (all of them, with ``accumulate`` /
            ``resume_from``).

        Memory: before allocating, the statistics' bytes (``8 * P * N^2`` per
        ``[P, N, N]`` sum) are checked against the device's available memory
        (:mod:`.memory`); InsufficientMemoryError names N, P, both sizes and the options.

        The model runs in eval mode; gradients come from ``torch.autograd.grad`` w.r.t.
        the captured activations, so no parameter gets a ``.grad``. Whether fit succeeds
        or raises, the model is left as found; on an error the previous statistics are
        kept (with ``accumulate`` / ``resume_from``, the sums held are updated in place:
        after an error they hold the batches counted before it, and ``n``,
        ``n_batches`` say so). Deterministic: the same batches give the same sums, bit
        for bit.
        """
        _check_choice("nonfinite", nonfinite, NONFINITE)
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise ValueError(
                f"checkpoint_every: must be a positive integer, got {checkpoint_every!r}"
            )
        if (checkpoint_every is None) != (checkpoint_path is None):
            raise ValueError("checkpoint_path and checkpoint_every go together")
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
        start = 0
        if resume_from is not None:
            load_statistics(self, resume_from, device=dev)
            start = self.n_batches
        carry = resume_from is not None or (accumulate and self.n > 0)
        need = memory.fit_bytes(P, N, self.track_xx, self.L)
        held = 0  # the sums a refit keeps until it completes (on the device it fills)
        if carry:
            need -= memory.statistics_bytes(P, N, self.track_xx)
        elif self.n > 0 and self.sum_xy.device == dev:
            held = memory.statistics_bytes(P, N, self.track_xx)
        memory.check_memory(
            "MagnitudeEdgeInferer.fit", need, dev, N=N, P=P, track_xx=self.track_xx, held=held
        )
        if carry:
            sums = [
                t.to(dev).contiguous() for t in (self.sum_x, self.sum_y, self.sum_x2, self.sum_y2)
            ]
            sum_xy = self.sum_xy.to(dev).contiguous()
            sum_xx = self.sum_xx.to(dev).contiguous() if self.track_xx else None
            self.sum_x, self.sum_y, self.sum_x2, self.sum_y2 = sums
            self.sum_xy, self.sum_xx = sum_xy, sum_xx
            n, skipped = self.n, self.n_skipped
        else:
            sums = [self._zeros((P, N), dev) for _ in range(4)]
            sum_xy = self._zeros((P, N, N), dev)
            sum_xx = self._zeros((P, N, N), dev) if self.track_xx else None
            n = skipped = 0
        ptr = self._ptr.to(dev)
        perm = self._perm.to(dev) if self._perm is not None else None

        def state(batches: int) -> dict[str, Any]:
            return dict(
                zip(("sum_x", "sum_y", "sum_x2", "sum_y2"), sums),
                sum_xy=sum_xy, sum_xx=sum_xx, n=n, n_skipped=skipped, n_batches=batches,
            )  # fmt: skip

        progress = Progress("MagnitudeEdgeInferer.fit", total, enabled=bool(verbose))
        with progress, model_on(self.model, dev), preserved_mode(self.model, training=False):
            for bi, xmag, ymag, dropped in inferer_batches(
                self, dataloader, blocks, crit, dev, ptr, perm, nonfinite, start
            ):
                skipped += dropped
                if xmag.shape[1] > 0:
                    ops.pair_stats_update(xmag, ymag, *sums, sum_xy, sum_xx)
                    n += int(xmag.shape[1])
                if carry:  # the held sums are updated in place: keep the counts true
                    self.n, self.n_skipped, self.n_batches = n, skipped, bi + 1
                if checkpoint_path is not None and (bi + 1) % int(checkpoint_every) == 0:
                    save_statistics(self, checkpoint_path, state=state(bi + 1))
                note = f"{skipped} skipped" if skipped else ""
                progress.update(bi + 1, samples=n, note=note)
        batches = max(progress.count, start)
        if checkpoint_path is not None and n > 0:
            save_statistics(self, checkpoint_path, state=state(batches))
        self.sum_x, self.sum_y, self.sum_x2, self.sum_y2 = sums
        self.sum_xy, self.sum_xx = sum_xy, sum_xx
        self.n, self.n_skipped, self.n_batches = n, skipped, batches
        return n

    # ------------------------------------------------------------------ scoring

    def _check_ready(self, score: str) -> None:
        if self.n_pairs == 0:
            raise RuntimeError(
                f"no layer pair to score: the model has L={self.L} ResBlock(s), two or more "
                "are needed"
            )
        if self.n < 3:
            raise RuntimeError(
                f"too few samples for a correlation (n={self.n}; the Fisher test needs n >= 3): "
                "fit on more data first"
            )
        if score == "partial" and self.sum_xx is None:
            raise ValueError(
                "score: 'partial' needs sum_xx, which is not tracked; construct the "
                "inferer with track_xx=True and fit again"
            )

    def _corr(self, p: slice, layer_agg: str, per_pair: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``gsnn_fast::pair_corr`` of the pairs ``p``: ``(per_pair [P', N, N] or empty,
        aggregated [N, N])`` float64, every pair and the aggregate in one pass."""
        return ops.pair_corr(
            self.sum_x[p], self.sum_y[p], self.sum_x2[p], self.sum_y2[p], self.sum_xy[p],
            float(self.n), self.tol, self.zero_var, layer_agg, per_pair,
        )  # fmt: skip

    def _validate_scoring(self, layer_agg: str, score: str, ridge: float) -> None:
        _check_choice("layer_agg", layer_agg, LAYER_AGGS)
        _check_choice("score", score, SCORES)
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)):
            raise ValueError(f"ridge: must be a number >= 0, got {ridge!r}")
        if not math.isfinite(ridge) or ridge < 0:
            raise ValueError(f"ridge: must be a finite number >= 0, got {ridge!r}")

    def _partial_args(self, ridge: float) -> tuple:
        """The leading arguments of the ``pair_partial_corr`` ops: the sums, the parent
        sets on the statistics' device, n, ridge and tol."""
        dev = self.sum_x.device
        assert self.sum_xx is not None
        sums = (self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy, self.sum_xx)
        ptr, idx = self._cond_ptr.to(dev), self._cond_idx.to(dev)
        return (*sums, ptr, idx, float(self.n), float(ridge), self.tol)

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
        memory: the outputs only). ``'partial'``: ``gsnn_fast::pair_partial_corr``, every
        pair and the aggregate in one pass on the CPU (memory: the outputs only); with
        ``zero_var='absolute'`` one layer pair at a time in torch, aggregated
        incrementally (a few ``[N, N]`` float64 buffers plus ``[P, N, N]`` when
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
            pairs, agg = ops.pair_partial_corr(*self._partial_args(ridge), layer_agg, per_pair)
            return ScoreMatrices(pairs if per_pair else None, agg)
        *sums, ptr, idx, n, ridge, tol = self._partial_args(ridge)
        scores = pair_scores_absolute(tuple(sums), n, ptr, idx, ridge, tol)
        pairs, agg = fold_pairs(
            scores, self.n_pairs, self.N, self.sum_x.device, ops.LAYER_AGGS[layer_agg], per_pair
        )
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
        """Scores, p-values and q-values of every candidate edge.

        Args:
            layer_agg: ``'mean'`` (NaN-ignoring) or ``'max'`` (signed max-|.|) over pairs.
            exclude_self: omit ``i -> i`` rows.
            score: ``'corr'`` or ``'partial'`` (conditioning on the target's parents in
                the data's function->function edges).
            ridge: added to the conditioning covariance's diagonal (``'partial'``).
            top_k: keep only the ``top_k`` highest-scoring sources of each target (NaN
                scores never kept; ties to the lower source index).
            q_threshold: keep only rows with ``q_value <= q_threshold``. q-values are
                always BH over all candidate rows, whatever is kept. With ``top_k`` or
                ``q_threshold < 1`` no full frame is built (:mod:`.kept_rows`): the
                ``[N, N]`` aggregate, a few passes over it and the kept rows; the
                result has the same bits as the full frame filtered.

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
        selected = top_k is not None or (q_threshold is not None and q_threshold < 1.0)
        if self.n_pairs > 0:
            memory.check_evaluate(
                self.n_pairs, self.N, not selected, top_k, self.sum_x.device, self.track_xx
            )
        if selected:
            # large-N route: no full frame, no [P, N, N] per-pair scores
            frame = selected_frame(self, layer_agg, exclude_self, score, ridge, top_k, q_threshold)
            if frame is not None:
                return frame
        mats = self.score_matrices(score=score, ridge=ridge, layer_agg=layer_agg, per_pair=True)
        agg = mats.aggregated.cpu().numpy()
        assert mats.per_pair is not None
        pairs = mats.per_pair.cpu().numpy()
        N = self.N
        if score == "partial":
            test = FisherTest((self.n - 3 - self.n_cond).astype(np.float64))
        else:
            test = FisherTest(np.float64(self.n - 3))
        columns: dict[str, np.ndarray] = {"corr": agg, "has_edge": self._adjacency}
        if score == "partial":
            columns["n_cond"] = np.broadcast_to(self.n_cond[None, :], (N, N))
        for p in range(self.n_pairs):
            columns[f"corr_a{p}_g{p + 1}"] = pairs[p]
        return pair_frame(
            self.function_nodes,
            columns,
            test,
            "corr",
            exclude_self=exclude_self,
            top_k=None if top_k is None else int(top_k),
            q_threshold=q_threshold,
            # one df per conditioning-set size, and for one df p falls as r rises
            p_groups=self.n_cond if score == "partial" else None,
        )

    def _fisher_test(self, score: str) -> FisherTest:
        if score == "partial":
            return FisherTest((self.n - 3 - self.n_cond).astype(np.float64))
        return FisherTest(np.float64(self.n - 3))

    #: Within-target ranking of known edges in a result frame (score column ``'corr'``
    #: by default): :func:`gsnn_fast.inference.metrics.evaluate_target_ranking`.
    evaluate_target_ranking = staticmethod(evaluate_target_ranking)
