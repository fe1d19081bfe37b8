"""Small CUDA runs of every gsnn_fast kernel, for compute-sanitizer (memcheck and
racecheck) in ``make gpu-check``: ragged sizes, an empty segment, and a conditioning
set of 129 members, whose factor needs more than the 48 KiB shared-memory default (the
opt-in path). Exits non-zero when an op fails; the sanitizer reports its own
findings."""

from __future__ import annotations

import numpy as np
import torch

import gsnn_fast
from gsnn_fast import ops
from gsnn_fast.sparse import SparsePlan, sparse_linear


def sets(N: int, big: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    parents = []
    for j in range(N):
        k = big if j == N - 1 else (0 if j % 5 == 0 else 1 + j % 4)
        cand = [i for i in range(N) if i != j]
        parents.append(sorted(rng.choice(cand, size=min(k, len(cand)), replace=False).tolist()))
    ptr = torch.tensor(np.concatenate([[0], np.cumsum([len(p) for p in parents])]))
    idx = torch.tensor([i for p in parents for i in p], dtype=torch.int64)
    return ptr, idx


def main() -> None:
    assert gsnn_fast.build_info()["cuda"], "a CUDA build is needed"
    dev = "cuda"
    g = torch.Generator().manual_seed(0)
    L, B, N, ch = 4, 37, 130, 3
    # segment magnitudes, every mode, both dtypes, an empty segment
    ptr_seg = torch.arange(0, N * ch + 1, ch)
    ptr_seg[5:] -= ch  # node 4 has no channels
    for dt in (torch.float32, torch.float64):
        x = torch.randn(L, B, N * ch, generator=g, dtype=dt).to(dev)
        ops.segment_magnitude(x, ptr_seg.to(dev), ["l1", "l2", "max", "mean"])
    # streaming statistics, with and without sum_xx
    xm = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(dev)
    ym = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(dev)
    P = L - 1
    sums = [torch.zeros(P, N, dtype=torch.float64, device=dev) for _ in range(4)]
    sxy = torch.zeros(P, N, N, dtype=torch.float64, device=dev)
    sxx = torch.zeros(P, N, N, dtype=torch.float64, device=dev)
    ops.pair_stats_update(xm, ym, *sums, sxy, None)
    ops.pair_stats_update(xm, ym, *sums, sxy, sxx)
    n = float(B)
    for agg in ("mean", "max"):
        ops.pair_corr(*sums[:4], sxy, n, 1e-12, "relative", agg, True)
    # partial correlations: sets up to 150 members (shared memory over 48 KiB)
    ptr, idx = sets(N, N - 1, 1)  # target N - 1 conditions on every other node
    ptr, idx = ptr.to(dev), idx.to(dev)
    for agg in ("mean", "max"):
        for per_pair in (True, False):
            ops.pair_partial_corr(*sums, sxy, sxx, ptr, idx, n, 1e-8, 1e-12, agg, per_pair)
    corr = torch.rand(P, N, N, dtype=torch.float64, device=dev)
    var = torch.rand(P, N, dtype=torch.float64, device=dev) + 1.0
    cov_xx = sxx / n
    ops.partial_corr(corr, sxy / n, cov_xx, var, var, ptr, idx, 1e-8, 1e-12)
    # sparse linear forward and backward, both dtypes
    n_in, n_out, nnz = 70, 45, 400
    rows = torch.randint(0, n_in, (nnz,), generator=g)
    cols = torch.randint(0, n_out, (nnz,), generator=g)
    plan = SparsePlan.from_indices(torch.stack([rows, cols]), (n_in, n_out)).to(dev)
    for dt in (torch.float32, torch.float64):
        x = torch.randn(33, n_in, generator=g, dtype=dt).to(dev).requires_grad_()
        v = torch.randn(nnz, generator=g, dtype=dt).to(dev).requires_grad_()
        b = torch.randn(n_out, generator=g, dtype=dt).to(dev).requires_grad_()
        sparse_linear(x, v, b, plan).sum().backward()
    torch.cuda.synchronize()
    print("gpu_sanitize: every op ran")


if __name__ == "__main__":
    main()
