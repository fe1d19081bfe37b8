"""Correlation ops: ``gsnn_fast::pair_corr`` (plain correlation of every layer pair
from the streaming sums), ``gsnn_fast::partial_corr`` (batched ridge partial
correlation from covariances) and ``gsnn_fast::pair_partial_corr`` (the partial
correlation of every layer pair straight from the sums; ``_keep_big`` and ``_entries``
serve the large-N frame query), each with its fake."""

from __future__ import annotations

import torch

from . import _extension  # noqa: F401  (loads the extension: the op schemas)


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


def _code(name: str, value: int | str, codes: dict[str, int]) -> int:
    """An op code given by name (checked against ``codes``) or as the code itself."""
    if isinstance(value, str):
        if value not in codes:
            raise ValueError(f"{name}: unknown value {value!r}; options are {list(codes)}")
        return codes[value]
    return value


def _pair_outputs(op: str, sum_xy: torch.Tensor, per_pair: bool):
    """The fake outputs of the pair ops: ([P, M, N] or (0,), [M, N]) float64."""
    torch._check(sum_xy.dim() == 3, lambda: f"{op}: sum_xy must be [P, M, N]")
    P, M, N = sum_xy.shape
    pairs = sum_xy.new_empty((P, M, N) if per_pair else (0,), dtype=torch.float64)
    return pairs, sum_xy.new_empty((M, N), dtype=torch.float64)


@torch.library.register_fake("gsnn_fast::pair_corr")
def _pair_corr_fake(sum_x, sum_y, sum_x2, sum_y2, sum_xy, n, tol, rule, agg, per_pair):
    return _pair_outputs("pair_corr", sum_xy, per_pair)


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
        quiet NaN. Bit-identical on CPU and CUDA and for any number of threads (the
        order of rounded operations is in csrc/include/gsnn_fast/pair_corr.h).
    """
    rule = _code("rule", rule, ZERO_VAR_RULES)
    agg = _code("agg", agg, LAYER_AGGS)
    return torch.ops.gsnn_fast.pair_corr.default(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, float(n), float(tol), int(rule), int(agg),
        bool(per_pair),
    )  # fmt: skip


@torch.library.register_fake("gsnn_fast::pair_partial_corr")
def _pair_partial_corr_fake(
    sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, agg, per_pair
):
    return _pair_outputs("pair_partial_corr", sum_xy, per_pair)


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
    zero-variance rule), aggregated over pairs, in one op: the node moments and plain
    correlation of :func:`pair_corr`, and for every target with parents the systems
    of :func:`partial_corr`, whose covariances ``cov = sum / n - mean_r mean_c`` are
    formed from ``sum_xy`` / ``sum_xx`` entry by entry as the solve reads them (no
    [N, N] covariance is stored); on the CPU every pair in one pass over the outputs
    (no [N, N] scratch).

    Args: the sums of :func:`pair_corr` (M = N) plus ``sum_xx`` [P, N, N]; ``ptr``,
    ``idx``, ``ridge`` and ``tol`` as in :func:`partial_corr` (the CSR is validated on
    the host: a CUDA call copies ptr and idx to the CPU); ``agg`` and ``per_pair`` as
    in :func:`pair_corr`.

    Returns:
        ``(per_pair [P, N, N] or (0,), aggregated [N, N])`` float64 on the inputs'
        device; with P = 0 the aggregate is all NaN. Every NaN is the canonical quiet
        NaN. Bit-identical on CPU and CUDA (the same header functions in the same
        order, csrc/include/gsnn_fast/partial_corr.h) and for any number of threads.
    """
    agg = _code("agg", agg, LAYER_AGGS)
    return torch.ops.gsnn_fast.pair_partial_corr.default(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, float(n), float(ridge),
        float(tol), int(agg), bool(per_pair),
    )  # fmt: skip


@torch.library.register_fake("gsnn_fast::pair_partial_corr_keep_big")
def _pair_partial_corr_keep_big_fake(
    sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, agg
):
    _, agg_out = _pair_outputs("pair_partial_corr_keep_big", sum_xy, False)
    P, _, N = sum_xy.shape
    B = torch.library.get_ctx().new_dynamic_size()  # how many sets are big: data
    return agg_out, ptr.new_empty((B,), dtype=torch.int64), sum_xy.new_empty((P, B, N))


def pair_partial_corr_keep_big(
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`pair_partial_corr`'s aggregate without ``per_pair``, plus what the op
    computes anyway for the targets whose conditioning sets are big (>= 64 members):
    ``(aggregated [N, N], targets [B] int64 ascending, columns [P, B, N])``, where
    ``columns[p, b]`` holds the bits of ``per_pair[p, :, targets[b]]``. The kept rows
    of a large-N frame query take those targets' values from ``columns`` and the rest
    from :func:`pair_partial_corr_entries`, so no big set is solved twice. Host-only:
    CPU tensors."""
    agg = _code("agg", agg, LAYER_AGGS)
    return torch.ops.gsnn_fast.pair_partial_corr_keep_big.default(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, float(n), float(ridge),
        float(tol), int(agg),
    )  # fmt: skip


@torch.library.register_fake("gsnn_fast::pair_partial_corr_entries")
def _pair_partial_corr_entries_fake(
    sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, src, dst
):
    return sum_xy.new_empty((sum_xy.shape[0], src.shape[0]))


def pair_partial_corr_entries(
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
    src: torch.Tensor,
    dst: torch.Tensor,
) -> torch.Tensor:
    """Each layer pair's score of :func:`pair_partial_corr` at the entries
    ``(src[r], dst[r])`` only: ``[P, R]`` float64, the bits of
    ``per_pair[:, src, dst]``, at the cost of one solve per (pair, target) present
    instead of every source of every target (the kept rows of a large-N frame query).
    Host-only: CPU tensors (``src``, ``dst`` int64 [R])."""
    return torch.ops.gsnn_fast.pair_partial_corr_entries.default(
        sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, float(n), float(ridge),
        float(tol), src, dst,
    )  # fmt: skip
