"""Problem builders and the size grid of the benchmark suite.

A *case* is one (operation, implementation, device, graph family, N, C, L, B) point.
``grid(op)`` lists the cases of an operation for the active profile (environment
variable ``GSNN_BENCH_PROFILE``: ``full`` -- the default, what ``make bench`` runs -- or
``quick``, small sizes for development). Baseline cases that would blow the run's time
budget are left out of the grid here (and say so in ``README.md``), never silently
skipped at run time.

Graph families:

- ``conv``: the seed notebook's converging-tier DAG with ``N / 2`` tier-A nodes, its
  default held-out function->function edges removed (``G_partial``), validation / test
  split as in the notebook. Its sink has ~N/4 kept parents (a wide conditioning set).
- ``scalefree``: ``gsnn_fast.data.scale_free_graph(N, max_in_degree=50)`` (hubs with
  in-degree up to ~50); 10 % of its function->function edges held out (seeded), split
  in halves for validation / test.

Model: the notebook's kwargs (channels C = 8, layers L = 6, share_layers False, norm
'none', dropout 0.2, ELU, no node MLP). Every implementation gets the same parameters
(gsnn_fast's state_dict loaded into the baseline models).
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tests.dense_reference import SEED_KW

IMPLS = ("gsnn_fast", "reference_style", "vectorised")
C_DEF, L_DEF, B_DEF = 8, 6, 64
N_GRID = (50, 200, 1000, 2000, 5000)
N_BIG = 10_000
FAMILIES = ("conv", "scalefree")

#: the seed notebook's model kwargs without the size (channels / layers vary per case)
MODEL_KW = {k: v for k, v in SEED_KW.items() if k not in ("channels", "layers")}
REG_KW = dict(aggregators=("sum", "max"), lr=1e-3, weight_decay=1e-4, ridge=1e-2, dropout=0.2)


def profile() -> str:
    p = os.environ.get("GSNN_BENCH_PROFILE", "full")
    if p not in ("full", "quick", "gpu"):
        raise ValueError(f"GSNN_BENCH_PROFILE must be 'full', 'quick' or 'gpu', got {p!r}")
    return p


#: The ``gpu`` profile (``make gpu-check``): gsnn_fast and the vectorised baseline on
#: CUDA only, N = 2,000 / 10,000 / 20,000, converging graph; full frames stop at
#: N = 2,000 (4e8 host rows at N = 20,000), the top-k and regressor cases at 10,000.
GPU_SIZES = (2000, 10_000, 20_000)
GPU_MAX = {
    "evaluate_corr": 2000,
    "evaluate_partial": 2000,
    "evaluate_corr_topk": 10_000,
    "evaluate_partial_topk": 10_000,
    "regressor_step": 10_000,
    "regressor_evaluate_against": 10_000,
    "simulate": 2000,
}


# ----------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    op: str
    impl: str
    family: str = "conv"
    N: int = 50
    C: int = C_DEF
    L: int = L_DEF
    B: int = B_DEF
    device: str = "cpu"
    max_in_degree: int = 50
    sweep: str = "N"  # which axis this point belongs to: N, B, L or E
    slow: bool = False  # one round, no warm-up (a baseline that takes seconds)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        s = f"{self.impl}-{self.device}-{self.family}-N{self.N}"
        if self.sweep != "N":
            s += f"-{self.sweep}:C{self.C}L{self.L}B{self.B}d{self.max_in_degree}"
        return s


def _sizes(big: bool = False) -> tuple[int, ...]:
    if profile() == "quick":
        return (50, 200)
    return N_GRID + ((N_BIG,) if big else ())


def _cuda_cases(cases: list[Case]) -> list[Case]:
    """The CUDA twins of the CPU cases when a GPU is present; else one placeholder that
    the test skips with its reason (so the path exists and is reported)."""
    if torch.cuda.is_available():
        return cases + [replace(c, device="cuda", slow=False) for c in cases]
    first = cases[0]
    return cases + [replace(first, impl="gsnn_fast", device="cuda")]


# Largest N at which reference_style is measured per operation (CPU, full profile),
# per family. Beyond these one reference_style call takes tens of seconds to minutes
# (its frames hold one Python dict per row; evaluate_against filters the N^2-row frame
# once per positive).
REF_MAX = {
    "conv": {
        "gsnn_fwd_bwd": N_BIG,
        "inference_batch": 5000,
        "stats_update": 5000,
        "partial_solve": 2000,
        "evaluate_corr": 2000,
        "evaluate_partial": 2000,
        "evaluate_corr_topk": 200,
        "evaluate_partial_topk": 200,
        "regressor_step": 2000,
        "regressor_evaluate_against": 1000,
        "simulate": 2000,
    },
    "scalefree": {
        "gsnn_fwd_bwd": N_BIG,
        "inference_batch": 2000,
        "partial_solve": 2000,
        "evaluate_partial": 1000,
        "evaluate_partial_topk": 200,
        "regressor_step": 1000,
        "regressor_evaluate_against": 200,
    },
}
#: a reference_style call from this N on takes seconds: one round, no warm-up
REF_SLOW_FROM = {
    "evaluate_corr": 1000,
    "evaluate_partial": 1000,
    "regressor_evaluate_against": 1000,
    "simulate": 50,
    "partial_solve": 2000,
}
#: gsnn_fast / vectorised: largest N per operation (time / memory budget of one run;
#: the full frame of evaluate has N^2 rows -- 25 M at N = 5,000)
FAST_MAX = {
    "evaluate_corr": 2000,
    "evaluate_partial": 2000,
    "evaluate_corr_topk": 2000,
    "evaluate_partial_topk": 2000,
    "partial_solve": 5000,
    "inference_batch": 5000,
    "stats_update": 5000,
    "regressor_step": 2000,
    "regressor_evaluate_against": 5000,
}
#: operations that do not depend on the graph beyond N (or barely): one family
ONE_FAMILY = {"stats_update", "evaluate_corr", "evaluate_corr_topk"}


def grid(op: str, impls: tuple[str, ...] = IMPLS, big: bool = False) -> list[Case]:
    """CPU cases of ``op`` over families x N x implementations (+ CUDA twins); in the
    ``gpu`` profile the CUDA cases of gsnn_fast and the vectorised baseline only."""
    if profile() == "gpu":
        return [
            Case(op, impl, "conv", N, device="cuda")
            for N in GPU_SIZES
            if N <= GPU_MAX.get(op, GPU_SIZES[-1])
            for impl in impls
            if impl != "reference_style"
        ]
    out = []
    for fam in FAMILIES[:1] if op in ONE_FAMILY else FAMILIES:
        for N in _sizes(big):
            for impl in impls:
                if impl == "reference_style":
                    if N > REF_MAX[fam].get(op, 0):
                        continue
                    slow = N >= REF_SLOW_FROM.get(op, 10**9)
                else:
                    if N > FAST_MAX.get(op, N_BIG):
                        continue
                    slow = False
                out.append(Case(op, impl, fam, N, slow=slow))
    return _cuda_cases(out)


def sweep(op: str, axis: str, impls: tuple[str, ...] = IMPLS) -> list[Case]:
    """How cost grows with B, L or E (scale-free graph, N = 1000; quick: N = 200; none
    in the gpu profile)."""
    if profile() == "gpu":
        return []
    N = 200 if profile() == "quick" else 1000
    base = Case(op, "gsnn_fast", "scalefree", N, sweep=axis)
    if axis == "B":
        pts = [replace(base, B=b) for b in (16, 256)]
    elif axis == "L":
        pts = [replace(base, L=l) for l in (2, 4, 10)]
    elif axis == "E":
        pts = [replace(base, max_in_degree=d) for d in (3, 10, 200)]
    else:
        raise ValueError(axis)
    return [replace(p, impl=i) for p in pts for i in impls]


# -------------------------------------------------------------------------- problems
@dataclass
class Problem:
    family: str
    N: int  # function nodes
    G: object
    inputs: list
    functions: list
    outputs: list
    data: object  # GraphData of G_partial (held-out edges removed)
    edges_val: list
    edges_test: list
    E: int  # edges of the homogeneous GSNN graph (incl. function self edges)
    E_ff: int  # kept function->function edges


@functools.lru_cache(maxsize=2)
def problem(family: str, N: int, max_in_degree: int = 50) -> Problem:
    from gsnn_fast.data import (
        build_convergence_graph,
        default_held_out_edges,
        nx2pyg,
        scale_free_graph,
        split_held_out,
    )

    if family == "conv":
        width = max(N // 2, 3)
        G, _, inputs, functions, outputs, _ = build_convergence_graph(width)
        held = default_held_out_edges(width, b2sink_stride=2)
        val, test = split_held_out(held, functions[-1], seed=0)
    elif family == "scalefree":
        G, inputs, functions, outputs = scale_free_graph(N, max_in_degree=max_in_degree, seed=0)
        fset = set(functions)
        ff = [(u, v) for u, v in G.edges if u in fset and v in fset]
        rng = np.random.default_rng(0)
        pick = rng.choice(len(ff), size=max(2, len(ff) // 10), replace=False)
        held = [ff[i] for i in sorted(pick)]
        val, test = held[: len(held) // 2], held[len(held) // 2 :]
    else:
        raise ValueError(f"unknown family {family!r}")
    Gp = G.copy()
    Gp.remove_edges_from(held)
    data = nx2pyg(Gp, inputs, functions, outputs)
    n_if = sum(int(data.edge_index_dict[k].shape[1]) for k in data.edge_index_dict)
    E_ff = int(data.edge_index_dict[("function", "to", "function")].shape[1])
    return Problem(
        family, len(functions), G, inputs, functions, outputs, data, val, test,
        n_if + len(functions), E_ff,
    )  # fmt: skip


# ------------------------------------------------------------------- availability
_PIECES = {
    "GSNN": ("gsnn_fast.models", "GSNN"),
    "inferer": ("gsnn_fast.inference.magnitude_edge_inferer", "MagnitudeEdgeInferer"),
    "regressor": ("gsnn_fast.inference.magnitude_edge_regressor", "MagnitudeEdgeRegressor"),
    "pair_stats_update": ("gsnn_fast.ops", "pair_stats_update"),
    "partial_corr": ("gsnn_fast.ops", "partial_corr"),
    "pair_corr": ("gsnn_fast.ops", "pair_corr"),
    "simulate": ("gsnn_fast.data", "simulate"),
    "demo": ("gsnn_fast.demo", "run_demo"),
}


def fast_piece(name: str):
    """The gsnn_fast object ``name`` or raise ImportError with the reason."""
    mod, attr = _PIECES[name]
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as exc:
        msg = f"gsnn_fast piece {name!r} ({mod}.{attr}) is not available: {exc}"
        raise ImportError(msg) from exc


def baseline(impl: str):
    from .baselines import reference_style, vectorised

    return {"reference_style": reference_style, "vectorised": vectorised}[impl]


# -------------------------------------------------------------------------- models
_MODEL_CACHE: dict = {}


def models(prob: Problem, C: int, L: int, device: str = "cpu") -> dict:
    """The three implementations' models with identical parameters (cached for the
    last (problem, C, L, device) only, to bound memory)."""
    key = (prob.family, prob.N, id(prob), C, L, device)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    _MODEL_CACHE.clear()
    from .baselines import reference_style, vectorised

    d = prob.data
    torch.manual_seed(0)
    out = {}
    try:
        out["gsnn_fast"] = fast_piece("GSNN")(
            d.edge_index_dict, d.node_names_dict, channels=C, layers=L, **MODEL_KW
        )
    except ImportError:
        pass
    ref = reference_style.GSNN(
        d.edge_index_dict, d.node_names_dict, channels=C, layers=L, **MODEL_KW
    )
    src = out["gsnn_fast"].state_dict() if "gsnn_fast" in out else ref.state_dict()
    ref.load_state_dict({k: src[k] for k in ref.state_dict()})
    vec = vectorised.GSNN(d.edge_index_dict, d.node_names_dict, channels=C, layers=L, **MODEL_KW)
    vec.load_state_dict({k: src[k] for k in vec.state_dict()})
    out["reference_style"], out["vectorised"] = ref, vec
    for m in out.values():
        m.to(device).train()
    _MODEL_CACHE[key] = out
    return out


def batch(prob: Problem, B: int, device: str = "cpu", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, len(prob.inputs), generator=g)
    y = torch.randn(B, len(prob.outputs), generator=g)
    return x.to(device), y.to(device)


def clear() -> None:
    _MODEL_CACHE.clear()
    problem.cache_clear()


def require(piece: str):
    """The gsnn_fast object ``piece``, or skip the calling test with the reason."""
    import pytest

    try:
        return fast_piece(piece)
    except ImportError as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------------ synthetic inputs
def synthetic_stats(N: int, P: int, n: int = 2048, rank: int = 64, seed: int = 0) -> dict:
    """Streaming sums with the structure of real ones, built without a data pass.

    Covariances are low-rank plus diagonal (``F F^T + D``, so every conditioning block
    is positive definite) and means are positive, as for magnitudes. Returns float64
    CPU tensors ``n, sum_x, sum_y, sum_x2, sum_y2 [P, N], sum_xy, sum_xx [P, N, N]``.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    out = {k: torch.empty(P, N, dtype=f64) for k in ("sum_x", "sum_y", "sum_x2", "sum_y2")}
    out["sum_xy"] = torch.empty(P, N, N, dtype=f64)
    out["sum_xx"] = torch.empty(P, N, N, dtype=f64)
    for p in range(P):
        mx = torch.rand(N, generator=g, dtype=f64) + 0.5
        my = torch.rand(N, generator=g, dtype=f64) + 0.5
        Fx = torch.randn(N, rank, generator=g, dtype=f64) / rank**0.5
        Fy = torch.randn(N, rank, generator=g, dtype=f64) / rank**0.5
        dx = torch.rand(N, generator=g, dtype=f64) * 0.5 + 0.1
        dy = torch.rand(N, generator=g, dtype=f64) * 0.5 + 0.1
        cxx = Fx @ Fx.T
        cxx.diagonal().add_(dx)
        vy = (Fy * Fy).sum(1) + dy
        out["sum_x"][p] = n * mx
        out["sum_y"][p] = n * my
        out["sum_x2"][p] = n * (cxx.diagonal() + mx * mx)
        out["sum_y2"][p] = n * (vy + my * my)
        out["sum_xx"][p] = n * (cxx + torch.outer(mx, mx))
        out["sum_xy"][p] = n * (0.5 * Fx @ Fy.T + torch.outer(mx, my))
        del cxx
    out["n"] = n
    return out


def load_stats(inferer, stats: dict, impl: str, device: str = "cpu") -> None:
    """Put ``stats`` into an inferer of ``impl`` (numpy for reference_style)."""
    inferer.n = int(stats["n"])
    for k, v in stats.items():
        if k == "n":
            continue
        if impl == "reference_style":
            setattr(inferer, k, v.numpy().copy())
        else:
            setattr(inferer, k, v.to(device))
