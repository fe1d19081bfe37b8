// CPU backend of gsnn_fast::pair_partial_corr: the partial correlation of every
// layer pair from the streaming sums, and its aggregation over pairs
// (MagnitudeEdgeInferer's 'partial' score with the relative zero-variance rule, in
// one call). The CUDA kernel (csrc/cuda/pair_partial_corr_kernel.cu) runs the same
// header functions in the same order.
//
// Per pair p, ascending: the node moments and the plain corr are those of
// pair_corr (pair_corr_node_moments, pair_corr_value); the variances the systems
// take are NaN where they count as zero; the systems of that pair (the engine,
// partial_corr_engine.h) read cov_xy = sum_xy / n - mean_x mean_y^T and
// cov_xx = sum_xx / n - mean_x mean_x^T entry by entry as they need them (SumMat /
// SumRows of partial_corr.h: div, mul, sub, one rounding each; no [N, N] covariance
// is stored), and write per_pair[p] (or a one-pair buffer); the pairs are folded
// into the aggregate by pair_agg_step in ascending order. corr is formed only when
// some target has an empty set, written straight into the output (the systems'
// pass then leaves those columns as they are).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../checks.h"
#include "huge_pages.h"
#include "partial_corr_engine.h"
#include "gsnn_fast/pair_corr.h"

namespace gsnn_fast {

std::tuple<at::Tensor, at::Tensor> pair_partial_corr_cpu(
    const at::Tensor& sum_x_in, const at::Tensor& sum_y_in, const at::Tensor& sum_x2_in,
    const at::Tensor& sum_y2_in, const at::Tensor& sum_xy_in, const at::Tensor& sum_xx_in,
    const at::Tensor& ptr_in, const at::Tensor& idx_in, double n, double ridge, double tol,
    int64_t agg, bool per_pair) {
  check_pair_partial_corr(sum_x_in, sum_y_in, sum_x2_in, sum_y2_in, sum_xy_in, sum_xx_in, ptr_in,
                          idx_in, n, ridge, tol, agg);
  const int64_t P = sum_xy_in.size(0), N = sum_xy_in.size(1), NN = N * N;
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous(),
                   sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous(),
                   sum_xy = sum_xy_in.contiguous(), sum_xx = sum_xx_in.contiguous(),
                   ptr = ptr_in.contiguous(), idx = idx_in.contiguous();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t smax = check_partial_corr_csr(pp, N, ix, idx.size(0), "pair_partial_corr");
  const auto opts = sum_xy.options();
  at::Tensor pairs = per_pair ? at::empty({P, N, N}, opts) : at::empty({0}, opts);
  at::Tensor out = at::empty({N, N}, opts);
  advise_huge_pages(pairs);
  advise_huge_pages(out);
  if (P == 0 || N == 0) {
    out.fill_(nan_d());
    return {pairs, out};
  }
  const int32_t ag = static_cast<int32_t>(agg);
  const Isa isa = pick_isa("pair_partial_corr");

  // Node moments of every pair (as pair_corr), and the variances the systems take.
  at::Tensor node = at::empty({3 * P * 2 * N + 2 * N}, opts);
  const PairCorrMoments m = pair_corr_moments_view(node.data_ptr<double>(), P, N, N);
  // The variances pair p's systems take: NaN where they count as zero ([N] each).
  double* sys_var_x = node.data_ptr<double>() + 6 * P * N;
  double* sys_var_y = sys_var_x + N;
  {
    const double* sx = sum_x.data_ptr<double>();
    const double* sx2 = sum_x2.data_ptr<double>();
    const double* sy = sum_y.data_ptr<double>();
    const double* sy2 = sum_y2.data_ptr<double>();
    for (int64_t t = 0; t < P * N; ++t) {
      pair_corr_node_moments(sx[t], sx2[t], n, tol, kZeroVarRelative, m.mean_x + t, m.var_x + t,
                             m.zero_x + t);
      pair_corr_node_moments(sy[t], sy2[t], n, tol, kZeroVarRelative, m.mean_y + t, m.var_y + t,
                             m.zero_y + t);
    }
  }
  bool any_empty = false;
  for (int64_t j = 0; j < N && !any_empty; ++j) any_empty = pp[j + 1] == pp[j];
  // The pair's output when per_pair is false; the running count of the mean when the
  // pairs are folded one at a time.
  at::Tensor scratch = at::empty({per_pair ? 0 : (ag == kAggMean ? 2 : 1) * NN}, opts);
  advise_huge_pages(scratch);
  double* cnt = !per_pair && ag == kAggMean ? scratch.data_ptr<double>() + NN : nullptr;
  double* acc = out.data_ptr<double>();
  const double* sxy_all = sum_xy.data_ptr<double>();
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, N));
  for (int64_t p = 0; p < P; ++p) {
    double* dst = per_pair ? pairs.data_ptr<double>() + p * NN : scratch.data_ptr<double>();
    for (int64_t i = 0; i < N; ++i) {
      sys_var_x[i] = m.zero_x[p * N + i] != 0.0 ? nan_d() : m.var_x[p * N + i];
      sys_var_y[i] = m.zero_y[p * N + i] != 0.0 ? nan_d() : m.var_y[p * N + i];
    }
    if (any_empty) {
      // The corr rows go straight into the output (whole rows, vectorised): the
      // systems' pass copies the corr columns of empty sets onto themselves and
      // overwrites every other column.
      const double* sxy = sxy_all + p * NN;
      at::parallel_for(0, N, grain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t xi = p * N + i;
          pair_corr_row(CorrRow{N, n, m.mean_x[xi], m.var_x[xi], m.zero_x[xi], sxy + i * N,
                                m.mean_y + p * N, m.var_y + p * N, m.zero_y + p * N, dst + i * N},
                        isa);
        }
      });
    }
    // pair p's sums and means, as the one pair of the call
    const PartialCorrCtx c{dst,
                           sxy_all + p * NN,
                           sum_xx.data_ptr<double>() + p * NN,
                           sys_var_x,
                           sys_var_y,
                           dst,
                           pp,
                           ix,
                           1,
                           N,
                           ridge,
                           tol,
                           m.mean_x + p * N,
                           m.mean_y + p * N,
                           n};
    partial_corr_systems_from_sums(c, smax, isa);
    if (per_pair) continue;  // folded below, all pairs at once
    // PARITY: the pairs fold into the aggregate in ascending order.
    at::parallel_for(0, NN, grain * N, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        double a = p == 0 ? pair_agg_start<ScalarLanes>(ag) : acc[e];
        double k = p == 0 || !cnt ? 0.0 : cnt[e];
        pair_agg_step<ScalarLanes>(a, k, dst[e], ag);
        if (p + 1 == P) {
          acc[e] = pair_agg_result<ScalarLanes>(a, k, ag);
        } else {
          acc[e] = a;
          if (cnt) cnt[e] = k;
        }
      }
    });
  }
  if (per_pair) {
    // PARITY: the same fold, all pairs of an element at once.
    const double* all = pairs.data_ptr<double>();
    at::parallel_for(0, NN, grain * N, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        double a = pair_agg_start<ScalarLanes>(ag), k = 0.0;
        for (int64_t p = 0; p < P; ++p) pair_agg_step<ScalarLanes>(a, k, all[p * NN + e], ag);
        acc[e] = pair_agg_result<ScalarLanes>(a, k, ag);
      }
    });
  }
  return {pairs, out};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("pair_partial_corr", &pair_partial_corr_cpu); }

}  // namespace gsnn_fast
