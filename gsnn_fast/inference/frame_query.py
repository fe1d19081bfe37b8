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
  by ``t_e m / C_e``; a bucket whose lower bound cannot beat the terms above it never
  sets a q-value, so only the buckets that might are gathered (their p-values exact,
  sorted, their terms exact). Buckets that would gather too many entries are split
  (finer grid) and counted again first.
* ``top_k``: the per-column best sources come from ``gsnn_fast::column_top_k``;
  ``q_threshold``: the BH step-up cutoff lies in the highest bucket whose lower bound
  is <= the threshold, so the kept rows are the buckets up to there, gathered.

The bucket of every gathered row and kept row is checked against its exact p-value;
if p were not monotone in the score (it is for the Fisher test) :func:`select_rows`
returns None and the caller builds the full frame instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ..ops.frame import argsort_stable, column_top_k, score_buckets
from .significance import one_sided_normal_p

__all__ = ["Selection", "rows_frame", "score_edges", "select_rows"]

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


def _split(
    t: np.ndarray, edges: np.ndarray, dfs: np.ndarray, buckets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The grid and its score edges with each bucket in ``buckets`` (indices in
    1..E-1) cut geometrically; only the new edges are computed."""
    extra = []
    for e in buckets.tolist():
        lo, hi = t[e - 1], t[e]
        sub = np.geomspace(max(lo, 1e-320), hi, _SPLIT + 1)[1:-1]
        extra.append(sub[(sub > lo) & (sub < hi)])
    new = np.setdiff1d(np.concatenate(extra), t) if extra else np.empty(0)
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


def _upper_above(ub: np.ndarray) -> np.ndarray:
    """``min(1, min_{e' > e} ub[e'])`` for every e."""
    rev = np.minimum.accumulate(ub[::-1])[::-1]
    return np.minimum(np.append(rev[1:], np.inf), 1.0)


def _bucket_of_scores(s: np.ndarray, gid: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The score_buckets rule on a few entries: first e with s >= edges[g, e]."""
    out = np.full(s.size, edges.shape[1], dtype=np.int64)
    ok = ~np.isnan(s)
    for g in np.unique(gid[ok]).tolist():
        sel = ok & (gid == g)
        out[sel] = np.searchsorted(-edges[g], -s[sel], side="left")
    return out


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
    """
    if top_k is None and (q_threshold is None or q_threshold >= 1.0):
        raise ValueError("select_rows: needs top_k or a q_threshold below 1")
    score = score.contiguous()
    N = score.shape[0]
    m = N * (N - 1) if exclude_self else N * N
    flat = score.numpy().reshape(-1)
    dfs = np.broadcast_to(np.asarray(target_df, dtype=np.float64), (N,))
    udf, gid = np.unique(dfs, return_inverse=True)
    gid = gid.astype(np.int64).reshape(-1)
    group = torch.from_numpy(gid)

    kept = kept_s = kept_p = None
    if top_k is not None:
        src = column_top_k(score, int(top_k), exclude_self).numpy()
        dst = np.broadcast_to(np.arange(N, dtype=np.int64)[:, None], src.shape)
        valid = src >= 0
        kept = np.sort(src[valid] * N + dst[valid])
        kept_s = np.take(flat, kept)
        kept_p = np.asarray(p_value(kept_s, kept % N), dtype=np.float64)

    t = _base_grid()
    edges = score_edges(t, udf)
    passes = 0
    for level in range(max_splits + 1):
        counts, _ = score_buckets(score, group, torch.from_numpy(edges), None, exclude_self)
        passes += 1
        b = _bounds(counts.numpy(), t, m)
        E = t.size
        idx = np.arange(E + 1)
        nonempty = b.counts > 0
        if kept is not None:
            kept_b = _bucket_of_scores(kept_s, np.take(gid, kept % N), edges)
            if not np.array_equal(kept_b, np.searchsorted(t, kept_p, side="left")):
                return None
            low = int(kept_b.min()) if kept_b.size else E + 1
            sel = nonempty & (idx >= low) & (b.lb < _upper_above(b.ub)) & (idx > 0) & (idx < E)
            unsure = sel
        else:
            assert q_threshold is not None
            e_max = int(np.flatnonzero(nonempty & (b.lb <= q_threshold)).max(initial=-1))
            sure = np.flatnonzero(nonempty & (b.ub <= q_threshold))
            e_hi = int(sure.max()) if sure.size else -1
            sel = nonempty & (idx <= e_max)
            unsure = sel & (idx > e_hi) & (idx > 0)
        if int(b.counts[unsure].sum()) <= budget or level == max_splits:
            break
        t, edges = _split(t, edges, udf, np.flatnonzero(unsure & (idx < E)))
    _, pos_t = score_buckets(
        score, group, torch.from_numpy(edges), torch.from_numpy(sel), exclude_self
    )
    passes += 1
    pos = pos_t.numpy()
    s = np.take(flat, pos)
    p = np.asarray(p_value(s, pos % N), dtype=np.float64)
    pb = np.searchsorted(t, p, side="left")
    if pos.size != int(b.counts[sel].sum()) or not np.array_equal(
        np.bincount(pb, minlength=E + 1)[sel], b.counts[sel]
    ):
        return None
    order = np.argsort(p, kind="stable")
    p_sorted, pb_sorted = p[order], pb[order]
    first = np.searchsorted(pb_sorted, pb_sorted, side="left")
    ranks = (b.C - b.counts)[pb_sorted] + (np.arange(p.size) - first) + 1
    terms = p_sorted * (float(m) / ranks.astype(np.float64))
    suffix = np.append(np.minimum.accumulate(terms[::-1])[::-1], np.inf)
    if kept is not None:
        assert kept_p is not None and kept_s is not None
        q = np.minimum(suffix[np.searchsorted(p_sorted, kept_p, side="left")], 1.0)
        q[kept_p == 0.0] = 0.0
        rows, rs, rp, gathered = kept, kept_s, kept_p, pos.size
        if q_threshold is not None:
            keep = q <= q_threshold
            rows, rs, rp, q = rows[keep], rs[keep], rp[keep], q[keep]
    else:
        # the gathered buckets are a prefix of the ascending p order: ranks 1..T
        q = np.minimum(suffix[:-1], 1.0)
        keep = q <= q_threshold
        take = order[keep]
        by_pos = np.argsort(pos[take], kind="stable")
        take = take[by_pos]
        rows, rs, rp, q = pos[take], s[take], p[take], q[keep][by_pos]
        gathered = pos.size - rows.size
    # frame order: score descending, NaN last, ties by flat position (rows ascending)
    fo = argsort_stable(torch.from_numpy(np.ascontiguousarray(rs)), True).numpy()
    return Selection(rows[fo], rs[fo], rp[fo], q[fo], passes, int(gathered))


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
    categories = pd.Index(list(names))
    data: dict[str, object] = {
        "src_func": pd.Categorical.from_codes(src, categories=categories),
        "dst_func": pd.Categorical.from_codes(dst, categories=categories),
        "src_idx": src,
        "dst_idx": dst,
    }
    data.update(columns)
    data["p_value"] = p
    data["q_value"] = q
    frame = pd.DataFrame(data, copy=False)
    frame.attrs["nodes"] = list(names)
    return frame
