"""Graph data: the GSNN graph container, networkx conversion, simulation and synthetic graphs.

- :class:`GraphData`, :func:`nx2pyg`, :func:`pyg2nx` -- the heterogeneous graph
  container (no torch_geometric dependency) and its networkx round trip;
- :func:`simulate` -- vectorised sampling of the structural model of a DAG;
- :func:`build_convergence_graph`, :func:`default_held_out_edges`,
  :func:`split_held_out` -- the seed notebook's converging-tier setup;
- :func:`scale_free_graph`, :func:`scaled_convergence_graph` -- graph families for
  benchmarks.
"""

from __future__ import annotations

from .graph import EDGE_TYPES, NODE_TYPES, GraphData, nx2pyg, pyg2nx
from .simulate import simulate
from .synthetic import (
    build_convergence_graph,
    default_held_out_edges,
    scale_free_graph,
    scaled_convergence_graph,
    split_held_out,
)

__all__ = [
    "EDGE_TYPES",
    "NODE_TYPES",
    "GraphData",
    "build_convergence_graph",
    "default_held_out_edges",
    "nx2pyg",
    "pyg2nx",
    "scale_free_graph",
    "scaled_convergence_graph",
    "simulate",
    "split_held_out",
]
