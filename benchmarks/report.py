"""Results JSON -> markdown table (ratios to gsnn_fast) and a log-log plot of time vs N.

``python -m benchmarks.report benchmarks/results/cpu.json`` regenerates ``cpu.md`` and
``cpu.png`` next to it (``python -m benchmarks.run`` calls this after a run).

Ratios are ``baseline median / gsnn_fast median`` for the same (operation, device,
family, N, C, L, B, max in-degree): above 1 gsnn_fast is faster.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

BASE_IMPL = "gsnn_fast"
BASELINES = ("reference_style", "vectorised")

OPS = {
    "gsnn_fwd_bwd": "GSNN forward + backward",
    "inference_batch": "one inference batch (capture + magnitudes + stats)",
    "stats_update": "statistics update alone",
    "partial_solve": "partial-correlation solve alone (no frame)",
    "pair_corr": "pair_corr op vs its steps as torch ops (micro)",
    "evaluate_corr": "evaluate corr (full frame)",
    "evaluate_partial": "evaluate partial (full frame)",
    "evaluate_corr_topk": "evaluate corr (top-10 per target)",
    "evaluate_partial_topk": "evaluate partial (top-10 per target)",
    "regressor_step": "regressor training step",
    "regressor_evaluate_against": "regressor evaluate_against",
    "simulate": "simulate (2,000 + 500 samples)",
    "demo": "the whole demo (seed notebook)",
}

#: the issue's targets at N = 2,000 (converging-tier graph): op -> (kind, value, text)
TARGETS = {
    "evaluate_corr": ("ratio_ref", 30.0, ">= 30x faster than reference_style"),
    "evaluate_partial": ("ratio_ref", 30.0, ">= 30x faster than reference_style"),
    "inference_batch": ("ratio_ref", 2.0, ">= 2x faster than reference_style"),
    "stats_update": ("vs_matmul", 2.0, "within 2x of torch_matmul_f64"),
    "regressor_step": ("ratio_ref", 3.0, ">= 3x faster than reference_style"),
    "regressor_evaluate_against": ("abs", 0.5, "< 0.5 s"),
    "simulate": ("ratio_ref", 100.0, ">= 100x faster than reference_style (seed data, N = 50)"),
}


#: what we know about the operations where a baseline can win (shown under the tables)
WHY = {
    "stats_update": (
        "gsnn_fast's statistics kernel fixes the summation order of every output element "
        "and uses no fused multiply-add (the CPU/CUDA bit-parity rule: "
        "`-ffp-contract=off`), so each product costs a multiply and an add; BLAS dgemm "
        "behind `baddbmm_` / `torch.matmul` issues one FMA per product on blocked tiles. "
        "reference_style runs float32 GEMMs (half the bytes, twice the SIMD lanes) and "
        "gives up float64 precision to do so."
    ),
    "simulate": (
        "both do one sparse product per topological generation over all samples "
        "(gsnn_fast: numpy + scipy.sparse in chunks; vectorised: torch CSR); the gap is "
        "per-generation overhead and is of the order of the run-to-run noise."
    ),
    "regressor_step": (
        "at large N the step is dominated by the dense (P*K*B x N) @ (N x N) products "
        "of the regression on W and its AdamW update, which both run through the same "
        "torch matmuls."
    ),
}


def _key(r: dict) -> tuple:
    return (
        r["operation"], r["device"], r.get("family", ""), r["N"], r["C"], r["L"], r["B"],
        r.get("max_in_degree", 50), r.get("sweep", "N"),
    )  # fmt: skip


def _t(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.0f} us"


def _mem(b: int | None) -> str:
    if b is None:
        return "-"
    if b >= 1 << 30:
        return f"{b / (1 << 30):.2f} GiB"
    if b >= 1 << 20:
        return f"{b / (1 << 20):.0f} MiB"
    return f"{b / 1024:.0f} KiB"


def _ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _flag(r: dict | None) -> str:
    if r is None:
        return ""
    s = ""
    if r.get("extrapolated"):
        s += "~"
    if r.get("single_round"):
        s += "\u00b9"
    return s


def index(records: list[dict]) -> dict:
    """{key: {implementation: record}}."""
    out: dict = defaultdict(dict)
    for r in records:
        out[_key(r)][r["implementation"]] = r
    return out


def ratio(idx_row: dict, impl: str) -> float | None:
    base, other = idx_row.get(BASE_IMPL), idx_row.get(impl)
    if not base or not other or not base["median_s"]:
        return None
    return other["median_s"] / base["median_s"]


def summary_rows(records: list[dict], N: int = 2000, family: str = "conv") -> list[dict]:
    """One row per operation at (N, family, default C/L/B, CPU first device)."""
    idx = index(records)
    rows = []
    devices = sorted({r["device"] for r in records})
    for dev in devices:
        for op in OPS:
            n = 50 if op in ("simulate", "demo") else N
            cands = [
                v for k, v in idx.items()
                if k[0] == op and k[1] == dev and k[2] == family and k[3] == n and k[8] == "N"
            ]  # fmt: skip
            if not cands:
                continue
            row = cands[0]
            rows.append({"op": op, "device": dev, "N": n, "row": row})
    return rows


def _target_status(op: str, row: dict) -> tuple[str, str]:
    if op not in TARGETS:
        return "", ""
    kind, value, text = TARGETS[op]
    base = row.get(BASE_IMPL)
    if base is None:
        return text, "not measured"
    if kind == "abs":
        ok = base["median_s"] < value
        return text, ("met" if ok else "**missed**") + f" ({_t(base['median_s'])})"
    if kind == "vs_matmul":
        mm = row.get("torch_matmul_f64")
        if mm is None:
            return text, "not measured"
        r = base["median_s"] / mm["median_s"]
        return text, ("met" if r <= value else "**missed**") + f" ({r:.2f}x torch.matmul)"
    r = ratio(row, "reference_style")
    if r is None:
        return text, "not measured"
    return text, ("met" if r >= value else "**missed**") + f" ({_ratio(r)})"


def markdown(records: list[dict], meta: dict | None = None) -> str:
    meta = meta or {}
    idx = index(records)
    L: list[str] = []
    title = meta.get("machine", "cpu")
    L.append(f"# gsnn_fast benchmarks: {title}\n")
    L.append(
        "Generated by `python -m benchmarks.run` (`make bench`) from "
        f"`{meta.get('json', title + '.json')}`; do not edit by hand.\n"
    )
    for k in ("commit", "date", "host", "cpu", "threads", "torch", "gsnn_fast_build", "profile",
              "wall_time_s", "load_avg"):  # fmt: skip
        if k in meta:
            L.append(f"- **{k}**: {meta[k]}")
    L.append("")
    L.append(
        "Times are medians over the rounds (interquartile range in the per-operation "
        "tables). **Ratios are baseline time / gsnn_fast time** (above 1: gsnn_fast is "
        "faster). `~` marks a time extrapolated from a smaller measurement (see the "
        "note of the operation); `\u00b9` a single measured round (slow baselines). "
        "Peak memory: extra resident memory at the call's peak (CPU, from the kernel's "
        "high-water mark; see benchmarks/README.md) or peak CUDA allocation.\n"
    )

    # ---- summary
    L.append("## Summary at N = 2,000 (converging-tier graph; simulate and demo: seed data)\n")
    L.append(
        "| operation | device | gsnn_fast | reference_style | vs ref | vectorised | vs vec "
        "| target (issue) | status |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s in summary_rows(records):
        row, op = s["row"], s["op"]
        b, rf, vc = row.get(BASE_IMPL), row.get("reference_style"), row.get("vectorised")
        text, status = _target_status(op, row)
        L.append(
            f"| {OPS[op]} (N={s['N']}) | {s['device']} | {_t(b and b['median_s'])} "
            f"| {_t(rf and rf['median_s'])}{_flag(rf)} | {_ratio(ratio(row, 'reference_style'))} "
            f"| {_t(vc and vc['median_s'])} | {_ratio(ratio(row, 'vectorised'))} "
            f"| {text} | {status} |"
        )
    mm_rows = [
        (k, v) for k, v in idx.items()
        if k[0] == "stats_update" and BASE_IMPL in v and "torch_matmul_f64" in v
    ]  # fmt: skip
    if mm_rows:
        L.append("")
        L.append(
            "Statistics update vs `torch.matmul` in float64 doing the same two products "
            "(gsnn_fast time / matmul time; <= 2 is the target):"
        )
        L.append("")
        L.append(
            "| device | family | N | L | B | gsnn_fast | torch_matmul_f64 | gsnn_fast / matmul |"
        )
        L.append("|---|---|---|---|---|---|---|---|")
        for k, v in sorted(mm_rows, key=lambda kv: (kv[0][1], kv[0][2], kv[0][8], kv[0][3],
                                                    kv[0][5], kv[0][6])):  # fmt: skip
            b, m = v[BASE_IMPL], v["torch_matmul_f64"]
            L.append(
                f"| {k[1]} | {k[2]} | {k[3]} | {k[5]} | {k[6]} | {_t(b['median_s'])} "
                f"| {_t(m['median_s'])} | {b['median_s'] / m['median_s']:.2f} |"
            )

    # ---- losses
    for other in BASELINES:
        losses = []
        for k, v in idx.items():
            r = ratio(v, other)
            if r is not None and r < 1.0:
                losses.append((r, k, v))
        L.append(f"\n## Where gsnn_fast loses to {other}\n")
        if not losses:
            L.append("Nowhere in this run.\n")
            continue
        L.append(
            f"Every measured point where {other} is faster (ratio = {other} time / "
            "gsnn_fast time < 1). *noise* marks a gap smaller than the two interquartile "
            "ranges together (or a single-round point).\n"
        )
        L.append(
            f"| operation | device | sweep | family | N | L | B | gsnn_fast | {other} | ratio "
            "| noise? |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r, k, v in sorted(losses, key=lambda t: (t[1][0], t[1][1], t[1][8], t[1][2], t[1][3])):
            b, o = v[BASE_IMPL], v[other]
            gap = abs(b["median_s"] - o["median_s"])
            noisy = (b.get("rounds", 2) or 0) <= 1 or (o.get("rounds", 2) or 0) <= 1
            noisy = noisy or gap <= (b.get("iqr_s") or 0) + (o.get("iqr_s") or 0)
            L.append(
                f"| {k[0]} | {k[1]} | {k[8]} | {k[2]} | {k[3]} | {k[5]} | {k[6]} "
                f"| {_t(b['median_s'])} | {_t(o['median_s'])}{_flag(o)} | {_ratio(r)} "
                f"| {'noise' if noisy else ''} |"
            )
        ops = sorted({k[0] for _, k, _ in losses})
        known = [f"- `{op}`: {WHY[op]}" for op in ops if op in WHY]
        if known:
            L.append("\nWhy, where we can tell:\n")
            L.extend(known)
        L.append("")

    # ---- floors
    fl = [r for r in records if r.get("floor_s") and r["implementation"] == BASE_IMPL]
    if fl:
        L.append("## Floors (statistics update, partial solve)\n")
        L.append(
            "floor = max(bytes moved / measured bandwidth, float64 flops / measured float64 "
            "matmul rate) of the device (bandwidth: a large copy; rate: a float64 matmul); "
            "ratio = gsnn_fast time / floor (1 = at the floor).\n"
        )
        L.append(
            "| operation | device | sweep | family | N | L | B | gsnn_fast | floor | ratio "
            "| bound by |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")

        def order(r):
            return (r["operation"], r["device"], r.get("family", ""), r.get("sweep", "N"),
                    r["N"], r["L"], r["B"], r.get("max_in_degree", 50))  # fmt: skip

        for r in sorted(fl, key=order):
            bw = r["floor_bytes"] / r["bandwidth_Bps"]
            fp = r["floor_flops"] / r["fp64_flops"]
            sw = r.get("sweep", "N")
            sw = f"E (in-deg<={r.get('max_in_degree')})" if sw == "E" else sw
            L.append(
                f"| {r['operation']} | {r['device']} | {sw} | {r.get('family', '')} | {r['N']} "
                f"| {r['L']} | {r['B']} | {_t(r['median_s'])} | {_t(r['floor_s'])} "
                f"| {r['median_s'] / r['floor_s']:.1f} | {'memory' if bw >= fp else 'fp64'} |"
            )
        rates = {(r["device"], r["bandwidth_Bps"], r["fp64_flops"]) for r in fl}
        for dev, bw, fp in sorted(rates):
            L.append(
                f"\n{dev}: bandwidth {bw / 1e9:.1f} GB/s, float64 matmul {fp / 1e9:.1f} GFLOP/s"
            )
        L.append("")

    # ---- per operation
    L.append("## All measurements\n")
    impls_all = sorted({r["implementation"] for r in records})
    others = [i for i in impls_all if i != BASE_IMPL]
    for op, title in OPS.items():
        keys = sorted(
            (k for k in idx if k[0] == op),
            key=lambda k: (k[1], k[8], k[2], k[3], k[7], k[5], k[6]),
        )
        if not keys:
            continue
        L.append(f"### {title} (`{op}`)\n")
        hdr = "| device | sweep | family | N | E | L | B | gsnn_fast |"
        sep = "|---|---|---|---|---|---|---|---|"
        for o in others:
            if any(o in idx[k] for k in keys):
                hdr += f" {o} | ratio |"
                sep += "---|---|"
        hdr += (
            " peak mem (gsnn_fast / "
            + " / ".join(o for o in others if any(o in idx[k] for k in keys))
            + ") |"
        )
        sep += "---|"
        L.append(hdr)
        L.append(sep)
        for k in keys:
            v = idx[k]
            any_r = next(iter(v.values()))
            sweep = k[8] if k[8] != "E" else f"E (in-deg<={k[7]})"
            b = v.get(BASE_IMPL)
            cell = f"{_t(b['median_s'])} \u00b1{_t(b['iqr_s'])}" if b else "-"
            line = (
                f"| {k[1]} | {sweep} | {k[2]} | {k[3]} | {any_r.get('E', '-')} | {k[5]} | {k[6]} "
                f"| {cell}{_flag(b)} |"
            )
            mems = [_mem(b and b.get("peak_mem_bytes"))]
            for o in others:
                if not any(o in idx[kk] for kk in keys):
                    continue
                r = v.get(o)
                line += f" {_t(r and r['median_s'])}{_flag(r)} | {_ratio(ratio(v, o))} |"
                mems.append(_mem(r and r.get("peak_mem_bytes")))
            line += " " + " / ".join(mems) + " |"
            L.append(line)
        notes = {r.get("note") for v in (idx[k] for k in keys) for r in v.values() if r.get("note")}
        for n in sorted(notes):
            L.append(f"\n{n}")
        L.append("")

    skipped = meta.get("skipped") or []
    if skipped:
        L.append("## Skipped in this run\n")
        for name, why in skipped:
            L.append(f"- `{name}`: {why}")
        L.append("")
    return "\n".join(L) + "\n"


def plot(records: list[dict], path: str | Path, title: str = "") -> bool:
    """Time vs N (log-log), one panel per operation; False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    ops = [op for op in OPS if op != "demo" and any(r["operation"] == op for r in records)]
    if not ops:
        return False
    ncol = 3
    nrow = math.ceil(len(ops) / ncol)
    fig = Figure(figsize=(5.2 * ncol, 3.8 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    colors = {"gsnn_fast": "C0", "reference_style": "C3", "vectorised": "C2",
              "torch_matmul_f64": "C7", "torch_steps": "C4"}  # fmt: skip
    styles = {"conv": "-", "scalefree": "--"}
    markers = {"cpu": "o", "cuda": "s"}
    for ax, op in zip(axes.flat, ops):
        groups: dict = defaultdict(list)
        for r in records:
            if r["operation"] == op and r.get("sweep", "N") == "N":
                groups[(r["implementation"], r.get("family", ""), r["device"])].append(r)
        for (impl, fam, dev), rs in sorted(groups.items()):
            rs = sorted(rs, key=lambda r: r["N"])
            xs = [r["N"] for r in rs]
            ys = [r["median_s"] for r in rs]
            ax.plot(
                xs, ys, styles.get(fam, ":"), color=colors.get(impl, "k"),
                marker=markers.get(dev, "^"), ms=4, label=f"{impl} / {fam} / {dev}",
            )  # fmt: skip
            ex = [(r["N"], r["median_s"]) for r in rs if r.get("extrapolated")]
            if ex:
                ax.plot(*zip(*ex), "o", mfc="white", color=colors.get(impl, "k"), ms=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op, fontsize=10)
        ax.set_xlabel("N (function nodes)")
        ax.set_ylabel("median time (s)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(ops) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seen = {}
    for a in axes.flat[: len(ops)]:
        for h, lab in zip(*a.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(title or "gsnn_fast benchmarks: time vs N (solid: converging tiers, dashed: "
                 "scale-free; hollow: extrapolated)")  # fmt: skip
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    return True


def write(json_path: str | Path, meta: dict | None = None) -> tuple[Path, Path | None]:
    json_path = Path(json_path)
    records = json.loads(json_path.read_text())
    meta = dict(meta or {})
    meta.setdefault("machine", json_path.stem)
    meta.setdefault("json", json_path.name)
    md = json_path.with_suffix(".md")
    md.write_text(markdown(records, meta))
    png = json_path.with_suffix(".png")
    return md, (png if plot(records, png) else None)


if __name__ == "__main__":
    for p in sys.argv[1:] or ["benchmarks/results/cpu.json"]:
        print(*write(p))
