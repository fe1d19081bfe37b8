"""``gsnn-fast infer`` on the seed notebook's example, scored against the notebook's test edges.

The notebook's partial graph (its 35 held-out function->function edges removed) is
written as an edge list and its simulated data (2,000 + 500 samples, as the demo draws
them for the same seed) as INPUTS / OUTPUTS tables; ``gsnn-fast infer`` runs on those
files knowing nothing of the held-out edges. Afterwards this script reads
``candidates.tsv`` and computes the ROC-AUC of the notebook's test edges against the
non-edges (every pair that is neither a test edge nor an edge of the partial graph, as
the demo counts them) for each method, i.e. the demo's "test AUC" column.

    python -m benchmarks.infer_seed_example [--seed 0] [--epochs 30] [--work DIR]
        [--gradient complete] [--save PATH]

Writes ``benchmarks/results/infer_seed_example.json``. With ``--gradient`` the run also
ranks the pairs with the gradient scorer (``gsnn-fast infer --gradient``) and its test
ROC-AUC is recorded as ``gradient``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("mei_partial", "mei_corr", "regressor")


def write_seed_example(
    folder: str | Path,
    *,
    width: int = 25,
    n_train: int = 2000,
    n_test: int = 500,
    seed: int = 0,
) -> dict:
    """Write ``network.tsv``, ``inputs.tsv``, ``outputs.tsv`` of the notebook's example
    into ``folder``; returns the paths, the notebook's test / validation edges and the
    partial graph's function->function edges."""
    from gsnn_fast.data import (
        build_convergence_graph,
        default_held_out_edges,
        simulate,
        split_held_out,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    G, _pos, inputs, functions, outputs, ff_true = build_convergence_graph(width)
    held = default_held_out_edges(width, b2sink_stride=2)
    edges_val, edges_test = split_held_out(held, functions[-1], seed=0)
    G_partial = G.copy()
    G_partial.remove_edges_from(held)
    np.random.seed(seed)
    x_tr, x_te, y_tr, y_te = simulate(
        G,
        n_train=n_train,
        n_test=n_test,
        input_nodes=inputs,
        output_nodes=outputs,
        noise_scale=0.15,
        special_functions=None,
    )
    ids = [f"s{i:05d}" for i in range(n_train + n_test)]
    edges = pd.DataFrame(list(G_partial.edges), columns=["source", "target"])
    edges.to_csv(folder / "network.tsv", sep="\t", index=False)
    x = pd.DataFrame(np.vstack([x_tr, x_te]), index=pd.Index(ids, name="sample"), columns=inputs)
    y = pd.DataFrame(np.vstack([y_tr, y_te]), index=pd.Index(ids, name="sample"), columns=outputs)
    x.to_csv(folder / "inputs.tsv", sep="\t", float_format="%.9g")
    y.to_csv(folder / "outputs.tsv", sep="\t", float_format="%.9g")
    held_set = set(held)
    return {
        "network": folder / "network.tsv",
        "inputs": folder / "inputs.tsv",
        "outputs": folder / "outputs.tsv",
        "edges_test": edges_test,
        "edges_val": edges_val,
        "kept_ff": [e for e in ff_true if e not in held_set],
        "function_nodes": functions,
    }


def score_test_edges(
    candidates: pd.DataFrame, edges_test, kept_ff, methods=METHODS
) -> dict[str, float]:
    """ROC-AUC of the test edges against the non-edges, per method, from a candidate
    frame (pairs of the partial graph are not in it; self pairs never are)."""
    from gsnn_fast.inference.metrics import pair_auc

    pos_set = set(map(tuple, edges_test))
    kept = set(map(tuple, kept_ff))
    pairs = list(zip(candidates["src"].astype(str), candidates["dst"].astype(str)))
    is_pos = np.array([p in pos_set for p in pairs])
    is_neg = np.array([(p not in pos_set) and (p not in kept) for p in pairs])
    out = {}
    for m in methods:
        s = candidates[m].to_numpy(dtype=float)
        out[m] = pair_auc(s[is_pos], s[is_neg])
    out["n_test_edges_found"] = int(is_pos.sum())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--work", default="/tmp/gsnn_fast_infer_seed_example")
    ap.add_argument("--save", default=str(RESULTS / "infer_seed_example.json"))
    ap.add_argument(
        "--gradient",
        default="off",
        choices=("off", "corr", "partial", "complete"),
        help="also score with gsnn-fast infer --gradient (recorded as 'gradient')",
    )
    args = ap.parse_args(argv)
    methods = METHODS + (("gradient",) if args.gradient != "off" else ())
    work = Path(args.work)
    ex = write_seed_example(work / "data", seed=args.seed)
    out = work / f"run_seed{args.seed}"
    cmd = [
        sys.executable, "-m", "gsnn_fast.cli", "infer",
        "--graph", str(ex["network"]), "--x", str(ex["inputs"]), "--y", str(ex["outputs"]),
        "--out", str(out), "--overwrite", "--seed", str(args.seed),
        "--epochs", str(args.epochs),
    ]  # fmt: skip
    if args.gradient != "off":
        cmd += ["--gradient", args.gradient]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    cand = pd.read_csv(out / "candidates.tsv", sep="\t")
    run = json.loads((out / "results.json").read_text())
    aucs = score_test_edges(cand, ex["edges_test"], ex["kept_ff"], methods)
    record = {
        "what": "gsnn-fast infer on the seed notebook's partial graph and simulated data; "
        "test ROC-AUC of the notebook's 18 test edges vs non-edges, from candidates.tsv",
        "command": " ".join(["gsnn-fast"] + cmd[3:]),
        "seed": args.seed,
        "epochs": args.epochs,
        "gradient": args.gradient,
        "test_auc": {m: aucs[m] for m in methods},
        "n_test_edges_in_candidates": aucs["n_test_edges_found"],
        "val_edge_auc (calibration)": run["metrics"]["calibration"]["val_edge_auc"],
        "held_out_auc (calibration)": run["metrics"]["calibration"]["held_out_auc"],
        "test_r2": run["metrics"].get("test_r2"),
        "epochs_run": run["training"]["epochs_run"],
        "best_model_epoch": run["training"]["best_model_epoch"],
        "best_regressor_epoch": run["training"]["best_regressor_epoch"],
        "held_out_edges": run["held_out_edges"],
        "wall_s_command": round(wall, 2),
        "timings_s": run["timings_s"],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads available",
        "versions": run["versions"],
    }
    print(json.dumps(record, indent=2))
    Path(args.save).parent.mkdir(parents=True, exist_ok=True)
    Path(args.save).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
