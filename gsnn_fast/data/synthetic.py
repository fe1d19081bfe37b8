"""Synthetic graphs: the seed notebook's converging-tier DAG and a scale-free DAG family.

Node names follow the seed notebook: inputs ``in{i}``, function nodes ``f{i}``,
outputs ``o{i}``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from numbers import Integral

import networkx as nx
import numpy as np

__all__ = [
    "build_convergence_graph",
    "default_held_out_edges",
    "scale_free_graph",
    "scaled_convergence_graph",
    "split_held_out",
]

#: Exponent of the discrete power law P(d) ~ d^-a for function in-degrees in
#: :func:`scale_free_graph`.
SCALE_FREE_EXPONENT = 2.0

Edge = tuple[Hashable, Hashable]


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def build_convergence_graph(
    n_tier_a: int = 6,
) -> tuple[nx.DiGraph, dict, list[str], list[str], list[str], list[tuple[str, str]]]:
    """The seed notebook's converging-tier DAG (same nodes, edges, order and layout).

    With ``n = n_tier_a``: inputs ``in0..in{n-1}`` each feed one tier-A node
    ``f0..f{n-1}``; tier-B node ``f{n+k}`` (k < n-1) merges ``f{k}`` and
    ``f{k+1}``; every tier-B node feeds the sink ``f{2n-1}``; output ``o{k}``
    reads tier-B node ``f{n+k}`` and ``o{n-1}`` reads the sink.

    Returns:
        ``(G, pos, input_nodes, function_nodes, output_nodes, func_func_edges_true)``:
        the DiGraph; ``{node: (x, y)}`` plot positions; n input, 2n function and
        n output names; and the 3(n-1) true function->function edges (tier A ->
        B pairs first, then B -> sink). For n = 25: 25 / 50 / 25 nodes, 72 edges.
    """
    n = _check_int(n_tier_a, "n_tier_a", 2)
    G = nx.DiGraph()
    input_nodes = [f"in{i}" for i in range(n)]
    tier_a = [f"f{i}" for i in range(n)]
    tier_b = [f"f{n + k}" for k in range(n - 1)]
    sink = f"f{2 * n - 1}"
    function_nodes = tier_a + tier_b + [sink]
    output_nodes = [f"o{k}" for k in range(n)]

    G.add_edges_from(zip(input_nodes, tier_a))
    ff_edges: list[tuple[str, str]] = []
    for k, b in enumerate(tier_b):
        ff_edges += [(tier_a[k], b), (tier_a[k + 1], b)]
    G.add_edges_from(ff_edges)
    to_sink = [(b, sink) for b in tier_b]
    G.add_edges_from(to_sink)
    ff_edges += to_sink
    G.add_edges_from(zip(tier_b, output_nodes))
    G.add_edge(sink, output_nodes[-1])

    spread = max(n - 1, 1)

    def x_at(slot: float, slots: int) -> float:
        return slot * 2 * spread / max(slots, 1) - spread

    pos: dict[str, tuple[float, float]] = {}
    pos.update({u: (x_at(i, n - 1), 4.0) for i, u in enumerate(input_nodes)})
    pos.update({f: (x_at(i, n - 1), 3.0) for i, f in enumerate(tier_a)})
    pos.update({f: (x_at(k + 0.5, n - 2), 2.0) for k, f in enumerate(tier_b)})
    pos[sink] = (0.0, 1.0)
    pos.update({o: (x_at(k, n - 1), 0.0) for k, o in enumerate(output_nodes)})
    return G, pos, input_nodes, function_nodes, output_nodes, ff_edges


def default_held_out_edges(n_tier_a: int, b2sink_stride: int = 2) -> list[tuple[str, str]]:
    """The notebook's held-out function->function edges of the convergence graph.

    The "left-merge" edges ``f{k} -> f{n+k}`` for k = 1..n-2, then the tier-B ->
    sink edges ``f{n+k} -> f{2n-1}`` for k = 0, stride, 2*stride, ... < n-1.
    For n = 25 and stride 2: 23 + 12 = 35 edges.
    """
    n = _check_int(n_tier_a, "n_tier_a", 2)
    stride = _check_int(b2sink_stride, "b2sink_stride", 1)
    sink = f"f{2 * n - 1}"
    held = [(f"f{k}", f"f{n + k}") for k in range(1, n - 1)]
    held += [(f"f{n + k}", sink) for k in range(0, n - 1, stride)]
    return held


def split_held_out(
    held_out_edges: Sequence[Edge], sink: Hashable, seed: int = 0
) -> tuple[list[Edge], list[Edge]]:
    """The notebook's stratified validation / test split of held-out edges.

    Edges into ``sink`` ("b2sink") and all others ("left-merge") are shuffled
    separately with one ``np.random.default_rng(seed)`` (left-merge first), each
    stratum is cut in half (the first ``len // 2`` go to validation), and

    ``val = val_left_merge + val_b2sink``, ``test = test_left_merge + test_b2sink``.

    The input is not modified. With the notebook's 35 edges and seed 0: 17 / 18.

    Returns:
        ``(edges_val, edges_test)`` as lists of ``(src, dst)`` tuples.
    """
    left_merge = [tuple(e) for e in held_out_edges if e[1] != sink]
    b2sink = [tuple(e) for e in held_out_edges if e[1] == sink]
    rng = np.random.default_rng(seed)
    rng.shuffle(left_merge)
    rng.shuffle(b2sink)
    h_lm, h_sink = len(left_merge) // 2, len(b2sink) // 2
    edges_val = left_merge[:h_lm] + b2sink[:h_sink]
    edges_test = left_merge[h_lm:] + b2sink[h_sink:]
    return edges_val, edges_test


def scaled_convergence_graph(
    n_function: int,
) -> tuple[nx.DiGraph, list[str], list[str], list[str]]:
    """A converging-tier graph with about ``n_function`` function nodes.

    Uses ``n_tier_a = (n_function + 1) // 2`` (so ``2 * n_tier_a`` function nodes,
    i.e. ``n_function`` rounded up to even, at least 4), with no edge held out.

    Returns:
        ``(G, input_nodes, function_nodes, output_nodes)``.
    """
    n = _check_int(n_function, "n_function", 1)
    G, _, inputs, functions, outputs, _ = build_convergence_graph(max((n + 1) // 2, 2))
    return G, inputs, functions, outputs


def _distinct_parents(
    rng: np.random.Generator, degree: np.ndarray, max_rounds: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """For each node j, ``degree[j]`` distinct parents drawn uniformly from ``[0, j)``.

    Requires ``degree[j] <= j``. Returns (src, dst) int64 arrays sorted by (dst, src).
    """
    n = degree.size
    nodes = np.arange(n, dtype=np.int64)
    # Nodes that need more than half of their candidates: exact draw per node (there are
    # few: j < 2 * degree[j] <= 2 * max_in_degree).
    dense = np.flatnonzero((degree > 0) & (2 * degree > nodes))
    parts = [
        int(j) * n + rng.choice(int(j), size=int(degree[j]), replace=False).astype(np.int64)
        for j in dense
    ]
    keys = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    sparse_deg = degree.copy()
    sparse_deg[dense] = 0
    need = sparse_deg.copy()
    have = np.empty(0, dtype=np.int64)
    for _ in range(max_rounds):
        if not need.any():
            break
        dst = np.repeat(nodes, need)
        src = (rng.random(dst.size) * dst).astype(np.int64)  # uniform in [0, dst)
        have = np.unique(np.concatenate([have, dst * n + src]))
        need = sparse_deg - np.bincount(have // n, minlength=n)
    else:  # pragma: no cover - collisions stay below 1/2 per draw, 64 rounds suffice
        for j in np.flatnonzero(need):
            taken = set((have[have // n == j] % n).tolist())
            free = np.setdiff1d(np.arange(j), np.fromiter(taken, np.int64))
            extra = rng.choice(free, size=int(need[j]), replace=False)
            have = np.unique(np.concatenate([have, j * n + extra]))
    keys = np.unique(np.concatenate([keys, have]))
    return keys % n, keys // n


def scale_free_graph(
    n_function: int,
    n_input: int | None = None,
    n_output: int | None = None,
    max_in_degree: int = 50,
    seed: int = 0,
) -> tuple[nx.DiGraph, list[str], list[str], list[str]]:
    """A random DAG of function nodes with heavy-tailed in-degrees, for benchmarks.

    Construction (vectorised numpy, deterministic given ``seed``):

    - function nodes ``f0..f{N-1}`` are in topological order; the first
      ``S = min(n_input, N)`` are sources (no function parents);
    - every other node ``f{j}`` draws an in-degree ``d`` from the power law
      ``P(d) ~ d^-2`` on ``1..max_in_degree`` (mean about 2.8 for the default cap;
      a few hubs reach the cap at N = 20,000), capped at ``j``, and takes ``d``
      distinct parents uniformly from ``f0..f{j-1}``;
    - input ``in{i}`` feeds source ``f{i mod S}``, so every source has an input;
    - the sinks (function nodes without function children) are shuffled and
      dealt round-robin to the outputs ``o0..o{n_output-1}``; outputs left
      without a sink read one random function node.

    Hence every function node is reachable from an input (through its chain of
    parents back to a source) and reaches an output (through its children down to
    a sink). Edges are inserted input->function, then function->function sorted by
    (source, destination), then function->output, so ``G.edges`` order is fixed.
    No edge attributes are set (``simulate`` then uses +1 signs; note that signal
    variance grows along long paths of such a graph).

    Args:
        n_function: number of function nodes (>= 1).
        n_input: number of inputs, default ``max(1, n_function // 10)``.
        n_output: number of outputs, default ``max(1, n_function // 10)``.
        max_in_degree: cap of the in-degree distribution (>= 1).
        seed: seed of the ``np.random.default_rng`` used throughout.

    Returns:
        ``(G, input_nodes, function_nodes, output_nodes)``.
    """
    n = _check_int(n_function, "n_function", 1)
    n_in = max(1, n // 10) if n_input is None else _check_int(n_input, "n_input", 1)
    n_out = max(1, n // 10) if n_output is None else _check_int(n_output, "n_output", 1)
    cap = _check_int(max_in_degree, "max_in_degree", 1)
    rng = np.random.default_rng(seed)

    n_src = min(n_in, n)
    support = np.arange(1, cap + 1, dtype=np.int64)
    prob = support.astype(np.float64) ** -SCALE_FREE_EXPONENT
    degree = rng.choice(support, size=n, p=prob / prob.sum())
    degree[:n_src] = 0
    degree = np.minimum(degree, np.arange(n, dtype=np.int64))
    ff_src, ff_dst = _distinct_parents(rng, degree)
    order = np.lexsort((ff_dst, ff_src))
    ff_src, ff_dst = ff_src[order], ff_dst[order]

    in_dst = np.arange(n_in, dtype=np.int64) % n_src
    has_child = np.zeros(n, dtype=bool)
    has_child[ff_src] = True
    sinks = rng.permutation(np.flatnonzero(~has_child))
    out_of_sink = np.arange(sinks.size, dtype=np.int64) % n_out
    n_orphans = max(n_out - sinks.size, 0)
    fo_src = np.concatenate([sinks, rng.integers(0, n, size=n_orphans)])
    fo_dst = np.concatenate([out_of_sink, np.arange(sinks.size, n_out, dtype=np.int64)])
    order = np.lexsort((fo_dst, fo_src))
    fo_src, fo_dst = fo_src[order], fo_dst[order]

    input_nodes = [f"in{i}" for i in range(n_in)]
    function_nodes = [f"f{i}" for i in range(n)]
    output_nodes = [f"o{i}" for i in range(n_out)]
    G = nx.DiGraph()
    G.add_nodes_from(input_nodes)
    G.add_nodes_from(function_nodes)
    G.add_nodes_from(output_nodes)
    G.add_edges_from(zip(input_nodes, (function_nodes[j] for j in in_dst.tolist())))
    G.add_edges_from(
        (function_nodes[s], function_nodes[d]) for s, d in zip(ff_src.tolist(), ff_dst.tolist())
    )
    G.add_edges_from(
        (function_nodes[s], output_nodes[d]) for s, d in zip(fo_src.tolist(), fo_dst.tolist())
    )
    return G, input_nodes, function_nodes, output_nodes
