"""The result-frame ops: gsnn_fast::argsort_stable and frame_order (radix sorts) against
numpy's stable sort, bh_q_grouped against bh_qvalues bit for bit, and pair_frame's
q-value routes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gsnn_fast.inference.frame import pair_frame
from gsnn_fast.inference.significance import bh_qvalues, fisher_p_values
from gsnn_fast.ops import argsort_stable, bh_q_grouped, frame_order, top_k_rows
from gsnn_fast.ops.frame import argsort_stable_torch


def _values(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    v[rng.random(n) < 0.1] = np.nan
    v[rng.random(n) < 0.1] = 0.5  # ties
    v[rng.random(n) < 0.05] = 0.0
    v[rng.random(n) < 0.05] = -0.0
    v[rng.random(n) < 0.02] = np.inf
    v[rng.random(n) < 0.02] = -np.inf
    return v


def _reference(v, descending):
    # numpy sorts NaN last ascending; descending = ascending order of -v (NaN stays NaN)
    return np.argsort(-v if descending else v, kind="stable")


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("impl", [argsort_stable, argsort_stable_torch])
def test_matches_numpy_stable_sort(descending, impl):
    for n, seed in [(0, 0), (1, 1), (2, 2), (1000, 3), (200_003, 4)]:
        v = _values(n, seed)
        got = impl(torch.from_numpy(v), descending).numpy()
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, _reference(v, descending))


def test_nan_payloads_and_all_equal():
    nans = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001], np.uint64)
    v = np.concatenate([nans.view(np.float64), [1.0, -1.0]])
    for d in (False, True):
        got = argsort_stable(torch.from_numpy(v), d).numpy()
        assert list(got[-3:]) == [0, 1, 2]  # NaN last, in input order
    same = torch.full((1000,), 3.0, dtype=torch.float64)
    assert torch.equal(argsort_stable(same, True), torch.arange(1000))


def test_non_contiguous_and_bad_arguments():
    v = torch.from_numpy(_values(101, 5))
    strided = v[::2]
    np.testing.assert_array_equal(
        argsort_stable(strided, True).numpy(), _reference(strided.numpy().copy(), True)
    )
    with pytest.raises(RuntimeError, match="float64"):
        argsort_stable(v.float(), True)
    with pytest.raises(RuntimeError, match="1-d"):
        argsort_stable(v.view(1, -1), True)


def test_opcheck():
    v = torch.from_numpy(_values(64, 6))
    torch.library.opcheck(torch.ops.gsnn_fast.argsort_stable.default, (v, True))


def test_runs_sharing_the_upper_key_half():
    """Values equal in their upper bits and differing below (the radix passes see
    them as ties; the run fix-up must order them), in long, short and reversed runs."""
    rng = np.random.default_rng(7)
    base = np.array([0.3, -0.3, 1e-300, -2.5], np.float64).view(np.uint64)
    parts = []
    for b in base:
        lo = rng.integers(0, 2**32, 3000, dtype=np.uint64)
        parts.append(b + np.sort(lo)[::-1])  # lower halves descending within the run
        parts.append(b + rng.integers(0, 4, 50, dtype=np.uint64))  # short runs, ties
        # equal but for the lowest 12 bits (below the radix passes' key bits at this
        # size), lower bits descending: one long run for the fix-up to reverse
        parts.append(b + np.arange(3000, dtype=np.uint64)[::-1])
    v = np.concatenate(parts).view(np.float64)
    v = np.concatenate([v, rng.standard_normal(5000), [np.nan] * 10, [0.3] * 5])
    rng.shuffle(v)
    for d in (False, True):
        got = argsort_stable(torch.from_numpy(v), d).numpy()
        np.testing.assert_array_equal(got, _reference(v, d))


# ------------------------------------------------------------------ frame_order


@pytest.mark.parametrize("exclude_self", [True, False])
def test_frame_order_matches_numpy(exclude_self):
    for N, seed in [(0, 0), (1, 1), (2, 2), (37, 3), (300, 4)]:
        v = _values(N * N, seed).reshape(N, N)
        got = frame_order(torch.from_numpy(v), exclude_self).numpy()
        rows = np.arange(N * N)
        if exclude_self:
            rows = rows[rows % (N + 1) != 0]
        want = rows[_reference(v.ravel()[rows], True)]
        np.testing.assert_array_equal(got, want)


def test_frame_order_bad_arguments_and_opcheck():
    v = torch.from_numpy(_values(36, 8).reshape(6, 6))
    with pytest.raises(RuntimeError, match=r"frame_order: score must be \[N, N\]"):
        frame_order(v[:, :5])
    with pytest.raises(RuntimeError, match="frame_order: score must be float64"):
        frame_order(v.float())
    np.testing.assert_array_equal(frame_order(v.T).numpy(), frame_order(v.T.contiguous()).numpy())
    torch.library.opcheck(torch.ops.gsnn_fast.frame_order.default, (v, True))


# ------------------------------------------------------------------ bh_q_grouped


def _grouped_p(m, G, seed):
    """p-values non-decreasing within each of G interleaved groups (Fisher p of sorted
    scores with one df per group), with ties inside and across groups and p = 1."""
    rng = np.random.default_rng(seed)
    r = np.sort(np.round(rng.uniform(-1, 1, m), 2))[::-1]
    group = rng.integers(0, G, m)
    df = rng.integers(3, 80, G).astype(float)
    df[0] = 1.0  # df < 2: p = 1 for the whole group
    r[rng.random(m) < 0.05] = np.nan  # NaN scores (p = 1) ...
    r = np.concatenate([r[~np.isnan(r)], r[np.isnan(r)]])  # ... sorted last
    p = fisher_p_values(r, df, df_index=group)
    return p, np.unique(group, return_inverse=True)[1].astype(np.int64)  # ids in [0, m)


@pytest.mark.parametrize("G", [1, 2, 5])
def test_bh_q_grouped_bit_identical_to_bh_qvalues(G):
    for m, seed in [(1, 0), (7, 1), (5000, 2)]:
        p, group = _grouped_p(m, G, seed + 10 * G)
        q = bh_q_grouped(torch.from_numpy(p), torch.from_numpy(group))
        assert q is not None
        want = bh_qvalues(p)
        assert np.array_equal(q.numpy().view(np.int64), want.view(np.int64))


def test_bh_q_grouped_declines_unsorted_groups_and_nan():
    p, group = _grouped_p(500, 3, 5)
    g = torch.from_numpy(group)
    bad = p.copy()
    i = int(np.flatnonzero(group == 1)[10])
    bad[i] = 1.5  # larger than the next p of its group
    assert bh_q_grouped(torch.from_numpy(bad), g) is None
    nan = p.copy()
    nan[3] = np.nan
    assert bh_q_grouped(torch.from_numpy(nan), g) is None
    empty = bh_q_grouped(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.int64))
    assert empty is not None and empty.numel() == 0


def test_bh_q_grouped_bad_arguments_and_opcheck():
    p, group = (torch.from_numpy(a) for a in _grouped_p(50, 2, 6))
    with pytest.raises(RuntimeError, match="bh_q_grouped: group must be int64"):
        bh_q_grouped(p, group.int())
    with pytest.raises(RuntimeError, match="bh_q_grouped: p must be"):
        bh_q_grouped(p.float(), group)
    neg = group.clone()
    neg[0] = -1
    with pytest.raises(RuntimeError, match=r"bh_q_grouped: group\[0\] = -1 is out of range"):
        bh_q_grouped(p, neg)
    torch.library.opcheck(torch.ops.gsnn_fast.bh_q_grouped.default, (p, group))


# ------------------------------------------------------------------ pair_frame routes


@pytest.mark.parametrize("groups", ["right", "wrong", "none"])
def test_pair_frame_q_values_by_every_route(groups):
    """Per-target df (as score='partial' has): the q-values are BH over all candidate
    rows, bit for bit, whether they come from merging the df groups, from the sort after
    a wrong group claim, or from the sort without a claim; the p callable gives the same
    p-values as the (N, N) array."""
    rng = np.random.default_rng(11)
    n = 80
    score = np.round(rng.uniform(-1, 1, (n, n)), 2)
    score[rng.random((n, n)) < 0.1] = np.nan
    n_cond = rng.integers(0, 4, n)
    df = (100 - 3 - n_cond).astype(float)
    names = [f"n{i}" for i in range(n)]
    p_full = fisher_p_values(score, df[None, :])
    claim = {"right": n_cond, "wrong": rng.integers(0, 3, n), "none": None}[groups]

    def p_of(r, dst):
        return fisher_p_values(r, df, df_index=dst)

    res = pair_frame(names, {"corr": score}, p_of, "corr", p_groups=claim)
    ref = pair_frame(names, {"corr": score}, p_full, "corr")
    for col in ("src_idx", "dst_idx", "corr", "p_value"):
        assert np.array_equal(res[col].to_numpy(), ref[col].to_numpy(), equal_nan=True)
    off = ~np.eye(n, dtype=bool)
    q_ref = np.full((n, n), np.nan)
    q_ref[off] = bh_qvalues(p_full[off])
    want = q_ref[res["src_idx"].to_numpy(), res["dst_idx"].to_numpy()]
    assert np.array_equal(res["q_value"].to_numpy().view(np.int64), want.view(np.int64))


# ------------------------------------------------------------------ top_k_rows


def test_top_k_rows_first_k_non_nan_rows_per_target():
    rng = np.random.default_rng(12)
    m = 3000
    dst = rng.integers(0, 40, m)
    score = np.round(rng.uniform(-1, 1, m), 1)
    score[rng.random(m) < 0.2] = np.nan
    for k in (1, 3, 200):
        got = top_k_rows(torch.from_numpy(dst), torch.from_numpy(score), k).numpy()
        seen: dict[int, int] = {}
        want = np.zeros(m, dtype=bool)
        for t in range(m):
            if not np.isnan(score[t]) and seen.get(dst[t], 0) < k:
                seen[dst[t]] = seen.get(dst[t], 0) + 1
                want[t] = True
        np.testing.assert_array_equal(got, want)
    with pytest.raises(RuntimeError, match="top_k_rows: k must be >= 1"):
        top_k_rows(torch.from_numpy(dst), torch.from_numpy(score), 0)
    with pytest.raises(RuntimeError, match="top_k_rows: score must be float64"):
        top_k_rows(torch.from_numpy(dst), torch.from_numpy(score).float(), 2)
    torch.library.opcheck(
        torch.ops.gsnn_fast.top_k_rows.default, (torch.from_numpy(dst), torch.from_numpy(score), 2)
    )


@pytest.mark.parametrize("exclude_self", [True, False])
def test_pair_frame_top_k_is_the_full_frame_filtered(exclude_self):
    """top_k keeps, of the full frame, each target's k best non-NaN sources (ties to the
    lower source index), with the full frame's q-values."""
    rng = np.random.default_rng(13)
    n = 50
    score = np.round(rng.uniform(-1, 1, (n, n)), 1)  # many ties
    score[rng.random((n, n)) < 0.2] = np.nan
    names = [f"n{i}" for i in range(n)]
    p = fisher_p_values(score, 40.0)
    full = pair_frame(names, {"corr": score}, p, "corr", exclude_self=exclude_self)
    top = pair_frame(names, {"corr": score}, p, "corr", exclude_self, top_k=3)
    ranked = full.dropna(subset=["corr"]).sort_values(
        ["dst_idx", "corr", "src_idx"], ascending=[True, False, True]
    )
    want = ranked.groupby("dst_idx").head(3)
    want = full.loc[sorted(want.index)].reset_index(drop=True)  # frame order
    pd.testing.assert_frame_equal(top, want)
