"""Large-N queries: at N = 10,000 function nodes (converging-tier graph, C = 8, L = 6)
fit a MagnitudeEdgeInferer on 4 batches of 64 samples, then time
``evaluate(score=..., top_k=5)`` and record the process's peak resident memory.

* ``corr``: ``track_xx=False`` (statistics: sum_xy only, 8 P N^2 bytes = 4 GB);
* ``partial``: needs ``track_xx=True`` (sum_xy and sum_xx: 8 GB).

Each score runs in its own process (peak RSS is per process), ``--repeats`` times;
``--calls 2`` also times a second ``evaluate`` in the same process (its output memory
is then reused: the first call's figure includes the VM handing out fresh pages). The
large-N route of ``evaluate`` (gsnn_fast/inference/frame_query.py) builds no full
frame: one [N, N] aggregate, a top-k pass, counting passes for the exact BH q-values.

Run: ``python -m benchmarks.large_n_topk [--n 10000] [--scores corr partial]
[--threads 2] [--repeats 1] [--calls 1]``; writes ``benchmarks/results/large_n_topk.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .run import commit, cpu_model

RESULTS = Path(__file__).parent / "results"


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return -1


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from gsnn_fast import MagnitudeEdgeInferer

    from . import cases

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    prob = cases.problem("conv", args.n, None)
    model = cases.models(prob, cases.C_DEF, cases.L_DEF)["gsnn_fast"]
    loader = [cases.batch(prob, args.batch, seed=s) for s in range(args.batches)]
    t_setup = time.perf_counter() - t0

    track_xx = args.score == "partial"
    inf = MagnitudeEdgeInferer(model, prob.data, track_xx=track_xx)
    t0 = time.perf_counter()
    n = inf.fit(loader, verbose=False)
    t_fit = time.perf_counter() - t0
    rss_fit = peak_rss_bytes()
    t_calls = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        res = inf.evaluate(score=args.score, top_k=args.top_k)
        t_calls.append(round(time.perf_counter() - t0, 2))
    stats_bytes = sum(
        t.numel() * t.element_size()
        for t in (inf.sum_x, inf.sum_y, inf.sum_x2, inf.sum_y2, inf.sum_xy, inf.sum_xx)
        if t is not None
    )
    return {
        "score": args.score,
        "layer_agg": "mean",
        "track_xx": track_xx,
        "N": prob.N,
        "E": prob.E,
        "C": cases.C_DEF,
        "L": cases.L_DEF,
        "samples": n,
        "top_k": args.top_k,
        "rows": len(res),
        "statistics_bytes": stats_bytes,
        "setup_s": round(t_setup, 2),
        "fit_s": round(t_fit, 2),
        "evaluate_s": t_calls[0],
        "evaluate_s_calls": t_calls,
        "peak_rss_after_fit_bytes": rss_fit,
        "peak_rss_bytes": peak_rss_bytes(),
        "threads": args.threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scores", nargs="+", default=["corr", "partial"])
    ap.add_argument("--repeats", type=int, default=1, help="processes per score")
    ap.add_argument("--calls", type=int, default=1, help="evaluate calls per process")
    ap.add_argument("--score", help=argparse.SUPPRESS)  # one score, in a child process
    ap.add_argument("--out", type=Path, default=RESULTS / "large_n_topk.json")
    args = ap.parse_args()
    if args.score:
        print(json.dumps(run_one(args)))
        return
    runs = []
    if args.repeats < 1 or args.calls < 1:
        ap.error("--repeats and --calls must be >= 1")
    for score in [s for _ in range(args.repeats) for s in args.scores]:
        load, mem = os.getloadavg()[0], _mem_available()
        cmd = [sys.executable, "-m", "benchmarks.large_n_topk", "--score", score]
        cmd += ["--n", str(args.n), "--batches", str(args.batches), "--batch", str(args.batch)]
        cmd += ["--top-k", str(args.top_k), "--threads", str(args.threads)]
        cmd += ["--calls", str(args.calls)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["load_average_before"] = round(load, 2)
        rec["mem_available_before_bytes"] = mem
        print(json.dumps(rec, indent=1), flush=True)
        runs.append(rec)
    doc = {
        "operation": "evaluate(score, top_k) at large N, without the full frame",
        "command": "python -m benchmarks.large_n_topk " + " ".join(sys.argv[1:]),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, shared with other jobs "
        "(see load_average_before)",
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
