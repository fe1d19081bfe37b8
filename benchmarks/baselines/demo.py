"""The seed notebook end to end with a baseline implementation (for the ``demo`` case).

Same steps and settings as ``gsnn_fast.demo.run_demo`` (graph, simulation, joint
training with the regressor for ``epochs`` epochs, best checkpoint, post-hoc inferer
corr / partial, test ROC-AUC / MRR / top@k, two PNG plots, ``results.json``), with the
components of :mod:`.reference_style` or :mod:`.vectorised`:

- ``reference_style`` follows the notebook literally: ``DataLoader(TensorDataset)`` with
  per-sample collation, per-epoch ``evaluate_against``, and the notebook's test metrics
  (``DataFrame.apply`` row by row to find positives and non-edges);
- ``vectorised`` fetches whole batches (``BatchSampler``) and computes the metrics from
  score matrices.

The graph helpers come from ``gsnn_fast.data`` (they are untimed setup in every other
case and cost milliseconds here).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from tests.dense_reference import SEED_KW


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - ss_res / ss_tot))


def _plots(out: Path, val_auc, best_epoch, rocs) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(val_auc) + 1), val_auc, marker="o", ms=4)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="C1", ls="--", label=f"best epoch ({best_epoch})")
    ax.axhline(0.5, color="k", ls=":", alpha=0.5, label="random")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "val_auc.png", dpi=120)
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for name, (fpr, tpr, auc) in rocs.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC={auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", alpha=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)


def _roc_points(pos: np.ndarray, neg: np.ndarray):
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    tps, fps = np.cumsum(labels[order]), np.cumsum(1 - labels[order])
    return np.r_[0.0, fps / max(neg.size, 1)], np.r_[0.0, tps / max(pos.size, 1)]


def run_demo(
    impl: ModuleType,
    width: int = 25,
    epochs: int = 30,
    seed: int = 0,
    out: str | Path = "demo_out_baseline",
    threads: int = 1,
    plots: bool = True,
) -> dict:
    """Run the notebook with ``impl`` (``reference_style`` or ``vectorised``)."""
    from gsnn_fast.data import (
        build_convergence_graph,
        default_held_out_edges,
        nx2pyg,
        split_held_out,
    )

    literal = impl.__name__.endswith("reference_style")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        G, _pos, inputs, functions, outputs, ff_true = build_convergence_graph(width)
        held = default_held_out_edges(width, b2sink_stride=2)
        kept = [e for e in ff_true if e not in set(held)]
        G_partial = G.copy()
        G_partial.remove_edges_from(held)
        data = nx2pyg(G_partial, inputs, functions, outputs)
        edges_val, edges_test = split_held_out(held, functions[-1], seed=0)

        x_train, x_test, y_train, y_test = impl.simulate(
            G, 2000, 500, inputs, outputs, noise_scale=0.15, special_functions=None
        )
        x_train = torch.tensor(x_train, dtype=torch.float32)
        x_test = torch.tensor(x_test, dtype=torch.float32)
        y_train = torch.tensor(y_train, dtype=torch.float32)
        y_test = torch.tensor(y_test, dtype=torch.float32)
        y_mu, y_std = y_train.mean(0), y_train.std(0)
        y_train = (y_train - y_mu) / (y_std + 1e-8)
        y_test = (y_test - y_mu) / (y_std + 1e-8)

        model = impl.GSNN(
            data.edge_index_dict,
            data.node_names_dict,
            **SEED_KW,
        )
        regressor = impl.MagnitudeEdgeRegressor(
            model,
            data,
            aggregators=("sum", "max"),
            lr=1e-3,
            weight_decay=1e-4,
            ridge=1e-2,
            dropout=0.2,
        )
        dataset = torch.utils.data.TensorDataset(x_train, y_train)
        if literal:
            train_loader = torch.utils.data.DataLoader(
                dataset, batch_size=64, shuffle=True, drop_last=True
            )
        else:
            train_loader = torch.utils.data.DataLoader(
                dataset,
                batch_size=None,
                sampler=torch.utils.data.BatchSampler(
                    torch.utils.data.RandomSampler(dataset), batch_size=64, drop_last=True
                ),
            )
        gsnn_optim = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
        crit = torch.nn.MSELoss()
        val_auc_history, best_epoch = [], None
        for epoch in range(epochs):
            model.train()
            regressor.train()
            for x_batch, y_batch in train_loader:
                regressor.pre_forward()
                yhat = model(x_batch)
                loss = crit(yhat, y_batch)
                regressor.arm_retained_grads()
                gsnn_optim.zero_grad()
                loss.backward()
                regressor.aux_step()
                gsnn_optim.step()
            val = regressor.evaluate_against(edges_val)
            val_auc_history.append(val["auc"])
            if regressor.maybe_save_best(val["auc"]):
                best_epoch = epoch + 1

        model.eval()
        with torch.inference_mode():
            yhat_test = model(x_test)
        test_r2 = _r2(y_test.numpy(), yhat_test.numpy())

        regressor.load_best()
        res_reg = regressor.evaluate()
        mei = impl.MagnitudeEdgeInferer(model, data, reduction="l1")
        infer_loader = torch.utils.data.DataLoader(
            dataset, batch_size=64, shuffle=False, drop_last=True
        )
        mei.fit(infer_loader, crit=crit, device="cpu", verbose=False)
        res_corr = mei.evaluate(layer_agg="max", score="corr")
        res_partial = mei.evaluate(layer_agg="max", score="partial")

        frames = {
            "regressor": (res_reg, "score"),
            "mei_corr": (res_corr, "corr"),
            "mei_partial": (res_partial, "corr"),
        }
        kept_set, pos_set = set(kept), set(edges_test)
        n = len(functions)
        idx = {name: i for i, name in enumerate(functions)}
        methods, rocs = {}, {}
        for name, (df, col) in frames.items():
            if literal:  # the notebook's row-wise masks
                is_pos = df.apply(lambda r: (r["src_func"], r["dst_func"]) in pos_set, axis=1)
                pos = df[is_pos][col].dropna().values
                neg = df[~is_pos]
                in_g = neg.apply(lambda r: (r["src_func"], r["dst_func"]) in kept_set, axis=1)
                neg = neg[~in_g][col].dropna().values
            else:
                S = np.full((n, n), np.nan)
                S[df["src_idx"].to_numpy(), df["dst_idx"].to_numpy()] = df[col].to_numpy()
                pm = np.zeros((n, n), dtype=bool)
                gm = np.zeros((n, n), dtype=bool)
                for s, d in edges_test:
                    pm[idx[s], idx[d]] = True
                for s, d in kept:
                    gm[idx[s], idx[d]] = True
                nm = ~(pm | gm)
                np.fill_diagonal(nm, False)
                pos, neg = S[pm], S[nm]
                pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
            auc = impl._auc(pos, neg) if not literal else _ref_auc(pos, neg)
            _, summary = impl.evaluate_target_ranking(df, edges_test, score_col=col, top_k=(1, 3))
            methods[name] = {"auc": auc, **{k: summary[k] for k in ("mrr", "top@1", "top@3")}}
            fpr, tpr = _roc_points(pos, neg)
            rocs[name] = (fpr, tpr, auc)
        if plots:
            _plots(out, val_auc_history, best_epoch, rocs)
        results = {
            "test_r2": test_r2,
            "best_epoch": best_epoch,
            "val_auc_history": val_auc_history,
            "methods": methods,
        }
        with open(out / "results.json", "w") as fh:
            json.dump(results, fh, indent=2, default=float)
        return results
    finally:
        torch.set_num_threads(prev_threads)


def _ref_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from .reference_style import _roc_auc

    y_true = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return _roc_auc(y_true, np.concatenate([pos, neg]))
