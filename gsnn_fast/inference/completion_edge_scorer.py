"""Gradient edge scores for the pairs a trained GSNN cannot see, by one round of completion.

A pair ``(i, j)`` is *silent* in a graph when no input reaches ``i`` (its activations are
constant, whatever the data) or ``j`` reaches no output (its loss gradient is zero).
Every post-hoc scorer of the trained model gives such a pair no evidence: the
:class:`GradientEdgeScorer` returns NaN for it, and the pair ranks last. Missing edges
are what makes nodes silent, so the silent pairs hold many of the edges one is looking
for (a quarter of them on scale-free graphs with a quarter of the edges held out, half
when half are held out).

:class:`CompletionEdgeScorer` gives them evidence from the data, using only the graph
the model was trained on:

1. Score every pair with :class:`GradientEdgeScorer` on the trained model.
2. Complete the graph: each node without an input path that reaches an output gets its
   ``per_node`` best-scoring candidate parents among the fed nodes; each fed node that
   reaches no output gets its ``per_node`` best-scoring candidate children among the
   nodes that reach one. A node still silent after that (no input path and no output
   path, or no scorable candidate) gets shortcut edges from every input and to every
   output, so that the retrained model can still give it an activity and a gradient.
3. Train a fresh model on the completed graph (``make_model`` / ``train``: the same
   recipe the caller used for the first one; ``train`` is called ``retrain_rounds``
   times) and score it the same way.
4. A pair keeps the first model's score when it was not silent; a silent pair takes the
   completed model's score times ``silent_weight``. The completed model's new edges are
   guesses, and its freshly connected nodes still carry unexplained signal, so its
   scores of the silent pairs run high; the weight keeps them from crowding out the
   scorable pairs (``silent_weight`` 0.5, see docs/EDGE_RECOVERY.md).
5. Re-rank, with ``sibling=True``, the silent pairs ``(u, v)`` whose source ``u`` has
   no input but known children that reach an output. Their scores (and p-values) from
   step 4 are handed out again in the order of a second piece of evidence: how much
   ``v``'s column of first-model scores looks like that of one of ``u``'s children.
   A node missing a parent's signal asks for it from that parent's own ancestors and
   proxies, so two targets that miss the same parent ask the same sources; the
   first model sees both columns even though it cannot see ``u``
   (:func:`sibling_similarity`). The pairs keep the completed model's share of the
   ranking, only their order among themselves changes.
6. With ``placement='band'`` (the default), the silent pairs keep only their order
   from steps 4-5: they are placed in a band of the visible pairs' scores
   (:func:`band_placement`). The silent pair at quantile ``q`` of the silent pairs
   takes the first model's score at quantile ``center + spread (q - 1/2)`` of the
   visible candidate pairs (``band=(0.6, 0.25)``: between the 47.5th and the 72.5th
   percentile). The evidence for the silent pairs is weak (their ROC-AUC among
   themselves is about 0.6), so none of them should outrank the best visible pairs or
   fall below the worst; the band's scale does not depend on how long the completed
   model trained. ``placement='weight'`` keeps step 4's scores.

Graphs without silent pairs are not retrained: the scores are the first scorer's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ..data.graph import GraphData
from .edges import adjacency, function_edges
from .frame import pair_frame
from .gradient_edge_scorer import SCORES, GradientEdgeScorer

__all__ = [
    "CompletionEdgeScorer",
    "band_placement",
    "complete_graph",
    "reachability",
    "sibling_similarity",
]

PLACEMENTS: tuple[str, ...] = ("band", "weight")

IN_F = ("input", "to", "function")
F_F = ("function", "to", "function")
F_OUT = ("function", "to", "output")


def _closure(starts: np.ndarray, nbrs: list[list[int]], n: int) -> np.ndarray:
    seen = np.zeros(n, dtype=bool)
    seen[starts] = True
    todo = deque(int(s) for s in starts)
    while todo:
        u = todo.popleft()
        for v in nbrs[u]:
            if not seen[v]:
                seen[v] = True
                todo.append(v)
    return seen


def reachability(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(fed, reaches)``: bool ``[N]`` over the function nodes of ``data``; ``fed[i]``
    when a path leads from an input to node i, ``reaches[i]`` when a path leads from node
    i to an output (input -> function, function -> function and function -> output
    edges of ``data.edge_index_dict``)."""
    n = len(data.node_names_dict["function"])
    ei = data.edge_index_dict
    ff = function_edges(data, n)
    down: list[list[int]] = [[] for _ in range(n)]
    up: list[list[int]] = [[] for _ in range(n)]
    for s, d in zip(ff[0].tolist(), ff[1].tolist()):
        down[s].append(d)
        up[d].append(s)
    fed0 = np.unique(torch.as_tensor(ei[IN_F])[1].cpu().numpy()) if IN_F in ei else []
    out0 = np.unique(torch.as_tensor(ei[F_OUT])[0].cpu().numpy()) if F_OUT in ei else []
    fed = _closure(np.asarray(fed0, dtype=np.int64), down, n)
    reaches = _closure(np.asarray(out0, dtype=np.int64), up, n)
    return fed, reaches


def silent_pairs(fed: np.ndarray, reaches: np.ndarray) -> np.ndarray:
    """bool ``[N, N]`` ([src, dst]): pairs whose source is not fed or whose target
    reaches no output."""
    return ~fed[:, None] | ~reaches[None, :]


def sibling_similarity(
    score: np.ndarray, known: np.ndarray, fed: np.ndarray, reaches: np.ndarray
) -> np.ndarray:
    """``[N, N]`` ([src, dst]): for a source ``u`` no input reaches and a target ``v``
    that reaches an output, the largest cosine similarity between ``v``'s column of
    first-model scores and that of one of ``u``'s known children that reaches an output;
    NaN elsewhere. A column is ``log(score + 1e-3)`` over the fed sources, centred (NaN
    entries count as the column mean).

    Memory and time: one ``[F, N]`` profile matrix (F fed nodes) and its ``[N, N]``
    Gram matrix, O(F N^2) flops."""
    n = score.shape[0]
    prof = np.log(score[fed] + 1e-3)
    ok = np.isfinite(prof)
    mean = np.where(ok, prof, 0.0).sum(0) / np.maximum(ok.sum(0), 1)
    prof = np.where(ok, prof - mean, 0.0)
    norm = np.sqrt((prof**2).sum(0)) + 1e-12
    cos = (prof.T @ prof) / np.outer(norm, norm)
    out = np.full((n, n), np.nan)
    par = known.copy()
    np.fill_diagonal(par, False)
    for u in np.flatnonzero(~fed):
        kids = np.flatnonzero(par[u] & reaches)
        if kids.size:
            out[u] = cos[kids].max(0)
    out[:, ~reaches] = np.nan
    np.fill_diagonal(out, np.nan)
    return out


def _check_band(band: Any) -> tuple[float, float]:
    try:
        center, spread = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"band: must be two numbers (center, spread), got {band!r}") from None
    if not (0.0 <= center <= 1.0 and 0.0 <= spread <= 1.0) or isinstance(band, str):
        raise ValueError(f"band: center and spread must lie in [0, 1], got {band!r}")
    return center, spread


def band_placement(
    evidence: np.ndarray,
    reference: np.ndarray,
    center: float = 0.6,
    spread: float = 0.25,
    among: np.ndarray | None = None,
) -> np.ndarray:
    """Place silent pairs among the visible pairs' scores (step 4 with
    ``placement='band'``).

    Each value of ``evidence`` takes its mid-rank quantile ``q`` among ``among`` (default:
    ``evidence`` itself), is squeezed to ``center + spread (q - 1/2)`` (clipped to
    [0, 1]), and is replaced by that quantile of ``reference`` (linear interpolation).
    The order of ``evidence`` is kept (ties stay tied); its scale is dropped.

    Args:
        evidence: 1-D finite scores of the silent pairs.
        reference: 1-D finite scores of the visible candidate pairs (not empty).
        center, spread: the band, as quantiles of ``reference``.
        among: 1-D finite scores that define the quantiles of ``evidence``.
    """
    evidence = np.asarray(evidence, dtype=np.float64)
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    among = np.sort(evidence if among is None else np.asarray(among, dtype=np.float64))
    if not ref.size or not among.size:
        raise ValueError("band_placement: reference and among must not be empty")
    lo = np.searchsorted(among, evidence, "left")
    hi = np.searchsorted(among, evidence, "right")
    q = (lo + hi) / (2.0 * among.size)
    # the reference's quantile function by linear interpolation (np.quantile's default),
    # written out: np.quantile partitions once per requested quantile, O(N^2) each
    pos = np.clip(center + spread * (q - 0.5), 0.0, 1.0) * (ref.size - 1)
    k = np.minimum(np.floor(pos).astype(np.int64), ref.size - 1)
    k1 = np.minimum(k + 1, ref.size - 1)
    return ref[k] + (pos - k) * (ref[k1] - ref[k])


def complete_graph(
    data: Any, score: np.ndarray, per_node: int = 1
) -> tuple[GraphData, np.ndarray, dict[str, int]]:
    """The completed graph of step 2 (module docstring).

    Args:
        data: the graph the model was trained on.
        score: ``[N, N]`` scores of its pairs ([src, dst]; NaN: no evidence).
        per_node: candidate parents (children) added per unfed (non-reaching) node.

    Returns:
        ``(completed data, added [N, N] bool function -> function edges, counts)``;
        counts: ``added_edges``, ``shortcut_in_nodes``, ``shortcut_out_nodes``.
    """
    if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
        raise ValueError(f"per_node: must be a positive integer, got {per_node!r}")
    names = data.node_names_dict
    n = len(names["function"])
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (n, n):
        raise ValueError(f"score: expected shape {(n, n)}, got {score.shape}")
    fed, reaches = reachability(data)
    known = adjacency(function_edges(data, n), n)
    s = np.where(np.isnan(score) | known | np.eye(n, dtype=bool), -np.inf, score)
    added = np.zeros((n, n), dtype=bool)
    for j in np.flatnonzero(~fed & reaches):  # best fed parents of an unfed target
        col = np.where(fed, s[:, j], -np.inf)
        for i in np.argsort(-col, kind="stable")[:per_node]:
            if np.isfinite(col[i]):
                added[i, j] = True
    for i in np.flatnonzero(fed & ~reaches):  # best reaching children of a dead-end source
        row = np.where(reaches, s[i, :], -np.inf)
        for j in np.argsort(-row, kind="stable")[:per_node]:
            if np.isfinite(row[j]):
                added[i, j] = True
    ei = {
        et: torch.as_tensor(data.edge_index_dict[et]).cpu().clone() for et in data.edge_index_dict
    }
    add = torch.from_numpy(np.stack(np.nonzero(added)).astype(np.int64))
    ei[F_F] = torch.cat([ei[F_F].reshape(2, -1), add], 1) if F_F in ei else add
    stage = GraphData(ei, names)
    fed2, reaches2 = reachability(stage)
    n_in, n_out = len(names["input"]), len(names["output"])
    lone_in, lone_out = np.flatnonzero(~fed2), np.flatnonzero(~reaches2)
    if lone_in.size and n_in:
        src = np.tile(np.arange(n_in), lone_in.size)
        dst = np.repeat(lone_in, n_in)
        ei[IN_F] = torch.cat([ei[IN_F].reshape(2, -1), torch.from_numpy(np.stack([src, dst]))], 1)
    if lone_out.size and n_out:
        src = np.repeat(lone_out, n_out)
        dst = np.tile(np.arange(n_out), lone_out.size)
        ei[F_OUT] = torch.cat([ei[F_OUT].reshape(2, -1), torch.from_numpy(np.stack([src, dst]))], 1)
    counts = {
        "added_edges": int(added.sum()),
        "shortcut_in_nodes": int(lone_in.size) if n_in else 0,
        "shortcut_out_nodes": int(lone_out.size) if n_out else 0,
    }
    return GraphData(ei, names), added, counts


class CompletionEdgeScorer:
    """Score-test scores of every pair, silent pairs included (module docstring).

    Args:
        model: the trained GSNN (as for :class:`GradientEdgeScorer`).
        data: the graph it was trained on.
        make_model: ``make_model(completed_data) -> model``: a fresh, untrained model on
            a graph (the same architecture and settings as ``model``).
        train: ``train(model) -> None``: trains it in place (the same recipe, data and
            epochs as ``model`` had).
        per_node: candidate parents / children added per silent node (step 2).
        silent_weight: factor on the completed model's scores of silent pairs (> 0).
        sibling: re-rank the silent pairs of unfed sources with known children by
            :func:`sibling_similarity` (step 5).
        placement: ``'band'`` (step 6) or ``'weight'`` (the silent pairs keep
            ``silent_weight`` times the completed model's scores).
        band: ``(center, spread)`` of step 6, quantiles in [0, 1].
        retrain_rounds: how many times ``train`` is called on the completed model
            (each call runs the caller's recipe once more on the same model).
        projections, seed, score, ridge: of both :class:`GradientEdgeScorer` runs.

    Attributes after :meth:`fit`: ``base`` (the first scorer), ``completed`` (the second,
    None when nothing was silent), ``completed_model``, ``completed_data``, ``silent``
    (bool ``[N, N]``), ``added`` (bool ``[N, N]``: edges of the completion), ``counts``,
    ``seconds`` (``base_fit``, ``retrain``, ``completed_fit``).
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        make_model: Callable[[GraphData], Any],
        train: Callable[[Any], None],
        *,
        per_node: int = 1,
        silent_weight: float = 0.5,
        sibling: bool = True,
        placement: Literal["band", "weight"] = "band",
        band: tuple[float, float] = (0.6, 0.25),
        retrain_rounds: int = 1,
        projections: int = 2,
        seed: int = 0,
        score: Literal["corr", "partial"] = "partial",
        ridge: float = 1e-4,
    ):
        if not callable(make_model) or not callable(train):
            raise TypeError("make_model and train: must be callables")
        if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
            raise ValueError(f"per_node: must be a positive integer, got {per_node!r}")
        if (
            isinstance(silent_weight, bool)
            or not isinstance(silent_weight, (int, float))
            or not math.isfinite(silent_weight)
            or silent_weight <= 0
        ):
            raise ValueError(f"silent_weight: must be a finite number > 0, got {silent_weight!r}")
        if score not in SCORES:
            raise ValueError(f"score: unknown value {score!r}; options are {list(SCORES)}")
        self.model, self.data = model, data
        self.make_model, self.train = make_model, train
        self.per_node = per_node
        self.silent_weight = float(silent_weight)
        if not isinstance(sibling, bool):
            raise ValueError(f"sibling: must be True or False, got {sibling!r}")
        self.sibling = sibling
        if placement not in PLACEMENTS:
            raise ValueError(
                f"placement: unknown value {placement!r}; options are {list(PLACEMENTS)}"
            )
        self.placement = placement
        self.band = _check_band(band)
        if (
            isinstance(retrain_rounds, bool)
            or not isinstance(retrain_rounds, int)
            or retrain_rounds < 1
        ):
            raise ValueError(f"retrain_rounds: must be a positive integer, got {retrain_rounds!r}")
        self.retrain_rounds = retrain_rounds
        self._fed, self._reaches = reachability(data)
        self._kw = {"projections": projections, "seed": seed, "score": score, "ridge": ridge}
        # validates the model and the remaining options now, not after a retraining
        self.base = GradientEdgeScorer(model, data, **self._kw)
        self.function_nodes: list[str] = self.base.function_nodes
        self.N = self.base.N
        self.silent = silent_pairs(self._fed, self._reaches)
        np.fill_diagonal(self.silent, False)
        self.completed: GradientEdgeScorer | None = None
        self.completed_model: Any = None
        self.completed_data: GraphData | None = None
        self.added = np.zeros((self.N, self.N), dtype=bool)
        self.counts = {"added_edges": 0, "shortcut_in_nodes": 0, "shortcut_out_nodes": 0}
        self.seconds: dict[str, float] = {}
        self._fitted = False

    def fit(
        self, dataloader: Iterable[Any], crit: Any = None, device: str | torch.device = "cpu"
    ) -> int:
        """Score the trained model, complete the graph, retrain, score again (steps 1-3).
        ``dataloader``: re-iterable ``(x, y)`` batches for both scorers. Returns the
        number of samples per scorer."""
        import time

        t0 = time.perf_counter()
        n = self.base.fit(dataloader, crit=crit, device=device)
        self._s0, self._p0 = self.base.score_matrix()
        self.seconds = {"base_fit": time.perf_counter() - t0}
        if self.silent.any():
            self.completed_data, self.added, self.counts = complete_graph(
                self.data, self._s0, self.per_node
            )
            t0 = time.perf_counter()
            self.completed_model = self.make_model(self.completed_data)
            for _ in range(self.retrain_rounds):
                self.train(self.completed_model)
            self.seconds["retrain"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            self.completed = GradientEdgeScorer(
                self.completed_model, self.completed_data, **self._kw
            )
            self.completed.fit(dataloader, crit=crit, device=device)
            self._s1, self._p1 = self.completed.score_matrix()
            self.seconds["completed_fit"] = time.perf_counter() - t0
        self._fitted = True
        return n

    def score_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(score [N, N], p_value [N, N])`` indexed [src, dst]: the first model's score
        and p-value for the pairs it can see; for the silent pairs, ``silent_weight``
        times the completed model's score and its p-value (NaN / 1 where neither model
        has evidence), re-ranked by sibling similarity where it applies (step 5 of the
        module docstring; score and p-value travel together), then, with
        ``placement='band'``, moved onto the first model's scale (step 6; the p-values
        stay the completed model's)."""
        if not self._fitted:
            raise RuntimeError("call fit() first")
        if self.completed is None:
            return self._s0.copy(), self._p0.copy()
        score = np.where(self.silent, self.silent_weight * self._s1, self._s0)
        p = np.where(self.silent, self._p1, self._p0)
        if self.sibling:
            sib = sibling_similarity(self._s0, self.base._adjacency, self._fed, self._reaches)
            m = self.silent & np.isfinite(sib) & np.isfinite(score) & ~self.base._adjacency
            if m.any():
                # the k-th most similar pair takes the k-th best score and its p-value
                order = np.argsort(-score[m], kind="stable")
                rank = np.argsort(np.argsort(-sib[m], kind="stable"), kind="stable")
                score[m] = score[m][order][rank]
                p[m] = p[m][order][rank]
        if self.placement == "band":
            cand = ~self.base._adjacency & ~np.eye(self.N, dtype=bool)
            placed = self.silent & np.isfinite(score)
            among = score[placed & cand]
            ref = self._s0[~self.silent & cand & np.isfinite(self._s0)]
            if among.size and ref.size:
                score[placed] = band_placement(score[placed], ref, *self.band, among=among)
        return score, p

    def evaluate(
        self,
        exclude_self: bool = True,
        *,
        top_k: int | None = None,
        q_threshold: float | None = None,
    ) -> pd.DataFrame:
        """The result frame: ``src_func, dst_func, src_idx, dst_idx, score, has_edge,
        silent, p_value, q_value``, sorted by ``score`` descending (NaN last), BH
        q-values over every candidate row (the conventions of
        ``GradientEdgeScorer.evaluate``). ``silent``: the pair was scored by the
        completed model."""
        score, p = self.score_matrix()
        columns = {"score": score, "has_edge": self.base._adjacency, "silent": self.silent}
        return pair_frame(
            self.function_nodes,
            columns,
            p,
            "score",
            exclude_self=exclude_self,
            top_k=top_k,
            q_threshold=q_threshold,
        )
