"""GSNN model: :class:`GSNN`, its :class:`ResBlock`, :class:`SparseLinear` and norms.

Drop-in replacements for ``gsnn.models.GSNN``, ``gsnn.models.ResBlock``,
``gsnn.models.SparseLinear`` and the group norm layers of the pure-torch library
(same constructor arguments, parameter/buffer names and shapes).
"""

from __future__ import annotations

from .gsnn import GSNN
from .layout import edge2node, get_conv_indices, hetero2homo, node2edge
from .node_mlp import NodeMLP
from .norms import (
    ChannelEMANorm,
    GroupBatchNorm,
    GroupEMANorm,
    GroupLayerNorm,
    GroupRMSNorm,
    SoftmaxGroupNorm,
)
from .resblock import NORMS, ResBlock
from .sparse_linear import INITS, SparseLinear, SparsePlan, build_sparse_plan, sparse_linear_torch

__all__ = [
    "GSNN",
    "ResBlock",
    "SparseLinear",
    "SparsePlan",
    "NodeMLP",
    "GroupLayerNorm",
    "GroupBatchNorm",
    "GroupRMSNorm",
    "SoftmaxGroupNorm",
    "GroupEMANorm",
    "ChannelEMANorm",
    "NORMS",
    "INITS",
    "sparse_linear_torch",
    "build_sparse_plan",
    "hetero2homo",
    "get_conv_indices",
    "node2edge",
    "edge2node",
]
