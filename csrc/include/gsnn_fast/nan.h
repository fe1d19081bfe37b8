// gsnn_fast/nan.h -- one NaN bit pattern for both backends.
//
// IEEE arithmetic agrees on WHEN a result is NaN, but not on its bits: x86 turns
// an invalid operation into the negative "default NaN" 0xfff8... and propagates
// an input NaN's payload, while NVIDIA GPUs return the canonical 0x7fff... for
// every NaN result. Kernels that must match bit for bit store nan_d() (the
// positive quiet NaN 0x7ff8000000000000) wherever their result is NaN.
#pragma once

#include <cstdint>
#include <cstring>

#include "gsnn_fast/hd.h"

namespace gsnn_fast {

GSNN_HD double nan_d() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7ff8000000000000LL);
#else
  const uint64_t u = 0x7ff8000000000000ULL;
  double d;
  std::memcpy(&d, &u, sizeof(d));
  return d;
#endif
}

// v, or nan_d() when v is NaN.
GSNN_HD double canonical_nan(double v) { return v == v ? v : nan_d(); }

}  // namespace gsnn_fast
