"""Graph families of the edge-recovery benchmark.

Each builder returns a :class:`Task`: the true DAG, its node roles, the function ->
function edges held out from the model (split into validation and test edges), and
the simulation settings (noise, signs, special functions). Everything is a pure
function of the family's parameters and the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from gsnn_fast.data import (
    build_convergence_graph,
    default_held_out_edges,
    scale_free_graph,
    split_held_out,
)

__all__ = ["FAMILIES", "Family", "Task", "build_task", "silent_test_edges"]

Edge = tuple[str, str]


@dataclass
class Task:
    G: nx.DiGraph
    inputs: list[str]
    functions: list[str]
    outputs: list[str]
    true_ff: list[Edge]
    val: list[Edge]
    test: list[Edge]
    noise: float
    signed_edges: dict[Edge, float] | None = None
    special: dict[str, Callable] | None = None

    @property
    def held_out(self) -> list[Edge]:
        return self.val + self.test


@dataclass(frozen=True)
class Family:
    """One row of the benchmark table."""

    name: str
    graph: str  # 'converging' | 'scale_free' | 'layered'
    n_function: int
    held_out: float = 0.25
    noise: float = 0.15
    signed: bool = False
    nonlinear: bool = False
    skip: float = 0.3  # layered: chance of a skip edge per node
    epochs: int = 30
    n_train: int = 2000
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _ff_edges(G: nx.DiGraph, functions: list[str]) -> list[Edge]:
    fs = set(functions)
    return [(u, v) for u, v in G.edges if u in fs and v in fs]


def layered_graph(
    n_function: int, rng: np.random.Generator, n_layers: int = 6, skip: float = 0.3
) -> tuple[nx.DiGraph, list[str], list[str], list[str]]:
    """Function nodes in ``n_layers`` layers; each node of layer k >= 1 takes one or two
    parents in layer k - 1 and, with chance ``skip``, one more from layer k - 2 or k - 3.
    Every first-layer node has its own input; every node without a child and every
    third other node of layers >= 1 has an output."""
    sizes = np.full(n_layers, n_function // n_layers)
    sizes[: n_function % n_layers] += 1
    layers, k0 = [], 0
    for s in sizes:
        layers.append([f"f{k0 + i}" for i in range(s)])
        k0 += s
    functions = [f for layer in layers for f in layer]
    G = nx.DiGraph()
    G.add_nodes_from(functions)
    for k in range(1, n_layers):
        for v in layers[k]:
            prev = layers[k - 1]
            for u in rng.choice(prev, size=min(int(rng.integers(1, 3)), len(prev)), replace=False):
                G.add_edge(str(u), v)
            if k >= 2 and rng.random() < skip:
                back = int(rng.integers(2, min(k, 3) + 1))
                G.add_edge(str(rng.choice(layers[k - back])), v)
    inputs = [f"in{i}" for i in range(len(layers[0]))]
    G.add_edges_from(zip(inputs, layers[0]))
    outs: list[str] = []
    for k in range(1, n_layers):
        for i, v in enumerate(layers[k]):
            if G.out_degree(v) == 0 or i % 3 == 0:
                o = f"o{len(outs)}"
                outs.append(o)
                G.add_edge(v, o)
    return G, inputs, functions, outs


def _special_functions(functions: list[str], G: nx.DiGraph, rng: np.random.Generator) -> dict:
    """Half of the nodes with parents get a nonlinear function of the sum of their
    parents: tanh, a rectifier or a saturating square root (all monotone, so that the
    dependence is not purely even)."""
    kinds: list[Callable[[np.ndarray], np.ndarray]] = [
        lambda s: 2.0 * np.tanh(s),
        lambda s: np.maximum(s, 0.0) * 1.5,
        lambda s: np.sign(s) * np.sqrt(np.abs(s)),
    ]
    out = {}
    for f in functions:
        if G.in_degree(f) > 0 and rng.random() < 0.5:
            g = kinds[int(rng.integers(len(kinds)))]
            out[f] = lambda ps, g=g: g(np.sum(ps, axis=0))
    return out


def build_task(fam: Family, seed: int) -> Task:
    rng = np.random.default_rng(10_000 + seed)
    if fam.graph == "converging":
        width = (fam.n_function + 1) // 2
        G, _, inputs, functions, outputs, true_ff = build_convergence_graph(width)
        held = default_held_out_edges(width, b2sink_stride=2)
        val, test = split_held_out(held, functions[-1], seed=0)
        return Task(G, inputs, functions, outputs, list(true_ff), val, test, fam.noise)
    if fam.graph == "scale_free":
        n = fam.n_function
        G, inputs, functions, outputs = scale_free_graph(
            n, n_input=max(2, n // 6), n_output=max(2, n // 4), max_in_degree=10, seed=seed
        )
    elif fam.graph == "layered":
        G, inputs, functions, outputs = layered_graph(fam.n_function, rng, skip=fam.skip)
    else:
        raise ValueError(f"unknown graph kind {fam.graph!r}")
    true_ff = _ff_edges(G, functions)
    n_held = max(4, int(round(fam.held_out * len(true_ff))))
    pick = rng.permutation(len(true_ff))[:n_held]
    held = [true_ff[i] for i in pick]
    half = len(held) // 2
    val, test = held[:half], held[half:]
    signed = None
    if fam.signed:
        signed = {e: float(rng.choice([-1.0, 1.0])) for e in true_ff}
    special = _special_functions(functions, G, rng) if fam.nonlinear else None
    return Task(G, inputs, functions, outputs, true_ff, val, test, fam.noise, signed, special)


#: The benchmark's families (full run). ``--quick`` keeps a subset with fewer seeds.
FAMILIES: list[Family] = [
    Family("converging_50", "converging", 50, note="the seed notebook's graph and split"),
    Family("scale_free_60", "scale_free", 60),
    Family("layered_skip_60", "layered", 60),
    Family("layered_signed_60", "layered", 60, signed=True),
    Family("layered_nonlinear_60", "layered", 60, nonlinear=True),
    Family("layered_noise0.5_60", "layered", 60, noise=0.5),
    Family("layered_heldout0.5_60", "layered", 60, held_out=0.5),
    Family("scale_free_signed_60", "scale_free", 60, signed=True),
    Family("layered_signed_200", "layered", 200, signed=True, epochs=10, n_train=1500),
    Family("scale_free_500", "scale_free", 500, epochs=8, n_train=1000),
]


def silent_test_edges(task: Task) -> int:
    """Test edges the trained model cannot carry any signal for: in the graph the model
    sees, the source has no path from an input (its activations are constant) or the
    target has no path to an output (its gradients are zero). Every method here scores
    such a pair from nothing (NaN, ranked last)."""
    Gp = task.G.copy()
    Gp.remove_edges_from(task.held_out)
    fed = set().union(*(nx.descendants(Gp, i) for i in task.inputs))
    seen = set().union(*(nx.ancestors(Gp, o) for o in task.outputs))
    return sum(1 for u, v in task.test if u not in fed or v not in seen)
