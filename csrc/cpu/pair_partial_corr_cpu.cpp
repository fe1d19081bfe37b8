// CPU backend of gsnn_fast::pair_partial_corr: the partial correlation of every
// layer pair from the streaming sums, and its aggregation over pairs
// (MagnitudeEdgeInferer's 'partial' score with the relative zero-variance rule, in
// one call). The CUDA kernel (csrc/cuda/pair_partial_corr_kernel.cu) runs the same
// header functions in the same order.
//
// The node moments and the plain corr are those of pair_corr
// (pair_corr_node_moments, pair_corr_value); the variances the systems take are NaN
// where they count as zero; the systems (the engine, partial_corr_engine.h) read
// cov_xy = sum_xy / n - mean_x mean_y^T and cov_xx = sum_xx / n - mean_x mean_x^T
// entry by entry as they need them (SumMat / SumRows of partial_corr.h: div, mul,
// sub, one rounding each; no [N, N] covariance is stored). One pass over the
// output (pair_partial_corr_fused): the big systems' columns first, then blocks of
// targets, every pair of a block together, each element's pairs folded into the
// aggregate by pair_agg_step in ascending order; per_pair, when kept, is written
// on the way. No [N, N] buffer besides the outputs. pair_partial_corr_keep_big is the
// same pass without per_pair, returning the big sets' columns it solved first;
// pair_partial_corr_entries solves only the (pair, target) systems of given entries.
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
namespace {

// The inputs of both ops, contiguous, and the moments the engine takes.
struct Prepared {
  at::Tensor sum_xy, sum_xx, ptr, idx, node;
  int64_t smax = 0;
  PairPartialCtx ctx{};
};

Prepared prepare(const at::Tensor& sum_x_in, const at::Tensor& sum_y_in,
                 const at::Tensor& sum_x2_in, const at::Tensor& sum_y2_in,
                 const at::Tensor& sum_xy_in, const at::Tensor& sum_xx_in, const at::Tensor& ptr_in,
                 const at::Tensor& idx_in, double n, double ridge, double tol, int64_t agg,
                 const char* op) {
  Prepared r;
  const int64_t P = sum_xy_in.size(0), N = sum_xy_in.size(1);
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous(),
                   sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous();
  r.sum_xy = sum_xy_in.contiguous();
  r.sum_xx = sum_xx_in.contiguous();
  r.ptr = ptr_in.contiguous();
  r.idx = idx_in.contiguous();
  const int64_t* pp = r.ptr.data_ptr<int64_t>();
  const int64_t* ix = r.idx.data_ptr<int64_t>();
  r.smax = check_partial_corr_csr(pp, N, ix, r.idx.size(0), op);
  // Node moments of every pair (as pair_corr), then the variances the systems take:
  // NaN where they count as zero ([P, N] each).
  r.node = at::empty({8 * P * N}, r.sum_xy.options());
  const PairCorrMoments m = pair_corr_moments_view(r.node.data_ptr<double>(), P, N, N);
  double* sys_var_x = r.node.data_ptr<double>() + 6 * P * N;
  double* sys_var_y = sys_var_x + P * N;
  const double* sx = sum_x.data_ptr<double>();
  const double* sx2 = sum_x2.data_ptr<double>();
  const double* sy = sum_y.data_ptr<double>();
  const double* sy2 = sum_y2.data_ptr<double>();
  for (int64_t t = 0; t < P * N; ++t) {
    pair_corr_node_moments(sx[t], sx2[t], n, tol, kZeroVarRelative, m.mean_x + t, m.var_x + t,
                           m.zero_x + t);
    pair_corr_node_moments(sy[t], sy2[t], n, tol, kZeroVarRelative, m.mean_y + t, m.var_y + t,
                           m.zero_y + t);
    sys_var_x[t] = m.zero_x[t] != 0.0 ? nan_d() : m.var_x[t];
    sys_var_y[t] = m.zero_y[t] != 0.0 ? nan_d() : m.var_y[t];
  }
  r.ctx = PairPartialCtx{r.sum_xy.data_ptr<double>(),
                         r.sum_xx.data_ptr<double>(),
                         m,
                         sys_var_x,
                         sys_var_y,
                         pp,
                         ix,
                         P,
                         N,
                         n,
                         ridge,
                         tol,
                         static_cast<int32_t>(agg),
                         nullptr,
                         nullptr};
  return r;
}

}  // namespace

namespace {

// One pass of pair_partial_corr_fused for op: the [N, N] aggregate, the [P, N, N]
// per-pair scores when per_pair (else empty), and the big sets' columns the pass
// solved first (none when P == 0 or N == 0: the aggregate is then all NaN).
struct FusedPass {
  at::Tensor pairs, out;
  BigColumns big;
};
FusedPass fused_pass(const char* op, const at::Tensor& sum_x, const at::Tensor& sum_y,
                     const at::Tensor& sum_x2, const at::Tensor& sum_y2, const at::Tensor& sum_xy,
                     const at::Tensor& sum_xx, const at::Tensor& ptr, const at::Tensor& idx,
                     double n, double ridge, double tol, int64_t agg, bool per_pair) {
  check_pair_partial_corr(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol,
                          agg, op);
  const int64_t P = sum_xy.size(0), N = sum_xy.size(1);
  const auto opts = sum_xy.options();
  FusedPass f{per_pair ? at::empty({P, N, N}, opts) : at::empty({0}, opts), at::empty({N, N}, opts),
              BigColumns{}};
  advise_huge_pages(f.pairs);
  advise_huge_pages(f.out);
  if (P == 0 || N == 0) {
    f.out.fill_(nan_d());
    return f;
  }
  Prepared r =
      prepare(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, agg, op);
  r.ctx.per_pair = per_pair ? f.pairs.data_ptr<double>() : nullptr;
  r.ctx.out = f.out.data_ptr<double>();
  f.big = pair_partial_corr_fused(r.ctx, r.smax, pick_isa("pair_partial_corr"));
  return f;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> pair_partial_corr_cpu(
    const at::Tensor& sum_x, const at::Tensor& sum_y, const at::Tensor& sum_x2,
    const at::Tensor& sum_y2, const at::Tensor& sum_xy, const at::Tensor& sum_xx,
    const at::Tensor& ptr, const at::Tensor& idx, double n, double ridge, double tol, int64_t agg,
    bool per_pair) {
  FusedPass f = fused_pass("pair_partial_corr", sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr,
                           idx, n, ridge, tol, agg, per_pair);
  return {f.pairs, f.out};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pair_partial_corr_keep_big_cpu(
    const at::Tensor& sum_x, const at::Tensor& sum_y, const at::Tensor& sum_x2,
    const at::Tensor& sum_y2, const at::Tensor& sum_xy, const at::Tensor& sum_xx,
    const at::Tensor& ptr, const at::Tensor& idx, double n, double ridge, double tol, int64_t agg) {
  FusedPass f = fused_pass("pair_partial_corr_keep_big", sum_x, sum_y, sum_x2, sum_y2, sum_xy,
                           sum_xx, ptr, idx, n, ridge, tol, agg, false);
  const int64_t P = sum_xy.size(0), N = sum_xy.size(1);
  const auto B = static_cast<int64_t>(f.big.targets.size());
  at::Tensor targets = at::empty({B}, sum_xy.options().dtype(at::kLong));
  at::Tensor cols = at::empty({P, B, N}, sum_xy.options());
  std::copy(f.big.targets.begin(), f.big.targets.end(), targets.data_ptr<int64_t>());
  std::copy(f.big.cols.begin(), f.big.cols.end(), cols.data_ptr<double>());
  return {f.out, targets, cols};
}

at::Tensor pair_partial_corr_entries_cpu(const at::Tensor& sum_x, const at::Tensor& sum_y,
                                         const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                                         const at::Tensor& sum_xy, const at::Tensor& sum_xx,
                                         const at::Tensor& ptr, const at::Tensor& idx, double n,
                                         double ridge, double tol, const at::Tensor& src_in,
                                         const at::Tensor& dst_in) {
  constexpr const char* op = "pair_partial_corr_entries";
  check_pair_partial_corr(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol,
                          kAggMean, op);
  const int64_t P = sum_xy.size(0), N = sum_xy.size(1);
  TORCH_CHECK(src_in.dim() == 1 && dst_in.dim() == 1 && src_in.size(0) == dst_in.size(0), op,
              ": src and dst must be 1-d of one length, got ", src_in.sizes(), " and ",
              dst_in.sizes());
  TORCH_CHECK(src_in.scalar_type() == at::kLong && dst_in.scalar_type() == at::kLong, op,
              ": src and dst must be int64, got ", src_in.scalar_type(), " and ",
              dst_in.scalar_type());
  TORCH_CHECK(src_in.device().is_cpu() && dst_in.device().is_cpu(), op,
              ": src and dst must be CPU tensors");
  const at::Tensor src = src_in.contiguous(), dst = dst_in.contiguous();
  const int64_t R = src.size(0);
  const int64_t* ps = src.data_ptr<int64_t>();
  const int64_t* pd = dst.data_ptr<int64_t>();
  for (int64_t r = 0; r < R; ++r)
    TORCH_CHECK(ps[r] >= 0 && ps[r] < N && pd[r] >= 0 && pd[r] < N, op, ": entry ", r, " (", ps[r],
                ", ", pd[r], ") is outside [0, ", N, ")");
  at::Tensor vals = at::empty({P, R}, sum_xy.options());
  if (P == 0 || R == 0) return vals;
  Prepared r =
      prepare(sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx, ptr, idx, n, ridge, tol, kAggMean, op);
  pair_partial_corr_entries(r.ctx, r.smax, ps, pd, R, vals.data_ptr<double>(),
                            pick_isa("pair_partial_corr"));
  return vals;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) {
  m.impl("pair_partial_corr", &pair_partial_corr_cpu);
  m.impl("pair_partial_corr_keep_big", &pair_partial_corr_keep_big_cpu);
  m.impl("pair_partial_corr_entries", &pair_partial_corr_entries_cpu);
}

// The ops of the large-N frame query on CUDA tensors: a clear error (the query runs on
// the host).
TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) {
  m.impl("pair_partial_corr_keep_big",
         [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            const at::Tensor& sum_xy, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            double, double, double, int64_t) -> std::tuple<at::Tensor, at::Tensor, at::Tensor> {
           host_only("pair_partial_corr_keep_big", sum_xy);
         });
  m.impl("pair_partial_corr_entries",
         [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            const at::Tensor& sum_xy, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            double, double, double, const at::Tensor&,
            const at::Tensor&) -> at::Tensor { host_only("pair_partial_corr_entries", sum_xy); });
}

}  // namespace gsnn_fast
