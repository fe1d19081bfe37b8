"""Run the benchmark suite and write ``benchmarks/results/<machine>.{json,md,png}``.

Usage (``make bench`` runs the first form)::

    python -m benchmarks.run                       # full profile, CPU results -> cpu.*
    python -m benchmarks.run --profile quick       # small sizes (development)
    python -m benchmarks.run --profile gpu --out DIR   # CUDA rows, N = 2k/10k/20k (gpu-check)
    python -m benchmarks.run -k "evaluate"         # a subset (pytest -k expression)
    python -m benchmarks.run --report-only         # re-render md/png from the JSON

It runs ``pytest benchmarks --benchmark-only`` in a subprocess (pytest-benchmark does
the timing; the JSON it writes is converted into the records below), then renders the
markdown table and the plot with :mod:`benchmarks.report`.

Record (one per case): ``operation, implementation, device, N, E, C, L, B, median_s,
iqr_s, peak_mem_bytes, commit, date`` plus ``family, sweep, max_in_degree, E_ff,
rounds, single_round`` and, where they apply, ``extrapolated, measured_median_s,
time_scale, note`` and the floor fields (``floor_s, floor_bytes, floor_flops,
bandwidth_Bps, fp64_flops``).

Threads: by default every implementation runs single-threaded (torch intra-op,
OpenMP, BLAS: ``--threads 1``), which gives stable numbers on a small machine shared
with other jobs; ``--threads N`` sets another count for all of them alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from . import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

KEEP = (
    "family", "sweep", "max_in_degree", "E_ff", "rounds", "single_round", "extrapolated",
    "time_scale", "measured_samples", "floor_s", "floor_bytes", "floor_flops",
    "bandwidth_Bps", "fp64_flops", "epochs", "n_positives", "max_cond",
)  # fmt: skip


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    sha = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return sha + ("-dirty" if dirty else "")


def machine_kind() -> str:
    """``cpu`` on a machine without CUDA, else a short GPU name (``h100``, ``a100``...)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name(0).lower()
    for kind in ("h200", "h100", "a100", "a10g", "l40s", "l4", "v100", "t4", "rtx"):
        if kind in name:
            return kind
    return "".join(ch for ch in name.split()[-1] if ch.isalnum()) or "gpu"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def to_records(raw: dict, sha: str, date: str) -> list[dict]:
    out = []
    for b in raw.get("benchmarks", []):
        info, st = dict(b.get("extra_info", {})), b["stats"]
        if "operation" not in info:
            continue
        scale = float(info.get("time_scale", 1.0))
        rec = {
            "operation": info["operation"],
            "implementation": info["implementation"],
            "device": info["device"],
            "N": int(info["N"]),
            "E": int(info.get("E", 0)),
            "C": int(info["C"]),
            "L": int(info["L"]),
            "B": int(info["B"]),
            "median_s": st["median"] * scale,
            "iqr_s": st["iqr"] * scale,
            "peak_mem_bytes": info.get("peak_mem_bytes"),
            "commit": sha,
            "date": date,
        }
        for k in KEEP:
            if k in info:
                rec[k] = info[k]
        if scale != 1.0:
            rec["measured_median_s"] = st["median"]
            rec["note"] = (
                "~ reference_style simulate above N = 50: measured on fewer samples "
                "(`measured_samples`) and scaled linearly to 2,500 (its per-sample loop is "
                "linear in the number of samples)."
            )
        out.append(rec)
    return out


#: (operation, implementation, family, N) not measured because one call takes minutes:
#: extrapolated from the two largest measured N of the same series with their log-log
#: slope, and labelled so (``extrapolated: true`` and a note; ``~`` in the table).
EXTRAPOLATE = [("regressor_evaluate_against", "reference_style", "conv", 2000)]


def add_extrapolations(records: list[dict]) -> None:
    for op, impl, fam, N in EXTRAPOLATE:
        series = sorted(
            (
                r for r in records
                if (r["operation"], r["implementation"], r.get("family")) == (op, impl, fam)
                and r["device"] == "cpu" and r.get("sweep", "N") == "N"
                and not r.get("extrapolated")
            ),
            key=lambda r: r["N"],
        )  # fmt: skip
        if len(series) < 2 or any(r["N"] >= N for r in series):
            continue
        a, b = series[-2], series[-1]
        k = math.log(b["median_s"] / a["median_s"]) / math.log(b["N"] / a["N"])
        twin = next(
            (r for r in records if (r["operation"], r.get("family"), r["N"], r["device"],
             r.get("sweep", "N")) == (op, fam, N, "cpu", "N")),
            None,
        )  # fmt: skip
        rec = dict(b)
        rec.update(
            N=N,
            E=twin["E"] if twin else None,
            E_ff=twin.get("E_ff") if twin else None,
            median_s=b["median_s"] * (N / b["N"]) ** k,
            iqr_s=None,
            peak_mem_bytes=None,
            rounds=0,
            single_round=False,
            extrapolated=True,
            measured_median_s=None,
            note=(
                f"~ {impl} `{op}` at N = {N:,} ({fam}): not measured (one call takes "
                f"minutes); extrapolated from N = {a['N']:,} and {b['N']:,} with their "
                f"log-log slope {k:.2f}."
            ),
        )
        records.append(rec)


def skipped_from_junit(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    out = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        for sk in tc.findall("skipped"):
            out.append((tc.get("name", ""), (sk.get("message") or "").removeprefix("Skipped: ")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--profile", choices=("full", "quick", "gpu"), default="full")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("GSNN_BENCH_THREADS", 1)))
    ap.add_argument("--machine", default=None, help="results file stem (default: cpu / gpu kind)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression (subset)")
    ap.add_argument("--report-only", action="store_true", help="only re-render md / png")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="replace only the re-measured records in the existing JSON (with -k)",
    )
    args = ap.parse_args(argv)

    machine = args.machine or machine_kind()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{machine}.json"
    meta_path = args.out / f".{machine}.meta.json"
    if args.report_only:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        md, png = report.write(json_path, meta)
        print(f"wrote {md}" + (f" and {png}" if png else ""))
        return 0

    t0 = time.time()
    raw_path = args.out / f".{machine}.pytest-benchmark.json"
    junit = args.out / f".{machine}.junit.xml"
    env = dict(os.environ)
    env["GSNN_BENCH_PROFILE"] = args.profile
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    env["GSNN_BENCH_THREADS"] = str(args.threads)
    cmd = [
        sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-v", "-rs",
        "--durations=40",
        "-p", "no:cacheprovider", f"--benchmark-json={raw_path}", f"--junitxml={junit}",
        "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=fullname",
    ]  # fmt: skip
    if args.keyword:
        cmd += ["-k", args.keyword]
    load0 = os.getloadavg()
    print("running:", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    wall = time.time() - t0
    if not raw_path.exists():
        print("pytest produced no benchmark JSON", file=sys.stderr)
        return rc or 1

    import torch

    sha = commit()
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = to_records(json.loads(raw_path.read_text()), sha, date)
    if args.merge and json_path.exists():
        fresh = {(report._key(r), r["implementation"]) for r in records}
        old = json.loads(json_path.read_text())
        keep = [r for r in old if (report._key(r), r["implementation"]) not in fresh]
        # extrapolated points (rounds == 0) are recomputed from the merged records
        records = [r for r in keep if r.get("rounds") != 0] + records
    add_extrapolations(records)
    json_path.write_text(json.dumps(records, indent=1) + "\n")
    try:
        import gsnn_fast

        build = gsnn_fast.build_info()
        build = f"cuda={build.get('cuda')} ({build.get('compiler', '')})"
    except Exception as exc:  # noqa: BLE001 - informational only
        build = f"unavailable ({exc})"
    load1 = os.getloadavg()
    meta = {
        "machine": machine,
        "json": json_path.name,
        "commit": sha,
        "date": date,
        "host": f"{platform.node()} ({platform.system()} {platform.release()})",
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "threads": f"{args.threads} (torch intra-op, OpenMP and BLAS, every implementation)",
        "torch": torch.__version__,
        "gsnn_fast_build": build,
        "profile": args.profile + (f" (-k {args.keyword})" if args.keyword else ""),
        "wall_time_s": f"{wall:.0f} (pytest run incl. setup; exit code {rc})",
        "load_avg": f"{load0[0]:.2f} at start, {load1[0]:.2f} at end (1-min)",
        "skipped": skipped_from_junit(junit),
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    md, png = report.write(json_path, meta)
    for p in (raw_path, junit):
        p.unlink(missing_ok=True)
    print(f"wrote {json_path} ({len(records)} records), {md}" + (f", {png}" if png else ""))
    print(f"total wall time {time.time() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
