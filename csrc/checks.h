// Argument checks shared by the CPU and CUDA glue of every op (torch-facing;
// not part of the math headers in csrc/include).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "gsnn_fast/segment_magnitude.h"

namespace gsnn_fast {

// Validates the arguments of segment_magnitude and packs the modes.
// x (L, B, C) float32/float64; ptr (N+1,) int64 on x's device.
inline MagModes check_segment_magnitude(const at::Tensor& x, const at::Tensor& ptr,
                                        c10::IntArrayRef modes) {
  TORCH_CHECK(x.dim() == 3, "segment_magnitude: x must be (L, B, C), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "segment_magnitude: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) >= 1,
              "segment_magnitude: ptr must be a 1-d int64 tensor of N+1 offsets, got ",
              ptr.sizes());
  TORCH_CHECK(ptr.scalar_type() == at::kLong, "segment_magnitude: ptr must be int64, got ",
              ptr.scalar_type());
  TORCH_CHECK(ptr.device() == x.device(), "segment_magnitude: ptr is on ", ptr.device(),
              " but x is on ", x.device());
  TORCH_CHECK(!modes.empty() && static_cast<int64_t>(modes.size()) <= kMaxModes,
              "segment_magnitude: modes must hold 1 to ", kMaxModes, " entries, got ",
              modes.size());
  MagModes m{};
  m.k = static_cast<int32_t>(modes.size());
  for (size_t i = 0; i < modes.size(); ++i) {
    TORCH_CHECK(modes[i] >= kSumAbs && modes[i] <= kMeanAbs, "segment_magnitude: unknown mode ",
                modes[i], " (0 = sum|v|, 1 = l2, 2 = max|v|, 3 = mean|v|)");
    m.mode[i] = static_cast<int32_t>(modes[i]);
  }
  return m;
}

}  // namespace gsnn_fast
