"""``python -m benchmarks.edge_recovery.cost [--n 2000]``: fit time per batch, scoring time
and statistics memory of GradientEdgeScorer and CompletionEdgeScorer next to the Tier-0
MagnitudeEdgeInferer.

CompletionEdgeScorer runs the gradient scorer twice (on the model, then on a model of
the completed graph) and trains that second model: its row gives both fits per batch,
the training step per batch of the completed model (times batches x epochs of the
user's recipe for the retraining), and the statistics of both scorers (both are kept).

A scale-free graph of ``--n`` function nodes (a quarter of its function -> function
edges withheld, as in the benchmark), the notebook's GSNN (channels 8, 6
layers, untrained: the cost does not depend on the weights), batches of 64. Memory is
the float64 accumulators each method keeps (the dominant term; the per-batch working
set is O(L B C)). Writes ``edge_recovery_cost.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from gsnn_fast import GSNN, CompletionEdgeScorer, GradientEdgeScorer, MagnitudeEdgeInferer, nx2pyg
from gsnn_fast.data import scale_free_graph


def _stats_bytes(scorer) -> int:
    """Bytes of a scorer's statistics (sum_xx is None without track_xx)."""
    ts = (getattr(scorer, k) for k in ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx"))
    return int(sum(t.numel() * t.element_size() for t in ts if t is not None))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.edge_recovery.cost")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    G, inputs, functions, outputs = scale_free_graph(args.n, seed=0)
    # a quarter of the function -> function edges withheld, as in the benchmark's
    # families, so that the completion scorer has silent pairs to retrain for
    fs = set(functions)
    ff = [e for e in G.edges if e[0] in fs and e[1] in fs]
    rng = np.random.default_rng(0)
    G.remove_edges_from([ff[i] for i in rng.permutation(len(ff))[: len(ff) // 4]])
    data = nx2pyg(G, inputs, functions, outputs)

    def make_model(d):
        return GSNN(
            d.edge_index_dict, d.node_names_dict, channels=8, layers=6, share_layers=False,
            norm="none", dropout=0.2, node_mlp=False,
        )  # fmt: skip

    model = make_model(data)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(64, len(inputs), generator=g), torch.randn(64, len(outputs), generator=g))
        for _ in range(args.batches)
    ]
    rows = {}

    def timed(fn, *a, **kw):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        return out, time.perf_counter() - t0

    def row(scorer, t_fit: float, t_score: float) -> dict:
        return {
            "fit_s_per_batch": t_fit / args.batches,
            "score_s": t_score,
            "stats_bytes": _stats_bytes(scorer),
        }

    for score in ("corr", "partial"):
        mei = MagnitudeEdgeInferer(model, data, track_xx=score == "partial")
        _, t_fit = timed(mei.fit, batches, verbose=False)
        _, t_score = timed(mei.score_matrices, score=score, layer_agg="max")
        rows[f"mei_{score}"] = row(mei, t_fit, t_score)
        sc = GradientEdgeScorer(model, data, projections=2, score=score)
        _, t_fit = timed(sc.fit, batches)
        _, t_score = timed(sc.score_matrix)
        rows[f"grad_{score}"] = row(sc, t_fit, t_score)
        print(score, rows[f"mei_{score}"], rows[f"grad_{score}"], flush=True)

    step: dict[str, float] = {}

    def one_epoch(m):  # the retraining's cost per batch (one epoch of the same batches)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0, fused=True)
        t0 = time.perf_counter()
        m.train()
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
        m.eval()
        step["s"] = (time.perf_counter() - t0) / args.batches

    one_epoch(make_model(data))  # the first model's training step, for comparison
    first_step = step["s"]
    cs = CompletionEdgeScorer(model, data, make_model, one_epoch, score="partial")
    cs.fit(batches)
    _, t_combine = timed(cs.score_matrix)
    both = (cs.base, cs.completed) if cs.completed is not None else (cs.base,)
    rows["grad_complete"] = {
        # each fit includes its scorer's score_matrix (the combination itself is free)
        "fit_and_score_s_per_batch": cs.seconds["base_fit"] / args.batches,
        "completed_fit_and_score_s_per_batch": cs.seconds.get("completed_fit", 0.0) / args.batches,
        "train_step_s_per_batch": step["s"] if cs.completed is not None else None,
        "combine_s": t_combine,  # score_matrix: the two models' scores, sibling re-rank
        "first_model_train_step_s_per_batch": first_step,
        "stats_bytes": sum(_stats_bytes(s) for s in both),
        "silent_pair_fraction": float(cs.silent.mean()),
        **cs.counts,
    }
    print("complete", rows["grad_complete"], flush=True)
    res = {
        "n_function": args.n,
        "layers": 6,
        "channels": 8,
        "batch": 64,
        "projections": 2,
        "threads": 1,
        "load_average": os.getloadavg()[0],
        "methods": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "edge_recovery_cost.json").write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
