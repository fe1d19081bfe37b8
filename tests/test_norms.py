"""Group norms against independent formulas (loops over groups), train/eval behaviour."""

from __future__ import annotations

import pytest
import torch

from gsnn_fast.models import norms

UNIFORM = torch.arange(5).repeat_interleave(4)  # 5 groups x 4 channels (GSNN layout)
SCATTERED = torch.tensor([2, 0, 1, 0, 2, 2, 1, 3, 0, 3, 1, 2])  # unequal, interleaved


def groups(cg):
    return [(cg == g).nonzero(as_tuple=True)[0] for g in range(int(cg.max()) + 1)]


def x_for(cg, B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, cg.numel(), generator=g, dtype=torch.float64) * 2 + 0.5).requires_grad_()


def randomize_affine(mod):
    with torch.no_grad():
        for p in mod.parameters():
            p.copy_(torch.randn(p.shape, dtype=p.dtype))


CGS = pytest.mark.parametrize("cg", [UNIFORM, SCATTERED], ids=["uniform", "scattered"])


@CGS
def test_layer_norm_formula_shape_and_detached_stats(cg):
    mod = norms.GroupLayerNorm(cg).double()
    randomize_affine(mod)
    x = x_for(cg)
    out = mod(x.unsqueeze(-1))
    assert out.shape == (6, cg.numel(), 1)
    ref = torch.empty_like(x)
    scale = torch.empty_like(x)
    for g, ix in enumerate(groups(cg)):
        v = x[:, ix]
        mean = v.mean(1, keepdim=True)
        std = v.std(1, unbiased=True, keepdim=True)
        ref[:, ix] = (v - mean) / (std + 0.1) * mod.gamma[g] + mod.beta[g]
        scale[:, ix] = (mod.gamma[g] / (std + 0.1)).detach()
    torch.testing.assert_close(out.squeeze(-1), ref, rtol=0, atol=1e-12)
    w = torch.randn_like(x)
    (gx,) = torch.autograd.grad((out.squeeze(-1) * w).sum(), x)
    torch.testing.assert_close(gx, w * scale, rtol=0, atol=1e-12)  # stats carry no gradient
    assert set(dict(mod.named_parameters())) == {"gamma", "beta"}
    assert set(dict(mod.named_buffers())) == {"channel_groups", "n_channels"}


@CGS
def test_rms_norm_formula_and_gradcheck(cg):
    mod = norms.GroupRMSNorm(cg).double()
    randomize_affine(mod)
    x = x_for(cg)
    out = mod(x)
    assert out.shape == x.shape and mod(x.unsqueeze(-1)).shape == (6, cg.numel(), 1)
    ref = torch.empty_like(x)
    for g, ix in enumerate(groups(cg)):
        v = x[:, ix]
        ref[:, ix] = v / torch.sqrt((v**2).mean(1, keepdim=True) + 1e-6) * mod.gamma[g]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(mod, (x.detach().requires_grad_(),))
    assert norms.GroupRMSNorm(cg, affine=False).gamma is None


@CGS
def test_softmax_norm_formula_and_group_sums(cg):
    mod = norms.SoftmaxGroupNorm(cg).double()
    x = x_for(cg)
    out = mod(x)
    assert out.shape == (6, cg.numel(), 1)
    out = out.squeeze(-1)
    for ix in groups(cg):
        v = x[:, ix]
        e = torch.exp(v - v.max(1, keepdim=True).values)
        torch.testing.assert_close(
            out[:, ix], e / (e.sum(1, keepdim=True) + 1e-8), rtol=0, atol=1e-12
        )
        torch.testing.assert_close(
            out[:, ix].sum(1), torch.ones(6, dtype=torch.float64), atol=1e-7, rtol=0
        )
    assert torch.autograd.gradcheck(lambda t: mod(t), (x.detach().requires_grad_(),))


@CGS
@pytest.mark.parametrize("affine", [False, True])
def test_group_batch_norm_train_eval_and_running_stats(cg, affine):
    mod = norms.GroupBatchNorm(cg, affine=affine).double()
    assert mod.gamma is None if not affine else mod.gamma.shape == (int(cg.max()) + 1,)
    if affine:
        randomize_affine(mod)
    G = int(cg.max()) + 1
    x = x_for(cg, B=8)
    out = mod(x).squeeze(-1)
    ref = torch.empty_like(x)
    bm, bv = torch.empty(G, dtype=torch.float64), torch.empty(G, dtype=torch.float64)
    for g, ix in enumerate(groups(cg)):
        v = x[:, ix]
        bm[g] = v.mean()
        bv[g] = ((v - v.mean()) ** 2).mean()  # population variance over batch and channels
        ref[:, ix] = (v - bm[g]) / torch.sqrt(bv[g] + 1e-5)
        if affine:
            ref[:, ix] = ref[:, ix] * mod.gamma[g] + mod.beta[g]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(mod.running_mean, 0.1 * bm.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(mod.running_var, 0.9 + 0.1 * bv.detach(), rtol=0, atol=1e-12)
    assert int(mod.num_batches_tracked) == 1
    assert mod.running_mean.grad_fn is None and not mod.running_mean.requires_grad
    # gradients flow through the batch statistics in training
    assert torch.autograd.gradcheck(
        lambda t: norms.GroupBatchNorm(cg).double()(t), (x.detach().requires_grad_(),)
    )
    # eval: running statistics, no update
    mod.eval()
    x2 = x_for(cg, B=3, seed=1)
    out2 = mod(x2).squeeze(-1)
    rm, rv = mod.running_mean[cg], mod.running_var[cg]
    ref2 = (x2 - rm) / torch.sqrt(rv + 1e-5)
    if affine:
        ref2 = ref2 * mod.gamma[cg] + mod.beta[cg]
    torch.testing.assert_close(out2, ref2, rtol=0, atol=1e-12)
    assert int(mod.num_batches_tracked) == 1


@CGS
def test_group_ema_norm_updates_then_uses_running_stats(cg):
    mod = norms.GroupEMANorm(cg).double()
    randomize_affine(mod)
    x = x_for(cg, B=8)
    G = int(cg.max()) + 1
    bm = torch.stack([x[:, ix].mean() for ix in groups(cg)]).detach()
    bv = torch.stack([((x[:, ix] - x[:, ix].mean()) ** 2).mean() for ix in groups(cg)]).detach()
    out = mod(x)
    assert out.shape == x.shape
    rm, rv = 0.1 * bm, 0.9 + 0.1 * bv  # updated FIRST, then used (also in training)
    torch.testing.assert_close(mod.running_mean, rm, rtol=0, atol=1e-12)
    ref = (x - rm[cg]) / torch.sqrt(rv[cg] + 1e-5) * mod.gamma[cg] + mod.beta[cg]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # no gradient through the statistics: d out / d x is the constant scale
    (gx,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(
        gx, (mod.gamma[cg] / torch.sqrt(rv[cg] + 1e-5)).expand_as(x).detach()
    )
    mod.eval()
    before = mod.running_mean.clone()
    mod(x)
    assert torch.equal(mod.running_mean, before) and int(mod.num_batches_tracked) == 1
    assert G == mod.running_mean.numel()


def test_channel_ema_norm():
    mod = norms.ChannelEMANorm(7).double()
    randomize_affine(mod)
    x = x_for(torch.arange(7), B=10)
    out = mod(x.unsqueeze(-1))
    assert out.shape == (10, 7, 1)
    rm = 0.1 * x.mean(0).detach()
    rv = 0.9 + 0.1 * x.var(0, unbiased=False).detach()
    torch.testing.assert_close(mod.running_mean, rm, rtol=0, atol=1e-12)
    ref = (x - rm) / torch.sqrt(rv + 1e-5) * mod.gamma + mod.beta
    torch.testing.assert_close(out.squeeze(-1), ref, rtol=0, atol=1e-12)
    mod.eval()
    mod(x)
    assert int(mod.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="7 channels"):
        mod(torch.randn(2, 6, dtype=torch.float64))


def test_uniform_and_scattered_layouts_agree():
    """The reshape fast path and the index_add path give the same numbers."""
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    cg_perm = UNIFORM[perm]
    x = x_for(UNIFORM, B=5)
    for cls in (
        norms.GroupLayerNorm,
        norms.GroupRMSNorm,
        norms.SoftmaxGroupNorm,
        norms.GroupBatchNorm,
        norms.GroupEMANorm,
    ):
        a, b = cls(UNIFORM).double(), cls(cg_perm).double()
        assert a._uniform and not b._uniform
        ya = a(x).reshape(5, 20)
        yb = b(x[:, perm]).reshape(5, 20)
        torch.testing.assert_close(yb, ya[:, perm], rtol=0, atol=1e-12)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        norms.GroupLayerNorm(UNIFORM)(torch.randn(2, 20, 3))
