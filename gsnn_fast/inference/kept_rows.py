"""The large-N route of ``MagnitudeEdgeInferer.evaluate(top_k=... / q_threshold=...)``:
the kept rows from the ``[N, N]`` aggregate (:func:`.frame_query.select_rows`), then
each layer pair's score at those rows only, then their frame. No N^2 frame. For
'partial' on the CPU (the default zero-variance rule) the aggregate comes from
``gsnn_fast::pair_partial_corr_keep_big``, which also returns the columns of the
targets with big conditioning sets, and the pairs' scores at the other kept rows
from ``gsnn_fast::pair_partial_corr_entries`` (one solve per pair and kept target);
elsewhere the ``[P, N, N]`` per-pair scores are kept when they fit in memory (the
solves dominate), else each pair is solved again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import ops
from . import memory
from .frame_query import rows_frame, select_rows
from .torch_scoring import pair_scores_absolute

__all__ = ["pair_corr_at", "pair_scores_at", "selected_frame"]


def selected_frame(
    inf: Any,
    layer_agg: str,
    exclude_self: bool,
    score: str,
    ridge: float,
    top_k: int | None,
    q_threshold: float | None,
) -> pd.DataFrame | None:
    """``inf.evaluate(layer_agg, exclude_self, score, ridge, top_k=..., q_threshold=...)``
    without the full frame; None when the full frame is needed (p not monotone)."""
    P, N = inf.n_pairs, inf.N
    dev = inf.sum_x.device
    free = memory.available_bytes(dev)
    entries = score == "partial" and _entries_op(inf)
    keep_pairs = (
        score == "partial" and not entries and (free is None or free > 10 * P * N * N + (1 << 30))
    )
    big: tuple[np.ndarray, torch.Tensor] | None = None
    per_pair = None
    if entries:
        # the aggregate, and the columns of the big sets (which the entries op would
        # otherwise solve again)
        inf._validate_scoring(layer_agg, score, ridge)
        inf._check_ready(score)
        agg_cpu, big_t, big_cols = ops.pair_partial_corr_keep_big(
            *inf._partial_args(ridge), layer_agg
        )
        big = (big_t.numpy(), big_cols)
    else:
        mats = inf.score_matrices(
            score=score, ridge=ridge, layer_agg=layer_agg, per_pair=keep_pairs
        )
        agg_cpu = mats.aggregated.cpu()
        per_pair = mats.per_pair
        del mats
    test = inf._fisher_test(score)
    k = None if top_k is None else int(top_k)
    sel = select_rows(agg_cpu, test, test.df, exclude_self, k, q_threshold)
    del agg_cpu
    if sel is None:
        return None
    src, dst = np.divmod(sel.rows, N)
    columns: dict[str, np.ndarray] = {
        "corr": sel.score,
        "has_edge": np.take(inf._adjacency.ravel(), sel.rows),
    }
    if score == "partial":
        columns["n_cond"] = np.take(inf.n_cond, dst)
    if per_pair is not None:
        flat = torch.from_numpy(sel.rows).to(dev)
        values = [per_pair[p].reshape(-1)[flat].cpu().numpy() for p in range(P)]
        del per_pair
    elif big is not None:
        values = _partial_entries(inf, src, dst, ridge, *big)
    else:
        values = pair_scores_at(inf, src, dst, score, ridge)
    for p in range(P):
        columns[f"corr_a{p}_g{p + 1}"] = values[p]
    return rows_frame(inf.function_nodes, src, dst, columns, sel.p, sel.q)


def _partial_entries(
    inf: Any, src: np.ndarray, dst: np.ndarray, ridge: float, big_t: np.ndarray, cols: torch.Tensor
) -> list[np.ndarray]:
    """Each layer pair's 'partial' score at the rows (src, dst): the rows of the big
    sets' targets ``big_t`` (ascending) from their columns ``cols`` [P, B, N], the others
    from ``gsnn_fast::pair_partial_corr_entries`` (the same bits either way)."""
    out = np.empty((inf.n_pairs, src.size), dtype=np.float64)
    b = np.searchsorted(big_t, dst)
    in_big = b < big_t.size
    in_big[in_big] = big_t[b[in_big]] == dst[in_big]
    if in_big.any():
        out[:, in_big] = cols.numpy()[:, b[in_big], src[in_big]]
    rest = ~in_big
    if rest.any():
        out[:, rest] = ops.pair_partial_corr_entries(
            *inf._partial_args(ridge),
            torch.from_numpy(src[rest]),
            torch.from_numpy(dst[rest]),
        ).numpy()
    return list(out)


def _entries_op(inf: Any) -> bool:
    """Whether 'partial' scores of single entries come from
    ``gsnn_fast::pair_partial_corr_entries``: statistics on the CPU, relative rule."""
    return inf.sum_x.device.type == "cpu" and inf.zero_var == "relative"


def pair_scores_at(
    inf: Any, src: np.ndarray, dst: np.ndarray, score: str, ridge: float
) -> list[np.ndarray]:
    """Each layer pair's score at the rows (src, dst): 'corr' elementwise
    (:func:`pair_corr_at`), 'partial' one pair at a time (one ``[N, N]`` alive)."""
    P, N = inf.n_pairs, inf.N
    out = [np.empty(src.size, dtype=np.float64) for _ in range(P)]
    if src.size == 0:
        return out
    dev = inf.sum_x.device
    sums = (inf.sum_x, inf.sum_y, inf.sum_x2, inf.sum_y2, inf.sum_xy)
    if score == "corr":
        si, di = torch.from_numpy(src).to(dev), torch.from_numpy(dst).to(dev)
        return [
            pair_corr_at(sums, float(inf.n), inf.tol, inf.zero_var, p, si, di) for p in range(P)
        ]
    assert inf.sum_xx is not None
    ptr, idx = inf._cond_ptr.to(dev), inf._cond_idx.to(dev)
    flat = src * N + dst
    for p in range(P):
        one = tuple(t[p : p + 1] for t in (*sums, inf.sum_xx))
        if inf.zero_var == "relative":
            # P = 1 with 'max': the pair's own value, copied without arithmetic
            _, s = ops.pair_partial_corr(
                *one, ptr, idx, float(inf.n), float(ridge), inf.tol, "max", False
            )
        else:
            s = next(pair_scores_absolute(one, float(inf.n), ptr, idx, float(ridge), inf.tol))
        out[p] = np.take(s.cpu().numpy().ravel(), flat)
        del s
    return out


def pair_corr_at(
    sums: tuple[torch.Tensor, ...],
    n: float,
    tol: float,
    rule: str,
    p: int,
    si: torch.Tensor,
    dj: torch.Tensor,
) -> np.ndarray:
    """``gsnn_fast::pair_corr``'s value of pair ``p`` at the entries (si, dj), with the
    op's rounded operations in its order (csrc/include/gsnn_fast/pair_corr.h), in numpy
    (torch on the CPU divides by a scalar through its reciprocal: other bits).

    ``sums`` = ``(sum_x, sum_y, sum_x2, sum_y2, sum_xy)``; ``dj`` indexes the columns of
    ``sum_y`` / ``sum_y2`` / ``sum_xy`` (a rank's block of targets, or all of them).
    """
    sum_x, sum_y, sum_x2, sum_y2, sum_xy = sums
    nn = np.float64(n)

    def moments(s1: torch.Tensor, s2: torch.Tensor) -> tuple[np.ndarray, ...]:
        mean = s1.cpu().numpy() / nn
        mm = mean * mean
        var = s2.cpu().numpy() / nn - mm
        var = np.where(var < 0.0, 0.0, var)  # NaN and -0.0 pass through
        return mean, var, var <= (tol * mm if rule == "relative" else tol)

    mx, vx, zx = moments(sum_x[p, si], sum_x2[p, si])
    my, vy, zy = moments(sum_y[p, dj], sum_y2[p, dj])
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (sum_xy[p, si, dj].cpu().numpy() / nn - mx * my) / np.sqrt(vx * vy)
    c = np.where(c < -1.0, -1.0, c)
    c = np.where(c > 1.0, 1.0, c)
    return np.where(np.isnan(c) | zx | zy, math.nan, c)
