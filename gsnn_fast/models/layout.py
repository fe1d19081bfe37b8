"""The homogeneous graph layout of a GSNN and the maps between node and edge features.

:func:`hetero2homo` numbers the nodes of the heterogeneous graph (function, input,
output) in one index space; :func:`get_conv_indices` gives the sparse patterns of a
block's ``W_in`` / ``W_out`` and the channel -> node map; :func:`node2edge` and
:func:`edge2node` move features between nodes and edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["edge2node", "get_conv_indices", "hetero2homo", "node2edge"]

IF = ("input", "to", "function")
FF = ("function", "to", "function")
FO = ("function", "to", "output")


def _edge_tensor(d: Mapping, key: tuple, name: str) -> torch.Tensor:
    if key not in d:
        raise ValueError(f"{name}: missing key {key!r}")
    t = torch.as_tensor(d[key])
    if t.dim() != 2 or t.shape[0] != 2:
        raise ValueError(f"{name}[{key!r}]: expected shape [2, num_edges], got {tuple(t.shape)}")
    return t.to(torch.long).cpu()


def _check_range(t: torch.Tensor, row: int, n: int, what: str, key: tuple) -> None:
    if t.shape[1] and (int(t[row].min()) < 0 or int(t[row].max()) >= n):
        raise ValueError(
            f"edge_index_dict[{key!r}]: {what} index out of range [0, {n}) "
            f"(node_names_dict has {n} such nodes)"
        )


def hetero2homo(
    edge_index_dict: Mapping,
    node_names_dict: Mapping[str, Sequence[str]],
    edge_weight_dict: Mapping | None = None,
    edge_channels: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, list, torch.Tensor | None]:
    """Stack the three edge types into one homogeneous graph.

    Node order: function ``[0, Nf)``, input ``[Nf, Nf+Ni)``, output ``[Nf+Ni, N)``.
    Edge order: function->function (repeated ``edge_channels`` times), input->function,
    function->output. The caller's dictionaries are not modified.

    Returns:
        ``(edge_index [2, E] long, input_node_mask [N] bool, output_node_mask [N] bool,
        num_nodes, homo_names, edge_weight [E] or None)``.
    """
    for k in ("input", "function", "output"):
        if k not in node_names_dict:
            raise ValueError(f"node_names_dict: missing key {k!r}")
    Ni = len(node_names_dict["input"])
    Nf = len(node_names_dict["function"])
    No = len(node_names_dict["output"])
    ff = _edge_tensor(edge_index_dict, FF, "edge_index_dict")
    ie = _edge_tensor(edge_index_dict, IF, "edge_index_dict")
    fo = _edge_tensor(edge_index_dict, FO, "edge_index_dict")
    _check_range(ff, 0, Nf, "source (function)", FF)
    _check_range(ff, 1, Nf, "destination (function)", FF)
    _check_range(ie, 0, Ni, "source (input)", IF)
    _check_range(ie, 1, Nf, "destination (function)", IF)
    _check_range(fo, 0, Nf, "source (function)", FO)
    _check_range(fo, 1, No, "destination (output)", FO)
    if edge_channels > 1:
        ff = ff.repeat(1, edge_channels)
    ie = torch.stack((ie[0] + Nf, ie[1]))
    fo = torch.stack((fo[0], fo[1] + Nf + Ni))
    edge_index = torch.cat((ff, ie, fo), dim=1)

    edge_weight = None
    if edge_weight_dict is not None:
        parts = []
        for key, idx, rep in ((FF, ff, edge_channels), (IF, ie, 1), (FO, fo, 1)):
            if key not in edge_weight_dict:
                raise ValueError(f"edge_weight_dict: missing key {key!r}")
            w = torch.as_tensor(edge_weight_dict[key]).reshape(-1)
            if w.numel() * rep != idx.shape[1]:
                raise ValueError(
                    f"edge_weight_dict[{key!r}]: expected {idx.shape[1] // rep} weights, "
                    f"got {w.numel()}"
                )
            parts.append(w.repeat(rep) if rep > 1 else w)
        edge_weight = torch.cat(parts)

    N = Ni + Nf + No
    input_node_mask = torch.zeros(N, dtype=torch.bool)
    input_node_mask[Nf : Nf + Ni] = True
    output_node_mask = torch.zeros(N, dtype=torch.bool)
    output_node_mask[Nf + Ni :] = True
    homo_names = (
        list(node_names_dict["function"])
        + list(node_names_dict["input"])
        + list(node_names_dict["output"])
    )
    return edge_index, input_node_mask, output_node_mask, N, homo_names, edge_weight


def get_conv_indices(
    edge_index: torch.Tensor, channels: int, num_function_nodes: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int], torch.Tensor]:
    """Sparse patterns of ``W_in`` (E x C) and ``W_out`` (C x E), vectorised.

    Function nodes are ``[0, num_function_nodes)``; node ``n`` owns channels
    ``[n*channels, (n+1)*channels)``.

    - ``W_in``: for each edge ``e`` (ascending) whose destination ``d`` is a function
      node, entries ``(e, d*channels + k)``, ``k`` ascending.
    - ``W_out``: for each function node ``n`` ascending, ``k`` ascending, each edge ``e``
      with source ``n`` (ascending), entry ``(n*channels + k, e)``.

    Returns ``(w_in_indices [2, nnz_in], w_out_indices [2, nnz_out], (E, C), (C, E),
    channel_groups [C] long)``.
    """
    ch, Nf = int(channels), int(num_function_nodes)
    src, dst = edge_index[0].cpu(), edge_index[1].cpu()
    E, C = int(edge_index.shape[1]), Nf * ch
    kk = torch.arange(ch)

    e_in = (dst < Nf).nonzero(as_tuple=True)[0]
    rows_in = e_in.repeat_interleave(ch)
    cols_in = (dst[e_in].unsqueeze(1) * ch + kk).reshape(-1)
    w_in = torch.stack((rows_in, cols_in))

    e_out = (src < Nf).nonzero(as_tuple=True)[0]
    s = src[e_out]
    order = torch.argsort(s, stable=True)  # edges grouped by source node, edge order kept
    e_sorted, s_sorted = e_out[order], s[order]
    deg = torch.bincount(s_sorted, minlength=Nf)
    node_start = torch.cumsum(deg, 0) - deg  # first sorted position of each node
    rank = torch.arange(e_sorted.numel()) - node_start[s_sorted]
    block = ch * node_start  # first entry of each node's block
    pos = block[s_sorted].unsqueeze(1) + kk.unsqueeze(0) * deg[s_sorted].unsqueeze(1)
    pos = (pos + rank.unsqueeze(1)).reshape(-1)
    nnz = int(e_sorted.numel()) * ch
    rows_out = torch.empty(nnz, dtype=torch.long)
    cols_out = torch.empty(nnz, dtype=torch.long)
    rows_out[pos] = (s_sorted.unsqueeze(1) * ch + kk).reshape(-1)
    cols_out[pos] = e_sorted.repeat_interleave(ch)
    w_out = torch.stack((rows_out, cols_out))

    channel_groups = torch.arange(Nf).repeat_interleave(ch)
    return w_in, w_out, (E, C), (C, E), channel_groups


def node2edge(x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Node features ``(B, N)`` -> edge features ``(B, E)`` (value of the source node)."""
    return x[:, edge_index[0]]


def edge2node(
    x: torch.Tensor, edge_index: torch.Tensor, output_node_mask: torch.Tensor
) -> torch.Tensor:
    """Edge features ``(B, E)`` -> ``(B, N)``: per node, sum of incoming features divided
    by ``sqrt(max(in-degree, 1))``; only edges into output nodes are summed."""
    dst = edge_index[1]
    sel = output_node_mask[dst]
    N = output_node_mask.shape[0]
    out = x.new_zeros(x.shape[0], N).index_add(1, dst[sel], x[:, sel])
    deg = torch.bincount(dst, minlength=N).clamp_min(1).to(x.dtype)
    return out / deg.sqrt()
