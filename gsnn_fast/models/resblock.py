"""Residual block of a GSNN (edge features -> node channels -> edge features)."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import norms
from .node_mlp import NodeMLP
from .sparse_linear import SparseLinear

__all__ = ["ResBlock", "NORMS"]

NORMS: tuple[str, ...] = (
    "layer",
    "batch",
    "groupbatch",
    "rms",
    "softmax",
    "ema",
    "channelema",
    "edgebatch",
    "batch++",
    "none",
)


class ResBlock(nn.Module):
    """One GSNN layer acting on edge features ``x`` of shape ``(B, E)``.

    Forward steps, in this order:

    1. ``edgebatch`` / ``batch++`` / ``channelema``: normalise ``x`` per edge
       (``self._edge_norm``);
    2. ``out = lin_in(x)`` ``(B, C, 1)`` (``+ node_err`` if given);
    3. if ``_store_activations``: ``_last_pre_norm_activation = out`` (``(B, C, 1)``,
       attached to the autograd graph);
    4. norm then nonlinearity (``norm_first``) or the reverse;
    5. dropout on channels (functional, follows ``self.training``);
    6. optional node MLP on each node's channel vector (output becomes ``(B, C)``);
    7. node attention: not implemented (``node_attn=True`` raises);
    8. if ``_store_activations``: ``_last_activation = out`` (``(B, C, 1)``, or
       ``(B, C)`` with the node MLP, exactly as the pure-torch library);
    9. ``out *= node_mask`` (channel-expanded, ``(B, C)``) if a mask is set;
    10. ``out = lin_out(out)`` ``(B, E, 1)``;
    11. if ``residual``: ``out + relu(residual_weight) * x``.

    Returns edge features ``(B, E)`` (float, same dtype as the parameters).

    Args:
        bias: learn biases in ``lin_in`` / ``lin_out``.
        nonlin: activation class, e.g. ``torch.nn.ELU``.
        indices_params: ``(w_in_indices [2, nnz_in], w_out_indices [2, nnz_out],
            w_in_size (E, C), w_out_size (C, E), channel_groups [C])``.
        dropout: channel dropout probability (also used inside the node MLP).
        norm: one of :data:`NORMS`.
        init: SparseLinear init (see :class:`SparseLinear`).
        lin_in, lin_out: shared SparseLinear layers (``share_layers``); built if None.
        residual: add the residual connection.
        norm_first: norm before the nonlinearity.
        node_attn: must be False (node attention is not implemented yet).
        learn_residual: ``residual_weight`` is a Parameter (1.0) rather than the
            constant 1.0.
        affine: affine parameters in the norms.
        node_mlp, node_mlp_hidden: per-node MLP and its hidden width.
        edge_index, edge_weight: accepted for signature compatibility (used by node
            attention in the pure-torch library).
    """

    def __init__(
        self,
        bias: bool,
        nonlin: type,
        indices_params: tuple,
        dropout: float = 0.0,
        norm: str = "layer",
        init: str = "xavier",
        lin_in: SparseLinear | None = None,
        lin_out: SparseLinear | None = None,
        residual: bool = True,
        norm_first: bool = True,
        node_attn: bool = False,
        learn_residual: bool = True,
        affine: bool = True,
        node_mlp: bool = True,
        node_mlp_hidden: int = 256,
        edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm: unrecognized norm type {norm!r}; options: {', '.join(NORMS)}")
        if node_attn:
            raise NotImplementedError(
                "node_attn=True: node attention is not implemented in gsnn_fast yet"
            )
        w_in_indices, w_out_indices, w_in_size, w_out_size, channel_groups = indices_params
        E, C = int(w_in_size[0]), int(w_in_size[1])
        self.residual = residual
        self.norm_first = norm_first
        self.dropout = dropout
        self.node_attn = None
        cg = torch.as_tensor(channel_groups, dtype=torch.long).reshape(-1).cpu()
        if cg.numel() != C:
            raise ValueError(
                f"indices_params: channel_groups has {cg.numel()} entries, w_in_size says {C}"
            )
        self.register_buffer("channel_groups", cg.clone())
        self.n_nodes = int(cg.max().item()) + 1
        self.channels_per_node = int(cg.numel() // self.n_nodes)

        if norm in ("edgebatch", "batch++"):
            self._edge_norm = nn.BatchNorm1d(E, eps=1e-3, affine=affine)
        elif norm == "channelema":
            self._edge_norm = norms.ChannelEMANorm(E, affine=affine)

        self.lin_in = (
            lin_in
            if lin_in is not None
            else SparseLinear(indices=w_in_indices, size=w_in_size, bias=bias, init=init)
        )
        self.lin_out = (
            lin_out
            if lin_out is not None
            else SparseLinear(indices=w_out_indices, size=w_out_size, bias=bias, init=init)
        )

        self.norm = _make_norm(norm, cg, C, affine, norm_first)
        self.nonlin = nonlin()
        self.node_mask: torch.Tensor | None = None
        self._store_activations = False
        self.learn_residual = learn_residual
        self.node_mlp = node_mlp
        self.node_mlp_hidden = node_mlp_hidden
        if learn_residual:
            self.residual_weight = nn.Parameter(torch.tensor(1.0))
        else:
            self.residual_weight = 1.0
        if node_mlp:
            if self.channels_per_node * self.n_nodes != C:
                raise ValueError("node_mlp=True needs the same number of channels on every node")
            self.mlp = NodeMLP(self.channels_per_node, node_mlp_hidden, nonlin, dropout)
        else:
            self.mlp = None

    def set_node_mask(self, mask: torch.Tensor | None) -> None:
        """Set a channel-level mask ``(B, C)`` (or ``None``) applied at step 9."""
        self.node_mask = mask

    def _expand_node_err(self, node_err: torch.Tensor, B: int) -> torch.Tensor:
        C = self.channel_groups.numel()
        if node_err.dim() == 3 and node_err.shape[-1] == 1:
            node_err = node_err.squeeze(-1)
        if node_err.dim() != 2:
            raise ValueError(
                f"node_err: expected (B, {C}) channel-level errors, got {tuple(node_err.shape)}"
            )
        if node_err.shape[1] != C:
            # node-level errors (B, num_nodes >= n_nodes): expand to the node's channels
            if node_err.shape[1] >= self.n_nodes:
                node_err = node_err.index_select(1, self.channel_groups)
            else:
                raise ValueError(
                    f"node_err: expected (B, {C}) channel-level or (B, num_nodes) node-level "
                    f"errors, got {tuple(node_err.shape)}"
                )
        return node_err.unsqueeze(-1)

    def forward(
        self,
        x: torch.Tensor,
        batch_params: object = None,
        node_err: torch.Tensor | None = None,
        node_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Edge features ``(B, E)`` (or ``(B, E, 1)``) -> ``(B, E)``.

        Args:
            x: edge features.
            batch_params: ignored (pure-torch signature compatibility).
            node_err: optional ``(B, C)`` channel-level (or ``(B, num_nodes)``
                node-level) error added after ``lin_in``.
            node_mask: optional ``(B, C)`` channel mask; overrides the mask set with
                :meth:`set_node_mask` for this call.
        """
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        out = self._edge_norm(x) if hasattr(self, "_edge_norm") else x
        out = self.lin_in(out)  # (B, C, 1)
        if node_err is not None:
            out = out + self._expand_node_err(node_err, out.shape[0]).to(out.dtype)
        if self._store_activations:
            self._last_pre_norm_activation = out
        if self.norm_first:
            out = self.nonlin(self.norm(out))
        else:
            out = self.norm(self.nonlin(out))
        out = F.dropout(out, p=self.dropout, training=self.training)
        if self.mlp is not None:
            B = out.shape[0]
            out = self.mlp(out.reshape(B, self.n_nodes, self.channels_per_node))
            out = out.reshape(B, self.n_nodes * self.channels_per_node)
        if self._store_activations:
            self._last_activation = out
        mask = node_mask if node_mask is not None else self.node_mask
        if mask is not None:
            out = out.squeeze(-1) * mask.squeeze(-1)
        out = self.lin_out(out).squeeze(-1)  # (B, E)
        if self.residual:
            w = self.residual_weight
            w = w.relu() if torch.is_tensor(w) else max(float(w), 0.0)
            out = out + w * x
        return out


def _make_norm(norm: str, cg: torch.Tensor, C: int, affine: bool, norm_first: bool) -> nn.Module:
    if norm == "layer":
        return norms.GroupLayerNorm(cg)
    if norm in ("batch", "batch++"):
        return nn.BatchNorm1d(C, eps=1e-3, affine=affine)
    if norm == "groupbatch":
        return norms.GroupBatchNorm(cg, affine=affine)
    if norm == "softmax":
        if norm_first:
            warnings.warn(
                "norm='softmax' with norm_first=True normalises before the nonlinearity; "
                "group softmax usually works better after it (norm_first=False)",
                stacklevel=3,
            )
        return norms.SoftmaxGroupNorm(cg)
    if norm == "rms":
        return norms.GroupRMSNorm(cg, affine=affine)
    if norm == "ema":
        return norms.GroupEMANorm(cg, affine=affine)
    if norm == "channelema":
        return norms.ChannelEMANorm(C, affine=affine)
    return nn.Identity()  # 'none', 'edgebatch'
