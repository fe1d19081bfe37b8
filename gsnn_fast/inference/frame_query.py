"""Top-k and q-threshold rows of a result frame without building the full frame.

``evaluate(top_k=...)`` / ``evaluate(q_threshold=...)`` keep a few rows out of N^2, but
their q-values are Benjamini-Hochberg over all N^2 candidates. This module finds the
kept rows and their exact q-values (the same bits as the full frame filtered
afterwards) from the ``[N, N]`` aggregate scores with a few counting passes and no
sort, p-value or copy of all N^2 entries:

* p is a non-increasing function of the score for a given df (Fisher z), and the df
  depends on the target only (``n - 3``, or ``n - 3 - |S_j|`` for 'partial'); targets
  with one df form a group.
* A grid of p-values ``t_0 = 0 < t_1 < ... < t_{E-1} < 1`` cuts [0, 1] into buckets
  ``(t_{e-1}, t_e]`` (bucket E: p == 1, with the NaN scores). Per group, each
  ``t_e`` becomes a score edge (the smallest double whose p is <= t_e, by bisection on
  the doubles), so ``gsnn_fast::score_buckets`` counts the entries per bucket by
  comparing scores only. The cumulative counts ``C_e`` are the exact BH ranks at the
  edges.
* BH: with the p-values sorted ascending, ``q_(l) = min(1, min_{l' >= l} p_(l') m / l')``.
  A bucket's terms are bounded below by ``t_{e-1} m / C_e`` and its smallest term above
  by ``t_e m / C_e``; a bucket whose lower bound exceeds the upper bounds of the
  other buckets in every kept row's suffix never sets a kept row's q-value, so only
  the buckets that might are gathered (their p-values exact, sorted, their terms
  exact). Buckets that would gather too many entries are split (finer grid) and
  counted again first.
* Several processes, each holding a block of target columns, run the same steps with
  the bucket counts summed across them and the gathered p-values concatenated
  (:class:`Reducer`; :mod:`.distributed`).
* ``top_k``: the per-column best sources come from ``gsnn_fast::column_top_k``;
  ``q_threshold``: the BH step-up cutoff lies in the highest bucket whose lower bound
  is <= the threshold, so the kept rows are the buckets up to there, gathered.

The bucket of every gathered row and kept row is checked against its exact p-value;
if p were not monotone in the score (it is for the Fisher test) :func:`select_rows`
returns None and the caller builds the full frame instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ..ops.frame import argsort_stable, column_top_k, score_buckets
from .frame import pair_columns
from .significance import one_sided_normal_p

__all__ = ["Reducer", "Selection", "rows_frame", "score_edges", "select_rows"]

_SIGN = np.uint64(1 << 63)


def _to_key(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of non-NaN doubles."""
    u = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    return np.where((u & _SIGN) != 0, ~u, u | _SIGN)


def _from_key(k: np.ndarray) -> np.ndarray:
    u = np.where((k & _SIGN) != 0, k & ~_SIGN, ~k)
    return np.ascontiguousarray(u, dtype=np.uint64).view(np.float64)


def _bisect(pred: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Smallest double key in (lo, hi] where ``pred`` (monotone: False then True) holds,
    given pred(hi) True and pred(lo) False; all entries at once."""
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            return hi
        mid = lo + (hi - lo) // np.uint64(2)
        ok = pred(_from_key(mid))
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid, lo)


def _key_of(x: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, _to_key(np.array(x))[()], dtype=np.uint64)


def _fisher_z(r: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The z of :func:`.significance.fisher_p_values`, the same rounded operations."""
    z = np.clip(r, -0.9999, 0.9999)
    np.arctanh(z, out=z)
    z *= scale
    return z


def score_edges(t: np.ndarray, dfs: np.ndarray) -> np.ndarray:
    """``[G, E]``: for each df ``dfs[g]`` and p-value ``t[e] < 1``, the smallest double
    score ``s`` with ``fisher_p_values(s, df) <= t[e]`` (-inf if every score has,
    +inf if none has).

    Two bisections over the doubles: the smallest z with ``one_sided_normal_p(z) <=
    t[e]`` (one per edge), then per df the smallest score whose Fisher z reaches it
    (cheap operations only). Exact when p falls with z and z rises with the score.
    """
    t = np.asarray(t, dtype=np.float64)
    E = t.size
    # stage 1: z edges
    zlo, zhi = _key_of(-np.inf, (E,)), _key_of(np.inf, (E,))
    z_none = one_sided_normal_p(np.full(E, np.inf)) > t  # no z reaches t
    z_t = _from_key(_bisect(lambda z: one_sided_normal_p(z) <= t, zlo, zhi))
    df = np.asarray(dfs, dtype=np.float64)[:, None]
    G = df.shape[0]
    scale = np.broadcast_to(np.sqrt(np.maximum(df, 1.0)), (G, E)).copy()
    target = np.broadcast_to(z_t[None, :], (G, E))
    # stage 2: score edges, on [-1, 1] (the clip makes p constant outside)
    lo, hi = _key_of(-1.0, (G, E)), _key_of(1.0, (G, E))
    every = _fisher_z(np.full((G, E), -1.0), scale) >= target
    none = (_fisher_z(np.full((G, E), 1.0), scale) < target) | z_none[None, :]
    out = _from_key(_bisect(lambda r: _fisher_z(r, scale) >= target, lo, hi))
    out[every] = -np.inf
    out[none | (df < 2)] = np.inf
    return out


def _base_grid() -> np.ndarray:
    """The first p-value grid: 0, 64 steps from 1e-300 to 1e-12, 2048 from 1e-12 to 1
    (ratio ~1.014), and the largest double below 1 (so bucket E holds p == 1 only)."""
    t = np.concatenate(
        [
            [0.0],
            np.geomspace(1e-300, 1e-12, 64),
            np.geomspace(1e-12, 1.0, 2049)[1:-1],
            [np.nextafter(1.0, 0.0)],
        ]
    )
    return np.unique(t)


#: Sub-buckets per split bucket.
_SPLIT = 64


#: Most new edges one split adds (all buckets together).
_SPLIT_EDGES = 1 << 17


def _split(
    t: np.ndarray, edges: np.ndarray, dfs: np.ndarray, buckets: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The grid and its score edges with each bucket in ``buckets`` (indices in
    1..E-1) cut geometrically into parts in proportion to its entries (at most
    ``_SPLIT`` parts, ``_SPLIT_EDGES`` new edges in all); only the new edges are
    computed."""
    if buckets.size == 0:
        return t, edges
    c = counts[buckets].astype(np.float64)
    parts = np.clip(np.ceil(c / c.sum() * _SPLIT_EDGES), 2, _SPLIT).astype(np.int64)
    extra = []
    for e, k in zip(buckets.tolist(), parts.tolist()):
        lo, hi = t[e - 1], t[e]
        sub = np.geomspace(max(lo, 1e-320), hi, k + 1)[1:-1]
        extra.append(sub[(sub > lo) & (sub < hi)])
    new = np.setdiff1d(np.concatenate(extra), t)
    if new.size == 0:
        return t, edges
    t2 = np.concatenate([t, new])
    order = np.argsort(t2, kind="stable")
    return t2[order], np.concatenate([edges, score_edges(new, dfs)], axis=1)[:, order]


class Selection(NamedTuple):
    """Kept rows in frame order: flat positions ``src * N + dst``, their scores,
    p-values and q-values; ``passes``: counting / gathering passes over the scores;
    ``gathered``: entries whose p-value was computed besides the kept rows."""

    rows: np.ndarray
    score: np.ndarray
    p: np.ndarray
    q: np.ndarray
    passes: int
    gathered: int


class _Buckets(NamedTuple):
    counts: np.ndarray  # [E + 1]
    C: np.ndarray  # [E + 1] entries with p <= t_e (C[E] = m)
    lb: np.ndarray  # [E + 1] lower bound of a bucket's BH terms (inf if empty)
    ub: np.ndarray  # [E + 1] upper bound of its smallest term (inf if empty)


def _bounds(counts: np.ndarray, t: np.ndarray, m: int) -> _Buckets:
    E = t.size
    C = np.cumsum(counts)
    with np.errstate(divide="ignore"):
        scale = float(m) / C.astype(np.float64)  # the rank factor of each bucket's last
    lb = np.empty(E + 1)
    ub = np.empty(E + 1)
    lb[0] = ub[0] = 0.0  # p == 0: every term is 0
    with np.errstate(invalid="ignore"):  # 0 * inf of an empty bucket: reset below
        lb[1:E] = t[: E - 1] * scale[1:E]  # the terms' rounding: a true lower bound
        ub[1:E] = t[1:E] * scale[1:E]
    lb[E] = ub[E] = 1.0  # p == 1: terms >= 1 never lower a q-value below 1
    empty = counts == 0
    lb[empty] = np.inf
    ub[empty] = np.inf
    return _Buckets(counts, C, lb, ub)


def _must_gather(b: _Buckets, kept: np.ndarray) -> np.ndarray:
    """The buckets whose exact terms a kept row's q-value may need (``kept``: bool
    [E + 1], the buckets holding kept rows).

    A kept row v in bucket b_v has q = min(1, smallest term from its rank on). Bucket e
    (above the lowest kept bucket) can set it only if its lower bound ``lb[e]`` is at
    most ``min(1, ub[e'])`` over the other buckets e' from h(e) on, h(e) the highest
    kept bucket <= e: each ``ub[e']`` bounds a term in the suffix of every kept row at
    or below h(e). The strict test (a bucket left out has every term above some other
    bucket's term) keeps ties between left-out buckets from hiding the minimum.
    Bucket 0 (p == 0: terms 0) and bucket E (p == 1: terms >= 1) never need it."""
    E = b.ub.size - 1
    idx = np.arange(E + 1)
    seg = np.maximum.accumulate(np.where(kept, idx, -1))  # h(e), -1 below every kept
    above = np.append(np.minimum.accumulate(b.ub[::-1])[::-1][1:], np.inf)
    # the smallest ub over [h(e), e), by running minima restarted at every kept bucket
    within = pd.Series(b.ub).groupby(seg).cummin().to_numpy()
    before = np.full(E + 1, np.inf)
    same = np.append(False, seg[1:] == seg[:-1])
    before[same] = within[:-1][same[1:]]
    bound = np.minimum(np.minimum(above, before), 1.0)
    return (seg >= 0) & (b.counts > 0) & (b.lb <= bound) & (idx > 0) & (idx < E)


def _bucket_of_scores(s: np.ndarray, gid: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The score_buckets rule on a few entries: first e with s >= edges[g, e]."""
    out = np.full(s.size, edges.shape[1], dtype=np.int64)
    ok = ~np.isnan(s)
    for g in np.unique(gid[ok]).tolist():
        sel = ok & (gid == g)
        out[sel] = np.searchsorted(-edges[g], -s[sel], side="left")
    return out


class Reducer:
    """How :func:`select_rows` combines what several processes hold (each a block of
    target columns): this default is the single process (nothing to combine);
    :mod:`.distributed` supplies collectives. ``sum`` adds int64 arrays over the
    processes, ``min`` takes the minimum of an int, ``concat`` joins float64 arrays in
    process order."""

    def sum(self, a: np.ndarray) -> np.ndarray:
        return a

    def min(self, v: int) -> int:
        return v

    def concat(self, a: np.ndarray) -> np.ndarray:
        return a


def select_rows(
    score: torch.Tensor,
    p_value: Callable[[np.ndarray, np.ndarray], np.ndarray],
    target_df: np.ndarray | float,
    exclude_self: bool = True,
    top_k: int | None = None,
    q_threshold: float | None = None,
    *,
    budget: int = 4_000_000,
    max_splits: int = 3,
    col_offset: int = 0,
    reducer: Reducer | None = None,
) -> Selection | None:
    """The rows a result frame keeps under ``top_k`` and / or ``q_threshold``, with
    exact BH q-values over all candidate rows, from the ``[N, N]`` float64 CPU
    aggregate ``score`` (indexed [src, dst]).

    ``p_value(score, dst)`` gives the rows' p-values (the frame's test); ``target_df``
    the df that test uses for each target (a number, or ``[N]``): p must depend on
    (score, df) only and fall as the score rises. ``budget``: most entries gathered
    for exact terms before the grid is split (at most ``max_splits`` times; then the
    selection is gathered whatever its size). ``q_threshold`` must be < 1 unless
    ``top_k`` is given. Returns None when a p-value falls outside the bucket its
    score was counted in (p not monotone): build the full frame then.

    Several processes: each passes its ``[N, C]`` block of target columns
    ``col_offset ..`` (and ``target_df`` of all N targets) and a ``reducer`` of
    collectives; every process gets the kept rows of its block, with the q-values
    of the whole ``[N, N]`` frame. Flat positions are always ``src * N + dst``.
    """
    if top_k is None and (q_threshold is None or q_threshold >= 1.0):
        raise ValueError("select_rows: needs top_k or a q_threshold below 1")
    red = reducer if reducer is not None else Reducer()
    score = score.contiguous()
    N, NC = score.shape
    m = N * (N - 1) if exclude_self else N * N
    flat = score.numpy().reshape(-1)
    dfs = np.broadcast_to(np.asarray(target_df, dtype=np.float64), (N,))
    udf, gid_all = np.unique(dfs, return_inverse=True)
    gid = np.ascontiguousarray(gid_all.astype(np.int64).reshape(-1)[col_offset : col_offset + NC])
    group = torch.from_numpy(gid)

    def to_global(local: np.ndarray) -> np.ndarray:
        i, j = np.divmod(local, NC)
        return i * N + (j + col_offset)

    kept = kept_s = kept_p = None
    if top_k is not None:
        src = column_top_k(score, int(top_k), exclude_self, col_offset).numpy()
        dst = np.broadcast_to(np.arange(NC, dtype=np.int64)[:, None], src.shape)
        valid = src >= 0
        local = np.sort(src[valid] * NC + dst[valid])
        kept_s = np.take(flat, local)
        kept = to_global(local)
        kept_p = np.asarray(p_value(kept_s, kept % N), dtype=np.float64)

    t = _base_grid()
    edges = score_edges(t, udf)
    passes = 0
    for level in range(max_splits + 1):
        local_counts, _ = score_buckets(
            score, group, torch.from_numpy(edges), None, exclude_self, col_offset
        )
        passes += 1
        local_counts = local_counts.numpy()
        b = _bounds(red.sum(local_counts), t, m)
        E = t.size
        idx = np.arange(E + 1)
        nonempty = b.counts > 0
        if kept is not None:
            assert kept_s is not None and kept_p is not None
            kept_b = _bucket_of_scores(kept_s, np.take(gid_all, kept % N), edges)
            same = np.array_equal(kept_b, np.searchsorted(t, kept_p, side="left"))
            if red.min(int(same)) == 0:
                _trace_note("a kept row's p-value lies outside its score bucket")
                return None
            marks = np.zeros(E + 1, dtype=np.int64)
            marks[kept_b] = 1
            marks = red.sum(marks)  # buckets holding a kept row, on any process
            sel = _must_gather(b, marks > 0)
            unsure = sel
        else:
            assert q_threshold is not None
            e_max = int(np.flatnonzero(nonempty & (b.lb <= q_threshold)).max(initial=-1))
            sure = np.flatnonzero(nonempty & (b.ub <= q_threshold))
            e_hi = int(sure.max()) if sure.size else -1
            sel = nonempty & (idx <= e_max)
            unsure = sel & (idx > e_hi) & (idx > 0)
        n_unsure = int(b.counts[unsure].sum())
        _trace(level, E, int(sel.sum()), int(b.counts[sel].sum()), n_unsure)
        if n_unsure <= budget or level == max_splits:
            break
        t, edges = _split(t, edges, udf, np.flatnonzero(unsure & (idx < E)), b.counts)
    _, pos_t = score_buckets(
        score, group, torch.from_numpy(edges), torch.from_numpy(sel), exclude_self, col_offset
    )
    passes += 1
    local_pos = pos_t.numpy()
    s = np.take(flat, local_pos)
    pos = to_global(local_pos)
    p = np.asarray(p_value(s, pos % N), dtype=np.float64)
    pb = np.searchsorted(t, p, side="left")
    ok = local_pos.size == int(local_counts[sel].sum()) and np.array_equal(
        np.bincount(pb, minlength=E + 1)[sel], local_counts[sel]
    )
    if red.min(int(ok)) == 0:
        _trace_note(f"gathered p-values do not match the bucket counts ({local_pos.size})")
        return None
    # every process sorts the same p-values of all gathered entries
    p_sorted = np.sort(red.concat(p), kind="stable")
    pb_sorted = np.searchsorted(t, p_sorted, side="left")
    first = np.searchsorted(pb_sorted, pb_sorted, side="left")
    ranks = (b.C - b.counts)[pb_sorted] + (np.arange(p_sorted.size) - first) + 1
    terms = p_sorted * (float(m) / ranks.astype(np.float64))
    suffix = np.append(np.minimum.accumulate(terms[::-1])[::-1], np.inf)

    def qvalues(pv: np.ndarray) -> np.ndarray:
        # BH q: the smallest term from the row's tie group on (terms of buckets not
        # gathered cannot be smaller); p == 0 gives terms of 0
        q = np.minimum(suffix[np.searchsorted(p_sorted, pv, side="left")], 1.0)
        q[pv == 0.0] = 0.0
        return q

    if kept is not None:
        assert kept_p is not None and kept_s is not None
        rows, rs, rp, q = kept, kept_s, kept_p, qvalues(kept_p)
        gathered = pos.size
        if q_threshold is not None:
            keep = q <= q_threshold
            rows, rs, rp, q = rows[keep], rs[keep], rp[keep], q[keep]
    else:
        q = qvalues(p)
        keep = q <= q_threshold
        rows, rs, rp, q = pos[keep], s[keep], p[keep], q[keep]
        order = np.argsort(rows, kind="stable")
        rows, rs, rp, q = rows[order], rs[order], rp[order], q[order]
        gathered = pos.size - rows.size
    # frame order: score descending, NaN last, ties by flat position (rows ascending)
    fo = argsort_stable(torch.from_numpy(np.ascontiguousarray(rs)), True).numpy()
    return Selection(rows[fo], rs[fo], rp[fo], q[fo], passes, int(gathered))


def _trace_note(what: str) -> None:
    if os.environ.get("GSNN_FAST_TRACE_SELECT"):
        print(f"select_rows: {what}", file=sys.stderr)


def _trace(level: int, E: int, n_sel: int, n_gather: int, n_unsure: int) -> None:
    if os.environ.get("GSNN_FAST_TRACE_SELECT"):
        print(
            f"select_rows level {level}: {E} edges, {n_sel} buckets selected holding "
            f"{n_gather} entries ({n_unsure} undecided)",
            file=sys.stderr,
        )


def rows_frame(
    names: Sequence[str],
    src: np.ndarray,
    dst: np.ndarray,
    columns: Mapping[str, np.ndarray],
    p: np.ndarray,
    q: np.ndarray,
) -> pd.DataFrame:
    """A result frame of the given rows (already in frame order), laid out as
    :func:`.frame.pair_frame` lays out its rows: ``src_func, dst_func`` (Categorical
    over ``names``), ``src_idx, dst_idx``, ``columns`` (one value per row, in order),
    ``p_value, q_value``; ``attrs['nodes']`` = ``names``."""
    data = pair_columns(names, src, dst)
    data.update(columns)
    data["p_value"] = p
    data["q_value"] = q
    frame = pd.DataFrame(data, copy=False)
    frame.attrs["nodes"] = list(names)
    return frame
