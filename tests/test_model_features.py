"""GSNN features: checkpointing, sharing, masks, e0/node_errs, prune, activations,
capture contract, argument errors."""

from __future__ import annotations

import copy

import pytest
import torch

from gsnn_fast.models import GSNN, ResBlock, edge2node

from .dense_reference import FF, FO, IF, seed_graph
from .test_model import SEED_KW, make, n_params


def _grads(model, x, out):
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    leaves = [x] + list(model.parameters())
    return torch.autograd.grad((out * w).sum(), leaves)


# ------------------------------------------------------------------ checkpointing
@pytest.mark.parametrize("norm", ["groupbatch", "ema", "batch++", "channelema"])
def test_checkpoint_same_outputs_grads_and_running_stats(norm):
    kw = dict(channels=4, layers=3, dropout=0.3, norm=norm, node_mlp=True, node_mlp_hidden=8)
    a = make(seed=0, checkpoint=False, **kw).double().train()
    b = copy.deepcopy(a)
    b.checkpoint = True
    x = torch.randn(8, 25, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    ya = a(x)
    ga = _grads(a, x, ya)
    torch.manual_seed(5)
    yb = b(x)
    gb = _grads(b, x, yb)
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-12)
    # recomputation must not update the running statistics a second time
    for (na, ba), (nb, bb) in zip(a.named_buffers(), b.named_buffers()):
        assert na == nb
        torch.testing.assert_close(ba, bb, rtol=0, atol=1e-14, msg=na)
    nbt = [v for k, v in b.state_dict().items() if k.endswith("num_batches_tracked")]
    assert nbt and all(int(v) == 1 for v in nbt)


def test_checkpoint_is_only_used_in_training():
    model = make(seed=0, checkpoint=True, channels=4, layers=2, norm="layer").eval()
    x = torch.randn(3, 25, requires_grad=True)
    out = model(x)
    # eval forward builds an ordinary graph: the captured activations require grad
    assert out.requires_grad and out.grad_fn is not None


# ------------------------------------------------------------------ share_layers
def test_share_layers_parameter_counts():
    kw = dict(SEED_KW)
    unshared = make(**kw)
    shared = make(**dict(kw, share_layers=True))
    per_lin = 896 + 400 + 896 + 137
    assert n_params(unshared) == 6 * (per_lin + 1) == 13_980
    assert n_params(shared) == per_lin + 6
    assert shared.ResBlocks[0].lin_in is shared.ResBlocks[5].lin_in
    assert shared.ResBlocks[0].residual_weight is not shared.ResBlocks[1].residual_weight
    # state_dict still lists the shared layer under every block (as torch does)
    assert "ResBlocks.5.lin_in.values" in shared.state_dict()


# ------------------------------------------------------------------ masks, e0, node_errs
def test_node_mask_all_ones_is_identity_and_zero_node_freezes_its_output():
    model = make(seed=0, channels=4, layers=3, norm="none", node_mlp=False).eval()
    x = torch.randn(10, 25)
    base = model(x)
    ones = torch.ones(10, model.num_nodes)
    torch.testing.assert_close(model(x, node_mask=ones), base, rtol=0, atol=0)
    torch.testing.assert_close(model(x, node_mask=ones.bool()), base, rtol=0, atol=0)
    mask = ones.clone()
    mask[:, 49] = 0  # sink f49, sole parent of o24
    out = model(x, node_mask=mask)
    assert base[:, 24].std() > 1e-4
    assert out[:, 24].std() < 1e-6  # only biases reach o24 now
    torch.testing.assert_close(out[:, :24], base[:, :24])  # f49 feeds only o24


def test_edge_mask_cuts_an_input_and_ones_is_identity():
    model = make(seed=0, channels=4, layers=3, norm="layer", node_mlp=False).eval()
    x = torch.randn(6, 25, requires_grad=True)
    base = model(x)
    em = torch.ones(6, model.E)
    torch.testing.assert_close(model(x, edge_mask=em), base, rtol=0, atol=0)
    # input edge in3 -> f3 sits at position 37 + 3
    assert model.edge_index[0, 40].item() == 50 + 3
    em[:, 40] = 0
    out = model(x, edge_mask=em)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.all(g[:, 3] == 0)
    assert torch.all(g[:, 4] != 0)
    em1 = em[0]  # (E,) broadcasts over the batch
    torch.testing.assert_close(model(x, edge_mask=em1), out)


def test_e0_on_input_edge_equals_shifting_the_input():
    model = make(seed=0, channels=4, layers=2, norm="none", node_mlp=False).eval()
    x = torch.randn(5, 25)
    torch.testing.assert_close(model(x, e0=torch.zeros(5, model.E)), model(x), rtol=0, atol=0)
    e0 = torch.zeros(5, model.E)
    e0[:, 37 + 7] = 0.5  # input edge of in7
    x2 = x.clone()
    x2[:, 7] += 0.5
    torch.testing.assert_close(model(x, e0=e0), model(x2))


def test_node_errs_channel_and_node_level():
    model = make(seed=0, channels=4, layers=3, norm="none", node_mlp=False).eval()
    x = torch.randn(4, 25)
    base = model(x)
    zeros = [torch.zeros(4, 200)] * 3
    torch.testing.assert_close(model(x, node_errs=zeros), base, rtol=0, atol=0)
    node_level = torch.zeros(4, model.num_nodes)
    node_level[:, 30] = 1.0
    chan_level = node_level[:, :50].repeat_interleave(4, dim=1)
    errs_n = [None, node_level, None]
    errs_c = [None, chan_level, None]
    out_n, out_c = model(x, node_errs=errs_n), model(x, node_errs=errs_c)
    torch.testing.assert_close(out_n, out_c, rtol=0, atol=0)
    assert not torch.allclose(out_c, base)
    with pytest.raises(ValueError, match="node_errs"):
        model(x, node_errs=[None, None])


def test_ret_edge_out_shape_and_aggregation():
    model = make(seed=0, channels=4, layers=2, norm="none", node_mlp=False).eval()
    x = torch.randn(3, 25)
    h = model(x, ret_edge_out=True)
    assert h.shape == (3, model.E)
    y = model(x)
    # each output has in-degree 1 in the seed graph: y = edge feature of its edge
    pos = model.output_edge_mask.nonzero(as_tuple=True)[0]
    dst = model.edge_index[1, pos] - 75
    torch.testing.assert_close(y[:, dst], h[:, pos], rtol=0, atol=0)
    full = edge2node(h, model.edge_index, model.output_node_mask)
    assert full.shape == (3, model.num_nodes)
    torch.testing.assert_close(full[:, model.output_node_mask], y, rtol=0, atol=0)


def test_output_with_two_parents_divided_by_sqrt_degree():
    eid, names = seed_graph()
    eid = dict(eid)
    eid[FO] = torch.cat((eid[FO], torch.tensor([[0], [0]])), dim=1)  # f0 -> o0 too
    model = make((eid, names), seed=0, channels=2, layers=2, norm="none", node_mlp=False)
    x = torch.randn(3, 25)
    h = model(x, ret_edge_out=True)
    pos = ((model.edge_index[1] == 75) & model.output_edge_mask).nonzero(as_tuple=True)[0]
    assert pos.numel() == 2
    torch.testing.assert_close(model(x)[:, 0], h[:, pos].sum(1) / 2**0.5)


# ------------------------------------------------------------------ prune
@pytest.mark.parametrize("share", [False, True])
def test_prune_removes_small_weights_and_keeps_outputs(share):
    model = make(seed=0, channels=4, layers=3, norm="layer", share_layers=share).eval()
    nnz_in, nnz_out = model.ResBlocks[0].lin_in.nnz, model.ResBlocks[0].lin_out.nnz
    small_in = torch.zeros(nnz_in, dtype=torch.bool)
    small_in[::4] = True
    small_out = torch.zeros(nnz_out, dtype=torch.bool)
    small_out[1::5] = True
    with torch.no_grad():
        for blk in model.ResBlocks:
            for lin in (blk.lin_in, blk.lin_out):  # keep the other weights clear of 1e-3
                v = lin.values
                v.copy_(torch.where(v >= 0, 1.0, -1.0) * v.abs().clamp_min(1e-2))
            blk.lin_in.values[small_in] = 1e-4 * torch.sign(blk.lin_in.values[small_in])
            blk.lin_out.values[small_out] = 0.0
    x = torch.randn(6, 25)
    before = model(x)
    removed = model.prune(threshold=1e-3)
    assert removed == int(small_in.sum() + small_out.sum())
    for blk in model.ResBlocks:
        assert blk.lin_in.nnz == nnz_in - int(small_in.sum())
        assert blk.lin_out.nnz == nnz_out - int(small_out.sum())
    # kept entries: max |w| over the blocks reaches the threshold
    w_max = torch.stack([blk.lin_in.values.detach().abs() for blk in model.ResBlocks]).amax(0)
    assert w_max.min() >= 1e-3
    torch.testing.assert_close(model(x), before, rtol=1e-3, atol=1e-3)
    # exactly-zero weights: pruning them changes nothing at all
    assert model.prune(threshold=0.0) == 0


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("node_mlp", [False, True])
def test_get_node_activations_every_agg(node_mlp):
    model = make(seed=0, channels=4, layers=3, norm="layer", node_mlp=node_mlp).eval()
    x = torch.randn(5, 25)
    # manual capture
    for m in model.ResBlocks:
        m._store_activations = True
    model(x)
    acts = torch.stack([m._last_activation.reshape(5, -1) for m in model.ResBlocks]).detach()
    for m in model.ResBlocks:
        m._store_activations = False
    expect = {
        "sum": acts.sum(0),
        "mean": acts.mean(0),
        "max": acts.max(0).values,
        "last": acts[-1],
    }
    names = model.homo_names[:50]
    for agg, full in expect.items():
        d = model.get_node_activations(x, agg=agg)
        assert list(d) == names
        assert d["f7"].shape == (5, 4)
        torch.testing.assert_close(d["f7"], full[:, 28:32])
    d = model.get_node_activations(x, agg="all", inference=False)
    assert d["f7"].shape == (5, 12)
    torch.testing.assert_close(d["f7"], acts[:, :, 28:32].permute(1, 0, 2).reshape(5, -1))
    for m in model.ResBlocks:
        assert m._store_activations is False
        assert not hasattr(m, "_last_activation")
        assert not hasattr(m, "_last_pre_norm_activation")
    with pytest.raises(ValueError, match="agg"):
        model.get_node_activations(x, agg="median")


# ------------------------------------------------------------------ capture contract
@pytest.mark.parametrize("node_mlp", [False, True])
def test_capture_flags_and_shapes(node_mlp):
    model = make(seed=0, channels=4, layers=2, norm="layer", node_mlp=node_mlp).eval()
    C = 200
    x = torch.randn(3, 25)
    model(x)
    for m in model.ResBlocks:
        assert m._store_activations is False
        assert not hasattr(m, "_last_activation")
        assert not hasattr(m, "_last_pre_norm_activation")
    for m in model.ResBlocks:
        m._store_activations = True
    out = model(x)
    for m in model.ResBlocks:
        pre, post = m._last_pre_norm_activation, m._last_activation
        assert pre.shape == (3, C, 1)  # lin_in output, as in the pure-torch library
        assert post.shape == ((3, C) if node_mlp else (3, C, 1))
        assert pre.requires_grad
        pre.retain_grad()
    out.sum().backward()
    for m in model.ResBlocks:
        assert m._last_pre_norm_activation.grad.shape == (3, C, 1)
    assert torch.count_nonzero(model.ResBlocks[0]._last_pre_norm_activation.grad) > 0
    assert model.ResBlocks[0].channel_groups.shape == (C,)


def test_pre_norm_capture_is_lin_in_output():
    model = make(seed=0, channels=4, layers=1, norm="layer", node_mlp=False).eval()
    blk = model.ResBlocks[0]
    blk._store_activations = True
    x = torch.randn(3, 25)
    model(x)
    h0 = model.ResBlocks[0].lin_in(torch.zeros(3, model.E))  # bias only
    edge_in = torch.zeros(3, model.num_nodes)
    edge_in[:, 50:75] = x
    z = blk.lin_in(edge_in[:, model.edge_index[0]])
    torch.testing.assert_close(blk._last_pre_norm_activation, z)
    assert h0.shape == z.shape
    torch.testing.assert_close(blk._last_activation, torch.nn.functional.elu(blk.norm(z)))


# ------------------------------------------------------------------ errors
def test_bad_arguments_raise_with_argument_named():
    eid, names = seed_graph()
    with pytest.raises(ValueError, match=r"norm.*layer.*batch.*none"):
        GSNN(eid, names, channels=2, layers=1, norm="group")
    with pytest.raises(ValueError, match=r"init.*degree_normalized.*zeros"):
        GSNN(eid, names, channels=2, layers=1, init="orthogonal")
    with pytest.raises(NotImplementedError, match="node_attn"):
        GSNN(eid, names, channels=2, layers=1, node_attn=True)
    with pytest.raises(ValueError, match="channels"):
        GSNN(eid, names, channels=0, layers=1)
    with pytest.raises(ValueError, match="layers"):
        GSNN(eid, names, channels=2, layers=0)
    bad = dict(eid)
    bad[FF] = torch.tensor([[0], [50]])
    with pytest.raises(ValueError, match="edge_index_dict"):
        GSNN(bad, names, channels=2, layers=1)
    missing = {k: v for k, v in eid.items() if k != IF}
    with pytest.raises(ValueError, match="edge_index_dict"):
        GSNN(missing, names, channels=2, layers=1)
    with pytest.raises(ValueError, match="edge_weight_dict"):
        GSNN(eid, names, channels=2, layers=1, edge_weight_dict={FF: torch.ones(3)})

    model = GSNN(eid, names, channels=2, layers=2, node_mlp=False)
    x = torch.randn(4, 25)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 25\)"):
        model(torch.randn(4, 24))
    with pytest.raises(ValueError, match="node_mask"):
        model(x, node_mask=torch.ones(4, 99))
    with pytest.raises(ValueError, match="node_mask"):
        model(x, node_mask=torch.ones(3, 100))
    with pytest.raises(ValueError, match="edge_mask"):
        model(x, edge_mask=torch.ones(4, model.E + 1))
    with pytest.raises(ValueError, match="e0"):
        model(x, e0=torch.ones(4, 3))
    with pytest.raises(ValueError, match="node_errs"):
        model(x, node_errs=[None])


def test_resblock_rejects_unknown_norm_and_node_attn():
    model = make(seed=0, channels=2, layers=1)
    params = model.indices_params
    with pytest.raises(ValueError, match=r"norm.*options"):
        ResBlock(True, torch.nn.ELU, params, norm="bogus")
    with pytest.raises(NotImplementedError, match="node_attn"):
        ResBlock(True, torch.nn.ELU, params, node_attn=True)


def test_softmax_norm_first_warns():
    eid, names = seed_graph()
    with pytest.warns(UserWarning, match="softmax"):
        GSNN(eid, names, channels=2, layers=1, norm="softmax", norm_first=True)


def test_edge_weight_dict_stacked_like_reference():
    eid, names = seed_graph()
    ew = {FF: torch.arange(37.0), IF: -torch.ones(25), FO: torch.full((25,), 2.0)}
    model = GSNN(eid, names, channels=2, layers=1, edge_weight_dict=ew, edge_channels=2)
    assert model.edge_weights.shape == (2 * 37 + 25 + 25,)
    torch.testing.assert_close(model.edge_weights[:74], torch.arange(37.0).repeat(2))
    torch.testing.assert_close(model.edge_weights[74:99], -torch.ones(25))


def test_attributes_inferers_rely_on():
    model = make(seed=0, channels=3, layers=2, norm="batch", checkpoint=False)
    assert isinstance(model.ResBlocks, torch.nn.ModuleList)
    assert model.checkpoint is False and model.norm == "batch"
    assert model.input_node_mask.dtype == torch.bool and model.input_node_mask.sum() == 25
    assert model.output_node_mask.sum() == 25
    assert model.ResBlocks[0].channel_groups.dtype == torch.long


def test_blocks_share_one_csr_plan_after_build_and_prune():
    model = make(seed=0, channels=3, layers=3, norm="none", share_layers=False)
    a, b = model.ResBlocks[0].lin_in, model.ResBlocks[2].lin_in
    assert a is not b and a.values is not b.values
    assert a._plan_out_perm.data_ptr() == b._plan_out_perm.data_ptr()
    with torch.no_grad():
        for blk in model.ResBlocks:
            blk.lin_in.values[:10] = 0.0
    model.prune(threshold=1e-12)
    a, b = model.ResBlocks[0].lin_in, model.ResBlocks[2].lin_in
    assert a.nnz == b.nnz < 336
    assert a._plan_out_perm.data_ptr() == b._plan_out_perm.data_ptr()
    assert torch.equal(a.indices, b.indices)
