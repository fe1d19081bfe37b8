"""Significance of edge scores: one-sided p-values and Benjamini-Hochberg q-values.

A score r of a candidate edge is tested against H0: r <= 0 with Fisher's z transform,
``z = atanh(r) sqrt(df)``, where df is ``n - 3`` for a correlation of n samples and
``n - 3 - |S|`` for a partial correlation given the set S. q-values are BH over all
candidate rows. Everything works on whole arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy import special

from ..ops import argsort_stable

__all__ = [
    "FisherTest",
    "bh_qvalues",
    "bh_sorted",
    "coefficient_pvalues",
    "fisher_p_values",
    "one_sided_normal_p",
]


def one_sided_normal_p(z: np.ndarray) -> np.ndarray:
    """P(Z >= z) for a standard normal Z, i.e. 0.5 (1 - erf(z / sqrt 2)).

    Computed as 0.5 erfc(z / sqrt 2), which equals the erf form to rounding and
    keeps its relative precision for large z (tiny p-values stay distinct).
    """
    out = np.divide(np.asarray(z, dtype=np.float64), np.sqrt(2.0))
    special.erfc(out, out=out)
    out *= 0.5
    return out


def fisher_p_values(
    r: np.ndarray, df: np.ndarray | float, df_index: np.ndarray | None = None
) -> np.ndarray:
    """One-sided Fisher-z p-values for H0: r <= 0.

    ``z = atanh(clip(r, -0.9999, 0.9999)) * sqrt(max(df, 1))``; p = 1 where r is NaN
    or df < 2. ``df`` broadcasts against ``r`` (n - 3, or n - 3 - |S_j| for partial);
    with ``df_index``, ``r``'s entries take ``df[df_index]`` (e.g. a per-target df
    and the rows' targets), without forming the per-row df.
    """
    r = np.asarray(r, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    scale = np.sqrt(np.maximum(df, 1.0))
    small = df < 2
    if df_index is not None:
        scale, small = np.take(scale, df_index), np.take(small, df_index)
    with np.errstate(invalid="ignore"):
        z = np.clip(r, -0.9999, 0.9999)
        np.arctanh(z, out=z)
    if np.broadcast(z, scale).shape == z.shape:
        z *= scale
    else:
        z = z * scale
    p = one_sided_normal_p(z)
    p[np.broadcast_to(np.isnan(r), p.shape)] = 1.0
    if small.any():
        p[np.broadcast_to(small, p.shape)] = 1.0
    return p


def _argsort(values: np.ndarray, descending: bool) -> np.ndarray:
    """Stable argsort of float64 values, NaN last (the O(n) radix-sort op)."""
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    return argsort_stable(x, descending).numpy()


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values over all entries of ``p`` (any shape).

    Monotone in p, at most 1; same shape as ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    flat = p.ravel()
    if flat.size == 0:
        return p.copy()
    order = _argsort(flat, descending=False)
    q = np.empty(flat.size, dtype=np.float64)
    q[order] = bh_sorted(np.take(flat, order))
    return q.reshape(p.shape)


def bh_sorted(p_sorted: np.ndarray) -> np.ndarray:
    """BH q-values of p-values already in non-decreasing order (same order out).

    Tied p-values get the same q whatever their order within the tie, so any
    non-decreasing arrangement gives the same bits as :func:`bh_qvalues`.
    """
    m = p_sorted.size
    ranked = p_sorted * (m / np.arange(1, m + 1, dtype=np.float64))
    return np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)


class FisherTest(NamedTuple):
    """The Fisher-z test of a frame's rows, given as data rather than as a closure:
    ``df`` is one number for every row, or a ``[N]`` array holding each target's df.
    Called with the rows' scores and targets it returns their p-values."""

    df: float | np.ndarray

    def __call__(self, r: np.ndarray, dst: np.ndarray) -> np.ndarray:
        if np.ndim(self.df) == 0:
            return fisher_p_values(r, self.df)
        return fisher_p_values(r, self.df, df_index=dst)


def coefficient_pvalues(
    W: torch.Tensor, gram: torch.Tensor, n: int, rss: float, ridge: float, n_terms: int
) -> np.ndarray:
    """``[N, N]`` one-sided p-values of ``W[i, j] > 0`` for a least-squares fit of ``W``
    with the design's streaming gram ``sum x^T x`` over ``n`` rows and residual sum of
    squares ``rss`` (``n_terms`` fitted terms per row).

    All ones while ``n < N + 2``. Else ``G = gram / n + (ridge + 1e-8) I``,
    ``sigma2 = rss / max(n * n_terms * N - N, 1)``,
    ``se_i = sqrt(max(sigma2 * (G^-1)_ii, 1e-12))``, ``p = P(Z > W[i, j] / se_i)``.
    ``diag(G^-1)`` comes from a float64 Cholesky factor (a general inverse when that
    fails); a singular ``G`` gives all ones.
    """
    N = W.shape[0]
    ones = np.ones((N, N), dtype=np.float64)
    if n < N + 2:
        return ones
    G = gram.to(torch.float64) / n
    G = G + (ridge + 1e-8) * torch.eye(N, dtype=torch.float64, device=G.device)
    Lc, info = torch.linalg.cholesky_ex(G)
    if int(info.item()) == 0:
        eye = torch.eye(N, dtype=torch.float64, device=G.device)
        Linv = torch.linalg.solve_triangular(Lc, eye, upper=False)
        ginv_diag = Linv.pow(2).sum(dim=0)
    else:
        Ginv, info = torch.linalg.inv_ex(G)
        if int(info.item()) != 0:
            return ones
        ginv_diag = torch.diagonal(Ginv)
    ginv_diag = ginv_diag.cpu().numpy()
    sigma2 = rss / max(n * n_terms * N - N, 1)
    se = np.sqrt(np.maximum(sigma2 * ginv_diag, 1e-12))
    w = W.to(torch.float64).cpu().numpy()
    return np.clip(one_sided_normal_p(w / se[:, None]), 0.0, 1.0)
