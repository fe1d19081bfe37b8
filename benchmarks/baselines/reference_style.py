"""Baseline (a): pure torch / numpy written the way the pure-torch ``gsnn`` library does it.

Longer than ~450 lines on purpose: a whole second implementation (model, inferer,
regressor, simulation) kept in one file so that it reads as one baseline.

This is NOT gsnn_fast code and must never be imported by the package. It computes
gsnn_fast's numbers for the model, the inferer, the regressor and the simulation
(``tests/test_baselines.py`` checks them) with the pure-torch library's *algorithms*:

- sparse layers: message passing over batch-replicated index tensors (the index of
  every nonzero repeated ``B`` times, offset per sample, gather + scatter-add), with
  the batched indices cached per batch size, as ``gsnn.models.SparseLinear`` does;
- magnitudes: a Python loop over function nodes (``tensor[:, channel_ids].abs().sum``)
  in the activations' dtype (float32);
- inferer statistics: numpy on the host, float32 GEMMs added into float64 sums, one
  pair at a time; ``loss.backward()`` with ``retain_grad`` (parameter gradients too);
- partial correlation: one ``numpy.linalg.solve`` per (pair, target);
- result frames: one Python dict per (src, dst) row, then ``pandas.DataFrame(rows)``;
- regressor: one term at a time (per pair and aggregator), ``.item()`` host syncs,
  p-values with a loop over sources, ``evaluate_against`` with a row-wise ``apply``;
- simulation: a per-sample loop over the nodes in topological order (pyro-free: a
  ``torch.distributions.Normal`` sample per node instead of ``pyro.sample``).

Deliberate departures from the library (so that the numbers match gsnn_fast): the
scale-relative zero-variance rule and standardisation epsilon (the absolute ones are
options), NaN handling of partial correlations, gsnn_fast's homogeneous layout.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.special
import torch
import torch.nn as nn

from ._common import (
    ZERO_VAR_TOL,
    InfererState,
    RegressorState,
    build_layout,
    degree_normalized_init,
    function_edges,
)

__all__ = [
    "GSNN",
    "MagnitudeEdgeInferer",
    "MagnitudeEdgeRegressor",
    "SparseLinear",
    "simulate",
]


# =============================================================================== model
def batch_graphs(N: int, M: int, edge_index: torch.Tensor, B: int, device) -> torch.Tensor:
    """Replicate a bipartite (N -> M) index ``B`` times with per-sample offsets."""
    E = edge_index.size(1)
    batched = edge_index.to(device).repeat(1, B).contiguous()
    batch_idx = torch.repeat_interleave(torch.arange(B, dtype=torch.long, device=device), E)
    incr = torch.stack((batch_idx * N, batch_idx * M), dim=0)
    return batched + incr


class SparseLinear(nn.Module):
    """Sparse layer as message passing over a batch-replicated graph (gather + scatter-add)."""

    def __init__(self, indices: torch.Tensor, size: tuple[int, int], bias: bool = True):
        super().__init__()
        self.N, self.M = int(size[0]), int(size[1])
        self.size = (self.N, self.M)
        indices = torch.as_tensor(indices).long()
        self.values = nn.Parameter(degree_normalized_init(indices, self.size))
        self.register_buffer("indices", indices.contiguous())
        if bias:
            self.bias = nn.Parameter(torch.zeros((self.M, 1)))
        else:
            self.bias = None

    def forward(self, x: torch.Tensor, batched_indices: torch.Tensor | None = None):
        B = x.size(0)
        device = x.device
        edge_weight = self.values.expand(B, *self.values.shape).reshape(-1)
        if batched_indices is None:
            batched_indices = batch_graphs(self.N, self.M, self.indices, B, device)
        x = x.reshape(-1, 1)
        src, dst = batched_indices
        msg = edge_weight.view(-1, 1) * x.index_select(0, src)  # message(x_j, edge_weight)
        out = torch.zeros(B * self.M, 1, dtype=msg.dtype, device=device)
        out = out.scatter_add(0, dst.view(-1, 1).expand_as(msg), msg)  # aggr='add'
        if self.bias is not None:
            bias_idx = torch.arange(self.M, device=device).repeat(B)
            out = out + self.bias[bias_idx]
        return out.view(B, -1, 1)


class GroupLayerNorm(nn.Module):
    """Per-group layer norm with detached mean / unbiased std (loop-free, library style)."""

    def __init__(self, channel_groups: torch.Tensor):
        super().__init__()
        cg = torch.as_tensor(channel_groups).long()
        self.register_buffer("channel_groups", cg)
        G = int(cg.max()) + 1
        self.register_buffer("n_channels", torch.bincount(cg, minlength=G))
        self.gamma = nn.Parameter(torch.ones(G))
        self.beta = nn.Parameter(torch.zeros(G))

    def forward(self, x):
        x = x.squeeze(-1)
        B, cg = x.shape[0], self.channel_groups
        G = self.n_channels.numel()
        n = self.n_channels.to(x.dtype)
        with torch.no_grad():
            mean = torch.zeros(B, G, dtype=x.dtype).index_add(1, cg, x) / n
            ss = torch.zeros(B, G, dtype=x.dtype).index_add(1, cg, (x - mean[:, cg]) ** 2)
            std = (ss / (n - 1).clamp_min(1)).sqrt()
        out = (x - mean[:, cg]) / (std[:, cg] + 0.1)
        return (out * self.gamma[cg] + self.beta[cg]).unsqueeze(-1)


class ResBlock(nn.Module):
    def __init__(self, layout, lin_in, lin_out, nonlin, dropout, norm, node_mlp, hidden):
        super().__init__()
        self.register_buffer("channel_groups", layout.channel_groups.clone())
        self.n_nodes = layout.n_function
        self.channels_per_node = layout.channels
        self.lin_in, self.lin_out = lin_in, lin_out
        if norm == "layer":
            self.norm = GroupLayerNorm(layout.channel_groups)
        elif norm == "none":
            self.norm = nn.Identity()
        else:
            raise NotImplementedError(f"reference_style.GSNN: norm={norm!r} not implemented")
        self.nonlin = nonlin()
        self.dropout = dropout
        self.residual_weight = nn.Parameter(torch.tensor(1.0))
        self.mlp = None
        if node_mlp:
            self.mlp = NodeMLP(layout.channels, hidden, nonlin, dropout)
        self._store_activations = False

    def forward(self, x, batch_params):
        out = self.lin_in(x, batched_indices=batch_params[0])
        if self._store_activations:
            self._last_pre_norm_activation = out
        out = self.nonlin(self.norm(out))
        out = torch.nn.functional.dropout(out, p=self.dropout, training=self.training)
        if self.mlp is not None:
            out = self.mlp(out.squeeze(-1).view(-1, self.n_nodes, self.channels_per_node))
            out = out.view(-1, self.n_nodes * self.channels_per_node)
        if self._store_activations:
            self._last_activation = out
        out = self.lin_out(out, batched_indices=batch_params[1])
        return out.squeeze(-1) + self.residual_weight.relu() * x


class NodeMLP(nn.Module):
    """Per-node MLP (state_dict keys ``mlp.0.*`` ... as in the library)."""

    def __init__(self, ch, hidden, nonlin, dropout):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(ch, hidden),
            nn.LayerNorm(hidden),
            nonlin(),
            nn.Dropout(dropout),
            nn.Linear(hidden, ch),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.mlp(x)


class GSNN(nn.Module):
    """GSNN with gsnn_fast's homogeneous layout; parameter names match gsnn_fast.GSNN
    (``ResBlocks.<i>.lin_in.values`` ...), so its state_dict parameters load here.

    Supported options: ``norm`` in ('none', 'layer'), ``node_mlp``, ``share_layers``,
    ``residual=True``, ``norm_first=True``; others raise NotImplementedError.
    """

    def __init__(
        self,
        edge_index_dict,
        node_names_dict,
        channels: int,
        layers: int,
        dropout: float = 0.0,
        nonlin=torch.nn.ELU,
        bias: bool = True,
        share_layers: bool = True,
        add_function_self_edges: bool = True,
        norm: str = "layer",
        node_mlp: bool = True,
        node_mlp_hidden: int = 128,
        checkpoint: bool = False,
        **unsupported,
    ):
        super().__init__()
        bad = {k: v for k, v in unsupported.items() if k not in ("init", "verbose")}
        if bad:
            raise NotImplementedError(f"reference_style.GSNN: unsupported options {bad}")
        lay = build_layout(edge_index_dict, node_names_dict, channels, add_function_self_edges)
        self.layout = lay
        self.layers, self.channels, self.norm, self.checkpoint = layers, channels, norm, checkpoint
        self.num_nodes = lay.n_nodes
        self.register_buffer("edge_index", lay.edge_index)
        self.register_buffer("input_node_mask", lay.input_node_mask)
        self.register_buffer("output_node_mask", lay.output_node_mask)
        E, C = lay.E, lay.C

        def mk_in():
            return SparseLinear(lay.w_in_indices, (E, C), bias=bias)

        def mk_out():
            return SparseLinear(lay.w_out_indices, (C, E), bias=bias)

        shared = (mk_in(), mk_out()) if share_layers else None
        blocks = []
        for _ in range(layers):
            lin_in, lin_out = shared if shared else (mk_in(), mk_out())
            blocks.append(
                ResBlock(lay, lin_in, lin_out, nonlin, dropout, norm, node_mlp, node_mlp_hidden)
            )
        self.ResBlocks = nn.ModuleList(blocks)
        self.scale = torch.tensor(layers**0.5, dtype=torch.float32)
        self._B = None
        self._batch_params = None

    def get_batch_params(self, B, device):
        if self._B == B and self._batch_params is not None:
            return self._batch_params
        self._B = B
        lin_in, lin_out = self.ResBlocks[0].lin_in, self.ResBlocks[0].lin_out
        self._batch_params = (
            batch_graphs(lin_in.N, lin_in.M, lin_in.indices, B, device),
            batch_graphs(lin_out.N, lin_out.M, lin_out.indices, B, device),
        )
        return self._batch_params

    def forward(self, x):
        B = x.size(0)
        x_node = torch.zeros((B, self.num_nodes), device=x.device, dtype=torch.float32)
        idx = self.input_node_mask.nonzero(as_tuple=True)[0].unsqueeze(0).expand(B, -1)
        x_node = x_node.scatter_add(1, idx, x.float())
        h = x_node[:, self.edge_index[0]]  # node2edge
        batch_params = self.get_batch_params(B, x.device)
        for mod in self.ResBlocks:
            h = mod(h, batch_params).squeeze(-1)
        h = h / self.scale
        # edge2node: scatter-add the edges into the output nodes, / sqrt(in-degree)
        out_ixs = self.output_node_mask.nonzero(as_tuple=True)[0]
        src, dst = self.edge_index
        out_edge_mask = torch.isin(dst, out_ixs)
        out = torch.zeros(B, self.num_nodes, dtype=torch.float32, device=x.device)
        index = dst[out_edge_mask].view(1, -1).expand(B, -1)
        out = out.scatter_add(1, index, h[:, out_edge_mask].view(B, -1))
        deg_in = torch.bincount(dst, minlength=out.size(1)).clamp_min(1)
        out = out / deg_in.sqrt()
        return out[:, self.output_node_mask]


# ============================================================ magnitude helpers (shared)
def _channel_ixs_by_fn(model) -> tuple[int, list[torch.Tensor]]:
    """Per function node (ascending), the channel indices it owns (a Python loop)."""
    channel_groups = model.ResBlocks[0].channel_groups.detach().cpu()
    function_mask = ~(model.input_node_mask | model.output_node_mask)
    fn_ids = function_mask.nonzero(as_tuple=True)[0].cpu().tolist()
    out = []
    for homo_idx in fn_ids:
        ixs = (channel_groups == homo_idx).nonzero(as_tuple=True)[0]
        if ixs.numel() == 0:
            raise ValueError(f"function node {homo_idx} has no channels")
        out.append(ixs)
    return len(fn_ids), out


def _parents_by_target(edge_arr: np.ndarray, N: int) -> list[np.ndarray]:
    buf: list[list[int]] = [[] for _ in range(N)]
    for i, j in edge_arr.T:
        if 0 <= i < N and 0 <= j < N and i != j:
            buf[int(j)].append(int(i))
    return [np.asarray(sorted(set(p)), dtype=np.int64) for p in buf]


def _bh_fdr(pvals: np.ndarray) -> np.ndarray:
    pvals = pvals.astype(float)
    m = len(pvals)
    order = np.argsort(pvals, kind="stable")
    ranked = pvals[order]
    bh = ranked * m / (np.arange(1, m + 1))
    bh = np.minimum.accumulate(bh[::-1])[::-1]
    bh = np.clip(bh, 0.0, 1.0)
    q_values = np.empty_like(bh)
    q_values[order] = bh
    return q_values


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC-AUC the way sklearn's roc_auc_score computes it (curve + trapezoid)."""
    order = np.argsort(-y_score, kind="mergesort")
    y_score, y_true = y_score[order], y_true[order]
    distinct = np.where(np.diff(y_score))[0]
    thr = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true)[thr]
    fps = 1 + thr - tps
    tpr = np.r_[0, tps] / max(tps[-1], 1)
    fpr = np.r_[0, fps] / max(fps[-1], 1)
    return float(np.trapezoid(tpr, fpr))


def evaluate_target_ranking(res, positive_edges, score_col="corr", top_k=(1, 3, 5)):
    """Within-target ranking (groupby rank, then one boolean filter per positive)."""
    pos = {(s, d) for s, d in positive_edges}
    if not pos:
        raise ValueError("positive_edges is empty.")
    ranked = res.dropna(subset=[score_col]).copy()
    ranked["rank"] = (
        ranked.groupby("dst_func", sort=False)[score_col]
        .rank(ascending=False, method="first")
        .astype(int)
    )
    ranked["n_candidates"] = ranked.groupby("dst_func", sort=False)["dst_func"].transform("count")
    rows = []
    for src, dst in sorted(pos):
        sub = ranked[(ranked["src_func"] == src) & (ranked["dst_func"] == dst)]
        if sub.empty:
            rows.append(
                {
                    "src_func": src,
                    "dst_func": dst,
                    "score": np.nan,
                    "rank": np.nan,
                    "n_candidates": int((ranked["dst_func"] == dst).sum()),
                    "reciprocal_rank": 0.0,
                    **{f"top@{k}": False for k in top_k},
                }
            )
            continue
        row = sub.iloc[0]
        rank = int(row["rank"])
        rows.append(
            {
                "src_func": src,
                "dst_func": dst,
                "score": row[score_col],
                "rank": rank,
                "n_candidates": int(row["n_candidates"]),
                "reciprocal_rank": 1.0 / rank,
                **{f"top@{k}": rank <= k for k in top_k},
            }
        )
    detail = pd.DataFrame(rows)
    summary = {"n_positives": float(len(detail)), "mrr": float(detail["reciprocal_rank"].mean())}
    for k in top_k:
        summary[f"top@{k}"] = float(detail[f"top@{k}"].mean())
    return detail, summary


# =========================================================================== inferer
def partial_from_moments(
    corr, cov_xy, cov_xx, var_x, var_y, parents_by_target, ridge, tol=ZERO_VAR_TOL
):
    """Partial correlations of one pair, one target at a time (numpy, [N, N] in/out).

    ``var_x`` / ``var_y`` are NaN where the variance is zero. For target j with parents
    S: Cholesky of ``cov_xx[S, S] + ridge I`` (failure -> NaN column), ``alpha``,
    residual target variance ``vy`` (NaN column when not finite or ``<= tol var_y[j]``),
    then for every source i the residual variance ``vx_i`` and the partial correlation;
    NaN for zero / non-finite ``vx_i``, for i in S and i == j. No parents: ``corr``.
    """
    N = corr.shape[0]
    out = np.full((N, N), np.nan)
    for j in range(N):
        S = parents_by_target[j]
        if S.size == 0:
            out[:, j] = corr[:, j]
            continue
        A = cov_xx[np.ix_(S, S)].copy()
        A.flat[:: S.size + 1] += ridge
        b = cov_xy[S, j]
        try:
            factor = (np.linalg.cholesky(A), True)
        except np.linalg.LinAlgError:
            continue
        alpha = scipy.linalg.cho_solve(factor, b)
        vy = var_y[j] - b @ alpha
        if not np.isfinite(vy) or vy <= tol * var_y[j]:
            continue
        C = cov_xx[:, S]
        M = scipy.linalg.cho_solve(factor, C.T)
        vx = var_x - np.einsum("ik,ki->i", C, M)
        num = cov_xy[:, j] - C @ alpha
        with np.errstate(divide="ignore", invalid="ignore"):
            row = num / np.sqrt(vx * vy)
        row[~np.isfinite(vx) | (vx <= tol * var_x) | ~np.isfinite(row)] = np.nan
        row[S] = np.nan
        row[j] = np.nan
        out[:, j] = np.clip(row, -1.0, 1.0)
    return out


class MagnitudeEdgeInferer(InfererState):
    """Post-hoc Tier-0 inferer, library style (see the module docstring)."""

    def __init__(self, model, data, reduction="l1", use_pre_norm=True):
        super().__init__(model, data, reduction, use_pre_norm)
        n_fn, self._channel_ixs = _channel_ixs_by_fn(model)
        if n_fn != self.N:
            raise ValueError("function node count mismatch")
        edge_arr = function_edges(data)
        self.edges = {(self.function_nodes[i], self.function_nodes[j]) for i, j in edge_arr.T}
        self.parents_by_target = _parents_by_target(edge_arr, self.N)
        self.reset_stats()

    def reset_stats(self):
        P, N = self.n_pairs, self.N
        self.n = 0
        self.sum_x = np.zeros((P, N))
        self.sum_y = np.zeros((P, N))
        self.sum_x2 = np.zeros((P, N))
        self.sum_y2 = np.zeros((P, N))
        self.sum_xy = np.zeros((P, N, N))
        self.sum_xx = np.zeros((P, N, N))

    def _reduce_channels(self, tensor):
        if tensor.dim() == 3 and tensor.size(-1) == 1:
            tensor = tensor.squeeze(-1)
        B = tensor.size(0)
        out = torch.empty(B, self.N, device=tensor.device, dtype=tensor.dtype)
        for fn_idx, ch_ixs in enumerate(self._channel_ixs):
            vals = tensor[:, ch_ixs.to(tensor.device)]
            if self.reduction == "l1":
                out[:, fn_idx] = vals.abs().sum(dim=-1)
            else:
                out[:, fn_idx] = vals.pow(2).sum(dim=-1).sqrt()
        return out

    def _per_batch_magnitudes(self, x, y, crit):
        model = self.model
        was_training = model.training
        model.eval()
        for mod in model.ResBlocks:
            mod._store_activations = True
        attr = "_last_pre_norm_activation" if self.use_pre_norm else "_last_activation"
        try:
            loss = crit(model(x), y)
            acts = [getattr(mod, attr) for mod in model.ResBlocks]
            for act in acts:
                act.retain_grad()
            model.zero_grad(set_to_none=True)
            loss.backward()
            grads = [act.grad for act in acts]
            x_mag = torch.stack([self._reduce_channels(a) for a in acts], dim=0)
            y_mag = torch.stack([self._reduce_channels(g) for g in grads], dim=0)
        finally:
            for mod in model.ResBlocks:
                mod._store_activations = False
                for a in ("_last_activation", "_last_pre_norm_activation"):
                    if hasattr(mod, a):
                        delattr(mod, a)
            model.zero_grad(set_to_none=True)  # like gsnn_fast: leave no parameter gradients
            model.train(was_training)
        return x_mag, y_mag

    def _update_stats(self, x_mag, y_mag):
        x_np = x_mag.detach().cpu().numpy()
        y_np = y_mag.detach().cpu().numpy()
        self.n += x_np.shape[1]
        for p in range(self.n_pairs):
            act_l, grad_l = x_np[p], y_np[p + 1]
            self.sum_x[p] += act_l.sum(axis=0)
            self.sum_y[p] += grad_l.sum(axis=0)
            self.sum_x2[p] += (act_l**2).sum(axis=0)
            self.sum_y2[p] += (grad_l**2).sum(axis=0)
            self.sum_xy[p] += act_l.T @ grad_l
            self.sum_xx[p] += act_l.T @ act_l

    def update(self, x, y, crit=None):
        """One inference batch: capture + magnitudes + statistics."""
        crit = crit if crit is not None else torch.nn.MSELoss()
        x_mag, y_mag = self._per_batch_magnitudes(x, y, crit)
        self._update_stats(x_mag, y_mag)

    def fit(self, dataloader, crit=None, device="cpu", verbose=False):
        self.reset_stats()
        self.model.to(device)
        for x, y in dataloader:
            self.update(x.to(device), y.to(device), crit)
        return self.n

    # ------------------------------------------------------------------ scoring
    def _moments(self):
        """Per pair: n, means, variances (NaN where zero in the relative sense)."""
        if self.n_pairs == 0 or self.n < 3:
            raise RuntimeError("need >= 2 ResBlocks and >= 3 samples")
        n = float(self.n)
        mean_x, mean_y = self.sum_x / n, self.sum_y / n
        var_x = np.maximum(self.sum_x2 / n - mean_x**2, 0.0)
        var_y = np.maximum(self.sum_y2 / n - mean_y**2, 0.0)
        var_x[var_x <= ZERO_VAR_TOL * mean_x**2] = np.nan
        var_y[var_y <= ZERO_VAR_TOL * mean_y**2] = np.nan
        return n, mean_x, mean_y, var_x, var_y

    def _compute_correlations(self):
        n, mean_x, mean_y, var_x, var_y = self._moments()
        corr = np.full((self.n_pairs, self.N, self.N), np.nan)
        for p in range(self.n_pairs):
            cov_xy = self.sum_xy[p] / n - mean_x[p][:, None] * mean_y[p][None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                corr_p = cov_xy / np.sqrt(var_x[p][:, None] * var_y[p][None, :])
            corr[p] = np.clip(corr_p, -1.0, 1.0)
        return corr

    def _compute_partial_correlations(self, ridge=1e-8):
        n, mean_x, mean_y, var_x, var_y = self._moments()
        plain = self._compute_correlations()
        pcorr = np.full((self.n_pairs, self.N, self.N), np.nan)
        for p in range(self.n_pairs):
            cov_xx = self.sum_xx[p] / n - np.outer(mean_x[p], mean_x[p])
            cov_xy = self.sum_xy[p] / n - np.outer(mean_x[p], mean_y[p])
            pcorr[p] = partial_from_moments(
                plain[p], cov_xy, cov_xx, var_x[p], var_y[p], self.parents_by_target, ridge
            )
        return pcorr

    @staticmethod
    def _aggregate_pairs(corr, layer_agg):
        if layer_agg == "mean":
            with np.errstate(all="ignore"), _quiet():
                return np.nanmean(corr, axis=0)
        if layer_agg == "max":
            abs_corr = np.abs(corr)
            all_nan = np.all(np.isnan(abs_corr), axis=0)
            abs_filled = abs_corr.copy()
            abs_filled[np.isnan(abs_filled)] = -np.inf
            idx = np.argmax(abs_filled, axis=0)
            P, N, _ = corr.shape
            out = corr[idx, np.arange(N)[:, None], np.arange(N)[None, :]]
            out[all_nan] = np.nan
            return out
        raise ValueError(f"Unknown layer_agg: {layer_agg}")

    @staticmethod
    def _fisher_pvalues(corr, n, cond_size=0):
        df = (n - 3) - np.asarray(cond_size, dtype=np.float64)
        z = np.arctanh(np.clip(corr, -0.9999, 0.9999)) * np.sqrt(np.maximum(df, 1.0))
        p = 0.5 * (1.0 - scipy.special.erf(z / math.sqrt(2.0)))
        p = np.where(np.isnan(corr), 1.0, p)
        return np.where(df < 2, 1.0, p)

    def evaluate(
        self, layer_agg="mean", exclude_self=True, score="corr", ridge=1e-8, top_k=None
    ) -> pd.DataFrame:
        if score == "corr":
            corr_pairs = self._compute_correlations()
        elif score == "partial":
            corr_pairs = self._compute_partial_correlations(ridge=ridge)
        else:
            raise ValueError(f"Unknown score: {score!r}")
        corr = self._aggregate_pairs(corr_pairs, layer_agg)
        cond_sizes = np.asarray([s.size for s in self.parents_by_target], dtype=np.int64)
        rows = []
        for i, src in enumerate(self.function_nodes):
            for j, dst in enumerate(self.function_nodes):
                if exclude_self and i == j:
                    continue
                row = {
                    "src_func": src,
                    "dst_func": dst,
                    "src_idx": i,
                    "dst_idx": j,
                    "corr": corr[i, j],
                    "has_edge": (src, dst) in self.edges,
                }
                if score == "partial":
                    row["n_cond"] = int(cond_sizes[j])
                for p in range(self.n_pairs):
                    row[f"corr_a{p}_g{p + 1}"] = corr_pairs[p, i, j]
                rows.append(row)
        res = pd.DataFrame(rows)
        cs = cond_sizes[res["dst_idx"].to_numpy()] if score == "partial" else 0
        pvals = self._fisher_pvalues(res["corr"].to_numpy(), self.n, cond_size=cs)
        res["p_value"] = pvals
        res["q_value"] = _bh_fdr(pvals)
        res = res.sort_values("corr", ascending=False, na_position="last", kind="stable")
        if top_k is not None:
            res = res[res["corr"].notna()].groupby("dst_idx", sort=False).head(int(top_k))
        return res.reset_index(drop=True)

    evaluate_target_ranking = staticmethod(evaluate_target_ranking)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


# ========================================================================= regressor
class MagnitudeEdgeRegressor(RegressorState):
    """Online auxiliary regressor, library style: one term (pair, aggregator) at a time."""

    _AGG_FNS = {
        "sum": lambda v: v.abs().sum(dim=-1),
        "max": lambda v: v.abs().max(dim=-1).values,
        "mean": lambda v: v.abs().mean(dim=-1),
        "l2": lambda v: v.pow(2).sum(dim=-1).sqrt(),
    }

    def __init__(self, model, data, **kwargs):
        super().__init__(model, data, stats_dtype=torch.float32, **kwargs)
        _, self._channel_ixs = _channel_ixs_by_fn(model)
        edge_arr = function_edges(data)
        self.edges = {(self.function_nodes[i], self.function_nodes[j]) for i, j in edge_arr.T}
        self._act_attr = "_last_pre_norm_activation" if self.use_pre_norm else "_last_activation"

    def arm_retained_grads(self):
        acts = []
        for mod in self.model.ResBlocks:
            act = getattr(mod, self._act_attr)
            act.retain_grad()
            acts.append(act)
        self._acts = acts

    def _cleanup_hooks(self):
        for mod in self.model.ResBlocks:
            mod._store_activations = False
            for attr in ("_last_activation", "_last_pre_norm_activation"):
                if hasattr(mod, attr):
                    delattr(mod, attr)
        self._acts = None

    def _reduce_channels(self, tensor, aggregator):
        if tensor.dim() == 3 and tensor.size(-1) == 1:
            tensor = tensor.squeeze(-1)
        fn = self._AGG_FNS[aggregator]
        out = torch.empty(tensor.size(0), self.N, device=tensor.device, dtype=tensor.dtype)
        for fn_idx, ch_ixs in enumerate(self._channel_ixs):
            out[:, fn_idx] = fn(tensor[:, ch_ixs.to(tensor.device)])
        return out

    def _eps(self, mean, var):
        if self.eps_mode == "absolute":
            return self.eps
        return self.eps * (var + mean * mean) + torch.finfo(var.dtype).tiny

    def _standardize(self, x, y, pair_idx, agg_idx, training):
        if not self.standardize:
            return x, y
        if training:
            mean_x, var_x = x.mean(dim=0), x.var(dim=0, unbiased=False)
            mean_y, var_y = y.mean(dim=0), y.var(dim=0, unbiased=False)
            m = self.ema_momentum
            self.running_mean_x[pair_idx, agg_idx].lerp_(mean_x, m)
            self.running_var_x[pair_idx, agg_idx].lerp_(var_x, m)
            self.running_mean_y[pair_idx].lerp_(mean_y, m)
            self.running_var_y[pair_idx].lerp_(var_y, m)
            self.n_batches_tracked += 1
        else:
            mean_x = self.running_mean_x[pair_idx, agg_idx]
            var_x = self.running_var_x[pair_idx, agg_idx]
            mean_y, var_y = self.running_mean_y[pair_idx], self.running_var_y[pair_idx]
        x_std = (x - mean_x) / torch.sqrt(var_x + self._eps(mean_x, var_x))
        y_std = (y - mean_y) / torch.sqrt(var_y + self._eps(mean_y, var_y))
        return x_std, y_std

    def aux_step(self):
        if self._acts is None:
            raise RuntimeError("call pre_forward(), model(x), arm_retained_grads(), backward()")
        try:
            grads = [act.grad for act in self._acts]
            y_layers = [
                self._reduce_channels(g.detach(), "sum") if g is not None else None for g in grads
            ]
            total_loss = torch.tensor(0.0, device=self.W.device)
            n_terms = 0
            updates = []
            for p in range(self.n_pairs):
                y = y_layers[p + 1]
                for k, agg in enumerate(self.aggregators):
                    x = self._reduce_channels(self._acts[p].detach(), agg)
                    x_std, y_std = self._standardize(x, y, p, k, self.training)
                    y_hat = x_std @ self.dropout(self.W)
                    total_loss = total_loss + ((y_hat - y_std) ** 2).mean()
                    n_terms += 1
                    updates.append((x_std.detach(), y_hat.detach(), y_std.detach()))
            if self.ridge > 0:
                total_loss = total_loss + self.ridge * (self.W**2).sum()
            self.optim.zero_grad()
            total_loss.backward()
            self.optim.step()
            with torch.no_grad():
                for x_std, y_hat, y_std in updates:
                    self.gram.add_(x_std.T @ x_std)
                    self.n_samples += x_std.size(0)
                    self.residual_sum_sq += ((y_hat - y_std) ** 2).sum().item()
            return {"aux_loss": (total_loss / max(n_terms, 1)).item(), "n_terms": float(n_terms)}
        finally:
            self._cleanup_hooks()

    def score_matrix(self):
        w = self.W.detach().cpu().numpy()
        if self.score_mode == "abs":
            return np.abs(w)
        if self.score_mode == "relu":
            return np.maximum(w, 0.0)
        return w

    def _coefficient_pvalues(self):
        N = self.N
        pvals = np.ones((N, N), dtype=np.float64)
        n = int(self.n_samples.item())
        if n < N + 2:
            return pvals
        w = self.W.detach().cpu().numpy()
        gram = self.gram.detach().cpu().numpy().astype(np.float64) / max(n, 1)
        try:
            gram_inv = np.linalg.inv(gram + (self.ridge + 1e-8) * np.eye(N))
        except np.linalg.LinAlgError:
            return pvals
        rss = float(self.residual_sum_sq.item())
        sigma2 = rss / max(n * self.n_pairs * self.n_aggs * N - N, 1)
        for i in range(N):
            se_i = math.sqrt(max(sigma2 * gram_inv[i, i], 1e-12))
            z = w[i, :] / se_i
            pvals[i, :] = np.clip(0.5 * (1.0 - scipy.special.erf(z / math.sqrt(2.0))), 0, 1)
        return pvals

    def evaluate(self, *, exclude_self=True):
        scores = self.score_matrix()
        pvals = self._coefficient_pvalues()
        rows = []
        for i, src in enumerate(self.function_nodes):
            for j, dst in enumerate(self.function_nodes):
                if exclude_self and i == j:
                    continue
                rows.append(
                    {
                        "src_func": src,
                        "dst_func": dst,
                        "src_idx": i,
                        "dst_idx": j,
                        "score": scores[i, j],
                        "has_edge": (src, dst) in self.edges,
                        "p_value": pvals[i, j],
                    }
                )
        res = pd.DataFrame(rows)
        res["q_value"] = _bh_fdr(res["p_value"].to_numpy())
        res = res.sort_values("score", ascending=False, na_position="last", kind="stable")
        return res.reset_index(drop=True)

    def evaluate_against(self, positive_edges, *, top_k=(1, 3, 5)):
        pos = {(s, d) for s, d in positive_edges}
        if not pos:
            raise ValueError("positive_edges is empty.")
        res = self.evaluate(exclude_self=True)

        def _category(row):
            pair = (row["src_func"], row["dst_func"])
            if pair in pos:
                return "held_out"
            if pair in self.edges:
                return "in_graph"
            return "non_edge"

        res = res.assign(edge_category=res.apply(_category, axis=1))
        pos_scores = res.loc[res.edge_category == "held_out", "score"].dropna().values
        neg_scores = res.loc[res.edge_category == "non_edge", "score"].dropna().values
        out = {}
        if len(pos_scores) > 0 and len(neg_scores) > 0:
            y_true = np.concatenate([np.ones(len(pos_scores)), np.zeros(len(neg_scores))])
            out["auc"] = _roc_auc(y_true, np.concatenate([pos_scores, neg_scores]))
        else:
            out["auc"] = float("nan")
        _, summary = evaluate_target_ranking(res, pos, score_col="score", top_k=top_k)
        out.update(summary)
        return out

    evaluate_target_ranking = staticmethod(evaluate_target_ranking)


# ========================================================================== simulate
def _edge_sign(G, u, v, signed_edges):
    if signed_edges is not None and (u, v) in signed_edges:
        return float(signed_edges[(u, v)])
    s = G.edges[u, v].get("sign")
    return 1.0 if s is None else float(s)


def simulate(
    G,
    n_train,
    n_test,
    input_nodes,
    output_nodes,
    *,
    noise_scale=1.0,
    special_functions=None,
    signed_edges=None,
):
    """Per-sample simulation: a Python loop over samples, then over nodes in topological
    order (a fresh ``nx.topological_sort`` per sample, as the pyro program did), one
    ``Normal`` draw per node. Returns ``(x_train, x_test, y_train, y_test)``."""

    def model(input_values):
        sampled = {}
        for node in input_nodes:
            sampled[node] = input_values[node]
        for node in nx.topological_sort(G):
            if node in input_nodes:
                continue
            parents = list(G.predecessors(node))
            if not parents:
                sampled[node] = torch.distributions.Normal(0.0, 1.0).sample()
                continue
            parent_values = [sampled[p] for p in parents]
            if special_functions and node in special_functions:
                mean = special_functions[node](parent_values)
            else:
                mean = sum(_edge_sign(G, p, node, signed_edges) * sampled[p] for p in parents)
            mean = torch.as_tensor(mean, dtype=torch.float32)
            dist = torch.distributions.Normal(mean, float(noise_scale), validate_args=False)
            sampled[node] = dist.sample()
        return {node: sampled[node] for node in output_nodes}

    def generate_samples(n_samples):
        xs, ys = [], []
        for _ in range(n_samples):
            x_values = {
                node: torch.tensor(np.random.normal(0, 1), dtype=torch.float32)
                for node in input_nodes
            }
            y_values = model(x_values)
            xs.append([x_values[node].item() for node in input_nodes])
            ys.append([y_values[node].item() for node in output_nodes])
        return np.array(xs), np.array(ys)

    x_train, y_train = generate_samples(n_train)
    x_test, y_test = generate_samples(n_test)
    return x_train, x_test, y_train, y_test
