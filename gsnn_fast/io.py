"""Reading a user's network and data tables, and writing run folders. (Over ~450 lines
on purpose: every input format with its checks, which share one error type.)

Everything here raises :class:`InputError` (a ``ValueError``) with a message naming the
file, column or node at fault. Nothing in this module trains or scores anything; the
pipeline (:mod:`gsnn_fast.pipeline`) calls it to validate every input before it writes a
single file.

Formats:

* network: an edge list (``.tsv`` / ``.txt`` tab-separated, ``.csv`` comma-separated)
  with a header naming the source and target columns (default ``source`` / ``target``)
  and optionally a sign column; SIF (``.sif``: ``A <relation> B [C ...]`` per line); or
  GraphML (``.graphml`` / ``.xml``, read by networkx, directed);
* nodes table (optional): a CSV/TSV with a node column and a role column whose values
  are ``input``, ``function`` or ``output``;
* data tables: samples x nodes, CSV/TSV (first column = sample ids, header = node names)
  or Parquet (needs pyarrow; a stored pandas index is used as the sample ids, else the
  first column).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

__all__ = [
    "InputError",
    "ROLES",
    "read_network",
    "read_nodes_table",
    "read_table",
    "check_same_samples",
    "write_toml",
    "read_toml",
    "RunFolder",
]

ROLES = ("input", "function", "output")
#: Files whose presence marks a folder as holding a run.
RUN_MARKERS = ("results.json", "candidates.tsv", "config.toml")


class InputError(ValueError):
    """A user input (file, column, node, option) that the pipeline cannot use."""


def _preview(items: Iterable[Any], k: int = 8) -> str:
    items = list(items)
    head = ", ".join(repr(str(x)) for x in items[:k])
    return head + (f", ... ({len(items)} in all)" if len(items) > k else "")


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file {str(p)!r} does not exist")
    if not p.is_file():
        raise InputError(f"{what} file {str(p)!r} is not a regular file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} file {str(p)!r} is not readable")
    return p


def _sep_for(p: Path) -> str:
    return "," if p.suffix.lower() == ".csv" else "\t"


def _raw_header(p: Path, sep: str, what: str) -> list[str]:
    """The header row as written (pandas renames duplicate names to ``a.1``)."""
    try:
        head = pd.read_csv(p, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} file {str(p)!r} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{what} file {str(p)!r} could not be read: {exc}") from None
    return [str(v).strip() for v in head.iloc[0].tolist()]


# ----------------------------------------------------------------------------- network


def read_network(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    source_col: str = "source",
    target_col: str = "target",
    sign_col: str | None = "sign",
) -> tuple[nx.DiGraph, dict[str, Any]]:
    """Read a network file into a DiGraph with string node names.

    Args:
        path: the file.
        fmt: ``'tsv'``, ``'csv'``, ``'sif'`` or ``'graphml'``; default from the suffix
            (``.csv`` -> csv, ``.sif`` -> sif, ``.graphml`` / ``.xml`` -> graphml, other
            -> tsv).
        source_col, target_col: edge-list columns of the edge's two ends.
        sign_col: optional edge-list column of the edge's sign (a number or ``+`` / ``-``;
            stored as the edge attribute ``sign``); ignored when the column is absent.

    Returns:
        ``(G, info)``; ``info`` counts ``edges_read``, ``duplicate_edges`` and
        ``self_loops`` (kept in G; the pipeline drops function self-loops).
    """
    p = _check_file(path, "network")
    if fmt is None:
        suffix = p.suffix.lower()
        fmt = {".csv": "csv", ".sif": "sif", ".graphml": "graphml", ".xml": "graphml"}.get(
            suffix, "tsv"
        )
    fmt = fmt.lower()
    if fmt == "graphml":
        try:
            G0 = nx.read_graphml(p)
        except Exception as exc:  # networkx raises several parser errors
            raise InputError(f"network file {str(p)!r} is not valid GraphML: {exc}") from None
        if not G0.is_directed():
            raise InputError(
                f"network file {str(p)!r}: the GraphML graph is undirected "
                "(edgedefault='undirected'); a GSNN needs directed edges"
            )
        pairs = [(str(u), str(v)) for u, v in G0.edges()]
        signs = (
            [G0.edges[u, v].get("sign") for u, v in G0.edges()] if not G0.is_multigraph() else []
        )
        isolated = [str(n) for n in G0.nodes]
    elif fmt == "sif":
        pairs, signs, isolated = [], [], []
        try:
            lines = p.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"network file {str(p)!r} could not be read: {exc}") from None
        for lineno, line in enumerate(lines, 1):
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [x.strip() for x in parts if x.strip()]
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) == 1:
                isolated.append(parts[0])
                continue
            if len(parts) == 2:
                raise InputError(
                    f"network file {str(p)!r} line {lineno}: SIF lines are 'A <relation> B', "
                    f"got {line.strip()!r}"
                )
            rel = parts[1].lower()
            sign = -1.0 if rel in ("-1", "-", "inhibits", "inhibition", "represses") else None
            for tgt in parts[2:]:
                pairs.append((parts[0], tgt))
                signs.append(sign)
    elif fmt in ("tsv", "csv"):
        sep = "," if fmt == "csv" else "\t"
        header = _raw_header(p, sep, "network")
        missing = [c for c in (source_col, target_col) if c not in header]
        if missing:
            raise InputError(
                f"network file {str(p)!r}: no column {missing[0]!r} (columns: "
                f"{_preview(header)}); name the columns with --source-col / --target-col"
            )
        try:
            df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise InputError(f"network file {str(p)!r} could not be read: {exc}") from None
        src = df[source_col].str.strip()
        dst = df[target_col].str.strip()
        empty = np.flatnonzero(((src == "") | (dst == "")).to_numpy())
        if empty.size:
            raise InputError(
                f"network file {str(p)!r}: row {int(empty[0]) + 2} has an empty "
                f"{source_col!r} or {target_col!r}"
            )
        pairs = list(zip(src.tolist(), dst.tolist()))
        signs = [None] * len(pairs)
        if sign_col is not None and sign_col in df.columns:
            signs = [_parse_sign(v, p, sign_col, i) for i, v in enumerate(df[sign_col])]
        isolated = []
    else:
        raise InputError(f"network format must be tsv, csv, sif or graphml, got {fmt!r}")

    if not pairs:
        raise InputError(f"network file {str(p)!r} holds no edges")
    G = nx.DiGraph()
    G.add_nodes_from(isolated)
    dup = 0
    loops = 0
    for (u, v), s in zip(pairs, signs or [None] * len(pairs)):
        if G.has_edge(u, v):
            dup += 1
        if u == v:
            loops += 1
        if s is None:
            G.add_edge(u, v)
        else:
            G.add_edge(u, v, sign=float(s))
    return G, {"edges_read": len(pairs), "duplicate_edges": dup, "self_loops": loops}


def _parse_sign(value: Any, p: Path, col: str, row: int) -> float | None:
    text = str(value).strip()
    if text == "":
        return None
    if text in ("+", "-"):
        return 1.0 if text == "+" else -1.0
    try:
        out = float(text)
    except ValueError:
        raise InputError(
            f"network file {str(p)!r}: column {col!r} row {row + 2} is not a sign "
            f"(a number, '+' or '-'): {text!r}"
        ) from None
    return out


def read_nodes_table(
    path: str | os.PathLike, *, node_col: str = "node", role_col: str = "role"
) -> dict[str, str]:
    """``{node: role}`` from a CSV/TSV with a node column and a role column."""
    p = _check_file(path, "nodes")
    sep = _sep_for(p)
    header = _raw_header(p, sep, "nodes")
    for c in (node_col, role_col):
        if c not in header:
            raise InputError(
                f"nodes file {str(p)!r}: no column {c!r} (columns: {_preview(header)})"
            )
    df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    names = df[node_col].str.strip()
    roles = df[role_col].str.strip().str.lower()
    bad = sorted(set(roles) - set(ROLES))
    if bad:
        raise InputError(
            f"nodes file {str(p)!r}: column {role_col!r} holds {_preview(bad)}; roles are "
            f"{', '.join(ROLES)}"
        )
    dups = names[names.duplicated()].unique().tolist()
    if dups:
        raise InputError(f"nodes file {str(p)!r}: duplicate node names {_preview(dups)}")
    return dict(zip(names.tolist(), roles.tolist()))


# ----------------------------------------------------------------------------- tables


def _pyarrow_parquet() -> Any:
    """``pyarrow.parquet`` (ImportError when pyarrow is not installed)."""
    import pyarrow.parquet as pq

    return pq


def read_table(path: str | os.PathLike | pd.DataFrame, what: str = "INPUTS") -> pd.DataFrame:
    """A samples x nodes table as float64 with string sample ids (index) and node names.

    Raises InputError for a missing / unreadable file, a Parquet file without pyarrow,
    duplicate node names or sample ids, a non-numeric or all-NaN column, or no rows.
    A DataFrame is accepted as is (its index = sample ids) and checked the same way.
    """
    if isinstance(path, pd.DataFrame):
        label = f"{what} table"
        df = path.copy()
        header = [str(c) for c in df.columns]
        df.columns = header
    else:
        p = _check_file(path, what)
        label = f"{what} file {str(p)!r}"
        if p.suffix.lower() in (".parquet", ".pq"):
            try:
                pq = _pyarrow_parquet()
            except ImportError:
                raise InputError(
                    f"{label}: reading Parquet needs pyarrow, which is not installed "
                    "(pip install pyarrow), or give the table as CSV/TSV"
                ) from None
            try:
                table = pq.read_table(p)
            except Exception as exc:
                raise InputError(f"{label} could not be read as Parquet: {exc}") from None
            names = [str(n) for n in table.schema.names]
            dups = sorted({n for n in names if names.count(n) > 1})
            if dups:
                raise InputError(f"{label}: duplicate column names {_preview(dups)}")
            df = table.to_pandas()
            if isinstance(df.index, pd.RangeIndex):
                df = df.set_index(df.columns[0])
            header = [str(df.index.name or "")] + [str(c) for c in df.columns]
        else:
            sep = _sep_for(p)
            header = _raw_header(p, sep, what)
            try:
                df = pd.read_csv(p, sep=sep, index_col=0, dtype={0: str})
            except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                raise InputError(f"{label} could not be read: {exc}") from None
        header = header[1:]
        df.columns = [str(c) for c in header] if len(header) == df.shape[1] else df.columns
    cols = [str(c) for c in df.columns]
    dups = sorted({c for c in cols if cols.count(c) > 1})
    if dups:
        raise InputError(f"{label}: duplicate node names in the header: {_preview(dups)}")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputError(f"{label}: no samples or no node columns")
    ids = pd.Index([str(i).strip() for i in df.index])
    dup_ids = ids[ids.duplicated()].unique().tolist()
    if dup_ids:
        raise InputError(f"{label}: duplicate sample ids {_preview(dup_ids)}")
    df.index = ids
    out = {}
    for c in df.columns:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            num = pd.to_numeric(col, errors="coerce")
            bad = col[num.isna() & col.notna()]
            if len(bad):
                raise InputError(
                    f"{label}: column {str(c)!r} is not numeric (sample {str(bad.index[0])!r} "
                    f"holds {str(bad.iloc[0])!r})"
                )
            col = num
        col = col.astype(np.float64)
        if col.isna().all():
            raise InputError(f"{label}: column {str(c)!r} is all NaN")
        if np.isinf(col.to_numpy()).any():
            raise InputError(f"{label}: column {str(c)!r} holds infinite values")
        out[str(c)] = col.to_numpy()
    return pd.DataFrame(out, index=ids)


def check_same_samples(x: pd.DataFrame, y: pd.DataFrame, x_label: str, y_label: str) -> None:
    """INPUTS and OUTPUTS must list the same sample ids in the same order."""
    if len(x) != len(y):
        raise InputError(
            f"{x_label} has {len(x)} samples but {y_label} has {len(y)}; both tables must "
            "list the same sample ids in the same order"
        )
    diff = np.flatnonzero(x.index.to_numpy() != y.index.to_numpy())
    if diff.size:
        i = int(diff[0])
        only_x = sorted(set(x.index) - set(y.index))
        extra = f" ({len(only_x)} ids of {x_label} are not in {y_label})" if only_x else ""
        raise InputError(
            f"sample ids differ between {x_label} and {y_label}: row {i + 1} is "
            f"{x.index[i]!r} vs {y.index[i]!r}{extra}"
        )


# ----------------------------------------------------------------------------- TOML


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        esc = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{esc}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write a {type(v).__name__} to TOML")


def write_toml(values: Mapping[str, Any], path: str | os.PathLike, header: str = "") -> None:
    """Write a flat mapping as TOML (None values are left out: TOML has no null)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for k, v in values.items():
        if v is None:
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config (``tomllib``, Python >= 3.11; else the ``tomli`` package)."""
    p = _check_file(path, "config")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise InputError(
                "reading a TOML config needs Python >= 3.11 or the tomli package"
            ) from None
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    if "infer" in data and isinstance(data["infer"], dict):
        data = {**{k: v for k, v in data.items() if k != "infer"}, **data["infer"]}
    return data


# ----------------------------------------------------------------------------- run folder


class RunFolder:
    """An output folder written all at once.

    Files are written into a temporary sibling folder; :meth:`commit` moves them into
    place (one rename when the folder does not exist yet). :meth:`check` refuses a folder
    that already holds a run unless ``overwrite``; without commit (an error) the
    temporary folder is removed and the target is left as it was.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = bool(overwrite)
        self.tmp: Path | None = None

    def check(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(f"output folder {str(out)!r} exists and is not a folder")
        if out.is_dir() and not self.overwrite:
            held = [m for m in RUN_MARKERS if (out / m).exists()]
            if held:
                raise InputError(
                    f"output folder {str(out)!r} already holds a run ({held[0]}); choose "
                    "another folder or pass --overwrite (overwrite=True)"
                )
        parent = out.resolve().parent
        if not parent.exists():
            raise InputError(
                f"output folder {str(out)!r}: its parent {str(parent)!r} does not exist"
            )
        if not os.access(parent, os.W_OK):
            raise InputError(f"output folder {str(out)!r}: cannot write in {str(parent)!r}")

    def __enter__(self) -> Path:
        self.check()
        parent = self.out.resolve().parent
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=parent))
        return self.tmp

    def commit(self) -> None:
        assert self.tmp is not None
        out = self.out
        if not out.exists():
            os.rename(self.tmp, out)
        else:
            for item in sorted(self.tmp.iterdir()):
                dest = out / item.name
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest)
                os.replace(item, dest)
            self.tmp.rmdir()
        self.tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
