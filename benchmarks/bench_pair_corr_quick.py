"""Quick timing of ``MagnitudeEdgeInferer.score_matrices(score='corr')``: the fused
``gsnn_fast::pair_corr`` op against the previous pure-torch formulation.

Usage: python -m benchmarks.bench_pair_corr_quick [--n 2000] [--pairs 5] [--reps 5]
       [--threads T] [--device cpu|cuda]

Statistics: ``benchmarks.cases.synthetic_stats(N, P)`` (low-rank + diagonal covariances,
positive means, n = 2048), loaded into an inferer of a scale-free problem with N function
nodes (``benchmarks.cases.problem('scalefree', N)``; C = 2 channels, L = P + 1 blocks).
Timed, median of ``--reps`` calls after one warm-up, for layer_agg mean / max and
per_pair on / off:

- ``torch``: the previous ``score_matrices`` path (one pair at a time: ~20 passes over
  [N, N] float64 temporaries per pair, then a torch aggregation), kept here verbatim;
- ``inferer``: ``inf.score_matrices('corr', ...)`` (one ``pair_corr`` call);
- ``op``: ``gsnn_fast._ops.pair_corr`` alone;

then ``inf.evaluate(layer_agg, score='corr')`` (scores + p/q-values + the full frame).

The script also checks that ``inferer`` equals the ``torch`` formulation bit for bit when
that takes a correctly rounded sqrt (NaN positions compared, NaN payloads ignored; torch's
own CPU sqrt of a large float64 tensor is not correctly rounded), and prints the largest
difference from the ``torch`` formulation as it stands.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from functools import partial

import numpy as np
import torch

from gsnn_fast._ops import pair_corr

from . import cases


def torch_score_matrices(
    s: dict,
    n: float,
    tol: float,
    rule: str,
    layer_agg: str,
    per_pair: bool,
    cr_sqrt: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The previous pure-torch ``score_matrices(score='corr')`` (one pair at a time).

    ``cr_sqrt``: take numpy's correctly rounded square root (CPU tensors) instead of
    torch's, which for large float64 CPU tensors is not correctly rounded (MKL VML;
    1 ulp off in ~1 % of elements); pair_corr uses IEEE sqrt (CPU/CUDA parity) and
    then equals this formulation bit for bit (up to NaN payloads).
    """
    P, N = s["sum_x"].shape
    dev = s["sum_x"].device
    pairs = torch.empty((P, N, N), dtype=torch.float64, device=dev) if per_pair else None
    acc = cnt = None
    for p in range(P):
        mean_x = s["sum_x"][p] / n
        mean_y = s["sum_y"][p] / n
        var_x = torch.clamp(s["sum_x2"][p] / n - mean_x * mean_x, min=0.0)
        var_y = torch.clamp(s["sum_y2"][p] / n - mean_y * mean_y, min=0.0)
        if rule == "absolute":
            zx, zy = var_x <= tol, var_y <= tol
        else:
            zx, zy = var_x <= tol * (mean_x * mean_x), var_y <= tol * (mean_y * mean_y)
        corr = s["sum_xy"][p] / n
        corr.sub_(torch.outer(mean_x, mean_y))
        prod = torch.outer(var_x, var_y)
        corr.div_(torch.from_numpy(np.sqrt(prod.numpy())) if cr_sqrt else prod.sqrt_())
        corr.masked_fill_(zx[:, None] | zy[None, :], math.nan)
        corr.clamp_(-1.0, 1.0)
        if pairs is not None:
            pairs[p] = corr
        valid = ~torch.isnan(corr)
        if layer_agg == "mean":
            if acc is None:
                acc = torch.zeros_like(corr)
                cnt = torch.zeros((N, N), dtype=torch.int32, device=dev)
            acc.add_(torch.where(valid, corr, torch.zeros((), dtype=corr.dtype, device=dev)))
            cnt.add_(valid.to(torch.int32))
        elif acc is None:
            acc = corr.clone()
        else:
            take = valid & (torch.isnan(acc) | (corr.abs() > acc.abs()))
            acc = torch.where(take, corr, acc)
    if layer_agg == "mean":
        acc = acc / cnt
    return pairs, acc


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    na, nb = torch.isnan(a), torch.isnan(b)
    return bool(torch.equal(na, nb) and torch.equal(a[~na], b[~nb]))


def _time(fn, reps: int, device: str) -> float:
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    fn()  # warm-up (page faults, thread pool)
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
    from gsnn_fast.models import GSNN

    prob = cases.problem("scalefree", args.n)
    d = prob.data
    model = GSNN(
        d.edge_index_dict,
        d.node_names_dict,
        channels=2,
        layers=args.pairs + 1,
        **cases.MODEL_KW,
    )
    inf = MagnitudeEdgeInferer(model, d)
    N, P = inf.N, inf.n_pairs
    stats = cases.synthetic_stats(N, P)
    cases.load_stats(inf, stats, "gsnn_fast", args.device)
    s = {k: v.to(args.device) for k, v in stats.items() if k != "n"}
    n = float(stats["n"])
    del stats
    print(f"N={N} P={P} threads={torch.get_num_threads()} device={args.device} reps={args.reps}")
    rule = 0 if inf.zero_var == "relative" else 1
    sums = [s[k] for k in ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy")]
    for layer_agg in ("mean", "max"):
        for per_pair in (True, False):
            old = partial(torch_score_matrices, s, n, inf.tol, inf.zero_var, layer_agg, per_pair)
            new = partial(inf.score_matrices, "corr", layer_agg=layer_agg, per_pair=per_pair)
            agg = 0 if layer_agg == "mean" else 1
            op = partial(pair_corr, *sums, n, inf.tol, rule, agg, per_pair)
            b = new()
            ok = "n/a"
            if args.device == "cpu":
                a = old(cr_sqrt=True)
                ok = _same(a[1], b.aggregated) and (not per_pair or _same(a[0], b.per_pair))
            a = old()
            diff = (a[1] - b.aggregated).abs().nan_to_num(0.0).max().item()
            del a, b
            t_old, t_inf, t_op = (_time(f, args.reps, args.device) for f in (old, new, op))
            print(
                f"layer_agg={layer_agg:4s} per_pair={per_pair!s:5s} | torch {1e3 * t_old:8.1f} ms"
                f" | inferer {1e3 * t_inf:7.1f} ms | op {1e3 * t_op:7.1f} ms"
                f" | speed-up {t_old / t_inf:5.1f}x | bit-identical (IEEE sqrt): {ok}"
                f" | max |diff| vs torch sqrt: {diff:.1e}"
            )
    for layer_agg in ("mean", "max"):
        t_eval = _time(partial(inf.evaluate, layer_agg, score="corr"), args.reps, args.device)
        print(f"evaluate(layer_agg={layer_agg!r}, score='corr'): {1e3 * t_eval:.1f} ms")


if __name__ == "__main__":
    main()
