"""``gsnn-fast infer --gradient``: the GradientEdgeScorer's columns in candidates.tsv, its
held-out AUC in results.json, the option in config.toml; off by default; ``complete``
scores the silent pairs (CompletionEdgeScorer)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks.infer_seed_example import write_seed_example
from gsnn_fast.cli import main
from gsnn_fast.inference.completion_edge_scorer import reachability
from gsnn_fast.pipeline import InferConfig, infer_edges

FAST_KW = {"epochs": 2, "channels": 4, "layers": 3, "threads": 1, "plots": False}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grad_example")
    return write_seed_example(folder / "data", n_train=200, n_test=40, seed=1)


def test_gradient_option_adds_columns(example, tmp_path):
    out = tmp_path / "run"
    rc = main(
        ["infer", "--graph", str(example["network"]), "--x", str(example["inputs"]),
         "--y", str(example["outputs"]), "--out", str(out), "--epochs", "2", "--channels", "4",
         "--layers", "3", "--threads", "1", "--no-plots", "--quiet", "--gradient", "partial"]
    )  # fmt: skip
    assert rc == 0
    cand = pd.read_csv(out / "candidates.tsv", sep="\t")
    for col in ("gradient", "p_gradient", "q_gradient", "rank_gradient"):
        assert col in cand.columns
    assert cand["gradient"].notna().any()
    res = json.loads((out / "results.json").read_text())
    assert "gradient" in res["metrics"]["calibration"]["held_out_auc"]
    assert InferConfig.from_toml(out / "config.toml").gradient == "partial"


def test_gradient_off_by_default(example):
    res = infer_edges(
        example["network"], example["inputs"], example["outputs"], log=None, **FAST_KW
    )
    assert "gradient" not in res.candidates.columns
    assert set(res.frames) == {"mei_partial", "mei_corr", "regressor"}
    with pytest.raises(Exception, match="gradient"):
        InferConfig.from_dict({"gradient": "magnitude"})


def test_gradient_complete_scores_the_silent_pairs(example):
    res = infer_edges(
        example["network"], example["inputs"], example["outputs"], log=None,
        gradient="complete", edge_val_fraction=0.5, **FAST_KW,
    )  # fmt: skip
    frame = res.frames["gradient"]
    fed, reaches = reachability(res.data)
    want = ~fed[frame["src_idx"].to_numpy()] | ~reaches[frame["dst_idx"].to_numpy()]
    assert (frame["silent"].to_numpy() == want).all()
    assert want.any()  # half of the edges withheld: some nodes lose their paths
    assert frame.loc[frame["silent"], "score"].notna().any()
    assert res.candidates["gradient"].notna().any()
    assert res.results["config"]["gradient"] == "complete"
