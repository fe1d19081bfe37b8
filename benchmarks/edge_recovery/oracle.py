"""``python -m benchmarks.edge_recovery.oracle``: how well could a test that knows the model do?

A reference for the benchmark's scorers. The oracle knows everything a scorer would
have to learn: the generative model is linear-Gaussian, the weights of every known
edge, the noise level. It does not know the held-out edges. For each candidate edge
``i -> j`` it computes first-order (score) tests of adding that one edge to the known
linear model, with the data the benchmark trains on. It is not a strict bound (the
trained model beats it on some families), but it says how far knowing the model would
take these tests:

* **mean**: the new edge adds ``w E[x_i | inputs]`` to node j, so the outputs move by
  ``w xhat_i c_j`` (``c_j``: the known graph's path sums from j to the outputs). The
  efficient score is the correlation over samples of ``xhat_i`` with the residual
  ``y - yhat_known(x)`` projected on ``Sigma^-1 c_j`` (``Sigma``: the residual
  covariance the known model implies). For one added parameter with everything else
  right, the likelihood-ratio test ranks pairs the same way.
* **cov**: the new edge also routes node i's noise (and its ancestors') to j's outputs.
  Its score is ``c_j' (Sigma^-1 S Sigma^-1 - Sigma^-1) Cov(y, x_i | inputs)`` (``S``: the
  empirical residual covariance), scaled by its standard error under the null.
* **twostep**, for a source ``u`` that no input reaches in the known graph but that
  reaches an output: what u's outputs miss, ``g_u`` (the residual projected on
  ``Sigma^-1 c_u``), regressed on the inputs, estimates u's missing input-driven
  signal; the test correlates that estimate with ``g_v``. NaN for the other pairs.

``greedy`` (the mean test, re-run after each pick): the oracle adds the best-scoring
pair with its fitted weight to the known model, rescores every pair, and repeats as
many times as there are held-out edges. Picked pairs rank first, in pick order.

Pairs the trained model cannot see ("silent": no input reaches the source, or the
target reaches no output) get no mean score (NaN, ranked last). ``visible`` below is
the ROC-AUC of the visible test edges against the visible non-edges; ``all`` counts
every test edge against every non-edge, as the benchmark does. The JSON also has
``silent`` (silent test edges against silent non-edges) and ``covered`` (the pairs a
test scores, i.e. not NaN).

With ``--trained`` the run also trains the benchmark's model (the same model, seeds
and data as ``python -m benchmarks.edge_recovery``) and scores it with
``GradientEdgeScorer(score='partial')`` and ``CompletionEdgeScorer`` (band), so they
stand side by side. It then asks what the completion scorer would reach if its
visible pairs were in the oracle's order (the mean test), its silent pairs in the
oracle's order (two-step where it applies, else the covariance test, each group by
its quantiles) or in the perfect order (true edges first), or with both changed: the
scores are handed out again over those pairs, so the band keeps its place. The
nonlinear family's oracle is the linear one, misspecified; it is reported, marked.

Writes ``edge_recovery_oracle.json`` and ``edge_recovery_oracle.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from ..run import commit, cpu_model
from .families import FAMILIES, Family, Task
from .run import METHODS, _masks, simulate_task, split_auc, train_context

DEFAULT_FAMILIES = tuple(f.name for f in FAMILIES)


class LinearOracle:
    """The known graph of ``task`` as a linear-Gaussian model with its true weights."""

    def __init__(self, task: Task, x: np.ndarray, y: np.ndarray):
        held = set(task.held_out)
        self.nodes = list(task.G.nodes)
        self.pos = {v: k for k, v in enumerate(self.nodes)}
        V = len(self.nodes)
        signs = task.signed_edges or {}
        self.W = np.zeros((V, V))
        for u, v in task.G.edges:
            if (u, v) not in held:
                self.W[self.pos[u], self.pos[v]] = signs.get((u, v), 1.0)
        self.inputs = np.array([self.pos[v] for v in task.inputs])
        self.outputs = np.array([self.pos[v] for v in task.outputs])
        self.funcs = np.array([self.pos[v] for v in task.functions])
        # each node's noise variance under the known model, as the generator draws
        # it: none for inputs (observed), 1 for a node without known parents, noise^2
        inputs = set(task.inputs)
        parentless = ~self.W.any(axis=0)
        self.noise_var = np.array(
            [0.0 if v in inputs else 1.0 if parentless[k] else float(task.noise) ** 2
             for k, v in enumerate(self.nodes)]
        )  # fmt: skip
        self.x, self.y = x, y
        # reachability in the known graph (path existence, not path sums: signs cancel)
        K = nx.DiGraph()
        K.add_nodes_from(range(V))
        K.add_edges_from(zip(*np.nonzero(self.W)))
        fed = set().union(*(nx.descendants(K, int(i)) for i in self.inputs))
        reaches = set().union(*(nx.ancestors(K, int(o)) for o in self.outputs))
        self.fed = np.array([int(f) in fed for f in self.funcs])
        self.reaches = np.array([int(f) in reaches for f in self.funcs])
        # [src, dst]: the pairs a model of the known graph sees (the others are silent)
        self.visible = self.fed[:, None] & self.reaches[None, :]

    def _model(self) -> tuple[np.ndarray, ...]:
        """(total effects T [V, V], Sigma^-1 [O, O], c [N, O], xhat [n, N], r [n, O])."""
        V = len(self.nodes)
        T = np.linalg.inv(np.eye(V) - self.W)
        C = T[:, self.outputs]
        sigma = (C.T * self.noise_var) @ C
        sigma_inv = np.linalg.pinv(sigma, hermitian=True)
        xhat = self.x @ T[np.ix_(self.inputs, self.funcs)]
        r = self.y - self.x @ T[np.ix_(self.inputs, self.outputs)]
        return T, sigma_inv, C[self.funcs], xhat - xhat.mean(0), r - r.mean(0)

    @staticmethod
    def _correlate(src: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """|z| [N, N] of the correlation over samples of centred src_i with g_j, and g."""
        sx, sg = np.sqrt((src**2).sum(0)), np.sqrt((g**2).sum(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (src.T @ g) / np.outer(sx, sg) * np.sqrt(len(src))
        return np.abs(z), g

    def _mean_z(self, sigma_inv, c, xhat, r) -> tuple[np.ndarray, np.ndarray]:
        """(z [N, N], g [n, N]): correlation z of xhat_i with the projected residual g_j."""
        z, g = self._correlate(xhat, r @ sigma_inv @ c.T)
        return np.where(self.visible, z, np.nan), g

    def mean(self, diagonal: bool = False) -> np.ndarray:
        """The mean test; ``diagonal``: project with the inverse of each output's
        empirical residual variance instead of ``Sigma^-1``."""
        _, sigma_inv, c, xhat, r = self._model()
        if diagonal:
            sigma_inv = np.diag(1.0 / r.var(0))
        return self._mean_z(sigma_inv, c, xhat, r)[0]

    def cov(self) -> np.ndarray:
        """The covariance test, as a z statistic (NaN where j reaches no output or i
        carries no noise)."""
        T, sigma_inv, c, _, _ = self._model()
        # the residual covariance free of the mean: least squares of y on x (the
        # held-out edges' mean misfit would swamp the noise's covariance otherwise)
        X = np.c_[self.x, np.ones(len(self.x))]
        r = self.y - X @ np.linalg.lstsq(X, self.y, rcond=None)[0]
        n = len(r)
        C = T[:, self.outputs]
        delta = sigma_inv @ (r.T @ r / n) @ sigma_inv - sigma_inv
        v = (T[:, self.funcs].T * self.noise_var) @ C  # Cov(x_i, y | inputs)
        u = v @ delta @ c.T
        a = np.einsum("io,op,ip->i", v, sigma_inv, v)
        b = np.einsum("jo,op,jp->j", c, sigma_inv, c)
        cross = v @ sigma_inv @ c.T
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(u) * np.sqrt(n) / np.sqrt(np.outer(a, b) + cross**2)
        return np.where(self.reaches[None, :] & (a > 0)[:, None], z, np.nan)

    def twostep(self) -> np.ndarray:
        """The two-step test of the pairs whose source no input reaches (NaN elsewhere)."""
        _, sigma_inv, c, _, r = self._model()
        g = r @ sigma_inv @ c.T
        X = np.c_[self.x, np.ones(len(self.x))]
        ghat = X @ np.linalg.lstsq(X, g, rcond=None)[0]
        ghat -= ghat.mean(0)
        z, _ = self._correlate(ghat, g)
        rows = ~self.fed & self.reaches
        return np.where(rows[:, None] & self.reaches[None, :], z, np.nan)

    def silent_key(self, two: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """An order of the silent pairs from the oracle's evidence, given its
        :meth:`twostep` and :meth:`cov` scores: the two-step test's quantile where it
        applies, else the covariance test's (quantiles within each group; NaN where
        neither applies)."""
        silent = ~self.visible
        key = np.full(two.shape, np.nan)
        first = silent & np.isfinite(two)
        rest = silent & ~first & np.isfinite(cov)
        for group, z in ((first, two), (rest, cov)):
            if group.any():
                key[group] = (np.argsort(np.argsort(z[group])) + 0.5) / group.sum()
        return key

    def greedy(self, picks: int) -> np.ndarray:
        """The mean test re-run after each of ``picks`` additions of the best pair."""
        W0 = self.W.copy()
        N = len(self.funcs)
        order = np.full((N, N), np.nan)
        for step in range(picks):
            _, sigma_inv, c, xhat, r = self._model()
            z, g = self._mean_z(sigma_inv, c, xhat, r)
            taken = (self.W[np.ix_(self.funcs, self.funcs)] != 0) | np.eye(N, dtype=bool)
            z = np.where(taken | ~np.isnan(order), np.nan, z)
            if np.all(np.isnan(z)):
                break
            i, j = np.unravel_index(np.nanargmax(z), z.shape)
            # fitted weight: projected residual on xhat_i, over c_j' Sigma^-1 c_j
            w = (xhat[:, i] @ g[:, j]) / (xhat[:, i] @ xhat[:, i]) / (c[j] @ sigma_inv @ c[j])
            self.W[self.funcs[i], self.funcs[j]] = w
            order[i, j] = picks - step
        z = self.mean()
        self.W = W0
        top = np.nanmax(z) if np.any(~np.isnan(z)) else 0.0
        return np.where(np.isnan(order), z, top + order)


def _data(fam: Family, seed: int) -> tuple[Task, np.ndarray, np.ndarray]:
    """The benchmark's training data for (family, seed): same seeds, same draws."""
    task, x, _, y, _ = simulate_task(fam, seed)
    return task, x, y


def reorder(S: np.ndarray, pairs: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``S`` with its values over ``pairs`` handed out again in the order of ``key`` (the
    largest value to the largest key; NaN lowest on both sides)."""
    out = S.copy()
    values = np.sort(np.nan_to_num(S[pairs], nan=-np.inf))
    new = np.empty_like(values)
    new[np.argsort(np.nan_to_num(key[pairs], nan=-np.inf), kind="stable")] = values
    out[pairs] = new
    return out


def _trained_scores(
    fam: Family, seed: int, oracle: LinearOracle, scores: dict[str, np.ndarray], masks: tuple
) -> dict[str, np.ndarray]:
    """The benchmark's model, its gradient-partial and completion (band) scores, and
    the completion's scores with the visible and / or silent pairs reordered: by the
    oracle (``scores``' mean test; :meth:`LinearOracle.silent_key` of its two-step and
    covariance tests), or perfectly (true edges first)."""
    ctx = train_context(fam, seed)
    band = METHODS["grad_complete"](ctx)
    _, true_graph, known, _ = masks
    silent_key = oracle.silent_key(scores["twostep"], scores["cov"])
    cand = ~known & ~np.eye(len(known), dtype=bool)
    shown, silent = cand & oracle.visible, cand & ~oracle.visible
    perfect = true_graph.astype(float)
    with_oracle = reorder(band, shown, scores["mean"])
    return {
        "gradient_partial": METHODS["grad_partial"](ctx),
        "completion": band,
        "completion, oracle order of visible": with_oracle,
        "completion, oracle order of silent": reorder(band, silent, silent_key),
        "completion, oracle order of both": reorder(with_oracle, silent, silent_key),
        "completion, perfect order of silent": reorder(band, silent, perfect),
        "completion, oracle visible + perfect silent": reorder(with_oracle, silent, perfect),
    }


def run_one(fam: Family, seed: int, trained: bool) -> dict[str, Any]:
    task, x, y = _data(fam, seed)
    masks = _masks(task)
    test, true_graph = masks[:2]
    oracle = LinearOracle(task, x, y)
    n = len(task.functions)
    negatives = ~true_graph & ~np.eye(n, dtype=bool)
    visible = oracle.visible
    scores = {
        "mean": oracle.mean(),
        "mean_diag": oracle.mean(diagonal=True),
        "cov": oracle.cov(),
        "twostep": oracle.twostep(),
        "greedy": oracle.greedy(len(task.held_out)),
    }
    if trained:
        scores.update(_trained_scores(fam, seed, oracle, scores, masks))
    out: dict[str, Any] = {
        "family": fam.name,
        "seed": seed,
        "n_test_edges": int(test.sum()),
        "n_silent_test_edges": int((test & ~visible).sum()),
        "methods": {},
    }
    for name, S in scores.items():
        out["methods"][name] = {
            "visible": split_auc(S, test & visible, negatives & visible),
            "all": split_auc(S, test, negatives),
            "silent": split_auc(S, test & ~visible, negatives & ~visible),
            "covered": split_auc(S, test & np.isfinite(S), negatives & np.isfinite(S)),
        }
    return out


def _table(runs: list[dict], families: list[str]) -> str:
    """One row per method, one column per family: visible / all, mean over the seeds."""
    methods = list(runs[0]["methods"])
    cols = [f + (" (oracle misspecified)" if "nonlinear" in f else "") for f in families]
    lines = ["| method | " + " | ".join(cols) + " | mean |", "|---|" + "---|" * (len(cols) + 1)]
    for m in methods:
        vis, alls = [], []
        for fam in families:
            rs = [r["methods"][m] for r in runs if r["family"] == fam]
            vis.append(np.nanmean([r["visible"] for r in rs]))
            alls.append(np.nanmean([r["all"] for r in rs]))
        cells = [f"{v:.3f} / {a:.3f}" for v, a in zip(vis, alls)]
        cells.append(f"**{np.mean(vis):.3f} / {np.mean(alls):.3f}**")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.edge_recovery.oracle")
    ap.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--trained", action="store_true",
        help="also train the benchmark's model and score it (gradient partial, completion)",
    )  # fmt: skip
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.families.split(",")
    unknown = [f for f in names if f not in DEFAULT_FAMILIES]
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; options are {list(DEFAULT_FAMILIES)}")
    fams = [f for f in FAMILIES if f.name in names]
    # the code that runs is the code at the start (the tree may change during the run)
    meta = {
        "command": "python -m benchmarks.edge_recovery.oracle " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
    }
    t0 = time.perf_counter()
    runs = []
    for fam in fams:
        for seed in range(args.seeds):
            r = run_one(fam, seed, args.trained)
            runs.append(r)
            cells = " ".join(
                f"{m}={v['visible']:.3f}/{v['all']:.3f}" for m, v in r["methods"].items()
            )
            print(f"{fam.name} seed {seed}: {cells}", flush=True)
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    table = _table(runs, [f.name for f in fams])
    head = "ROC-AUC of the test edges, visible pairs / all pairs, mean over the seeds.\n"
    head += ", ".join(f"{k}: {v}" for k, v in meta.items()) + "\n\n"
    print(head + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**meta, "runs": runs}
    (out / "edge_recovery_oracle.json").write_text(json.dumps(report, indent=1))
    (out / "edge_recovery_oracle.md").write_text(head + table)
    return report


if __name__ == "__main__":
    main()
