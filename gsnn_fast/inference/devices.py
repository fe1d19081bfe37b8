"""Running a model on a chosen device for a while, then putting it back.

``MagnitudeEdgeInferer.fit`` runs the forward/backward passes where the statistics are
kept; the caller's model is moved there only for the pass (:func:`model_on`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["model_devices", "model_on", "same_device"]


def model_devices(model: Any) -> set[torch.device]:
    """The devices of a module's parameters and buffers (empty for a non-module)."""
    if not isinstance(model, torch.nn.Module):
        return set()
    found = {p.device for p in model.parameters()}
    found |= {b.device for b in model.buffers()}
    return found


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same one; ``cuda`` without an index means the
    current CUDA device."""
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


@contextmanager
def model_on(model: Any, device: torch.device) -> Iterator[None]:
    """Inside the ``with``, the model lives on ``device``; afterwards (also after an
    exception) it is back where it was. Only a model whose parameters and buffers all
    share one device is moved; any other object is left alone."""
    found = model_devices(model)
    home = next(iter(found)) if len(found) == 1 else None
    move = home is not None and not same_device(home, device)
    if move:
        model.to(device)
    try:
        yield
    finally:
        if move:
            model.to(home)
