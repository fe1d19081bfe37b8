// gsnn_fast/partial_corr.h -- batched ridge partial correlation.
//
// Op: gsnn_fast::partial_corr(Tensor corr, Tensor cov_xy, Tensor cov_xx,
//       Tensor var_x, Tensor var_y, Tensor ptr, Tensor idx, float ridge,
//       float tol) -> Tensor
//   corr, cov_xy, cov_xx [P, N, N] float64, index [p, i = source, j = target];
//                        cov_xx[p] symmetric (only the rows S_j are read, see below).
//   var_x, var_y [P, N]  float64 (NaN = unusable variance -> NaN results).
//   ptr [N + 1], idx [nnz] int64: conditioning sets in CSR form,
//                        S_j = idx[ptr[j] : ptr[j+1]], strictly increasing, != j.
//   out [P, N, N] float64.
//
// One system per (p, j), s = |S_j|:
//   s == 0: out[p, :, j] = corr[p, :, j] (the bits are copied).
//   else:   A[a][b] = cov_xx[p, S[a], S[b]] (+ ridge on the diagonal), a >= b read;
//           A = L L^T (cholesky_pivot / cholesky_offdiag, column by column); a pivot
//           d_c fails the system (column all NaN) when it is not finite or
//           d_c <= tol * A[c][c]: d_c is the residual variance of parent S[c] given
//           S[0..c), so this is the relative zero-variance rule of SPEC section 4
//           applied to the parents (tol = 0 gives the plain "pivot <= 0" test). It
//           is what makes collinear parents (e.g. duplicated columns) fail reliably
//           with ridge 0: rounding leaves their pivot at about 1e-16 * A[c][c],
//           which may be positive;
//           c[a] = cov_xy[p, S[a], j]; alpha = L^-T L^-1 c (solve_alpha);
//           vy = var_y[p, j] - c.alpha; column all NaN unless vy is finite and
//           vy > tol * var_y[p, j];
//           for every source i (partial_corr_source): NaN if i == j or i in S; else
//           b[a] = cov_xx[p, S[a], i]; z = L^-1 b; vx = var_x[p, i] - z.z;
//           num = cov_xy[p, i, j] - b.alpha; NaN unless vx is finite and
//           vx > tol * var_x[p, i]; else r = num / sqrt(vx * vy) clipped to [-1, 1].
//
// Order (PARITY): every dot product and every substitution sum starts from its
// first term (dots: from 0.0) and walks the index in ascending order, one rounding
// per operation (sub_rn(sum, mul_rn(l, z)): no fma). Each entry of L is produced by
// the same function on both backends, in any order that respects its
// dependencies (the CPU runs the columns sequentially, CUDA runs the rows of a
// column in parallel); the result does not depend on that order. Every NaN the
// op writes is the canonical quiet NaN (nan_d()), so CPU and CUDA bits agree even
// where the hardware would produce different NaN payloads.
//
// Storage: L is packed lower-triangular, L[r][c] at tri(r) + c (r >= c).
#pragma once

#include "gsnn_fast/hd.h"

namespace gsnn_fast {

// Threads per CUDA block (sources handled in parallel per system); the per-thread
// scratch of z is laid out with this stride.
constexpr int kPartialCorrThreads = 128;

// Bytes of shared memory one CUDA block needs for sets of up to smax members:
// packed L, alpha, and the set indices.
inline int64_t partial_corr_smem_bytes(int64_t smax) {
  return (smax * (smax + 1) / 2 + smax) * static_cast<int64_t>(sizeof(double)) +
         smax * static_cast<int64_t>(sizeof(int64_t));
}

GSNN_HD int64_t tri(int64_t r) { return r * (r + 1) / 2; }

// True when v is in the strictly increasing list S[0..s) (binary search).
GSNN_HD bool in_sorted(const int64_t* S, int64_t s, int64_t v) {
  int64_t lo = 0, hi = s;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (S[mid] < v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < s && S[lo] == v;
}

// Diagonal entry c of the Cholesky factor: d = (a_cc + ridge) - sum_{k<c} L[c][k]^2;
// returns false (pivot fails) when d is not finite or d <= tol * (a_cc + ridge)
// (or d <= 0), else L[c][c] = sqrt(d).
GSNN_HD bool cholesky_pivot(double* Lp, double a_cc, double ridge, double tol, int64_t c) {
  const double* lc = Lp + tri(c);
  const double a = add_rn(a_cc, ridge);
  double d = a;
  // PARITY: ascending k, product rounded then subtracted.
  for (int64_t k = 0; k < c; ++k) d = sub_rn(d, mul_rn(lc[k], lc[k]));
  if (!is_finite_d(d) || !(d > 0.0) || d <= mul_rn(tol, a)) return false;
  Lp[tri(c) + c] = sqrt_rn(d);
  return true;
}

// Off-diagonal entry (r > c), needs L[r][0..c) and L[c][0..c]:
// L[r][c] = (a_rc - sum_{k<c} L[r][k] L[c][k]) / L[c][c].
GSNN_HD void cholesky_offdiag(double* Lp, double a_rc, int64_t r, int64_t c) {
  const double* lr = Lp + tri(r);
  const double* lc = Lp + tri(c);
  double v = a_rc;
  // PARITY: ascending k, product rounded then subtracted.
  for (int64_t k = 0; k < c; ++k) v = sub_rn(v, mul_rn(lr[k], lc[k]));
  Lp[tri(r) + c] = div_rn(v, lc[c]);
}

// Sequential factorisation of A = cov_xx_p[S, S] + ridge I (row-major N x N
// cov_xx_p, A[r][c] read at [S[r], S[c]], r >= c), column by column. Returns
// false when a pivot fails (L is then incomplete).
GSNN_HD bool cholesky_packed(const double* cov_xx_p, int64_t N, const int64_t* S, int64_t s,
                             double ridge, double tol, double* Lp) {
  for (int64_t c = 0; c < s; ++c) {
    if (!cholesky_pivot(Lp, cov_xx_p[S[c] * N + S[c]], ridge, tol, c)) return false;
    for (int64_t r = c + 1; r < s; ++r) cholesky_offdiag(Lp, cov_xx_p[S[r] * N + S[c]], r, c);
  }
  return true;
}

// alpha = A^-1 c with c[a] = cov_xy_p[S[a], j] (forward substitution into alpha,
// then back substitution in place); returns vy = var_y_j - c.alpha.
GSNN_HD double solve_alpha(const double* Lp, const double* cov_xy_p, int64_t N, const int64_t* S,
                           int64_t s, int64_t j, double var_y_j, double* alpha) {
  // PARITY: forward, a ascending, k ascending.
  for (int64_t a = 0; a < s; ++a) {
    const double* la = Lp + tri(a);
    double v = cov_xy_p[S[a] * N + j];
    for (int64_t k = 0; k < a; ++k) v = sub_rn(v, mul_rn(la[k], alpha[k]));
    alpha[a] = div_rn(v, la[a]);
  }
  // PARITY: backward, a descending, k ascending over k > a (column a of L).
  for (int64_t a = s - 1; a >= 0; --a) {
    double v = alpha[a];
    for (int64_t k = a + 1; k < s; ++k) v = sub_rn(v, mul_rn(Lp[tri(k) + a], alpha[k]));
    alpha[a] = div_rn(v, Lp[tri(a) + a]);
  }
  double dot = 0.0;
  for (int64_t a = 0; a < s; ++a) dot = add_rn(dot, mul_rn(cov_xy_p[S[a] * N + j], alpha[a]));
  return sub_rn(var_y_j, dot);
}

// True when a residual variance v, reduced from `base`, is usable: finite and
// v > tol * base (false for NaN).
GSNN_HD bool residual_ok(double v, double base, double tol) {
  return is_finite_d(v) && !(v <= mul_rn(tol, base));
}

// out[p, i, j] of a system whose factorisation and vy passed. z is per-source
// scratch of s doubles at stride zstride.
GSNN_HD double partial_corr_source(const double* Lp, const double* alpha, const int64_t* S,
                                   int64_t s, const double* cov_xx_p, const double* cov_xy_p,
                                   int64_t N, int64_t i, int64_t j, double var_x_i, double vy,
                                   double tol, double* z, int64_t zstride) {
  if (i == j || in_sorted(S, s, i)) return nan_d();
  double zz = 0.0;
  double balpha = 0.0;
  // PARITY: a ascending; z[a] by forward substitution (k ascending), then the
  // running dots z.z and b.alpha.
  for (int64_t a = 0; a < s; ++a) {
    const double* la = Lp + tri(a);
    const double b = cov_xx_p[S[a] * N + i];
    double v = b;
    for (int64_t k = 0; k < a; ++k) v = sub_rn(v, mul_rn(la[k], z[k * zstride]));
    const double za = div_rn(v, la[a]);
    z[a * zstride] = za;
    zz = add_rn(zz, mul_rn(za, za));
    balpha = add_rn(balpha, mul_rn(b, alpha[a]));
  }
  const double vx = sub_rn(var_x_i, zz);
  if (!residual_ok(vx, var_x_i, tol)) return nan_d();
  const double num = sub_rn(cov_xy_p[i * N + j], balpha);
  double r = div_rn(num, sqrt_rn(mul_rn(vx, vy)));
  if (is_nan_d(r)) return nan_d();
  if (r > 1.0) r = 1.0;
  if (r < -1.0) r = -1.0;
  return r;
}

}  // namespace gsnn_fast
