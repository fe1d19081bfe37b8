"""``gsnn-fast demo``: results.json schema, plots, the no-matplotlib hint, determinism."""

from __future__ import annotations

import json
import math
import sys

import pytest

from gsnn_fast.cli import main
from gsnn_fast.demo import r2_score

METHODS = ("regressor", "mei_corr", "mei_partial")
METRICS = ("auc", "mrr", "top@1", "top@3")


def _load(path):
    with open(path / "results.json") as fh:
        return json.load(fh)


def _check_schema(res: dict, epochs: int) -> None:
    assert {"config", "test_r2", "best_epoch", "val_auc_history", "methods", "timings_s"} <= set(
        res
    )
    cfg = res["config"]
    assert cfg["width"] == 25 and cfg["epochs"] == epochs and cfg["seed"] == 0
    assert cfg["device"] in ("cpu", "cuda")
    assert isinstance(res["test_r2"], float) and -1.0 < res["test_r2"] < 1.0
    assert res["best_epoch"] is None or 1 <= res["best_epoch"] <= epochs
    assert len(res["val_auc_history"]) == epochs
    assert all(0.0 <= a <= 1.0 for a in res["val_auc_history"])
    assert set(res["methods"]) == set(METHODS)
    for name in METHODS:
        m = res["methods"][name]
        assert set(m) == set(METRICS), name
        assert all(isinstance(m[k], float) and 0.0 <= m[k] <= 1.0 for k in METRICS), (name, m)
    t = res["timings_s"]
    assert {"setup", "train", "mei_fit", "total"} <= set(t)
    assert all(v >= 0 for v in t.values())
    assert res["n_gsnn_params"] == 13980


def test_demo_end_to_end_and_deterministic(tmp_path, monkeypatch, capsys):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main(["demo", "--epochs", "2", "--out", str(out_a)]) == 0
    printed = capsys.readouterr().out
    assert "epoch  1/2 | train loss:" in printed and "val AUC" in printed and "MRR" in printed
    for label in ("regressor (best)", "MEI corr", "MEI partial", "test R^2"):
        assert label in printed
    res_a = _load(out_a)
    _check_schema(res_a, epochs=2)
    try:
        import matplotlib  # noqa: F401

        has_mpl = True
    except ImportError:
        has_mpl = False
    assert ((out_a / "val_auc.png").exists() and (out_a / "roc.png").exists()) == has_mpl

    # Second run, same seed, matplotlib unavailable: hint printed, JSON still written,
    # identical numbers.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["demo", "--epochs", "2", "--out", str(out_b), "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert "pip install matplotlib" in printed
    assert not (out_b / "val_auc.png").exists()
    res_b = _load(out_b)
    for key in ("test_r2", "best_epoch", "val_auc_history", "methods", "test_loss"):
        assert res_a[key] == res_b[key], key


def test_cli_errors(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--epochs", "0"])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["demo", "--width", "2", "--out", "unused"]) == 2
    assert "width" in capsys.readouterr().err
    import torch

    import gsnn_fast

    if not (torch.cuda.is_available() and gsnn_fast.build_info()["cuda"]):
        assert main(["demo", "--device", "cuda", "--out", "unused"]) == 2
        assert "cuda" in capsys.readouterr().err


def test_r2_score_matches_definition():
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3))
    p = y + rng.normal(scale=0.5, size=y.shape)
    ref = np.mean(
        [
            1 - ((y[:, j] - p[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
            for j in range(3)
        ]
    )
    assert math.isclose(r2_score(y, p), ref, rel_tol=1e-12)
    y[:, 0] = 1.0
    p[:, 0] = 1.0  # constant column predicted exactly -> 1
    assert math.isclose(r2_score(y[:, :1], p[:, :1]), 1.0)
