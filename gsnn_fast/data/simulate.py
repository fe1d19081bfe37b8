"""Vectorised simulation of a linear-Gaussian (or user-defined) structural model on a DAG.

The generative model is the one of the pure-torch ``gsnn.simulate.simulate``
(which built a pyro program and looped over samples in Python): every input
node is N(0, 1); every other node, in topological order, is N(0, 1) when it has
no parents and ``N(f(parents), noise_scale)`` otherwise, with ``f`` the signed
sum of the parents or a user function. Here all samples are drawn at once:
nodes are grouped into topological generations and each generation of linear
nodes is one sparse-matrix product over all samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

__all__ = ["simulate"]

#: Upper bound on (samples x nodes) float64 values held per chunk (~32 MB each).
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class _Generation:
    """Nodes whose parents all lie in earlier generations."""

    linear_rows: np.ndarray  # int64 (k,), node positions computed as signed sums
    weights: sp.csr_matrix  # (k, n_nodes) signed parent weights of linear_rows
    special: list[tuple[int, Callable, list[int]]] = field(default_factory=list)


@dataclass
class _Plan:
    n_nodes: int
    input_pos: np.ndarray  # int64 (n_inputs,)
    output_pos: np.ndarray  # int64 (n_outputs,)
    generations: list[_Generation]
    names: list  # node at each position


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_nodes(G: nx.DiGraph, nodes: Any, name: str) -> list:
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        raise TypeError(f"{name} must be a sequence of node names, got {type(nodes).__name__}")
    nodes = list(nodes)
    absent = [n for n in nodes if n not in G]
    if absent:
        raise ValueError(f"{name} contains node(s) not in G: {absent[:5]!r}")
    if len(set(nodes)) != len(nodes):
        seen: set = set()
        dups = [n for n in nodes if n in seen or seen.add(n)]
        raise ValueError(f"{name} contains duplicate node(s): {dups[:5]!r}")
    return nodes


def _edge_sign(G: nx.DiGraph, u: Hashable, v: Hashable, signed_edges: Mapping | None) -> float:
    if signed_edges is not None and (u, v) in signed_edges:
        value, where = signed_edges[(u, v)], f"signed_edges[{(u, v)!r}]"
    else:
        value = G.edges[u, v].get("sign")
        if value is None:
            return 1.0
        where = f"G.edges[{u!r}, {v!r}]['sign']"
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _build_plan(
    G: nx.DiGraph,
    input_nodes: list,
    output_nodes: list,
    special_functions: Mapping[Hashable, Callable] | None,
    signed_edges: Mapping[tuple, Real] | None,
) -> _Plan:
    """Fix a node order (inputs, then the rest in topological order) and the
    generation schedule; validate signs and special functions on the way."""
    input_set = set(input_nodes)
    topo = list(nx.topological_sort(G))
    names = list(input_nodes) + [n for n in topo if n not in input_set]
    pos = {n: i for i, n in enumerate(names)}
    special = dict(special_functions or {})

    level = np.zeros(len(names), dtype=np.int64)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    special_nodes: list[tuple[int, Callable, list[int]]] = []
    for i in range(len(input_nodes), len(names)):
        v = names[i]
        parents = list(G.predecessors(v))  # inputs ignore their parents
        if not parents:
            continue  # N(0, 1), level 0
        ppos = [pos[p] for p in parents]
        level[i] = 1 + int(level[ppos].max())
        if v in special:
            special_nodes.append((i, special[v], ppos))
        else:
            rows.extend([i] * len(ppos))
            cols.extend(ppos)
            vals.extend(_edge_sign(G, p, v, signed_edges) for p in parents)

    n = len(names)
    W = sp.csr_matrix(
        (
            np.asarray(vals, dtype=np.float64),
            (np.asarray(rows, np.int64), np.asarray(cols, np.int64)),
        ),
        shape=(n, n),
    )
    W.sum_duplicates()
    generations: list[_Generation] = []
    lin_mask = np.zeros(n, dtype=bool)
    lin_mask[np.asarray(rows, dtype=np.int64)] = True
    for g in range(1, int(level.max(initial=0)) + 1):
        in_g = level == g
        lin = np.flatnonzero(in_g & lin_mask)
        spec = [s for s in special_nodes if level[s[0]] == g]
        generations.append(_Generation(lin, W[lin], spec))
    return _Plan(
        n_nodes=n,
        input_pos=np.arange(len(input_nodes), dtype=np.int64),
        output_pos=np.asarray([pos[o] for o in output_nodes], dtype=np.int64),
        generations=generations,
        names=names,
    )


def _call_special(fn: Callable, parents: list[np.ndarray], m: int, node: Hashable) -> np.ndarray:
    out = fn(parents)
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    try:
        out = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"special_functions[{node!r}] must return an array of shape ({m},), "
            f"got {type(out).__name__}"
        ) from exc
    if out.shape == ():
        return np.full(m, float(out))
    if out.shape != (m,):
        raise ValueError(
            f"special_functions[{node!r}] must return an array of shape ({m},) (one value "
            f"per sample), got shape {out.shape}"
        )
    return out


def _sample(plan: _Plan, n: int, noise_scale: float, chunk_elements: int) -> tuple:
    """Draw ``n`` samples; returns (x (n, n_inputs), y (n, n_outputs)) float64.

    Standard normals are drawn from numpy's global RNG as row-major
    ``(samples, nodes)`` blocks, so the result does not depend on the chunking.
    """
    x = np.empty((n, plan.input_pos.size), dtype=np.float64)
    y = np.empty((n, plan.output_pos.size), dtype=np.float64)
    step = max(1, chunk_elements // max(plan.n_nodes, 1))
    for start in range(0, n, step):
        m = min(step, n - start)
        z = np.random.standard_normal((m, plan.n_nodes))
        values = np.ascontiguousarray(z.T)  # (nodes, m): rows are per-node sample vectors
        for gen in plan.generations:
            # Parents live in earlier generations; values[rows] still holds z here.
            if gen.linear_rows.size:
                mean = gen.weights @ values
                values[gen.linear_rows] = mean + noise_scale * values[gen.linear_rows]
            for i, fn, ppos in gen.special:
                parents = []
                for p in ppos:
                    view = values[p]
                    view.flags.writeable = False
                    parents.append(view)
                mean = _call_special(fn, parents, m, plan.names[i])
                values[i] = mean + noise_scale * values[i]
        x[start : start + m] = values[plan.input_pos].T
        y[start : start + m] = values[plan.output_pos].T
    return x, y


def simulate(
    G: nx.DiGraph,
    n_train: int,
    n_test: int,
    input_nodes: Sequence[Hashable],
    output_nodes: Sequence[Hashable],
    *,
    noise_scale: float = 1.0,
    special_functions: Mapping[Hashable, Callable[[list[np.ndarray]], Any]] | None = None,
    signed_edges: Mapping[tuple[Hashable, Hashable], float] | None = None,
    _chunk_elements: int = _CHUNK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample training and test data from a structural model defined by a DAG.

    Model (each sample independent):

    - input nodes: ``N(0, 1)`` (edges into an input node are ignored);
    - every other node, in topological order: ``N(0, 1)`` if it has no parents,
      else ``N(f(parents), noise_scale)`` where ``f`` is

      * ``special_functions[node](parent_values)`` if the node has an entry, or
      * the signed sum ``sum_u sign(u, node) * value(u)`` over its parents ``u``;
        ``sign(u, v)`` is ``signed_edges[(u, v)]`` when that key exists, else
        the edge attribute ``'sign'`` when set, else ``+1`` (any finite real is
        used as a multiplier, so weights other than +-1 also work).

    Vectorised over samples: a special function is called with
    ``parent_values``, a list (in ``G.predecessors(node)`` order) of read-only
    float64 arrays of shape ``(m,)``, one value per sample, and must return an
    array of shape ``(m,)`` (a scalar is broadcast; a CPU torch tensor is
    accepted). ``m`` may be smaller than ``n_train`` because samples are
    processed in chunks, so the function must act sample-wise (e.g.
    ``lambda p: p[0] * p[1]`` or ``lambda p: np.tanh(p[0])``).

    Randomness comes from numpy's global RNG (``np.random.seed`` makes runs
    reproducible, as with the pure-torch version): one ``(samples, nodes)``
    block of standard normals per chunk, training samples first. The values
    differ from the pure-torch version's (which also drew from torch's RNG
    inside pyro), but the distribution is the same.

    Args:
        G: directed acyclic networkx graph (not a multigraph).
        n_train, n_test: positive numbers of samples.
        input_nodes: nodes whose values form ``x`` (columns in this order).
        output_nodes: nodes whose values form ``y`` (any nodes of ``G``).
        noise_scale: standard deviation (>= 0) of every non-root, non-input node.
        special_functions: ``{node: callable}``; entries for nodes without
            parents are unused (those nodes are N(0, 1)).
        signed_edges: ``{(u, v): sign}``; keys that are not edges of ``G`` are
            ignored (so a dict made for a larger graph can be reused).
        _chunk_elements: private, the chunk size in sample x node elements (tests
            check that the results do not depend on it).

    Returns:
        ``(x_train, x_test, y_train, y_test)``, float64 numpy arrays of shapes
        ``(n_train, len(input_nodes))``, ``(n_test, len(input_nodes))``,
        ``(n_train, len(output_nodes))``, ``(n_test, len(output_nodes))``.

    Raises:
        TypeError / ValueError naming the argument: ``G`` not a directed acyclic
        graph, unknown or duplicated nodes, non-positive sample counts, negative
        or non-finite ``noise_scale``, a non-callable special function or one on
        an unknown / input node, a non-numeric sign, a special function returning
        the wrong shape.
    """
    if not isinstance(G, nx.Graph) or not G.is_directed():
        raise TypeError(f"G must be a networkx DiGraph, got {type(G).__name__}")
    if G.is_multigraph():
        raise TypeError("G must not be a multigraph; convert it with nx.DiGraph(G) first")
    if not nx.is_directed_acyclic_graph(G):
        cycle = nx.find_cycle(G)
        raise ValueError(f"G must be a directed acyclic graph; found the cycle {cycle!r}")
    n_train = _check_count(n_train, "n_train")
    n_test = _check_count(n_test, "n_test")
    inputs = _check_nodes(G, input_nodes, "input_nodes")
    outputs = _check_nodes(G, output_nodes, "output_nodes")
    if (
        isinstance(noise_scale, bool)
        or not isinstance(noise_scale, Real)
        or not math.isfinite(noise_scale)
        or noise_scale < 0
    ):
        raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
    if special_functions is not None:
        if not isinstance(special_functions, Mapping):
            raise TypeError("special_functions must be a mapping {node: callable}")
        input_set = set(inputs)
        for node, fn in special_functions.items():
            if node not in G:
                raise ValueError(f"special_functions has a key that is not a node of G: {node!r}")
            if node in input_set:
                raise ValueError(
                    f"special_functions[{node!r}]: {node!r} is an input node; inputs are "
                    "always N(0, 1), so the function would be ignored"
                )
            if not callable(fn):
                raise TypeError(f"special_functions[{node!r}] must be callable")
    if signed_edges is not None and not isinstance(signed_edges, Mapping):
        raise TypeError("signed_edges must be a mapping {(u, v): sign}")

    plan = _build_plan(G, inputs, outputs, special_functions, signed_edges)
    x_train, y_train = _sample(plan, n_train, float(noise_scale), _chunk_elements)
    x_test, y_test = _sample(plan, n_test, float(noise_scale), _chunk_elements)
    return x_train, x_test, y_train, y_test


def _simulate(*args: Any, chunk_elements: int, **kwargs: Any) -> tuple:
    """:func:`simulate` with another chunk size."""
    return simulate(*args, _chunk_elements=chunk_elements, **kwargs)
