// gsnn_fast/pair_stats.h -- streaming first and second moments of layer pairs.
//
// Op: gsnn_fast::pair_stats_update(Tensor xmag, Tensor ymag, Tensor(a!) sum_x,
//       Tensor(b!) sum_y, Tensor(c!) sum_x2, Tensor(d!) sum_y2, Tensor(e!) sum_xy,
//       Tensor(f!)? sum_xx) -> ()
//   xmag, ymag  (L, B, N) float64: activation / gradient magnitudes of L layers,
//               B samples, N nodes (non-contiguous inputs are copied first).
//   P = L - 1 pairs; pair p = (activation layer p, gradient layer p + 1).
//   Accumulators, float64, contiguous, on the inputs' device, updated in place:
//     sum_x, sum_x2 [P, N]     += sum_b x[p,b,i],   sum_b x[p,b,i]^2
//     sum_y, sum_y2 [P, N]     += sum_b y[p+1,b,j], sum_b y[p+1,b,j]^2
//     sum_xy        [P, N, N]  [p,i,j] += sum_b x[p,b,i] * y[p+1,b,j]
//     sum_xx        [P, N, N]  [p,i,k] += sum_b x[p,b,i] * x[p,b,k]   (optional)
//
// Summation order (PARITY), the same for every output element on every backend:
//   partial = 0.0;
//   for b = 0, 1, ..., B-1:  partial = partial + (u[b] * v[b])   // product rounded,
//                                                                 // then the sum: no fma
//   acc = acc + partial                                           // once per call
// NaN: an accumulator that ends up NaN is stored as the canonical nan_d()
// (gsnn_fast/hd.h), so CPU and CUDA agree bit for bit for NaN inputs too.
// sum_xx[p,i,k] and sum_xx[p,k,i] are the same partial (multiplication commutes
// exactly), so the kernels compute the i <= k half once and add it to both.
//
// The CPU kernel (csrc/cpu/pair_stats_cpu.cpp) runs pair_step on SIMD lanes,
// one output element per lane; the CUDA kernel (csrc/cuda/pair_stats_kernel.cu)
// runs it with one output element per (thread, register). Both call the
// functions below, so the rounding sequence of each element is the same.
#pragma once

#include "gsnn_fast/hd.h"

namespace gsnn_fast {

// One step of a batch partial: partial + x * y, two roundings. T is double on
// both backends, or a GCC vector of doubles on the CPU (lane-wise IEEE ops; the
// CPU build has -ffp-contract=off, so the multiply and the add stay separate).
template <typename T>
GSNN_HD T pair_step(T partial, T x, T y) {
  return partial + x * y;
}

// PARITY: the scalar form, spelled with the explicit rounding helpers.
template <>
GSNN_HD double pair_step<double>(double partial, double x, double y) {
  return add_rn(partial, mul_rn(x, y));
}

// Adds a finished batch partial to its running accumulator (once per call); a
// NaN sum is stored as nan_d(), so NaN inputs give the same bits on both
// backends (gsnn_fast/hd.h). For a GCC vector T the test and the select are
// lane-wise.
template <typename T>
GSNN_HD T pair_flush(T acc, T partial) {
  const T r = acc + partial;
  return r == r ? r : nan_d();
}

template <>
GSNN_HD double pair_flush<double>(double acc, double partial) {
  return canonical_nan(add_rn(acc, partial));
}

// First and second batch moments of one node: partials of sum_b u[b] and
// sum_b u[b]^2 over u[b * stride], b ascending, each from 0.0.
GSNN_HD void batch_moments(const double* u, int64_t stride, int64_t B, double* s1, double* s2) {
  double a = 0.0;
  double q = 0.0;
  // PARITY: ascending b, one rounding per op.
  for (int64_t b = 0; b < B; ++b) {
    const double v = u[b * stride];
    a = add_rn(a, v);
    q = pair_step(q, v, v);
  }
  *s1 = a;
  *s2 = q;
}

}  // namespace gsnn_fast
