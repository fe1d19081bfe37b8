"""How fast the partial-correlation op solves one wide conditioning set, against the
machine's own dgemm rate.

A target whose conditioning set has ``s`` members costs ``s^2 / 2`` fused multiply-adds
per scored source (the forward substitution of the set's covariance), whatever the
blocking; the hub of the converging-tier graph at N = 10,000 has s = 2,499. This script
times ``gsnn_fast.ops.pair_partial_corr`` on synthetic sums (256 Gaussian samples, one
layer pair) twice -- with target 0 conditioned on nodes 1 .. s, and with no sets at all
-- and reports the difference as the hub's cost, in fused multiply-adds per second
(its factorisation, ``s^3 / 6``, included), next to ``torch.matmul`` of two 4,096 x
4,096 float64 matrices on the same threads (MKL's dgemm: what the machine's FMA units
deliver on dense work).

Run: ``python -m benchmarks.hub_solve [--n 10000] [--s 2499] [--threads 1 2]``;
writes ``benchmarks/results/hub_solve.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from gsnn_fast import ops

from .run import commit, cpu_model

RESULTS = Path(__file__).parent / "results"
SAMPLES = 256


def _sums(n_nodes: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, n_nodes, generator=g, dtype=torch.float64) + 0.3
    y = 0.5 * x + torch.randn(SAMPLES, n_nodes, generator=g, dtype=torch.float64)
    one = [t[None].contiguous() for t in (x.sum(0), y.sum(0), (x * x).sum(0), (y * y).sum(0))]
    return one + [(x.T @ y)[None].contiguous(), (x.T @ x)[None].contiguous()]


def _best(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(n_nodes: int, s: int, threads: int, reps: int = 3) -> dict:
    torch.set_num_threads(threads)
    sums = _sums(n_nodes)
    idx = torch.arange(1, s + 1, dtype=torch.int64)

    def op(set_size: int):
        ptr = torch.zeros(n_nodes + 1, dtype=torch.int64)
        ptr[1:] = set_size
        return lambda: ops.pair_partial_corr(
            *sums, ptr, idx[:set_size], float(SAMPLES), 1e-3, 1e-8, "mean", False
        )

    t_hub = _best(op(s), reps)
    t_none = _best(op(0), reps)
    fma = s * s / 2 * (n_nodes - s - 1) + s**3 / 6
    a = torch.randn(4096, 4096, dtype=torch.float64)
    b = torch.randn(4096, 4096, dtype=torch.float64)
    t_mm = _best(lambda: a @ b, reps)
    hub_rate = fma / (t_hub - t_none)
    mm_rate = 4096**3 / t_mm
    return {
        "N": n_nodes,
        "s": s,
        "threads": threads,
        "op_with_hub_s": round(t_hub, 4),
        "op_without_sets_s": round(t_none, 4),
        "hub_fma": fma,
        "hub_fma_per_s": round(hub_rate / 1e9, 2),
        "dgemm_fma_per_s": round(mm_rate / 1e9, 2),
        "hub_over_dgemm": round(hub_rate / mm_rate, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--s", type=int, default=2499)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(RESULTS / "hub_solve.json"))
    args = ap.parse_args(argv)
    runs = []
    for th in args.threads:
        runs.append(measure(args.n, args.s, th))
        print(json.dumps(runs[-1]), flush=True)
    out = {
        "operation": "pair_partial_corr: one wide conditioning set against dgemm",
        "command": "python -m benchmarks.hub_solve " + " ".join(argv or []),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
