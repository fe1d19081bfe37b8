"""The inputs of an edge-inference run: the user's network and data files read,
checked, mapped to the model's node roles and split (``prepare_data``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
import pandas as pd

from ..io import (
    InputError,
    check_same_samples,
    read_network,
    read_nodes_table,
    read_table,
)
from .config import InferConfig

__all__ = ["PreparedData", "prepare_data", "split_counts"]


@dataclass
class PreparedData:
    """Validated inputs: the network restricted to the GSNN's edge kinds, node roles,
    aligned float64 tables (NaN samples dropped) and the validation report."""

    graph: nx.DiGraph
    input_nodes: list[str]
    function_nodes: list[str]
    output_nodes: list[str]
    ff_edges: list[tuple[str, str]]
    x: pd.DataFrame
    y: pd.DataFrame
    report: dict[str, Any]


def _names(items: Any, k: int = 10) -> list[str]:
    items = [str(v) for v in items]
    return items[:k] + ([f"... ({len(items)} in all)"] if len(items) > k else [])


def prepare_data(
    cfg: InferConfig,
    graph: Any = None,
    x: Any = None,
    y: Any = None,
) -> PreparedData:
    """Read and check the network and the tables named by ``cfg`` (or given as objects:
    an ``nx.DiGraph`` and two DataFrames indexed by sample id). Raises InputError."""
    report: dict[str, Any] = {}
    # -- network
    if graph is None:
        if not cfg.graph:
            raise InputError("no network given (--graph)")
        G0, info = read_network(
            cfg.graph,
            fmt=cfg.graph_format or None,
            source_col=cfg.source_col,
            target_col=cfg.target_col,
            sign_col=cfg.sign_col or None,
        )
        net_label = f"network file {cfg.graph!r}"
    else:
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise InputError("graph must be a path or a networkx DiGraph")
        G0 = nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)
        info = {"edges_read": G0.number_of_edges(), "duplicate_edges": 0, "self_loops": 0}
        net_label = "network"
    report["network"] = {"nodes": G0.number_of_nodes(), **info}

    # -- tables
    if x is None and not cfg.x:
        raise InputError("no INPUTS table given (--x)")
    if y is None and not cfg.y:
        raise InputError("no OUTPUTS table given (--y)")
    X = read_table(x if x is not None else cfg.x, "INPUTS")
    Y = read_table(y if y is not None else cfg.y, "OUTPUTS")
    x_label = f"INPUTS file {cfg.x!r}" if x is None else "INPUTS"
    y_label = f"OUTPUTS file {cfg.y!r}" if y is None else "OUTPUTS"
    check_same_samples(X, Y, x_label, y_label)
    both = sorted(set(X.columns) & set(Y.columns))
    if both:
        raise InputError(
            f"node(s) {_names(both)} are columns of both {x_label} and {y_label}; a node is "
            "an input or an output, not both"
        )

    # -- roles
    roles: dict[str, str] = {}
    if cfg.nodes:
        roles = read_nodes_table(cfg.nodes, node_col=cfg.node_col, role_col=cfg.role_col)
        for table, label, role in ((X, x_label, "input"), (Y, y_label, "output")):
            wrong = [c for c in table.columns if c in roles and roles[c] != role]
            if wrong:
                raise InputError(
                    f"{label}: column {wrong[0]!r} has role {roles[wrong[0]]!r} in the nodes "
                    f"file {cfg.nodes!r}, expected {role!r}"
                )
            want = [n for n, r in roles.items() if r == role and n in G0]
            absent = [n for n in want if n not in table.columns]
            if absent:
                raise InputError(
                    f"{label}: no column for the {role} node(s) {_names(absent)} of the nodes "
                    f"file {cfg.nodes!r}"
                )
    dropped: dict[str, list[str]] = {}
    for which, label in (("x", x_label), ("y", y_label)):
        table = X if which == "x" else Y
        unknown = [c for c in table.columns if c not in G0]
        if unknown:
            if cfg.unknown_nodes == "error":
                raise InputError(
                    f"{label}: column(s) {_names(unknown)} are not nodes of the {net_label} "
                    "(use --unknown-nodes drop to leave them out)"
                )
            dropped[which] = unknown
            table = table.drop(columns=unknown)
            if table.shape[1] == 0:
                raise InputError(f"{label}: none of its columns is a node of the {net_label}")
            if which == "x":
                X = table
            else:
                Y = table
    report["data_columns_not_in_network"] = {k: _names(v) for k, v in dropped.items()}
    input_nodes = list(X.columns)
    output_nodes = list(Y.columns)
    io_nodes = set(input_nodes) | set(output_nodes)
    function_nodes = [n for n in G0.nodes if n not in io_nodes]
    if roles:
        bad = [n for n in function_nodes if roles.get(n, "function") != "function"]
        if bad:
            raise InputError(
                f"node(s) {_names(bad)} have role input/output in the nodes file {cfg.nodes!r} "
                "but no column in the data"
            )
    if not function_nodes:
        raise InputError(f"{net_label}: every node is an input or an output; no function nodes")

    # -- edges by kind
    kind = {n: "input" for n in input_nodes}
    kind.update({n: "output" for n in output_nodes})
    G = nx.DiGraph()
    G.add_nodes_from(input_nodes + function_nodes + output_nodes)
    ignored: dict[str, int] = {}
    ff_edges: list[tuple[str, str]] = []
    fself = 0
    for u, v, attrs in G0.edges(data=True):
        ku, kv = kind.get(u, "function"), kind.get(v, "function")
        if ku == "function" and kv == "function":
            if u == v:
                fself += 1
                continue
            ff_edges.append((u, v))
        elif (ku, kv) not in (("input", "function"), ("function", "output")):
            key = f"{ku}->{kv}"
            ignored[key] = ignored.get(key, 0) + 1
            continue
        G.add_edge(u, v, **attrs)
    report["edges"] = {
        "input->function": sum(1 for u, v in G.edges if kind.get(u) == "input"),
        "function->function": len(ff_edges),
        "function->output": sum(1 for u, v in G.edges if kind.get(v) == "output"),
        "ignored (kind)": ignored,
        "function self-loops dropped": fself,
    }
    if not ff_edges:
        raise InputError(
            f"{net_label}: no function->function edges (with {len(input_nodes)} inputs and "
            f"{len(output_nodes)} outputs from the data columns); edge inference ranks "
            "function->function edges and needs some known ones"
        )
    isolated = {
        "inputs without an edge to a function node": [
            n for n in input_nodes if G.out_degree(n) == 0
        ],
        "outputs without an edge from a function node": [
            n for n in output_nodes if G.in_degree(n) == 0
        ],
        "function nodes without edges": [n for n in function_nodes if G.degree(n) == 0],
    }
    report["isolated_nodes"] = {k: _names(v) for k, v in isolated.items() if v}
    report["nodes"] = {
        "input": len(input_nodes),
        "function": len(function_nodes),
        "output": len(output_nodes),
    }

    # -- samples with NaN
    nan_rows = X.isna().any(axis=1).to_numpy() | Y.isna().any(axis=1).to_numpy()
    nan_ids = X.index[nan_rows].tolist()
    if nan_ids and cfg.nan_samples == "error":
        raise InputError(
            f"{len(nan_ids)} sample(s) hold NaN values, e.g. {_names(nan_ids, 5)} "
            "(use --nan-samples drop to leave them out)"
        )
    X, Y = X.loc[~nan_rows], Y.loc[~nan_rows]
    report["samples"] = {
        "read": int(len(nan_rows)),
        "with_nan_dropped": len(nan_ids),
        "with_nan_ids": _names(nan_ids),
        "used": int(len(X)),
    }
    return PreparedData(G, input_nodes, function_nodes, output_nodes, ff_edges, X, Y, report)


def split_counts(n: int, cfg: InferConfig) -> tuple[int, int, int]:
    n_test = int(round(n * cfg.test_fraction))
    n_val = int(round(n * cfg.val_fraction))
    need_val = 2 if cfg.val_fraction > 0 else 0
    need_test = 2 if cfg.test_fraction > 0 else 0
    n_val, n_test = max(n_val, need_val), max(n_test, need_test)
    n_train = n - n_val - n_test
    need = 8 + need_val + need_test
    if n_train < 8:
        raise InputError(
            f"{n} usable samples: the split needs at least {need} (8 to train"
            + (f", {need_val} to validate" if need_val else "")
            + (f", {need_test} to test" if need_test else "")
            + f"; val_fraction {cfg.val_fraction}, test_fraction {cfg.test_fraction})"
        )
    return n_train, n_val, n_test
