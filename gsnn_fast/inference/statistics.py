"""Saving and reloading a fitted :class:`MagnitudeEdgeInferer`'s statistics.

The statistics of a fit (the float64 streaming sums and the sample count) are all that
``evaluate`` / ``score_matrices`` need, so a fit over a large data set can be scored
again later, or elsewhere, without the data::

    save_statistics(inferer, "inferer_stats.pt")
    ...
    inferer = MagnitudeEdgeInferer(model, data, reduction="l1")
    load_statistics(inferer, "inferer_stats.pt")   # refuses a different graph / setting
    inferer.evaluate(score="partial")

The file is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists), loaded
with ``weights_only=True``:

``format`` (``'gsnn_fast.inferer_statistics'``), ``version`` (1), ``library_version``,
``function_nodes`` (names, in order), ``edges`` (the function->function edges as
``[src, dst]`` name pairs, sorted), ``reduction``, ``n_pairs`` (layer pairs P),
``use_pre_norm``, ``track_xx``, ``zero_var``, ``tol``, ``dtype`` (``'float64'``),
``n``, ``n_skipped``, ``n_batches`` and the sums ``sum_x``, ``sum_y``, ``sum_x2``,
``sum_y2`` ``[P, N]``, ``sum_xy`` ``[P, N, N]``, ``sum_xx`` ``[P, N, N]`` or None.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["FORMAT", "VERSION", "save_statistics", "load_statistics"]

FORMAT = "gsnn_fast.inferer_statistics"
VERSION = 1
SUMS = ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx")


def _library_version() -> str:
    from .. import __version__

    return __version__


def _edges(inferer: Any) -> list[list[str]]:
    return sorted([str(s), str(d)] for s, d in inferer.edges)


def save_statistics(inferer: Any, path: str | os.PathLike) -> None:
    """Write ``inferer``'s statistics and the facts they belong to to ``path``.

    Raises:
        RuntimeError: the inferer has not been fitted (n == 0).
    """
    if int(inferer.n) == 0:
        raise RuntimeError("the inferer holds no statistics (n = 0); call fit() first")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "library_version": _library_version(),
        "function_nodes": [str(n) for n in inferer.function_nodes],
        "edges": _edges(inferer),
        "reduction": str(inferer.reduction),
        "n_pairs": int(inferer.n_pairs),
        "use_pre_norm": bool(inferer.use_pre_norm),
        "track_xx": inferer.sum_xx is not None,
        "zero_var": str(inferer.zero_var),
        "tol": float(inferer.tol),
        "dtype": "float64",
        "n": int(inferer.n),
        "n_skipped": int(getattr(inferer, "n_skipped", 0)),
        "n_batches": int(getattr(inferer, "n_batches", 0)),
    }
    for name in SUMS:
        t = getattr(inferer, name)
        payload[name] = None if t is None else t.detach().to("cpu", torch.float64).contiguous()
    torch.save(payload, os.fspath(path))


def _mismatch(path: Any, what: str, saved: Any, here: Any) -> ValueError:
    return ValueError(
        f"statistics file {str(path)!r} does not fit this inferer: {what} differs "
        f"(file: {saved!r}, inferer: {here!r})"
    )


def _describe_names(saved: list[str], here: list[str]) -> tuple[str, str]:
    if len(saved) != len(here):
        return f"{len(saved)} nodes", f"{len(here)} nodes"
    i = next(k for k, (a, b) in enumerate(zip(saved, here)) if a != b)
    return f"node {i} = {saved[i]!r}", f"node {i} = {here[i]!r}"


def load_statistics(
    inferer: Any, path: str | os.PathLike, device: str | torch.device | None = None
) -> Any:
    """Load statistics written by :func:`save_statistics` into ``inferer`` (in place).

    The file must describe the same function nodes (names and order), the same
    function->function edges, reduction, number of layer pairs, ``use_pre_norm``,
    zero-variance rule and tolerance, and hold ``sum_xx`` if the inferer tracks it;
    otherwise ValueError names the first mismatch and the inferer is left unchanged.

    Args:
        device: where the sums go (default: the CPU).

    Returns:
        the inferer.
    """
    try:
        payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"statistics file {str(path)!r} does not exist") from None
    except Exception as exc:
        raise ValueError(f"statistics file {str(path)!r} could not be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"statistics file {str(path)!r} is not a gsnn_fast statistics file")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"statistics file {str(path)!r} has format version {payload.get('version')!r}; "
            f"this gsnn_fast reads version {VERSION}"
        )
    names = [str(n) for n in inferer.function_nodes]
    if payload["function_nodes"] != names:
        a, b = _describe_names(payload["function_nodes"], names)
        raise _mismatch(path, "the function nodes", a, b)
    if payload["edges"] != _edges(inferer):
        saved, here = set(map(tuple, payload["edges"])), set(map(tuple, _edges(inferer)))
        only_f, only_i = sorted(saved - here), sorted(here - saved)
        detail = (
            f"{len(only_f)} edges only in the file (e.g. {only_f[:3]}), {len(only_i)} only "
            f"in the inferer's graph (e.g. {only_i[:3]})"
        )
        raise ValueError(
            f"statistics file {str(path)!r} does not fit this inferer: the "
            f"function->function edges differ: {detail}"
        )
    checks = (
        ("reduction", payload["reduction"], str(inferer.reduction)),
        ("the number of layer pairs", payload["n_pairs"], int(inferer.n_pairs)),
        ("use_pre_norm", payload["use_pre_norm"], bool(inferer.use_pre_norm)),
        ("zero_var", payload["zero_var"], str(inferer.zero_var)),
        ("tol", payload["tol"], float(inferer.tol)),
        ("dtype", payload["dtype"], "float64"),
    )
    for what, saved, here in checks:
        if saved != here:
            raise _mismatch(path, what, saved, here)
    if bool(getattr(inferer, "track_xx", False)) and payload["sum_xx"] is None:
        raise _mismatch(path, "track_xx (sum_xx)", False, True)
    P, N = int(inferer.n_pairs), len(names)
    shapes = {"sum_x": (P, N), "sum_y": (P, N), "sum_x2": (P, N), "sum_y2": (P, N)}
    shapes.update({"sum_xy": (P, N, N), "sum_xx": (P, N, N)})
    sums: dict[str, torch.Tensor | None] = {}
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for name in SUMS:
        t = payload[name]
        if t is None:
            if name != "sum_xx":
                raise ValueError(f"statistics file {str(path)!r}: {name} is missing")
            sums[name] = None
            continue
        if tuple(t.shape) != shapes[name] or t.dtype != torch.float64:
            raise ValueError(
                f"statistics file {str(path)!r}: {name} has shape {tuple(t.shape)} / "
                f"{t.dtype}, expected {shapes[name]} / torch.float64"
            )
        sums[name] = t.to(dev)
    if not getattr(inferer, "track_xx", True):
        sums["sum_xx"] = None
    for name, t in sums.items():
        setattr(inferer, name, t)
    inferer.n = int(payload["n"])
    inferer.n_skipped = int(payload.get("n_skipped", 0))
    inferer.n_batches = int(payload.get("n_batches", 0))
    return inferer
