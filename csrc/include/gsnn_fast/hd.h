// gsnn_fast/hd.h -- host/device qualifiers and correctly rounded arithmetic helpers.
//
// Every kernel's arithmetic is written once, as GSNN_HD inline functions in
// csrc/include/gsnn_fast/<op>.h, and called from both the CPU loop (csrc/cpu)
// and the CUDA kernel (csrc/cuda). The helpers below make each rounding step
// explicit so that the two backends produce the same bits:
//   * on the device: __dadd_rn / __dmul_rn / __ddiv_rn / __dsqrt_rn / __fma_rn
//     (never contracted, round-to-nearest-even);
//   * on the host: the plain IEEE operators, with the translation units built
//     with -ffp-contract=off -fno-fast-math so that a*b+c stays two roundings,
//     std::sqrt (correctly rounded) and std::fma where a fused op is wanted.
// Build flags (setup.py) back this up: nvcc --fmad=false --prec-div=true
// --prec-sqrt=true, g++ -ffp-contract=off -fno-fast-math.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define GSNN_HD __host__ __device__ __forceinline__
#else
#define GSNN_HD inline
#endif

namespace gsnn_fast {

// PARITY: every helper below is one correctly rounded IEEE binary64 operation.
GSNN_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

GSNN_HD double sub_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

GSNN_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

GSNN_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

GSNN_HD double sqrt_rn(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// The binary32 twins (the sparse linear layer sums float32 inputs in float32).
GSNN_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

GSNN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

#if !defined(__CUDACC__)
// Host SIMD: the same operations lane by lane on GCC vector types (the CPU loops
// vectorise across output elements; with -ffp-contract=off each lane is one IEEE
// operation). The scalar overloads above win for float and double.
template <class V>
inline V add_rn(V a, V b) {
  return a + b;
}
template <class V>
inline V mul_rn(V a, V b) {
  return a * b;
}
#endif

GSNN_HD double fma_rn(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Clears the sign bit (exact; NaN stays NaN). Branch-free on both sides.
GSNN_HD double abs_d(double a) {
#if defined(__CUDA_ARCH__)
  return fabs(a);
#else
  return std::fabs(a);
#endif
}

GSNN_HD bool is_nan_d(double a) { return a != a; }

GSNN_HD bool is_finite_d(double a) { return a == a && a - a == 0.0; }

// One NaN bit pattern for both backends. IEEE arithmetic agrees on WHEN a result
// is NaN, but not on its bits: x86 turns an invalid operation into the negative
// "default NaN" 0xfff8... and propagates an input NaN's payload, while NVIDIA GPUs
// return the canonical 0x7fff... for every NaN result. Kernels that must match bit
// for bit store nan_d() (the positive quiet NaN 0x7ff8000000000000) wherever their
// result is NaN.
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
