"""MagnitudeEdgeInferer: one inference batch, the statistics update alone, the partial
solve alone, and ``evaluate`` (corr / partial, full frame / top-k)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from . import cases
from .conftest import floor_info, inferer_class, problem_and_model, skip_if_no_device

TOP_K = 10


# ------------------------------------------------------------------ inference batch
INFER_CASES = (
    cases.grid("inference_batch") + cases.sweep("inference_batch", "B")
    + cases.sweep("inference_batch", "L")
)  # fmt: skip


@pytest.mark.parametrize("case", INFER_CASES, ids=str)
def test_inference_batch(bench, case):
    """``fit`` on a one-batch loader: capture (forward + gradients w.r.t. the captured
    activations), magnitudes, statistics (fresh sums, as every ``fit`` starts with)."""
    prob, model = problem_and_model(case)
    Inferer = inferer_class(case)
    x, y = cases.batch(prob, case.B, case.device)
    inf = Inferer(model, prob.data)
    loader = [(x, y)]
    if case.impl == "gsnn_fast":

        def fn():
            inf.fit(loader, device=case.device, verbose=False)
    else:

        def fn():
            inf.fit(loader, device=case.device)

    bench(case, fn, N=prob.N, E=prob.E, E_ff=prob.E_ff)


# ------------------------------------------------------------------ stats update
STATS_IMPLS = cases.IMPLS + ("torch_matmul_f64",)
STATS_CASES = (
    cases.grid("stats_update", impls=STATS_IMPLS)
    + cases.sweep("stats_update", "B", impls=STATS_IMPLS)
    + cases.sweep("stats_update", "L", impls=STATS_IMPLS)
)


def stats_floor(L: int, B: int, N: int) -> tuple[float, float]:
    """(bytes, flops) of one statistics update: read the (L, B, N) float64 magnitudes
    twice-over (x and y), read + write sum_xy and sum_xx (P N^2 each) and the four
    [P, N] sums; 2 P B N^2 flops for each of the two products, 4 P B N for the sums."""
    P = L - 1
    nbytes = 2 * L * B * N * 8 + 2 * 2 * P * N * N * 8 + 4 * 2 * P * N * 8
    flops = 2 * (2 * P * B * N * N) + 4 * 2 * P * B * N
    return float(nbytes), float(flops)


@pytest.mark.parametrize("case", STATS_CASES, ids=str)
def test_stats_update(bench, case):
    """Add one batch of (L, B, N) magnitudes to the P = L - 1 pairs' streaming sums.

    gsnn_fast: ``ops.pair_stats_update``; reference_style: the library's numpy loop
    over pairs (float32 magnitudes, float32 GEMMs added into float64 sums);
    vectorised: float64 ``baddbmm_`` over all pairs; torch_matmul_f64: only the two
    float64 ``torch.matmul`` products per pair (x^T y and x^T x) into preallocated
    outputs, no accumulation.
    """
    skip_if_no_device(case)
    prob = cases.problem(case.family, case.N, case.max_in_degree)
    N, L, B, P = prob.N, case.L, case.B, case.L - 1
    g = torch.Generator().manual_seed(0)
    xm = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(case.device)
    ym = torch.rand(L, B, N, generator=g, dtype=torch.float64).to(case.device)
    dev = case.device
    if case.impl == "gsnn_fast":
        op = cases.require("pair_stats_update")
        sums = [torch.zeros(P, N, dtype=torch.float64, device=dev) for _ in range(4)]
        sxy = torch.zeros(P, N, N, dtype=torch.float64, device=dev)
        sxx = torch.zeros(P, N, N, dtype=torch.float64, device=dev)

        def fn():
            op(xm, ym, *sums, sxy, sxx)
    elif case.impl == "torch_matmul_f64":
        xt, y1, x0 = xm[:-1].transpose(1, 2), ym[1:], xm[:-1]
        # preallocated outputs: the products alone, no allocation / page faults
        oxy = torch.empty(P, N, N, dtype=torch.float64, device=dev)
        oxx = torch.empty(P, N, N, dtype=torch.float64, device=dev)

        def fn():
            torch.matmul(xt, y1, out=oxy)
            torch.matmul(xt, x0, out=oxx)
    else:
        mod = cases.baseline(case.impl)
        model = cases.models(prob, case.C, L, dev)[case.impl]
        inf = mod.MagnitudeEdgeInferer(model, prob.data)
        if case.impl == "reference_style":
            if dev != "cpu":
                pytest.skip("reference_style keeps its statistics on the host")
            xf, yf = xm.float(), ym.float()  # the library's magnitudes are float32

            def fn():
                inf._update_stats(xf, yf)
        else:
            inf.reset_stats(dev)

            def fn():
                inf.update_stats(xm, ym)

    nbytes, flops = stats_floor(L, B, N)
    bench(case, fn, N=N, E=prob.E, E_ff=prob.E_ff, **floor_info(dev, nbytes, flops))


# ------------------------------------------------------------------ partial solve
PARTIAL_CASES = cases.grid("partial_solve") + cases.sweep("partial_solve", "E")


def _moments(stats: dict, device: str):
    n = float(stats["n"])
    mx, my = stats["sum_x"] / n, stats["sum_y"] / n
    vx = (stats["sum_x2"] / n - mx * mx).clamp_min(0)
    vy = (stats["sum_y2"] / n - my * my).clamp_min(0)
    vx = vx.masked_fill(vx <= 1e-12 * mx * mx, float("nan"))
    vy = vy.masked_fill(vy <= 1e-12 * my * my, float("nan"))
    cxy = stats["sum_xy"] / n - mx[:, :, None] * my[:, None, :]
    cxx = stats["sum_xx"] / n - mx[:, :, None] * mx[:, None, :]
    corr = (cxy / torch.sqrt(vx[:, :, None] * vy[:, None, :])).clamp(-1, 1)
    return [t.to(device) for t in (corr, cxy, cxx, vx, vy)]


def partial_floor(P: int, N: int, sizes: np.ndarray) -> tuple[float, float]:
    """(bytes, flops): read corr, cov_xy, cov_xx and write the result ([P, N, N] each);
    per (pair, target) with s parents: Cholesky s^3/3, one forward substitution for the
    N + 1 right-hand sides s^2 (N + 1), residual variances / numerators 4 s N."""
    s = sizes[sizes > 0].astype(np.float64)
    flops = P * float(np.sum(s**3 / 3 + s * s * (N + 1) + 4 * s * N))
    return float(4 * P * N * N * 8), flops


@pytest.mark.parametrize("case", PARTIAL_CASES, ids=str)
def test_partial_solve(bench, case):
    """All (pair, target) ridge partial correlations from precomputed moments: the
    batched solve of score='partial' without the frame. gsnn_fast: ``ops.partial_corr``
    on all pairs; vectorised: targets batched by conditioning-set size, batched
    Cholesky; reference_style: one Cholesky + solves per (pair, target)."""
    skip_if_no_device(case)
    prob = cases.problem(case.family, case.N, case.max_in_degree)
    N, P = prob.N, case.L - 1
    stats = cases.synthetic_stats(N, P)
    corr, cxy, cxx, vx, vy = _moments(stats, case.device)
    del stats
    ff = prob.data.edge_index_dict[("function", "to", "function")].numpy()
    par = np.zeros((N, N), dtype=bool)
    par[ff[0], ff[1]] = True
    np.fill_diagonal(par, False)
    sizes = par.sum(0)
    ridge = 1e-8
    if case.impl == "gsnn_fast":
        op = cases.require("partial_corr")
        ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)])).to(case.device)
        idx = torch.from_numpy(np.nonzero(par.T)[1].astype(np.int64)).to(case.device)

        def fn():
            op(corr, cxy, cxx, vx, vy, ptr, idx, ridge, 1e-12)
    elif case.impl == "vectorised":
        mod = cases.baseline("vectorised")
        groups = []
        for s in np.unique(sizes[sizes > 0]):
            t = np.flatnonzero(sizes == s)
            groups.append((torch.from_numpy(t), torch.from_numpy(np.nonzero(par[:, t].T)[1])))
            groups[-1] = (groups[-1][0], groups[-1][1].reshape(t.size, int(s)))

        def fn():
            mod.partial_from_moments(corr, cxy, cxx, vx, vy, groups, ridge)
    else:
        if case.device != "cpu":
            pytest.skip("reference_style solves on the host")
        mod = cases.baseline("reference_style")
        parents = [np.flatnonzero(par[:, j]) for j in range(N)]
        arrs = [t.numpy() for t in (corr, cxy, cxx, vx, vy)]

        def fn():
            for p in range(P):
                mod.partial_from_moments(*(a[p] for a in arrs), parents, ridge)

    nbytes, flops = partial_floor(P, N, sizes)
    bench(
        case, fn, N=N, E=prob.E, E_ff=prob.E_ff, max_cond=int(sizes.max()),
        **floor_info(case.device, nbytes, flops),
    )  # fmt: skip


# ------------------------------------------------------------------ evaluate
EVAL_OPS = {
    "evaluate_corr": ("corr", None),
    "evaluate_partial": ("partial", None),
    "evaluate_corr_topk": ("corr", TOP_K),
    "evaluate_partial_topk": ("partial", TOP_K),
}
EVAL_CASES = [c for op in EVAL_OPS for c in cases.grid(op)] + [
    replace(c, op="evaluate_partial")
    for c in cases.sweep("evaluate_partial", "E", impls=("gsnn_fast", "vectorised"))
]  # reference_style's cost there is its N^2-row frame, whatever E: see partial_solve


@pytest.mark.parametrize("case", EVAL_CASES, ids=lambda c: f"{c.op}-{c}")
def test_evaluate(bench, case):
    """``evaluate(layer_agg='max', score=..., top_k=None | 10)`` from accumulated
    statistics (the same synthetic sums for every implementation): scores, p-values,
    q-values and the result frame."""
    score, top_k = EVAL_OPS[case.op]
    prob, model = problem_and_model(case)
    Inferer = inferer_class(case)
    inf = Inferer(model, prob.data)
    stats = cases.synthetic_stats(prob.N, case.L - 1)
    cases.load_stats(inf, stats, case.impl, case.device)
    del stats

    def fn():
        inf.evaluate(layer_agg="max", score=score, top_k=top_k)  # result dropped at once

    bench(case, fn, N=prob.N, E=prob.E, E_ff=prob.E_ff)
