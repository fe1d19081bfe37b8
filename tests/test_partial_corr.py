"""gsnn_fast::partial_corr against (a) the direct formula with np.linalg.solve,

Longer than ~450 lines on purpose: the three references and the argument checks of one
op, which share their case builders.
(b) the correlation of least-squares residuals computed from raw samples and (c), bit
for bit, the straightforward per-source formulation of partial_corr.h (one rounding
per operation); NaN rules, argument checks, opcheck, determinism (thread counts, SIMD
variants), CUDA parity.

Non-contiguous inputs are handled (copied).
"""

from __future__ import annotations

import functools
import math
import struct
from fractions import Fraction

import numpy as np
import pytest
import torch

from gsnn_fast.ops import partial_corr

from .conftest import ISAS, bits, require_cuda, require_isa_ran, use_isa

TOL = 1e-12


def _csr(sets):
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    idx = np.array([i for s in sets for i in s], dtype=np.int64)
    return torch.from_numpy(ptr), torch.from_numpy(idx)


def _samples(rng, n, N):
    """Raw samples of one layer pair: X (sources), Y (targets) correlated with X."""
    X = rng.standard_normal((n, N)) * rng.uniform(0.5, 2.0, N)
    Y = rng.standard_normal((n, N)) + 0.4 * X @ rng.standard_normal((N, N)) / np.sqrt(N)
    return X, Y


def _moments(X, Y):
    """Population moments as the inferer computes them (sums / n - products of means)."""
    n = X.shape[0]
    mx, my = X.mean(0), Y.mean(0)
    cov_xy = X.T @ Y / n - np.outer(mx, my)
    cov_xx = X.T @ X / n - np.outer(mx, mx)
    cov_xx = (cov_xx + cov_xx.T) / 2
    var_x = (X**2).mean(0) - mx**2
    var_y = (Y**2).mean(0) - my**2
    with np.errstate(divide="ignore", invalid="ignore"):  # zero-variance columns -> NaN
        corr = cov_xy / np.sqrt(np.outer(var_x, var_y))
    return corr, cov_xy, cov_xx, var_x, var_y


def _stack(moms):
    return [torch.from_numpy(np.stack(m)) for m in zip(*moms)]


def _direct_reference(corr, cov_xy, cov_xx, var_x, var_y, sets, ridge, tol=TOL):
    """The ridge partial correlation of one pair, written with np.linalg.solve."""
    N = corr.shape[0]
    out = np.full((N, N), np.nan)
    for j, S in enumerate(sets):
        if len(S) == 0:
            out[:, j] = corr[:, j]
            continue
        S = list(S)
        A = cov_xx[np.ix_(S, S)] + ridge * np.eye(len(S))
        if np.any(np.linalg.eigvalsh(A) <= 0):
            continue
        c = cov_xy[S, j]
        alpha = np.linalg.solve(A, c)
        vy = var_y[j] - c @ alpha
        if not np.isfinite(vy) or vy <= tol * var_y[j]:
            continue
        for i in range(N):
            if i == j or i in S:
                continue
            b = cov_xx[S, i]
            vx = var_x[i] - b @ np.linalg.solve(A, b)
            if not np.isfinite(vx) or vx <= tol * var_x[i]:
                continue
            out[i, j] = np.clip((cov_xy[i, j] - b @ alpha) / np.sqrt(vx * vy), -1, 1)
    return out


def _residual_reference(X, Y, sets):
    """Partial correlation as the correlation of regression residuals on x_S (with an
    intercept, i.e. on centred data), from the raw samples."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    N = X.shape[1]
    out = np.full((N, N), np.nan)
    for j, S in enumerate(sets):
        if len(S) == 0:
            for i in range(N):
                out[i, j] = (
                    Xc[:, i] @ Yc[:, j] / np.sqrt((Xc[:, i] @ Xc[:, i]) * (Yc[:, j] @ Yc[:, j]))
                )
            continue
        Z = Xc[:, list(S)]
        ry = Yc[:, j] - Z @ np.linalg.lstsq(Z, Yc[:, j], rcond=None)[0]
        for i in range(N):
            if i == j or i in S:
                continue
            rx = Xc[:, i] - Z @ np.linalg.lstsq(Z, Xc[:, i], rcond=None)[0]
            out[i, j] = rx @ ry / np.sqrt((rx @ rx) * (ry @ ry))
    return out


def _random_sets(rng, N, sizes):
    sets = []
    for j in range(N):
        s = sizes[j % len(sizes)]
        pool = np.array([i for i in range(N) if i != j])
        sets.append(sorted(rng.choice(pool, size=s, replace=False).tolist()))
    return sets


def _fma_exact(a: float, b: float, c: float) -> float:
    """a * b + c rounded once, from exact rational arithmetic (Fraction's conversion to
    float rounds correctly, ties to even): slow, the check of :func:`fma`."""
    r = Fraction(a) * Fraction(b) + Fraction(c)
    return float(r) if r != 0 else a * b + c  # an exact zero takes IEEE's sign rule


def _two_sum(x, y):
    s = x + y
    bb = s - x
    return s, (x - (s - bb)) + (y - bb)


def _two_prod(x, y):
    p = x * y
    t = 134217729.0 * x  # Veltkamp's split at 27 bits
    xh = t - (t - x)
    t = 134217729.0 * y
    yh = t - (t - y)
    xl, yl = x - xh, y - yh
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def fma(a, b, c):
    """Elementwise a * b + c with one rounding (what the kernels' madd / nmsub do), in
    numpy: the product split exactly, the sum of the pieces rounded to odd, then to
    nearest -- Boldo and Melquiond's emulation of an FMA (exact for operands far from
    overflow and underflow, as here; test_fma_emulation checks it)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c)))
    uh, ul = _two_prod(a, b)
    th, tl = _two_sum(c, ul)
    vh, vl = _two_sum(uh, th)
    w, e = _two_sum(tl, vl)
    even = (w.view(np.int64) & 1) == 0
    w = np.where((e != 0) & even, np.nextafter(w, np.where(e > 0, np.inf, -np.inf)), w)
    out = vh + w
    plain = ~(np.isfinite(a) & np.isfinite(b) & np.isfinite(c))
    return np.where(plain, a * b + c, out)


def fma1(a: float, b: float, c: float) -> float:
    """:func:`fma` on Python floats (the same steps; the scalar loops of the
    reference)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    uh, ul = _two_prod(a, b)
    th, tl = _two_sum(c, ul)
    vh, vl = _two_sum(uh, th)
    w, e = _two_sum(tl, vl)
    if e != 0 and struct.unpack("<q", struct.pack("<d", w))[0] & 1 == 0:
        w = math.nextafter(w, math.inf if e > 0 else -math.inf)
    return vh + w


def test_fma_emulation():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(4000) * 10.0 ** rng.integers(-8, 8, 4000)
    b = rng.standard_normal(4000)
    c = -a * b * (1 + rng.standard_normal(4000) * 2.0 ** -rng.integers(1, 60, 4000))
    got = fma(a, b, c)
    want = np.array([_fma_exact(x, y, z) for x, y, z in zip(a, b, c)])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    scalar = np.array([fma1(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)])
    assert np.array_equal(scalar.view(np.int64), want.view(np.int64))
    # the fused result differs from the twice-rounded one on many of these
    assert (got != a * b + c).sum() > 100


def _per_source_reference(corr, cov_xy, cov_xx, var_x, var_y, sets, ridge, tol=TOL):
    """The straightforward formulation of csrc/include/gsnn_fast/partial_corr.h (one
    pair), in float64 with one IEEE rounding per operation and the header's order:
    Cholesky column by column (pivot d = (a_cc + ridge) - sum_k L[c,k]^2, then
    L[r,c] = (a_rc - sum_k L[r,k] L[c,k]) / L[c,c], k ascending, reading a_rc at
    cov_xx[S[r], S[c]], r >= c), alpha by forward then back substitution, and for every
    source i on its own: z = L^-1 b_i (b_i[a] = cov_xx[S[a], i]) by forward
    substitution, with the running dots z.z and b_i.alpha, a ascending; then
    vx, num, r = num / sqrt(vx vy), the NaN rules and the clip.

    Every term of a sum is fused into it (``fma``: one rounding for the product and
    the addition); the other operations round once each, as numpy's elementwise
    operations do. Running the rows of a Cholesky column, or the sources i, side by
    side as numpy vectors keeps every element's sequence: this is the per-source loop,
    vectorised only to keep the test fast, and the op must match it bit for bit."""
    N = corr.shape[0]
    out = np.full((N, N), np.nan)
    for j, S in enumerate(sets):
        s = len(S)
        if s == 0:
            out[:, j] = corr[:, j]
            continue
        S = np.asarray(S)
        L = np.zeros((s, s))
        ok = True
        for c in range(s):
            a = cov_xx[S[c], S[c]] + ridge
            d = a
            for k in range(c):
                d = fma1(-L[c, k], L[c, k], d)
            if not np.isfinite(d) or not d > 0 or d <= tol * a:
                ok = False
                break
            L[c, c] = np.sqrt(d)
            v = cov_xx[S[c + 1 :], S[c]].copy()  # rows r > c
            for k in range(c):
                v = fma(-L[c + 1 :, k], L[c, k], v)
            L[c + 1 :, c] = v / L[c, c]
        if not ok:
            continue
        cvec = cov_xy[S, j]
        alpha = np.zeros(s)
        for a in range(s):
            v = cvec[a]
            for k in range(a):
                v = fma1(-L[a, k], alpha[k], v)
            alpha[a] = v / L[a, a]
        for a in range(s - 1, -1, -1):
            v = alpha[a]
            for k in range(a + 1, s):
                v = fma1(-L[k, a], alpha[k], v)
            alpha[a] = v / L[a, a]
        dot = 0.0
        for a in range(s):
            dot = fma1(cvec[a], alpha[a], dot)
        vy = var_y[j] - dot
        if not np.isfinite(vy) or vy <= tol * var_y[j]:
            continue
        B = cov_xx[S, :]  # b_i = B[:, i]
        Z = np.empty((s, N))
        zz = np.zeros(N)
        balpha = np.zeros(N)
        for a in range(s):
            v = B[a].copy()
            for k in range(a):
                v = fma(-L[a, k], Z[k], v)
            Z[a] = v / L[a, a]
            zz = fma(Z[a], Z[a], zz)
            balpha = fma(B[a], alpha[a], balpha)
        vx = var_x - zz
        num = cov_xy[:, j] - balpha
        with np.errstate(all="ignore"):
            r = num / np.sqrt(vx * vy)
            r = np.where(r > 1.0, 1.0, r)
            r = np.where(r < -1.0, -1.0, r)
            bad = ~np.isfinite(vx) | (vx <= tol * var_x) | np.isnan(r)
        r[bad] = np.nan
        r[j] = np.nan
        r[S] = np.nan
        out[:, j] = r
    return out


def _big_problem():
    """Two pairs, N = 203 (not a multiple of any SIMD width or tile): set sizes 0 to 33
    (the small-system path, tile remainders) and big sets of 63 to 160 members (the
    panel factorisation, source chunks shared by the threads, factors held in several
    waves). NaN / zero variances, duplicated parents (a failing pivot in a small set and
    in two big ones at ridge 0, in the first panel and in a later one), clipping, and a
    slightly asymmetric cov_xx (the op must read the same triangle as the
    formulation)."""
    rng = np.random.default_rng(5)
    N = 203
    moms = [list(_moments(*_samples(rng, 400, N))) for _ in range(2)]
    sets = _random_sets(rng, N, [0, 1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33])
    for j, s in [(10, 63), (20, 64), (30, 65), (40, 100), (50, 150), (60, 160), (70, 64)]:
        sets[j] = sorted(rng.choice([i for i in range(N) if i != j], s, replace=False).tolist())
    corr, cov_xy, cov_xx, var_x, var_y = moms[1]
    d0, d1 = sets[70][3], sets[70][4]  # pair 1: duplicated parents of a big and a small set
    cov_xx[d1, :], cov_xx[:, d1] = cov_xx[d0, :], cov_xx[:, d0]
    var_x[d1] = var_x[d0]
    sets[71] = sorted({d0, d1, 5} - {71})
    # pair 1: two parents of the 100-member set duplicated at positions 50 and 51, so
    # the failing pivot lies in a later panel of the big factorisation
    e0, e1 = sets[40][50], sets[40][51]
    cov_xx[e1, :], cov_xx[:, e1] = cov_xx[e0, :], cov_xx[:, e0]
    var_x[e1] = var_x[e0]
    var_x[11] = np.nan
    var_y[12] = 0.0
    for m in moms:  # |num| > sqrt(vx vy) for source 3 of target 7 (not in its set): clipped
        m[1][3, 7] = 50.0
    assert 3 not in sets[7] and len(sets[7]) > 0
    asym = rng.standard_normal((N, N)) * 1e-13
    moms[0][2] = moms[0][2] + (asym - asym.T)
    return moms, sets


@functools.cache
def _big_reference(ridge: float) -> list[torch.Tensor]:
    moms, sets = _big_problem()
    return [torch.from_numpy(_per_source_reference(*m, sets, ridge)) for m in moms]


@pytest.mark.parametrize("isa", ISAS)
def test_bit_identical_to_the_per_source_formulation(monkeypatch, isa):
    """The blocked, SIMD-across-sources CPU kernel changes only the loop structure:
    every element is the per-source formulation's sequence of roundings, in every
    SIMD variant (GSNN_FAST_ISA caps the variant; the one that ran is checked)."""
    use_isa(monkeypatch, isa)
    moms, sets = _big_problem()
    ptr, idx = _csr(sets)
    stacked = _stack(moms)
    for ridge in (0.0, 1e-8):
        out = partial_corr(*stacked, ptr, idx, ridge, TOL)
        require_isa_ran("partial_corr", isa)
        for p, ref in enumerate(_big_reference(ridge)):
            assert torch.equal(bits(out[p]), bits(ref)), (isa, ridge, p)
        if ridge == 0.0:
            assert torch.isnan(out[1, :, 70]).all() and torch.isnan(out[1, :, 71]).all()
            assert torch.isnan(out[1, :, 40]).all() and torch.isfinite(out[0, :, 40]).any()
            assert torch.isfinite(out[0, :, 70]).sum() > 100
        assert out[0, 3, 7].item() == 1.0 and out[1, 3, 7].item() == 1.0


def test_unknown_simd_variant_is_an_error(monkeypatch, problem):
    raw, sets = problem
    moms = _stack([_moments(X, Y) for X, Y in raw])
    ptr, idx = _csr(sets)
    monkeypatch.setenv("GSNN_FAST_ISA", "bogus")
    with pytest.raises(RuntimeError, match="GSNN_FAST_ISA must be"):
        partial_corr(*moms, ptr, idx, 0.0, TOL)


@pytest.fixture(scope="module")
def problem():
    """Two layer pairs, N = 14 nodes, conditioning sets of size 0, 1, 2, 3 and 9 (max)."""
    rng = np.random.default_rng(0)
    n, N, P = 400, 14, 2
    raw = [_samples(rng, n, N) for _ in range(P)]
    sets = _random_sets(rng, N, [0, 1, 2, 3, 9, 1, 0])
    return raw, sets


@pytest.mark.parametrize("ridge", [0.0, 1e-8])
def test_matches_direct_solve(device, problem, ridge):
    raw, sets = problem
    moms = [_moments(X, Y) for X, Y in raw]
    ptr, idx = _csr(sets)
    args = [t.to(device) for t in _stack(moms)]
    out = partial_corr(*args, ptr.to(device), idx.to(device), ridge, TOL).cpu().numpy()
    for p, m in enumerate(moms):
        ref = _direct_reference(*m, sets, ridge)
        assert np.array_equal(np.isnan(out[p]), np.isnan(ref))
        np.testing.assert_allclose(out[p], ref, rtol=0, atol=1e-10)


def test_matches_residual_correlation_of_raw_samples(device, problem):
    raw, sets = problem
    moms = [_moments(X, Y) for X, Y in raw]
    ptr, idx = _csr(sets)
    args = [t.to(device) for t in _stack(moms)]
    out = partial_corr(*args, ptr.to(device), idx.to(device), 0.0, TOL).cpu().numpy()
    for p, (X, Y) in enumerate(raw):
        ref = _residual_reference(X, Y, sets)
        assert np.array_equal(np.isnan(out[p]), np.isnan(ref))
        np.testing.assert_allclose(out[p], ref, rtol=0, atol=1e-10)


def test_empty_set_copies_corr_bits(device):
    rng = np.random.default_rng(1)
    corr, cov_xy, cov_xx, var_x, var_y = _moments(*_samples(rng, 50, 4))
    corr[0, 1], corr[2, 1], corr[3, 1] = -0.0, float("nan"), 7.5  # copied verbatim
    sets = [[1], [], [0, 3], []]
    ptr, idx = _csr(sets)
    args = [t.to(device) for t in _stack([(corr, cov_xy, cov_xx, var_x, var_y)])]
    out = partial_corr(*args, ptr.to(device), idx.to(device), 0.0, TOL)
    c = torch.from_numpy(corr)
    assert torch.equal(bits(out[0, :, 1]), bits(c[:, 1]))
    assert torch.equal(bits(out[0, :, 3]), bits(c[:, 3]))


def test_nan_rules(device):
    rng = np.random.default_rng(2)
    n, N = 64, 8
    X, Y = _samples(rng, n, N)
    # exact arithmetic for the duplicated parents: integer data, n a power of two
    X = np.round(X * 4)
    Y = np.round(Y * 4)
    X[:, 5] = X[:, 4]  # duplicated parent columns -> A singular, pivot exactly 0
    X[:, 6] = 3.0  # constant source: zero variance
    Y[:, 7] = -2.0  # constant target: zero variance
    corr, cov_xy, cov_xx, var_x, var_y = _moments(X, Y)
    var_x[2] = float("nan")  # NaN variance counts as zero
    sets = [[1, 2], [0], [], [4, 5], [0, 1, 2, 3], [0], [1], [0]]
    ptr, idx = _csr(sets)

    def run(ridge, cxx=cov_xx):
        args = [t.to(device) for t in _stack([(corr, cov_xy, cxx, var_x, var_y)])]
        return partial_corr(*args, ptr.to(device), idx.to(device), ridge, TOL)[0].cpu().numpy()

    out = run(0.0)
    for j, S in enumerate(sets):
        if S:
            assert np.isnan(out[j, j]), "i == j"
            assert np.isnan(out[S, j]).all(), "i in S"
    assert np.isnan(out[:, 3]).all(), "duplicated parents, ridge 0: failed Cholesky"
    assert np.isnan(out[:, 7]).all(), "zero-variance target"
    assert np.isnan(out[6, [0, 1, 4, 5]]).all(), "zero-variance source"
    assert np.isnan(out[2, [1, 5, 7]]).all(), "NaN source variance"
    ok = out[[3, 4], 0]
    assert np.isfinite(ok).all() and (np.abs(ok) <= 1).all()
    # a ridge makes the duplicated-parent system solvable
    assert np.isfinite(run(1e-3)[[0, 1], 3]).all()
    # an indefinite A (ridge 0): NaN column
    bad = cov_xx.copy()
    bad[4, 5] = bad[5, 4] = 2.0 * np.sqrt(bad[4, 4] * bad[5, 5])
    assert np.isnan(run(0.0, bad)[:, 3]).all()
    # results stay inside [-1, 1]
    fin = out[np.isfinite(out)]
    assert (np.abs(fin) <= 1).all()


def test_clipping():
    # inconsistent moments (|num| > sqrt(vx vy)) are clipped to +-1
    corr = torch.zeros(1, 3, 3, dtype=torch.float64)
    cov_xx = torch.eye(3, dtype=torch.float64)[None].clone()
    cov_xy = torch.zeros(1, 3, 3, dtype=torch.float64)
    cov_xy[0, 0, 2], cov_xy[0, 1, 2] = 5.0, -5.0
    var = torch.ones(1, 3, dtype=torch.float64)
    ptr, idx = _csr([[], [], []])
    out = partial_corr(corr, cov_xy, cov_xx, var, var, ptr, idx, 0.0, TOL)
    assert torch.equal(out, corr)  # all sets empty: plain copy
    cov_xx[0, 2, 2] = 1.0
    ptr, idx = _csr([[], [], [1]])
    cov_xy[0, 1, 2] = 0.0
    cov_xy[0, 0, 2] = 5.0
    out = partial_corr(corr, cov_xy, cov_xx, var, var, ptr, idx, 0.0, TOL)
    assert out[0, 0, 2].item() == 1.0
    cov_xy[0, 0, 2] = -5.0
    out = partial_corr(corr, cov_xy, cov_xx, var, var, ptr, idx, 0.0, TOL)
    assert out[0, 0, 2].item() == -1.0


def test_single_pair_slices_match_the_batch(problem):
    raw, sets = problem
    moms = _stack([_moments(X, Y) for X, Y in raw])
    ptr, idx = _csr(sets)
    full = partial_corr(*moms, ptr, idx, 1e-8, TOL)
    for p in range(len(raw)):
        one = partial_corr(*[m[p : p + 1] for m in moms], ptr, idx, 1e-8, TOL)
        assert torch.equal(bits(one[0]), bits(full[p]))


def test_edge_sizes(device):
    e = torch.empty(0, dtype=torch.int64, device=device)
    z3 = torch.zeros(2, 0, 0, dtype=torch.float64, device=device)
    z2 = torch.zeros(2, 0, dtype=torch.float64, device=device)
    out = partial_corr(
        z3, z3, z3, z2, z2, torch.zeros(1, dtype=torch.int64, device=device), e, 0, TOL
    )
    assert out.shape == (2, 0, 0)
    one = torch.full((1, 1, 1), 0.25, dtype=torch.float64, device=device)
    v = torch.ones(1, 1, dtype=torch.float64, device=device)
    out = partial_corr(
        one, one, one, v, v, torch.zeros(2, dtype=torch.int64, device=device), e, 0, TOL
    )
    assert out.item() == 0.25
    p0 = torch.zeros(0, 3, 3, dtype=torch.float64, device=device)
    v0 = torch.zeros(0, 3, dtype=torch.float64, device=device)
    ptr, idx = _csr([[1], [], []])
    assert partial_corr(p0, p0, p0, v0, v0, ptr.to(device), idx.to(device), 0, TOL).shape == (
        0,
        3,
        3,
    )


def test_non_contiguous_inputs_are_handled(device, problem):
    raw, sets = problem
    moms = _stack([_moments(X, Y) for X, Y in raw])
    ptr, idx = _csr(sets)
    ref = partial_corr(*moms, ptr, idx, 0.0, TOL)
    corr, cov_xy, cov_xx, var_x, var_y = moms
    nc = [
        corr.transpose(1, 2).contiguous().transpose(1, 2),
        cov_xy.transpose(1, 2).contiguous().transpose(1, 2),
        cov_xx.transpose(0, 2).contiguous().transpose(0, 2),
        var_x.t().contiguous().t(),
        var_y.t().contiguous().t(),
    ]
    assert not any(t.is_contiguous() for t in nc)
    out = partial_corr(*[t.to(device) for t in nc], ptr.to(device), idx.to(device), 0.0, TOL)
    assert torch.equal(bits(out), bits(ref))  # on CUDA too: parity


def test_bad_arguments(problem):
    raw, sets = problem
    moms = _stack([_moments(X, Y) for X, Y in raw])
    ptr, idx = _csr(sets)
    N = moms[0].shape[1]

    def call(m=moms, p=ptr, i=idx):
        return partial_corr(*m, p, i, 0.0, TOL)

    with pytest.raises(RuntimeError, match="cov_xx must have shape"):
        call([moms[0], moms[1], moms[2][:, :3], moms[3], moms[4]])
    with pytest.raises(RuntimeError, match="var_y must have shape"):
        call([*moms[:4], moms[4][:, :3]])
    with pytest.raises(RuntimeError, match="cov_xy must be float64"):
        call([moms[0], moms[1].float(), *moms[2:]])
    with pytest.raises(RuntimeError, match=r"ptr must be \[N \+ 1\]"):
        call(p=ptr[:-1])
    with pytest.raises(RuntimeError, match="idx must be int64"):
        call(i=idx.int())
    bad = ptr.clone()
    bad[1] = ptr[2] + 1  # ptr[1] > ptr[2]
    with pytest.raises(RuntimeError, match="non-decreasing"):
        call(p=bad)
    bad = ptr.clone()
    bad[0] = 1
    with pytest.raises(RuntimeError, match=r"ptr\[0\] must be 0"):
        call(p=bad)
    with pytest.raises(RuntimeError, match="must equal the length of idx"):
        call(i=idx[:-1])
    bad = idx.clone()
    bad[0] = N
    with pytest.raises(RuntimeError, match="out of range"):
        call(i=bad)
    own = [[0], *[[] for _ in range(N - 1)]]
    with pytest.raises(RuntimeError, match="in its own conditioning set"):
        call(p=_csr(own)[0], i=_csr(own)[1])
    unsorted = [[2, 1], *[[] for _ in range(N - 1)]]
    with pytest.raises(RuntimeError, match="strictly increasing"):
        call(p=_csr(unsorted)[0], i=_csr(unsorted)[1])
    dup = [[], [2, 2], *[[] for _ in range(N - 2)]]
    with pytest.raises(RuntimeError, match="strictly increasing"):
        call(p=_csr(dup)[0], i=_csr(dup)[1])


def test_deterministic_and_thread_count_independent():
    rng = np.random.default_rng(3)
    N = 150
    moms = _stack([_moments(*_samples(rng, 200, N)) for _ in range(2)])
    sets = _random_sets(rng, N, [0, 1, 4, 9, 2, 33])
    for j, s in [(7, 64), (8, 90), (100, 120)]:  # big sets: chunks shared by the threads
        sets[j] = sorted(rng.choice([i for i in range(N) if i != j], s, replace=False).tolist())
    ptr, idx = _csr(sets)
    old = torch.get_num_threads()
    runs = []
    try:
        for threads in (2, 2, 1, 3):
            torch.set_num_threads(threads)
            runs.append(partial_corr(*moms, ptr, idx, 1e-8, TOL))
    finally:
        torch.set_num_threads(old)
    for r in runs[1:]:
        assert torch.equal(bits(r), bits(runs[0]))


def test_opcheck(device, problem):
    raw, sets = problem
    op = torch.ops.gsnn_fast.partial_corr.default
    moms = [t.to(device) for t in _stack([_moments(X, Y) for X, Y in raw])]
    ptr, idx = _csr(sets)
    # Every non-empty set puts NaN at i == j, and opcheck's AOT test compares outputs
    # with assert_close (NaN != NaN): the full suite runs on a NaN-free call (all sets
    # empty: the copy path), the schema / fake / autograd-registration tests on the
    # real one.
    empty = _csr([[] for _ in sets])
    torch.library.opcheck(op, (*moms, *[t.to(device) for t in empty], 1e-8, TOL))
    torch.library.opcheck(
        op,
        (*moms, ptr.to(device), idx.to(device), 1e-8, TOL),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )


def test_cuda_parity_bit_for_bit():
    require_cuda()
    rng = np.random.default_rng(4)
    # N = 200 with one set of 150 members: the factor needs > 48 KB of shared memory
    # (opt-in path) and the rows of a column span several passes of the threads.
    N = 200
    moms = [_moments(*_samples(rng, 400, N)) for _ in range(2)]
    sets = _random_sets(rng, N, [0, 1, 2, 3, 31, 32, 33, 7])
    sets[5] = sorted(rng.choice([i for i in range(N) if i != 5], 150, replace=False).tolist())
    dup = [4, 9]
    stacked = _stack(moms)
    stacked[2][1, dup[1], :] = stacked[2][1, dup[0], :]  # duplicated parents in pair 1
    stacked[2][1, :, dup[1]] = stacked[2][1, :, dup[0]]
    sets[6] = dup
    stacked[3][0, 11] = float("nan")
    stacked[4][1, 12] = 0.0
    ptr, idx = _csr(sets)
    for ridge in (0.0, 1e-8):
        cpu = partial_corr(*stacked, ptr, idx, ridge, TOL)
        gpu = partial_corr(*[t.cuda() for t in stacked], ptr.cuda(), idx.cuda(), ridge, TOL)
        assert torch.equal(bits(cpu), bits(gpu))
        assert torch.isnan(cpu).any() and torch.isfinite(cpu).any()
