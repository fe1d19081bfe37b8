"""Activation capture helpers shared by the edge inferers, and the contract they rely on.

A model honours the capture contract when it has a sequence ``ResBlocks`` whose
blocks carry a boolean ``_store_activations``; while it is True a block's forward
stores ``_last_pre_norm_activation`` (after ``lin_in``, before the norm, still
attached to autograd) and ``_last_activation`` (after the nonlinearity / node MLP).
Both are ``(B, C)`` or ``(B, C, 1)``. ``ResBlocks[0].channel_groups`` ``[C]`` maps
each channel to a node of the homogeneous graph, and ``input_node_mask`` /
``output_node_mask`` ``[num_nodes]`` mark the non-function nodes.

The helpers here turn that into what the magnitude kernels take:

* :func:`capturing` switches capture on for one or more forwards and always puts the
  flags and the captured attributes back the way it found them;
* :func:`preserved_mode` puts the model (every submodule) in eval mode and restores
  each submodule's own ``training`` flag afterwards;
* :func:`function_node_ids` and :func:`channel_ptr` give the node -> channel-range CSR
  (plus a channel permutation when a node's channels are not contiguous and in order);
* :func:`collect_captured`, :func:`stack_layers` and :func:`activation_gradients` give
  ``(L, B, C)`` activations and gradients; :func:`drop_captured` releases what the
  blocks stored (for callers that manage the flags themselves, like the regressor).

Nothing here touches a parameter's ``.grad``: gradients are taken with
``torch.autograd.grad`` w.r.t. the captured tensors only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

__all__ = [
    "CAPTURE_ATTRS",
    "activation_gradients",
    "capture_attr",
    "capturing",
    "channel_ptr",
    "collect_captured",
    "drop_captured",
    "function_node_ids",
    "model_blocks",
    "preserved_mode",
    "stack_layers",
]

#: Attributes a block fills while ``_store_activations`` is True.
CAPTURE_ATTRS: tuple[str, str] = ("_last_pre_norm_activation", "_last_activation")

_MISSING = object()


def capture_attr(use_pre_norm: bool) -> str:
    """Name of the captured attribute to read: pre-norm (True) or post-activation (False)."""
    return CAPTURE_ATTRS[0] if use_pre_norm else CAPTURE_ATTRS[1]


def model_blocks(model: Any) -> list[Any]:
    """``list(model.ResBlocks)``; ValueError naming ``model`` when it has none."""
    blocks = getattr(model, "ResBlocks", None)
    if blocks is None:
        raise ValueError("model: has no `ResBlocks`; it does not honour the capture contract")
    blocks = list(blocks)
    if not blocks:
        raise ValueError("model: `ResBlocks` is empty")
    return blocks


@contextmanager
def capturing(model: Any, blocks: Sequence[Any] | None = None) -> Iterator[list[Any]]:
    """Turn on ``_store_activations`` on every block for the duration of the block.

    Yields the list of blocks. On exit (normal or by an exception) each block's
    ``_store_activations`` is set back to its previous value and each captured
    attribute (:data:`CAPTURE_ATTRS`) back to what it was before: deleted if it did
    not exist, else the previous object. The tensors captured inside the ``with``
    are therefore released (and with them the autograd graph they hold).

    Args:
        model: an object with ``ResBlocks`` (ignored when ``blocks`` is given).
        blocks: the blocks to switch; default ``model.ResBlocks``.
    """
    blocks = model_blocks(model) if blocks is None else list(blocks)
    saved = []
    for blk in blocks:
        flag = getattr(blk, "_store_activations", _MISSING)
        attrs = {name: getattr(blk, name, _MISSING) for name in CAPTURE_ATTRS}
        saved.append((blk, flag, attrs))
    try:
        for blk in blocks:
            blk._store_activations = True
        yield blocks
    finally:
        for blk, flag, attrs in saved:
            if flag is _MISSING:
                if hasattr(blk, "_store_activations"):
                    delattr(blk, "_store_activations")
            else:
                blk._store_activations = flag
            for name, value in attrs.items():
                if value is _MISSING:
                    if name in getattr(blk, "__dict__", {}):
                        delattr(blk, name)
                else:
                    setattr(blk, name, value)


@contextmanager
def preserved_mode(model: torch.nn.Module, training: bool = False) -> Iterator[None]:
    """Put every submodule of ``model`` in ``training`` mode (default eval) for the block,
    then restore each submodule's own previous ``training`` flag (mixed modes survive)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.train(training)
        yield
    finally:
        for m, was in modes:
            m.training = was


def function_node_ids(model: Any) -> torch.Tensor:
    """Homogeneous indices of the function nodes, ascending, as a CPU int64 tensor.

    A node is a function node when it is neither an input (``model.input_node_mask``)
    nor an output (``model.output_node_mask``). The k-th entry belongs to the k-th name
    in ``data.node_names_dict['function']``.
    """
    try:
        inp = torch.as_tensor(model.input_node_mask).detach().cpu().to(torch.bool)
        out = torch.as_tensor(model.output_node_mask).detach().cpu().to(torch.bool)
    except AttributeError as exc:
        raise ValueError(
            "model: needs `input_node_mask` and `output_node_mask` (capture contract)"
        ) from exc
    if inp.shape != out.shape or inp.dim() != 1:
        raise ValueError(
            f"model: input_node_mask {tuple(inp.shape)} and output_node_mask "
            f"{tuple(out.shape)} must be 1-d of the same length"
        )
    return torch.nonzero(~(inp | out)).reshape(-1).to(torch.int64)


def channel_ptr(
    channel_groups: torch.Tensor,
    node_ids: torch.Tensor | Sequence[int],
    names: Sequence[Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Node -> channel-range CSR for :func:`gsnn_fast.ops.segment_magnitude`.

    Args:
        channel_groups: ``[C]`` integer tensor, channel -> homogeneous node index.
        node_ids: ``[N]`` homogeneous indices of the nodes to reduce, in output order.
        names: optional node names, used in error messages only.

    Returns:
        ``(ptr, perm)``: ``ptr`` ``[N + 1]`` int64 (CPU) with node k owning positions
        ``[ptr[k], ptr[k+1])`` of the channel axis after ``perm``; ``perm`` ``[ptr[N]]``
        int64 (CPU) lists, for k ascending, node k's channels in ascending order, or is
        ``None`` when that is already ``0, 1, ..., ptr[N]-1`` (channels owned by no
        listed node may only trail, then no gather is needed). Deterministic.

    Raises:
        ValueError: a listed node owns no channel (named when ``names`` is given).
    """
    cg = torch.as_tensor(channel_groups).detach().cpu().reshape(-1).to(torch.int64)
    ids = torch.as_tensor(node_ids).detach().cpu().reshape(-1).to(torch.int64)
    n = ids.numel()
    size = int(max(int(cg.max()) if cg.numel() else -1, int(ids.max()) if n else -1)) + 1
    pos = torch.full((max(size, 1),), -1, dtype=torch.int64)
    pos[ids] = torch.arange(n, dtype=torch.int64)
    k = pos[cg] if cg.numel() else cg
    owned = torch.nonzero(k >= 0).reshape(-1)
    k_owned = k[owned]
    counts = torch.bincount(k_owned, minlength=n)
    empty = torch.nonzero(counts == 0).reshape(-1)
    if empty.numel():
        e = int(empty[0])
        who = repr(names[e]) if names is not None else f"#{e}"
        raise ValueError(
            f"model: function node {who} (homogeneous index {int(ids[e])}) has no channels "
            f"in ResBlocks[0].channel_groups ({empty.numel()} such node(s))"
        )
    order = torch.argsort(k_owned, stable=True)
    perm = owned[order]
    ptr = torch.zeros(n + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(counts, 0)
    if torch.equal(perm, torch.arange(perm.numel(), dtype=torch.int64)):
        return ptr, None
    return ptr, perm


def drop_captured(blocks: Sequence[Any]) -> None:
    """Release what each block captured (every :data:`CAPTURE_ATTRS` attribute): an
    instance attribute is deleted, any other non-None value is set to None."""
    for blk in blocks:
        for name in CAPTURE_ATTRS:
            if name in blk.__dict__:
                delattr(blk, name)
            elif getattr(blk, name, None) is not None:
                setattr(blk, name, None)


def collect_captured(blocks: Sequence[Any], use_pre_norm: bool = True) -> list[torch.Tensor]:
    """The captured tensor of every block (``(B, C)`` or ``(B, C, 1)``, as stored).

    Raises:
        RuntimeError: a block stored nothing (it does not honour the capture contract,
            or ``_store_activations`` was off during the forward).
    """
    attr = capture_attr(use_pre_norm)
    out = []
    for l, blk in enumerate(blocks):
        t = getattr(blk, attr, None)
        if not isinstance(t, torch.Tensor):
            raise RuntimeError(
                f"ResBlocks[{l}] did not store `{attr}` during the forward; the model must "
                "honour the capture contract (store it while `_store_activations` is True)"
            )
        out.append(t)
    return out


def _as_bc(t: torch.Tensor, l: int) -> torch.Tensor:
    if t.dim() == 3 and t.shape[-1] == 1:
        return t.squeeze(-1)
    if t.dim() == 2:
        return t
    raise RuntimeError(
        f"ResBlocks[{l}]: captured tensor has shape {tuple(t.shape)}; expected (B, C) or (B, C, 1)"
    )


def stack_layers(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack per-layer ``(B, C)`` / ``(B, C, 1)`` tensors into one detached ``(L, B, C)``.

    Same dtype and device as the inputs (a copy; contiguous).
    """
    mats = [_as_bc(t.detach(), l) for l, t in enumerate(tensors)]
    shapes = {tuple(m.shape) for m in mats}
    if len(shapes) != 1:
        raise RuntimeError(f"captured tensors differ in shape across blocks: {sorted(shapes)}")
    return torch.stack(mats, 0)


def activation_gradients(loss: torch.Tensor, acts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of a scalar ``loss`` w.r.t. each captured activation.

    Uses ``torch.autograd.grad`` (the autograd graph is freed; no parameter's ``.grad``
    is read or written). A captured tensor the loss does not depend on gets zeros.
    Each gradient has its activation's shape.

    Raises:
        ValueError: ``loss`` is not a scalar tensor.
        RuntimeError: the loss or an activation is not attached to autograd.
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"crit: must return a scalar loss tensor, got {shape}")
    if not loss.requires_grad:
        raise RuntimeError("crit: the loss is not attached to autograd (no gradient flows)")
    for l, a in enumerate(acts):
        if not a.requires_grad:
            raise RuntimeError(f"ResBlocks[{l}]: captured activation is not attached to autograd")
    grads = torch.autograd.grad(loss.reshape(()), list(acts), allow_unused=True)
    return [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
