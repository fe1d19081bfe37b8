"""Shared, untimed helpers of the two baselines: graph layout and small utilities.

Everything here runs once per problem (construction), never inside a timed call, so it
is written for clarity and speed of setup rather than in either baseline's style.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

IF = ("input", "to", "function")
FF = ("function", "to", "function")
FO = ("function", "to", "output")

#: zero-variance tolerance of the inferer (relative rule by default)
ZERO_VAR_TOL = 1e-12


@dataclass
class Layout:
    """Homogeneous GSNN layout (as gsnn_fast.models.GSNN builds it), once per graph.

    Nodes: function ``[0, Nf)``, input ``[Nf, Nf+Ni)``, output ``[Nf+Ni, n_nodes)``.
    Edges: function->function, input->function, function->output, then one self edge
    per function node (if requested). Node ``n`` owns channels ``[n*ch, (n+1)*ch)``.
    """

    n_function: int
    n_input: int
    n_output: int
    channels: int
    edge_index: torch.Tensor  # [2, E]
    input_node_mask: torch.Tensor  # [n_nodes] bool
    output_node_mask: torch.Tensor  # [n_nodes] bool
    w_in_indices: torch.Tensor  # [2, nnz_in]  (edge e, channel)
    w_out_indices: torch.Tensor  # [2, nnz_out] (channel, edge e)
    channel_groups: torch.Tensor  # [C] channel -> node

    @property
    def n_nodes(self) -> int:
        return self.n_function + self.n_input + self.n_output

    @property
    def E(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def C(self) -> int:
        return self.n_function * self.channels


def _edges(d: Mapping, key: tuple) -> torch.Tensor:
    return torch.as_tensor(d[key]).to(torch.long).reshape(2, -1).cpu()


def build_layout(
    edge_index_dict: Mapping,
    node_names_dict: Mapping[str, Sequence[str]],
    channels: int,
    add_function_self_edges: bool = True,
) -> Layout:
    """The homogeneous layout: edge order, W_in / W_out entry order, channel groups."""
    Ni = len(node_names_dict["input"])
    Nf = len(node_names_dict["function"])
    No = len(node_names_dict["output"])
    ff, ie, fo = (
        _edges(edge_index_dict, FF),
        _edges(edge_index_dict, IF),
        _edges(edge_index_dict, FO),
    )
    src = torch.cat([ff[0], ie[0] + Nf, fo[0]])
    dst = torch.cat([ff[1], ie[1], fo[1] + Nf + Ni])
    if add_function_self_edges:
        f = torch.arange(Nf)
        src, dst = torch.cat([src, f]), torch.cat([dst, f])
    n_nodes = Ni + Nf + No
    in_mask = torch.zeros(n_nodes, dtype=torch.bool)
    in_mask[Nf : Nf + Ni] = True
    out_mask = torch.zeros(n_nodes, dtype=torch.bool)
    out_mask[Nf + Ni :] = True
    ch = int(channels)
    k = torch.arange(ch)
    # W_in: edges in order whose destination is a function node; channels ascending
    e_in = torch.nonzero(dst < Nf).reshape(-1)
    w_in = torch.stack([e_in.repeat_interleave(ch), (dst[e_in, None] * ch + k).reshape(-1)])
    # W_out: function node n ascending, channel k ascending, out-edges of n in edge order
    e_out = torch.nonzero(src < Nf).reshape(-1)
    order = torch.argsort(src[e_out], stable=True)
    e_sorted = e_out[order]
    s_sorted = src[e_sorted]
    deg = torch.bincount(s_sorted, minlength=Nf)
    start = torch.cumsum(deg, 0) - deg
    rank = torch.arange(e_sorted.numel()) - start[s_sorted]
    pos = (ch * start[s_sorted])[:, None] + k[None, :] * deg[s_sorted][:, None] + rank[:, None]
    nnz = e_sorted.numel() * ch
    rows = torch.empty(nnz, dtype=torch.long)
    cols = torch.empty(nnz, dtype=torch.long)
    rows[pos.reshape(-1)] = (s_sorted[:, None] * ch + k).reshape(-1)
    cols[pos.reshape(-1)] = e_sorted.repeat_interleave(ch)
    return Layout(
        n_function=Nf,
        n_input=Ni,
        n_output=No,
        channels=ch,
        edge_index=torch.stack([src, dst]),
        input_node_mask=in_mask,
        output_node_mask=out_mask,
        w_in_indices=w_in,
        w_out_indices=torch.stack([rows, cols]),
        channel_groups=torch.arange(Nf).repeat_interleave(ch),
    )


def degree_normalized_init(indices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The ``degree_normalized`` init: U(-1, 1) / sqrt((n_in + 1e-8)(n_out + 1e-8))."""
    r, m = indices
    n_in = torch.bincount(m, minlength=size[1]).to(torch.float64)[m]
    n_out = torch.bincount(r, minlength=size[0]).to(torch.float64)[r]
    u = torch.rand(r.numel(), dtype=torch.float64) * 2 - 1
    return (u / torch.sqrt((n_in + 1e-8) * (n_out + 1e-8))).to(torch.float32)


def function_edges(data) -> np.ndarray:
    """(2, E_ff) int64 numpy array of the data's function->function edges."""
    ei = data.edge_index_dict[FF]
    ei = ei.detach().cpu().numpy() if torch.is_tensor(ei) else np.asarray(ei)
    return ei.reshape(2, -1).astype(np.int64)


def function_channel_map(model) -> tuple[list[int], torch.Tensor]:
    """Homogeneous function node ids (ascending) and ``channel -> function position``
    (-1 for channels of other nodes), from the capture contract of ``model``."""
    inp = torch.as_tensor(model.input_node_mask).cpu().bool()
    out = torch.as_tensor(model.output_node_mask).cpu().bool()
    fn = torch.nonzero(~(inp | out)).reshape(-1)
    cg = model.ResBlocks[0].channel_groups.detach().cpu().long()
    lut = torch.full((int(max(int(cg.max()), int(fn.max()))) + 1,), -1, dtype=torch.long)
    lut[fn] = torch.arange(fn.numel())
    return fn.tolist(), lut[cg]


def rel_eps(eps: float, eps_mode: str, mean, var):
    """The regressor's standardisation epsilon: ``eps`` (absolute) or
    ``eps * (var + mean^2) + tiny`` (relative, gsnn_fast's default)."""
    if eps_mode == "absolute":
        return eps
    tiny = np.finfo(np.float64).tiny
    return eps * (var + mean * mean) + tiny


def sqrt2() -> float:
    return math.sqrt(2.0)


class RegressorState(nn.Module):
    """What both baseline regressors hold (untimed construction): the options, ``W``
    (xavier-uniform, gain 0.1) and its AdamW, and the buffers of gsnn_fast's regressor
    under the same names (``stats_dtype``: the gram's and residual sum's dtype). The
    model is not registered as a submodule. ``pre_forward`` switches capture on."""

    def __init__(
        self,
        model,
        data,
        *,
        aggregators: Sequence[str] = ("sum", "max"),
        use_pre_norm=True,
        standardize=True,
        lr=1e-2,
        weight_decay=1e-4,
        dropout=0.0,
        ridge=0.0,
        score_mode="abs",
        ema_momentum=0.1,
        eps=1e-8,
        eps_mode="relative",
        stats_dtype=torch.float64,
    ):
        super().__init__()
        self.__dict__["model"] = model
        self.data = data
        self.aggregators = tuple(aggregators)
        self.use_pre_norm, self.standardize = use_pre_norm, standardize
        self.ridge, self.score_mode = float(ridge), score_mode
        self.ema_momentum, self.eps, self.eps_mode = float(ema_momentum), eps, eps_mode
        self.dropout = nn.Dropout(dropout)
        self.function_nodes = list(data.node_names_dict["function"])
        self.N = N = len(self.function_nodes)
        self.L = len(model.ResBlocks)
        self.n_pairs = P = max(self.L - 1, 0)
        self.n_aggs = K = len(self.aggregators)
        self.W = nn.Parameter(torch.empty(N, N))
        nn.init.xavier_uniform_(self.W, gain=0.1)
        self.optim = torch.optim.AdamW([self.W], lr=lr, weight_decay=weight_decay)
        for name, value in (
            ("running_mean_x", torch.zeros(P, K, N)),
            ("running_var_x", torch.ones(P, K, N)),
            ("running_mean_y", torch.zeros(P, N)),
            ("running_var_y", torch.ones(P, N)),
            ("n_batches_tracked", torch.tensor(0, dtype=torch.long)),
            ("gram", torch.zeros(N, N, dtype=stats_dtype)),
            ("n_samples", torch.tensor(0, dtype=torch.long)),
            ("residual_sum_sq", torch.tensor(0.0, dtype=stats_dtype)),
        ):
            self.register_buffer(name, value)
        self._acts = None
        self._best_state = None
        self._best_metric = None

    def pre_forward(self):
        for mod in self.model.ResBlocks:
            mod._store_activations = True
        self._acts = None

    def maybe_save_best(self, metric, mode="max"):
        if metric is None or math.isnan(float(metric)):
            return False
        best = self._best_metric
        if best is None or (metric > best if mode == "max" else metric < best):
            self._best_metric = float(metric)
            self._best_state = copy.deepcopy(self.state_dict())
            return True
        return False

    def load_best(self):
        if self._best_state is None:
            raise RuntimeError("load_best: nothing was saved yet")
        self.load_state_dict(self._best_state)


class InfererState:
    """The options and graph facts both baseline inferers start from (untimed)."""

    def __init__(self, model, data, reduction="l1", use_pre_norm=True):
        if getattr(model, "checkpoint", False):
            raise ValueError("MagnitudeEdgeInferer requires model.checkpoint=False")
        self.model, self.data = model, data
        self.reduction, self.use_pre_norm = reduction, use_pre_norm
        self.function_nodes = list(data.node_names_dict["function"])
        self.N = len(self.function_nodes)
        self.L = len(model.ResBlocks)
        self.n_pairs = max(self.L - 1, 0)
