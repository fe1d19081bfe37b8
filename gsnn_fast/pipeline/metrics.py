"""Edge-recovery metrics on score arrays: ROC-AUC, ROC points, within-target ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["pair_auc", "roc_curve", "target_ranks"]


def _clean(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    return a[~np.isnan(a)]


def pair_auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """ROC-AUC of positive against negative scores: the fraction of (positive, negative)
    pairs ordered correctly, ties counting half (Mann-Whitney U / n_pos n_neg).

    NaN scores are dropped; NaN when a side is empty. Exact (integer counts), by
    sorting the negatives and binary-searching every positive in them.
    """
    pos, neg = _clean(pos_scores), _clean(neg_scores)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    neg = np.sort(neg)
    lower = np.searchsorted(neg, pos, side="left")
    upper = np.searchsorted(neg, pos, side="right")
    wins = int(lower.sum())
    ties = int(upper.sum()) - wins
    return (wins + 0.5 * ties) / (pos.size * neg.size)


def roc_curve(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` at every distinct score threshold, from (0, 0) to (1, 1); NaN dropped."""
    pos, neg = _clean(pos_scores), _clean(neg_scores)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    if scores.size == 0:
        return np.zeros(1), np.zeros(1)
    cut = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[cut]
    fp = np.cumsum(1.0 - labels)[cut]
    return np.r_[0.0, fp / max(neg.size, 1)], np.r_[0.0, tp / max(pos.size, 1)]


def target_ranks(frame: pd.DataFrame, score_col: str, dst_col: str = "dst_idx") -> np.ndarray:
    """Rank (1 = best) of each row among the rows of its target in a frame sorted by
    ``score_col`` descending (ties in row order, as the inferer's frames are built); NaN
    for a NaN score."""
    ok = frame[score_col].notna().to_numpy()
    ranks = np.full(len(frame), np.nan)
    if ok.any():
        dst = frame[dst_col].to_numpy()[ok]
        ranks[ok] = pd.Series(dst).groupby(dst, sort=False).cumcount().to_numpy() + 1.0
    return ranks
