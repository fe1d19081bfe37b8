// gsnn_fast/lanes.h -- the lane vocabulary of the per-element math.
//
// The math of an op that the CPU runs on SIMD vectors is written once, as a
// template on a lane type V (pair_corr.h, partial_corr.h):
//   * V::T is the value of one output element (ScalarLanes below: a double, what
//     a CUDA thread and the CPU's scalar tails use) or of V::kWidth elements side
//     by side (VecLanes in csrc/cpu/simd.h: GCC vectors, one element per lane);
//   * every arithmetic function of V (add, sub, mul, div, sqrt) is ONE correctly
//     rounded IEEE binary64 operation applied to each lane on its own (no fma),
//     and abs, the comparisons and the selects only move bits;
// so a lane computes exactly what ScalarLanes computes for its element, on either
// backend, for any SIMD width.
//
// GSNN_INLINE: always inlined (on the host, so that the CPU's ISA-specific callers
// get the lane code compiled for their ISA); GSNN_UNROLL unrolls the constant-trip
// loops over a register tile on the host so that its accumulators stay in registers.
#pragma once

#include "gsnn_fast/hd.h"

#if defined(__CUDACC__)
#define GSNN_INLINE __host__ __device__ __forceinline__
#define GSNN_UNROLL
#else
#define GSNN_INLINE inline __attribute__((always_inline))
#define GSNN_UNROLL _Pragma("GCC unroll 16")
#endif

namespace gsnn_fast {

// One element: the rounding helpers of hd.h.
struct ScalarLanes {
  using T = double;
  static constexpr int kWidth = 1;
  static GSNN_HD T load(const double* p) { return *p; }
  static GSNN_HD void store(double* p, T v) { *p = v; }
  static GSNN_HD T splat(double x) { return x; }
  static GSNN_HD T bcast(const double* p) { return *p; }
  static GSNN_HD T add(T a, T b) { return add_rn(a, b); }
  static GSNN_HD T sub(T a, T b) { return sub_rn(a, b); }
  static GSNN_HD T mul(T a, T b) { return mul_rn(a, b); }
  static GSNN_HD T div(T a, T b) { return div_rn(a, b); }
  // acc + a * b and acc - a * b, each with one rounding (fused multiply-add).
  static GSNN_HD T madd(T acc, T a, T b) { return fma_rn(a, b, acc); }
  static GSNN_HD T nmsub(T acc, T a, T b) { return fma_rn(-a, b, acc); }
  static GSNN_HD T sqrt(T a) { return sqrt_rn(a); }
  static GSNN_HD T abs(T a) { return abs_d(a); }
  // (a OP b) ? x : y (IEEE comparisons: false when a or b is NaN, except !=).
  static GSNN_HD T gt_sel(T a, T b, T x, T y) { return a > b ? x : y; }
  static GSNN_HD T lt_sel(T a, T b, T x, T y) { return a < b ? x : y; }
  static GSNN_HD T le_sel(T a, T b, T x, T y) { return a <= b ? x : y; }
  static GSNN_HD T ne_sel(T a, T b, T x, T y) { return a != b ? x : y; }
};

}  // namespace gsnn_fast
