"""Per-node MLP shared by all function nodes of a ResBlock."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["NodeMLP"]


class NodeMLP(nn.Module):
    """A small MLP (two linear maps) run on each node's own channel vector, with weights
    shared by all nodes.

    ``Linear(ch, hidden) -> LayerNorm(hidden) -> nonlin() -> Dropout(p) ->
    Linear(hidden, ch) -> Dropout(p)``, stored as ``self.mlp`` (``nn.Sequential``,
    so the state_dict keys are ``mlp.0.*``, ``mlp.1.*``, ``mlp.4.*`` as in the
    pure-torch library).

    Args:
        in_features: channels per node (``ch``).
        hidden_features: hidden width.
        nonlin: activation class (e.g. ``torch.nn.ELU``), instantiated without args.
        dropout: dropout probability.

    Shapes: ``(B, num_nodes, ch)`` -> ``(B, num_nodes, ch)``.
    """

    def __init__(
        self, in_features: int, hidden_features: int, nonlin: type, dropout: float
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.LayerNorm(hidden_features),
            nonlin(),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, in_features),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
