"""A minimal model that honours only the activation-capture contract (see
gsnn_fast/inference/capture.py).

It is not a GSNN: dense float64 layers, but the attributes the inferers rely on are
there (``ResBlocks`` with ``_store_activations``, ``_last_pre_norm_activation``,
``_last_activation``, ``channel_groups``; ``input_node_mask``, ``output_node_mask``,
``checkpoint``, ``norm``). Options exercise the awkward corners of the contract:
function nodes that are not first in the homogeneous order, channel groups that are
interleaved (not contiguous), channels owned by a non-function node, captured tensors
of shape ``(B, C, 1)`` and ``(B, C)``, dropout that only eval mode switches off, and
failures injected into the forward.
"""

from __future__ import annotations

import torch
from torch import nn


class ContractBlock(nn.Module):
    """``h (B, C) -> h + tanh(W h + b)``; captures pre (B, C, 1) or (B, C) and post (B, C)."""

    def __init__(self, C: int, channel_groups: torch.Tensor, pre_3d: bool, dropout: float):
        super().__init__()
        self.lin = nn.Linear(C, C, dtype=torch.float64)
        self.register_buffer("channel_groups", channel_groups.clone())
        self.pre_3d = pre_3d
        self.dropout = dropout
        self._store_activations = False

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pre = self.lin(h)
        if self.pre_3d:
            pre = pre.unsqueeze(-1)
        if self._store_activations:
            self._last_pre_norm_activation = pre
        act = torch.tanh(pre).reshape(h.shape)
        act = nn.functional.dropout(act, self.dropout, training=self.training)
        if self._store_activations:
            self._last_activation = act
        return h + act


class ContractModel(nn.Module):
    """Inputs -> ``layers`` ContractBlocks over ``C`` channels -> outputs (all float64).

    Args:
        n_in, n_func, n_out: node counts of each kind.
        channels: channels per function node.
        layers: number of blocks.
        layout: ``'gsnn'`` (function nodes first, contiguous channels, as a GSNN) or
            ``'shuffled'`` (inputs first, function channels interleaved, plus
            ``extra`` channels owned by the first output node scattered in between).
        dropout: channel dropout (active only in training mode).
        seed: parameter seed.
    """

    def __init__(
        self,
        n_in: int,
        n_func: int,
        n_out: int,
        channels: int = 3,
        layers: int = 3,
        layout: str = "gsnn",
        dropout: float = 0.3,
        extra: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n_nodes = n_in + n_func + n_out
        inp = torch.zeros(n_nodes, dtype=torch.bool)
        out = torch.zeros(n_nodes, dtype=torch.bool)
        if layout == "gsnn":
            func_ids = torch.arange(n_func)
            inp[n_func : n_func + n_in] = True
            out[n_func + n_in :] = True
            cg = func_ids.repeat_interleave(channels)
        elif layout == "shuffled":
            func_ids = torch.arange(n_in, n_in + n_func)
            inp[:n_in] = True
            out[n_in + n_func :] = True
            cg = func_ids.repeat(channels)  # interleaved: channel c -> node c % n_func
            first_out = n_in + n_func
            for _ in range(extra):
                pos = int(torch.randint(0, cg.numel() + 1, (1,), generator=g))
                cg = torch.cat([cg[:pos], torch.tensor([first_out]), cg[pos:]])
        else:
            raise ValueError(layout)
        C = cg.numel()
        self.register_buffer("input_node_mask", inp)
        self.register_buffer("output_node_mask", out)
        self.checkpoint = False
        self.norm = "none"
        self.fail_at_call: int | None = None
        self.calls = 0
        self.enc = nn.Linear(n_in, C, dtype=torch.float64)
        self.dec = nn.Linear(C, n_out, dtype=torch.float64)
        self.ResBlocks = nn.ModuleList(
            ContractBlock(C, cg, pre_3d=(l % 2 == 0), dropout=dropout) for l in range(layers)
        )
        with torch.no_grad():
            for prm in self.parameters():
                prm.copy_(torch.randn(prm.shape, generator=g, dtype=prm.dtype) * 0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise RuntimeError("injected model failure")
        h = torch.tanh(self.enc(x.to(torch.float64)))
        for blk in self.ResBlocks:
            h = blk(h)
        return self.dec(h)


class Graph:
    """Bare graph container: only ``node_names_dict`` and ``edge_index_dict``."""

    def __init__(self, n_in: int, n_func: int, n_out: int, ff_edges: torch.Tensor):
        self.node_names_dict = {
            "input": [f"in{i}" for i in range(n_in)],
            "function": [f"f{i}" for i in range(n_func)],
            "output": [f"out{i}" for i in range(n_out)],
        }
        self.edge_index_dict = {("function", "to", "function"): ff_edges}


def random_ff_edges(n_func: int, n_edges: int, seed: int, self_edges: int = 1) -> torch.Tensor:
    """Random distinct function->function edges (a few self edges and duplicates too)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n_func, (n_edges,), generator=g)
    dst = torch.randint(0, n_func, (n_edges,), generator=g)
    ei = torch.stack([src, dst])
    extra = [[k, k] for k in range(self_edges)]
    if n_edges:
        extra.append([int(src[0]), int(dst[0])])  # a duplicate edge
    if extra:
        ei = torch.cat([ei, torch.tensor(extra, dtype=torch.int64).T], dim=1)
    return ei


def random_batches(
    n_in: int, n_out: int, sizes: tuple[int, ...], seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) float64 batches of the given sizes, from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(b, n_in, generator=g, dtype=torch.float64),
            torch.randn(b, n_out, generator=g, dtype=torch.float64),
        )
        for b in sizes
    ]
