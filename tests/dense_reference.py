"""Independent dense reference of the GSNN network, for tests.

Nothing here uses ``gsnn_fast``'s sparse code path: the homogeneous layout and the
W_in / W_out entry order are re-derived from gsnn_fast.models.GSNN's documented layout
with plain Python loops,
the weights are placed into DENSE masked matrices, and every norm is written with
plain tensor ops on a ``(B, Nf, ch)`` view. The model is only read for its
parameter tensors (so autograd gives gradients w.r.t. the very same leaves), its
running-statistics buffers and its configuration flags.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IF = ("input", "to", "function")
FF = ("function", "to", "function")
FO = ("function", "to", "output")

#: The seed notebook's GSNN (besides its graph): 8 channels, 6 blocks, ELU, dropout 0.2,
#: no norm, no node MLP. Tests and benchmarks build their seed-sized models from it.
SEED_KW = dict(
    channels=8,
    layers=6,
    share_layers=False,
    bias=True,
    add_function_self_edges=True,
    norm="none",
    dropout=0.2,
    nonlin=torch.nn.ELU,
    node_mlp=False,
    checkpoint=False,
)


# --------------------------------------------------------------------------- graphs
def seed_graph() -> tuple[dict, dict]:
    """Graph of the seed notebook, with the 35 held-out edges removed.

    25 inputs in0..in24, function nodes f0..f49 (tier A f0..f24 fed by in_i; tier B
    f25..f48 with parents f_k, f_{k+1}; sink f49 with parents all of tier B), outputs
    o0..o24 (f{25+k} -> o_k, f49 -> o24). Removed: (f_k, f_{25+k}) for k = 1..23 and
    (f_{25+k}, f49) for k = 0, 2, ..., 22 -> 37 function->function edges remain.
    """
    inputs = [f"in{i}" for i in range(25)]
    funcs = [f"f{i}" for i in range(50)]
    outputs = [f"o{i}" for i in range(25)]
    ie = [(i, i) for i in range(25)]
    ff = []
    for k in range(24):
        ff += [(k, 25 + k), (k + 1, 25 + k)]
    ff += [(25 + k, 49) for k in range(24)]
    held = {(k, 25 + k) for k in range(1, 24)} | {(25 + k, 49) for k in range(0, 23, 2)}
    assert len(held) == 35
    ff = [e for e in ff if e not in held]
    fo = [(25 + k, k) for k in range(24)] + [(49, 24)]

    def t(pairs):
        return torch.tensor(pairs, dtype=torch.long).T.contiguous()

    return (
        {IF: t(ie), FF: t(ff), FO: t(fo)},
        {"input": inputs, "function": funcs, "output": outputs},
    )


def random_graph(seed: int, Ni: int = 6, Nf: int = 9, No: int = 5, p: float = 0.25):
    """Small random graph; output 0 gets two parents, the last output none."""
    g = torch.Generator().manual_seed(seed)
    ie = [(i, int(torch.randint(0, Nf, (1,), generator=g))) for i in range(Ni)]
    ie += [(0, Nf - 1)]
    ff = [
        (i, j)
        for i in range(Nf)
        for j in range(Nf)
        if i != j and float(torch.rand(1, generator=g)) < p
    ]
    fo = [(0, 0), (1, 0)] + [
        (int(torch.randint(0, Nf, (1,), generator=g)), o) for o in range(1, No - 1)
    ]

    def t(pairs):
        if not pairs:
            return torch.zeros(2, 0, dtype=torch.long)
        return torch.tensor(pairs, dtype=torch.long).T.contiguous()

    names = {
        "input": [f"i{k}" for k in range(Ni)],
        "function": [f"f{k}" for k in range(Nf)],
        "output": [f"o{k}" for k in range(No)],
    }
    return {IF: t(ie), FF: t(ff), FO: t(fo)}, names


# --------------------------------------------------------------------------- layout
def expected_layout(
    edge_index_dict: dict,
    node_names_dict: dict,
    channels: int,
    add_function_self_edges: bool = True,
    edge_channels: int = 1,
) -> dict:
    """The homogeneous GSNN layout (edge order, W_in / W_out entries), with Python loops."""
    Ni = len(node_names_dict["input"])
    Nf = len(node_names_dict["function"])
    No = len(node_names_dict["output"])
    edges = []
    for _ in range(edge_channels):
        edges += [(int(s), int(d)) for s, d in edge_index_dict[FF].T.tolist()]
    edges += [(int(s) + Nf, int(d)) for s, d in edge_index_dict[IF].T.tolist()]
    edges += [(int(s), int(d) + Nf + Ni) for s, d in edge_index_dict[FO].T.tolist()]
    if add_function_self_edges:
        edges += [(n, n) for n in range(Nf)]
    w_in = []
    for e, (_, d) in enumerate(edges):
        if d < Nf:
            for k in range(channels):
                w_in.append((e, d * channels + k))
    w_out = []
    for n in range(Nf):
        for k in range(channels):
            for e, (s, _) in enumerate(edges):
                if s == n:
                    w_out.append((n * channels + k, e))
    return {
        "edges": edges,
        "w_in": w_in,
        "w_out": w_out,
        "Ni": Ni,
        "Nf": Nf,
        "No": No,
        "N": Ni + Nf + No,
        "E": len(edges),
        "C": Nf * channels,
        "homo_names": list(node_names_dict["function"])
        + list(node_names_dict["input"])
        + list(node_names_dict["output"]),
    }


def _dense(entries, values, shape):
    rows = torch.tensor([r for r, _ in entries], dtype=torch.long)
    cols = torch.tensor([c for _, c in entries], dtype=torch.long)
    W = values.new_zeros(shape)
    return W.index_put((rows, cols), values)


# --------------------------------------------------------------------------- network
def _norm(blk, h, kind: str, Nf: int, ch: int, training: bool):
    """Node-channel norm on h (B, C) with plain ops."""
    B = h.shape[0]
    if kind in ("none", "edgebatch"):
        return h
    if kind == "layer":
        v = h.reshape(B, Nf, ch)
        mean = v.mean(-1, keepdim=True).detach()
        std = v.std(-1, unbiased=True, keepdim=True).detach()
        out = (v - mean) / (std + 0.1)
        out = out * blk.norm.gamma.view(1, Nf, 1) + blk.norm.beta.view(1, Nf, 1)
        return out.reshape(B, -1)
    if kind == "rms":
        v = h.reshape(B, Nf, ch)
        out = v / torch.sqrt((v * v).mean(-1, keepdim=True) + 1e-6)
        return (out * blk.norm.gamma.view(1, Nf, 1)).reshape(B, -1)
    if kind == "softmax":
        v = h.reshape(B, Nf, ch)
        e = torch.exp(v - v.max(-1, keepdim=True).values)
        return (e / (e.sum(-1, keepdim=True) + 1e-8)).reshape(B, -1)
    if kind in ("batch", "batch++"):
        return _batch_norm(blk.norm, h, training)
    if kind in ("groupbatch", "ema"):
        n = blk.norm
        v = h.reshape(B, Nf, ch)
        if kind == "groupbatch" and training:
            mean = v.mean(dim=(0, 2))
            var = ((v - mean.view(1, Nf, 1)) ** 2).mean(dim=(0, 2))
        else:  # running statistics (ema: always; read AFTER the model's own update)
            mean, var = n.running_mean, n.running_var
        out = (v - mean.view(1, Nf, 1)) / torch.sqrt(var.view(1, Nf, 1) + 1e-5)
        if n.gamma is not None:
            out = out * n.gamma.view(1, Nf, 1) + n.beta.view(1, Nf, 1)
        return out.reshape(B, -1)
    if kind == "channelema":
        return _channel_ema(blk.norm, h)
    raise ValueError(kind)


def _batch_norm(bn, x, training: bool):
    """BatchNorm1d(eps=1e-3) written out: batch statistics in training, else running."""
    if training:
        mean, var = x.mean(0), x.var(0, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    return (x - mean) / torch.sqrt(var + 1e-3) * bn.weight + bn.bias


def _channel_ema(n, x):
    """ChannelEMANorm written out: the running statistics (read after the update)."""
    return (x - n.running_mean) / torch.sqrt(n.running_var + 1e-5) * n.gamma + n.beta


def _edge_norm(blk, x, kind: str, training: bool):
    if kind in ("edgebatch", "batch++"):
        return _batch_norm(blk._edge_norm, x, training)
    if kind == "channelema":
        return _channel_ema(blk._edge_norm, x)
    return x


def dense_forward(
    model,
    edge_index_dict: dict,
    node_names_dict: dict,
    x: torch.Tensor,
    node_mask: torch.Tensor | None = None,
    edge_mask: torch.Tensor | None = None,
    e0: torch.Tensor | None = None,
    node_errs: list | None = None,
    ret_edge_out: bool = False,
) -> torch.Tensor:
    """Dense re-implementation of ``GSNN.forward`` (dropout must be inactive)."""
    ch = model.channels
    lay = expected_layout(
        edge_index_dict,
        node_names_dict,
        ch,
        model.add_function_self_edges,
        model.edge_channels,
    )
    Nf, E, C, Ni = lay["Nf"], lay["E"], lay["C"], lay["Ni"]
    training = model.training
    kind = model.norm
    B = x.shape[0]
    edges = lay["edges"]

    # input scatter: edge e from input node i carries x[:, i - Nf]
    S = x.new_zeros(Ni, E)
    for e, (s, _) in enumerate(edges):
        if Nf <= s < Nf + Ni:
            S[s - Nf, e] = 1.0
    h = x @ S
    if e0 is not None:
        h = h + e0
    if edge_mask is not None:
        h = h * edge_mask
    cmask = None
    if node_mask is not None:
        cmask = node_mask[:, torch.arange(C) // ch]

    for li, blk in enumerate(model.ResBlocks):
        W_in = _dense(lay["w_in"], blk.lin_in.values, (E, C))
        W_out = _dense(lay["w_out"], blk.lin_out.values, (C, E))
        inp = _edge_norm(blk, h, kind, training)
        z = inp @ W_in
        if blk.lin_in.bias is not None:
            z = z + blk.lin_in.bias.view(1, C)
        if node_errs is not None and node_errs[li] is not None:
            z = z + node_errs[li]
        nl = model.nonlin()
        if model.norm_first:
            a = nl(_norm(blk, z, kind, Nf, ch, training))
        else:
            a = _norm(blk, nl(z), kind, Nf, ch, training)
        if model.node_mlp:
            seq = blk.mlp.mlp
            v = a.reshape(B, Nf, ch)
            v = F.linear(v, seq[0].weight, seq[0].bias)
            v = F.layer_norm(v, (v.shape[-1],), seq[1].weight, seq[1].bias, eps=seq[1].eps)
            v = nl(v)
            v = F.linear(v, seq[4].weight, seq[4].bias)
            a = v.reshape(B, C)
        if cmask is not None:
            a = a * cmask
        out = a @ W_out
        if blk.lin_out.bias is not None:
            out = out + blk.lin_out.bias.view(1, E)
        if model.residual:
            out = out + torch.relu(blk.residual_weight) * h
        h = out
        if edge_mask is not None:
            h = h * edge_mask
    if model.residual:
        h = h / math.sqrt(len(model.ResBlocks))
    if ret_edge_out:
        return h
    No = lay["No"]
    deg = [0] * No
    for _, d in edges:
        if d >= Nf + Ni:
            deg[d - Nf - Ni] += 1
    A = x.new_zeros(E, No)
    for e, (_, d) in enumerate(edges):
        if d >= Nf + Ni:
            o = d - Nf - Ni
            A[e, o] = 1.0 / math.sqrt(max(deg[o], 1))
    return h @ A
