// CPU backend of gsnn_fast::pair_corr (order and math: gsnn_fast/pair_corr.h).
//
// Two loops, both parallel over outputs (no reduction across threads):
//   1. the per-node moments of every pair (pair_corr_node_moments), one
//      (side, p, node) per iteration, into a scratch buffer of 3 P (M + N)
//      doubles;
//   2. the elements, rows i split across threads. Along a row, the header's
//      pair_corr_lanes runs on GCC vector types: kWidth consecutive targets j
//      side by side, one element per lane, walking the P pairs (sum_xy and
//      per_pair are P sequential streams per row: sum_xy is read once and every
//      output written once). The last j (fewer than a vector) take the scalar
//      lane type -- the sequence that the CUDA threads run for every element.
//   * ISA: the row loop is compiled three times (AVX-512F, AVX2, baseline) and
//     picked at run time (isa.h); all give the same bits.
// Every lane's rounding sequence is the scalar one, so the bits do not depend on
// the SIMD width or the number of threads and equal the CUDA kernel's.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "../checks.h"
#include "huge_pages.h"
#include "isa.h"
#include "simd.h"
#include "gsnn_fast/pair_corr.h"

namespace gsnn_fast {
namespace {

struct Ctx {
  const double* sum_xy;
  PairCorrMoments m;
  int64_t P, M, N;
  double n;
  int32_t agg;
  double* per_pair;  // null when not requested
  double* out;
};

// Rows [i0, i1): full vectors of V, then the scalar tail.
template <class V>
GSNN_INLINE void rows(const Ctx& c, int64_t i0, int64_t i1) {
  constexpr int64_t W = kLanes<V>;
  for (int64_t i = i0; i < i1; ++i) {
    double* orow = c.out + i * c.N;
    int64_t j = 0;
    // PARITY: one element per lane; the same sequence as ScalarLanes.
    for (; j + W <= c.N; j += W) {
      VecLanes<V>::store(orow + j, pair_corr_lanes<VecLanes<V>>(c.sum_xy, c.m, c.P, c.M, c.N, i, j,
                                                                c.n, c.agg, c.per_pair));
    }
    for (; j < c.N; ++j) {
      orow[j] =
          pair_corr_lanes<ScalarLanes>(c.sum_xy, c.m, c.P, c.M, c.N, i, j, c.n, c.agg, c.per_pair);
    }
  }
}

#if GSNN_HAVE_CLONES
GSNN_TARGET("avx512f") void rows_avx512(const Ctx& c, int64_t i0, int64_t i1) {
  rows<v8d>(c, i0, i1);
}
GSNN_TARGET("avx2") void rows_avx2(const Ctx& c, int64_t i0, int64_t i1) { rows<v4d>(c, i0, i1); }
#endif
// Baseline (SSE2 on x86-64, 128-bit NEON on aarch64).
void rows_base(const Ctx& c, int64_t i0, int64_t i1) { rows<v2d>(c, i0, i1); }

using RowsFn = void (*)(const Ctx&, int64_t, int64_t);

// The variant of isa.h's choice.
RowsFn pick_rows() {
  const Isa isa = pick_isa("pair_corr");
#if GSNN_HAVE_CLONES
  if (isa == Isa::kAvx512f) return &rows_avx512;
  if (isa == Isa::kAvx2) return &rows_avx2;
#endif
  (void)isa;
  return &rows_base;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> pair_corr_cpu(const at::Tensor& sum_x_in,
                                                 const at::Tensor& sum_y_in,
                                                 const at::Tensor& sum_x2_in,
                                                 const at::Tensor& sum_y2_in,
                                                 const at::Tensor& sum_xy_in, double n, double tol,
                                                 int64_t rule, int64_t agg, bool per_pair) {
  check_pair_corr(sum_x_in, sum_y_in, sum_x2_in, sum_y2_in, sum_xy_in, n, tol, rule, agg);
  const RowsFn rows_fn = pick_rows();
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous();
  const at::Tensor sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous();
  const at::Tensor sum_xy = sum_xy_in.contiguous();
  const int64_t P = sum_xy.size(0), M = sum_xy.size(1), N = sum_xy.size(2);
  const auto opts = sum_xy.options();
  at::Tensor pairs = per_pair ? at::empty({P, M, N}, opts) : at::empty({0}, opts);
  at::Tensor out = at::empty({M, N}, opts);
  if (M == 0 || N == 0) return {pairs, out};
  advise_huge_pages(pairs);
  advise_huge_pages(out);

  at::Tensor scratch = at::empty({3 * P * (M + N)}, opts);
  const PairCorrMoments m = pair_corr_moments_view(scratch.data_ptr<double>(), P, M, N);
  const double* sx = sum_x.data_ptr<double>();
  const double* sx2 = sum_x2.data_ptr<double>();
  const double* sy = sum_y.data_ptr<double>();
  const double* sy2 = sum_y2.data_ptr<double>();
  const int32_t r = static_cast<int32_t>(rule);

  // 1. Moments: t < P*M is (p, i) of the activation side, the rest (p, j) of the
  //    gradient side (as in the CUDA moments kernel).
  const int64_t PM = P * M, PN = P * N;
  at::parallel_for(0, PM + PN, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (t < PM) {
        pair_corr_node_moments(sx[t], sx2[t], n, tol, r, m.mean_x + t, m.var_x + t, m.zero_x + t);
      } else {
        const int64_t u = t - PM;
        pair_corr_node_moments(sy[u], sy2[u], n, tol, r, m.mean_y + u, m.var_y + u, m.zero_y + u);
      }
    }
  });

  // 2. Elements, rows split across threads (>= 32k pair-elements per task).
  const Ctx c{sum_xy.data_ptr<double>(),
              m,
              P,
              M,
              N,
              n,
              static_cast<int32_t>(agg),
              per_pair ? pairs.data_ptr<double>() : nullptr,
              out.data_ptr<double>()};
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, P * N));
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) { rows_fn(c, begin, end); });
  return {pairs, out};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("pair_corr", &pair_corr_cpu); }

}  // namespace gsnn_fast
