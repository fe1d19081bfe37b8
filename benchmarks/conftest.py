"""Fixtures of the benchmark suite: timing policy, peak memory, device floors.

Threads: ``GSNN_BENCH_THREADS`` (default 1) for torch, OpenMP and BLAS alike.

Timing: every case is one ``benchmark.pedantic`` call (pytest-benchmark) with
``iterations=1``; the device is synchronised inside the timed callable. Before it, one
untimed call warms the case up and measures its peak memory; its duration picks the
number of rounds (enough for ~``TARGET_S`` seconds, between ``MIN_ROUNDS`` and
``MAX_ROUNDS``; one round when the warm-up took more than ``SLOW_S``). A case marked
``slow``, or whose time extrapolated as N^2 from the previous size of the same series
exceeds ``SLOW_S``, gets exactly one timed round and no warm-up; its memory is
measured on that round.

Peak memory (``peak_mem_bytes``):
- CPU: Linux's per-process resident high-water mark. Before the call, freed heap pages
  are returned to the OS (``malloc_trim(0)``) and the high-water mark is reset to the
  current resident size (``echo 5 > /proc/self/clear_refs``); after it,
  ``VmHWM - VmRSS(before)`` from ``/proc/self/status`` is the extra resident memory the
  call needed at its peak (inputs already resident are not counted). It sees every
  allocator (torch, numpy, pandas, Python objects), unlike ``tracemalloc``.
- CUDA: ``torch.cuda.max_memory_allocated() - memory_allocated()`` around the call
  (after ``reset_peak_memory_stats``): the caching allocator's peak of live tensors.
- Elsewhere: not measured (null).
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import time

# One thread for every implementation unless told otherwise (stable numbers on a small
# machine shared with other jobs); BLAS / OpenMP read these before they start.
THREADS = int(os.environ.setdefault("GSNN_BENCH_THREADS", "1"))
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)

TARGET_S = float(os.environ.get("GSNN_BENCH_TARGET_S", "0.3"))
MIN_ROUNDS, MAX_ROUNDS = 3, 10
#: a call expected to take longer than this gets one timed round and no warm-up
SLOW_S = float(os.environ.get("GSNN_BENCH_SLOW_S", "2.0"))


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def synced(fn, device: str):
    """``fn`` followed by a device synchronisation (so the timer sees the whole work)."""
    if not str(device).startswith("cuda"):
        return fn

    def call():
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


# ---------------------------------------------------------------------------- memory
def _status() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _LIBC = None


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_HWM_OK = os.path.exists("/proc/self/status") and _can_reset_hwm()


def measure_peak(fn, device: str) -> tuple[float, int | None]:
    """Run ``fn`` once; return (seconds, peak extra memory in bytes or None)."""
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        return dt, int(torch.cuda.max_memory_allocated() - base)
    if not _HWM_OK:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t, None
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    before = _status()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    return dt, max(0, _status()["VmHWM"] - before)


# ------------------------------------------------------------------------- the runner
#: (op, impl, family, device, sweep) -> (N, seconds) of the last case measured
_HISTORY: dict = {}


def _predicted(case, N: int) -> float | None:
    """This case's time extrapolated (as N^2) from the same series' last point."""
    prev = _HISTORY.get((case.op, case.impl, case.family, case.device, case.sweep))
    if prev is None or prev[0] <= 0:
        return None
    return prev[1] * (N / prev[0]) ** 2


class Bench:
    """Wraps pytest-benchmark's fixture with the policy of the module docstring."""

    def __init__(self, benchmark):
        self.benchmark = benchmark

    def __call__(self, case, fn, *, rounds: int | None = None, **info):
        """Time ``fn`` for ``case``; extra ``info`` goes into the record."""
        fn = synced(fn, case.device)
        bm = self.benchmark
        N = int(info.pop("N", case.N))
        meta = dict(
            operation=case.op,
            implementation=case.impl,
            device=case.device,
            family=case.family,
            N=N,
            C=case.C,
            L=case.L,
            B=case.B,
            sweep=case.sweep,
            max_in_degree=case.max_in_degree,
        )
        meta.update(info)
        pred = _predicted(case, N)
        if case.slow or (pred is not None and pred > SLOW_S):
            holder = {}

            def once():
                holder["t"], holder["mem"] = measure_peak(fn, case.device)

            bm.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
            t_ref = holder["t"]
            meta.update(peak_mem_bytes=holder["mem"], rounds=1, single_round=True)
        else:
            t0, mem = measure_peak(fn, case.device)
            t_ref = t0
            if rounds is None:
                rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TARGET_S / max(t0, 1e-6)))))
            if t0 > SLOW_S:
                rounds = 1
            bm.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
            meta.update(peak_mem_bytes=mem, rounds=rounds, single_round=rounds == 1)
        _HISTORY[(case.op, case.impl, case.family, case.device, case.sweep)] = (N, t_ref)
        bm.extra_info.update(meta)
        return meta


@pytest.fixture
def bench(benchmark):
    yield Bench(benchmark)
    gc.collect()


def skip_if_no_device(case) -> None:
    if case.device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: the CUDA path of this case is skipped")


def problem_and_model(case):
    """The case's graph problem and the model of its implementation (identical
    parameters in every implementation); skips the case when its device or the
    gsnn_fast model is missing."""
    from . import cases

    skip_if_no_device(case)
    prob = cases.problem(case.family, case.N, case.max_in_degree)
    if case.impl == "gsnn_fast":
        cases.require("GSNN")
    return prob, cases.models(prob, case.C, case.L, case.device)[case.impl]


def inferer_class(case):
    """``MagnitudeEdgeInferer`` of the case's implementation."""
    from . import cases

    if case.impl == "gsnn_fast":
        return cases.require("inferer")
    return cases.baseline(case.impl).MagnitudeEdgeInferer


# --------------------------------------------------------------------- device floors
_FLOORS: dict = {}


def device_rates(device: str) -> dict:
    """Measured memory bandwidth (bytes/s, a large copy: read + write) and float64
    matmul rate (flop/s) of ``device``, once per session."""
    if device in _FLOORS:
        return _FLOORS[device]
    dev = torch.device(device)
    n = (1 << 28) // 8 if dev.type == "cuda" else (1 << 26) // 8  # 256 MiB / 64 MiB
    a = torch.ones(n, dtype=torch.float64, device=dev)
    b = torch.empty_like(a)
    best_bw = 0.0
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        best_bw = max(best_bw, 2 * a.numel() * 8 / (time.perf_counter() - t))
    m = 4096 if dev.type == "cuda" else 1024
    x = torch.randn(m, m, dtype=torch.float64, device=dev)
    best_fl = 0.0
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        x @ x
        sync(device)
        best_fl = max(best_fl, 2 * m**3 / (time.perf_counter() - t))
    del a, b, x
    _FLOORS[device] = {"bandwidth_Bps": best_bw, "fp64_flops": best_fl}
    return _FLOORS[device]


def floor_info(device: str, nbytes: float, flops: float) -> dict:
    """``floor_s = max(bytes / bandwidth, flops / fp64 rate)`` and its inputs."""
    r = device_rates(device)
    floor = max(nbytes / r["bandwidth_Bps"], flops / r["fp64_flops"])
    return dict(floor_s=floor, floor_bytes=nbytes, floor_flops=flops, **r)
