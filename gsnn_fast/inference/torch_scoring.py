"""Pair scores computed with plain torch operations (any device).

* :func:`pair_moments` -- the means, variances and covariances of one layer pair from
  the streaming sums, rounded exactly as the CPU ``pair_partial_corr`` op rounds them;
* :func:`fold_pairs` -- the aggregation over layer pairs (NaN-ignoring mean, or the
  signed value of largest magnitude), the same operations in the same order as the
  ``pair_corr`` op's aggregation;
* :func:`partial_corr_absolute` / :func:`pair_scores_absolute` -- the partial
  correlation under the absolute zero-variance rule (``zero_var='absolute'``), solved
  by LU factorisation so that an exactly singular conditioning system is detected.

``tests/test_pair_partial_corr.py`` also composes the ``pair_partial_corr`` op's result
from the first two and checks the op against it bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch

from .. import ops

__all__ = ["fold_pairs", "pair_moments", "pair_scores_absolute", "partial_corr_absolute"]


def pair_moments(
    sums: Sequence[torch.Tensor], p: int, n: float, tol: float, rule: int | str = "relative"
) -> tuple[torch.Tensor, ...]:
    """``(corr, mean_x, mean_y, var_x, var_y, cov_xy, cov_xx)`` of layer pair ``p``.

    ``sums`` is ``(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx)``. ``corr`` is
    ``pair_corr`` of that pair under ``rule``; with ``mean = sum / n``,
    ``var = max(sum2 / n - mean^2, 0)`` and ``cov = sum_xy / n - outer(mean, mean)``,
    each a separately rounded float64 operation.
    """
    sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx = sums
    sl = slice(p, p + 1)
    corr = ops.pair_corr(sum_x[sl], sum_y[sl], sum_x2[sl], sum_y2[sl], sum_xy[sl], n, tol, rule)
    corr = corr[0][0]
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
    """Aggregate the ``[N, N]`` float64 scores of pairs 0..P-1 (given in that order).

    ``agg`` 0 (mean): the sum of the non-NaN scores divided by their count (NaN where
    every pair is NaN); 1 (max): the first score of largest ``|score|``, NaN where every
    pair is NaN. Returns ``(per_pair [P, N, N] or (0,), aggregated [N, N])``.
    """
    pairs = torch.empty((P, N, N) if per_pair else (0,), dtype=torch.float64, device=device)
    mean = agg == ops.LAYER_AGGS["mean"]
    acc: torch.Tensor | None = None
    cnt: torch.Tensor | None = None
    for p, s in enumerate(scores):
        if per_pair:
            pairs[p] = s
        valid = ~torch.isnan(s)
        if mean:
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
    elif mean:
        acc = acc / cnt  # 0 / 0 -> NaN where every pair is NaN
    return pairs, acc


def partial_corr_absolute(
    corr: torch.Tensor,
    cov_xy: torch.Tensor,
    cov_xx: torch.Tensor,
    var_x: torch.Tensor,
    var_y: torch.Tensor,
    cond_ptr: torch.Tensor,
    cond_idx: torch.Tensor,
    ridge: float,
    tol: float,
) -> torch.Tensor:
    """Partial correlation of one layer pair under the absolute zero-variance rule.

    For target j with parents S (``cond_idx[cond_ptr[j]:cond_ptr[j + 1]]``) and
    ``A = cov_xx[S, S] + ridge I``: ``alpha = A^-1 cov_xy[S, j]``, ``M = A^-1
    cov_xx[S, :]``, ``vy = var_y[j] - cov_xy[S, j] . alpha``, ``vx_i = var_x[i] -
    cov_xx[S, i] . M[:, i]`` and ``r_ij = (cov_xy[i, j] - cov_xx[S, i] . alpha) /
    sqrt(max(vx_i, 0) vy)``, clamped to [-1, 1]. NaN where ``vx_i <= tol`` or ``r_ij``
    is not finite; the whole column NaN where ``A`` is singular (LU) or ``vy`` is not
    finite or ``<= tol``; NaN at the parents themselves and at ``i == j``. A target
    without parents keeps its column of ``corr``.

    Targets with equally many parents are solved together, in chunks of bounded
    memory. Inputs ``[N, N]`` / ``[N]`` float64; returns ``[N, N]`` float64, the same
    bits run to run on one device.
    """
    N = corr.shape[0]
    dev = corr.device
    out = corr.clone()
    sizes = (cond_ptr[1:] - cond_ptr[:-1]).cpu()
    if not bool((sizes > 0).any()):
        return out
    for s in torch.unique(sizes[sizes > 0]).tolist():
        targets = torch.nonzero(sizes == s).reshape(-1)
        chunk = max(1, (1 << 23) // (s * max(N, 1)))
        for c0 in range(0, targets.numel(), chunk):
            J = targets[c0 : c0 + chunk].to(dev)
            T = J.numel()
            S = cond_idx[cond_ptr[J][:, None] + torch.arange(s, device=dev)[None, :]]  # (T, s)
            A = cov_xx[S[:, :, None], S[:, None, :]].clone()  # (T, s, s)
            if ridge > 0:
                A.diagonal(dim1=-2, dim2=-1).add_(ridge)
            b = cov_xy[S, J[:, None]]  # (T, s)
            C = cov_xx[S, :]  # (T, s, N)
            rhs = torch.cat([b[:, :, None], C], dim=2)
            lu, piv, info = torch.linalg.lu_factor_ex(A)
            # The inverse from the LU factors and one batched matmul for the N + 1
            # right-hand sides: far quicker than lu_solve on so wide a right side.
            eye = torch.eye(s, dtype=A.dtype, device=dev).expand(T, s, s)
            sol = torch.linalg.lu_solve(lu, piv, eye) @ rhs
            alpha, M = sol[:, :, 0], sol[:, :, 1:]
            vy = var_y[J] - (b * alpha).sum(1)  # (T,)
            vx = var_x[None, :] - (C * M).sum(1)  # (T, N)
            num = cov_xy[:, J].T - torch.einsum("tsn,ts->tn", C, alpha)
            denom = torch.sqrt(torch.clamp(vx, min=0.0) * vy[:, None])
            row = num / denom
            bad = (vx <= tol) | ~torch.isfinite(row)
            bad |= ((info != 0) | ~torch.isfinite(vy) | (vy <= tol))[:, None]
            row = torch.where(bad, torch.full_like(row, math.nan), row)
            row.scatter_(1, S, math.nan)
            row[torch.arange(T, device=dev), J] = math.nan
            out[:, J] = torch.clamp(row, -1.0, 1.0).T
    return out


def pair_scores_absolute(
    sums: Sequence[torch.Tensor],
    n: float,
    cond_ptr: torch.Tensor,
    cond_idx: torch.Tensor,
    ridge: float,
    tol: float,
) -> Iterator[torch.Tensor]:
    """The ``[N, N]`` absolute-rule partial correlation of each layer pair in turn.

    ``sums`` is ``(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx)``; ``cond_ptr`` /
    ``cond_idx`` on their device. One pair's moments are alive at a time.
    """
    for p in range(sums[4].shape[0]):
        corr, _, _, var_x, var_y, cov_xy, cov_xx = pair_moments(sums, p, n, tol, "absolute")
        yield partial_corr_absolute(
            corr, cov_xy, cov_xx, var_x, var_y, cond_ptr, cond_idx, ridge, tol
        )
        del cov_xy, cov_xx, corr  # freed before the next pair's are formed
