"""Builds and runs the CUDA grid emulator (tests/emulator, docs/EMULATOR.md).

`driver(variant)` compiles every csrc/cuda/*_kernel.cu, the self-test kernels and
the driver as host C++ with g++ (no torch headers), once per set of sources: the
executables are cached under build/emulator/<variant>-<hash of the sources and
flags>/. Variants:
  * "tsan": -O1 -fsanitize=thread; every CUDA thread is a TSan fiber, so races
    between the threads of a block are reported (shared and global memory);
  * "asan": -O1 -fsanitize=address (no race check): every buffer the driver
    allocates has exactly its size, so a kernel reading or writing past an
    array fails; the larger parity cases run on this build only.
`run(calls, variant)` writes the buffers of a list of `Call`s to files, runs the
driver once on them in a subprocess and reads the buffers back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / "build" / "emulator"

COMMON = [
    "-std=c++20",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-Wall",
    "-Wno-unknown-pragmas",
    "-DGSNN_FAST_EMULATOR",
    f"-I{HERE}",
    f"-I{ROOT / 'csrc' / 'cuda'}",
    f"-I{ROOT / 'csrc' / 'include'}",
]
VARIANTS = {
    "tsan": ["-O1", "-g", "-fsanitize=thread"],
    "asan": ["-O1", "-fsanitize=address"],
}
# Races are reported and counted, not fatal; exit status 66 when any was found.
TSAN_OPTIONS = ":".join(
    ["halt_on_error=0", "exitcode=66", "atexit_sleep_ms=0", "report_signal_unsafe=0"]
)
# The driver never frees its fibers: no leak report at exit.
ASAN_OPTIONS = "detect_leaks=0"


def kernel_sources() -> list[Path]:
    """Every CUDA kernel file of the project, plus the emulator's self-test kernels."""
    return sorted((ROOT / "csrc" / "cuda").glob("*_kernel.cu")) + [HERE / "selftest_kernel.cu"]


def _inputs() -> list[Path]:
    files = kernel_sources() + [HERE / "driver.cpp"]
    files += sorted((ROOT / "csrc" / "include" / "gsnn_fast").glob("*.h"))
    files += [ROOT / "csrc" / "cuda" / "launch.h", ROOT / "csrc" / "cuda" / "launchers.h"]
    files += sorted(HERE.glob("*.h"))
    return files


def _key(variant: str) -> str:
    h = hashlib.sha256()
    h.update(" ".join(COMMON + VARIANTS[variant]).encode())
    for f in _inputs():
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _compile(args: list[str]) -> None:
    r = subprocess.run(["g++", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("emulator build failed: g++ " + " ".join(args) + "\n" + r.stderr)


def build(variants: tuple[str, ...] = ("tsan", "asan")) -> dict[str, Path]:
    """Builds the drivers that are not cached yet (all objects in parallel)."""
    out, jobs, links = {}, [], []
    for v in variants:
        target = CACHE / f"{v}-{_key(v)}"
        out[v] = target / "driver"
        if out[v].exists():
            continue
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{v}-", dir=CACHE))
        flags = COMMON + VARIANTS[v]
        objs = []
        for src in kernel_sources():
            obj = tmp / (src.stem + ".o")
            jobs.append([*flags, "-x", "c++", "-c", str(src), "-o", str(obj)])
            objs.append(obj)
        obj = tmp / "driver.o"
        jobs.append([*flags, "-c", str(HERE / "driver.cpp"), "-o", str(obj)])
        objs.append(obj)
        links.append((tmp, target, [*VARIANTS[v], *map(str, objs), "-o", str(tmp / "driver")]))
    try:
        if jobs:
            with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as ex:
                list(ex.map(_compile, jobs))
        for _, _, link in links:
            _compile(link)
    except Exception:
        for tmp, _, _ in links:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    for tmp, target, _ in links:
        try:
            os.replace(tmp, target)  # atomic; another session may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    if links:
        _prune(variants)
    return out


def _prune(variants, keep: int = 3) -> None:
    """Removes all but the `keep` newest builds of each variant."""
    for v in variants:
        builds = sorted(CACHE.glob(f"{v}-*"), key=lambda d: d.stat().st_mtime, reverse=True)
        for old in builds[keep:]:
            shutil.rmtree(old, ignore_errors=True)


_BUILT: dict[str, Path] = {}


def driver(variant: str) -> Path:
    if variant not in _BUILT:
        _BUILT.update(build())
    return _BUILT[variant]


# --- calls ---------------------------------------------------------------------------


@dataclass(frozen=True)
class I64:
    v: int


@dataclass(frozen=True)
class I32:
    v: int


@dataclass(frozen=True)
class F64:
    v: float


@dataclass(frozen=True)
class Modes:
    modes: tuple[int, ...]


@dataclass
class Call:
    """One launcher call. Array arguments are buffers ("device memory"): copied in
    before the call and read back after it (`out[k]` is argument k afterwards)."""

    name: str
    args: tuple
    status: int | None = None
    violations: int | None = None
    out: dict[int, np.ndarray] = field(default_factory=dict)


def call(name: str, *args) -> Call:
    return Call(name, args)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]

    @property
    def races(self) -> int:
        return self.stderr.count("WARNING: ThreadSanitizer: data race")

    @property
    def reports(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if "VIOLATION" in ln]

    def check_clean(self) -> None:
        """Every call returned cudaSuccess, no limit violation, no race."""
        bad = [c for c in self.calls if c.status != 0 or c.violations != 0]
        assert self.returncode == 0 and not bad and self.races == 0, (
            f"emulator run failed (exit {self.returncode}); "
            f"{[(c.name, c.status, c.violations) for c in bad]}\n{self.stderr[-6000:]}"
        )


def _fmt(a) -> str:
    if a is None:
        return "null"
    if isinstance(a, I64):
        return f"i64 {int(a.v)}"
    if isinstance(a, I32):
        return f"i32 {int(a.v)}"
    if isinstance(a, F64):
        return f"f64 {float(a.v).hex()}"
    if isinstance(a, Modes):
        return "modes " + " ".join(str(int(m)) for m in (len(a.modes), *a.modes))
    raise TypeError(f"unsupported argument {a!r}")


def run(calls: list[Call], variant: str = "tsan", timeout: float = 600) -> Run:
    exe = driver(variant)
    with tempfile.TemporaryDirectory(prefix="gsnn-emu-") as tmp:
        lines = []
        for ci, c in enumerate(calls):
            lines.append(f"call {c.name}")
            for k, a in enumerate(c.args):
                if isinstance(a, np.ndarray):
                    a = np.ascontiguousarray(a)
                    src = os.path.join(tmp, f"{ci}_{k}.in")
                    dst = os.path.join(tmp, f"{ci}_{k}.out")
                    a.tofile(src)
                    lines.append(f"buf {src} {a.nbytes} {dst}")
                else:
                    lines.append(_fmt(a))
            lines.append("end")
        script = os.path.join(tmp, "script.txt")
        Path(script).write_text("\n".join(lines) + "\n")
        env = dict(os.environ, TSAN_OPTIONS=TSAN_OPTIONS, ASAN_OPTIONS=ASAN_OPTIONS)
        r = subprocess.run(
            [str(exe), script], capture_output=True, text=True, env=env, timeout=timeout
        )
        results = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("result ")]
        for c, res in zip(calls, results):
            c.status, c.violations = int(res[2]), int(res[3])
        for ci, c in enumerate(calls[: len(results)]):
            for k, a in enumerate(c.args):
                if isinstance(a, np.ndarray):
                    got = np.fromfile(os.path.join(tmp, f"{ci}_{k}.out"), dtype=a.dtype)
                    c.out[k] = got.reshape(a.shape)
        return Run(r.returncode, r.stdout, r.stderr, calls)
