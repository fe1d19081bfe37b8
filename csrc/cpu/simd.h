// GCC vector types and lane helpers shared by the SIMD CPU kernels
// (pair_stats_cpu.cpp, pair_corr_cpu.cpp, partial_corr_cpu.cpp).
//
// Each helper is the IEEE operation lane by lane: the kernels vectorise ACROSS
// output elements, so every element still sees the same sequence of rounded
// operations as the scalar code in csrc/include (and the CUDA kernels).
#pragma once

#include <cstdint>
#include <cstring>

#include "gsnn_fast/hd.h"

// The helpers pass vectors by value; they are internal and always inlined into
// the target-specific functions, so GCC's notes about the x86 ABI of 256/512-bit
// vector arguments do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define GSNN_ALWAYS_INLINE inline __attribute__((always_inline))

// Per-function ISA clones (runtime dispatch with __builtin_cpu_supports); never
// -march=native for the whole extension.
#if defined(__x86_64__) || defined(__i386__)
#define GSNN_TARGET(isa) __attribute__((target(isa)))
#define GSNN_HAVE_CLONES 1
#else
#define GSNN_TARGET(isa)
#define GSNN_HAVE_CLONES 0
#endif

namespace gsnn_fast {

typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v2d __attribute__((vector_size(16)));

template <class V>
constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(double));

template <class V>
GSNN_ALWAYS_INLINE V vload(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <class V>
GSNN_ALWAYS_INLINE void vstore(double* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// Lane-wise correctly rounded square root (vsqrtpd / sqrtpd: IEEE, rounding to
// nearest). Inline asm so that these helpers need no target attribute; they are
// only ever inlined into functions of the matching ISA.
#if defined(__x86_64__)
GSNN_ALWAYS_INLINE v8d vsqrt(v8d a) {
  v8d r;
  __asm__("vsqrtpd %1, %0" : "=v"(r) : "v"(a));
  return r;
}
GSNN_ALWAYS_INLINE v4d vsqrt(v4d a) {
  v4d r;
  __asm__("vsqrtpd %1, %0" : "=x"(r) : "x"(a));
  return r;
}
GSNN_ALWAYS_INLINE v2d vsqrt(v2d a) {
  v2d r;
  __asm__("sqrtpd %1, %0" : "=x"(r) : "x"(a));
  return r;
}
#else
template <class V>
GSNN_ALWAYS_INLINE V vsqrt(V a) {
  for (int l = 0; l < kLanes<V>; ++l) a[l] = sqrt_rn(a[l]);
  return a;
}
#endif

// Broadcast of a value (vbroadcast) or of a double in memory (vbroadcast_load). On
// x86 an opaque vbroadcastsd: left to itself, GCC 12 builds v8d{x, ..., x} with one
// masked broadcast per lane in target functions, and merges the MR broadcasts of a
// micro-tile into one vector load plus permutes that compete with the arithmetic for
// the vector ports. The same value either way.
template <class V>
GSNN_ALWAYS_INLINE V vbroadcast(double x);
#if defined(__x86_64__)
template <>
GSNN_ALWAYS_INLINE v8d vbroadcast<v8d>(double x) {
  v8d v;
  __asm__("vbroadcastsd %1, %0" : "=v"(v) : "v"(x));
  return v;
}
template <>
GSNN_ALWAYS_INLINE v4d vbroadcast<v4d>(double x) {
  v4d v;
  __asm__("vbroadcastsd %1, %0" : "=x"(v) : "x"(x));
  return v;
}
#else
template <>
GSNN_ALWAYS_INLINE v8d vbroadcast<v8d>(double x) {
  return v8d{x, x, x, x, x, x, x, x};
}
template <>
GSNN_ALWAYS_INLINE v4d vbroadcast<v4d>(double x) {
  return v4d{x, x, x, x};
}
#endif
template <>
GSNN_ALWAYS_INLINE v2d vbroadcast<v2d>(double x) {
  return v2d{x, x};
}

template <class V>
GSNN_ALWAYS_INLINE V vbroadcast_load(const double* p) {
  return vbroadcast<V>(*p);
}
#if defined(__x86_64__)
template <>
GSNN_ALWAYS_INLINE v8d vbroadcast_load<v8d>(const double* p) {
  v8d v;
  __asm__("vbroadcastsd %1, %0" : "=v"(v) : "m"(*p));
  return v;
}
template <>
GSNN_ALWAYS_INLINE v4d vbroadcast_load<v4d>(const double* p) {
  v4d v;
  __asm__("vbroadcastsd %1, %0" : "=x"(v) : "m"(*p));
  return v;
}
#endif

}  // namespace gsnn_fast
