"""The edge-recovery benchmark's code paths (structure only; quality numbers live in
benchmarks/results/edge_recovery.md): metrics on hand-made scores, every graph family's
task, and one tiny end-to-end run with every method."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.edge_recovery import __main__ as cli
from benchmarks.edge_recovery.families import FAMILIES, Family, build_task
from benchmarks.edge_recovery.run import METHODS, edge_metrics, run_one


def test_metrics_perfect_and_reversed():
    n = 5
    known = np.zeros((n, n), bool)
    known[0, 1] = True
    test = np.zeros((n, n), bool)
    test[2, 3] = test[1, 4] = True
    val = np.zeros((n, n), bool)
    val[0, 2] = True
    true_graph = known | test | val
    S = np.where(test, 1.0, 0.0) + np.random.default_rng(0).random((n, n)) * 1e-3
    m = edge_metrics(S, test, true_graph, known, val)
    assert m["auc"] == 1.0 and m["ap"] == 1.0 and m["mrr"] == 1.0 and m["top@1"] == 1.0
    m = edge_metrics(-S, test, true_graph, known, val)
    assert m["auc"] == 0.0 and m["mrr"] < 0.5
    S_nan = np.full((n, n), np.nan)
    assert edge_metrics(S_nan, test, true_graph, known, val)["auc"] == 0.5


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_family_tasks(fam):
    task = build_task(fam, 0)
    held = set(task.held_out)
    assert held and held <= set(task.true_ff)
    assert not set(task.val) & set(task.test)
    assert len(task.functions) >= fam.n_function - 1


def test_tiny_run_and_report(tmp_path, monkeypatch):
    fam = Family("tiny_layered", "layered", 18, signed=True, nonlinear=True, epochs=1, n_train=192)
    res = run_one(fam, 0)
    assert set(res["methods"]) == set(METHODS)
    for m in res["methods"].values():
        assert {"auc", "ap", "mrr", "top@1", "top@3", "seconds"} <= set(m)
        assert 0.0 <= m["auc"] <= 1.0
    monkeypatch.setattr(cli, "FAMILIES", [fam])
    out = cli.main(["--families", "tiny_layered", "--seeds", "2", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "edge_recovery.json").read_text())
    assert saved["summary"].keys() == out["summary"].keys() == {"tiny_layered"}
    assert len(saved["runs"]) == 2
    assert "| tiny_layered |" in (tmp_path / "edge_recovery.md").read_text()


def _chain_task(held: list[tuple[str, str]]):
    """Inputs a, b, c each feed one function node; f1, f2 (and f3 unless held out) feed f4;
    f4 and f3 reach the outputs."""
    import networkx as nx

    from benchmarks.edge_recovery.families import Task

    ff = [("f1", "f4"), ("f2", "f4"), ("f3", "f4"), ("f4", "f5")]
    G = nx.DiGraph(
        [("a", "f1"), ("b", "f2"), ("c", "f3"), *ff, ("f5", "o1"), ("f4", "o2"), ("f3", "o3")]
    )
    functions = ["f1", "f2", "f3", "f4", "f5"]
    return Task(G, ["a", "b", "c"], functions, ["o1", "o2", "o3"], ff, [], list(held), 0.3)


def _oracle_data(task, n):
    from gsnn_fast.data.simulate import simulate

    np.random.seed(0)
    x, _, y, _ = simulate(task.G, n_train=n, n_test=1, input_nodes=task.inputs,
                          output_nodes=task.outputs, noise_scale=task.noise)  # fmt: skip
    return x, y


def test_oracle_implied_covariance_and_null_calibration():
    # nothing held out: the implied residual covariance is the data's, and the
    # covariance test's z statistics are standard-normal-sized
    from benchmarks.edge_recovery.oracle import LinearOracle

    task = _chain_task([])
    x, y = _oracle_data(task, 40_000)
    oracle = LinearOracle(task, x, y)
    _, sigma_inv, _, xhat, r = oracle._model()
    assert np.abs(xhat).max() > 0.5
    np.testing.assert_allclose(np.linalg.inv(sigma_inv), np.cov(r.T), rtol=0.05, atol=0.005)
    z = oracle.cov()
    assert np.isfinite(z).sum() >= 10 and np.nanmax(z) < 4.0


def test_oracle_scores_the_held_out_edge():
    # f3 -> f4 held out. f1 and f2 reach the outputs only through f4, so an edge from f3
    # into any of the three moves the outputs the same way: the mean test ties them at
    # the top, above every other pair
    from benchmarks.edge_recovery.oracle import LinearOracle

    task = _chain_task([("f3", "f4")])
    x, y = _oracle_data(task, 4_000)
    oracle = LinearOracle(task, x, y)
    z = oracle.mean()
    f = {v: k for k, v in enumerate(task.functions)}
    same = {(f["f3"], f[t]) for t in ("f1", "f2", "f4")}
    top = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.abs(z - np.nanmax(z)) < 1e-9))}
    assert top == same
    rest = [z[i, j] for i in range(5) for j in range(5) if i != j and (i, j) not in same]
    assert z[f["f3"], f["f4"]] > 1.5 * np.nanmax(rest)
    # f3's noise now reaches o1 and o2 as well: the covariance test sees it
    assert oracle.cov()[f["f3"], f["f4"]] > 4.0
    # greedy: the first pick is one of the tied pairs, ranked above every other pair
    g = oracle.greedy(1)
    first = np.unravel_index(np.nanargmax(g), g.shape)
    assert (int(first[0]), int(first[1])) in same


def test_reorder_hands_values_out_by_key():
    from benchmarks.edge_recovery.oracle import reorder

    S = np.array([[0.1, 0.9, np.nan], [0.5, 0.3, 0.7]])
    pairs = np.array([[True, True, True], [False, False, True]])
    key = np.array([[3.0, 1.0, 2.0], [9.0, 9.0, np.nan]])
    out = reorder(S, pairs, key)
    # values over the pairs, sorted (NaN lowest): -inf, 0.1, 0.7, 0.9; keys: NaN lowest
    assert out[0, 0] == 0.9 and out[0, 2] == 0.7 and out[0, 1] == 0.1 and out[1, 2] == -np.inf
    assert out[1, 0] == 0.5 and out[1, 1] == 0.3
    assert np.isnan(S[0, 2])  # the input is not changed


def test_oracle_twostep_reads_an_unfed_source():
    # c -> f3 and f3 -> f4 held out: no input reaches f3 in the known graph, but o3 misses
    # c's signal through f3, and f4's outputs miss it too. The two-step test ties
    # (f3, f4) with (f3, f1) and (f3, f2) at the top of f3's row (same output routes);
    # it scores no other row, and the mean test cannot score f3 at all
    from benchmarks.edge_recovery.oracle import LinearOracle

    task = _chain_task([("c", "f3"), ("f3", "f4")])
    x, y = _oracle_data(task, 4_000)
    oracle = LinearOracle(task, x, y)
    f = {v: k for k, v in enumerate(task.functions)}
    assert not oracle.fed[f["f3"]] and oracle.fed.sum() == 4
    two = oracle.twostep()
    row = two[f["f3"]]
    assert np.isnan(np.delete(two, f["f3"], axis=0)).all()
    assert row[f["f4"]] > 10 and np.isclose(row[f["f1"]], row[f["f4"]])
    assert row[f["f4"]] > 1.5 * row[f["f5"]]
    assert np.isnan(oracle.mean()[f["f3"]]).all()
    key = oracle.silent_key(two, oracle.cov())
    assert np.isfinite(key[f["f3"], f["f4"]]) and np.isnan(key[f["f1"], f["f4"]])
