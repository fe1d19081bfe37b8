// gsnn_fast/segment_magnitude.h -- per-node magnitude of a channel segment.
//
// Op: gsnn_fast::segment_magnitude(Tensor x, Tensor ptr, int[] modes) -> Tensor
//   x     (L, B, C)  float32 or float64, contiguous: L layers of activations or
//                    gradients, B samples, C channels.
//   ptr   (N + 1,)   int64, ptr[0] = 0, non-decreasing, ptr[N] <= C: node n owns
//                    the channels [ptr[n], ptr[n+1]).
//   modes (K,)       1 <= K <= kMaxModes, each a MagMode below.
//   out   (K, L, B, N) float64: out[k, l, b, n] = mode_k over |x[l, b, c]|,
//                    c in [ptr[n], ptr[n+1]).
//
// Modes: kSumAbs = sum |v| (the l1 norm), kL2 = sqrt(sum v^2), kMaxAbs = max |v|,
// kMeanAbs = sum |v| / count. An empty segment gives 0 for every mode.
// NaN in a segment gives NaN (the canonical nan_d() bits) for every mode; +-Inf
// gives +Inf.
//
// Summation order: one output element (l, b, n) per CPU iteration / CUDA thread;
// the channels of the segment are read once, in ascending order, into float64
// accumulators (float32 inputs are widened exactly). All K modes come from the
// same three accumulators, so l1 and mean share their sum bit for bit.
#pragma once

#include "gsnn_fast/hd.h"

namespace gsnn_fast {

enum MagMode : int32_t { kSumAbs = 0, kL2 = 1, kMaxAbs = 2, kMeanAbs = 3 };

constexpr int kMaxModes = 8;

// Plain-old-data list of requested modes, passed by value to the launchers.
struct MagModes {
  int32_t k;
  int32_t mode[kMaxModes];
};

// Computes every requested mode of one segment and writes them with stride
// `out_stride` (the distance between consecutive k in the output).
template <typename scalar_t>
GSNN_HD void segment_magnitude_one(const scalar_t* row, int64_t begin, int64_t end,
                                   const MagModes& modes, double* out, int64_t out_stride) {
  double sum_abs = 0.0;
  double sum_sq = 0.0;
  double max_abs = 0.0;
  // PARITY: ascending channel order, float64 accumulators, one rounding per op.
  // The max is a branch-free select; NaN is restored after the loop (sum_abs of
  // absolute values is NaN exactly when the segment holds a NaN).
  for (int64_t c = begin; c < end; ++c) {
    const double v = abs_d(static_cast<double>(row[c]));
    sum_abs = add_rn(sum_abs, v);
    sum_sq = add_rn(sum_sq, mul_rn(v, v));
    max_abs = v > max_abs ? v : max_abs;
  }
  if (is_nan_d(sum_abs)) max_abs = sum_abs;
  const int64_t count = end - begin;
  for (int32_t k = 0; k < modes.k; ++k) {
    double r;
    switch (modes.mode[k]) {
      case kSumAbs:
        r = sum_abs;
        break;
      case kL2:
        r = sqrt_rn(sum_sq);
        break;
      case kMaxAbs:
        r = max_abs;
        break;
      default:  // kMeanAbs
        r = count > 0 ? div_rn(sum_abs, static_cast<double>(count)) : 0.0;
        break;
    }
    out[k * out_stride] = canonical_nan(r);  // PARITY: one NaN bit pattern
  }
}

}  // namespace gsnn_fast
