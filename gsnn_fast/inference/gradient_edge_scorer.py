"""First-order (score-test) edge scores of a trained GSNN: "would adding i -> j lower the loss?"

A missing edge ``i -> j`` would add a term ``W a_i`` (node i's post-activation channels
of block p, through the new edge's feature) to node j's pre-norm channels ``z_j`` of
block p + 1. The loss gradient with respect to that absent weight, at ``W = 0``, is

    dL/dW = sum_b g_j(b) a_i(b)^T,    g_j = dL/dz_j  (block p + 1).

The model absorbs the gradients of the edges it has (at a fit, their gradients are
zero), so a large, consistent gradient of an absent weight marks a connection the loss
wants. To keep memory at a few ``[N, N]`` buffers the channels are reduced on each side
by ``K`` fixed random projections (``r_i = a_i . u_k``, ``s_j = g_j . v_k``); for each
projection and layer pair the signed correlation over samples of ``r_i`` and ``s_j`` is
the score-test statistic of one projected weight (``z = atanh(r) sqrt(n - 3)``). The
``M = K P`` statistics are combined into ``T = sum z^2`` (chi-square with M degrees of
freedom under "no connection"), reported as ``score = T / M`` with its chi-square
p-value and BH q-values. A statistic without data (zero variance: the layer pair sees
no signal at i or no gradient at j) adds nothing to T but still counts in M, and the
p-value uses the number of statistics that had data.

The streaming sums are ``gsnn_fast::pair_stats_update`` (signed projections instead of
magnitudes, the op is the same), the correlations ``gsnn_fast::pair_corr`` and, with
``score='partial'``, ``gsnn_fast::pair_partial_corr`` (conditioning on the target's
known parents). See docs/EDGE_RECOVERY.md for when to use which scorer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import ops
from .batch_magnitudes import unpack_batch
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
from .devices import model_on
from .edges import adjacency, function_edges, parent_sets
from .frame import pair_frame

__all__ = ["GradientEdgeScorer"]

SCORES: tuple[str, ...] = ("corr", "partial")


class GradientEdgeScorer:
    """Post-hoc score-test scores of candidate function -> function edges.

    Args:
        model: a trained GSNN (capture contract of :mod:`.capture`; ``checkpoint`` off).
        data: graph container with ``node_names_dict`` / ``edge_index_dict`` (the known
            function -> function edges).
        projections: K, random channel projections per side (memory ``K (L-1) N^2``
            float64, twice that with ``score='partial'``).
        seed: seed of the projections (fixed: the same seed gives the same scores).
        score: ``'corr'`` (plain correlation per projection) or ``'partial'`` (partial
            correlation given the projections of the target's known parents).
        ridge: ridge of the partial solve.

    Attributes after :meth:`fit`: ``n`` samples, the float64 sums (``[M, N]`` /
    ``[M, N, N]``, M = K (L - 1)), ``function_nodes``, ``N``, ``L``, ``edges``.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        projections: int = 2,
        seed: int = 0,
        score: Literal["corr", "partial"] = "corr",
        ridge: float = 1e-4,
        *,
        combine: Literal["chi2", "signed"] = "chi2",
        activation: Literal["post", "pre"] = "post",
        stages: int = 0,
    ):
        if getattr(model, "checkpoint", False):
            raise ValueError("model: checkpoint must be False (captured tensors get no gradient)")
        if isinstance(projections, bool) or not isinstance(projections, int) or projections < 1:
            raise ValueError(f"projections: must be a positive integer, got {projections!r}")
        if score not in SCORES:
            raise ValueError(f"score: unknown value {score!r}; options are {list(SCORES)}")
        if not isinstance(ridge, (int, float)) or not math.isfinite(ridge) or ridge < 0:
            raise ValueError(f"ridge: must be a finite number >= 0, got {ridge!r}")
        blocks = model_blocks(model)
        names = list(data.node_names_dict["function"])
        self.model = model
        self.data = data
        self.K = int(projections)
        self.seed = int(seed)
        self.score = score
        self.ridge = float(ridge)
        self.combine = combine
        self.activation = activation
        self.stages = int(stages)
        self.function_nodes: list[str] = names
        self.N = len(names)
        self.L = len(blocks)
        self.P = max(self.L - 1, 0)
        if self.P < 1:
            raise ValueError("model: needs two or more ResBlocks (block p -> block p + 1)")
        node_ids = function_node_ids(model)
        if node_ids.numel() != self.N:
            raise ValueError(
                f"data: has {self.N} function nodes but the model has {node_ids.numel()}"
            )
        cg = torch.as_tensor(blocks[0].channel_groups).detach().cpu().reshape(-1)
        self._n_channels = cg.numel()
        self._ptr, self._perm = channel_ptr(cg, node_ids, names)
        counts = (self._ptr[1:] - self._ptr[:-1]).to(torch.int64)
        self._seg = torch.repeat_interleave(torch.arange(self.N), counts)
        gen = torch.Generator().manual_seed(self.seed)
        width = int(self._ptr[-1])
        # (K, C') projection weights of the activation side and the gradient side
        self._u = torch.randn(self.K, width, generator=gen, dtype=torch.float64)
        self._v = torch.randn(self.K, width, generator=gen, dtype=torch.float64)
        self._n_in = int(torch.as_tensor(model.input_node_mask).sum())
        self._n_out = int(torch.as_tensor(model.output_node_mask).sum())
        adj = adjacency(function_edges(data, self.N), self.N)
        self._adjacency = adj
        self.edges = {(names[i], names[j]) for i, j in zip(*np.nonzero(adj))}
        parents = parent_sets(adj)
        self.n_cond = parents.sizes
        self._cond_ptr, self._cond_idx = parents.ptr, parents.idx
        self.n = 0

    # ------------------------------------------------------------------ statistics

    def _project(self, stacked: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(L, B, C') channels -> (K, L, B, N) float64 projections, one per row of w."""
        x = stacked.to(torch.float64)
        out = x.new_zeros((self.K,) + tuple(x.shape[:2]) + (self.N,))
        seg = self._seg.to(x.device)
        for k in range(self.K):
            out[k].index_add_(2, seg, x * w[k].to(x.device))
        return out

    def _batch(self, blocks, x, y, crit, dev) -> tuple[torch.Tensor, torch.Tensor]:
        with capturing(self.model, blocks), torch.enable_grad():
            if x.is_floating_point():
                x = x.detach().requires_grad_(True)
            loss = crit(self.model(x), y)
            pre = collect_captured(blocks, use_pre_norm=True)
            post = collect_captured(blocks, use_pre_norm=False)
            grads = activation_gradients(loss, pre)
            acts = stack_layers(post if self.activation == "post" else pre)
            grd = stack_layers(grads)
            del loss, pre, post, grads
        if self._perm is not None:
            perm = self._perm.to(dev)
            acts, grd = acts.index_select(2, perm), grd.index_select(2, perm)
        return self._project(acts, self._u), self._project(grd, self._v)

    def fit(
        self,
        dataloader: Iterable[Any],
        crit: Any = None,
        device: str | torch.device = "cpu",
        *,
        reset: bool = True,
    ) -> int:
        """Accumulate the projected statistics over ``dataloader``.

        Args:
            reset: start from zero (default); False adds to the sums of earlier calls,
                e.g. the same data at several checkpoints of one training run (the
                statistics then pool the model states).

        The model runs in eval mode; gradients come from ``torch.autograd.grad`` (no
        parameter's ``.grad`` is touched). Returns the number of samples accumulated
        (over every pooled call when ``reset`` is False).
        """
        crit = torch.nn.MSELoss() if crit is None else crit
        dev = torch.device(device)
        blocks = model_blocks(self.model)
        M, N = self.K * self.P, self.N

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=dev)

        if reset or self.n == 0:
            sums = [zeros(M, N) for _ in range(4)]
            sum_xy = zeros(M, N, N)
            sum_xx = zeros(M, N, N) if self.score == "partial" else None
            n = 0
        else:
            sums = [self.sum_x, self.sum_y, self.sum_x2, self.sum_y2]
            sum_xy, sum_xx, n = self.sum_xy, self.sum_xx, self.n
        with model_on(self.model, dev), preserved_mode(self.model, training=False):
            for bi, batch in enumerate(dataloader):
                x, y = unpack_batch(batch, bi, self._n_in, self._n_out)
                ra, sg = self._batch(blocks, x.to(dev), y.to(dev), crit, dev)
                for k in range(self.K):
                    sl = slice(k * self.P, (k + 1) * self.P)
                    ops.pair_stats_update(
                        ra[k].contiguous(), sg[k].contiguous(),
                        *(s[sl] for s in sums), sum_xy[sl],
                        None if sum_xx is None else sum_xx[sl],
                    )  # fmt: skip
                n += int(x.shape[0])
        self.sum_x, self.sum_y, self.sum_x2, self.sum_y2 = sums
        self.sum_xy, self.sum_xx = sum_xy, sum_xx
        self.n = n
        return n

    # ------------------------------------------------------------------ scoring

    def _corr_df(self, cond: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r [M, N, N], df [N])``: the (partial) correlations and each target's
        degrees of freedom."""
        if self.n < 4:
            raise RuntimeError(f"too few samples (n={self.n}): fit on more data first")
        if self.score == "corr":
            r, _ = ops.pair_corr(
                self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy,
                float(self.n), 1e-12, "relative", "mean", True,
            )  # fmt: skip
            return r, torch.full((self.N,), float(self.n - 3), dtype=torch.float64)
        dev = self.sum_x.device
        if cond is None:
            ptr, idx, sizes = self._cond_ptr, self._cond_idx, self.n_cond
        else:
            sets = parent_sets(cond)
            ptr, idx, sizes = sets.ptr, sets.idx, sets.sizes
        r, _ = ops.pair_partial_corr(
            self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy, self.sum_xx,
            ptr.to(dev), idx.to(dev), float(self.n), self.ridge, 1e-12, "mean", True,
        )  # fmt: skip
        return r, torch.as_tensor(self.n - 3.0 - sizes, dtype=torch.float64)

    def z_matrices(self, cond: np.ndarray | None = None) -> torch.Tensor:
        """Per projection and layer pair, the z statistics ``[M, N, N]`` (float64, NaN
        where a variance is zero). ``cond``: optional bool ``[N, N]`` conditioning sets
        ([k, j] = condition target j on source k) instead of the known parents
        (``score='partial'`` only)."""
        r, df = self._corr_df(cond)
        r = r.clamp(-0.9999, 0.9999)
        return torch.atanh(r) * df.to(r.device).clamp_min(1.0).sqrt().view(1, 1, -1)

    def _chi(self, cond: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, m)`` [N, N]: the sum of z^2 over the statistics with data and their
        number, one statistic at a time (no [M, N, N] temporaries)."""
        r, df = self._corr_df(cond)
        scale = df.to(r.device).clamp_min(1.0).view(1, -1)
        t = torch.zeros(r.shape[1:], dtype=torch.float64, device=r.device)
        m = torch.zeros_like(t)
        for k in range(r.shape[0]):
            z = r[k].clamp(-0.9999, 0.9999)
            z.atanh_().square_().mul_(scale)
            ok = ~torch.isnan(z)
            m += ok
            t += z.nan_to_num_(0.0)
        return t, m

    def score_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(score [N, N], p_value [N, N])``: the sum of z^2 over the statistics that have
        data divided by M (NaN where none has), and its chi-square p-value (degrees of
        freedom: the statistics with data); indexed [src, dst].

        With ``stages > 0`` (partial only) each stage conditions every target on its
        strongest source so far as well: a source keeps the score of the stage that
        picked it, the others are rescored given it."""
        t, m = self._chi()
        if self.score == "partial" and self.stages > 0:
            cond = self._adjacency.copy()
            np.fill_diagonal(cond, False)
            picked = np.zeros_like(cond)
            cols = np.arange(self.N)
            for _ in range(self.stages):
                s_now = (t / float(self.K * self.P)).cpu().numpy()
                s_now = np.where((m.cpu().numpy() > 0) & ~cond & ~np.eye(self.N, dtype=bool),
                                 s_now, -np.inf)  # fmt: skip
                best = np.argmax(s_now, axis=0)
                ok = np.isfinite(s_now[best, cols])
                picked[best[ok], cols[ok]] = True
                cond[best[ok], cols[ok]] = True
                t2, m2 = self._chi(cond)
                keep = torch.from_numpy(picked).to(t.device)
                t = torch.where(keep, t, t2)
                m = torch.where(keep, m, m2)
        return self._finish(t, m)

    def _finish(self, t: torch.Tensor, m: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        # a statistic with no data (a zero variance: the layer pair sees no signal at i
        # or no gradient at j) counts as zero evidence, so the score is the sum over all
        # M statistics / M: pairs seen by few layer pairs do not rank by a noisy mean
        score = torch.where(m > 0, t / float(self.K * self.P), torch.full_like(t, float("nan")))
        p = stats.chi2.sf(t.cpu().numpy(), np.maximum(m.cpu().numpy(), 1))
        p[m.cpu().numpy() == 0] = 1.0
        return score.cpu().numpy(), p

    def evaluate(
        self,
        exclude_self: bool = True,
        *,
        top_k: int | None = None,
        q_threshold: float | None = None,
    ) -> pd.DataFrame:
        """The result frame: ``src_func, dst_func, src_idx, dst_idx, score, has_edge,
        p_value, q_value`` sorted by ``score`` descending (NaN last); BH q-values over
        every candidate row (the same conventions as ``MagnitudeEdgeInferer.evaluate``)."""
        score, p = self.score_matrix()
        columns = {"score": score, "has_edge": self._adjacency}
        return pair_frame(
            self.function_nodes,
            columns,
            p,
            "score",
            exclude_self=exclude_self,
            top_k=top_k,
            q_threshold=q_threshold,
        )
