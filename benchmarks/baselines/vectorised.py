"""Baseline (b): the best pure torch we could write without custom kernels.

Longer than ~450 lines on purpose: a whole second implementation (model, inferer,
regressor, simulation) kept in one file so that it reads as one baseline.

This is NOT gsnn_fast code and must never be imported by the package. Same numbers as
gsnn_fast (checked by ``tests/test_baselines.py``), computed with whole-array torch ops:

- sparse layers: CSR sparse x dense products (``torch.sparse_csr_tensor`` @ dense) in a
  small ``autograd.Function`` (input gradient = CSR of ``W`` @ grad, value gradient =
  gather + multiply + batch sum); no batch-replicated indices;
- magnitudes: a reshape to ``(L, B, N, ch)`` + reduction when every function node owns
  ``ch`` contiguous channels, else ``index_add`` / ``scatter_reduce`` over
  ``channel_groups`` (segment reductions), in float64;
- inferer statistics: float64 ``baddbmm_`` over all pairs at once; gradients with
  ``torch.autograd.grad`` w.r.t. the captured activations only;
- partial correlation: targets grouped by conditioning-set size, one batched
  ``torch.linalg.solve_ex`` per group (all pairs at once);
- frames: built from arrays (no per-row Python objects); top-k per target by sorting;
- regressor: all ``P * K`` terms in one ``(P*K*B, N)`` design, one matmul each for the
  prediction and the gram, p-values from a Cholesky factor;
- simulation: all samples at once, one sparse product per topological generation.
"""

from __future__ import annotations

import math
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy import special, stats

from . import reference_style as _ref
from ._common import (
    ZERO_VAR_TOL,
    InfererState,
    RegressorState,
    function_channel_map,
    function_edges,
)

warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state")

__all__ = [
    "GSNN",
    "MagnitudeEdgeInferer",
    "MagnitudeEdgeRegressor",
    "SparseLinear",
    "simulate",
]


# =============================================================================== model
def _csr_plan(indices: torch.Tensor, N: int, M: int):
    r, m = indices
    perm_t = torch.argsort(m * max(N, 1) + r, stable=True)
    crow_t = torch.zeros(M + 1, dtype=torch.long)
    crow_t[1:] = torch.cumsum(torch.bincount(m, minlength=M), 0)
    perm = torch.argsort(r * max(M, 1) + m, stable=True)
    crow = torch.zeros(N + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(r, minlength=N), 0)
    return crow_t, r[perm_t].contiguous(), perm_t, crow, m[perm].contiguous(), perm


class _CSRMatmul(torch.autograd.Function):
    """``x @ W`` for dense x (B, N) and sparse W (N, M) given by COO values + CSR plans."""

    @staticmethod
    def forward(ctx, x, values, r, m, crow_t, col_t, perm_t, crow, col, perm, N, M):
        ctx.save_for_backward(x, values, r, m, crow, col, perm)
        ctx.NM = (N, M)
        wt = torch.sparse_csr_tensor(crow_t, col_t, values[perm_t], (M, N), check_invariants=False)
        return (wt @ x.t()).t()

    @staticmethod
    def backward(ctx, g):
        x, values, r, m, crow, col, perm = ctx.saved_tensors
        N, M = ctx.NM
        gx = gv = None
        if ctx.needs_input_grad[0]:
            w = torch.sparse_csr_tensor(crow, col, values[perm], (N, M), check_invariants=False)
            gx = (w @ g.t()).t()
        if ctx.needs_input_grad[1]:
            gv = (x.index_select(1, r) * g.index_select(1, m)).sum(0)
        return gx, gv, *([None] * 10)


class SparseLinear(_ref.SparseLinear):
    """Same parameters as the reference layer; CSR products instead of message passing."""

    def __init__(self, indices, size, bias=True):
        super().__init__(indices, size, bias)
        for name, t in zip(
            ("crow_t", "col_t", "perm_t", "crow", "col", "perm"),
            _csr_plan(self.indices, self.N, self.M),
        ):
            self.register_buffer("_" + name, t, persistent=False)

    def forward(self, x, batched_indices=None):
        x = x.reshape(x.shape[0], self.N)
        r, m = self.indices
        out = _CSRMatmul.apply(
            x, self.values, r, m, self._crow_t, self._col_t, self._perm_t,
            self._crow, self._col, self._perm, self.N, self.M,
        )  # fmt: skip
        if self.bias is not None:
            out = out + self.bias.view(1, -1)
        return out.unsqueeze(-1)


class GSNN(_ref.GSNN):
    """The reference-style GSNN with CSR sparse layers and index_copy / index_add I/O."""

    def __init__(self, edge_index_dict, node_names_dict, channels, layers, **kw):
        super().__init__(edge_index_dict, node_names_dict, channels, layers, **kw)
        # swap the sparse layers (same parameters) for CSR ones
        swapped = {}
        for blk in self.ResBlocks:
            for name in ("lin_in", "lin_out"):
                old = getattr(blk, name)
                if id(old) not in swapped:
                    new = SparseLinear(old.indices, old.size, bias=old.bias is not None)
                    new.load_state_dict(old.state_dict())
                    swapped[id(old)] = new
                setattr(blk, name, swapped[id(old)])
        src, dst = self.edge_index
        sel = self.output_node_mask[dst]
        first_out = self.layout.n_function + self.layout.n_input
        self.register_buffer(
            "_in_idx", torch.nonzero(self.input_node_mask).reshape(-1), persistent=False
        )
        self.register_buffer("_out_pos", torch.nonzero(sel).reshape(-1), persistent=False)
        self.register_buffer("_out_dst", dst[sel] - first_out, persistent=False)
        deg = torch.bincount(dst, minlength=self.num_nodes).clamp_min(1)
        self.register_buffer(
            "_out_scale", deg[self.output_node_mask].float().rsqrt(), persistent=False
        )

    def get_batch_params(self, B, device):
        return (None, None)

    def forward(self, x):
        x = x.float()
        B = x.shape[0]
        h = x.new_zeros(B, self.num_nodes).index_copy(1, self._in_idx, x)[:, self.edge_index[0]]
        for mod in self.ResBlocks:
            h = mod(h, (None, None))
        h = h / math.sqrt(self.layers)
        out = h.new_zeros(B, self.layout.n_output).index_add(1, self._out_dst, h[:, self._out_pos])
        return out * self._out_scale


# ======================================================================= magnitudes
class _Segments:
    """channel -> function node map with a reshape fast path (contiguous, equal size)."""

    def __init__(self, model):
        fn, ch_to_fn = function_channel_map(model)
        self.N = len(fn)
        owned = ch_to_fn >= 0
        self.idx = torch.nonzero(owned).reshape(-1)
        self.seg = ch_to_fn[owned]
        counts = torch.bincount(self.seg, minlength=self.N)
        self.counts = counts
        ch = int(counts[0]) if self.N else 0
        self.ch = ch
        self.reshape_ok = bool(
            self.N
            and bool((counts == ch).all())
            and torch.equal(self.seg, torch.arange(self.N).repeat_interleave(ch))
            and torch.equal(self.idx, torch.arange(self.N * ch))
        )

    def reduce(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """x (..., C) any float -> (..., N) float64 per-node reduction of |x|."""
        x = x.to(torch.float64)
        if self.reshape_ok:
            v = x[..., : self.N * self.ch].reshape(*x.shape[:-1], self.N, self.ch)
            if mode in ("sum", "l1"):
                return v.abs().sum(-1)
            if mode == "mean":
                return v.abs().mean(-1)
            if mode == "max":
                return v.abs().amax(-1)
            return v.square().sum(-1).sqrt()
        idx, sg = self.idx.to(x.device), self.seg.to(x.device)
        v = x.index_select(-1, idx)
        shape = (*x.shape[:-1], self.N)
        seg = sg.expand(*x.shape[:-1], -1) if mode == "max" else sg
        if mode in ("sum", "l1", "mean"):
            out = x.new_zeros(shape).index_add_(-1, sg, v.abs())
            return out / self.counts.to(out) if mode == "mean" else out
        if mode == "max":
            return x.new_zeros(shape).scatter_reduce_(-1, seg, v.abs(), "amax")
        return x.new_zeros(shape).index_add_(-1, sg, v.square()).sqrt()


def _capture(model, use_pre_norm):
    attr = "_last_pre_norm_activation" if use_pre_norm else "_last_activation"
    return [getattr(m, attr) for m in model.ResBlocks]


# ===================================================================== frames (arrays)
def _bh(p: np.ndarray) -> np.ndarray:
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * (m / np.arange(1, m + 1, dtype=np.float64))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return q


def _frame(names, columns: dict, p_value, sort_by, exclude_self=True, keep=None):
    """(src, dst) frame from (N, N) arrays: BH over all rows, then ``keep`` and sort."""
    n = len(names)
    rows = np.arange(n * n)
    if exclude_self:
        rows = rows[rows // n != rows % n]
    p_all = np.asarray(p_value, dtype=np.float64).ravel()[rows]
    q_all = _bh(p_all)
    if keep is not None:
        sel = keep.ravel()[rows]
        rows, p_all, q_all = rows[sel], p_all[sel], q_all[sel]
    order = np.argsort(-columns[sort_by].ravel()[rows], kind="stable")
    rows = rows[order]
    src, dst = np.divmod(rows, n)
    name_arr = np.asarray(list(names), dtype=object)
    data = {"src_func": name_arr[src], "dst_func": name_arr[dst], "src_idx": src, "dst_idx": dst}
    for key, values in columns.items():
        data[key] = np.asarray(values).ravel()[rows] if np.ndim(values) else values
    data["p_value"] = p_all[order]
    data["q_value"] = q_all[order]
    return pd.DataFrame(data)


def _top_k_mask(score: np.ndarray, k: int) -> np.ndarray:
    s = score.copy()
    np.fill_diagonal(s, np.nan)
    keyed = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-keyed, axis=0, kind="stable")[: min(k, s.shape[0])]
    mask = np.zeros(s.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=0)
    return mask & ~np.isnan(s)


def evaluate_target_ranking(res, positive_edges, score_col="corr", top_k=(1, 3, 5)):
    """Within-target ranking from arrays: one lexsort, one merge."""
    pos = sorted({(s, d) for s, d in positive_edges})
    if not pos:
        raise ValueError("positive_edges is empty")
    ranked = res.loc[res[score_col].notna(), ["src_func", "dst_func", score_col]]
    codes, uniq = pd.factorize(ranked["dst_func"])
    score = ranked[score_col].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(len(ranked)), -score, codes))
    counts = np.bincount(codes, minlength=len(uniq))
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(ranked), dtype=np.int64)
    rank[order] = np.arange(len(ranked)) - starts[codes[order]] + 1
    lookup = pd.DataFrame(
        {
            "src_func": ranked["src_func"].to_numpy(),
            "dst_func": ranked["dst_func"].to_numpy(),
            "score": score,
            "rank": rank,
        }
    )
    detail = pd.DataFrame(pos, columns=["src_func", "dst_func"]).merge(
        lookup, on=["src_func", "dst_func"], how="left"
    )
    n_cand = dict(zip(uniq, counts.tolist()))
    detail["rank"] = detail["rank"].astype("float64")
    detail["n_candidates"] = [int(n_cand.get(d, 0)) for d in detail["dst_func"]]
    detail["reciprocal_rank"] = np.where(detail["rank"].notna(), 1.0 / detail["rank"], 0.0)
    for k in top_k:
        detail[f"top@{k}"] = (detail["rank"] <= k).to_numpy()
    summary = {"n_positives": float(len(detail)), "mrr": float(detail["reciprocal_rank"].mean())}
    for k in top_k:
        summary[f"top@{k}"] = float(detail[f"top@{k}"].mean())
    return detail, summary


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


# =========================================================================== inferer
def partial_from_moments(
    corr, cov_xy, cov_xx, var_x, var_y, groups, ridge, tol=ZERO_VAR_TOL, max_elems=1 << 24
):
    """Partial correlations of all pairs at once (torch, [P, N, N] in/out).

    ``groups``: [(targets (g,), parents (g, s))] -- targets batched by conditioning-set
    size s; one batched Cholesky (``cholesky_ex``; failure -> NaN column) and one
    ``cholesky_solve`` with the N + 1 right-hand sides per chunk of a group. Same NaN
    rules as the reference (variances are NaN where zero). Targets without parents keep
    ``corr``.
    """
    out = corr.clone()
    P, N, dev = corr.shape[0], corr.shape[1], corr.device
    nan = float("nan")
    for targets, S in groups:
        targets, S = targets.to(dev), S.to(dev)
        s = S.shape[1]
        step = max(1, max_elems // max(P * s * (N + 1), 1))
        for lo in range(0, targets.numel(), step):
            T, St = targets[lo : lo + step], S[lo : lo + step]  # (g,), (g, s)
            g = T.numel()
            rows = cov_xx[:, St]  # (P, g, s, N): cov_xx[S, :]
            A = torch.gather(rows, 3, St.view(1, g, 1, s).expand(P, g, s, s))
            A = A + ridge * torch.eye(s, dtype=A.dtype, device=A.device)
            b = cov_xy[:, St, T.view(g, 1)]  # (P, g, s): cov_xy[S, j]
            Lc, info = torch.linalg.cholesky_ex(A)
            sol = torch.cholesky_solve(torch.cat([rows, b.unsqueeze(3)], 3), Lc)
            M, alpha = sol[..., :N], sol[..., N]
            vy_p = var_y[:, T] - (b * alpha).sum(2)  # (P, g)
            vx_p = var_x.unsqueeze(1) - (rows * M).sum(2)  # (P, g, N)
            num = cov_xy[:, :, T].transpose(1, 2) - (rows * alpha.unsqueeze(3)).sum(2)
            r = num / torch.sqrt(vx_p * vy_p.unsqueeze(2))
            bad_col = (info != 0) | ~torch.isfinite(vy_p) | (vy_p <= tol * var_y[:, T])
            bad = ~torch.isfinite(vx_p) | (vx_p <= tol * var_x.unsqueeze(1)) | ~torch.isfinite(r)
            r = r.masked_fill(bad | bad_col.unsqueeze(2), nan)
            r[:, torch.arange(g, device=dev).view(g, 1), St] = nan  # i in S_j
            r[:, torch.arange(g, device=dev), T] = nan  # i == j
            out[:, :, T] = r.transpose(1, 2).clamp(-1.0, 1.0)
    return out


class MagnitudeEdgeInferer(InfererState):
    """Post-hoc Tier-0 inferer, vectorised torch (float64 statistics as torch tensors)."""

    def __init__(self, model, data, reduction="l1", use_pre_norm=True):
        super().__init__(model, data, reduction, use_pre_norm)
        self._seg = _Segments(model)
        ei = function_edges(data)
        self.adj = np.zeros((self.N, self.N), dtype=bool)
        self.adj[ei[0], ei[1]] = True
        par = self.adj.copy()
        np.fill_diagonal(par, False)
        self.cond_sizes = par.sum(0).astype(np.int64)  # |S_j|
        # targets grouped by |S_j|; parents sorted ascending (column j of par)
        self._groups = []
        for s in np.unique(self.cond_sizes[self.cond_sizes > 0]):
            targets = np.flatnonzero(self.cond_sizes == s)
            S = np.nonzero(par[:, targets].T)[1].reshape(targets.size, s)
            self._groups.append((torch.from_numpy(targets), torch.from_numpy(S)))
        self.reset_stats()

    def reset_stats(self, device="cpu"):
        P, N, f64 = self.n_pairs, self.N, torch.float64
        self.n = 0
        self.sum_x = torch.zeros(P, N, dtype=f64, device=device)
        self.sum_y = torch.zeros(P, N, dtype=f64, device=device)
        self.sum_x2 = torch.zeros(P, N, dtype=f64, device=device)
        self.sum_y2 = torch.zeros(P, N, dtype=f64, device=device)
        self.sum_xy = torch.zeros(P, N, N, dtype=f64, device=device)
        self.sum_xx = torch.zeros(P, N, N, dtype=f64, device=device)

    def magnitudes(self, x, y, crit):
        model = self.model
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        blocks = list(model.ResBlocks)
        for b in blocks:
            b._store_activations = True
        try:
            loss = crit(model(x), y)
            acts = _capture(model, self.use_pre_norm)
            grads = torch.autograd.grad(loss, acts)
        finally:
            for b in blocks:
                b._store_activations = False
                for a in ("_last_activation", "_last_pre_norm_activation"):
                    b.__dict__.pop(a, None)
            for m, was in modes:
                m.training = was
        B = x.shape[0]
        A = torch.stack([a.detach().reshape(B, -1) for a in acts])
        Gr = torch.stack([g.reshape(B, -1) for g in grads])
        mode = "sum" if self.reduction == "l1" else "l2"
        return self._seg.reduce(A, mode), self._seg.reduce(Gr, mode)

    def update_stats(self, xm: torch.Tensor, ym: torch.Tensor) -> None:
        """xm, ym (L, B, N) float64."""
        if self.sum_xy.device != xm.device:
            self.reset_stats(xm.device)
        x, y = xm[:-1], ym[1:]
        self.n += x.shape[1]
        self.sum_x += x.sum(1)
        self.sum_y += y.sum(1)
        self.sum_x2 += x.square().sum(1)
        self.sum_y2 += y.square().sum(1)
        xt = x.transpose(1, 2)
        self.sum_xy.baddbmm_(xt, y)
        self.sum_xx.baddbmm_(xt, x)

    def update(self, x, y, crit=None):
        """One inference batch: capture + magnitudes + statistics."""
        crit = crit if crit is not None else torch.nn.MSELoss()
        self.update_stats(*self.magnitudes(x, y, crit))

    def fit(self, dataloader, crit=None, device="cpu", verbose=False):
        self.reset_stats(device)
        self.model.to(device)
        for x, y in dataloader:
            self.update(x.to(device), y.to(device), crit)
        return self.n

    def load_stats(self, n, **sums):
        self.n = int(n)
        for k, v in sums.items():
            setattr(self, k, torch.as_tensor(np.asarray(v), dtype=torch.float64))

    # ------------------------------------------------------------------ scoring
    def moments(self):
        """n, (P, N) variances (NaN where zero, relative rule), cov_xy (P, N, N), means."""
        if self.n_pairs == 0 or self.n < 3:
            raise RuntimeError("need >= 2 ResBlocks and >= 3 samples")
        n = float(self.n)
        mx, my = self.sum_x / n, self.sum_y / n
        vx = (self.sum_x2 / n - mx * mx).clamp_min(0.0)
        vy = (self.sum_y2 / n - my * my).clamp_min(0.0)
        vx = vx.masked_fill(vx <= ZERO_VAR_TOL * mx * mx, float("nan"))
        vy = vy.masked_fill(vy <= ZERO_VAR_TOL * my * my, float("nan"))
        cov_xy = self.sum_xy / n - mx.unsqueeze(2) * my.unsqueeze(1)
        return n, mx, my, vx, vy, cov_xy

    def correlations(self) -> torch.Tensor:
        """(P, N, N) float64 Pearson correlations (NaN where a variance is zero)."""
        n, mx, my, vx, vy, cov_xy = self.moments()
        return (cov_xy / torch.sqrt(vx.unsqueeze(2) * vy.unsqueeze(1))).clamp_(-1.0, 1.0)

    def partial_correlations(self, ridge=1e-8) -> torch.Tensor:
        n, mx, my, vx, vy, cov_xy = self.moments()
        corr = (cov_xy / torch.sqrt(vx.unsqueeze(2) * vy.unsqueeze(1))).clamp_(-1.0, 1.0)
        cov_xx = self.sum_xx / n - mx.unsqueeze(2) * mx.unsqueeze(1)
        return partial_from_moments(corr, cov_xy, cov_xx, vx, vy, self._groups, ridge)

    @staticmethod
    def aggregate_pairs(corr: torch.Tensor, layer_agg: str) -> torch.Tensor:
        if layer_agg == "mean":
            return torch.nanmean(corr, 0)
        if layer_agg == "max":
            key = torch.nan_to_num(corr.abs(), nan=-math.inf)
            idx = key.argmax(0, keepdim=True)
            return torch.gather(corr, 0, idx)[0]  # all-NaN -> corr[0] = NaN
        raise ValueError(f"Unknown layer_agg: {layer_agg}")

    def score_matrices(self, layer_agg="mean", score="corr", ridge=1e-8):
        pairs = self.partial_correlations(ridge) if score == "partial" else self.correlations()
        if score not in ("corr", "partial"):
            raise ValueError(f"Unknown score: {score!r}")
        return self.aggregate_pairs(pairs, layer_agg), pairs

    def evaluate(self, layer_agg="mean", exclude_self=True, score="corr", ridge=1e-8, top_k=None):
        agg, pairs = self.score_matrices(layer_agg, score, ridge)
        corr = agg.cpu().numpy()
        pairs = pairs.cpu().numpy()
        cond = self.cond_sizes if score == "partial" else np.zeros(self.N, dtype=np.int64)
        df = (self.n - 3) - cond[None, :].astype(np.float64)
        with np.errstate(invalid="ignore"):
            z = np.arctanh(np.clip(corr, -0.9999, 0.9999)) * np.sqrt(np.maximum(df, 1.0))
        p = 0.5 * special.erfc(z / math.sqrt(2.0))
        p = np.where(np.isnan(corr) | (df < 2), 1.0, p)
        cols = {"corr": corr, "has_edge": self.adj}
        if score == "partial":
            cols["n_cond"] = np.broadcast_to(cond[None, :], corr.shape)
        for q in range(self.n_pairs):
            cols[f"corr_a{q}_g{q + 1}"] = pairs[q]
        keep = _top_k_mask(corr, int(top_k)) if top_k is not None else None
        return _frame(self.function_nodes, cols, p, "corr", exclude_self, keep)

    evaluate_target_ranking = staticmethod(evaluate_target_ranking)


# ========================================================================= regressor
class MagnitudeEdgeRegressor(RegressorState):
    """Online auxiliary regressor, vectorised: every (pair, aggregator) term at once."""

    def __init__(self, model, data, **kwargs):
        super().__init__(model, data, **kwargs)
        self._idx = {n: i for i, n in enumerate(self.function_nodes)}
        self._seg = _Segments(model)
        ei = function_edges(data)
        self.adj = np.zeros((self.N, self.N), dtype=bool)
        self.adj[ei[0], ei[1]] = True

    def arm_retained_grads(self):
        acts = _capture(self.model, self.use_pre_norm)
        for a in acts[1:]:
            a.retain_grad()
        self._acts = acts

    def _release(self):
        for b in self.model.ResBlocks:
            b._store_activations = False
            for a in ("_last_activation", "_last_pre_norm_activation"):
                b.__dict__.pop(a, None)
        self._acts = None

    def _eps(self, mean, var):
        if self.eps_mode == "absolute":
            return self.eps
        return self.eps * (var + mean * mean) + torch.finfo(torch.float64).tiny

    def aux_step(self):
        if self._acts is None:
            raise RuntimeError("call pre_forward(), model(x), arm_retained_grads(), backward()")
        try:
            acts = self._acts
            B = acts[0].shape[0]
            A = torch.stack([a.detach().reshape(B, -1) for a in acts[:-1]])  # (P, B, C)
            Gr = torch.stack([a.grad.reshape(B, -1) for a in acts[1:]])
            X = torch.stack([self._seg.reduce(A, agg) for agg in self.aggregators], 1)
            Y = self._seg.reduce(Gr, "sum")  # (P, B, N)
        finally:
            self._release()
        P, K, B, N = X.shape
        if self.standardize:
            if self.training:
                mx, vx = X.mean(2), X.var(2, unbiased=False)
                my, vy = Y.mean(1), Y.var(1, unbiased=False)
                with torch.no_grad():
                    m = self.ema_momentum
                    m_y = 1.0 - (1.0 - m) ** K
                    self.running_mean_x.lerp_(mx.float(), m)
                    self.running_var_x.lerp_(vx.float(), m)
                    self.running_mean_y.lerp_(my.float(), m_y)
                    self.running_var_y.lerp_(vy.float(), m_y)
                    self.n_batches_tracked += P * K
            else:
                mx, vx = self.running_mean_x.double(), self.running_var_x.double()
                my, vy = self.running_mean_y.double(), self.running_var_y.double()
            X = (X - mx.unsqueeze(2)) / torch.sqrt(vx + self._eps(mx, vx)).unsqueeze(2)
            Y = (Y - my.unsqueeze(1)) / torch.sqrt(vy + self._eps(my, vy)).unsqueeze(1)
        design = X.reshape(P * K * B, N)
        target = Y.unsqueeze(1).expand(P, K, B, N).reshape(P * K * B, N)
        Wd = self.dropout(self.W)
        resid = design.float() @ Wd - target.float()
        loss = resid.pow(2).sum() / (B * N)
        if self.ridge > 0:
            loss = loss + self.ridge * self.W.pow(2).sum()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        with torch.no_grad():
            self.gram.addmm_(design.T, design)
            self.n_samples += P * K * B
            self.residual_sum_sq += resid.detach().pow(2).sum(dtype=torch.float64)
        return {"aux_loss": float(loss.detach()) / (P * K), "n_terms": float(P * K)}

    def score_matrix(self):
        w = self.W.detach()
        s = (
            w.abs()
            if self.score_mode == "abs"
            else w.clamp_min(0)
            if self.score_mode == "relu"
            else w
        )
        return s.cpu().numpy()

    def coefficient_pvalues(self):
        N = self.N
        n = int(self.n_samples)
        if n < N + 2:
            return np.ones((N, N))
        G = self.gram / n + (self.ridge + 1e-8) * torch.eye(
            N, dtype=torch.float64, device=self.gram.device
        )
        Lc, info = torch.linalg.cholesky_ex(G)
        if int(info) != 0:
            return np.ones((N, N))
        ginv_diag = torch.cholesky_inverse(Lc).diagonal().cpu().numpy()
        sigma2 = float(self.residual_sum_sq) / max(n * self.n_pairs * self.n_aggs * N - N, 1)
        se = np.sqrt(np.maximum(sigma2 * ginv_diag, 1e-12))
        z = self.W.detach().double().cpu().numpy() / se[:, None]
        return np.clip(0.5 * special.erfc(z / math.sqrt(2.0)), 0.0, 1.0)

    def evaluate(self, *, exclude_self=True):
        cols = {"score": self.score_matrix(), "has_edge": self.adj}
        return _frame(self.function_nodes, cols, self.coefficient_pvalues(), "score", exclude_self)

    def evaluate_against(self, positive_edges, *, top_k=(1, 3, 5)):
        pos = {(s, d) for s, d in positive_edges}
        if not pos:
            raise ValueError("positive_edges is empty")
        N, idx = self.N, self._idx
        S = self.score_matrix()
        pairs = np.asarray([(idx[s], idx[d]) for s, d in pos if s != d], dtype=np.int64)
        pos_mask = np.zeros((N, N), dtype=bool)
        if pairs.size:
            pos_mask[pairs[:, 0], pairs[:, 1]] = True
        neg_mask = ~(pos_mask | self.adj)
        np.fill_diagonal(neg_mask, False)
        out = {"auc": _auc(S[pos_mask], S[neg_mask])}
        # ranking only needs the rows of the targets that have a positive
        targets = np.unique(pairs[:, 1]) if pairs.size else np.zeros(0, np.int64)
        src = np.repeat(np.arange(N), targets.size)
        dst = np.tile(targets, N)
        keep = src != dst
        src, dst = src[keep], dst[keep]
        sc = S[src, dst]
        order = np.argsort(np.where(np.isnan(sc), np.inf, -sc), kind="stable")
        names = np.asarray(self.function_nodes, dtype=object)
        frame = pd.DataFrame(
            {"src_func": names[src[order]], "dst_func": names[dst[order]], "score": sc[order]}
        )
        _, summary = evaluate_target_ranking(frame, pos, score_col="score", top_k=top_k)
        out.update(summary)
        return out

    evaluate_target_ranking = staticmethod(evaluate_target_ranking)


# ========================================================================== simulate
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
    """All samples at once: per topological generation one CSR (k x nodes) @ values."""
    order = list(nx.topological_sort(G))
    pos = {v: i for i, v in enumerate(order)}
    inputs = set(input_nodes)
    special_functions = special_functions or {}
    level = {}
    gens: dict[int, list] = {}
    for v in order:
        preds = [] if v in inputs else list(G.predecessors(v))
        level[v] = 0 if not preds else 1 + max(level[u] for u in preds)
        if preds:
            gens.setdefault(level[v], []).append((v, preds))
    plan = []
    for lev in sorted(gens):
        lin = [(v, p) for v, p in gens[lev] if v not in special_functions]
        rows, cols, vals = [], [], []
        for r, (v, preds) in enumerate(lin):
            for u in preds:
                rows.append(r)
                cols.append(pos[u])
                vals.append(_ref._edge_sign(G, u, v, signed_edges))
        W = torch.sparse_coo_tensor(
            torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1),
            torch.tensor(vals, dtype=torch.float64),
            (len(lin), len(order)),
            check_invariants=False,
        ).to_sparse_csr()
        tgt = torch.tensor([pos[v] for v, _ in lin], dtype=torch.long)
        spec = [
            (pos[v], special_functions[v], [pos[u] for u in p])
            for v, p in gens[lev]
            if v in special_functions
        ]
        plan.append((W, tgt, spec))
    in_pos = torch.tensor([pos[v] for v in input_nodes], dtype=torch.long)
    out_pos = torch.tensor([pos[v] for v in output_nodes], dtype=torch.long)

    def sample(n):
        values = torch.randn(len(order), n, dtype=torch.float64)  # N(0,1) roots and inputs
        for W, tgt, spec in plan:
            if tgt.numel():
                values[tgt] = W @ values + noise_scale * values[tgt]
            for i, fn, pp in spec:
                mean = torch.as_tensor(fn([values[p].numpy() for p in pp]), dtype=torch.float64)
                values[i] = mean + noise_scale * values[i]
        return values[in_pos].T.numpy(), values[out_pos].T.numpy()

    x_train, y_train = sample(int(n_train))
    x_test, y_test = sample(int(n_test))
    return x_train, x_test, y_train, y_test
