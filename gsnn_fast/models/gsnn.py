"""Graph Structured Neural Network (GSNN), drop-in for ``gsnn.models.GSNN.GSNN``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from .layout import get_conv_indices, hetero2homo, node2edge
from .resblock import ResBlock
from .sparse_linear import SparseLinear, plan_cache

__all__ = ["GSNN"]

_AGGS = ("sum", "mean", "max", "last", "all")
_RUNNING = ("running_mean", "running_var", "num_batches_tracked")


class GSNN(nn.Module):
    """Graph Structured Neural Network.

    The graph constrains which variables influence each other: every function node
    owns ``channels`` hidden channels, and information only flows along edges.
    Inputs are ``(B, Ni)`` float tensors in the order of ``node_names_dict['input']``;
    outputs are ``(B, No)`` in the order of ``node_names_dict['output']``.

    Args:
        edge_index_dict: ``{('input','to','function'): [2, E_if], ('function','to',
            'function'): [2, E_ff], ('function','to','output'): [2, E_fo]}`` (LongTensor,
            node indices local to each type).
        node_names_dict: ``{'input': [...], 'function': [...], 'output': [...]}``.
        channels: hidden channels per function node.
        layers: number of residual blocks.
        dropout: channel dropout probability.
        nonlin: activation class (default ``torch.nn.ELU``).
        bias: learn biases in the sparse layers.
        share_layers: one ``lin_in`` / ``lin_out`` shared by all blocks (norms and
            residual weights stay per block).
        add_function_self_edges: add one ``(n, n)`` edge per function node.
        norm: ``'layer'``, ``'batch'``, ``'groupbatch'``, ``'rms'``, ``'softmax'``,
            ``'ema'``, ``'channelema'``, ``'edgebatch'``, ``'batch++'`` or ``'none'``.
        init: SparseLinear init (``'degree_normalized'`` ...).
        verbose: print construction messages.
        edge_channels: repeat the function->function edges that many times.
        checkpoint: gradient checkpointing of each block while training.
        residual: residual connections (outputs divided by ``sqrt(layers)``).
        norm_first: norm before the nonlinearity.
        node_attn: must be False (not implemented yet).
        node_mlp, node_mlp_hidden: per-node MLP inside each block.
        edge_weight_dict: optional ``{key: [E_key]}`` edge weights, stacked into
            ``self.edge_weights`` (function->function weights repeated with
            ``edge_channels``; self edges carry none), as in the pure-torch library.

    Buffers (state_dict): ``output_node_mask [N]``, ``input_node_mask [N]``,
    ``edge_index [2, E]``, ``function_edge_mask [E]``, ``input_edge_mask [E]``,
    ``output_edge_mask [E]``; blocks under ``ResBlocks.<i>``.
    """

    def __init__(
        self,
        edge_index_dict: Mapping,
        node_names_dict: Mapping[str, Sequence[str]],
        channels: int,
        layers: int,
        dropout: float = 0.0,
        nonlin: type = torch.nn.ELU,
        bias: bool = True,
        share_layers: bool = True,
        add_function_self_edges: bool = True,
        norm: str = "layer",
        init: str = "degree_normalized",
        verbose: bool = False,
        edge_channels: int = 1,
        checkpoint: bool = False,
        residual: bool = True,
        norm_first: bool = True,
        node_attn: bool = False,
        node_mlp: bool = True,
        node_mlp_hidden: int = 128,
        edge_weight_dict: Mapping | None = None,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers: expected a positive int, got {layers!r}")
        if not isinstance(edge_channels, int) or edge_channels < 1:
            raise ValueError(f"edge_channels: expected a positive int, got {edge_channels!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        if node_attn:
            raise NotImplementedError(
                "node_attn=True: node attention is not implemented in gsnn_fast yet"
            )

        edge_index, input_node_mask, output_node_mask, num_nodes, homo_names, edge_weights = (
            hetero2homo(edge_index_dict, node_names_dict, edge_weight_dict, edge_channels)
        )
        self.num_nodes = num_nodes
        self.homo_names = homo_names
        self.edge_weights = edge_weights
        self.nonlin = nonlin
        self.bias = bias
        self.share_layers = share_layers
        self.layers = layers
        self.channels = channels
        self.add_function_self_edges = add_function_self_edges
        self.verbose = verbose
        self.edge_channels = edge_channels
        self.checkpoint = checkpoint
        self.norm = norm
        self.init = init
        self.dropout = dropout
        self.residual = residual
        self.node_attn = node_attn
        self.norm_first = norm_first
        self.node_mlp = node_mlp
        self.node_mlp_hidden = node_mlp_hidden

        self.register_buffer("output_node_mask", output_node_mask)
        self.register_buffer("input_node_mask", input_node_mask)

        Nf = len(node_names_dict["function"])
        self.num_function_nodes = Nf
        self.num_inputs = len(node_names_dict["input"])
        self.num_outputs = len(node_names_dict["output"])
        function_nodes = torch.arange(Nf)
        if add_function_self_edges:
            if verbose:
                print(f"GSNN: one self edge added to each of the {Nf} function nodes")
            edge_index = torch.cat((edge_index, torch.stack((function_nodes, function_nodes))), 1)
        self.register_buffer("edge_index", edge_index)
        self.E = int(edge_index.shape[1])
        self.N = num_nodes

        src, dst = edge_index
        func_edge_mask = (src < Nf) & (dst < Nf)
        inp_edge_mask = input_node_mask[src] & (dst < Nf)
        self.register_buffer("function_edge_mask", func_edge_mask)
        self.register_buffer("input_edge_mask", inp_edge_mask)
        self.register_buffer("output_edge_mask", ~(func_edge_mask | inp_edge_mask))

        self.indices_params = get_conv_indices(edge_index, channels, Nf)
        w_in_idx, w_out_idx, w_in_size, w_out_size, _ = self.indices_params
        with plan_cache():  # one CSR plan per pattern, shared by all blocks
            self._build_blocks(lin_args=(w_in_idx, w_out_idx, w_in_size, w_out_size))
        self._B = None
        self._batch_params = None
        self.scale = torch.tensor(layers**0.5, dtype=torch.float32)
        self._build_index_cache()
        self.register_load_state_dict_post_hook(lambda module, keys: module._build_index_cache())

    def _build_blocks(self, lin_args: tuple) -> None:
        w_in_idx, w_out_idx, w_in_size, w_out_size = lin_args
        bias, init, nonlin = self.bias, self.init, self.nonlin
        if self.share_layers:
            lin_in = SparseLinear(indices=w_in_idx, size=w_in_size, bias=bias, init=init)
            lin_out = SparseLinear(indices=w_out_idx, size=w_out_size, bias=bias, init=init)
        else:
            lin_in = lin_out = None

        self.ResBlocks = nn.ModuleList(
            [
                ResBlock(
                    bias=bias,
                    nonlin=nonlin,
                    dropout=self.dropout,
                    norm=self.norm,
                    init=init,
                    indices_params=self.indices_params,
                    lin_in=lin_in,
                    lin_out=lin_out,
                    node_attn=False,
                    norm_first=self.norm_first,
                    residual=self.residual,
                    node_mlp=self.node_mlp,
                    node_mlp_hidden=self.node_mlp_hidden,
                    edge_index=self.edge_index,
                    edge_weight=self.edge_weights,
                )
                for _ in range(self.layers)
            ]
        )

    # ------------------------------------------------------------------ helpers
    def _build_index_cache(self) -> None:
        ei = self.edge_index
        dev = ei.device
        N = self.num_nodes
        input_idx = self.input_node_mask.nonzero(as_tuple=True)[0]
        out_first = (
            int(self.output_node_mask.nonzero(as_tuple=True)[0].min()) if (self.num_outputs) else N
        )
        sel = self.output_node_mask[ei[1]]
        out_pos = sel.nonzero(as_tuple=True)[0]
        deg = torch.bincount(ei[1], minlength=N).clamp_min(1)
        self.register_buffer("_input_idx", input_idx.to(dev), persistent=False)
        self.register_buffer("_out_pos", out_pos.to(dev), persistent=False)
        self.register_buffer("_out_dst", (ei[1, out_pos] - out_first).to(dev), persistent=False)
        self.register_buffer("_out_deg", deg[self.output_node_mask].to(dev), persistent=False)

    def _param_dtype(self) -> torch.dtype:
        return self.ResBlocks[0].lin_in.values.dtype

    def get_batch_params(self, B: int, device: Any) -> tuple[None, None]:
        """Compatibility no-op: gsnn_fast needs no batch-replicated indices."""
        return (None, None)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        if x.dim() != 2 or x.shape[1] != self.num_inputs:
            raise ValueError(
                f"x: expected shape (B, {self.num_inputs}) (one column per input node), "
                f"got {tuple(x.shape)}"
            )
        if x.device != self.edge_index.device:
            raise ValueError(
                f"x: is on {x.device} but the model is on {self.edge_index.device}; "
                "move one of them (model.to(device) or x.to(device))"
            )
        return x.to(self._param_dtype())

    def _check_batch_tensor(self, t: torch.Tensor, name: str, width: int, B: int, what: str):
        if not torch.is_tensor(t):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != width or t.shape[0] not in (1, B):
            raise ValueError(
                f"{name}: expected shape ({B}, {width}) (batch x {what}), got {tuple(t.shape)}"
            )
        return t

    def _checkpointed(self, mod: ResBlock, x: torch.Tensor, nerr, nm) -> torch.Tensor:
        # Running statistics must not be updated twice: recomputation restores the
        # statistics seen by the original forward, runs, and puts the current ones back.
        stats = [
            b
            for m in mod.modules()
            for n, b in m.named_buffers(recurse=False)
            if n in _RUNNING and b is not None
        ]
        pre = [b.detach().clone() for b in stats]
        calls = [0]

        def run(x_: torch.Tensor, nerr_, nm_) -> torch.Tensor:
            calls[0] += 1
            if calls[0] == 1 or not stats:
                return mod(x_, None, node_err=nerr_, node_mask=nm_)
            cur = [b.detach().clone() for b in stats]
            with torch.no_grad():
                for b, p in zip(stats, pre):
                    b.copy_(p)
            try:
                return mod(x_, None, node_err=nerr_, node_mask=nm_)
            finally:
                with torch.no_grad():
                    for b, c in zip(stats, cur):
                        b.copy_(c)

        return _checkpoint(run, x, nerr, nm, use_reentrant=False)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        node_mask: torch.Tensor | None = None,
        edge_mask: torch.Tensor | None = None,
        ret_edge_out: bool = False,
        e0: torch.Tensor | None = None,
        node_errs: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """Run the network.

        Args:
            x: ``(B, Ni)`` input node values (cast to the parameters' dtype).
            node_mask: ``(B, num_nodes)`` (or ``(1, num_nodes)``) weights/bools over the
                homogeneous nodes; expanded to channels and applied in every block.
            edge_mask: ``(B, E)`` (or ``(E,)``) multiplies the edge features before the
                first block and after every block.
            ret_edge_out: return the final edge features ``(B, E)`` instead.
            e0: ``(B, E)`` added to the initial edge features.
            node_errs: list of ``layers`` entries (``None`` or ``(B, C)`` channel-level /
                ``(B, num_nodes)`` node-level errors added after ``lin_in``).

        Returns:
            ``(B, No)``: per output node, sum of incoming edge features divided by
            ``sqrt(max(in-degree, 1))``; or ``(B, E)`` if ``ret_edge_out``.
        """
        x = self._check_x(x)
        B = x.shape[0]
        dtype = x.dtype
        if node_errs is None:
            node_errs = [None] * self.layers
        elif len(node_errs) != self.layers:
            raise ValueError(
                f"node_errs: expected a list of {self.layers} entries (one per layer), "
                f"got {len(node_errs)}"
            )
        nm = None
        if node_mask is not None:
            node_mask = self._check_batch_tensor(node_mask, "node_mask", self.num_nodes, B, "nodes")
            nm = node_mask.to(device=x.device, dtype=dtype)[:, self.ResBlocks[0].channel_groups]
        if edge_mask is not None:
            edge_mask = self._check_batch_tensor(edge_mask, "edge_mask", self.E, B, "edges")
            edge_mask = edge_mask.to(device=x.device, dtype=dtype)

        x_node = x.new_zeros(B, self.num_nodes).index_copy(1, self._input_idx, x)
        h = node2edge(x_node, self.edge_index)
        if e0 is not None:
            e0 = self._check_batch_tensor(e0, "e0", self.E, B, "edges")
            h = h + e0.to(dtype)
        if edge_mask is not None:
            h = h * edge_mask

        for mod in self.ResBlocks:
            mod.set_node_mask(nm)
        use_ckpt = self.checkpoint and self.training and torch.is_grad_enabled()
        for mod, nerr in zip(self.ResBlocks, node_errs):
            if use_ckpt:
                h = self._checkpointed(mod, h, nerr, nm)
            else:
                h = mod(h, None, node_err=nerr, node_mask=nm)
            if edge_mask is not None:
                h = h * edge_mask

        if self.residual:
            h = h / math.sqrt(self.layers)
        if ret_edge_out:
            return h
        out = h.new_zeros(B, self.num_outputs).index_add(1, self._out_dst, h[:, self._out_pos])
        return out / self._out_deg.to(h.dtype).sqrt()

    # ------------------------------------------------------------------ utilities
    def prune(self, threshold: float = 1e-2, verbose: bool = False) -> int:
        """Remove sparse weights whose max ``|w|`` over all blocks is below ``threshold``.

        The same entries are removed from every block (all blocks share one pattern);
        a shared layer is pruned once. Re-create optimisers afterwards.

        Returns:
            number of entries removed from the ``W_in`` plus the ``W_out`` pattern.
        """
        w1 = torch.stack([m.lin_in.values.detach() for m in self.ResBlocks]).abs().amax(0)
        w2 = torch.stack([m.lin_out.values.detach() for m in self.ResBlocks]).abs().amax(0)
        keep1 = (w1 >= threshold).nonzero(as_tuple=True)[0]
        keep2 = (w2 >= threshold).nonzero(as_tuple=True)[0]
        old_in = self.ResBlocks[0].lin_in.indices
        old_out = self.ResBlocks[0].lin_out.indices
        new_in = old_in[:, keep1].contiguous()
        new_out = old_out[:, keep2].contiguous()
        seen: set[int] = set()
        with plan_cache():  # blocks normally share one pattern: prune and plan it once
            for mod in self.ResBlocks:
                for lin, keep, old, new in (
                    (mod.lin_in, keep1, old_in, new_in),
                    (mod.lin_out, keep2, old_out, new_out),
                ):
                    if id(lin) not in seen:
                        seen.add(id(lin))
                        same = lin.indices is old or torch.equal(lin.indices, old)
                        lin.prune(keep, _new_indices=new if same else None)
        self._B = None
        self._batch_params = None
        n1, n2 = w1.numel() - keep1.numel(), w2.numel() - keep2.numel()
        if verbose:
            print(
                f"GSNN.prune: dropped {n1} W_in and {n2} W_out entries below {threshold:g}; "
                f"{keep1.numel()} and {keep2.numel()} kept"
            )
        return int(n1 + n2)

    def get_node_activations(
        self, x: torch.Tensor, agg: str = "sum", inference: bool = True
    ) -> dict[str, torch.Tensor]:
        """Per function node, the post-block activations (step 8 of the ResBlock forward).

        Args:
            x: ``(B, Ni)`` inputs.
            agg: how to combine the ``L`` blocks: ``'sum'``, ``'mean'``, ``'max'``,
                ``'last'`` -> ``(B, ch)`` per node; ``'all'`` -> ``(B, L*ch)`` per node
                (layer-major).
            inference: run under ``torch.inference_mode``.

        Returns:
            ``{function node name: tensor}`` in function-node order.
        """
        if agg not in _AGGS:
            raise ValueError(
                f"agg: invalid aggregation method {agg!r}; options: {', '.join(_AGGS)}"
            )
        prev = [m._store_activations for m in self.ResBlocks]
        with torch.inference_mode(mode=inference):
            try:
                for m in self.ResBlocks:
                    m._store_activations = True
                self.forward(x)
                acts = torch.stack(
                    [
                        m._last_activation.reshape(m._last_activation.shape[0], -1)
                        for m in self.ResBlocks
                    ]
                )  # (L, B, C)
            finally:
                for m, p in zip(self.ResBlocks, prev):
                    m._store_activations = p
                    for attr in ("_last_activation", "_last_pre_norm_activation"):
                        if hasattr(m, attr):
                            delattr(m, attr)
            if agg == "sum":
                acts = acts.sum(0)
            elif agg == "mean":
                acts = acts.mean(0)
            elif agg == "max":
                acts = acts.max(0).values
            elif agg == "last":
                acts = acts[-1]
            else:
                acts = acts.permute(1, 0, 2)  # (B, L, C)
            cg = self.ResBlocks[0].channel_groups.to(acts.device)
            n_groups = int(cg.max()) + 1
            order = torch.argsort(cg, stable=True)
            counts = torch.bincount(cg, minlength=n_groups).tolist()
            pieces = torch.split(acts.index_select(-1, order), counts, dim=-1)
            B = acts.shape[0]
            return {
                self.homo_names[i]: (p if p.dim() == 2 else p.reshape(B, -1))
                for i, p in enumerate(pieces)
            }
