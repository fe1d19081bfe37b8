"""Quick timing of gsnn_fast::pair_stats_update against torch.matmul in float64.

Usage: python -m benchmarks.bench_pair_stats_quick [--n 2000] [--b 64] [--l 6] [--reps 5]

Both sides compute the same products per pair p: x_p^T y_{p+1} and x_p^T x_p
((N x B)(B x N), float64), measured in one process, interleaved. Printed:
  matmul      torch.matmul into fresh outputs (what "the same products" costs);
  matmul+acc  the same products accumulated copy-free into persistent [P, N, N]
              sums with Tensor.addmm_ (what a pure-torch streaming update costs);
  gsnn_fast   pair_stats_update (all six sums, sum_xx tracked);
and the ratios gsnn_fast / matmul and gsnn_fast / matmul+acc (median of reps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gsnn_fast._ops import pair_stats_update


def _time(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--b", type=int, default=64)
    ap.add_argument("--l", type=int, default=6)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-xx", action="store_true", help="do not track sum_xx")
    args = ap.parse_args(argv)
    N, B, L, P = args.n, args.b, args.l, args.l - 1
    g = torch.Generator().manual_seed(0)
    x = torch.rand(L, B, N, generator=g, dtype=torch.float64)
    y = torch.rand(L, B, N, generator=g, dtype=torch.float64)
    xt = x.transpose(1, 2)  # (L, N, B) views, as a pure-torch update would use
    sums = [torch.zeros(P, N, dtype=torch.float64) for _ in range(4)]
    sxy = torch.zeros(P, N, N, dtype=torch.float64)
    sxx = None if args.no_xx else torch.zeros(P, N, N, dtype=torch.float64)
    txy = torch.zeros(P, N, N, dtype=torch.float64)
    txx = torch.zeros(P, N, N, dtype=torch.float64)

    def matmul():
        for p in range(P):
            torch.matmul(xt[p], y[p + 1])
            if sxx is not None:
                torch.matmul(xt[p], x[p])

    def matmul_acc():
        for p in range(P):
            txy[p].addmm_(xt[p], y[p + 1])
            if sxx is not None:
                txx[p].addmm_(xt[p], x[p])

    def ours():
        pair_stats_update(x, y, *sums, sxy, sxx)

    for fn in (matmul, matmul_acc, ours):  # warm-up (page faults, thread pool)
        fn()
    res: dict[str, list[float]] = {"matmul": [], "matmul+acc": [], "gsnn_fast": []}
    for _ in range(args.reps):  # interleaved, so machine noise hits all three alike
        res["matmul"] += _time(matmul, 1)
        res["matmul+acc"] += _time(matmul_acc, 1)
        res["gsnn_fast"] += _time(ours, 1)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"N={N} B={B} L={L} track_xx={sxx is not None} threads={torch.get_num_threads()} "
        f"reps={args.reps}"
    )
    for k, v in med.items():
        print(f"  {k:<11s} median {v * 1e3:8.1f} ms   (min {min(res[k]) * 1e3:8.1f} ms)")
    print(f"  ratio gsnn_fast / matmul     = {med['gsnn_fast'] / med['matmul']:.2f}")
    print(f"  ratio gsnn_fast / matmul+acc = {med['gsnn_fast'] / med['matmul+acc']:.2f}")


if __name__ == "__main__":
    main()
