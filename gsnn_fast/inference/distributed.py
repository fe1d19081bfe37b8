"""Edge inference across processes (``torch.distributed``: gloo on CPUs, NCCL on GPUs).

Two ways to spread a :class:`MagnitudeEdgeInferer` over ``torchrun`` processes:

**Data parallel** (the statistics fit on every process; the data does not): each rank
fits its own shard of the batches, then :func:`gather_statistics` gives every rank the
sums of all shards, added in rank order (rank 0's + rank 1's + ...; broadcasts, not
``all_reduce``, whose order of addition is not fixed). The result equals
``statistics.merge(rank0, rank1, ...)`` bit for bit, on every rank.

**Target sharded** (N too large for one device): rank r owns a contiguous block of
targets ``j0 <= j < j1`` (:func:`target_block`) and holds ``sum_xy[:, :, j0:j1]`` and,
with ``track_xx``, the columns of ``sum_xx`` its targets' partial correlations condition
on (the union of their parents) -- about 1 / world of the ``[P, N, N]`` memory. Every
rank runs the forward / backward of every batch (:func:`fit_target_shard`);
:func:`evaluate_sharded` scores the rank's columns and returns, on every rank, the
global ``top_k`` / ``q_threshold`` rows with BH q-values over all N^2 candidates,
exactly (bit for bit) as one process's ``evaluate`` would: the per-column top-k is
local, the bucket counts of :mod:`.frame_query` are summed over the ranks (integers:
any order), and the few exact p-values it needs are gathered.

Worked example (``infer_sharded.py``, run with ``torchrun --nproc-per-node 2
infer_sharded.py`` on one machine, or with ``--nnodes`` / ``--rdzv-endpoint`` across
machines)::

    import torch.distributed as dist
    from gsnn_fast import MagnitudeEdgeInferer
    from gsnn_fast.inference import distributed as gd

    dist.init_process_group("gloo")          # "nccl" with one GPU per rank
    rank, world = dist.get_rank(), dist.get_world_size()
    model, data, loader = build()            # the same model, graph and batches on all ranks
    inferer = MagnitudeEdgeInferer(model, data, track_xx=False)

    # data parallel: each rank its own batches, then the rank-ordered sum
    inferer.fit([b for i, b in enumerate(loader) if i % world == rank], verbose=False)
    gd.gather_statistics(inferer)
    frame = inferer.evaluate(top_k=5)        # the same frame on every rank

    # target sharded: every rank sees every batch, holds 1 / world of sum_xy
    shard = gd.fit_target_shard(inferer, loader)
    frame = gd.evaluate_sharded(inferer, shard, top_k=5)   # the same frame on every rank
    dist.destroy_process_group()

The sharded 'partial' score (relative zero-variance rule) solves reduced square
problems with ``gsnn_fast::pair_partial_corr``: a block of sources x a block of the
rank's targets plus their parents, with the sums of those nodes taken from the shard;
each score is the op's own value, bit for bit. Limits: the sharded fit accumulates
with torch operations in the op's order (a loop over the samples of a batch: exact,
but slower than ``gsnn_fast::pair_stats_update``), and a target block whose parents
are many (a hub) makes its reduced problems large.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from .. import ops
from ..ops.frame import argsort_stable
from . import memory
from .batch_magnitudes import inferer_batches
from .capture import preserved_mode
from .devices import model_on
from .frame_query import Reducer, rows_frame, select_rows
from .kept_rows import pair_corr_at
from .significance import FisherTest
from .statistics import SUMS

__all__ = [
    "TargetShard",
    "evaluate_sharded",
    "fit_target_shard",
    "gather_statistics",
    "shard_scores",
    "target_block",
]

#: Elements per broadcast when the statistics are gathered (bounds the extra memory).
_CHUNK = 1 << 24


def _ranks(group: Any) -> tuple[int, int]:
    return dist.get_rank(group), dist.get_world_size(group)


def _comm_device(group: Any) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_statistics(inferer: Any, group: Any = None) -> Any:
    """Data parallel: replace every rank's statistics by the sum over the ranks, added
    in rank order (``r0 + r1 + ...``, chunk by chunk; the bits of
    ``statistics.merge`` of the ranks' statistics in rank order). ``n``,
    ``n_skipped`` and ``n_batches`` add up. Collective: call on every rank.

    Extra memory: two chunks of 2^24 float64 (the sums are updated in place).
    """
    rank, world = _ranks(group)
    dev = _comm_device(group)
    counts = torch.tensor([inferer.n, inferer.n_skipped, inferer.n_batches], dtype=torch.int64)
    every = [torch.zeros_like(counts, device=dev) for _ in range(world)]
    dist.all_gather(every, counts.to(dev), group=group)
    totals = [sum(int(c[k]) for c in every) for k in range(3)]
    for name in SUMS:
        t = getattr(inferer, name)
        if t is None:
            continue
        t = t.contiguous().clone() if t.stride() != t.contiguous().stride() else t
        flat = t.reshape(-1)
        for c0 in range(0, flat.numel(), _CHUNK):
            part = flat[c0 : c0 + _CHUNK]
            acc: torch.Tensor | None = None
            for r in range(world):
                buf = part.to(dev, copy=True) if r == rank else torch.empty_like(part, device=dev)
                dist.broadcast(buf, src=dist.get_global_rank(group, r) if group else r, group=group)
                acc = buf if acc is None else acc.add_(buf)
            assert acc is not None
            part.copy_(acc)
        setattr(inferer, name, t)
    inferer.n, inferer.n_skipped, inferer.n_batches = totals
    return inferer


def target_block(N: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s targets ``[j0, j1)``: contiguous blocks, sizes differing by one."""
    return rank * N // world, (rank + 1) * N // world


class TargetShard(NamedTuple):
    """One rank's statistics of its target columns ``[j0, j1)``: ``sum_x``, ``sum_x2``
    ``[P, N]`` (every source), ``sum_y``, ``sum_y2`` ``[P, C]`` and ``sum_xy`` ``[P, N, C]``
    (its targets), ``xx_cols`` (the sources its targets condition on) and ``sum_xx``
    ``[P, N, len(xx_cols)]`` or None; the counts as in the inferer."""

    j0: int
    j1: int
    sum_x: torch.Tensor
    sum_y: torch.Tensor
    sum_x2: torch.Tensor
    sum_y2: torch.Tensor
    sum_xy: torch.Tensor
    xx_cols: torch.Tensor
    sum_xx: torch.Tensor | None
    n: int
    n_skipped: int
    n_batches: int

    def nbytes(self) -> int:
        ts = (self.sum_x, self.sum_y, self.sum_x2, self.sum_y2, self.sum_xy, self.sum_xx)
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


def _conditioning_columns(inferer: Any, j0: int, j1: int) -> torch.Tensor:
    ptr, idx = inferer._cond_ptr, inferer._cond_idx
    cols = idx[int(ptr[j0]) : int(ptr[j1])]
    return torch.unique(cols)  # sorted


def _add_batch(acc: list[torch.Tensor], xs: torch.Tensor, ys: torch.Tensor, xk: torch.Tensor):
    """Adds one batch of one pair the way ``gsnn_fast::pair_stats_update`` does: every
    element's batch partial summed from 0.0 over the samples in order (each product
    rounded, then added), then added once to the sums. xs (B, N), ys (B, C), xk (B, K)."""
    px = torch.zeros_like(acc[0])
    py = torch.zeros_like(acc[1])
    px2 = torch.zeros_like(acc[2])
    py2 = torch.zeros_like(acc[3])
    pxy = torch.zeros_like(acc[4])
    pxx = torch.zeros_like(acc[5]) if len(acc) > 5 else None
    buf = torch.empty_like(pxy)
    buf_xx = torch.empty_like(pxx) if pxx is not None else None
    for b in range(xs.shape[0]):
        x, y = xs[b], ys[b]
        px.add_(x)
        py.add_(y)
        px2.add_(x * x)
        py2.add_(y * y)
        torch.mul(x[:, None], y[None, :], out=buf)
        pxy.add_(buf)
        if pxx is not None:
            assert buf_xx is not None
            torch.mul(x[:, None], xk[b][None, :], out=buf_xx)
            pxx.add_(buf_xx)
    for a, p in zip(acc, (px, py, px2, py2, pxy, pxx)):
        if p is not None:
            a.add_(p)


def fit_target_shard(
    inferer: Any,
    dataloader: Iterable[Any],
    crit: Any = None,
    device: str | torch.device = "cpu",
    *,
    group: Any = None,
    nonfinite: Literal["raise", "skip"] = "raise",
) -> TargetShard:
    """Target-sharded fit: this rank's :class:`TargetShard` of the statistics that
    ``inferer.fit(dataloader)`` would compute, bit for bit. Every rank must pass the
    same model, graph and batches (each runs every forward / backward). ``sum_xx``
    columns are kept when the inferer has ``track_xx``. Not collective."""
    rank, world = _ranks(group)
    if crit is None:
        crit = torch.nn.MSELoss()
    dev = torch.device(device)
    blocks = inferer._check_model_for_fit()
    P, N = inferer.n_pairs, inferer.N
    j0, j1 = target_block(N, rank, world)
    C = j1 - j0
    xx_cols = _conditioning_columns(inferer, j0, j1) if inferer.track_xx else None

    n_xx = 0 if xx_cols is None else xx_cols.numel()
    need = 8 * P * (2 * N + 2 * C + N * C + N * n_xx)
    memory.check_memory(
        f"fit_target_shard (rank {rank}, targets {j0}..{j1 - 1})", need, dev, N=N, P=P,
        track_xx=inferer.track_xx,
    )  # fmt: skip

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.float64, device=dev)

    sums = [zeros(P, N), zeros(P, C), zeros(P, N), zeros(P, C), zeros(P, N, C)]
    sum_xx = zeros(P, N, xx_cols.numel()) if xx_cols is not None else None
    ptr = inferer._ptr.to(dev)
    perm = inferer._perm.to(dev) if inferer._perm is not None else None
    cols = torch.arange(j0, j1, device=dev)
    kcols = xx_cols.to(dev) if xx_cols is not None else None
    n = skipped = batches = 0
    with model_on(inferer.model, dev), preserved_mode(inferer.model, training=False):
        for bi, xmag, ymag, dropped in inferer_batches(
            inferer, dataloader, blocks, crit, dev, ptr, perm, nonfinite
        ):
            skipped += dropped
            batches = bi + 1
            if xmag.shape[1] == 0:
                continue
            for p in range(P):
                acc = [s[p] for s in sums]
                if sum_xx is not None:
                    acc.append(sum_xx[p])
                xs = xmag[p]
                xk = xs.index_select(1, kcols) if kcols is not None else xs[:, :0]
                _add_batch(acc, xs, ymag[p + 1].index_select(1, cols), xk)
            n += int(xmag.shape[1])
    if xx_cols is None:
        xx_cols = torch.zeros(0, dtype=torch.int64)
    return TargetShard(j0, j1, *sums[:4], sums[4], xx_cols, sum_xx, n, skipped, batches)


class _DistReducer(Reducer):
    def __init__(self, group: Any):
        self.group = group
        self.dev = _comm_device(group)

    def sum(self, a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.array(a, dtype=np.int64)).to(self.dev)  # a copy: in place
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)  # integers: exact
        return t.cpu().numpy()

    def min(self, v: int) -> int:
        t = torch.tensor([v], dtype=torch.int64, device=self.dev)
        dist.all_reduce(t, op=dist.ReduceOp.MIN, group=self.group)
        return int(t.item())

    def concat(self, a: np.ndarray) -> np.ndarray:
        parts: list[Any] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(parts, np.asarray(a), group=self.group)
        return np.concatenate(parts)


#: Sources / targets per reduced partial-correlation problem of a shard.
_SRC_BLOCK = 1024
_TGT_BLOCK = 256


def _partial_block(
    inferer: Any,
    shard: TargetShard,
    src: torch.Tensor,
    tgt: torch.Tensor,
    ridge: float,
    layer_agg: str,
    per_pair: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``pair_partial_corr`` of the sources ``src`` x the shard's targets ``tgt``
    (sorted global indices) as a reduced square problem over the nodes
    ``V = src | tgt | parents(tgt)`` (in index order, so each conditioning set keeps its
    order): the sums of V from the shard (``sum_xx`` by symmetry for its rows), the
    other targets without parents. Returns ``(agg [S, T], per_pair [P, S, T] or
    None)``."""
    ptr, idx = inferer._cond_ptr, inferer._cond_idx
    sets = [idx[int(ptr[j]) : int(ptr[j + 1])] for j in tgt.tolist()]
    V = torch.unique(torch.cat([src, tgt, *sets]))
    nv, P, dev = V.numel(), inferer.n_pairs, shard.sum_xy.device
    Vd = V.to(dev)
    j0, j1 = shard.j0, shard.j1
    in_j = ((V >= j0) & (V < j1)).to(dev)
    jl = Vd[in_j] - j0
    zeros = torch.zeros((P, nv), dtype=torch.float64, device=dev)
    sy, sy2 = zeros.clone(), zeros.clone()
    sy[:, in_j], sy2[:, in_j] = shard.sum_y[:, jl], shard.sum_y2[:, jl]
    rows = shard.sum_xy.index_select(1, Vd)
    sxy = torch.zeros((P, nv, nv), dtype=torch.float64, device=dev)
    sxy[:, :, in_j] = rows.index_select(2, jl)
    assert shard.sum_xx is not None
    cols = shard.xx_cols.to(dev)
    in_u = torch.isin(Vd, cols)
    uc = torch.searchsorted(cols, Vd[in_u])
    sxx = torch.zeros((P, nv, nv), dtype=torch.float64, device=dev)
    sxx[:, :, in_u] = shard.sum_xx.index_select(1, Vd).index_select(2, uc)
    sxx[:, in_u, :] = sxx[:, :, in_u].transpose(1, 2)  # x_i x_k == x_k x_i, bit for bit
    # conditioning sets of the wanted targets, in V's indices; no set for the others
    sizes = torch.zeros(nv, dtype=torch.int64)
    where = torch.searchsorted(V, tgt)
    sizes[where] = torch.tensor([len(c) for c in sets], dtype=torch.int64)
    cptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(sizes, 0)])
    order = torch.argsort(where)
    cidx = [torch.searchsorted(V, sets[k]) for k in order.tolist()]
    cidx_t = torch.cat(cidx) if cidx else torch.zeros(0, dtype=torch.int64)
    pairs, agg = ops.pair_partial_corr(
        shard.sum_x[:, Vd], sy, shard.sum_x2[:, Vd], sy2, sxy, sxx, cptr.to(dev),
        cidx_t.to(dev), float(shard.n), float(ridge), inferer.tol, layer_agg, per_pair,
    )  # fmt: skip
    si, ti = torch.searchsorted(V, src).to(dev), where.to(dev)
    agg = agg.index_select(0, si).index_select(1, ti)
    if not per_pair:
        return agg, None
    return agg, pairs.index_select(1, si).index_select(2, ti)


def shard_scores(
    inferer: Any,
    shard: TargetShard,
    layer_agg: Literal["mean", "max"] = "mean",
    score: Literal["corr", "partial"] = "corr",
    ridge: float = 1e-8,
) -> torch.Tensor:
    """The ``[N, C]`` aggregated scores of the shard's targets: the columns ``j0:j1`` of
    ``inferer.score_matrices(score, ridge, layer_agg)``, bit for bit. 'partial'
    (relative zero-variance rule) solves reduced problems of ``_SRC_BLOCK`` sources x
    ``_TGT_BLOCK`` targets and their parents with ``gsnn_fast::pair_partial_corr``."""
    if score == "corr":
        _, agg = ops.pair_corr(
            shard.sum_x, shard.sum_y, shard.sum_x2, shard.sum_y2, shard.sum_xy,
            float(shard.n), inferer.tol, inferer.zero_var, layer_agg, False,
        )  # fmt: skip
        return agg
    _check_partial(inferer, shard)
    N, C = inferer.N, shard.j1 - shard.j0
    out = torch.empty((N, C), dtype=torch.float64, device=shard.sum_xy.device)
    for t0 in range(0, C, _TGT_BLOCK):
        tgt = torch.arange(shard.j0 + t0, shard.j0 + min(C, t0 + _TGT_BLOCK))
        for s0 in range(0, N, _SRC_BLOCK):
            src = torch.arange(s0, min(N, s0 + _SRC_BLOCK))
            agg, _ = _partial_block(inferer, shard, src, tgt, ridge, layer_agg, False)
            out[s0 : s0 + src.numel(), t0 : t0 + tgt.numel()] = agg
    return out


def _check_partial(inferer: Any, shard: TargetShard) -> None:
    if shard.sum_xx is None:
        raise ValueError("score: 'partial' needs sum_xx; fit the shard with track_xx=True")
    if inferer.zero_var != "relative":
        raise NotImplementedError("sharded 'partial': the relative zero-variance rule only")


def _partial_pairs_at(
    inferer: Any, shard: TargetShard, src: np.ndarray, dst: np.ndarray, ridge: float
) -> np.ndarray:
    """``[P, rows]``: each pair's partial correlation at the rows (src, dst) of the
    shard, by reduced problems over the rows' sources and targets."""
    P = inferer.n_pairs
    out = np.empty((P, src.size), dtype=np.float64)
    for t0 in range(shard.j0, shard.j1, _TGT_BLOCK):
        in_t = (dst >= t0) & (dst < t0 + _TGT_BLOCK)
        if not in_t.any():
            continue
        tgt = torch.from_numpy(np.unique(dst[in_t]))
        srcs = np.unique(src[in_t])
        for s0 in range(0, srcs.size, _SRC_BLOCK):
            sb = srcs[s0 : s0 + _SRC_BLOCK]
            rows = np.flatnonzero(in_t & np.isin(src, sb))
            _, pp = _partial_block(inferer, shard, torch.from_numpy(sb), tgt, ridge, "max", True)
            assert pp is not None
            si = np.searchsorted(sb, src[rows])
            ti = np.searchsorted(tgt.numpy(), dst[rows])
            out[:, rows] = pp.cpu().numpy()[:, si, ti]
    return out


def evaluate_sharded(
    inferer: Any,
    shard: TargetShard,
    layer_agg: Literal["mean", "max"] = "mean",
    exclude_self: bool = True,
    score: Literal["corr", "partial"] = "corr",
    ridge: float = 1e-8,
    *,
    top_k: int | None = None,
    q_threshold: float | None = None,
    group: Any = None,
) -> pd.DataFrame:
    """``inferer.evaluate(layer_agg, exclude_self, score, ridge, top_k=...,
    q_threshold=...)`` from the ranks' shards: the same frame (rows, columns, p- and
    q-values, bit for bit) on every rank. Collective: call on every rank. 'partial'
    needs a shard fitted with ``track_xx`` and the relative zero-variance rule."""
    if score not in ("corr", "partial"):
        raise ValueError(f"score: unknown value {score!r}; options are ['corr', 'partial']")
    if top_k is None and (q_threshold is None or q_threshold >= 1.0):
        raise ValueError("evaluate_sharded: needs top_k or a q_threshold below 1")
    if shard.n < 3:
        raise RuntimeError(f"too few samples for a correlation (n={shard.n})")
    N, P, j0 = inferer.N, inferer.n_pairs, shard.j0
    agg = shard_scores(inferer, shard, layer_agg, score, ridge)
    if score == "partial":
        test = FisherTest((shard.n - 3 - inferer.n_cond).astype(np.float64))
    else:
        test = FisherTest(np.float64(shard.n - 3))
    sel = select_rows(
        agg.cpu(), test, test.df, exclude_self, top_k, q_threshold,
        col_offset=j0, reducer=_DistReducer(group),
    )  # fmt: skip
    if sel is None:
        raise RuntimeError("evaluate_sharded: p-values not monotone in the scores")
    src, dst = np.divmod(sel.rows, N)
    si, dl = torch.from_numpy(src), torch.from_numpy(dst - j0)
    if score == "partial":
        pairs = _partial_pairs_at(inferer, shard, src, dst, ridge)
    else:
        sums = (shard.sum_x, shard.sum_y, shard.sum_x2, shard.sum_y2, shard.sum_xy)
        n, rule = float(shard.n), inferer.zero_var
        pairs = np.stack([pair_corr_at(sums, n, inferer.tol, rule, p, si, dl) for p in range(P)])
    mine = (sel.rows, sel.score, sel.p, sel.q, pairs)
    parts: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, mine, group=group)
    rows = np.concatenate([x[0] for x in parts])
    cols = [np.concatenate([x[k] for x in parts]) for k in (1, 2, 3)]
    pp = np.concatenate([x[4] for x in parts], axis=1)
    # frame order over all ranks: score descending, NaN last, ties by flat position
    order = np.argsort(rows, kind="stable")
    order = order[argsort_stable(torch.from_numpy(cols[0][order]), True).numpy()]
    rows = rows[order]
    s, p, q = (c[order] for c in cols)
    src, dst = np.divmod(rows, N)
    columns: dict[str, np.ndarray] = {
        "corr": s,
        "has_edge": np.take(inferer._adjacency.ravel(), rows),
    }
    if score == "partial":
        columns["n_cond"] = np.take(inferer.n_cond, dst)
    for k in range(P):
        columns[f"corr_a{k}_g{k + 1}"] = pp[k][order]
    return rows_frame(inferer.function_nodes, src, dst, columns, p, q)
