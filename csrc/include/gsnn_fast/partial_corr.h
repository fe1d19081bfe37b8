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
//           S[0..c), so this is the inferer's relative zero-variance rule
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
// per term: each product is fused into the running sum (fma_rn(-l, z, sum) and
// fma_rn(b, alpha, dot); lanes.h madd / nmsub), on both backends. Each entry of L
// is produced by the same sequence on both backends, in any order that respects its
// dependencies (CUDA runs the rows of a column in parallel; the CPU runs small
// factors column by column and big ones by panels of rows, whose entries left of
// the panel are the same sequence vectorised across the rows, and whose triangle
// entries continue sums started that way (cholesky_pivot_from /
// cholesky_offdiag_from), see csrc/cpu/partial_corr_engine.cpp); the result does
// not depend on that order. The per-source math (forward_subst,
// partial_corr_finish) is written once, as templates on a lane type: CUDA threads
// run it on one source (ScalarLanes, through partial_corr_source), the CPU on
// several sources side by side (GCC vectors, one source per lane), each lane with
// exactly one source's sequence. Every NaN the op writes is the canonical quiet NaN
// (nan_d()), so CPU and CUDA bits agree even where the hardware would produce
// different NaN payloads.
//
// Storage: L is packed lower-triangular, L[r][c] at tri(r) + c (r >= c).
#pragma once

#include "gsnn_fast/hd.h"
#include "gsnn_fast/pair_corr.h"

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
// cholesky_pivot_from continues the sum from k = k0: a = a_cc + ridge (rounded),
// d = a minus the terms k < k0, subtracted in that order (the CPU's panels of big
// sets compute those terms for several rows at once, see partial_corr_engine.cpp).
GSNN_HD bool cholesky_pivot_from(double* Lp, double a, double d, double tol, int64_t c,
                                 int64_t k0) {
  const double* lc = Lp + tri(c);
  // PARITY: ascending k, each product fused into the sum.
  for (int64_t k = k0; k < c; ++k) d = fma_rn(-lc[k], lc[k], d);
  if (!is_finite_d(d) || !(d > 0.0) || d <= mul_rn(tol, a)) return false;
  Lp[tri(c) + c] = sqrt_rn(d);
  return true;
}

GSNN_HD bool cholesky_pivot(double* Lp, double a_cc, double ridge, double tol, int64_t c) {
  const double a = add_rn(a_cc, ridge);
  return cholesky_pivot_from(Lp, a, a, tol, c, 0);
}

// Off-diagonal entry (r > c), needs L[r][0..c) and L[c][0..c]:
// L[r][c] = (a_rc - sum_{k<c} L[r][k] L[c][k]) / L[c][c].
// cholesky_offdiag_from continues the sum from k = k0 (v = a_rc minus the terms k < k0).
GSNN_HD void cholesky_offdiag_from(double* Lp, double v, int64_t r, int64_t c, int64_t k0) {
  const double* lr = Lp + tri(r);
  const double* lc = Lp + tri(c);
  // PARITY: ascending k, each product fused into the sum.
  for (int64_t k = k0; k < c; ++k) v = fma_rn(-lr[k], lc[k], v);
  Lp[tri(r) + c] = div_rn(v, lc[c]);
}

GSNN_HD void cholesky_offdiag(double* Lp, double a_rc, int64_t r, int64_t c) {
  cholesky_offdiag_from(Lp, a_rc, r, c, 0);
}

// Entry (r, c) of a row-major N x N matrix: the accessor of the precomputed
// covariances (the CPU also has one that forms them from the streaming sums).
struct PlainMat {
  const double* p;
  int64_t N;
  GSNN_HD double operator()(int64_t r, int64_t c) const { return p[r * N + c]; }
};

// Sequential factorisation of A = cov_xx[S, S] + ridge I (entries read as
// cov_xx(S[r], S[c]), r >= c), column by column. Returns false when a pivot fails
// (L is then incomplete).
template <class M>
GSNN_HD bool cholesky_packed_at(const M& cov_xx, const int64_t* S, int64_t s, double ridge,
                                double tol, double* Lp) {
  for (int64_t c = 0; c < s; ++c) {
    if (!cholesky_pivot(Lp, cov_xx(S[c], S[c]), ridge, tol, c)) return false;
    for (int64_t r = c + 1; r < s; ++r) cholesky_offdiag(Lp, cov_xx(S[r], S[c]), r, c);
  }
  return true;
}

GSNN_HD bool cholesky_packed(const double* cov_xx_p, int64_t N, const int64_t* S, int64_t s,
                             double ridge, double tol, double* Lp) {
  return cholesky_packed_at(PlainMat{cov_xx_p, N}, S, s, ridge, tol, Lp);
}

// alpha = A^-1 c with c[a] = cov_xy(S[a], j) (forward substitution into alpha,
// then back substitution in place); returns vy = var_y_j - c.alpha.
template <class M>
GSNN_HD double solve_alpha_at(const double* Lp, const M& cov_xy, const int64_t* S, int64_t s,
                              int64_t j, double var_y_j, double* alpha) {
  // PARITY: forward, a ascending, k ascending.
  for (int64_t a = 0; a < s; ++a) {
    const double* la = Lp + tri(a);
    double v = cov_xy(S[a], j);
    for (int64_t k = 0; k < a; ++k) v = fma_rn(-la[k], alpha[k], v);
    alpha[a] = div_rn(v, la[a]);
  }
  // PARITY: backward, a descending, k ascending over k > a (column a of L).
  for (int64_t a = s - 1; a >= 0; --a) {
    double v = alpha[a];
    for (int64_t k = a + 1; k < s; ++k) v = fma_rn(-Lp[tri(k) + a], alpha[k], v);
    alpha[a] = div_rn(v, Lp[tri(a) + a]);
  }
  double dot = 0.0;
  for (int64_t a = 0; a < s; ++a) dot = fma_rn(cov_xy(S[a], j), alpha[a], dot);
  return sub_rn(var_y_j, dot);
}

GSNN_HD double solve_alpha(const double* Lp, const double* cov_xy_p, int64_t N, const int64_t* S,
                           int64_t s, int64_t j, double var_y_j, double* alpha) {
  return solve_alpha_at(Lp, PlainMat{cov_xy_p, N}, S, s, j, var_y_j, alpha);
}

// True when a residual variance v, reduced from `base`, is usable: finite and
// v > tol * base (false for NaN).
GSNN_HD bool residual_ok(double v, double base, double tol) {
  return is_finite_d(v) && !(v <= mul_rn(tol, base));
}

// ---------------------------------------------------------------------------
// Per-source math, written once as templates on a lane type V (lanes.h): V::T
// holds the values of one source (ScalarLanes: CUDA threads and the CPU's tails)
// or of V::kWidth consecutive sources side by side (the CPU's VecLanes).
// ---------------------------------------------------------------------------

// Rows of B read from memory: B[a] starts at b + row(a) * ldb, row(a) = rows[a] (or a
// when rows is null); a lane group is kWidth consecutive doubles.
struct PlainRows {
  const double* b;
  const int64_t* rows;
  int64_t ldb;
  template <class V>
  GSNN_INLINE typename V::T load(int64_t a, int64_t off) const {
    return V::load(b + (rows ? rows[a] : a) * ldb + off);
  }
};

// MR rows a0 .. a0+MR-1 of the forward substitution Z = L^-1 B for NV lane
// groups of right-hand sides (the rows of Z before a0 are done):
//   Z[a] = (B[a] - sum_{k<a} L[a][k] Z[k]) / L[a][a],
// B[a], lane group v: brows.template load<V>(a, v * kWidth) (PlainRows: the doubles
// at b + row(a) * ldb + v * kWidth, row(a) = rows[a], or a when rows is null); Z[a],
// lane group v: kWidth doubles at
// z + (a * NV + v) * zstride * kWidth.
// kDots: also the running dots zz += Z[a] Z[a] and balpha += B[a] alpha[a].
// PARITY: per lane, every Z[a] starts from B[a] and subtracts the products
// L[a][k] Z[k] (each fused: nmsub) for k ascending, then divides; the dots (madd)
// take a ascending -- the sequence of one source solved on its own (MR = NV = 1).
// Blocking rows (MR) and sources (NV) only changes which lanes and rows run side
// by side, never the sequence inside a lane.
template <class V, int MR, int NV, bool kDots, class B>
GSNN_INLINE void forward_subst_rows(const double* Lp, int64_t a0, const B& brows,
                                    const double* alpha, double* z, int64_t zstride,
                                    typename V::T* zz, typename V::T* balpha) {
  using T = typename V::T;
  constexpr int W = V::kWidth;
  const int64_t zs = zstride * W;  // doubles between lane groups of z
  T acc[MR][NV];
  const double* lrow[MR];
  GSNN_UNROLL
  for (int m = 0; m < MR; ++m) {
    const int64_t a = a0 + m;
    lrow[m] = Lp + tri(a);
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) acc[m][v] = brows.template load<V>(a, v * W);
  }
  // PARITY: k ascending over the rows solved before this block ...
  for (int64_t k = 0; k < a0; ++k) {
    T zk[NV];
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) zk[v] = V::load(z + (k * NV + v) * zs);
    GSNN_UNROLL
    for (int m = 0; m < MR; ++m) {
      const T l = V::bcast(lrow[m] + k);
      GSNN_UNROLL
      for (int v = 0; v < NV; ++v) acc[m][v] = V::nmsub(acc[m][v], l, zk[v]);
    }
  }
  // ... then, row by row, k ascending over the rows of this block before it.
  GSNN_UNROLL
  for (int m = 0; m < MR; ++m) {
    const int64_t a = a0 + m;
    GSNN_UNROLL
    for (int64_t k = a0; k < a; ++k) {
      const T l = V::bcast(lrow[m] + k);
      GSNN_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[m][v] = V::nmsub(acc[m][v], l, V::load(z + (k * NV + v) * zs));
    }
    const T d = V::bcast(lrow[m] + a);
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) {
      const T za = V::div(acc[m][v], d);
      V::store(z + (a * NV + v) * zs, za);
      if (kDots) {
        zz[v] = V::madd(zz[v], za, za);
        balpha[v] = V::madd(balpha[v], brows.template load<V>(a, v * W), V::bcast(alpha + a));
      }
    }
  }
}

// Rows [0, s) of Z = L^-1 B (see forward_subst_rows), MR rows at a time, the
// last s % MR one by one. With kDots, zz[v] and balpha[v] must start at 0.0.
template <class V, int MR, int NV, bool kDots, class B>
GSNN_INLINE void forward_subst(const double* Lp, int64_t s, const B& brows, const double* alpha,
                               double* z, int64_t zstride, typename V::T* zz,
                               typename V::T* balpha) {
  int64_t a0 = 0;
  for (; a0 + MR <= s; a0 += MR)
    forward_subst_rows<V, MR, NV, kDots>(Lp, a0, brows, alpha, z, zstride, zz, balpha);
  for (; a0 < s; ++a0)
    forward_subst_rows<V, 1, NV, kDots>(Lp, a0, brows, alpha, z, zstride, zz, balpha);
}

// The score of a source from its dots: vx = var_x - zz, num = cxy - balpha,
// r = num / sqrt(vx * vy) clipped to [-1, 1]; nan_d() unless vx is finite and
// vx > tol * var_x (residual_ok) and r is a number. PARITY: the rounded
// operations are exactly those listed (in that order); the NaN and range tests
// only select.
template <class V>
GSNN_INLINE typename V::T partial_corr_finish(typename V::T zz, typename V::T balpha,
                                              typename V::T var_x, typename V::T cxy, double vy,
                                              double tol) {
  using T = typename V::T;
  const T vx = V::sub(var_x, zz);
  const T num = V::sub(cxy, balpha);
  T r = V::div(num, V::sqrt(V::mul(vx, V::splat(vy))));
  const T one = V::splat(1.0), minus_one = V::splat(-1.0), nan = V::splat(nan_d());
  r = V::gt_sel(r, one, one, r);
  r = V::lt_sel(r, minus_one, minus_one, r);
  r = V::ne_sel(r, r, nan, r);
  r = V::le_sel(vx, V::mul(V::splat(tol), var_x), nan, r);
  // vx - vx is 0 for finite vx and NaN otherwise (is_finite_d).
  return V::ne_sel(V::sub(vx, vx), V::splat(0.0), nan, r);
}

// out[p, i, j] of a system whose factorisation and vy passed, for one source i (the
// CUDA threads call this): b[a] = brows.load(a, 0) (the column i of cov_xx[S, :]),
// cxy_ij = cov_xy(i, j). z is per-source scratch of s doubles at stride zstride.
template <class Rows>
GSNN_HD double partial_corr_source_at(const double* Lp, const double* alpha, const int64_t* S,
                                      int64_t s, const Rows& brows, int64_t i, int64_t j,
                                      double var_x_i, double cxy_ij, double vy, double tol,
                                      double* z, int64_t zstride) {
  if (i == j || in_sorted(S, s, i)) return nan_d();
  double zz = 0.0;
  double balpha = 0.0;
  // PARITY: the sequence of forward_subst_rows on one source.
  forward_subst<ScalarLanes, 1, 1, true>(Lp, s, brows, alpha, z, zstride, &zz, &balpha);
  return partial_corr_finish<ScalarLanes>(zz, balpha, var_x_i, cxy_ij, vy, tol);
}

// The same from precomputed covariances: b[a] = cov_xx_p[S[a] * N + i].
GSNN_HD double partial_corr_source(const double* Lp, const double* alpha, const int64_t* S,
                                   int64_t s, const double* cov_xx_p, const double* cov_xy_p,
                                   int64_t N, int64_t i, int64_t j, double var_x_i, double vy,
                                   double tol, double* z, int64_t zstride) {
  return partial_corr_source_at(Lp, alpha, S, s, PlainRows{cov_xx_p + i, S, N}, i, j, var_x_i,
                                cov_xy_p[i * N + j], vy, tol, z, zstride);
}

// ---------------------------------------------------------------------------
// gsnn_fast::pair_partial_corr: the systems read their covariances from the
// streaming sums, formed entry by entry as they are read (no [N, N] covariance is
// stored):
//   cov(r, c) = sum[r, c] / n - mean_r[r] * mean_c[c]
// (div, mul, sub: one rounding each), the value a precomputed covariance matrix
// would hold. cov_xy: sum = sum_xy[p], mean_r = mean_x[p], mean_c = mean_y[p];
// cov_xx: sum = sum_xx[p], mean_r = mean_c = mean_x[p]. Both backends use these
// accessors, so the solves see the same operands bit for bit.
// ---------------------------------------------------------------------------

struct SumMat {
  const double* sum;  // [N, N] row-major
  const double* mr;   // [N] means of the rows
  const double* mc;   // [N] means of the columns
  double n;
  int64_t N;
  GSNN_HD double operator()(int64_t r, int64_t c) const {
    // PARITY: sum / n, then minus the rounded product of the means.
    return sub_rn(div_rn(sum[r * N + c], n), mul_rn(mr[r], mc[c]));
  }
};

// Rows of B = cov_xx[S, i0 ...] formed from sum_xx: lane by lane the operations of
// SumMat (a lane group is kWidth consecutive columns i0 + off ...).
struct SumRows {
  const double* sum;  // sum_xx[p]
  const double* mx;   // mean_x[p]
  double n;
  int64_t N;
  const int64_t* S;
  int64_t i0;
  template <class V>
  GSNN_INLINE typename V::T load(int64_t a, int64_t off) const {
    const int64_t r = S[a];
    return V::sub(V::div(V::load(sum + r * N + i0 + off), V::splat(n)),
                  V::mul(V::splat(mx[r]), V::load(mx + i0 + off)));
  }
};

// Doubles of the work buffer of the CUDA pair_partial_corr launcher: the node
// moments (6 P N, pair_corr_moments_view), the variances the systems take (2 P N,
// NaN where zero), one pair's scores when per_pair is not kept (N^2), the running
// count of the mean (N^2), and the per-thread z scratch of the systems
// (num_blocks * kPartialCorrThreads * smax).
inline int64_t pair_partial_corr_work_doubles(int64_t P, int64_t N, int64_t smax,
                                              int64_t num_blocks, bool keep_per_pair, int32_t agg) {
  return 8 * P * N + (keep_per_pair ? 0 : N * N) + (agg == kAggMean ? N * N : 0) +
         num_blocks * kPartialCorrThreads * smax;
}

}  // namespace gsnn_fast
