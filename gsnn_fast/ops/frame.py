"""Host-only helpers of result frames: ``argsort_stable``, ``frame_order``,
``bh_q_grouped`` and ``top_k_rows``. They take CPU tensors (frames are built on the
host); a tensor on another device is a clear error."""

from __future__ import annotations

import torch

from . import _extension  # noqa: F401  (loads the extension: the op schemas)


def _host_only(op: str, t: torch.Tensor) -> None:
    if t.device.type != "cpu":
        raise ValueError(
            f"{op}: runs on the host only (result frames are built on the CPU), got a "
            f"tensor on {t.device}; move it with .cpu() first"
        )


@torch.library.register_fake("gsnn_fast::argsort_stable")
def _argsort_stable_fake(x, descending):
    torch._check(x.dim() == 1, lambda: "argsort_stable: x must be 1-d")
    return x.new_empty(x.shape, dtype=torch.int64)


def argsort_stable(x: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """Stable argsort of a 1-d float64 CPU tensor, NaN last (in either direction).

    An O(n) radix sort (``gsnn_fast::argsort_stable``), several times faster than a
    comparison sort for the N^2 scores of a result frame; from 2^32 elements on (past
    the op's 32-bit radix positions) ``torch.sort(stable=True)`` with the same order.
    -0.0 and +0.0 tie. Returns int64 indices.
    """
    _host_only("argsort_stable", x)
    if x.numel() < 2**32:
        return torch.ops.gsnn_fast.argsort_stable.default(x, descending)
    return argsort_stable_torch(x, descending)


def argsort_stable_torch(x: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """The same order by ``torch.sort(stable=True)``: NaN last, -0.0 == +0.0."""
    key = torch.where(torch.isnan(x), torch.inf, -x if descending else x)
    key = torch.where(key == 0, 0.0, key)  # -0.0 ties +0.0
    nan_last = torch.isnan(x).to(torch.int8)
    order = torch.sort(key, stable=True).indices
    return order[torch.sort(nan_last[order], stable=True).indices]  # +inf before NaN


@torch.library.register_fake("gsnn_fast::frame_order")
def _frame_order_fake(score, exclude_self):
    torch._check(score.dim() == 2, lambda: "frame_order: score must be [N, N]")
    N = score.shape[0]
    return score.new_empty((N * (N - 1) if exclude_self else N * N,), dtype=torch.int64)


def frame_order(score: torch.Tensor, exclude_self: bool = True) -> torch.Tensor:
    """Row order of a result frame: the flat positions ``i * N + j`` of an [N, N] float64
    CPU score matrix, by score descending, NaN last, ties in (i, j) order; the diagonal
    left out when ``exclude_self``. Radix sort (``gsnn_fast::frame_order``); int64."""
    _host_only("frame_order", score)
    return torch.ops.gsnn_fast.frame_order.default(score, bool(exclude_self))


@torch.library.register_fake("gsnn_fast::bh_q_grouped")
def _bh_q_grouped_fake(p, group):
    # len(p) q-values, or none when a group is not sorted: a data-dependent length.
    n = torch.library.get_ctx().new_dynamic_size()
    return p.new_empty((n,))


def bh_q_grouped(p: torch.Tensor, group: torch.Tensor) -> torch.Tensor | None:
    """Benjamini-Hochberg q-values of the 1-d float64 CPU p-values ``p`` when they are
    non-decreasing within each ``group`` (int64 ids, in their order): the groups are
    merged instead of sorted; bit-identical to ``ranking.bh_qvalues``. None when some
    group is not non-decreasing (or a p-value is NaN). Group ids must lie in
    [0, len(p))."""
    _host_only("bh_q_grouped", p)
    q = torch.ops.gsnn_fast.bh_q_grouped.default(p, group)
    return q if q.numel() == p.numel() else None


@torch.library.register_fake("gsnn_fast::top_k_rows")
def _top_k_rows_fake(dst, score, k):
    return dst.new_empty(dst.shape, dtype=torch.bool)


def top_k_rows(dst: torch.Tensor, score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the rows (in frame order) that are among the first ``k`` rows of
    their target ``dst`` (int64 ids in [0, len(dst))) with a non-NaN float64 ``score``."""
    _host_only("top_k_rows", dst)
    return torch.ops.gsnn_fast.top_k_rows.default(dst, score, int(k))


@torch.library.register_fake("gsnn_fast::column_top_k")
def _column_top_k_fake(score, k, exclude_self, col_offset):
    torch._check(score.dim() == 2, lambda: "column_top_k: score must be [N, C]")
    return score.new_empty((score.shape[1], k), dtype=torch.int64)


def column_top_k(
    score: torch.Tensor, k: int, exclude_self: bool = True, col_offset: int = 0
) -> torch.Tensor:
    """The ``k`` best sources of every target column of an [N, N] float64 CPU score
    matrix (indexed [src, dst]), or of an [N, C] block of its columns ``col_offset ..
    col_offset + C - 1``: ``out[j]`` lists them by score descending, ties to the lower
    source, NaN never kept, ``i == col_offset + j`` skipped when ``exclude_self``; -1
    pads a column with fewer than ``k`` candidates. ``[C, k]`` int64
    (``gsnn_fast::column_top_k``, one pass, no sort)."""
    _host_only("column_top_k", score)
    return torch.ops.gsnn_fast.column_top_k.default(
        score, int(k), bool(exclude_self), int(col_offset)
    )


@torch.library.register_fake("gsnn_fast::score_buckets")
def _score_buckets_fake(score, group, edges, select, exclude_self, col_offset):
    torch._check(edges.dim() == 2, lambda: "score_buckets: edges must be [G, E]")
    n = torch.library.get_ctx().new_dynamic_size()
    counts = score.new_empty((edges.shape[1] + 1,), dtype=torch.int64)
    return counts, score.new_empty((n,), dtype=torch.int64)


def score_buckets(
    score: torch.Tensor,
    group: torch.Tensor,
    edges: torch.Tensor,
    select: torch.Tensor | None = None,
    exclude_self: bool = True,
    col_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bucket counts of an [N, N] float64 CPU score matrix (or of an [N, C] block of
    its columns ``col_offset ..``) and the entries of chosen buckets
    (``gsnn_fast::score_buckets``, one pass).

    Column j uses the score edges ``edges[group[j]]`` (``[G, E]`` float64, each row
    non-increasing, +inf where no score qualifies); an entry's bucket is the first e
    with ``score >= edges[g, e]``, E when none or NaN. Scores must be finite or NaN.

    Returns:
        ``(counts [E + 1] int64, positions)``: the block positions ``i * C + j``
        (ascending) of the entries whose bucket has ``select[bucket]`` (bool ``[E + 1]``;
        None gathers nothing). ``i == col_offset + j`` is skipped when ``exclude_self``.
    """
    _host_only("score_buckets", score)
    if select is None:
        select = torch.zeros(0, dtype=torch.bool)
    return torch.ops.gsnn_fast.score_buckets.default(
        score, group, edges, select, bool(exclude_self), int(col_offset)
    )
