"""``python -m benchmarks.edge_recovery [--quick] [--out DIR]``: the edge-recovery benchmark.

Writes ``edge_recovery.json`` (every run, every method, and the per-family summary),
``edge_recovery.md`` (mean +- std and min-max of test ROC-AUC, AP, MRR, top@k per family
and method) and ``edge_recovery.png`` (matplotlib, when installed) into ``--out``
(default benchmarks/results/). ``--quick``: three families, two seeds (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .families import FAMILIES, Family, build_task, silent_test_edges
from .run import METHODS, run_one

QUICK = ("converging_50", "scale_free_60", "layered_skip_60")
METRICS = ("auc", "ap", "mrr", "top@1", "top@3", "top@10")
LABELS = {
    "mei_corr": "MEI corr",
    "mei_partial": "MEI partial",
    "regressor": "regressor",
    "grad_corr": "gradient corr (new)",
    "grad_partial": "gradient partial (new)",
    "grad_partial_stage1": "gradient partial + 1 stage (new)",
    "grad_complete_weight": "gradient partial + completion, weight 0.5 (previous default)",
    "grad_complete": "gradient partial + completion, band (new)",
    "grad_complete_r3": "gradient partial + completion, band, 3 retraining rounds (new)",
}


def _load_note(runs: list[dict], load0: tuple, load1: tuple) -> str:
    """The 1-minute load average the runs saw (recorded per run; a resumed report keeps
    the original runs' values)."""
    seen = [r["load_1min"] for r in runs if "load_1min" in r]
    if seen:
        return (
            f"1-min load average {min(seen):.1f}-{max(seen):.1f} over the runs "
            "(other developers' jobs share the CPUs)"
        )
    return (
        f"1-min load average {load0[0]:.1f} at start, {load1[0]:.1f} at end "
        "(other developers' jobs share the CPUs)"
    )


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per family and method: mean, std, min, max of every metric over the seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for fam in dict.fromkeys(r["family"] for r in runs):
        rs = [r for r in runs if r["family"] == fam]
        out[fam] = {}
        for m in rs[0]["methods"]:
            row: dict[str, float] = {}
            for k in METRICS + ("seconds",):
                v = np.array([r["methods"][m][k] for r in rs], dtype=float)
                row[k] = float(v.mean())
                row[k + "_std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
                row[k + "_min"] = float(v.min())
                row[k + "_max"] = float(v.max())
            out[fam][m] = row
    return out


def overall(summary: dict) -> dict[str, float]:
    """Mean over families of each method's mean test ROC-AUC."""
    methods = next(iter(summary.values())).keys()
    return {m: float(np.mean([summary[f][m]["auc"] for f in summary])) for m in methods}


def markdown(summary: dict, runs: list[dict], meta: dict) -> str:
    fams = {f.name: f for f in FAMILIES}
    lines = [
        "# Edge recovery: held-out function -> function edges",
        "",
        f"Command: `{meta['command']}`; {meta['n_runs']} runs, {meta['wall_s']:.0f} s wall on "
        f"{meta['machine']} ({meta['threads']} torch thread; {meta['load']}).",
        "",
        "Protocol per run: simulate the true DAG (linear-Gaussian unless stated), withhold the "
        "held-out edges from the model, train the GSNN with the notebook's settings "
        "(channels 8, 6 layers, dropout 0.2, ELU, norm none, AdamW 1e-4, batch 64) jointly "
        "with the MagnitudeEdgeRegressor (checkpoint = best ROC-AUC on the validation "
        "half of the held-out edges), then score every pair with each method on the "
        "training data. Metrics on the test half: ROC-AUC and average precision against "
        "the true non-edges (NaN scores rank last); MRR and top@k of each test edge among "
        "its target's candidate sources (known and validation edges excluded).",
        "",
        "## Test ROC-AUC, mean +- std (min-max) over seeds",
        "",
    ]
    methods = list(next(iter(summary.values())).keys())
    head = (
        "| family | N | seeds | epochs | test edges (silent) | "
        + " | ".join(LABELS.get(m, m) for m in methods)
        + " |"
    )
    lines += [head, "|" + "---|" * (5 + len(methods))]
    for fam, rows in summary.items():
        rs = [r for r in runs if r["family"] == fam]
        f = fams.get(fam)
        cells = [
            f"{rows[m]['auc']:.3f} +- {rows[m]['auc_std']:.3f} "
            f"({rows[m]['auc_min']:.2f}-{rows[m]['auc_max']:.2f})"
            for m in methods
        ]
        ep = f.epochs if f else ""
        n_test = sum(r["n_test_edges"] for r in rs)
        silent = sum(silent_test_edges(build_task(f, r["seed"])) for r in rs) if f else 0
        lines.append(
            f"| {fam} | {rs[0]['n_function']} | {len(rs)} | {ep} | {n_test} ({silent}) | "
            + " | ".join(cells)
            + " |"
        )
    ov = overall(summary)
    lines.append(
        "| **mean over families** | | | | | "
        + " | ".join(f"**{ov[m]:.3f}**" for m in methods)
        + " |"
    )
    lines += [
        "",
        "Test edges (silent): test edges over all seeds, and in brackets those whose source "
        "has no path from an input or whose target has no path to an output in the graph "
        "the model sees; the model carries no signal for them: every method that reads the "
        "trained model scores them NaN (ranked last); the completion scorer scores them "
        "from a second model trained on a completed graph.",
    ]
    lines += [
        "",
        "## Silent and non-silent test edges",
        "",
        "Test ROC-AUC of the silent test edges and of the others, each against every true "
        "non-edge (silent non-edges included), mean over the seeds that have such edges "
        "(a run without silent test edges counts only in the second number).",
        "",
        "| family | silent / all test edges | "
        + " | ".join(f"{LABELS.get(m, m)}: silent / non-silent" for m in methods)
        + " |",
        "|" + "---|" * (2 + len(methods)),
    ]
    for fam in summary:
        rs = [r for r in runs if r["family"] == fam]
        if "n_silent_test_edges" not in rs[0]:
            continue
        cells = []
        for m in methods:
            a = [r["methods"][m].get("auc_silent", np.nan) for r in rs]
            b = [r["methods"][m].get("auc_nonsilent", np.nan) for r in rs]
            a_txt = f"{np.nanmean(a):.3f}" if np.isfinite(a).any() else "-"
            cells.append(f"{a_txt} / {np.nanmean(b):.3f}")
        n_s = sum(r["n_silent_test_edges"] for r in rs)
        n_t = sum(r["n_test_edges"] for r in rs)
        lines.append(f"| {fam} | {n_s} / {n_t} | " + " | ".join(cells) + " |")
    base = [m for m in ("mei_corr", "mei_partial", "regressor") if m in methods]
    new = [m for m in methods if m not in base]
    if base and new:
        lines += [
            "",
            "## Paired test ROC-AUC difference against the family's best baseline",
            "",
            "Per seed (same trained model), new method minus the baseline with the best mean "
            "on that family; mean +- standard error over seeds (min).",
            "",
            "| family | best baseline | " + " | ".join(LABELS.get(m, m) for m in new) + " |",
            "|" + "---|" * (2 + len(new)),
        ]
        for fam, rows in summary.items():
            rs = [r for r in runs if r["family"] == fam]
            best = max(base, key=lambda b: rows[b]["auc"])
            cells = []
            for m in new:
                d = np.array([r["methods"][m]["auc"] - r["methods"][best]["auc"] for r in rs])
                se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
                cells.append(f"{d.mean():+.3f} +- {se:.3f} ({d.min():+.3f})")
            lines.append(f"| {fam} | {LABELS.get(best, best)} | " + " | ".join(cells) + " |")
    for metric in ("ap", "mrr", "top@1", "top@10"):
        lines += ["", f"## Test {metric}, mean +- std", ""]
        lines += ["| family | " + " | ".join(LABELS.get(m, m) for m in methods) + " |"]
        lines += ["|" + "---|" * (1 + len(methods))]
        for fam, rows in summary.items():
            lines.append(
                f"| {fam} | "
                + " | ".join(
                    f"{rows[m][metric]:.3f} +- {rows[m][metric + '_std']:.3f}" for m in methods
                )
                + " |"
            )
    conv = [r for r in runs if r["family"] == "converging_50"]
    if conv:
        lines += [
            "",
            "## Seed-notebook check (converging_50: the notebook's graph, split and training)",
            "",
            "Test ROC-AUC counted as `gsnn-fast demo` counts it (NaN pairs dropped, validation "
            "edges among the negatives); `gsnn-fast demo --seed S` trains the same model.",
            "",
            "| seed | " + " | ".join(LABELS.get(m, m) for m in methods) + " |",
            "|" + "---|" * (1 + len(methods)),
        ]
        for r in conv:
            lines.append(
                f"| {r['seed']} | "
                + " | ".join(f"{r['methods'][m]['auc_demo']:.3f}" for m in methods)
                + " |"
            )
        med = {m: float(np.median([r["methods"][m]["auc_demo"] for r in conv])) for m in methods}
        lines.append("| median | " + " | ".join(f"{med[m]:.3f}" for m in methods) + " |")
    lines += ["", "## Seconds per method (scoring only, mean over seeds; training excluded)", ""]
    lines += ["| family | train | " + " | ".join(LABELS.get(m, m) for m in methods) + " |"]
    lines += ["|" + "---|" * (2 + len(methods))]
    for fam, rows in summary.items():
        tr = np.mean([r["train_s"] for r in runs if r["family"] == fam])
        lines.append(
            f"| {fam} | {tr:.1f} | "
            + " | ".join(f"{rows[m]['seconds']:.2f}" for m in methods)
            + " |"
        )
    lines += ["", "## Families", ""]
    for fam in summary:
        f = fams.get(fam)
        if f is None:
            continue
        desc = (
            f"{f.graph}, {f.n_function} function nodes, held-out fraction {f.held_out}, "
            f"noise {f.noise}, {'signed edges' if f.signed else 'positive edges'}"
            f"{', nonlinear node functions' if f.nonlinear else ''}, {f.n_train} training "
            f"samples, {f.epochs} epochs"
        )
        lines.append(f"- `{fam}`: {desc}{'; ' + f.note if f.note else ''}")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> bool:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fams = list(summary)
    methods = list(next(iter(summary.values())).keys())
    fig = Figure(figsize=(max(8, 1.3 * len(fams)), 4.5))
    ax = fig.subplots()
    w = 0.8 / len(methods)
    x = np.arange(len(fams))
    for k, m in enumerate(methods):
        mean = [summary[f][m]["auc"] for f in fams]
        lo = [summary[f][m]["auc"] - summary[f][m]["auc_min"] for f in fams]
        hi = [summary[f][m]["auc_max"] - summary[f][m]["auc"] for f in fams]
        ax.bar(x + (k - (len(methods) - 1) / 2) * w, mean, w, yerr=[lo, hi], capsize=2,
               label=LABELS.get(m, m))  # fmt: skip
    ax.set_xticks(x, fams, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.9, color="k", ls=":", lw=0.8)
    ax.set_ylabel("test ROC-AUC (mean, min-max bars)")
    ax.set_title("Held-out edge recovery per graph family")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.edge_recovery", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 families x 2 seeds")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    ap.add_argument("--families", default=None, help="comma-separated family names")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (default 5, quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="override every family's epochs")
    ap.add_argument(
        "--methods", default=None, help="comma-separated subset of " + ",".join(METHODS)
    )
    ap.add_argument("--name", default=None, help="file stem (default edge_recovery[_quick])")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished runs of an interrupted run (<stem>.runs.jsonl in --out)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.families.split(",") if args.families else (list(QUICK) if args.quick else None)
    fams: list[Family] = [f for f in FAMILIES if names is None or f.name in names]
    if names and len(fams) != len(names):
        raise SystemExit(f"unknown family in {names}; known: {[f.name for f in FAMILIES]}")
    n_seeds = args.seeds or (2 if args.quick else 5)
    methods = {m: METHODS[m] for m in args.methods.split(",")} if args.methods else dict(METHODS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("edge_recovery_quick" if args.quick else "edge_recovery")
    load0 = os.getloadavg()
    log_path = out / f"{stem}.runs.jsonl"
    done: dict[tuple[str, int], dict] = {}
    if args.resume and log_path.exists():
        for line in log_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["family"], r["seed"])] = r
    elif log_path.exists():
        log_path.unlink()
    runs = []
    for fam in fams:
        for seed in range(n_seeds):
            if (fam.name, seed) in done and set(done[(fam.name, seed)]["methods"]) == set(methods):
                runs.append(done[(fam.name, seed)])
                continue
            t_run = time.perf_counter()
            r = run_one(fam, seed, methods, epochs=args.epochs)
            r["wall_s"] = time.perf_counter() - t_run
            r["load_1min"] = os.getloadavg()[0]
            runs.append(r)
            with open(log_path, "a") as fh:
                fh.write(json.dumps(r, default=float) + "\n")
            aucs = " ".join(f"{m} {v['auc']:.3f}" for m, v in r["methods"].items())
            print(f"{fam.name} seed {seed} | train {r['train_s']:.1f}s | {aucs}", flush=True)
    wall = sum(r.get("wall_s", 0.0) for r in runs)  # resumed runs keep their own time
    load1 = os.getloadavg()
    summary = summarise(runs)
    meta = {
        "command": "python -m benchmarks.edge_recovery" + (" --quick" if args.quick else ""),
        "n_runs": len(runs),
        "wall_s": wall,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "threads": 1,
        "load": _load_note(runs, load0, load1),
        "torch": torch.__version__,
        "seeds": list(range(n_seeds)),
    }
    result = {
        "meta": meta,
        "overall_mean_auc": overall(summary),
        "summary": summary,
        "runs": runs,
    }
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=float))
    (out / f"{stem}.md").write_text(markdown(summary, runs, meta))
    wrote = plot(summary, out / f"{stem}.png")
    print(markdown(summary, runs, meta).split("## Test ap")[0])
    print(f"wrote {out / (stem + '.json')}, .md{', .png' if wrote else ''} ({wall:.0f} s)")
    return result


if __name__ == "__main__":
    main()
