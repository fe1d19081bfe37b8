// gsnn_fast/pair_corr.h -- plain correlation of every layer pair from the streaming
// sums, and its aggregation over pairs, in one pass (MagnitudeEdgeInferer's 'corr'
// score; the definitions are in docs/ARCHITECTURE.md, "Scores").
//
// Op: gsnn_fast::pair_corr(Tensor sum_x, Tensor sum_y, Tensor sum_x2, Tensor sum_y2,
//       Tensor sum_xy, float n, float tol, int rule, int agg, bool per_pair)
//       -> (Tensor per_pair, Tensor aggregated)
//   sum_x, sum_x2  [P, M]     float64: activation side, source index i.
//   sum_y, sum_y2  [P, N]     float64: gradient side, target index j.
//   sum_xy         [P, M, N]  float64: sum_b x[p,b,i] * y[p,b,j].
//   (M = N in the inferer; all on one device; non-contiguous inputs are copied.)
//   n    sample count (finite, > 0; the inferer requires n >= 3).
//   tol  zero-variance tolerance (finite, >= 0).
//   rule kZeroVarRelative: var <= tol * mean^2 counts as zero (an all-zero column
//        has var = mean = 0, so it is zero); kZeroVarAbsolute: var <= tol.
//   agg  kAggMean: NaN-ignoring mean over pairs (NaN where every pair is NaN);
//        kAggMax: the signed value with the largest |corr|, first pair on ties,
//        NaN where every pair is NaN.
//   Outputs, float64 on the inputs' device:
//     per_pair   [P, M, N] corr[p, i, j], or an empty (0,) tensor when per_pair is
//                false;
//     aggregated [M, N]    agg over p of corr[p, i, j].
//
// Order of rounded operations (PARITY). For each pair p and node i (likewise j,
// sum_y, sum_y2):
//   mean = sum / n
//   var  = sum2 / n - mean * mean;  var = var < 0 ? 0 : var   (NaN and -0.0 kept)
//   zero = rule == relative ? var <= tol * (mean * mean) : var <= tol
// once per (p, i) and (p, j) (pair_corr_node_moments, a first loop / kernel);
// then per element:
//   cov  = sum_xy[p,i,j] / n - mean_x[i] * mean_y[j]
//   corr = cov / sqrt(var_x[i] * var_y[j])
//   corr = NaN if zero_x[i] or zero_y[j], else min(max(corr, -1), 1) (NaN kept)
// and over p = 0, 1, ..., P-1 in ascending order:
//   mean: acc = 0.0, cnt = 0.0;  acc = acc + (corr is NaN ? 0.0 : corr),
//         cnt = cnt + (corr is NaN ? 0.0 : 1.0);  result = acc / cnt  (0/0 -> NaN;
//         cnt is a small integer, exact in a double)
//   max:  acc = NaN;  acc = corr if corr is a number and (acc is NaN or
//         |corr| > |acc|), else acc
// No fma, no reassociation; every NaN stored is the canonical nan_d() (hd.h).
//
// One output element (i, j) per CUDA thread and per CPU lane: pair_corr_lanes
// walks the P pairs of one element (or of V::kWidth consecutive j side by side on
// the CPU's SIMD lanes), written once as a template on a lane type (lanes.h). So
// each element's rounding sequence is the same on both backends and for any SIMD
// width or number of threads.
#pragma once

#include "gsnn_fast/lanes.h"

namespace gsnn_fast {

enum PairCorrRule : int32_t { kZeroVarRelative = 0, kZeroVarAbsolute = 1 };
enum PairCorrAgg : int32_t { kAggMean = 0, kAggMax = 1 };

// Per-node moments of every pair (the scratch written by the first loop / kernel):
// mean_x, var_x, zero_x [P, M] and mean_y, var_y, zero_y [P, N]; the zero flags are
// 1.0 (variance counts as zero) or 0.0. Plain pointers, passed by value.
struct PairCorrMoments {
  double* mean_x;
  double* var_x;
  double* zero_x;
  double* mean_y;
  double* var_y;
  double* zero_y;
};

// Carves the moments out of one scratch buffer of 3 * P * (M + N) doubles.
GSNN_HD PairCorrMoments pair_corr_moments_view(double* d, int64_t P, int64_t M, int64_t N) {
  PairCorrMoments m;
  m.mean_x = d;
  m.var_x = d + P * M;
  m.zero_x = d + 2 * P * M;
  m.mean_y = d + 3 * P * M;
  m.var_y = d + 3 * P * M + P * N;
  m.zero_y = d + 3 * P * M + 2 * P * N;
  return m;
}

// Mean, clamped variance and zero-variance flag of one node of one pair.
GSNN_HD void pair_corr_node_moments(double sum, double sum2, double n, double tol, int32_t rule,
                                    double* mean, double* var, double* zero) {
  // PARITY: sum / n; sum2 / n - mean * mean; then the clamp at 0.
  const double m = div_rn(sum, n);
  const double mm = mul_rn(m, m);
  double v = sub_rn(div_rn(sum2, n), mm);
  v = v < 0.0 ? 0.0 : v;  // NaN and -0.0 pass through
  // PARITY: tol * (mean * mean), one rounding each; NaN never counts as zero.
  const bool z = rule == kZeroVarAbsolute ? v <= tol : v <= mul_rn(tol, mm);
  *mean = m;
  *var = v;
  *zero = z ? 1.0 : 0.0;
}

// corr of one (p, i, j) per lane from its covariance cov = sum_xy / n - mean_x *
// mean_y (pair_corr_value's first step; the partial-correlation op forms the same
// covariance for its systems and reuses it) and the node moments.
template <class V>
GSNN_INLINE typename V::T pair_corr_from_cov(typename V::T cov, typename V::T vx, typename V::T zx,
                                             typename V::T vy, typename V::T zy) {
  using T = typename V::T;
  const T one = V::splat(1.0), minus_one = V::splat(-1.0), zero = V::splat(0.0);
  const T nan = V::splat(nan_d());
  // PARITY: corr = cov / sqrt(var_x * var_y).
  const T c = V::div(cov, V::sqrt(V::mul(vx, vy)));
  // clamp to [-1, 1]: NaN and -0.0 pass through
  T r = V::lt_sel(c, minus_one, minus_one, c);
  r = V::gt_sel(r, one, one, r);
  r = V::ne_sel(r, r, nan, r);  // PARITY: one NaN bit pattern
  r = V::ne_sel(zx, zero, nan, r);
  return V::ne_sel(zy, zero, nan, r);
}

// corr of one (p, i, j) per lane, from sum_xy[p, i, j], n and the node moments.
template <class V>
GSNN_INLINE typename V::T pair_corr_value(typename V::T sxy, typename V::T n, typename V::T mx,
                                          typename V::T vx, typename V::T zx, typename V::T my,
                                          typename V::T vy, typename V::T zy) {
  // PARITY: cov = sum_xy / n - mean_x * mean_y, then pair_corr_from_cov.
  return pair_corr_from_cov<V>(V::sub(V::div(sxy, n), V::mul(mx, my)), vx, zx, vy, zy);
}

// The aggregation over pairs, one step per pair in ascending order (PARITY, see
// the header comment): acc and cnt start at pair_agg_start; pair_agg_step folds in
// the score c of the next pair; pair_agg_result gives the aggregate. Shared with
// gsnn_fast::pair_partial_corr (csrc/cpu/partial_corr_cpu.cpp).
template <class V>
GSNN_INLINE typename V::T pair_agg_start(int32_t agg) {
  return V::splat(agg == kAggMean ? 0.0 : nan_d());
}

template <class V>
GSNN_INLINE void pair_agg_step(typename V::T& acc, typename V::T& cnt, typename V::T c,
                               int32_t agg) {
  using T = typename V::T;
  if (agg == kAggMean) {
    const T zero = V::splat(0.0);
    // PARITY: acc + (c or 0.0), cnt + (1.0 or 0.0); one rounding per add.
    acc = V::add(acc, V::ne_sel(c, c, zero, c));
    cnt = V::add(cnt, V::ne_sel(c, c, zero, V::splat(1.0)));
  } else {
    // c replaces acc when |c| > |acc| strictly (first pair wins ties; false for a
    // NaN c) or when acc is NaN.
    const T t = V::gt_sel(V::abs(c), V::abs(acc), c, acc);
    acc = V::ne_sel(acc, acc, c, t);
  }
}

template <class V>
GSNN_INLINE typename V::T pair_agg_result(typename V::T acc, typename V::T cnt, int32_t agg) {
  if (agg != kAggMean) return acc;
  const typename V::T r = V::div(acc, cnt);  // 0 / 0 -> NaN where every pair is NaN
  return V::ne_sel(r, r, V::splat(nan_d()), r);
}

// Every pair of output element(s) (i, j .. j + V::kWidth - 1): stores per_pair[p, i,
// j..] when per_pair is not null and returns the aggregate. sum_xy, per_pair:
// [P, M, N].
template <class V>
GSNN_INLINE typename V::T pair_corr_lanes(const double* sum_xy, const PairCorrMoments& m, int64_t P,
                                          int64_t M, int64_t N, int64_t i, int64_t j, double n,
                                          int32_t agg, double* per_pair) {
  using T = typename V::T;
  const T vn = V::splat(n);
  T acc = pair_agg_start<V>(agg);
  T cnt = V::splat(0.0);
  // PARITY: pairs in ascending order.
  for (int64_t p = 0; p < P; ++p) {
    const int64_t xi = p * M + i, yj = p * N + j, e = xi * N + j;
    const T c =
        pair_corr_value<V>(V::load(sum_xy + e), vn, V::splat(m.mean_x[xi]), V::splat(m.var_x[xi]),
                           V::splat(m.zero_x[xi]), V::load(m.mean_y + yj), V::load(m.var_y + yj),
                           V::load(m.zero_y + yj));
    if (per_pair != nullptr) V::store(per_pair + e, c);
    pair_agg_step<V>(acc, cnt, c, agg);
  }
  return pair_agg_result<V>(acc, cnt, agg);
}

// One output element (i, j): the scalar form, used by the CUDA kernel.
GSNN_HD double pair_corr_element(const double* sum_xy, const PairCorrMoments& m, int64_t P,
                                 int64_t M, int64_t N, int64_t i, int64_t j, double n, int32_t agg,
                                 double* per_pair) {
  return pair_corr_lanes<ScalarLanes>(sum_xy, m, P, M, N, i, j, n, agg, per_pair);
}

}  // namespace gsnn_fast
