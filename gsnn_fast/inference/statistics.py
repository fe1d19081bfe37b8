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

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so a reader never sees half a file and a fit killed while writing a
checkpoint keeps the previous one. :func:`merge` adds the statistics of fits on
disjoint data in a fixed order (see there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["FORMAT", "VERSION", "load_statistics", "merge", "save_statistics"]

FORMAT = "gsnn_fast.inferer_statistics"
VERSION = 1
SUMS = ("sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy", "sum_xx")


def _library_version() -> str:
    from .. import __version__

    return __version__


def _edges(inferer: Any) -> list[list[str]]:
    return sorted([str(s), str(d)] for s, d in inferer.edges)


def _payload(inferer: Any, state: Mapping[str, Any] | None = None, cpu: bool = True) -> dict:
    """The file's dict of ``inferer`` (``state`` overrides its sums and counts)."""
    state = dict(state or {})

    def get(name: str) -> Any:
        return state[name] if name in state else getattr(inferer, name, 0)

    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "library_version": _library_version(),
        "function_nodes": [str(n) for n in inferer.function_nodes],
        "edges": _edges(inferer),
        "reduction": str(inferer.reduction),
        "n_pairs": int(inferer.n_pairs),
        "use_pre_norm": bool(inferer.use_pre_norm),
        "track_xx": get("sum_xx") is not None,
        "zero_var": str(inferer.zero_var),
        "tol": float(inferer.tol),
        "dtype": "float64",
        "n": int(get("n")),
        "n_skipped": int(get("n_skipped")),
        "n_batches": int(get("n_batches")),
    }
    for name in SUMS:
        t = get(name)
        if t is not None:
            t = t.detach()
            t = t.to("cpu", torch.float64).contiguous() if cpu else t
        payload[name] = t
    return payload


def save_statistics(
    inferer: Any, path: str | os.PathLike, *, state: Mapping[str, Any] | None = None
) -> None:
    """Write ``inferer``'s statistics and the facts they belong to to ``path``,
    atomically (temporary file, then ``os.replace``).

    ``state``: sums (``sum_x`` ... ``sum_xx``) and counts (``n``, ``n_skipped``,
    ``n_batches``) to write instead of the inferer's own (``fit``'s checkpoints).

    Raises:
        RuntimeError: the inferer has not been fitted (n == 0).
    """
    payload = _payload(inferer, state)
    if payload["n"] == 0:
        raise RuntimeError("the inferer holds no statistics (n = 0); call fit() first")
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


def _read(path: Any) -> dict:
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
    return payload


def _check(inferer: Any, payload: dict, path: Any) -> dict[str, torch.Tensor | None]:
    """The payload's sums after checking that they fit ``inferer`` (ValueError naming
    the first mismatch otherwise)."""
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
        sums[name] = t
    if not getattr(inferer, "track_xx", True):
        sums["sum_xx"] = None
    return sums


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
    payload = _read(path)
    sums = _check(inferer, payload, path)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for name, t in sums.items():
        setattr(inferer, name, None if t is None else t.to(dev))
    inferer.n = int(payload["n"])
    inferer.n_skipped = int(payload.get("n_skipped", 0))
    inferer.n_batches = int(payload.get("n_batches", 0))
    return inferer


def merge(a: Any, b: Any, *more: Any, into: Any = None) -> Any:
    """Add the statistics of fits on disjoint data: ``a + b + more[0] + ...``.

    Each source is a fitted inferer or a file of :func:`save_statistics`; all must fit
    the same graph and settings (as :func:`load_statistics` checks). The sums are added
    element by element in the order given, left to right (``(a + b) + c``), in
    float64 on the first inferer source's device (the CPU if every source is a file):
    deterministic, and equal to one fit over the concatenated data up to the rounding
    of the additions (a single fit adds batch by batch, so the bits can differ; the
    relative difference is ~1e-15). ``sum_xx`` is merged when every source has it and
    ``into`` tracks it. ``n``, ``n_skipped`` and ``n_batches`` add up.

    Args:
        into: the inferer that receives the merged statistics (default ``a``, which
            must then be an inferer); its own statistics are replaced.

    Returns:
        ``into``.
    """
    sources = (a, b, *more)
    if into is None:
        into = a
    if isinstance(into, (str, os.PathLike)):
        raise ValueError("merge: into must be an inferer (give into= when a is a file)")
    dev = next(
        (s.sum_xy.device for s in sources if not isinstance(s, (str, os.PathLike))),
        torch.device("cpu"),
    )
    total: dict[str, torch.Tensor | None] = {}
    n = n_skipped = n_batches = 0
    for k, src in enumerate(sources):
        if isinstance(src, (str, os.PathLike)):
            payload = _read(src)
            where: Any = src
        else:
            if int(src.n) == 0:
                raise ValueError(f"merge: source {k} holds no statistics (n = 0)")
            payload = _payload(src, cpu=False)
            where = f"<merge source {k}>"
        sums = _check(into, payload, where)
        for name, t in sums.items():
            if k == 0:
                total[name] = None if t is None else t.to(dev, copy=True)
            elif total[name] is not None:
                if t is None:
                    total[name] = None
                else:
                    total[name].add_(t.to(dev))  # type: ignore[union-attr]
        n += int(payload["n"])
        n_skipped += int(payload.get("n_skipped", 0))
        n_batches += int(payload.get("n_batches", 0))
    if bool(getattr(into, "track_xx", False)) and total.get("sum_xx") is None:
        raise ValueError("merge: into tracks sum_xx but a source does not hold it")
    for name, t in total.items():
        setattr(into, name, t)
    into.n, into.n_skipped, into.n_batches = n, n_skipped, n_batches
    return into
