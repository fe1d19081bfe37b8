"""Typed wrappers around the gsnn_fast::* torch ops, and their fake (meta) kernels.

Importing this module loads the compiled extension ``gsnn_fast._C``, whose static
initialisers register the op schemas (csrc/ops.cpp) and the CPU (and, in CUDA
builds, CUDA) kernels with the dispatcher. Every op is deterministic: CPU and CUDA
give the same bits for the same inputs (see csrc/include/gsnn_fast/*.h).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from . import _C

#: Magnitude reductions of a node's channel vector v, by name -> op code.
#: 'l1' and 'sum' are the same reduction (sum |v|).
MAG_MODES: dict[str, int] = {"l1": 0, "sum": 0, "l2": 1, "max": 2, "mean": 3}


def build_info() -> dict:
    """What the extension was built with: ``cuda`` (bool), the parity-relevant
    ``cxx_flags`` / ``nvcc_flags``, the host ``compiler``, and torch's versions."""
    info = dict(_C.build_info())
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    return info


@torch.library.register_fake("gsnn_fast::segment_magnitude")
def _segment_magnitude_fake(x, ptr, modes):
    torch._check(x.dim() == 3, lambda: "segment_magnitude: x must be (L, B, C)")
    torch._check(ptr.dim() == 1, lambda: "segment_magnitude: ptr must be 1-d")
    return x.new_empty((len(modes), x.shape[0], x.shape[1], ptr.shape[0] - 1), dtype=torch.float64)


def segment_magnitude(x: torch.Tensor, ptr: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """Per-node magnitudes of channel segments, all layers and reductions at once.

    Args:
        x: (L, B, C) float32 or float64 activations or gradients.
        ptr: (N + 1,) int64 offsets on x's device; node n owns channels
            ``[ptr[n], ptr[n+1])``.
        modes: K names from :data:`MAG_MODES` ('l1'/'sum' = sum|v|, 'l2' = sqrt(sum v^2),
            'max' = max|v|, 'mean' = mean|v|).

    Returns:
        (K, L, B, N) float64. Channels are summed in ascending order in float64;
        an empty segment gives 0; the result is bit-identical on CPU and CUDA.
    """
    codes = []
    for m in modes:
        if m not in MAG_MODES:
            raise ValueError(f"modes: unknown reduction {m!r}; options are {sorted(MAG_MODES)}")
        codes.append(MAG_MODES[m])
    return torch.ops.gsnn_fast.segment_magnitude.default(x, ptr, codes)


@torch.library.register_fake("gsnn_fast::pair_stats_update")
def _pair_stats_update_fake(xmag, ymag, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx):
    torch._check(xmag.dim() == 3, lambda: "pair_stats_update: xmag must be (L, B, N)")
    torch._check(ymag.shape == xmag.shape, lambda: "pair_stats_update: ymag must match xmag")
    return None


def pair_stats_update(
    xmag: torch.Tensor,
    ymag: torch.Tensor,
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    sum_xx: torch.Tensor | None = None,
) -> None:
    """Adds one batch to the streaming sums of the P = L - 1 layer pairs, in place.

    Pair p couples activation layer p with gradient layer p + 1.

    Args:
        xmag: (L, B, N) float64 activation magnitudes (L >= 1; L = 1 has no pair).
        ymag: (L, B, N) float64 gradient magnitudes, on xmag's device.
        sum_x, sum_x2: [P, N] float64, ``+= sum_b xmag[p, b, i]`` and its square.
        sum_y, sum_y2: [P, N] float64, ``+= sum_b ymag[p + 1, b, j]`` and its square.
        sum_xy: [P, N, N] float64, ``[p, i, j] += sum_b xmag[p, b, i] * ymag[p + 1, b, j]``.
        sum_xx: optional [P, N, N] float64, ``[p, i, k] += sum_b xmag[p, b, i] * xmag[p, b, k]``;
            None skips it.

    The accumulators must be contiguous float64 on xmag's device (non-contiguous
    xmag / ymag are copied). Every output element sums its batch partial from 0.0 in
    ascending b (product rounded, then added; no fma) and adds it once to the
    accumulator, so the result is bit-identical on CPU and CUDA and independent of
    the number of threads; a NaN sum is stored as the canonical quiet NaN.
    """
    torch.ops.gsnn_fast.pair_stats_update.default(
        xmag, ymag, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx
    )


@torch.library.register_fake("gsnn_fast::partial_corr")
def _partial_corr_fake(corr, cov_xy, cov_xx, var_x, var_y, ptr, idx, ridge, tol):
    torch._check(corr.dim() == 3, lambda: "partial_corr: corr must be [P, N, N]")
    return corr.new_empty(corr.shape)


def partial_corr(
    corr: torch.Tensor,
    cov_xy: torch.Tensor,
    cov_xx: torch.Tensor,
    var_x: torch.Tensor,
    var_y: torch.Tensor,
    ptr: torch.Tensor,
    idx: torch.Tensor,
    ridge: float,
    tol: float,
) -> torch.Tensor:
    """Ridge partial correlation of every (pair p, target j) given conditioning sets.

    Args:
        corr: [P, N, N] float64 plain correlations, index [p, source i, target j]; copied
            for targets with an empty conditioning set.
        cov_xy: [P, N, N] float64 covariances of source activation i and target gradient j.
        cov_xx: [P, N, N] float64 symmetric covariances of the source activations.
        var_x, var_y: [P, N] float64 variances (NaN counts as zero variance).
        ptr: [N + 1] int64, idx: [nnz] int64: S_j = ``idx[ptr[j]:ptr[j + 1]]``, strictly
            increasing, without j.
        ridge: added to the diagonal of ``cov_xx[p][S, S]``.
        tol: a residual variance counts as zero when ``<= tol`` times the variance it was
            reduced from. This covers the Cholesky pivots too: pivot c is the residual
            variance of parent S[c] given S[0..c), and it fails when ``<= tol`` times
            ``A[c, c]`` (so collinear parents fail reliably with ridge 0; tol = 0 is the
            plain "pivot <= 0" test).

    Returns:
        [P, N, N] float64. NaN for i == j, i in S_j, a zero residual variance of the
        source, and the whole column j when the Cholesky factorisation fails or the
        target's residual variance is zero; otherwise clipped to [-1, 1]. Every NaN the
        op computes is the canonical quiet NaN (columns copied from ``corr`` keep their
        bits). Bit-identical on CPU and CUDA (see csrc/include/gsnn_fast/partial_corr.h
        for the order). P = 1 slices work, to process one pair at a time. The CSR is
        validated on the host (a CUDA call copies ptr and idx to the CPU).
    """
    return torch.ops.gsnn_fast.partial_corr.default(
        corr, cov_xy, cov_xx, var_x, var_y, ptr, idx, float(ridge), float(tol)
    )


#: Zero-variance rules and layer aggregations of :func:`pair_corr`, by name -> op code.
ZERO_VAR_RULES: dict[str, int] = {"relative": 0, "absolute": 1}
LAYER_AGGS: dict[str, int] = {"mean": 0, "max": 1}


@torch.library.register_fake("gsnn_fast::pair_corr")
def _pair_corr_fake(sum_x, sum_y, sum_x2, sum_y2, sum_xy, n, tol, rule, agg, per_pair):
    torch._check(sum_xy.dim() == 3, lambda: "pair_corr: sum_xy must be [P, M, N]")
    P, M, N = sum_xy.shape
    pairs = sum_xy.new_empty((P, M, N) if per_pair else (0,), dtype=torch.float64)
    return pairs, sum_xy.new_empty((M, N), dtype=torch.float64)


def pair_corr(
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    n: float,
    tol: float,
    rule: int | str = "relative",
    agg: int | str = "mean",
    per_pair: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain correlation of every layer pair from the streaming sums, aggregated over
    pairs, in one pass (one read of ``sum_xy``, one write per output).

    Args:
        sum_x, sum_x2: [P, M] float64 sums of the activation side (source i).
        sum_y, sum_y2: [P, N] float64 sums of the gradient side (target j).
        sum_xy: [P, M, N] float64 cross sums (M = N in the inferer).
        n: sample count (> 0; callers require n >= 3).
        tol: zero-variance tolerance (>= 0).
        rule: ``'relative'`` / 0 (``var <= tol * mean^2`` is zero; an all-zero column
            is zero) or ``'absolute'`` / 1 (``var <= tol``).
        agg: ``'mean'`` / 0 (NaN-ignoring mean over pairs) or ``'max'`` / 1 (signed value
            with the largest |corr|, first pair on ties); NaN where every pair is NaN.
        per_pair: also return the [P, M, N] per-pair correlations (else an empty tensor).

    Returns:
        ``(per_pair, aggregated)``: [P, M, N] (or (0,)) and [M, N] float64 on the inputs'
        device, with ``mean = sum / n``, ``var = max(sum2 / n - mean^2, 0)``,
        ``corr = (sum_xy / n - mean_x mean_y) / sqrt(var_x var_y)``, NaN where either
        variance is zero under ``rule``, clipped to [-1, 1]. Every NaN is the canonical
        quiet NaN. Bit-identical on CPU and CUDA and for any number of threads; equal to
        the previous pure-torch formulation (same rounded operations in the same order,
        see csrc/include/gsnn_fast/pair_corr.h) up to NaN payloads.
    """
    if isinstance(rule, str):
        if rule not in ZERO_VAR_RULES:
            raise ValueError(f"rule: unknown value {rule!r}; options are {list(ZERO_VAR_RULES)}")
        rule = ZERO_VAR_RULES[rule]
    if isinstance(agg, str):
        if agg not in LAYER_AGGS:
            raise ValueError(f"agg: unknown value {agg!r}; options are {list(LAYER_AGGS)}")
        agg = LAYER_AGGS[agg]
    return torch.ops.gsnn_fast.pair_corr.default(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, float(n), float(tol), int(rule), int(agg),
        bool(per_pair),
    )  # fmt: skip


@torch.library.register_fake("gsnn_fast::pair_partial_corr")
def _pair_partial_corr_fake(
    sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, agg, per_pair
):
    torch._check(sum_xy.dim() == 3, lambda: "pair_partial_corr: sum_xy must be [P, N, N]")
    P, M, N = sum_xy.shape
    pairs = sum_xy.new_empty((P, M, N) if per_pair else (0,), dtype=torch.float64)
    return pairs, sum_xy.new_empty((M, N), dtype=torch.float64)


def pair_partial_corr(
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    sum_xx: torch.Tensor,
    ptr: torch.Tensor,
    idx: torch.Tensor,
    n: float,
    ridge: float,
    tol: float,
    agg: int | str = "mean",
    per_pair: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge partial correlation of every layer pair from the streaming sums (relative
    zero-variance rule), aggregated over pairs: :func:`pair_corr` for the moments and
    the plain corr, :func:`partial_corr` for the systems, one pair at a time.

    Args: the sums of :func:`pair_corr` (M = N) plus ``sum_xx`` [P, N, N]; ``ptr``,
    ``idx``, ``ridge`` and ``tol`` as in :func:`partial_corr`; ``agg`` and
    ``per_pair`` as in :func:`pair_corr`.

    Returns:
        ``(per_pair [P, N, N] or (0,), aggregated [N, N])`` float64. On the CPU one op
        (``gsnn_fast::pair_partial_corr``: moments, systems and aggregation in C++, the
        [N, N] scratch reused across pairs); elsewhere :func:`pair_partial_corr_torch`.
        Both give the same bits up to NaN payloads (same rounded operations in the same
        order).
    """
    if isinstance(agg, str):
        if agg not in LAYER_AGGS:
            raise ValueError(f"agg: unknown value {agg!r}; options are {list(LAYER_AGGS)}")
        agg = LAYER_AGGS[agg]
    if sum_xy.device.type == "cpu":
        return torch.ops.gsnn_fast.pair_partial_corr.default(
            sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, float(n), float(ridge),
            float(tol), int(agg), bool(per_pair),
        )  # fmt: skip
    return pair_partial_corr_torch(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, agg, per_pair
    )


def pair_partial_corr_torch(
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    sum_xx: torch.Tensor,
    ptr: torch.Tensor,
    idx: torch.Tensor,
    n: float,
    ridge: float,
    tol: float,
    agg: int = 0,
    per_pair: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pair_partial_corr` composed from torch ops and the ``pair_corr`` /
    ``partial_corr`` kernels, one pair at a time (any device; a few [N, N] buffers)."""
    n = float(n)

    def scores():
        for p in range(sum_xy.shape[0]):
            corr, mean_x, mean_y, var_x, var_y, cov_xy, cov_xx = pair_moments_torch(
                sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, p, n, tol
            )
            nan = torch.full_like(var_x, math.nan)
            var_x = torch.where(var_x <= tol * (mean_x * mean_x), nan, var_x)
            var_y = torch.where(var_y <= tol * (mean_y * mean_y), nan, var_y)
            yield partial_corr(
                corr[None], cov_xy[None], cov_xx[None], var_x[None], var_y[None], ptr, idx,
                ridge, tol,
            )[0]  # fmt: skip
            del corr, cov_xy, cov_xx  # before the next pair's are formed

    return fold_pairs(scores(), sum_xy.shape[0], sum_xy.shape[-1], sum_xy.device, agg, per_pair)


def pair_moments_torch(
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sum_x2: torch.Tensor,
    sum_y2: torch.Tensor,
    sum_xy: torch.Tensor,
    sum_xx: torch.Tensor,
    p: int,
    n: float,
    tol: float,
    rule: int | str = "relative",
) -> tuple[torch.Tensor, ...]:
    """Moments of layer pair ``p`` from the streaming sums, in torch:
    ``(corr, mean_x, mean_y, var_x, var_y, cov_xy, cov_xx)`` with ``corr`` from
    :func:`pair_corr` under ``rule``, ``var = clamp(sum2 / n - mean^2, 0)`` and
    ``cov = sum / n - mean mean^T`` (the rounded operations the CPU op performs)."""
    sl = slice(p, p + 1)
    corr = pair_corr(sum_x[sl], sum_y[sl], sum_x2[sl], sum_y2[sl], sum_xy[sl], n, tol, rule)[0][0]
    mean_x, mean_y = sum_x[p] / n, sum_y[p] / n
    var_x = torch.clamp(sum_x2[p] / n - mean_x * mean_x, min=0.0)
    var_y = torch.clamp(sum_y2[p] / n - mean_y * mean_y, min=0.0)
    cov_xy = (sum_xy[p] / n).sub_(torch.outer(mean_x, mean_y))
    cov_xx = (sum_xx[p] / n).sub_(torch.outer(mean_x, mean_x))
    return corr, mean_x, mean_y, var_x, var_y, cov_xy, cov_xx


def fold_pairs(
    scores: Iterable[torch.Tensor],
    P: int,
    N: int,
    device: torch.device,
    agg: int,
    per_pair: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair [N, N] float64 score matrices (pairs 0..P-1, in order) -> ``(per_pair
    [P, N, N] or (0,), aggregated [N, N])``, aggregated with torch ops exactly as
    ``pair_corr`` aggregates (``agg`` 0 = NaN-ignoring mean, 1 = signed max |.|)."""
    pairs = torch.empty((P, N, N) if per_pair else (0,), dtype=torch.float64, device=device)
    acc: torch.Tensor | None = None
    cnt: torch.Tensor | None = None
    for p, s in enumerate(scores):
        if per_pair:
            pairs[p] = s
        valid = ~torch.isnan(s)
        if agg == LAYER_AGGS["mean"]:
            if acc is None:
                acc = torch.zeros_like(s)
                cnt = torch.zeros((N, N), dtype=torch.int32, device=device)
            acc.add_(torch.where(valid, s, torch.zeros((), dtype=s.dtype, device=device)))
            cnt.add_(valid.to(torch.int32))
        elif acc is None:
            acc = s.clone()
        else:
            take = valid & (torch.isnan(acc) | (s.abs() > acc.abs()))
            acc = torch.where(take, s, acc)
    if acc is None:
        acc = torch.full((N, N), math.nan, dtype=torch.float64, device=device)
    elif agg == LAYER_AGGS["mean"]:
        acc = acc / cnt  # 0 / 0 -> NaN where every pair is NaN
    return pairs, acc


@torch.library.register_fake("gsnn_fast::argsort_stable")
def _argsort_stable_fake(x, descending):
    torch._check(x.dim() == 1, lambda: "argsort_stable: x must be 1-d")
    return x.new_empty(x.shape, dtype=torch.int64)


def argsort_stable(x: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """Stable argsort of a 1-d float64 tensor, NaN last (in either direction).

    On the CPU an O(n) radix sort (``gsnn_fast::argsort_stable``), several times faster
    than a comparison sort for the N^2 scores of a result frame; elsewhere (and from
    2^32 elements on) ``torch.sort(stable=True)``. -0.0 and +0.0 tie. Returns int64
    indices.
    """
    if x.device.type == "cpu" and x.numel() < 2**32:
        return torch.ops.gsnn_fast.argsort_stable.default(x, descending)
    return argsort_stable_torch(x, descending)


def argsort_stable_torch(x: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """The same order by ``torch.sort(stable=True)`` (any device): NaN last, -0.0 == +0.0."""
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
    return torch.ops.gsnn_fast.frame_order.default(score, bool(exclude_self))


@torch.library.register_fake("gsnn_fast::bh_q_grouped")
def _bh_q_grouped_fake(p, group):
    return p.new_empty(p.shape)


def bh_q_grouped(p: torch.Tensor, group: torch.Tensor) -> torch.Tensor | None:
    """Benjamini-Hochberg q-values of the 1-d float64 CPU p-values ``p`` when they are
    non-decreasing within each ``group`` (int64 ids, in their order): the groups are
    merged instead of sorted; bit-identical to ``ranking.bh_qvalues``. None when some
    group is not non-decreasing (or a p-value is NaN). Group ids must lie in
    [0, len(p))."""
    q = torch.ops.gsnn_fast.bh_q_grouped.default(p, group)
    return q if q.numel() == p.numel() else None


@torch.library.register_fake("gsnn_fast::top_k_rows")
def _top_k_rows_fake(dst, score, k):
    return dst.new_empty(dst.shape, dtype=torch.bool)


def top_k_rows(dst: torch.Tensor, score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the rows (in frame order) that are among the first ``k`` rows of
    their target ``dst`` (int64 ids in [0, len(dst))) with a non-NaN float64 ``score``."""
    return torch.ops.gsnn_fast.top_k_rows.default(dst, score, int(k))
