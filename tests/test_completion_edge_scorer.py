"""CompletionEdgeScorer: reachability, the completed graph, and how the two models' scores
combine (the first scorer's where it sees a pair, the weighted completed scorer's on the
silent pairs; no retraining when nothing is silent)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from gsnn_fast import GSNN, CompletionEdgeScorer, GradientEdgeScorer, nx2pyg
from gsnn_fast.data import build_convergence_graph, default_held_out_edges
from gsnn_fast.inference.completion_edge_scorer import (
    band_placement,
    complete_graph,
    reachability,
    sibling_similarity,
)

# in0 -> a -> c -> o0;  in1 -> b -> d (d reaches no output);  e -> c (no input reaches e);
# f has no edge at all
FUNCS = ["a", "b", "c", "d", "e", "f"]


def _silent_graph():
    G = nx.DiGraph()
    G.add_nodes_from(["in0", "in1", *FUNCS, "o0", "o1"])
    G.add_edges_from([("in0", "a"), ("in1", "b"), ("a", "c"), ("c", "o0"), ("b", "d")])
    G.add_edges_from([("e", "c"), ("a", "o1")])
    return nx2pyg(G, ["in0", "in1"], FUNCS, ["o0", "o1"])


def _gsnn(data, seed=0, layers=3):
    torch.manual_seed(seed)
    return GSNN(
        data.edge_index_dict, data.node_names_dict, channels=3, layers=layers, share_layers=False,
        norm="none", dropout=0.0, node_mlp=False,
    )  # fmt: skip


def _batches(n_in, n_out, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(b, n_in, generator=g), torch.randn(b, n_out, generator=g)) for b in (16, 12)
    ]


def test_reachability():
    fed, reaches = reachability(_silent_graph())
    assert fed.tolist() == [True, True, True, True, False, False]
    assert reaches.tolist() == [True, False, True, False, True, False]


def test_complete_graph_adds_best_candidates_and_shortcuts():
    data = _silent_graph()
    idx = {f: i for i, f in enumerate(FUNCS)}
    S = np.zeros((6, 6))
    S[idx["b"], idx["e"]] = 5.0  # best fed parent of e (a, b, c, d are fed)
    S[idx["e"], idx["a"]] = 9.0  # not a candidate parent of anything: e is not fed
    S[idx["d"], idx["e"]] = 4.0  # best reaching child of d
    S[idx["d"], idx["b"]] = 8.0  # b reaches no output: not a candidate child
    S[idx["a"], idx["c"]] = 99.0  # a known edge: never added
    done, added, counts = complete_graph(data, S, per_node=1)
    assert {(FUNCS[i], FUNCS[j]) for i, j in zip(*np.nonzero(added))} == {("b", "e"), ("d", "e")}
    assert counts == {"added_edges": 2, "shortcut_in_nodes": 1, "shortcut_out_nodes": 1}
    fed, reaches = reachability(done)
    assert fed.all() and reaches.all()
    # f (isolated) takes every input and every output; nothing else gets a shortcut
    ein = done.edge_index_dict[("input", "to", "function")]
    eout = done.edge_index_dict[("function", "to", "output")]
    assert sorted(ein[0, ein[1] == idx["f"]].tolist()) == [0, 1]
    assert sorted(eout[1, eout[0] == idx["f"]].tolist()) == [0, 1]
    assert ein.shape[1] == 4 and eout.shape[1] == 4
    with pytest.raises(ValueError, match="per_node"):
        complete_graph(data, S, per_node=0)
    with pytest.raises(ValueError, match="shape"):
        complete_graph(data, S[:5], per_node=1)


def test_no_silent_pairs_no_retraining():
    G, _, inputs, functions, outputs, _ = build_convergence_graph(4)
    G.remove_edges_from(default_held_out_edges(4))
    data = nx2pyg(G, inputs, functions, outputs)
    model = _gsnn(data)
    batches = _batches(len(inputs), len(outputs))

    def never(*_a):
        raise AssertionError("retrained although nothing is silent")

    sc = CompletionEdgeScorer(model, data, never, never)
    sc.fit(batches)
    ref = GradientEdgeScorer(model, data, score="partial")
    ref.fit(batches)
    np.testing.assert_array_equal(sc.score_matrix()[0], ref.score_matrix()[0])
    assert sc.completed is None and not sc.silent.any()


def test_silent_pairs_take_the_weighted_completed_scores():
    data = _silent_graph()
    model = _gsnn(data)
    batches = _batches(2, 2)
    built, trained = [], []

    def make_model(d):
        built.append(d)
        return _gsnn(d, seed=1)

    def train(m):
        trained.append(m)

    sc = CompletionEdgeScorer(
        model, data, make_model, train, silent_weight=0.25, sibling=False, placement="weight"
    )
    sc.fit(batches)
    assert len(built) == 1 and trained == [sc.completed_model]
    fed, reaches = reachability(data)
    silent = ~fed[:, None] | ~reaches[None, :]
    np.fill_diagonal(silent, False)
    np.testing.assert_array_equal(sc.silent, silent)
    s0 = GradientEdgeScorer(model, data, score="partial")
    s0.fit(batches)
    s1 = GradientEdgeScorer(sc.completed_model, built[0], score="partial")
    s1.fit(batches)
    score, p = sc.score_matrix()
    np.testing.assert_array_equal(score[~silent], s0.score_matrix()[0][~silent])
    np.testing.assert_array_equal(score[silent], 0.25 * s1.score_matrix()[0][silent])
    np.testing.assert_array_equal(p[silent], s1.score_matrix()[1][silent])
    # the first model sees none of the silent pairs; the completed one most of them (3
    # layers: a few pairs are still too far from an input or an output)
    assert np.isnan(s0.score_matrix()[0][silent]).all()
    assert np.isfinite(score[silent]).mean() > 0.5
    frame = sc.evaluate()
    assert list(frame.columns[4:]) == ["score", "has_edge", "silent", "p_value", "q_value"]
    assert len(frame) == 30 and int(frame["silent"].sum()) == int(silent.sum())
    assert frame["score"].dropna().is_monotonic_decreasing
    assert frame["score"].iloc[: frame["score"].notna().sum()].notna().all()  # NaN last


def test_bad_arguments():
    data = _silent_graph()
    model = _gsnn(data)
    ok = lambda *_a: None  # noqa: E731
    with pytest.raises(TypeError, match="callables"):
        CompletionEdgeScorer(model, data, None, ok)
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="silent_weight"):
            CompletionEdgeScorer(model, data, ok, ok, silent_weight=bad)
    with pytest.raises(ValueError, match="per_node"):
        CompletionEdgeScorer(model, data, ok, ok, per_node=0)
    with pytest.raises(ValueError, match="score"):
        CompletionEdgeScorer(model, data, ok, ok, score="magnitude")
    with pytest.raises(RuntimeError, match="fit"):
        CompletionEdgeScorer(model, data, ok, ok).score_matrix()
    with pytest.raises(ValueError, match="placement"):
        CompletionEdgeScorer(model, data, ok, ok, placement="quantile")
    for bad in ((0.5,), (1.5, 0.2), (0.5, -0.1), "ab", None):
        with pytest.raises(ValueError, match="band"):
            CompletionEdgeScorer(model, data, ok, ok, band=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="retrain_rounds"):
            CompletionEdgeScorer(model, data, ok, ok, retrain_rounds=bad)


def test_band_placement():
    ref = np.arange(101, dtype=float)  # quantile q of ref is 100 q
    ev = np.array([3.0, 1.0, 2.0, 2.0, 10.0])
    out = band_placement(ev, ref, center=0.6, spread=0.5)
    # mid-rank quantiles 0.7, 0.1, 0.4, 0.4, 0.9 (ties share) -> 0.6 + 0.5 (q - 0.5)
    np.testing.assert_allclose(out, [70.0, 40.0, 55.0, 55.0, 80.0])
    # spread 0: every pair at the centre; spread 1 and centre 1/2: the plain quantile map
    np.testing.assert_allclose(band_placement(ev, ref, 0.25, 0.0), 25.0)
    np.testing.assert_allclose(band_placement(ev, ref, 0.5, 1.0), [70.0, 10.0, 40.0, 40.0, 90.0])
    # quantiles taken among another sample; clipped to the reference's range
    np.testing.assert_allclose(
        band_placement([0.0, 99.0], ref, 0.9, 1.0, among=[1.0, 2.0]), [40.0, 100.0]
    )
    with pytest.raises(ValueError, match="empty"):
        band_placement(ev, [], 0.5, 0.5)


def test_band_keeps_the_silent_order_inside_the_visible_band():
    data = _silent_graph()
    model = _gsnn(data)
    batches = _batches(2, 2)
    calls = []

    def train(m):
        calls.append(m)

    fits = {}
    for placement in ("weight", "band"):
        sc = CompletionEdgeScorer(
            model, data, lambda d: _gsnn(d, seed=1), train, placement=placement,
            band=(0.7, 0.2), retrain_rounds=3,
        )  # fmt: skip
        sc.fit(batches)
        fits[placement] = sc
    assert len(calls) == 6 and calls[3:] == [fits["band"].completed_model] * 3
    w, pw = fits["weight"].score_matrix()
    b, pb = fits["band"].score_matrix()
    sc = fits["band"]
    silent = sc.silent
    np.testing.assert_array_equal(b[~silent], w[~silent])  # visible pairs untouched
    np.testing.assert_array_equal(pb, pw)  # p-values stay the completed model's
    np.testing.assert_array_equal(np.isfinite(b), np.isfinite(w))
    m = silent & np.isfinite(w)
    # same order (ties may only appear where the band's quantiles coincide)
    order = np.argsort(w[m], kind="stable")
    assert (np.diff(b[m][order]) >= 0).all()
    # inside the band: between the visible candidates' 60th and 80th percentiles
    cand = ~sc.base._adjacency & ~np.eye(sc.N, dtype=bool)
    ref = sc._s0[~silent & cand & np.isfinite(sc._s0)]
    lo, hi = np.quantile(ref, [0.6, 0.8])
    assert (b[m] >= lo - 1e-12).all() and (b[m] <= hi + 1e-12).all()


def test_sibling_similarity():
    # 0 -> 1 known, 0 unfed; 1, 2, 3 reach an output, 4 does not; fed sources 1..4
    n = 5
    fed = np.array([False, True, True, True, True])
    reaches = np.array([True, True, True, True, False])
    known = np.zeros((n, n), dtype=bool)
    known[0, 1] = True
    rng = np.random.default_rng(0)
    S = rng.uniform(0.5, 2.0, (n, n))
    S[:, 2] = S[:, 1]  # target 2 asks the same sources as 0's child 1
    S[1, 3], S[2, 3] = S[2, 1], S[1, 1]  # target 3 asks them in another order
    sib = sibling_similarity(S, known, fed, reaches)
    assert sib[0, 2] == pytest.approx(1.0)
    assert sib[0, 3] < 1.0 - 1e-6
    assert np.isnan(sib[1:]).all()  # fed sources
    assert np.isnan(sib[0, 4]) and np.isnan(sib[0, 0])  # target reaches no output; self


def test_sibling_rerank_permutes_within_the_silent_pairs():
    # e has no input and one known child (c); every node reaches an output
    G = nx.DiGraph()
    G.add_edges_from([("in0", "a"), ("in1", "b"), ("a", "c"), ("b", "d"), ("c", "o0")])
    G.add_edges_from([("d", "o1"), ("e", "c"), ("a", "h"), ("h", "o0"), ("b", "h")])
    data = nx2pyg(G, ["in0", "in1"], ["a", "b", "c", "d", "e", "h"], ["o0", "o1"])
    model = _gsnn(data, layers=5)
    batches = _batches(2, 2)
    fits = {}
    for sib in (False, True):
        sc = CompletionEdgeScorer(
            model, data, lambda d: _gsnn(d, seed=1, layers=5), lambda m: None, sibling=sib
        )
        sc.fit(batches)
        fits[sib] = sc
    a, pa = fits[False].score_matrix()
    b, pb = fits[True].score_matrix()
    sc = fits[True]
    sib = sibling_similarity(sc._s0, sc.base._adjacency, sc._fed, sc._reaches)
    m = sc.silent & np.isfinite(sib) & np.isfinite(a) & ~sc.base._adjacency
    assert m.sum() == 4  # e -> a, b, d, h
    np.testing.assert_array_equal(a[~m], b[~m])
    np.testing.assert_array_equal(np.sort(a[m]), np.sort(b[m]))
    # the re-ranked pairs are in sibling order, each keeping its score's p-value
    order = np.argsort(-sib[m], kind="stable")
    assert (np.diff(b[m][order]) <= 0).all()
    assert sorted(zip(a[m], pa[m])) == sorted(zip(b[m], pb[m]))
