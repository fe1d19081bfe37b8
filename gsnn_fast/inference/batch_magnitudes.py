"""Per-node magnitudes of one batch for ``MagnitudeEdgeInferer.fit``.

One batch ``(x, y)`` goes through the model with capture switched on; the loss's
gradients with respect to the captured activations come from ``torch.autograd.grad``
(no parameter's ``.grad`` is touched); activations and gradients are stacked to
``(2L, B, C)`` and ``gsnn_fast::segment_magnitude`` reduces each node's channels to one
float64 value. Samples whose used magnitudes are not finite are reported or dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .. import ops
from .capture import activation_gradients, capturing, collect_captured, stack_layers

__all__ = ["batch_magnitudes", "finite_samples", "unpack_batch"]


def unpack_batch(batch: Any, bi: int, n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of batch number ``bi``, checked against the model's ``n_in`` input and
    ``n_out`` output nodes; ValueError naming the batch otherwise."""
    try:
        x, y = batch
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dataloader: batch {bi} is not an (x, y) pair") from exc
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError(f"dataloader: batch {bi}: x and y must be tensors")
    if x.dim() != 2 or x.shape[1] != n_in:
        raise ValueError(
            f"dataloader: batch {bi}: x has shape {tuple(x.shape)}, the model has "
            f"{n_in} input nodes (expected (B, {n_in}))"
        )
    if y.dim() != 2 or y.shape[1] != n_out or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"dataloader: batch {bi}: y has shape {tuple(y.shape)}, the model has "
            f"{n_out} output nodes (expected ({x.shape[0]}, {n_out}))"
        )
    return x, y


def batch_magnitudes(
    model: Any,
    blocks: list[Any],
    x: torch.Tensor,
    y: torch.Tensor,
    crit: Any,
    *,
    use_pre_norm: bool,
    reduction: str,
    ptr: torch.Tensor,
    perm: torch.Tensor | None,
    n_channels: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation and gradient magnitudes, each ``(L, B, N)`` float64, of one batch.

    ``ptr`` / ``perm`` are the node -> channel CSR of :func:`.capture.channel_ptr` on
    x's device; ``n_channels`` the width the captured tensors must have.
    """
    L = len(blocks)
    with capturing(model, blocks), torch.enable_grad():
        if x.is_floating_point():
            # so that the activations require grad even when the parameters are frozen
            x = x.detach().requires_grad_(True)
        yhat = model(x)
        loss = crit(yhat, y)
        acts = collect_captured(blocks, use_pre_norm)
        grads = activation_gradients(loss, acts)
        stacked = stack_layers(list(acts) + list(grads))  # (2L, B, C)
        del yhat, loss, acts, grads
    if stacked.shape[-1] != n_channels:
        raise RuntimeError(
            f"model: captured tensors have {stacked.shape[-1]} channels, "
            f"ResBlocks[0].channel_groups has {n_channels}"
        )
    if perm is not None:
        stacked = stacked.index_select(2, perm)
    mags = ops.segment_magnitude(stacked, ptr, [reduction])[0]
    return mags[:L], mags[L:]


def finite_samples(
    xmag: torch.Tensor, ymag: torch.Tensor, bi: int, mode: str
) -> torch.Tensor | None:
    """None when every used magnitude of batch ``bi`` is finite (activations of layers
    0..L-2, gradients of layers 1..L-1). Otherwise, with ``mode='skip'``, the bool
    ``(B,)`` mask of the samples to keep; with ``mode='raise'``, a RuntimeError naming
    the first layer and kind that has a non-finite value."""
    L = xmag.shape[0]
    P = L - 1
    xs, ys = xmag[:P], ymag[1:]
    if bool(torch.isfinite(xs).all() & torch.isfinite(ys).all()):
        return None
    bad_x = ~torch.isfinite(xs)  # (P, B, N)
    bad_y = ~torch.isfinite(ys)
    bad = bad_x.any(2).any(0) | bad_y.any(2).any(0)  # (B,)
    if mode == "skip":
        return ~bad
    for l in range(L):
        for kind, m in (
            ("activation", bad_x[l] if l < P else None),
            ("gradient", bad_y[l - 1] if l >= 1 else None),
        ):
            if m is not None and bool(m.any()):
                raise RuntimeError(
                    f"non-finite {kind} magnitude in layer {l} (ResBlocks[{l}]) of batch "
                    f"{bi} ({int(bad.sum())} of {bad.numel()} samples affected); pass "
                    "nonfinite='skip' to drop such samples"
                )
    raise AssertionError("unreachable")


def inferer_batches(
    inf: Any, dataloader: Iterable, blocks: list, crit: Any, dev: torch.device, ptr: torch.Tensor,
    perm: torch.Tensor | None, nonfinite: str, start: int = 0,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int]]:  # fmt: skip
    """The batches of a fit of the inferer ``inf`` from batch ``start`` on, as ``(bi,
    xmag, ymag, dropped)``: the batch's float64 ``(L, B', N)`` magnitudes on ``dev``
    (contiguous) without the ``dropped`` samples that had a non-finite magnitude
    (``nonfinite='skip'``; with ``'raise'`` such a batch raises). Shared by
    ``MagnitudeEdgeInferer.fit`` and the target-sharded fit."""
    for bi, batch in enumerate(dataloader):
        if bi < start:
            continue  # counted before a checkpoint
        x, y = unpack_batch(batch, bi, inf._n_in, inf._n_out)
        xmag, ymag = batch_magnitudes(
            inf.model, blocks, x.to(dev), y.to(dev), crit, use_pre_norm=inf.use_pre_norm,
            reduction=inf.reduction, ptr=ptr, perm=perm, n_channels=inf._n_channels,
        )  # fmt: skip
        keep = finite_samples(xmag, ymag, bi, nonfinite)
        dropped = 0
        if keep is not None:
            dropped = int((~keep).sum())
            xmag, ymag = xmag[:, keep].contiguous(), ymag[:, keep].contiguous()
        yield bi, xmag, ymag, dropped
