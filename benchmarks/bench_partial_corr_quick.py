"""Quick timing of gsnn_fast::partial_corr on one layer pair (P = 1, as the inferer calls it).

Usage: python -m benchmarks.bench_partial_corr_quick [--n 2000 5000] [--reps 5]
       [--threads T] [--graph scale_free convergence]

Conditioning sets: the function parents of every target in
``gsnn_fast.data.synthetic.scale_free_graph(n, max_in_degree=50)`` (power-law in-degrees,
mean ~2.8, hubs up to 50) and ``scaled_convergence_graph(n)`` (converging tiers), as the
inferer builds them (parents among the function nodes, self excluded). Moments: a random
SPD ``cov_xx`` (Wishart-like, from random samples), ``cov_xy`` and variances from the same
samples, ridge 1e-8, tol 1e-12. Prints the median wall time per pair in ms and a
summary of the set sizes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gsnn_fast._ops import partial_corr
from gsnn_fast.data.synthetic import scale_free_graph, scaled_convergence_graph


def parent_csr(graph: str, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """CSR of the function parents of each function node (strictly increasing, no self)."""
    if graph == "scale_free":
        G, _, functions, _ = scale_free_graph(n, max_in_degree=50)
    else:
        G, _, functions, _ = scaled_convergence_graph(n)
    pos = {f: k for k, f in enumerate(functions)}
    sets = [
        sorted({pos[u] for u in G.predecessors(f) if u in pos and pos[u] != k})
        for k, f in enumerate(functions)
    ]
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    idx = np.array([i for s in sets for i in s], dtype=np.int64)
    return torch.from_numpy(ptr), torch.from_numpy(idx), len(functions)


def moments(N: int, n_samples: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Random moments of one pair, [1, N, N] / [1, N]; cov_xx is SPD plus a diagonal."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n_samples, N, generator=g, dtype=torch.float64)
    Y = torch.randn(n_samples, N, generator=g, dtype=torch.float64) + 0.3 * X
    X, Y = X - X.mean(0), Y - Y.mean(0)
    # n_samples < N would make X^T X singular: add a diagonal so every set is solvable
    cov_xx = X.T @ X / n_samples + torch.diag(torch.rand(N, generator=g, dtype=torch.float64))
    cov_xy = X.T @ Y / n_samples
    var_x = cov_xx.diagonal().clone()
    var_y = (Y * Y).mean(0)
    corr = (cov_xy / torch.sqrt(torch.outer(var_x, var_y))).clamp(-1, 1)
    return [t[None].contiguous() for t in (corr, cov_xy, cov_xx, var_x, var_y)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--graph", nargs="+", default=["scale_free", "convergence"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"threads={torch.get_num_threads()} reps={args.reps}")
    for graph in args.graph:
        for n in args.n:
            ptr, idx, N = parent_csr(graph, n)
            sizes = (ptr[1:] - ptr[:-1]).numpy()
            mom = moments(N)
            partial_corr(*mom, ptr, idx, 1e-8, 1e-12)  # warm-up (page faults, threads)
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                partial_corr(*mom, ptr, idx, 1e-8, 1e-12)
                times.append(time.perf_counter() - t0)
            print(
                f"{graph:12s} N={N:6d} sets: mean {sizes.mean():5.2f} max {sizes.max():3d} "
                f"sum s^2 {int((sizes.astype(np.int64) ** 2).sum()):9d} | "
                f"{1e3 * statistics.median(times):9.2f} ms/pair "
                f"(min {1e3 * min(times):.2f})"
            )


if __name__ == "__main__":
    main()
