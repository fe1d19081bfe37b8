"""The large-N query of issue 3: at N = 10,000 function nodes, fit a MagnitudeEdgeInferer
(``track_xx=False``: plain correlation only, half the statistics memory) on a few
batches, then ``evaluate(score='corr', top_k=5)``; report the times and the process's
peak resident memory, which must stay inside the 24 GiB of the CI machine.

Run: ``python -m benchmarks.large_n_topk [--n 10000] [--batches 4] [--batch 64]``
(writes ``benchmarks/results/large_n_topk.json``; one thread, as the suite).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from . import cases  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "large_n_topk.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from gsnn_fast import MagnitudeEdgeInferer

    t0 = time.perf_counter()
    prob = cases.problem("conv", args.n, None)
    model = cases.models(prob, cases.C_DEF, cases.L_DEF)["gsnn_fast"]
    loader = [cases.batch(prob, args.batch, seed=s) for s in range(args.batches)]
    t_setup = time.perf_counter() - t0

    inf = MagnitudeEdgeInferer(model, prob.data, track_xx=False)
    t0 = time.perf_counter()
    n = inf.fit(loader, verbose=False)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = inf.evaluate(score="corr", layer_agg="max", top_k=args.top_k)
    t_eval = time.perf_counter() - t0

    rec = {
        "operation": "evaluate corr top-k at large N (track_xx=False)",
        "N": prob.N,
        "E": prob.E,
        "samples": n,
        "top_k": args.top_k,
        "rows": len(res),
        "setup_s": round(t_setup, 2),
        "fit_s": round(t_fit, 2),
        "evaluate_s": round(t_eval, 2),
        "peak_rss_bytes": peak_rss_bytes(),
        "threads": 1,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(json.dumps(rec, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
