"""Large-N frame queries: evaluate(top_k / q_threshold) without the full frame must give
the full frame's rows, column values, p- and q-values bit for bit; the two host ops
(column_top_k, score_buckets) against numpy references and opcheck."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gsnn_fast.inference.frame_query import score_edges, select_rows
from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
from gsnn_fast.inference.significance import FisherTest, bh_qvalues, fisher_p_values
from gsnn_fast.ops.frame import column_top_k, score_buckets

from .contract_model import ContractModel, Graph, random_batches, random_ff_edges


@pytest.fixture(scope="module")
def inferer():
    n_in, n_func, n_out = 3, 24, 2
    model = ContractModel(n_in, n_func, n_out, channels=2, layers=4, seed=5)
    data = Graph(n_in, n_func, n_out, random_ff_edges(n_func, 60, 5))
    batches = random_batches(n_in, n_out, (16, 9, 20, 11), seed=7)
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches, verbose=False)
    return inf


def _bits(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for col in frame.columns:
        v = frame[col].to_numpy()
        out[col] = v.view(np.int64) if v.dtype == np.float64 else np.asarray(v)
    return out


def _expected(full: pd.DataFrame, top_k, q_threshold) -> pd.DataFrame:
    keep = np.ones(len(full), dtype=bool)
    if top_k is not None:
        ok = full["corr"].notna().to_numpy()
        rank = full[ok].groupby("dst_idx", sort=False).cumcount().to_numpy()
        sel = np.zeros(len(full), dtype=bool)
        sel[np.flatnonzero(ok)[rank < top_k]] = True
        keep &= sel
    if q_threshold is not None:
        keep &= full["q_value"].to_numpy() <= q_threshold
    return full[keep].reset_index(drop=True)


@pytest.mark.parametrize("score", ["corr", "partial"])
@pytest.mark.parametrize("layer_agg", ["mean", "max"])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_selected_rows_equal_full_frame(inferer, score, layer_agg, exclude_self):
    kw = dict(score=score, layer_agg=layer_agg, exclude_self=exclude_self)
    full = inferer.evaluate(**kw)
    thr = float(np.quantile(full["q_value"], 0.2))
    for top_k, q in ((3, None), (None, thr), (2, thr), (1, 0.999)):
        got = inferer.evaluate(**kw, top_k=top_k, q_threshold=q)
        want = _expected(full, top_k, q)
        assert len(got) > 0
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        gb, wb = _bits(got), _bits(want)
        for col in gb:
            np.testing.assert_array_equal(gb[col], wb[col], err_msg=f"{col} {top_k} {q}")


def _score_matrix(n, seed):
    rng = np.random.default_rng(seed)
    s = np.tanh(rng.standard_normal((n, n)) * 0.4)
    s[rng.random((n, n)) < 0.05] = np.nan
    s[rng.random((n, n)) < 0.05] = 0.25  # ties
    s[rng.random((n, n)) < 0.03] = 1.0  # clipped: p-value ties across scores
    s[rng.random((n, n)) < 0.02] = -0.0
    return s


@pytest.mark.parametrize("budget", [4, 10**9])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_select_rows_with_grid_splits(budget, exclude_self):
    """Random scores with ties, NaN and per-target dfs; a tiny budget forces the grid
    splits. Rows, p and q equal the full BH bit for bit."""
    n = 60
    s = _score_matrix(n, 3)
    df = np.random.default_rng(4).choice([0.0, 1.0, 5.0, 30.0, 31.0], n)  # df < 2 too
    test = FisherTest(df)
    rows = np.array([i * n + j for i in range(n) for j in range(n) if not exclude_self or i != j])
    sc = s.ravel()[rows]
    p = test(sc, rows % n)
    q = bh_qvalues(p)
    order = np.lexsort((rows, np.where(np.isnan(sc), np.inf, -sc)))  # frame order
    for top_k, thr in ((4, None), (None, 0.3), (None, 0.9), (3, 0.5)):
        sel = select_rows(torch.from_numpy(s), test, df, exclude_self, top_k, thr, budget=budget)
        assert sel is not None
        keep = np.ones(rows.size, dtype=bool)
        if top_k is not None:
            taken = np.zeros(n, dtype=np.int64)
            for r in order:
                if not np.isnan(sc[r]) and taken[rows[r] % n] < top_k:
                    taken[rows[r] % n] += 1
                else:
                    keep[r] = False
        if thr is not None:
            keep &= q <= thr
        want = order[keep[order]]
        np.testing.assert_array_equal(sel.rows, rows[want])
        np.testing.assert_array_equal(sel.p.view(np.int64), p[want].view(np.int64))
        np.testing.assert_array_equal(sel.q.view(np.int64), q[want].view(np.int64))
        if budget == 4 and top_k is not None:
            assert sel.passes >= 3  # at least one split


def test_score_edges_are_the_smallest_qualifying_scores():
    t = np.array([0.0, 1e-30, 1e-5, 0.01, 0.5, 0.9, np.nextafter(1.0, 0.0)])
    dfs = np.array([0.0, 5.0, 100.0, 1e4])
    e = score_edges(t, dfs)
    for g, df in enumerate(dfs):
        for k, tk in enumerate(t):
            s = e[g, k]
            if np.isfinite(s):
                assert fisher_p_values(np.array([s]), df)[0] <= tk
                below = np.nextafter(s, -np.inf)
                assert fisher_p_values(np.array([below]), df)[0] > tk
            elif s == np.inf:
                assert fisher_p_values(np.array([1.0]), df)[0] > tk


def test_column_top_k_op():
    n = 50
    s = _score_matrix(n, 1)
    for k, ex in ((1, True), (3, False), (60, True)):
        got = column_top_k(torch.from_numpy(s), k, ex).numpy()
        assert got.shape == (n, k)
        for j in range(n):
            cand = [i for i in range(n) if not np.isnan(s[i, j]) and not (ex and i == j)]
            cand.sort(key=lambda i: (-s[i, j], i))
            want = cand[:k] + [-1] * (k - len(cand[:k]))
            assert got[j].tolist() == want
    with pytest.raises(RuntimeError, match="k must be >= 1"):
        column_top_k(torch.from_numpy(s), 0)


def test_score_buckets_op():
    n = 40
    s = _score_matrix(n, 2)
    rng = np.random.default_rng(0)
    G, E = 3, 30
    edges = -np.sort(-rng.uniform(-1.2, 1.2, (G, E)), axis=1)
    edges[0, :4] = np.inf
    edges[2, -3:] = -np.inf
    group = rng.integers(0, G, n)
    select = rng.random(E + 1) < 0.3
    select[E] = True
    for ex in (True, False):
        counts, pos = score_buckets(
            torch.from_numpy(s), torch.from_numpy(group), torch.from_numpy(edges),
            torch.from_numpy(select), ex,
        )  # fmt: skip
        want_counts = np.zeros(E + 1, dtype=np.int64)
        want_pos = []
        for i in range(n):
            for j in range(n):
                if ex and i == j:
                    continue
                v = s[i, j]
                hit = np.flatnonzero(v >= edges[group[j]]) if not np.isnan(v) else []
                b = int(hit[0]) if len(hit) else E
                want_counts[b] += 1
                if select[b]:
                    want_pos.append(i * n + j)
        np.testing.assert_array_equal(counts.numpy(), want_counts)
        np.testing.assert_array_equal(pos.numpy(), want_pos)
    counts, pos = score_buckets(
        torch.from_numpy(s), torch.from_numpy(group), torch.from_numpy(edges)
    )
    assert pos.numel() == 0 and int(counts.sum()) == n * (n - 1)
    with pytest.raises(RuntimeError, match="non-increasing"):
        score_buckets(torch.from_numpy(s), torch.from_numpy(group), torch.from_numpy(-edges))


def test_score_buckets_many_row_blocks():
    """Rows beyond one block of the op (64 rows), shared by the threads: every block's
    counts start from zero and its positions come in row order."""
    n = 203
    s = _score_matrix(n, 4)
    rng = np.random.default_rng(3)
    G, E = 2, 50
    edges = -np.sort(-rng.uniform(-1.0, 1.0, (G, E)), axis=1)
    group = rng.integers(0, G, n)
    select = rng.random(E + 1) < 0.2
    key = np.where(np.isnan(s), np.inf, s)
    # first e with s >= edges[g, e]: the number of edges above s
    bucket = (edges[group][None, :, :] > key[:, :, None]).sum(2)
    bucket[np.isnan(s)] = E
    keep = ~np.eye(n, dtype=bool)
    with torch.no_grad():
        old = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            counts, pos = score_buckets(
                torch.from_numpy(s), torch.from_numpy(group), torch.from_numpy(edges),
                torch.from_numpy(select), True,
            )  # fmt: skip
        finally:
            torch.set_num_threads(old)
    np.testing.assert_array_equal(counts.numpy(), np.bincount(bucket[keep], minlength=E + 1))
    np.testing.assert_array_equal(pos.numpy(), np.flatnonzero(keep & select[bucket]))


def test_opcheck():
    s = torch.from_numpy(_score_matrix(12, 5))
    torch.library.opcheck(torch.ops.gsnn_fast.column_top_k.default, (s, 3, True, 0))
    torch.library.opcheck(torch.ops.gsnn_fast.column_top_k.default, (s[:, 4:9], 2, True, 4))
    edges = torch.tensor([[0.5, 0.1, -0.2], [np.inf, 0.0, -1.0]], dtype=torch.float64)
    group = torch.arange(12) % 2
    sel = torch.tensor([True, False, True, False])
    torch.library.opcheck(
        torch.ops.gsnn_fast.score_buckets.default, (s, group, edges, sel, True, 0)
    )


def test_column_blocks_equal_the_whole_matrix():
    """A block of target columns (one process's shard) gives the whole matrix's columns."""
    n = 30
    s = torch.from_numpy(_score_matrix(n, 8))
    group = torch.from_numpy(np.arange(n) % 3)
    edges = torch.from_numpy(-np.sort(-np.random.default_rng(1).uniform(-1, 1, (3, 12)), axis=1))
    select = torch.ones(13, dtype=torch.bool)
    for ex in (True, False):
        whole = column_top_k(s, 4, ex)
        counts, pos = score_buckets(s, group, edges, select, ex)
        parts, blocks = [], []
        for j0, j1 in ((0, 11), (11, 30)):
            block = s[:, j0:j1].contiguous()
            assert torch.equal(column_top_k(block, 4, ex, j0), whole[j0:j1])
            c, p = score_buckets(block, group[j0:j1].contiguous(), edges, select, ex, j0)
            parts.append(c)
            i, j = np.divmod(p.numpy(), j1 - j0)
            blocks.append(i * n + j + j0)
        assert torch.equal(parts[0] + parts[1], counts)
        np.testing.assert_array_equal(np.sort(np.concatenate(blocks)), pos.numpy())
    with pytest.raises(RuntimeError, match="do not lie"):
        column_top_k(s[:, :5].contiguous(), 2, True, 28)


def test_selected_partial_rows_of_a_big_set_equal_full_frame():
    """A target with >= 64 parents (solved by panels, its columns kept by the op that
    forms the aggregate): its kept rows take those columns, the other rows come from the
    entries op; together the full frame's bits."""
    n_in, n_func, n_out = 3, 80, 2
    hub = torch.stack([torch.arange(70), torch.full((70,), n_func - 1)])
    ff = torch.cat([random_ff_edges(n_func, 90, 11), hub], dim=1)
    model = ContractModel(n_in, n_func, n_out, channels=2, layers=3, seed=8)
    inf = MagnitudeEdgeInferer(model, Graph(n_in, n_func, n_out, ff))
    inf.fit(random_batches(n_in, n_out, (200, 150), seed=9), verbose=False)
    assert int(inf.n_cond[n_func - 1]) >= 64
    full = inf.evaluate(score="partial")
    thr = float(np.quantile(full["q_value"], 0.3))
    for top_k, q in ((3, None), (None, thr)):
        got = inf.evaluate(score="partial", top_k=top_k, q_threshold=q)
        want = _expected(full, top_k, q)
        assert (got["dst_idx"] == n_func - 1).any()
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        gb, wb = _bits(got), _bits(want)
        for col in gb:
            np.testing.assert_array_equal(gb[col], wb[col], err_msg=f"{col} {top_k} {q}")


@pytest.mark.parametrize("layer_agg", ["mean", "max"])
def test_partial_per_pair_columns_when_memory_is_short(inferer, layer_agg, monkeypatch):
    """Where the entries op does not apply (statistics on a GPU, the absolute rule) and
    memory is short, 'partial' solves each pair again instead of keeping [P, N, N]."""
    from gsnn_fast.inference import kept_rows, memory

    full = inferer.evaluate(score="partial", layer_agg=layer_agg)
    monkeypatch.setattr(kept_rows, "_entries_op", lambda inf: False)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**6)
    got = inferer.evaluate(score="partial", layer_agg=layer_agg, top_k=2)
    pd.testing.assert_frame_equal(got, _expected(full, 2, None), check_exact=True)
    for col, values in _bits(got).items():
        np.testing.assert_array_equal(values, _bits(_expected(full, 2, None))[col])
