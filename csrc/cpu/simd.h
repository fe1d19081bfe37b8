// The SIMD plumbing of the CPU kernels, in one place: GCC vector types, loads and
// stores, square root, broadcasts, the lane type VecLanes of the header templates
// (gsnn_fast/lanes.h), and the per-function ISA targets (the variants are picked at
// run time by csrc/cpu/isa.h).
//
// Each helper is the IEEE operation lane by lane: the kernels vectorise ACROSS
// output elements, so every element still sees the same sequence of rounded
// operations as the scalar code in csrc/include (and the CUDA kernels).
#pragma once

#include <cstdint>
#include <cstring>

#include "gsnn_fast/lanes.h"

// The helpers pass vectors by value; they are internal and always inlined into
// the target-specific functions, so GCC's notes about the x86 ABI of 256/512-bit
// vector arguments do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

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

typedef int64_t v8l __attribute__((vector_size(64)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef int64_t v2l __attribute__((vector_size(16)));

// The sparse linear loops' unaligned vectors: Simd<S>::V holds W = 64 / sizeof(S)
// independent accumulators (consecutive samples b), Lane8<S>::V 8 elements (the
// lanes of the value gradient's dot product, gsnn_fast/sparse_linear.h, and the
// rows of the 8 x 8 transposes); I: the integer vectors of their shuffles.
template <typename S>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64), aligned(4)));
  typedef int32_t I __attribute__((vector_size(64)));
  static constexpr int W = 16;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64), aligned(8)));
  typedef int64_t I __attribute__((vector_size(64)));
  static constexpr int W = 8;
};
template <typename S>
struct Lane8;
template <>
struct Lane8<float> {
  typedef float V __attribute__((vector_size(32), aligned(4)));
  typedef int32_t I __attribute__((vector_size(32)));
};
template <>
struct Lane8<double> {
  typedef double V __attribute__((vector_size(64), aligned(8)));
  typedef int64_t I __attribute__((vector_size(64)));
};

// Unaligned load / store of a vector of any element type (memcpy: no aliasing or
// alignment assumptions; one vector move once inlined).
template <class V, class S>
GSNN_INLINE V loadv(const S* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <class V, class S>
GSNN_INLINE void storev(S* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// v in every element of a Simd<S>::V.
template <typename S>
inline typename Simd<S>::V splat(S v) {
  using V = typename Simd<S>::V;
#if defined(__clang__)
  return v - V{};  // x - (+0) == x exactly, for every x
#else
  using I = typename Simd<S>::I;
  return __builtin_shuffle(V{v}, I{});  // GCC: one broadcast instruction
#endif
}

// Lane-wise correctly rounded square root (vsqrtpd / sqrtpd: IEEE, rounding to
// nearest). Inline asm so that these helpers need no target attribute; they are
// only ever inlined into functions of the matching ISA.
#if defined(__x86_64__)
GSNN_INLINE v8d vsqrt(v8d a) {
  v8d r;
  __asm__("vsqrtpd %1, %0" : "=v"(r) : "v"(a));
  return r;
}
GSNN_INLINE v4d vsqrt(v4d a) {
  v4d r;
  __asm__("vsqrtpd %1, %0" : "=x"(r) : "x"(a));
  return r;
}
GSNN_INLINE v2d vsqrt(v2d a) {
  v2d r;
  __asm__("sqrtpd %1, %0" : "=x"(r) : "x"(a));
  return r;
}
#else
template <class V>
GSNN_INLINE V vsqrt(V a) {
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
GSNN_INLINE V vbroadcast(double x);
#if defined(__x86_64__)
template <>
GSNN_INLINE v8d vbroadcast<v8d>(double x) {
  v8d v;
  __asm__("vbroadcastsd %1, %0" : "=v"(v) : "v"(x));
  return v;
}
template <>
GSNN_INLINE v4d vbroadcast<v4d>(double x) {
  v4d v;
  __asm__("vbroadcastsd %1, %0" : "=x"(v) : "x"(x));
  return v;
}
#else
template <>
GSNN_INLINE v8d vbroadcast<v8d>(double x) {
  return v8d{x, x, x, x, x, x, x, x};
}
template <>
GSNN_INLINE v4d vbroadcast<v4d>(double x) {
  return v4d{x, x, x, x};
}
#endif
template <>
GSNN_INLINE v2d vbroadcast<v2d>(double x) {
  return v2d{x, x};
}

template <class V>
GSNN_INLINE V vbroadcast_load(const double* p) {
  return vbroadcast<V>(*p);
}
#if defined(__x86_64__)
template <>
GSNN_INLINE v8d vbroadcast_load<v8d>(const double* p) {
  v8d v;
  __asm__("vbroadcastsd %1, %0" : "=v"(v) : "m"(*p));
  return v;
}
template <>
GSNN_INLINE v4d vbroadcast_load<v4d>(const double* p) {
  v4d v;
  __asm__("vbroadcastsd %1, %0" : "=x"(v) : "m"(*p));
  return v;
}
#endif

template <class V>
struct IntVec;
template <>
struct IntVec<v8d> {
  using type = v8l;
};
template <>
struct IntVec<v4d> {
  using type = v4l;
};
template <>
struct IntVec<v2d> {
  using type = v2l;
};

// The lane type of the header templates (gsnn_fast/lanes.h) on a GCC vector of
// doubles: each arithmetic operator is the IEEE operation lane by lane (the CPU
// translation units are built with -ffp-contract=off, so no product is fused into
// an add); abs clears the sign bits; the comparisons and selects move bits.
// acc + a * b (vmadd) and acc - a * b (vnmsub), each with one rounding: the FMA
// instructions on x86-64 (the AVX-512F and AVX2 + FMA variants are the only callers
// of the 8- and 4-lane forms), else lane by lane through fma_rn (std::fma, correctly
// rounded: the same bits).
#if defined(__x86_64__)
#define GSNN_FMA_ASM(name, insn, V, reg)                         \
  GSNN_INLINE V name(V acc, V a, V b) {                          \
    __asm__(insn " %2, %1, %0" : "+" reg(acc) : reg(a), reg(b)); \
    return acc;                                                  \
  }
GSNN_FMA_ASM(vmadd, "vfmadd231pd", v8d, "v")
GSNN_FMA_ASM(vnmsub, "vfnmadd231pd", v8d, "v")
GSNN_FMA_ASM(vmadd, "vfmadd231pd", v4d, "x")
GSNN_FMA_ASM(vnmsub, "vfnmadd231pd", v4d, "x")
#undef GSNN_FMA_ASM
#else
template <class V>
GSNN_INLINE V vmadd(V acc, V a, V b) {
  for (int l = 0; l < kLanes<V>; ++l) acc[l] = fma_rn(a[l], b[l], acc[l]);
  return acc;
}
template <class V>
GSNN_INLINE V vnmsub(V acc, V a, V b) {
  for (int l = 0; l < kLanes<V>; ++l) acc[l] = fma_rn(-a[l], b[l], acc[l]);
  return acc;
}
#endif
// The baseline's two lanes (SSE2 has no FMA instruction).
GSNN_INLINE v2d vmadd(v2d acc, v2d a, v2d b) {
  for (int l = 0; l < 2; ++l) acc[l] = fma_rn(a[l], b[l], acc[l]);
  return acc;
}
GSNN_INLINE v2d vnmsub(v2d acc, v2d a, v2d b) {
  for (int l = 0; l < 2; ++l) acc[l] = fma_rn(-a[l], b[l], acc[l]);
  return acc;
}

template <class V>
struct VecLanes {
  using T = V;
  using L = typename IntVec<V>::type;
  static constexpr int kWidth = kLanes<V>;
  static GSNN_INLINE T load(const double* p) { return loadv<V>(p); }
  static GSNN_INLINE void store(double* p, T v) { storev(p, v); }
  static GSNN_INLINE T splat(double x) { return vbroadcast<V>(x); }
  static GSNN_INLINE T bcast(const double* p) { return vbroadcast_load<V>(p); }
  static GSNN_INLINE T add(T a, T b) { return a + b; }
  static GSNN_INLINE T sub(T a, T b) { return a - b; }
  static GSNN_INLINE T mul(T a, T b) { return a * b; }
  static GSNN_INLINE T div(T a, T b) { return a / b; }
  static GSNN_INLINE T madd(T acc, T a, T b) { return vmadd(acc, a, b); }
  static GSNN_INLINE T nmsub(T acc, T a, T b) { return vnmsub(acc, a, b); }
  static GSNN_INLINE T sqrt(T a) { return vsqrt(a); }
  static GSNN_INLINE T abs(T a) {
    return reinterpret_cast<T>(reinterpret_cast<L>(a) & (L{} + INT64_MAX));
  }
  // One compare and one blend each. The empty asm keeps GCC 12 from merging a
  // chain of selects into one select on OR-ed masks, which it then scalarises
  // lane by lane in the AVX-512 functions. The same values either way.
  static GSNN_INLINE T gt_sel(T a, T b, T x, T y) { return opaque(a > b ? x : y); }
  static GSNN_INLINE T lt_sel(T a, T b, T x, T y) { return opaque(a < b ? x : y); }
  static GSNN_INLINE T le_sel(T a, T b, T x, T y) { return opaque(a <= b ? x : y); }
  static GSNN_INLINE T ne_sel(T a, T b, T x, T y) { return opaque(a != b ? x : y); }
  static GSNN_INLINE T opaque(T r) {
#if defined(__x86_64__)
    __asm__("" : "+v"(r));
#endif
    return r;
  }
};

}  // namespace gsnn_fast
