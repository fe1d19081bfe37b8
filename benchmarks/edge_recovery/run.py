"""Edge-recovery benchmark: every method on every family, several seeds.

One run per (family, seed): simulate the true graph, withhold the held-out function ->
function edges from the model, train the GSNN jointly with the online
MagnitudeEdgeRegressor as the seed notebook does (AdamW 1e-4, batch 64, channels 8,
6 layers, dropout 0.2, ELU, norm none; the regressor's checkpoint picked by ROC-AUC on
the validation edges), then score every pair with each method and measure the test
edges against the true non-edges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gsnn_fast import GSNN, MagnitudeEdgeInferer, MagnitudeEdgeRegressor, nx2pyg, simulate
from gsnn_fast.inference import CompletionEdgeScorer, GradientEdgeScorer
from gsnn_fast.inference.completion_edge_scorer import reachability
from gsnn_fast.pipeline.training import batch_loader, train_joint
from gsnn_fast.pipeline.training import train_model as pipeline_train_model

from .families import Family, Task, build_task

__all__ = ["METHODS", "edge_metrics", "run_one"]

TOP_K = (1, 3, 10)


def edge_metrics(
    S: np.ndarray, test: np.ndarray, true_graph: np.ndarray, known: np.ndarray, val: np.ndarray
) -> dict[str, float]:
    """ROC-AUC, average precision, MRR and top@k of the test edges.

    ``S`` [N, N] scores (higher = more likely an edge; NaN counts as the lowest);
    ``test``/``val``/``known`` bool [N, N] masks, ``true_graph`` every true edge.
    AUC / AP: test edges against the true non-edges (no self pair). MRR / top@k: the
    rank of each test edge among its target's candidate sources (every source that is
    neither a known nor a validation edge nor the target itself), ties counting the
    worse rank.
    """
    n = len(S)
    S = np.where(np.isnan(S), -np.inf, S)
    eye = np.eye(n, dtype=bool)
    neg = ~true_graph & ~eye
    pos_s, neg_s = S[test], S[neg]
    sc = np.concatenate([pos_s, neg_s])
    lab = np.concatenate([np.ones(pos_s.size), np.zeros(neg_s.size)])
    # AUC with ties counting half
    order = np.argsort(sc, kind="mergesort")
    ranks = np.empty(sc.size)
    s_sorted = sc[order]
    _, first, counts = np.unique(s_sorted, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = pos_s.size, neg_s.size
    auc = (ranks[lab == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    # average precision (ties broken against the positives)
    order = np.lexsort((lab, -sc))
    hits = lab[order]
    prec = np.cumsum(hits) / np.arange(1, hits.size + 1)
    ap = float((prec * hits).sum() / max(n_pos, 1))
    cand = ~known & ~val & ~eye
    rr, tops = [], {k: [] for k in TOP_K}
    for i, j in zip(*np.nonzero(test)):
        col = S[:, j][cand[:, j]]
        rank = 1 + int((col >= S[i, j]).sum()) - 1  # itself counted once in >=
        rr.append(1.0 / rank)
        for k in TOP_K:
            tops[k].append(rank <= k)
    # the demo's count: NaN pairs dropped, every pair neither test edge nor known edge
    # (validation edges included) as a negative
    demo_neg = ~(test | known | eye)
    p_d, n_d = S[test], S[demo_neg]
    p_d, n_d = p_d[np.isfinite(p_d)], n_d[np.isfinite(n_d)]
    auc_demo = float("nan")
    if p_d.size and n_d.size:
        n_sorted = np.sort(n_d)
        lo = np.searchsorted(n_sorted, p_d, "left")
        hi = np.searchsorted(n_sorted, p_d, "right")
        auc_demo = float((lo.sum() + 0.5 * (hi - lo).sum()) / (p_d.size * n_d.size))
    out = {"auc": float(auc), "auc_demo": auc_demo, "ap": ap, "mrr": float(np.mean(rr))}
    out.update({f"top@{k}": float(np.mean(v)) for k, v in tops.items()})
    return out


def split_auc(S: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC of the pairs ``pos`` against ``neg`` (bool masks; NaN scores count as the
    lowest, ties half); NaN when either is empty."""
    p = np.where(np.isnan(S[pos]), -np.inf, S[pos])
    q = np.sort(np.where(np.isnan(S[neg]), -np.inf, S[neg]))
    if not p.size or not q.size:
        return float("nan")
    lo, hi = np.searchsorted(q, p, "left"), np.searchsorted(q, p, "right")
    return float((lo.sum() + 0.5 * (hi - lo).sum()) / (p.size * q.size))


def _matrix(df: Any, n: int, col: str) -> np.ndarray:
    S = np.full((n, n), np.nan)
    S[df["src_idx"].to_numpy(), df["dst_idx"].to_numpy()] = df[col].to_numpy()
    return S


# ------------------------------------------------------------------ methods
# Each method: (context) -> [N, N] score matrix. The context holds the trained model,
# the regressor (at its best checkpoint), the data and the training loader.


def _mei(score: str) -> Callable[[dict], np.ndarray]:
    def fn(ctx: dict) -> np.ndarray:
        mei = ctx.get("mei")
        if mei is None:
            mei = MagnitudeEdgeInferer(ctx["model"], ctx["data"], reduction="l1")
            mei.fit(ctx["infer_loader"], crit=ctx["crit"], verbose=False)
            ctx["mei"] = mei
        df = mei.evaluate(layer_agg="max", score=score)
        return _matrix(df, ctx["n"], "corr")

    return fn


def _regressor(ctx: dict) -> np.ndarray:
    return _matrix(ctx["regressor"].evaluate(), ctx["n"], "score")


def _gradient(score: str, projections: int = 2, stages: int = 0) -> Callable[[dict], np.ndarray]:
    def fn(ctx: dict) -> np.ndarray:
        sc = GradientEdgeScorer(
            ctx["model"], ctx["data"], projections=projections, score=score, stages=stages
        )
        sc.fit(ctx["infer_loader"], crit=ctx["crit"])
        return sc.score_matrix()[0]

    return fn


def train_model(model: Any, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """The notebook's training of the GSNN alone (AdamW 1e-4, batch 64, shuffled with a
    seeded generator), in place: the completion scorer's retraining."""
    gen = torch.Generator().manual_seed(seed)
    loader = batch_loader(x, y, 64, shuffle=True, drop_last=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0, fused=True)
    pipeline_train_model(model, loader, epochs=epochs, optimizer=opt)


def _completion(
    silent_weight: float = 0.5,
    per_node: int = 1,
    placement: str = "band",
    retrain_rounds: int = 1,
) -> Callable[[dict], np.ndarray]:
    def fn(ctx: dict) -> np.ndarray:
        fam, seed = ctx["fam"], ctx["seed"]
        epochs = ctx.get("epochs") or fam.epochs
        # methods that differ only in how the two models' scores combine share one fit
        key = ("completion", silent_weight, per_node, retrain_rounds)
        sc = ctx.get(key)
        if sc is None:

            def make_model(data: Any) -> Any:
                torch.manual_seed(seed + 1)
                return gsnn_on(data)

            def train(model: Any) -> None:
                train_model(model, ctx["x_train"], ctx["y_train"], epochs, seed + 1)

            sc = CompletionEdgeScorer(
                ctx["model"], ctx["data"], make_model, train, per_node=per_node,
                silent_weight=silent_weight, retrain_rounds=retrain_rounds,
            )  # fmt: skip
            sc.fit(ctx["infer_loader"], crit=ctx["crit"])
            ctx[key] = sc
        sc.placement = placement
        return sc.score_matrix()[0]

    return fn


METHODS: dict[str, Callable[[dict], np.ndarray]] = {
    "mei_corr": _mei("corr"),
    "mei_partial": _mei("partial"),
    "regressor": _regressor,
    "grad_corr": _gradient("corr"),
    "grad_partial": _gradient("partial"),
    "grad_partial_stage1": _gradient("partial", stages=1),
    "grad_complete_weight": _completion(placement="weight"),
    "grad_complete": _completion(),
    "grad_complete_r3": _completion(retrain_rounds=3),
}


def _masks(task: Task) -> tuple[np.ndarray, ...]:
    idx = {f: i for i, f in enumerate(task.functions)}
    n = len(idx)

    def mask(edges) -> np.ndarray:
        m = np.zeros((n, n), dtype=bool)
        for u, v in edges:
            m[idx[u], idx[v]] = True
        return m

    held = set(task.held_out)
    known = mask([e for e in task.true_ff if e not in held])
    return mask(task.test), mask(task.true_ff), known, mask(task.val)


def build_model(task: Task) -> tuple[Any, Any]:
    """The partial graph's data container and a fresh GSNN with the notebook's settings."""
    Gp = task.G.copy()
    Gp.remove_edges_from(task.held_out)
    data = nx2pyg(Gp, task.inputs, task.functions, task.outputs)
    return data, gsnn_on(data)


def gsnn_on(data: Any) -> Any:
    """A fresh GSNN on ``data`` with the notebook's settings."""
    return GSNN(
        data.edge_index_dict, data.node_names_dict, channels=8, layers=6, share_layers=False,
        bias=True, add_function_self_edges=True, norm="none", dropout=0.2,
        nonlin=torch.nn.ELU, node_mlp=False, checkpoint=False,
    )  # fmt: skip


def simulate_task(fam: Family, seed: int) -> tuple[Task, np.ndarray, ...]:
    """``(task, x_train, x_test, y_train, y_test)`` of (family, seed): the torch and numpy
    seeds set to ``seed``, the task built, its data drawn (500 test samples)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    task = build_task(fam, seed)
    data = simulate(
        task.G,
        n_train=fam.n_train,
        n_test=500,
        input_nodes=task.inputs,
        output_nodes=task.outputs,
        noise_scale=task.noise,
        special_functions=task.special,
        signed_edges=task.signed_edges,
    )
    return (task, *data)


def train_context(
    fam: Family,
    seed: int,
    epochs: int | None = None,
    trajectory: dict[str, Callable] | None = None,
    every: int = 5,
) -> dict[str, Any]:
    """Simulate, train the GSNN with the regressor (notebook protocol); the context the
    methods score from. ``trajectory``: ``{name: hook(model, loader)}`` called every
    ``every`` epochs during training (scorers that pool checkpoints); the training is
    the same as without hooks (the hooks run the model in eval mode and touch no
    parameter or optimiser state)."""
    t0 = time.perf_counter()
    task, x_tr, x_te, y_tr, y_te = simulate_task(fam, seed)
    x_tr = torch.tensor(x_tr, dtype=torch.float32)
    y_tr = torch.tensor(y_tr, dtype=torch.float32)
    y_tr = (y_tr - y_tr.mean(0)) / (y_tr.std(0) + 1e-8)
    data, model = build_model(task)
    regressor = MagnitudeEdgeRegressor(
        model, data, aggregators=("sum", "max"), lr=1e-3, weight_decay=1e-4, ridge=1e-2,
        dropout=0.2,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    loader = batch_loader(x_tr, y_tr, 64, shuffle=True, drop_last=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0, fused=True)
    crit = torch.nn.MSELoss()
    n_epochs = epochs or fam.epochs
    infer_loader = batch_loader(x_tr, y_tr, 64, shuffle=False, drop_last=True)
    hist = None
    done = 0
    while done < n_epochs:
        chunk = min(every, n_epochs - done) if trajectory else n_epochs
        h = train_joint(
            model, regressor, loader, epochs=chunk, optimizer=opt, crit=crit,
            val_edges=task.val, log=None, progress=False,
        )  # fmt: skip
        if hist is None:
            hist = h
        else:
            if h.best_regressor_epoch is not None:
                hist.best_regressor_epoch = done + h.best_regressor_epoch
            hist.epochs += h.epochs
        done += chunk
        for hook in (trajectory or {}).values():
            hook(model, infer_loader)
    t_train = time.perf_counter() - t0
    regressor.load_best()
    return {
        "hist": hist,
        "train_s": t_train,
        "x_train": x_tr,
        "y_train": y_tr,
        "model": model,
        "data": data,
        "regressor": regressor,
        "crit": crit,
        "n": len(task.functions),
        "infer_loader": infer_loader,
        "task": task,
        "fam": fam,
        "seed": seed,
        "epochs": n_epochs,
    }


def score_context(ctx: dict[str, Any], methods: dict[str, Callable] | None = None) -> dict:
    """Every method's metrics (and seconds) on a trained context."""
    methods = METHODS if methods is None else methods
    task, fam, hist = ctx["task"], ctx["fam"], ctx["hist"]
    test, true_graph, known, val = _masks(task)
    fed, reaches = reachability(ctx["data"])
    silent = ~fed[:, None] | ~reaches[None, :]
    negatives = ~true_graph & ~np.eye(len(fed), dtype=bool)
    res: dict[str, Any] = {
        "family": fam.name,
        "seed": ctx["seed"],
        "n_function": len(task.functions),
        "n_test_edges": int(test.sum()),
        "n_silent_test_edges": int((test & silent).sum()),
        "n_val_edges": int(val.sum()),
        "n_known_edges": int(known.sum()),
        "train_s": ctx["train_s"],
        "best_regressor_epoch": hist.best_regressor_epoch,
        "final_train_loss": hist.train_loss[-1],
        "methods": {},
    }
    for name, fn in methods.items():
        t1 = time.perf_counter()
        S = fn(ctx)
        m = edge_metrics(S, test, true_graph, known, val)
        m["val_auc"] = edge_metrics(S, val, true_graph, known, test)["auc"] if val.any() else None
        # the test edges the model cannot see (silent) and the others, each against every
        # true non-edge
        m["auc_silent"] = split_auc(S, test & silent, negatives)
        m["auc_nonsilent"] = split_auc(S, test & ~silent, negatives)
        m["seconds"] = time.perf_counter() - t1
        res["methods"][name] = m
    return res


def run_one(
    fam: Family, seed: int, methods: dict[str, Callable] | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Train once and score with every method; returns per-method metrics and timings."""
    return score_context(train_context(fam, seed, epochs), methods)
