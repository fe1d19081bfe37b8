"""GSNN model: layout, parameter count, state_dict contract, dense-reference parity."""

from __future__ import annotations

import copy

import pytest
import torch

from gsnn_fast.models import GSNN

from .dense_reference import (
    FF,
    FO,
    IF,
    SEED_KW,
    dense_forward,
    expected_layout,
    random_graph,
    seed_graph,
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make(graph=None, seed: int = 0, **kw) -> GSNN:
    eid, names = graph if graph is not None else seed_graph()
    torch.manual_seed(seed)
    return GSNN(eid, names, **kw)


# --------------------------------------------------------------------- seed model
def test_seed_graph_has_37_function_edges():
    eid, names = seed_graph()
    assert eid[FF].shape == (2, 37)
    assert eid[IF].shape == (2, 25) and eid[FO].shape == (2, 25)
    assert len(names["function"]) == 50


def test_seed_parameter_count_is_13980():
    model = make(**SEED_KW)
    assert n_params(model) == 13_980
    y = model(torch.randn(4, 25))
    assert y.shape == (4, 25)


def test_layout_matches_spec():
    eid, names = seed_graph()
    model = make(**SEED_KW)
    lay = expected_layout(eid, names, 8)
    assert model.edge_index.T.tolist() == [list(e) for e in lay["edges"]]
    assert model.homo_names == lay["homo_names"]
    E, N, Nf, Ni = lay["E"], lay["N"], lay["Nf"], lay["Ni"]
    assert E == 37 + 25 + 25 + 50
    inp = torch.zeros(N, dtype=torch.bool)
    inp[Nf : Nf + Ni] = True
    out = torch.zeros(N, dtype=torch.bool)
    out[Nf + Ni :] = True
    assert torch.equal(model.input_node_mask, inp)
    assert torch.equal(model.output_node_mask, out)
    kinds = torch.tensor([0] * 37 + [1] * 25 + [2] * 25 + [0] * 50)
    assert torch.equal(model.function_edge_mask, kinds == 0)
    assert torch.equal(model.input_edge_mask, kinds == 1)
    assert torch.equal(model.output_edge_mask, kinds == 2)
    blk = model.ResBlocks[0]
    assert blk.lin_in.indices.T.tolist() == [list(e) for e in lay["w_in"]]
    assert blk.lin_out.indices.T.tolist() == [list(e) for e in lay["w_out"]]
    assert blk.lin_in.size == (E, 400) and blk.lin_out.size == (400, E)
    assert torch.equal(blk.channel_groups, torch.arange(50).repeat_interleave(8))


@pytest.mark.parametrize("seed", [1, 2])
def test_layout_random_graphs_and_edge_channels(seed):
    eid, names = random_graph(seed)
    ff_before = eid[FF].clone()
    model = make((eid, names), channels=3, layers=2, edge_channels=2, node_mlp=False)
    assert torch.equal(eid[FF], ff_before), "the caller's edge_index_dict must not be mutated"
    lay = expected_layout(eid, names, 3, True, edge_channels=2)
    assert model.edge_index.T.tolist() == [list(e) for e in lay["edges"]]
    assert model.ResBlocks[0].lin_in.indices.T.tolist() == [list(e) for e in lay["w_in"]]
    assert model.ResBlocks[1].lin_out.indices.T.tolist() == [list(e) for e in lay["w_out"]]


def expected_seed_state_dict() -> dict[str, tuple[int, ...]]:
    """Keys/shapes the pure-torch GSNN registers for the seed config (read from its code:
    GSNN registers output_node_mask, input_node_mask, edge_index, function/input/output
    edge masks; each ResBlock a residual_weight Parameter and a channel_groups buffer;
    each SparseLinear values, bias [M, 1] and an indices buffer; norm 'none' = Identity)."""
    N, E, C, nnz = 100, 137, 400, 896
    sd = {
        "output_node_mask": (N,),
        "input_node_mask": (N,),
        "edge_index": (2, E),
        "function_edge_mask": (E,),
        "input_edge_mask": (E,),
        "output_edge_mask": (E,),
    }
    for i in range(6):
        p = f"ResBlocks.{i}."
        sd[p + "residual_weight"] = ()
        sd[p + "channel_groups"] = (C,)
        sd[p + "lin_in.values"] = (nnz,)
        sd[p + "lin_in.bias"] = (C, 1)
        sd[p + "lin_in.indices"] = (2, nnz)
        sd[p + "lin_out.values"] = (nnz,)
        sd[p + "lin_out.bias"] = (E, 1)
        sd[p + "lin_out.indices"] = (2, nnz)
    return sd


def test_state_dict_keys_and_shapes_match_reference():
    model = make(**SEED_KW)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_seed_state_dict()


@pytest.mark.parametrize(
    "norm,extra",
    [
        ("layer", {"norm.gamma": (50,), "norm.beta": (50,), "norm.channel_groups": (400,),
                   "norm.n_channels": (50,)}),
        ("rms", {"norm.gamma": (50,), "norm.channel_groups": (400,), "norm.n_channels": (50,)}),
        ("softmax", {"norm.channel_groups": (400,), "norm.n_channels": (50,)}),
        ("groupbatch", {"norm.gamma": (50,), "norm.beta": (50,), "norm.channel_groups": (400,),
                        "norm.running_mean": (50,), "norm.running_var": (50,),
                        "norm.num_batches_tracked": ()}),
        ("batch", {"norm.weight": (400,), "norm.bias": (400,), "norm.running_mean": (400,),
                   "norm.running_var": (400,), "norm.num_batches_tracked": ()}),
        ("edgebatch", {"_edge_norm.weight": (137,), "_edge_norm.bias": (137,),
                       "_edge_norm.running_mean": (137,), "_edge_norm.running_var": (137,),
                       "_edge_norm.num_batches_tracked": ()}),
        ("channelema", {"_edge_norm.gamma": (137,), "_edge_norm.beta": (137,),
                        "_edge_norm.running_mean": (137,), "_edge_norm.running_var": (137,),
                        "_edge_norm.num_batches_tracked": (), "norm.gamma": (400,),
                        "norm.beta": (400,), "norm.running_mean": (400,),
                        "norm.running_var": (400,), "norm.num_batches_tracked": ()}),
    ],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:norm='softmax'")
def test_state_dict_norm_and_mlp_keys(norm, extra):
    kw = dict(SEED_KW, norm=norm, layers=2, node_mlp=True, node_mlp_hidden=16)
    model = make(**kw)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    p = "ResBlocks.1."
    for k, shape in extra.items():
        assert got[p + k] == shape, k
    mlp = {
        "mlp.mlp.0.weight": (16, 8),
        "mlp.mlp.0.bias": (16,),
        "mlp.mlp.1.weight": (16,),
        "mlp.mlp.1.bias": (16,),
        "mlp.mlp.4.weight": (8, 16),
        "mlp.mlp.4.bias": (8,),
    }
    for k, shape in mlp.items():
        assert got[p + k] == shape, k
    n_block = sum(1 for k in got if k.startswith(p))
    assert n_block == 8 + len(extra) + len(mlp)


def test_state_dict_roundtrip_and_pruned_checkpoint_loads():
    src = make(seed=1, **SEED_KW).eval()
    dst = make(seed=2, **SEED_KW).eval()
    x = torch.randn(5, 25)
    assert not torch.allclose(src(x), dst(x))
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    # a checkpoint of a pruned model (fewer entries) loads into a fresh model
    with torch.no_grad():
        for blk in src.ResBlocks:
            blk.lin_in.values[::3] = 0.0
    src.prune(threshold=1e-12)
    fresh = make(seed=3, **SEED_KW).eval()
    fresh.load_state_dict(src.state_dict())
    assert fresh.ResBlocks[0].lin_in.nnz == src.ResBlocks[0].lin_in.nnz < 896
    torch.testing.assert_close(fresh(x), src(x), rtol=0, atol=0)


# --------------------------------------------------------------------- dense parity
CONFIGS = [
    dict(norm="none", node_mlp=False, share_layers=False),
    dict(norm="none", node_mlp=True, share_layers=True),
    dict(norm="layer", node_mlp=False, share_layers=True),
    dict(norm="layer", node_mlp=True, share_layers=False, norm_first=False),
    dict(norm="rms", node_mlp=False, share_layers=False),
    dict(norm="batch", node_mlp=False, share_layers=True),
    dict(norm="groupbatch", node_mlp=True, share_layers=False),
    dict(norm="softmax", node_mlp=False, share_layers=False, norm_first=False),
    dict(norm="ema", node_mlp=False, share_layers=True),
    dict(norm="channelema", node_mlp=False, share_layers=False),
    dict(norm="edgebatch", node_mlp=False, share_layers=False),
    dict(norm="batch++", node_mlp=True, share_layers=True),
    dict(norm="none", node_mlp=False, share_layers=False, residual=False, bias=False),
    dict(norm="layer", node_mlp=False, share_layers=False, nonlin=torch.nn.Tanh),
    dict(norm="rms", node_mlp=False, share_layers=False, add_function_self_edges=False),
    dict(norm="groupbatch", node_mlp=False, share_layers=True, edge_channels=2),
]


def _grads(out, w, leaves):
    return torch.autograd.grad((out * w).sum(), leaves, allow_unused=True)


def _perturb(model):
    """Move parameters away from their init (affine ones/zeros, zero biases)."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_dense_reference_float64(cfg, train):
    graph = seed_graph()
    kw = dict(channels=4, layers=3, dropout=0.0, node_mlp_hidden=6)
    kw.update(cfg)
    model = make(graph, seed=0, **kw).double()
    _perturb(model)
    model.train(train)
    if not train:  # give the running statistics non-trivial values first
        model.train()
        with torch.no_grad():
            model(torch.randn(16, 25, dtype=torch.float64))
        model.eval()
    x = torch.randn(7, 25, dtype=torch.float64, requires_grad=True)
    leaves = [x] + list(model.parameters())
    out = model(x)
    w = torch.randn_like(out)
    g_model = _grads(out, w, leaves)
    model_eval_state = model.training
    ref = dense_forward(model, *graph, x)  # read AFTER the model's running-stat update
    assert model.training == model_eval_state
    g_ref = _grads(ref, w, leaves)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    for a, b in zip(g_model, g_ref):
        if b is None:
            assert a is None or torch.count_nonzero(a) == 0
            continue
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_matches_dense_reference_with_masks_e0_node_errs_random_graph():
    graph = random_graph(7)
    model = make(graph, seed=0, channels=3, layers=3, norm="layer", node_mlp=False).double()
    _perturb(model)
    B, E, N, C = 6, model.E, model.num_nodes, 3 * 9
    x = torch.randn(B, 6, dtype=torch.float64, requires_grad=True)
    node_mask = (torch.rand(B, N) > 0.3).double()
    edge_mask = (torch.rand(B, E) > 0.2).double()
    e0 = torch.randn(B, E, dtype=torch.float64)
    node_errs = [
        torch.randn(B, C, dtype=torch.float64),
        None,
        torch.randn(B, C, dtype=torch.float64),
    ]
    kw = dict(node_mask=node_mask, edge_mask=edge_mask, e0=e0, node_errs=node_errs)
    leaves = [x] + list(model.parameters())
    for ret_edge_out in (False, True):
        out = model(x, ret_edge_out=ret_edge_out, **kw)
        ref = dense_forward(model, *graph, x, ret_edge_out=ret_edge_out, **kw)
        assert out.shape == ((B, E) if ret_edge_out else (B, 5))
        w = torch.randn_like(out)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
        for a, b in zip(_grads(out, w, leaves), _grads(ref, w, leaves)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_float32_close_to_float64_reference():
    graph = seed_graph()
    model = make(graph, seed=0, channels=8, layers=4, norm="layer", node_mlp=True).eval()
    x = torch.randn(9, 25)
    out = model(x)
    assert out.dtype == torch.float32
    ref = dense_forward(copy.deepcopy(model).double(), *graph, x.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
