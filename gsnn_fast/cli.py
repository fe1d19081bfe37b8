"""The ``gsnn-fast`` command line.

Subcommands:
    demo    reproduce the seed notebook end to end (see :mod:`gsnn_fast.demo`);
    infer   rank candidate edges of your own network from your own data
            (a thin wrapper over :func:`gsnn_fast.pipeline.infer_edges`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _int_at_least(lo: int):
    """An argparse type: an integer >= ``lo``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gsnn-fast``."""
    parser = argparse.ArgumentParser(
        prog="gsnn-fast",
        description="gsnn_fast: fast Graph Structured Neural Networks and edge inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train a GSNN with online edge inference on a synthetic graph (seed notebook)",
        description=(
            "Reproduce the online edge-inference notebook end to end: converging-tier graph "
            "with held-out edges, simulated data, joint GSNN + MagnitudeEdgeRegressor "
            "training (best checkpoint by validation AUC), post-hoc MagnitudeEdgeInferer "
            "(corr and partial), test ROC-AUC / MRR / top@k table. Writes results.json, and "
            "val_auc.png / roc.png when matplotlib is installed."
        ),
    )
    demo.add_argument(
        "--width",
        type=_positive_int,
        default=25,
        help="tier-A width of the graph; 2*width function nodes (default 25 -> 50, >= 3)",
    )
    demo.add_argument("--epochs", type=_positive_int, default=30, help="epochs (default 30)")
    demo.add_argument("--seed", type=_seed, default=0, help="torch and numpy seed (default 0)")
    demo.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default auto)"
    )
    demo.add_argument(
        "--out",
        default=None,
        help="output folder (default: a new ./gsnn_fast_demo_<timestamp>)",
    )
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for torch during the run (default 1)",
    )
    demo.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    _add_infer(sub)
    return parser


def _add_infer(sub: argparse._SubParsersAction) -> None:
    from .pipeline.config import OPTION_HELP, InferConfig

    infer = sub.add_parser(
        "infer",
        help="rank candidate function->function edges of your network from your data",
        description=(
            "Train a GSNN on NETWORK with INPUTS -> OUTPUTS jointly with the online "
            "MagnitudeEdgeRegressor, fit the MagnitudeEdgeInferer, and write ranked "
            "candidate edges (candidates.tsv), results.json, the model, the inferer's "
            "statistics, config.toml and plots into --out. Options not given come from "
            "--config, else from the defaults shown."
        ),
        argument_default=argparse.SUPPRESS,
    )
    infer.add_argument("--graph", metavar="NETWORK", help=OPTION_HELP["graph"])
    infer.add_argument("--x", metavar="INPUTS", help=OPTION_HELP["x"])
    infer.add_argument("--y", metavar="OUTPUTS", help=OPTION_HELP["y"])
    infer.add_argument("--out", metavar="DIR", help="output folder (required)")
    infer.add_argument("--config", metavar="FILE", help="TOML file of options (config.toml)")
    infer.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    infer.add_argument("--quiet", action="store_true", help="print errors only")
    defaults = InferConfig()
    for name in InferConfig.field_names():
        if name in ("graph", "x", "y", "plots", "standardize_x", "statistics"):
            continue
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = f" (default {default!r})" if default != "" else ""
        infer.add_argument(
            "--" + name.replace("_", "-"), dest=name, metavar="V", help=OPTION_HELP[name] + shown
        )
    infer.add_argument(
        "--standardize-x", dest="standardize_x", action="store_const", const=True,
        help=OPTION_HELP["standardize_x"],
    )  # fmt: skip
    infer.add_argument(
        "--no-plots", dest="plots", action="store_const", const=False, help="no PNG plots"
    )
    infer.add_argument(
        "--no-statistics", dest="statistics", action="store_const", const=False,
        help="do not write inferer_stats.pt (2 x 8 P N^2 bytes: large for big networks)",
    )  # fmt: skip


def _run_infer(args: argparse.Namespace) -> int:
    from .io import InputError
    from .pipeline import infer_edges

    opts = dict(vars(args))
    opts.pop("command", None)
    out = opts.pop("out", None)
    config = opts.pop("config", None)
    overwrite = opts.pop("overwrite", False)
    quiet = opts.pop("quiet", False)
    if out is None:
        print("gsnn-fast infer: error: --out DIR is required", file=sys.stderr)
        return 2
    graph, x, y = opts.pop("graph", None), opts.pop("x", None), opts.pop("y", None)
    try:
        infer_edges(
            graph,
            x,
            y,
            out,
            config=config,
            overwrite=overwrite,
            log=None if quiet else print,
            **opts,
        )
    except InputError as exc:
        print(f"gsnn-fast infer: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gsnn-fast``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        from .demo import run_demo

        try:
            run_demo(
                width=args.width,
                epochs=args.epochs,
                seed=args.seed,
                device=args.device,
                out=args.out,
                threads=args.threads,
                plots=not args.no_plots,
            )
        except ValueError as exc:
            print(f"gsnn-fast demo: error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "infer":
        return _run_infer(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
