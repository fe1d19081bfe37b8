"""The known function -> function edges of a graph container, as index arrays.

Both edge inferers read ``data.edge_index_dict[FF]`` (a ``(2, E)`` integer tensor or
array of indices into ``data.node_names_dict['function']``); the candidate edges they
score are every ordered pair of function nodes, and these known edges mark the
``has_edge`` column and the conditioning sets of the partial score.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["FF", "ParentSets", "adjacency", "function_edges", "parent_sets"]

#: The edge type between two function nodes.
FF = ("function", "to", "function")


def function_edges(data: Any, n: int) -> np.ndarray:
    """``(2, E)`` int64 (src, dst) indices of ``data``'s function -> function edges.

    A graph without that edge type (or with an empty one) gives ``(2, 0)``.

    Raises:
        ValueError: no ``edge_index_dict``, a shape other than ``(2, E)``, non-integer
            entries, or an index outside ``[0, n)``.
    """
    ei = getattr(data, "edge_index_dict", None)
    if ei is None:
        raise ValueError("data: needs edge_index_dict")
    if FF not in ei:
        return np.zeros((2, 0), dtype=np.int64)
    raw = ei[FF]
    arr = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    if arr.size == 0:
        return np.zeros((2, 0), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[0] != 2:
        raise ValueError(
            f"data: edge_index_dict[{FF}] must have shape (2, E), got {tuple(arr.shape)}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"data: edge_index_dict[{FF}] must hold integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(
            f"data: a function->function edge index is outside [0, {n}) "
            f"(min {arr.min()}, max {arr.max()} in edge_index_dict[{FF}])"
        )
    return arr


def adjacency(edges: np.ndarray, n: int) -> np.ndarray:
    """``[n, n]`` bool matrix, True at ``[src, dst]`` of every edge."""
    adj = np.zeros((n, n), dtype=bool)
    adj[edges[0], edges[1]] = True
    return adj


class ParentSets(NamedTuple):
    """Each target's graph parents (self loops left out), the conditioning sets of the
    partial score: ``by_target[j]`` sorted int64 indices; ``sizes`` ``[n]`` int64;
    ``ptr`` ``[n + 1]`` / ``idx`` the same sets as a CSR (CPU int64 tensors)."""

    by_target: list[np.ndarray]
    sizes: np.ndarray
    ptr: torch.Tensor
    idx: torch.Tensor


def parent_sets(adj: np.ndarray) -> ParentSets:
    """The parents of every target of the adjacency matrix ``adj`` ([src, dst])."""
    par = adj.copy()
    np.fill_diagonal(par, False)
    n = par.shape[0]
    by_target = [np.flatnonzero(par[:, j]).astype(np.int64) for j in range(n)]
    sizes = par.sum(0).astype(np.int64)
    ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]))
    idx = torch.from_numpy(np.nonzero(par.T)[1].astype(np.int64))
    return ParentSets(by_target, sizes, ptr, idx)
