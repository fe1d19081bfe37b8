"""Heterogeneous graph container and networkx conversion (no torch_geometric needed).

A GSNN graph has three node kinds and three edge kinds:

===============================  =========================================
key                              meaning
===============================  =========================================
``('input', 'to', 'function')``  an input node feeds a function node
``('function', 'to', 'function')``  a function node feeds a function node
``('function', 'to', 'output')`` a function node feeds an output node
===============================  =========================================

Every edge index is a ``torch.int64`` tensor of shape ``(2, E)`` whose row 0
holds source and row 1 destination indices, both *local to their node kind*
(position in ``node_names_dict[kind]``). Optional edge weights are
``torch.float32`` tensors of shape ``(E,)`` in the same edge order.

Any object with the attributes ``edge_index_dict`` and ``node_names_dict``
(and optionally ``edge_weight_dict``) is accepted wherever a graph is expected,
including a ``torch_geometric.data.HeteroData`` built by the pure-torch ``gsnn``;
an empty ``edge_weight_dict`` (what HeteroData reports when none was set) means
"no weights".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import torch

__all__ = ["EDGE_TYPES", "NODE_TYPES", "GraphData", "nx2pyg", "pyg2nx"]

#: Node kinds, in the order used throughout gsnn_fast.
NODE_TYPES: tuple[str, str, str] = ("input", "function", "output")

#: Edge kinds (source kind, relation, destination kind), in canonical order.
EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("input", "to", "function"),
    ("function", "to", "function"),
    ("function", "to", "output"),
)

# (source kind code, destination kind code) -> edge type; codes index NODE_TYPES.
_KIND_PAIR_TO_EDGE_TYPE = {(0, 1): EDGE_TYPES[0], (1, 1): EDGE_TYPES[1], (1, 2): EDGE_TYPES[2]}


def _edge_type_str(edge_type: tuple[str, str, str]) -> str:
    return f"{edge_type[0]}->{edge_type[2]}"


def _as_index_tensor(value: Any, name: str) -> torch.Tensor:
    """Convert an edge index (tensor / array / nested list) to an int64 tensor (2, E)."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an integer tensor of shape (2, E)") from exc
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    if t.numel() == 0:
        # The pure-torch nx2pyg produces shape (0,) for an empty edge list.
        return torch.empty((2, 0), dtype=torch.int64, device=t.device)
    if t.dim() != 2 or t.shape[0] != 2:
        raise ValueError(f"{name} must have shape (2, E), got {tuple(t.shape)}")
    return t.to(torch.int64).contiguous()


def _as_weight_tensor(value: Any, n_edges: int, name: str) -> torch.Tensor:
    """Convert edge weights to a float tensor of shape (E,)."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a float tensor of shape (E,)") from exc
    if not t.dtype.is_floating_point:
        t = t.to(torch.float32)
    t = t.reshape(-1) if t.numel() == n_edges else t
    if t.dim() != 1 or t.shape[0] != n_edges:
        raise ValueError(
            f"{name} must have shape ({n_edges},) to match its edge index, got {tuple(t.shape)}"
        )
    return t.contiguous()


def _as_name_list(value: Any, name: str) -> list:
    """Turn a sequence of node names into a list, rejecting strings and duplicates."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of node names, got {type(value).__name__}")
    names = list(value)
    seen: set = set()
    dups: list = []
    for n in names:
        if not isinstance(n, Hashable):
            raise TypeError(f"{name} contains an unhashable node name: {n!r}")
        if n in seen:
            dups.append(n)
        seen.add(n)
    if dups:
        raise ValueError(f"{name} contains duplicate node names: {_preview(dups)}")
    return names


def _preview(items: list, k: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:k])
    more = f", ... ({len(items)} in total)" if len(items) > k else ""
    return f"[{shown}{more}]"


def _exact_keys(mapping: Any, expected: Sequence, label: str, shape: str) -> dict:
    """``{key as a tuple: the caller's key}`` of ``mapping``, which must be a mapping
    with exactly the keys ``expected`` (list keys count as tuples); TypeError /
    ValueError naming ``label`` otherwise."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{label} must be a mapping {shape}")
    keys = {tuple(k) if isinstance(k, (tuple, list)) else k: k for k in mapping}
    missing = [k for k in expected if k not in keys]
    unknown = [k for k in keys if k not in expected]
    if missing or unknown:
        raise ValueError(
            f"{label} must have exactly the keys {list(expected)}; "
            f"missing {missing}, unknown {unknown}"
        )
    return keys


class GraphData:
    """A small heterogeneous-graph container with the attributes GSNN consumes.

    Args:
        edge_index_dict: ``{edge_type: index}`` for the three keys of
            :data:`EDGE_TYPES`; each index is ``(2, E)`` integer data (tensor,
            array or nested list), converted to a contiguous ``torch.int64``
            tensor. An empty index may be given with any shape of zero size.
        node_names_dict: ``{'input': [...], 'function': [...], 'output': [...]}``;
            names must be hashable and unique within a kind.
        edge_weight_dict: optional ``{edge_type: weights}`` with the same keys,
            each of shape ``(E,)``; non-floating data becomes ``torch.float32``.
            ``None`` or ``{}`` means unweighted.

    Attributes:
        edge_index_dict (dict[tuple[str, str, str], torch.LongTensor]): ``(2, E)``
            indices local to each node kind, in canonical key order.
        node_names_dict (dict[str, list]): node names per kind.
        edge_weight_dict (dict | None): ``(E,)`` float weights, or ``None``.

    Raises:
        ValueError / TypeError naming the offending argument when a key is
        missing or unknown, an index is out of range, a shape is wrong or a name
        is duplicated.
    """

    def __init__(
        self,
        edge_index_dict: Mapping[tuple[str, str, str], Any],
        node_names_dict: Mapping[str, Iterable[Hashable]],
        edge_weight_dict: Mapping[tuple[str, str, str], Any] | None = None,
    ) -> None:
        _exact_keys(node_names_dict, NODE_TYPES, "node_names_dict", "{kind: names}")
        names = {
            k: _as_name_list(node_names_dict[k], f"node_names_dict[{k!r}]") for k in NODE_TYPES
        }

        keys = _exact_keys(
            edge_index_dict, EDGE_TYPES, "edge_index_dict", "{edge_type: (2, E) index}"
        )
        index: dict[tuple[str, str, str], torch.Tensor] = {}
        for et in EDGE_TYPES:
            label = f"edge_index_dict[{et!r}]"
            t = _as_index_tensor(edge_index_dict[keys[et]], label)
            for row, kind in ((0, et[0]), (1, et[2])):
                if t.shape[1] == 0:
                    continue
                lo, hi = int(t[row].min()), int(t[row].max())
                n = len(names[kind])
                if lo < 0 or hi >= n:
                    end = "source" if row == 0 else "destination"
                    raise ValueError(
                        f"{label} has {end} indices in [{lo}, {hi}] but there are only "
                        f"{n} {kind!r} nodes"
                    )
            index[et] = t

        weights: dict[tuple[str, str, str], torch.Tensor] | None = None
        if edge_weight_dict:  # None or {} -> unweighted
            wkeys = _exact_keys(
                edge_weight_dict, EDGE_TYPES, "edge_weight_dict", "{edge_type: (E,) weights}"
            )
            weights = {
                et: _as_weight_tensor(
                    edge_weight_dict[wkeys[et]], index[et].shape[1], f"edge_weight_dict[{et!r}]"
                )
                for et in EDGE_TYPES
            }

        self.edge_index_dict: dict[tuple[str, str, str], torch.Tensor] = index
        self.node_names_dict: dict[str, list] = names
        self.edge_weight_dict: dict[tuple[str, str, str], torch.Tensor] | None = weights

    @classmethod
    def from_data(cls, data: Any) -> GraphData:
        """Copy any object with ``edge_index_dict`` / ``node_names_dict`` (and optionally
        ``edge_weight_dict``), e.g. a torch_geometric ``HeteroData``, into a GraphData.

        A GraphData is returned as is (not copied).
        """
        if isinstance(data, cls):
            return data
        for attr in ("edge_index_dict", "node_names_dict"):
            if not hasattr(data, attr):
                raise TypeError(
                    f"data must have an {attr!r} attribute (a GraphData, a HeteroData or "
                    f"similar), got {type(data).__name__}"
                )
        return cls(
            data.edge_index_dict,
            data.node_names_dict,
            getattr(data, "edge_weight_dict", None),
        )

    @property
    def num_nodes_dict(self) -> dict[str, int]:
        """Number of nodes per kind."""
        return {k: len(v) for k, v in self.node_names_dict.items()}

    @property
    def num_edges_dict(self) -> dict[tuple[str, str, str], int]:
        """Number of edges per edge type."""
        return {k: int(v.shape[1]) for k, v in self.edge_index_dict.items()}

    def to(self, device: torch.device | str) -> GraphData:
        """A copy whose tensors live on ``device`` (node names are shared)."""
        out = object.__new__(GraphData)
        out.node_names_dict = self.node_names_dict
        out.edge_index_dict = {k: v.to(device) for k, v in self.edge_index_dict.items()}
        out.edge_weight_dict = (
            None
            if self.edge_weight_dict is None
            else {k: v.to(device) for k, v in self.edge_weight_dict.items()}
        )
        return out

    def __repr__(self) -> str:
        nodes = ", ".join(f"{k}={n}" for k, n in self.num_nodes_dict.items())
        edges = ", ".join(f"{_edge_type_str(k)}={n}" for k, n in self.num_edges_dict.items())
        w = "none" if self.edge_weight_dict is None else "yes"
        return f"GraphData(nodes: {nodes}; edges: {edges}; edge weights: {w})"


def nx2pyg(
    G: nx.DiGraph,
    input_nodes: Iterable[Hashable],
    function_nodes: Iterable[Hashable],
    output_nodes: Iterable[Hashable],
    weight_attr: str | None = None,
) -> GraphData:
    """Build a :class:`GraphData` from a networkx DiGraph.

    Edges are kept when they go input -> function, function -> function or
    function -> output; every other edge (e.g. output -> function, input ->
    output, or one touching a node in none of the lists) is ignored. Within each
    edge type, edges appear in ``G.edges`` order; indices are positions in the
    corresponding node list. Runs in O(V + E) (the pure-torch version is
    O(E * V) because of ``list.index``).

    Args:
        G: a directed (non-multi) networkx graph.
        input_nodes, function_nodes, output_nodes: node names of each kind; each
            must be unique, present in ``G`` and in exactly one of the lists.
        weight_attr: if given, the edge attribute holding each kept edge's weight;
            the result then has ``edge_weight_dict`` with ``torch.float32``
            tensors of shape ``(E,)``. Every kept edge must carry it.

    Returns:
        GraphData with ``int64`` ``(2, E)`` edge indices (``(2, 0)`` when a type
        has no edges) and ``node_names_dict`` holding list copies of the inputs.

    Raises:
        TypeError: ``G`` is not a directed graph, or is a multigraph.
        ValueError: duplicate names within a list, a node in two lists, a listed
            node not in ``G``, or a kept edge without ``weight_attr``.
    """
    if not isinstance(G, nx.Graph) or not G.is_directed():
        raise TypeError(f"G must be a networkx DiGraph, got {type(G).__name__}")
    if G.is_multigraph():
        raise TypeError("G must not be a multigraph; convert it with nx.DiGraph(G) first")
    lists = {
        "input_nodes": _as_name_list(input_nodes, "input_nodes"),
        "function_nodes": _as_name_list(function_nodes, "function_nodes"),
        "output_nodes": _as_name_list(output_nodes, "output_nodes"),
    }
    # name -> (kind code, local index); detect nodes listed under two kinds.
    where: dict[Hashable, tuple[int, int]] = {}
    arg_names = list(lists)
    for code, (arg, names) in enumerate(lists.items()):
        clash = [n for n in names if n in where]
        if clash:
            other = arg_names[where[clash[0]][0]]
            raise ValueError(
                f"{arg} and {other} share node(s) {_preview(clash)}; "
                "each node must have exactly one kind"
            )
        absent = [n for n in names if n not in G]
        if absent:
            raise ValueError(f"{arg} contains node(s) not in G: {_preview(absent)}")
        where.update((n, (code, i)) for i, n in enumerate(names))

    src: dict[tuple[str, str, str], list[int]] = {et: [] for et in EDGE_TYPES}
    dst: dict[tuple[str, str, str], list[int]] = {et: [] for et in EDGE_TYPES}
    wts: dict[tuple[str, str, str], list[float]] = {et: [] for et in EDGE_TYPES}
    lookup = where.get
    for u, v, attrs in G.edges(data=True):
        a, b = lookup(u), lookup(v)
        if a is None or b is None:
            continue
        et = _KIND_PAIR_TO_EDGE_TYPE.get((a[0], b[0]))
        if et is None:
            continue
        src[et].append(a[1])
        dst[et].append(b[1])
        if weight_attr is not None:
            if weight_attr not in attrs:
                raise ValueError(
                    f"weight_attr={weight_attr!r}: edge ({u!r}, {v!r}) has no such attribute"
                )
            try:
                wts[et].append(float(attrs[weight_attr]))
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"weight_attr={weight_attr!r}: edge ({u!r}, {v!r}) has a non-numeric "
                    f"weight {attrs[weight_attr]!r}"
                ) from exc

    edge_index = {
        et: torch.from_numpy(np.array([src[et], dst[et]], dtype=np.int64).reshape(2, -1))
        for et in EDGE_TYPES
    }
    node_names = {
        "input": lists["input_nodes"],
        "function": lists["function_nodes"],
        "output": lists["output_nodes"],
    }
    weights = None
    if weight_attr is not None:
        weights = {et: torch.tensor(wts[et], dtype=torch.float32) for et in EDGE_TYPES}
    return GraphData(edge_index, node_names, weights)


def pyg2nx(data: Any, weight_attr: str = "weight") -> nx.DiGraph:
    """Convert a graph container back to a networkx DiGraph.

    Args:
        data: a :class:`GraphData` or any object with ``edge_index_dict`` and
            ``node_names_dict`` (e.g. a torch_geometric ``HeteroData``).
        weight_attr: edge attribute under which ``edge_weight_dict`` values (if
            the container has weights) are stored, as Python floats.

    Returns:
        A DiGraph whose nodes are all input, function and output names (in that
        order, so isolated nodes are kept -- the pure-torch version only adds
        nodes that touch an edge) and whose edges are the input->function,
        function->function and function->output edges, in that order.
    """
    g = GraphData.from_data(data)
    G = nx.DiGraph()
    for kind in NODE_TYPES:
        G.add_nodes_from(g.node_names_dict[kind])
    for et in EDGE_TYPES:
        src_names = g.node_names_dict[et[0]]
        dst_names = g.node_names_dict[et[2]]
        ei = g.edge_index_dict[et].cpu().tolist()
        if g.edge_weight_dict is None:
            G.add_edges_from((src_names[s], dst_names[d]) for s, d in zip(ei[0], ei[1]))
        else:
            w = g.edge_weight_dict[et].detach().cpu().tolist()
            G.add_edges_from(
                (src_names[s], dst_names[d], {weight_attr: x}) for s, d, x in zip(ei[0], ei[1], w)
            )
    return G
