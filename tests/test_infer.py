"""``gsnn-fast infer``: the seed example from files (CLI == Python call), the run folder,
config round trip, reloading, and a clear error for each kind of bad input."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.infer_seed_example import score_test_edges, write_seed_example
from gsnn_fast.cli import main
from gsnn_fast.io import InputError, read_network, read_table
from gsnn_fast.pipeline import InferConfig, infer_edges, load_run

# Small and quick: the quality bar is measured by benchmarks/infer_seed_example.py.
FAST = ["--epochs", "2", "--channels", "4", "--layers", "3", "--threads", "1"]
FAST_KW = {"epochs": 2, "channels": 4, "layers": 3, "threads": 1}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed_example")
    return write_seed_example(folder / "data", n_train=240, n_test=60, seed=0)


def _args(ex, out, *extra):
    return [
        "infer", "--graph", str(ex["network"]), "--x", str(ex["inputs"]),
        "--y", str(ex["outputs"]), "--out", str(out), *FAST, *extra,
    ]  # fmt: skip


def test_cli_equals_python_call_and_run_folder(example, tmp_path, capsys):
    out_cli = tmp_path / "cli"
    assert main(_args(example, out_cli, "--seed", "3")) == 0
    printed = capsys.readouterr().out
    assert "epoch  1/2 | train loss:" in printed and "val AUC" in printed
    assert "network: 25 inputs | 50 functions | 25 outputs | 37 function->function" in printed

    res = infer_edges(
        example["network"], example["inputs"], example["outputs"], tmp_path / "py",
        seed=3, log=None, **FAST_KW,
    )  # fmt: skip
    # same run: the same candidate file, byte for byte, and the returned frame is it
    tsv_cli = (out_cli / "candidates.tsv").read_text()
    assert tsv_cli == (tmp_path / "py" / "candidates.tsv").read_text()
    cand = pd.read_csv(out_cli / "candidates.tsv", sep="\t")
    assert list(cand.columns) == list(res.candidates.columns)
    assert (cand["src"] == res.candidates["src"].astype(str)).all()
    np.testing.assert_allclose(cand["mei_partial"], res.candidates["mei_partial"], rtol=1e-9)
    assert cand["rank_mei_partial"].min() == 1

    # contents: 50*49 pairs minus the model graph's edges; held-out edges flagged
    held = pd.read_csv(out_cli / "held_out_edges.tsv", sep="\t")
    assert len(held) == round(37 * 0.2) == len(res.held_out_edges)
    assert len(cand) == 50 * 49 - (37 - len(held))
    assert int(cand["held_out"].sum()) == len(held)
    assert cand["mei_partial"].dropna().is_monotonic_decreasing
    assert (cand[["p_mei_partial", "q_mei_partial", "p_regressor"]].stack().between(0, 1)).all()
    aucs = score_test_edges(cand, example["edges_test"], example["kept_ff"])
    assert aucs["n_test_edges_found"] == 18 and 0.0 <= aucs["mei_partial"] <= 1.0

    results = json.loads((out_cli / "results.json").read_text())
    assert results["versions"]["torch"] == torch.__version__
    assert results["device"] == "cpu" and results["splits"] == {"train": 240, "val": 30, "test": 30}
    assert results["training"]["epochs_run"] == 2 and len(results["training"]["history"]) == 2
    assert 0.0 <= results["metrics"]["calibration"]["held_out_auc"]["mei_partial"] <= 1.0
    assert results["metrics"]["calibration"]["val_edge_auc"] is not None
    assert {"train", "mei_fit", "total"} <= set(results["timings_s"])
    samples = pd.read_csv(out_cli / "samples.tsv", sep="\t")
    assert samples["split"].value_counts().to_dict() == {"train": 240, "val": 30, "test": 30}
    try:
        import matplotlib  # noqa: F401

        assert (out_cli / "roc.png").exists() and (out_cli / "pvalues.png").exists()
    except ImportError:
        assert results["plots"] == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left

    # the folder holds a run: refused without --overwrite, nothing changed
    assert main(_args(example, out_cli, "--seed", "4")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out_cli / "candidates.tsv").read_text() == tsv_cli

    # config.toml repeats the run exactly
    out_again = tmp_path / "again"
    assert main(["infer", "--config", str(out_cli / "config.toml"), "--out", str(out_again)]) == 0
    assert (out_again / "candidates.tsv").read_text() == tsv_cli
    assert InferConfig.from_toml(out_cli / "config.toml").seed == 3

    # reload: the model and the inferer's statistics give the run's scores back
    run = load_run(out_cli)
    again = run["inferer"].evaluate(layer_agg="max", score="partial")
    ref = res.frames["mei_partial"]
    np.testing.assert_array_equal(again["corr"].to_numpy(), ref["corr"].to_numpy())
    x = torch.tensor(pd.read_csv(example["inputs"], sep="\t", index_col=0).to_numpy()[:5])
    with torch.inference_mode():
        a = run["model"](x.float())
        res.model.eval()
        b = res.model(x.float())
    torch.testing.assert_close(a, b)


def test_statistics_refuse_a_different_inferer(example, tmp_path):
    from gsnn_fast import MagnitudeEdgeInferer
    from gsnn_fast.inference.statistics import load_statistics, save_statistics

    res = infer_edges(
        example["network"], example["inputs"], example["outputs"], edge_val_fraction=0.0,
        test_fraction=0.0, val_fraction=0.0, log=None, **FAST_KW,
    )  # fmt: skip
    assert res.out_dir is None and res.held_out_edges == []
    path = tmp_path / "stats.pt"
    save_statistics(res.inferer, path)
    fresh = MagnitudeEdgeInferer(res.model, res.data, reduction="l1")
    load_statistics(fresh, path)
    assert fresh.n == res.inferer.n
    assert torch.equal(fresh.sum_xy, res.inferer.sum_xy.cpu())
    with pytest.raises(ValueError, match="reduction"):
        load_statistics(MagnitudeEdgeInferer(res.model, res.data, reduction="l2"), path)
    ei = dict(res.data.edge_index_dict)
    key = ("function", "to", "function")
    ei[key] = ei[key][:, 1:]
    other = type(res.data)(ei, res.data.node_names_dict)
    with pytest.raises(ValueError, match="function->function edges differ"):
        load_statistics(MagnitudeEdgeInferer(res.model, other, reduction="l1"), path)


def test_network_formats_agree(tmp_path):
    G = nx.DiGraph([("a", "f1"), ("f1", "f2"), ("f2", "o")])
    (tmp_path / "n.sif").write_text("a\tpp\tf1\nf1 activates f2\nf2 pp o\n")
    (tmp_path / "n.csv").write_text("from,to,sign\na,f1,+\nf1,f2,-1\nf2,o,1\n")
    nx.write_graphml(G, tmp_path / "n.graphml")
    edges = sorted(G.edges)
    assert sorted(read_network(tmp_path / "n.sif")[0].edges) == edges
    assert sorted(read_network(tmp_path / "n.graphml")[0].edges) == edges
    Gc, _ = read_network(tmp_path / "n.csv", source_col="from", target_col="to")
    assert sorted(Gc.edges) == edges and Gc.edges["f1", "f2"]["sign"] == -1.0


# ----------------------------------------------------------------------------- bad input


@pytest.fixture()
def small(tmp_path):
    """A tiny valid network and tables; each bad-input test breaks one thing."""
    rng = np.random.default_rng(0)
    net = pd.DataFrame(
        [("i0", "f0"), ("i1", "f1"), ("f0", "f2"), ("f1", "f2"), ("f2", "o0"), ("f1", "o1")],
        columns=["source", "target"],
    )
    ids = [f"s{i}" for i in range(40)]
    x = pd.DataFrame(rng.normal(size=(40, 2)), index=pd.Index(ids, name="id"), columns=["i0", "i1"])
    y = pd.DataFrame(rng.normal(size=(40, 2)), index=pd.Index(ids, name="id"), columns=["o0", "o1"])
    paths = {"net": tmp_path / "net.tsv", "x": tmp_path / "x.tsv", "y": tmp_path / "y.tsv"}
    net.to_csv(paths["net"], sep="\t", index=False)
    x.to_csv(paths["x"], sep="\t")
    y.to_csv(paths["y"], sep="\t")
    return {"paths": paths, "net": net, "x": x, "y": y, "dir": tmp_path}


def _run_bad(small, capsys, *extra, net=None, x=None, y=None):
    p = small["paths"]
    out = small["dir"] / "out"
    rc = main(
        ["infer", "--graph", str(net or p["net"]), "--x", str(x or p["x"]),
         "--y", str(y or p["y"]), "--out", str(out), *FAST, *extra]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not out.exists(), "nothing may be written for a bad input"
    assert not [q for q in small["dir"].iterdir() if q.name.startswith(".out")]
    return err


def test_small_example_runs_with_progress(small, capsys):
    p = small["paths"]
    kw = {**FAST_KW, "batch_size": 8}
    res = infer_edges(p["net"], p["x"], p["y"], edge_val_fraction=0.5, progress=True, **kw)
    assert set(res.candidates["src"].astype(str)) <= {"f0", "f1", "f2"}
    out = capsys.readouterr().out
    # one status line over the batches (with an ETA), erased before each epoch line
    assert "\repoch 1/2: batch 1/4 | n=8 |" in out and "| ETA " in out
    assert "epoch  2/2 | train loss:" in out and "MagnitudeEdgeInferer.fit:" in out


def test_missing_file(small, capsys):
    err = _run_bad(small, capsys, net=small["dir"] / "nope.tsv")
    assert "network file" in err and "nope.tsv" in err and "does not exist" in err


def test_unreadable_parquet(small, capsys):
    bad = small["dir"] / "x.parquet"
    bad.write_bytes(b"not a parquet file")
    pytest.importorskip("pyarrow")
    err = _run_bad(small, capsys, x=bad)
    assert "INPUTS file" in err and "x.parquet" in err


def test_parquet_without_pyarrow(small, capsys, monkeypatch):
    bad = small["dir"] / "x.parquet"
    bad.write_bytes(b"PAR1")
    import gsnn_fast.io

    def missing():
        raise ImportError("No module named 'pyarrow'")

    monkeypatch.setattr(gsnn_fast.io, "_pyarrow_parquet", missing)
    err = _run_bad(small, capsys, x=bad)
    assert "pyarrow" in err and "x.parquet" in err


def test_no_function_function_edges(small, capsys):
    path = small["dir"] / "net2.tsv"
    pd.DataFrame(
        [("i0", "f0"), ("i1", "f1"), ("f0", "o0"), ("f1", "o1")], columns=["source", "target"]
    ).to_csv(path, sep="\t", index=False)
    err = _run_bad(small, capsys, net=path)
    assert "no function->function edges" in err and "net2.tsv" in err


def test_wrong_edge_columns(small, capsys):
    err = _run_bad(small, capsys, "--source-col", "from")
    assert "no column 'from'" in err


def test_inputs_not_in_network(small, capsys):
    x = small["x"].rename(columns={"i1": "ghost"})
    path = small["dir"] / "x2.tsv"
    x.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, x=path)
    assert "'ghost'" in err and "not nodes of the network" in err and "x2.tsv" in err


def test_duplicate_node_names(small, capsys):
    path = small["dir"] / "x2.tsv"
    text = small["paths"]["x"].read_text().splitlines()
    text[0] = text[0].replace("i1", "i0")
    path.write_text("\n".join(text) + "\n")
    err = _run_bad(small, capsys, x=path)
    assert "duplicate node names" in err and "'i0'" in err


def test_duplicate_sample_ids(small, capsys):
    x = small["x"].copy()
    x.index = ["s0"] + list(x.index[1:-1]) + ["s0"]
    path = small["dir"] / "x2.tsv"
    x.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, x=path)
    assert "duplicate sample ids" in err and "'s0'" in err


def test_sample_ids_differ(small, capsys):
    y = small["y"].iloc[::-1]
    path = small["dir"] / "y2.tsv"
    y.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, y=path)
    assert "sample ids differ" in err and "'s0'" in err and "'s39'" in err


def test_non_numeric_column(small, capsys):
    x = small["x"].astype(object)
    x.iloc[3, 1] = "high"
    path = small["dir"] / "x2.tsv"
    x.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, x=path)
    assert "column 'i1' is not numeric" in err and "'high'" in err


def test_all_nan_column(small, capsys):
    y = small["y"].copy()
    y["o1"] = np.nan
    path = small["dir"] / "y2.tsv"
    y.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, y=path)
    assert "column 'o1' is all NaN" in err and "y2.tsv" in err


def test_too_few_samples(small, capsys):
    for name in ("x", "y"):
        small[name].iloc[:9].to_csv(small["dir"] / f"{name}9.tsv", sep="\t")
    err = _run_bad(small, capsys, x=small["dir"] / "x9.tsv", y=small["dir"] / "y9.tsv")
    assert "9 usable samples" in err and "needs at least 12" in err


def test_nan_samples_dropped_or_refused(small, capsys):
    x = small["x"].copy()
    x.iloc[5, 0] = np.nan
    path = small["dir"] / "x2.tsv"
    x.to_csv(path, sep="\t")
    err = _run_bad(small, capsys, "--nan-samples", "error", x=path)
    assert "NaN" in err and "'s5'" in err
    p = small["paths"]
    res = infer_edges(p["net"], path, p["y"], log=None, **FAST_KW)
    assert res.results["validation"]["samples"]["with_nan_dropped"] == 1
    assert "s5" not in res.splits.index


def test_bad_option_values(small, capsys):
    err = _run_bad(small, capsys, "--val-fraction", "1.5")
    assert "val_fraction" in err
    err = _run_bad(small, capsys, "--epochs", "many")
    assert "epochs" in err
    with pytest.raises(InputError, match="unknown option"):
        InferConfig.from_dict({"epoch": 3})


def test_read_table_dataframe_checks():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]}, index=["s1", "s2"])
    with pytest.raises(InputError, match="'b' is all NaN"):
        read_table(df)


def test_graphml_network_and_nodes_table(small, capsys):
    p, d = small["paths"], small["dir"]
    G = nx.DiGraph(list(small["net"].itertuples(index=False, name=None)))
    G.add_edge("f2", "i0")  # a function -> input edge: ignored, reported
    nx.write_graphml(G, d / "net.graphml")
    roles = pd.DataFrame(
        {
            "node": ["i0", "i1", "f0", "f1", "f2", "o0", "o1"],
            "role": ["input"] * 2 + ["function"] * 3 + ["output"] * 2,
        }
    )
    roles.to_csv(d / "nodes.csv", index=False)
    res = infer_edges(d / "net.graphml", p["x"], p["y"], nodes=d / "nodes.csv", log=None, **FAST_KW)
    assert res.results["validation"]["edges"]["ignored (kind)"] == {"function->input": 1}
    # a nodes table that contradicts the data
    roles.loc[roles["node"] == "i1", "role"] = "function"
    roles.to_csv(d / "nodes_bad.csv", index=False)
    err = _run_bad(small, capsys, "--nodes", str(d / "nodes_bad.csv"))
    assert "'i1'" in err and "role 'function'" in err


def test_cuda_requested_without_cuda(small, capsys):
    import gsnn_fast

    if torch.cuda.is_available() and gsnn_fast.build_info().get("cuda"):
        pytest.skip("CUDA is available here")
    err = _run_bad(small, capsys, "--device", "cuda")
    assert "cuda" in err


def test_top_k_and_q_threshold(example):
    kw = {**FAST_KW, "log": None, "plots": False}
    paths = (example["network"], example["inputs"], example["outputs"])
    full = infer_edges(*paths, **kw).candidates
    top = infer_edges(*paths, top_k=2, **kw).candidates
    for m in ("mei_partial", "mei_corr", "regressor"):
        kept = top[top[m].notna()]
        assert kept[f"rank_{m}"].max() <= 2
        # the same scores as the full run for the pairs a method kept
        ref = full.set_index(["src", "dst"])[m]
        got = kept.set_index(["src", "dst"])[m]
        np.testing.assert_array_equal(got.to_numpy(), ref.loc[got.index].to_numpy())
    assert len(top) < len(full)
    q = infer_edges(*paths, q_threshold=0.05, **kw).candidates
    qs = q[["q_mei_partial", "q_mei_corr", "q_regressor"]].to_numpy()
    assert len(q) < len(full) and (np.nan_to_num(qs, nan=2.0) <= 0.05).any(axis=1).all()


def test_without_statistics_file(small):
    p = small["paths"]
    out = small["dir"] / "nostats"
    infer_edges(p["net"], p["x"], p["y"], out, statistics=False, plots=False, log=None, **FAST_KW)
    assert not (out / "inferer_stats.pt").exists() and (out / "model.pt").exists()
    run = load_run(out)
    assert run["inferer"].n == 0 and run["config"].statistics is False


def test_parquet_tables(small, tmp_path):
    pytest.importorskip("pyarrow")
    x = small["x"]
    x.to_parquet(tmp_path / "with_index.parquet")  # the ids as a stored pandas index
    x.reset_index().to_parquet(tmp_path / "first_col.parquet", index=False)  # ids first
    for name in ("with_index.parquet", "first_col.parquet"):
        got = read_table(tmp_path / name)
        assert got.index.tolist() == x.index.tolist()
        np.testing.assert_array_equal(got.to_numpy(), x.to_numpy())
    p = small["paths"]
    res = infer_edges(p["net"], tmp_path / "with_index.parquet", p["y"], log=None, **FAST_KW)
    ref = infer_edges(p["net"], p["x"], p["y"], log=None, **FAST_KW)
    assert res.splits.equals(ref.splits) and len(res.candidates) == len(ref.candidates)
