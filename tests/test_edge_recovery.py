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
