"""Memory preflight of MagnitudeEdgeInferer: the bytes a ``fit`` or ``evaluate`` will
allocate, checked against what the device has free before anything is allocated.

The statistics dominate: ``sum_xy`` (and ``sum_xx`` with ``track_xx``) are ``[P, N, N]``
float64, ``8 P N^2`` bytes each (N = 10,000, P = 5: 4 GB each; N = 30,000: 36 GB each).
Available memory: ``torch.cuda.mem_get_info`` (free bytes) on CUDA, ``MemAvailable`` of
/proc/meminfo on the CPU (unknown elsewhere: no check). When the need exceeds it,
:class:`InsufficientMemoryError` (a MemoryError) names N, P, both byte counts and the
ways out.
"""

from __future__ import annotations

import ctypes
import sys

import torch

__all__ = [
    "InsufficientMemoryError",
    "available_bytes",
    "check_memory",
    "evaluate_bytes",
    "fit_bytes",
    "statistics_bytes",
    "zeros_f64",
]

_F64 = 8


class InsufficientMemoryError(MemoryError):
    """A fit or evaluate would need more memory than the device has available."""


def statistics_bytes(P: int, N: int, track_xx: bool) -> int:
    """Bytes of the statistics: four ``[P, N]`` sums and one or two ``[P, N, N]`` sums."""
    return _F64 * (4 * P * N + (2 if track_xx else 1) * P * N * N)


def fit_bytes(P: int, N: int, track_xx: bool, L: int, batch: int = 256) -> int:
    """Bytes ``fit`` allocates: the statistics plus one batch's float64 magnitudes
    ``(2L, B, N)`` and their kept copy (B = ``batch``, an upper guess)."""
    return statistics_bytes(P, N, track_xx) + 2 * _F64 * 2 * L * batch * N


def evaluate_bytes(P: int, N: int, full_frame: bool, top_k: int | None = None) -> int:
    """Bytes ``evaluate`` allocates besides the statistics.

    The full frame: the ``[P, N, N]`` per-pair scores, the ``[N, N]`` aggregate, and per
    row (N^2 rows) its sort buffers (24 bytes), p, q, indices and the P + 2 float
    columns (~8 (P + 8) bytes). The top_k / q_threshold route: the aggregate and
    O(N k) rows.
    """
    if full_frame:
        return _F64 * (P * N * N + N * N) + N * N * (24 + _F64 * (P + 8))
    k = top_k if top_k is not None else 0
    return _F64 * N * N + N * max(k, 1) * _F64 * (P + 12)


def available_bytes(device: torch.device) -> int | None:
    """Free bytes on ``device``: CUDA ``mem_get_info``, CPU ``MemAvailable``; None when
    unknown (another device type, or no /proc/meminfo)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def _gib(b: int | float) -> str:
    return f"{b / 2**30:.2f} GiB"


def check_memory(
    what: str,
    needed: int,
    device: torch.device,
    *,
    N: int,
    P: int,
    track_xx: bool,
    available: int | None = None,
    held: int = 0,
) -> None:
    """Raise :class:`InsufficientMemoryError` when ``needed`` bytes exceed what
    ``device`` has available (``available`` overrides the measurement). ``held``: bytes
    of earlier statistics the caller keeps until the new ones are complete (a refit);
    when releasing them would be enough, the message says how."""
    free = available_bytes(device) if available is None else available
    if free is None or needed <= free:
        return
    sums = "sum_xy and sum_xx" if track_xx else "sum_xy"
    keep = (
        f"This inferer still holds {_gib(held)} of statistics from an earlier fit; they "
        "are kept until the new fit completes, so call reset_stats() first to release "
        "them. "
        if 0 < held and needed <= free + held
        else ""
    )
    raise InsufficientMemoryError(
        f"{what} needs {_gib(needed)} ({needed} bytes) on {device} for N={N} function "
        f"nodes and P={P} layer pairs, but only {_gib(free)} ({free} bytes) is available. "
        f"The statistics {sums} take 8 * P * N^2 = {_gib(_F64 * P * N * N)} each. "
        f"{keep}Options: "
        "track_xx=False (drops sum_xx; score='corr' only), evaluate with top_k / "
        "q_threshold (no full frame), fewer layer pairs, or shard the targets across "
        "processes (gsnn_fast.inference.distributed, launched with torchrun; each rank "
        "holds sum_xy for its own target columns)."
    )


def check_evaluate(
    P: int, N: int, full_frame: bool, top_k: int | None, device: torch.device, track_xx: bool
) -> None:
    """Preflight of ``evaluate``: the score buffers on the statistics' ``device`` and the
    frame on the host (one check on the CPU when both are there)."""
    total = evaluate_bytes(P, N, full_frame, top_k)
    scores = _F64 * N * N * ((P + 1) if full_frame else 1)
    kw = dict(N=N, P=P, track_xx=track_xx)
    if device.type == "cpu":
        check_memory("MagnitudeEdgeInferer.evaluate", total, device, **kw)
        return
    check_memory("MagnitudeEdgeInferer.evaluate (score buffers)", scores, device, **kw)
    host = torch.device("cpu")
    check_memory("MagnitudeEdgeInferer.evaluate (result frame)", total - scores, host, **kw)


_HUGE = 1 << 21  # 2 MiB: the x86-64 / aarch64 transparent huge page
_MADV_HUGEPAGE = 14  # <sys/mman.h> on Linux


def _advise_huge_pages(t: torch.Tensor) -> None:
    """Ask Linux for transparent huge pages on the whole 2 MiB pages of a fresh CPU
    buffer, before its first write (THP's default "madvise" mode gives them only on
    request). Advice only: nothing changes where the kernel ignores it."""
    if not sys.platform.startswith("linux") or t.nbytes < 4 * _HUGE:
        return
    begin = (t.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
    end = (t.data_ptr() + t.nbytes) & ~(_HUGE - 1)
    if end > begin:
        try:
            libc = ctypes.CDLL(None)
            libc.madvise(ctypes.c_void_p(begin), ctypes.c_size_t(end - begin), _MADV_HUGEPAGE)
        except (OSError, AttributeError):
            pass


def zeros_f64(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float64 zero tensor; on the CPU a large one is backed by huge pages where the
    system allows it. The [P, N, N] statistics are read with a stride of N doubles per
    row by the scoring ops (a 4 KiB page per row read at N = 10,000); huge pages cut
    their TLB misses and the cost of the first touch."""
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=torch.float64, device=device)
    t = torch.empty(shape, dtype=torch.float64)
    _advise_huge_pages(t)
    return t.zero_()
