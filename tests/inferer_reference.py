"""Independent float64 numpy/scipy reference for MagnitudeEdgeInferer.

Written from the documented formulas, not from the package: magnitudes come from a deep copy of the
model with ``retain_grad`` + ``backward`` and per-node numpy reductions; moments are
two-pass (centred) over the raw samples rather than from streaming sums; the partial
correlation solves each target with scipy's Cholesky; p-values use
``scipy.stats.norm.sf``; q-values ``scipy.stats.false_discovery_control``.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.stats


def reference_magnitudes(model, batches, crit, reduction="l1", use_pre_norm=True):
    """(X, Y): activation / gradient magnitudes, each (L, n, N) float64 numpy."""
    m = copy.deepcopy(model)
    m.eval()
    blocks = list(m.ResBlocks)
    attr = "_last_pre_norm_activation" if use_pre_norm else "_last_activation"
    inp = m.input_node_mask.cpu().numpy()
    out = m.output_node_mask.cpu().numpy()
    func_ids = [h for h in range(len(inp)) if not inp[h] and not out[h]]
    cg = blocks[0].channel_groups.cpu().numpy()
    chans = [np.flatnonzero(cg == h) for h in func_ids]
    xs, ys = [], []
    for x, y in batches:
        for b in blocks:
            b._store_activations = True
        yhat = m(x)
        loss = crit(yhat, y)
        acts = [getattr(b, attr) for b in blocks]
        for a in acts:
            a.retain_grad()
        loss.backward()
        A = [a.detach().double().numpy().reshape(a.shape[0], -1) for a in acts]
        G = [a.grad.double().numpy().reshape(a.shape[0], -1) for a in acts]

        def red(M):
            cols = []
            for ch in chans:
                v = M[:, ch]
                if reduction == "l1":
                    cols.append(np.abs(v).sum(1))
                else:
                    cols.append(np.sqrt((v * v).sum(1)))
            return np.stack(cols, 1)

        xs.append(np.stack([red(a) for a in A]))
        ys.append(np.stack([red(g) for g in G]))
    return np.concatenate(xs, 1), np.concatenate(ys, 1)


def _zero(var, mean, tol, rule):
    return var <= tol if rule == "absolute" else var <= tol * mean**2


def moments(x, y):
    """Centred (population) moments of samples x (n, N), y (n, N)."""
    n = x.shape[0]
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    return mx, my, (xc * xc).mean(0), (yc * yc).mean(0), xc.T @ yc / n, xc.T @ xc / n


def corr_from_cov(cxy, vx, vy, zx, zy):
    with np.errstate(all="ignore"):
        r = cxy / np.sqrt(np.outer(vx, vy))
    r[zx, :] = np.nan
    r[:, zy] = np.nan
    return np.clip(r, -1.0, 1.0)


def partial_from_cov(corr, cxy, cxx, vx, vy, zx, zy, parents, ridge, tol, rule="relative"):
    """Partial correlation of one pair given each target's parents, target by target
    (Cholesky / LU)."""
    N = corr.shape[0]
    pc = np.full((N, N), np.nan)
    for j in range(N):
        S = np.asarray(parents[j], dtype=np.int64)
        if S.size == 0:
            pc[:, j] = corr[:, j]
            continue
        if zy[j]:
            continue
        A = cxx[np.ix_(S, S)] + ridge * np.eye(S.size)
        try:
            if rule == "absolute":
                lu = scipy.linalg.lu_factor(A, check_finite=True)
                if np.any(np.diag(lu[0]) == 0):
                    continue

                def solve(b, lu=lu):
                    return scipy.linalg.lu_solve(lu, b)
            else:
                cf = scipy.linalg.cho_factor(A, lower=True, check_finite=True)

                def solve(b, cf=cf):
                    return scipy.linalg.cho_solve(cf, b)
        except (np.linalg.LinAlgError, ValueError):
            continue
        alpha = solve(cxy[S, j])
        vyp = vy[j] - cxy[S, j] @ alpha
        thr_y = tol if rule == "absolute" else tol * vy[j]
        if not np.isfinite(vyp) or vyp <= thr_y:
            continue
        CS = cxx[:, S]  # (N, s)
        M = solve(CS.T)  # (s, N)
        vxp = vx - np.sum(CS * M.T, 1)
        num = cxy[:, j] - CS @ alpha
        with np.errstate(all="ignore"):
            col = num / np.sqrt(vxp * vyp)
        thr_x = tol if rule == "absolute" else tol * vx
        col[(vxp <= thr_x) | ~np.isfinite(col)] = np.nan
        if rule != "absolute":
            col[zx] = np.nan
        col[S] = np.nan
        col[j] = np.nan
        pc[:, j] = np.clip(col, -1.0, 1.0)
    return pc


def reference_pair_scores(X, Y, parents, score="corr", ridge=1e-8, tol=1e-12, rule="relative"):
    """[P, N, N] per-pair scores from raw magnitude samples X, Y (L, n, N)."""
    L = X.shape[0]
    out = []
    for p in range(L - 1):
        mx, my, vx, vy, cxy, cxx = moments(X[p], Y[p + 1])
        zx, zy = _zero(vx, mx, tol, rule), _zero(vy, my, tol, rule)
        corr = corr_from_cov(cxy, vx, vy, zx, zy)
        if score == "corr":
            out.append(corr)
        else:
            out.append(partial_from_cov(corr, cxy, cxx, vx, vy, zx, zy, parents, ridge, tol, rule))
    return np.stack(out)


def aggregate(pairs, layer_agg):
    if layer_agg == "mean":
        with np.errstate(all="ignore"):
            cnt = (~np.isnan(pairs)).sum(0)
            return np.where(cnt > 0, np.nansum(pairs, 0) / np.maximum(cnt, 1), np.nan)
    P, N, _ = pairs.shape
    out = np.full((N, N), np.nan)
    for i in range(N):
        for j in range(N):
            best = np.nan
            for p in range(P):
                v = pairs[p, i, j]
                if np.isnan(v):
                    continue
                if np.isnan(best) or abs(v) > abs(best):
                    best = v
            out[i, j] = best
    return out


def fisher_p(r, df):
    r = np.asarray(r, dtype=np.float64)
    df = np.broadcast_to(np.asarray(df, dtype=np.float64), r.shape)
    with np.errstate(all="ignore"):
        z = np.arctanh(np.clip(r, -0.9999, 0.9999)) * np.sqrt(np.maximum(df, 1.0))
    p = scipy.stats.norm.sf(z)
    return np.where(np.isnan(r) | (df < 2), 1.0, p)


def reference_frame(names, edges, parents, pairs, agg, n, score, exclude_self=True):
    """The evaluate() frame as per-row Python dicts (small N only), unsorted."""
    N = len(names)
    n_cond = np.array([len(parents[j]) for j in range(N)])
    rows = []
    for i in range(N):
        for j in range(N):
            if exclude_self and i == j:
                continue
            row = {
                "src_func": names[i],
                "dst_func": names[j],
                "src_idx": i,
                "dst_idx": j,
                "corr": agg[i, j],
                "has_edge": (names[i], names[j]) in edges,
            }
            if score == "partial":
                row["n_cond"] = int(n_cond[j])
            for p in range(pairs.shape[0]):
                row[f"corr_a{p}_g{p + 1}"] = pairs[p, i, j]
            df = n - 3 - (n_cond[j] if score == "partial" else 0)
            row["p_value"] = float(fisher_p(np.array([agg[i, j]]), df)[0])
            rows.append(row)
    res = pd.DataFrame(rows)
    res["q_value"] = scipy.stats.false_discovery_control(res["p_value"].to_numpy(), method="bh")
    return res


def residual_partial(x_samples, y_samples, S):
    """corr of the residuals of x and y after least squares on [1, x_S] (raw samples)."""
    n = x_samples.shape[0]
    Z = np.column_stack([np.ones(n), S])
    rx = x_samples - Z @ np.linalg.lstsq(Z, x_samples, rcond=None)[0]
    ry = y_samples - Z @ np.linalg.lstsq(Z, y_samples, rcond=None)[0]
    return float(np.dot(rx, ry) / np.sqrt(np.dot(rx, rx) * np.dot(ry, ry)))
