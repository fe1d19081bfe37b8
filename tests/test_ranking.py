"""evaluate_target_ranking through MagnitudeEdgeInferer, against hand-made
frames and an independent pandas reference; p- and q-values against scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from gsnn_fast.inference.frame import pair_frame
from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
from gsnn_fast.inference.significance import bh_qvalues, fisher_p_values

rank_fn = MagnitudeEdgeInferer.evaluate_target_ranking


def frame(rows):
    return pd.DataFrame(rows, columns=["src_func", "dst_func", "corr"])


def test_ties_by_row_order_nan_dropped_and_topk():
    res = frame(
        [
            ("b", "d", 0.5),
            ("a", "d", 0.5),  # tie with b: b comes first in row order
            ("c", "d", 0.2),
            ("e", "d", math.nan),  # dropped: never a candidate
            ("a", "x", 0.9),
            ("b", "x", 0.1),
        ]
    )
    detail, summary = rank_fn(res, [("a", "d"), ("b", "d"), ("b", "x"), ("e", "d")], top_k=(1, 2))
    assert list(detail.columns) == [
        "src_func",
        "dst_func",
        "score",
        "rank",
        "n_candidates",
        "reciprocal_rank",
        "top@1",
        "top@2",
    ]
    assert list(zip(detail.src_func, detail.dst_func)) == [
        ("a", "d"),
        ("b", "d"),
        ("b", "x"),
        ("e", "d"),
    ]  # sorted positives
    assert detail["rank"].tolist()[:3] == [2.0, 1.0, 2.0]
    assert math.isnan(detail["rank"].iloc[3])  # NaN score -> missing
    assert detail["n_candidates"].tolist() == [3, 3, 2, 3]
    np.testing.assert_allclose(detail["reciprocal_rank"], [0.5, 1.0, 0.5, 0.0])
    assert detail["top@1"].tolist() == [False, True, False, False]
    assert detail["top@2"].tolist() == [True, True, True, False]
    assert math.isnan(detail["score"].iloc[3]) and detail["score"].iloc[0] == 0.5
    assert summary["n_positives"] == 4
    assert summary["mrr"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    assert summary["top@1"] == pytest.approx(0.25) and summary["top@2"] == pytest.approx(0.75)


def test_missing_target_and_duplicates():
    res = frame([("a", "d", 0.3), ("b", "d", 0.4), ("a", "q", math.nan)])
    # ('b','q'): q has only NaN candidates -> rank NaN, n_candidates 0; duplicates collapse
    detail, summary = rank_fn(res, [("b", "q"), ("a", "d"), ("a", "d")], top_k=(1,))
    assert len(detail) == 2 and summary["n_positives"] == 2
    row = detail.set_index(["src_func", "dst_func"]).loc[("b", "q")]
    assert math.isnan(row["rank"]) and row["n_candidates"] == 0 and row["reciprocal_rank"] == 0
    assert summary["mrr"] == pytest.approx(0.25)


def test_errors():
    res = frame([("a", "d", 0.3), ("b", "d", 0.4)])
    with pytest.raises(ValueError, match="empty"):
        rank_fn(res, [])
    with pytest.raises(ValueError, match="unknown nodes"):
        rank_fn(res, [("a", "zz")])
    with pytest.raises(ValueError, match="score_col"):
        rank_fn(res, [("a", "d")], score_col="score")


def _pandas_reference(res, positives, score_col, top_k):
    ranked = res.dropna(subset=[score_col]).copy()
    ranked["rank"] = ranked.groupby("dst_func", sort=False)[score_col].rank(
        ascending=False, method="first"
    )
    ncand = ranked.groupby("dst_func")["dst_func"].count()
    out = []
    for s, d in sorted(set(positives)):
        sub = ranked[(ranked.src_func == s) & (ranked.dst_func == d)]
        r = float(sub["rank"].iloc[0]) if len(sub) else math.nan
        out.append((s, d, r, int(ncand.get(d, 0)), 0.0 if math.isnan(r) else 1.0 / r))
    return out


def test_matches_pandas_reference_on_random_frames():
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(12)]
    N = len(names)
    corr = np.round(rng.uniform(-1, 1, (N, N)), 1)  # many ties
    corr[rng.uniform(size=(N, N)) < 0.15] = np.nan
    res = pair_frame(names, {"corr": corr}, np.full((N, N), 0.5), "corr")
    pos = [(names[i], names[j]) for i, j in rng.integers(0, N, (25, 2)) if i != j]
    detail, summary = rank_fn(res, pos, top_k=(1, 3, 5))
    want = _pandas_reference(res, pos, "corr", (1, 3, 5))
    assert len(detail) == len(want)
    for (_, row), (s, d, r, nc, rr) in zip(detail.iterrows(), want):
        assert (row.src_func, row.dst_func) == (s, d)
        assert (math.isnan(r) and math.isnan(row["rank"])) or row["rank"] == r
        assert row.n_candidates == nc and row.reciprocal_rank == pytest.approx(rr)
        for k in (1, 3, 5):
            assert row[f"top@{k}"] == (not math.isnan(r) and r <= k)
    assert summary["mrr"] == pytest.approx(np.mean([w[4] for w in want]))


def test_p_and_q_values_against_scipy():
    rng = np.random.default_rng(1)
    r = rng.uniform(-1, 1, 200)
    r[:5] = [np.nan, 1.0, -1.0, 0.0, 0.99999]
    df = rng.integers(0, 60, 200).astype(float)
    p = fisher_p_values(r, df)
    with np.errstate(all="ignore"):
        z = np.arctanh(np.clip(r, -0.9999, 0.9999)) * np.sqrt(np.maximum(df, 1))
    want = np.where(np.isnan(r) | (df < 2), 1.0, scipy.stats.norm.sf(z))
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-300)
    q = bh_qvalues(p)
    np.testing.assert_allclose(q, scipy.stats.false_discovery_control(p), rtol=1e-12)


@pytest.mark.parametrize("monotone", [True, False])
def test_pair_frame_q_values_equal_bh_over_candidates_bit_for_bit(monotone):
    """The frame's q-values are BH over all non-self rows, whether they come from the
    score order (p monotone in the score, one df) or from a separate sort of p."""

    rng = np.random.default_rng(7)
    n = 60
    score = np.round(rng.uniform(-1, 1, (n, n)), 2)  # many ties
    score[rng.random((n, n)) < 0.1] = np.nan
    df = 50.0 if monotone else rng.integers(3, 60, (1, n)).astype(float)
    p = fisher_p_values(score, df)
    names = [f"n{i}" for i in range(n)]
    res = pair_frame(names, {"corr": score}, p, "corr")
    off = ~np.eye(n, dtype=bool)
    q_ref = np.full((n, n), np.nan)
    q_ref[off] = bh_qvalues(p[off])
    got = res["q_value"].to_numpy()
    want = q_ref[res["src_idx"].to_numpy(), res["dst_idx"].to_numpy()]
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert isinstance(res["src_func"].dtype, pd.CategoricalDtype)
    assert list(res["src_func"].iloc[:3]) == [names[i] for i in res["src_idx"].iloc[:3]]
