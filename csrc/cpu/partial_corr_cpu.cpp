// CPU backend of gsnn_fast::partial_corr (math and order: gsnn_fast/partial_corr.h).
//
// Every output element is computed by the header's functions (forward_subst and
// partial_corr_finish, the same templates the CUDA threads run through
// partial_corr_source) with its own sequence of rounded operations; only the
// loop structure is the CPU's:
//   * SIMD ACROSS SOURCES: for one system (p, j) the sources i are independent
//     and row a of B = cov_xx[p][S, :] is contiguous in i, so the lane templates
//     run on GCC vector types (VecLanes: kWidth consecutive sources per lane
//     group, each lane one source's scalar sequence). A register tile solves MR
//     rows of Z = L^-1 B for NV lane groups at once (each Z[k] vector is loaded
//     once for MR rows, each L[a][k] broadcast once for NV groups). The last
//     sources (fewer than a vector) take ScalarLanes: the same sequence.
//   * ISA: the lane loops are compiled three times (AVX-512F, AVX2, baseline)
//     through target attributes and picked at run time with
//     __builtin_cpu_supports, as in pair_stats_cpu.cpp; the environment variable
//     GSNN_FAST_PARTIAL_CORR_ISA=avx2|baseline caps the choice (the tests run
//     every variant: all give the same bits).
//   * small systems (|S| < kBigSet): a task owns kBlockTargets consecutive
//     targets of one pair; it factorises them (cholesky_packed, solve_alpha),
//     then walks the sources in chunks of rows: it gathers cov_xy[p][chunk, block]
//     row by row (contiguous runs of the block's columns, instead of one strided
//     pass per target), scores its targets on the chunk, and writes
//     out[p][chunk, block] row by row (scores, NaN columns and the copies of corr
//     for empty sets alike).
//   * big systems (|S| >= kBigSet, e.g. the hub of a converging graph): the
//     factor is built by panels of kWidth rows (factor_big: the panel rows'
//     entries left of the panel are one forward substitution vectorised across
//     those rows), then the sources are cut into chunks that the threads share.
//   * threads: at::parallel_for starts one worker per thread and the workers
//     take tasks from a shared counter (the task costs differ by orders of
//     magnitude). Every task writes its own outputs and nothing else (no
//     reduction across tasks), so the result does not depend on the thread count
//     or on which worker ran what.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../checks.h"
#include "huge_pages.h"
#include "simd.h"
#include "gsnn_fast/pair_corr.h"
#include "gsnn_fast/partial_corr.h"

namespace gsnn_fast {
namespace {

// Sets of at least this many members are "big" (factor by panels, sources
// shared by the threads); the others are handled a block of targets at a time.
constexpr int64_t kBigSet = 64;
// Targets per small-system task (a row of the block: 4 cache lines of cov_xy,
// corr and out), and sources per chunk of a small / big system.
constexpr int64_t kBlockTargets = 32;
constexpr int64_t kChunkSmall = 128;
constexpr int64_t kChunkBig = 128;
// Widest lane tile of all variants (NV * lanes): z scratch per set member.
constexpr int64_t kMaxTileLanes = 32;

// The lane type of the header's templates on a GCC vector: each operator is the
// IEEE operation lane by lane (the TU is built with -ffp-contract=off, so no
// product is fused into an add).
template <class V>
struct VecLanes {
  using T = V;
  static constexpr int kWidth = kLanes<V>;
  static GSNN_ALWAYS_INLINE T load(const double* p) { return vload<V>(p); }
  static GSNN_ALWAYS_INLINE void store(double* p, T v) { vstore<V>(p, v); }
  static GSNN_ALWAYS_INLINE T splat(double x) { return vbroadcast<V>(x); }
  static GSNN_ALWAYS_INLINE T bcast(const double* p) { return vbroadcast_load<V>(p); }
  static GSNN_ALWAYS_INLINE T add(T a, T b) { return a + b; }
  static GSNN_ALWAYS_INLINE T sub(T a, T b) { return a - b; }
  static GSNN_ALWAYS_INLINE T mul(T a, T b) { return a * b; }
  static GSNN_ALWAYS_INLINE T div(T a, T b) { return a / b; }
  static GSNN_ALWAYS_INLINE T sqrt(T a) { return vsqrt(a); }
  // One compare and one blend each. The empty asm keeps GCC 12 from merging a
  // chain of selects into one select on OR-ed masks, which it then scalarises
  // lane by lane in the AVX-512 functions. The same values either way.
  static GSNN_ALWAYS_INLINE T gt_sel(T a, T b, T x, T y) { return opaque(a > b ? x : y); }
  static GSNN_ALWAYS_INLINE T lt_sel(T a, T b, T x, T y) { return opaque(a < b ? x : y); }
  static GSNN_ALWAYS_INLINE T le_sel(T a, T b, T x, T y) { return opaque(a <= b ? x : y); }
  static GSNN_ALWAYS_INLINE T ne_sel(T a, T b, T x, T y) { return opaque(a != b ? x : y); }
  static GSNN_ALWAYS_INLINE T opaque(T r) {
#if defined(__x86_64__)
    __asm__("" : "+v"(r));
#endif
    return r;
  }
};

// 64-byte aligned scratch of doubles (z: accessed through vload / vstore, i.e.
// memcpy, like every vector access here).
struct alignas(64) Line {
  double d[8];
};
struct AlignedBuf {
  std::unique_ptr<Line[]> mem;
  double* get(int64_t n) {
    if (!mem) mem.reset(new Line[static_cast<size_t>(std::max<int64_t>(1, (n + 7) / 8))]);
    return mem[0].d;
  }
};

// Inputs of one call. cxy / cxx: the covariances [P, N, N] (MatSrc), or the sums
// sum_xy / sum_xx with the means and n (SumSrc: covariances formed when read).
struct Ctx {
  const double* corr;
  const double* cxy;
  const double* cxx;
  const double* var_x;
  const double* var_y;
  double* out;
  const int64_t* ptr;
  const int64_t* idx;
  int64_t P, N;
  double ridge, tol;
  const double* mean_x = nullptr;  // [P, N] (SumSrc)
  const double* mean_y = nullptr;  // [P, N] (SumSrc)
  double n = 0.0;                  // sample count (SumSrc)
};

// The covariances of pair p as the systems read them: entries xy(i, j), xx(r, c) and
// rows of B = cov_xx[S, i0 ...] (xx_rows). MatSrc reads precomputed matrices
// (partial_corr); SumSrc forms each value from the streaming sums when it is read
// (pair_partial_corr): cov = sum / n - mean_r * mean_c, one rounding per operation,
// the value a precomputed matrix would hold.
struct MatSrc {
  PlainMat xy, xx;
  static MatSrc of(const Ctx& c, int64_t p) {
    const int64_t NN = c.N * c.N;
    return MatSrc{PlainMat{c.cxy + p * NN, c.N}, PlainMat{c.cxx + p * NN, c.N}};
  }
  PlainRows xx_rows(const int64_t* S, int64_t i0) const { return PlainRows{xx.p + i0, S, xx.N}; }
  // cov_xy(i, j0 .. j0 + nb) into out[0, nb).
  template <class VL>
  GSNN_ALWAYS_INLINE void xy_row(int64_t i, int64_t j0, int64_t nb, double* out) const {
    std::memcpy(out, xy.p + i * xy.N + j0, static_cast<size_t>(nb) * sizeof(double));
  }
};

struct SumSrc {
  SumMat xy, xx;
  static SumSrc of(const Ctx& c, int64_t p) {
    const int64_t N = c.N, NN = N * N;
    const double* mx = c.mean_x + p * N;
    return SumSrc{SumMat{c.cxy + p * NN, mx, c.mean_y + p * N, c.n, N},
                  SumMat{c.cxx + p * NN, mx, mx, c.n, N}};
  }
  SumRows xx_rows(const int64_t* S, int64_t i0) const {
    return SumRows{xx.sum, xx.mr, xx.n, xx.N, S, i0};
  }
  // cov_xy(i, j0 .. j0 + nb) into out[0, nb): SumMat's operations, lane by lane.
  template <class VL>
  GSNN_ALWAYS_INLINE void xy_row(int64_t i, int64_t j0, int64_t nb, double* out) const {
    constexpr int64_t W = VL::kWidth;
    const double* a = xy.sum + i * xy.N + j0;
    const double* mc = xy.mc + j0;
    const typename VL::T vn = VL::splat(xy.n), vm = VL::splat(xy.mr[i]);
    int64_t b = 0;
    for (; b + W <= nb; b += W)
      VL::store(out + b, VL::sub(VL::div(VL::load(a + b), vn), VL::mul(vm, VL::load(mc + b))));
    for (; b < nb; ++b) out[b] = xy(i, j0 + b);
  }
};

// One system (p, j): its set, packed factor L, alpha and vy.
struct System {
  const int64_t* S;
  int64_t s;
  double* Lp;
  double* alpha;
  double vy;
};

// Scores of sources [i0, i1) of system (p, j) into res[0, i1 - i0); cxy_col[k] =
// cov_xy[p, i0 + k, j]. z: scratch for s * kMaxTileLanes doubles, 64-byte aligned.
// PARITY: every element by forward_subst + partial_corr_finish (the same
// sequence for the vector lanes and the scalar tail), then NaN for i == j and
// i in S (what partial_corr_source returns for them).
template <class V, int MR, int NV, class Src>
GSNN_ALWAYS_INLINE void score_sources(const Ctx& c, const Src& src, int64_t p, int64_t j,
                                      const System& sys, int64_t i0, int64_t i1,
                                      const double* cxy_col, double* z, double* res) {
  using VL = VecLanes<V>;
  constexpr int W = VL::kWidth;
  static_assert(NV * W <= kMaxTileLanes, "z scratch too small for the tile");
  const int64_t N = c.N;
  const double* vx_p = c.var_x + p * N;
  const double tol = c.tol;
  int64_t i = i0;
  for (; i + NV * W <= i1; i += NV * W) {
    V zz[NV], ba[NV];
    for (int v = 0; v < NV; ++v) zz[v] = ba[v] = VL::splat(0.0);
    forward_subst<VL, MR, NV, true>(sys.Lp, sys.s, src.xx_rows(sys.S, i), sys.alpha, z, 1, zz, ba);
    for (int v = 0; v < NV; ++v) {
      const V r = partial_corr_finish<VL>(zz[v], ba[v], VL::load(vx_p + i + v * W),
                                          VL::load(cxy_col + (i - i0) + v * W), sys.vy, tol);
      vstore<V>(res + (i - i0) + v * W, r);
    }
  }
  for (; i + W <= i1; i += W) {
    V zz[1] = {VL::splat(0.0)}, ba[1] = {VL::splat(0.0)};
    forward_subst<VL, MR, 1, true>(sys.Lp, sys.s, src.xx_rows(sys.S, i), sys.alpha, z, 1, zz, ba);
    const V r = partial_corr_finish<VL>(zz[0], ba[0], VL::load(vx_p + i),
                                        VL::load(cxy_col + (i - i0)), sys.vy, tol);
    vstore<V>(res + (i - i0), r);
  }
  for (; i < i1; ++i) {
    double zz = 0.0, ba = 0.0;
    forward_subst<ScalarLanes, 1, 1, true>(sys.Lp, sys.s, src.xx_rows(sys.S, i), sys.alpha, z, 1,
                                           &zz, &ba);
    res[i - i0] = partial_corr_finish<ScalarLanes>(zz, ba, vx_p[i], cxy_col[i - i0], sys.vy, tol);
  }
  const double nan = nan_d();
  if (j >= i0 && j < i1) res[j - i0] = nan;
  for (const int64_t* q = std::lower_bound(sys.S, sys.S + sys.s, i0); q < sys.S + sys.s && *q < i1;
       ++q)
    res[*q - i0] = nan;
}

// Factor of a big set: panels of W rows r0 .. r0+W-1. Entries left of the panel
// (columns c < r0) are the forward substitution L[r][c] = Z[c][r] of
// B[c][r] = A[r][c] with the rows of L above the panel, vectorised across the
// panel's rows; the panel's triangle (and its pivots) by cholesky_pivot /
// cholesky_offdiag. PARITY: each entry is the sequence of cholesky_offdiag
// (a_rc minus L[r][k] L[c][k], k ascending, then / L[c][c]; the products are
// commutative), each pivot that of cholesky_pivot, and pivots are tested in
// column order, so the outcome equals cholesky_packed's. g, z: s * W doubles.
template <class V, int MR, class M>
GSNN_ALWAYS_INLINE bool factor_big(const M& xx, const int64_t* S, int64_t s, double ridge,
                                   double tol, double* Lp, double* g, double* z) {
  using VL = VecLanes<V>;
  constexpr int W = VL::kWidth;
  static_assert(W <= 8, "g holds 8 doubles per set member");
  for (int64_t r0 = 0; r0 < s; r0 += W) {
    const int64_t w = std::min<int64_t>(W, s - r0);
    if (r0 > 0) {
      for (int64_t l = 0; l < W; ++l) {
        const int64_t r = S[r0 + std::min<int64_t>(l, w - 1)];
        for (int64_t k = 0; k < r0; ++k) g[k * W + l] = l < w ? xx(r, S[k]) : 0.0;
      }
      forward_subst<VL, MR, 1, false>(Lp, r0, PlainRows{g, nullptr, W}, nullptr, z, 1, nullptr,
                                      nullptr);
      for (int64_t l = 0; l < w; ++l) {
        double* lr = Lp + tri(r0 + l);
        for (int64_t k = 0; k < r0; ++k) lr[k] = z[k * W + l];
      }
    }
    for (int64_t col = r0; col < r0 + w; ++col) {
      if (!cholesky_pivot(Lp, xx(S[col], S[col]), ridge, tol, col)) return false;
      for (int64_t r = col + 1; r < r0 + w; ++r) cholesky_offdiag(Lp, xx(S[r], S[col]), r, col);
    }
  }
  return true;
}

// Per-worker scratch.
struct Scratch {
  AlignedBuf zbuf, gbuf, blk;
  std::vector<double> Lblk, ablk;
  double* z = nullptr;  // smax * kMaxTileLanes
  double* g = nullptr;  // s_big_max * 8
  double* xy = nullptr;
  double* res = nullptr;
};

enum : int { kCopy = 0, kNan = 1, kScore = 2, kSkip = 3 };

// A small-system task: targets [j0, j0 + nb) of pair p (big sets skipped: their
// columns are written by run_big_chunk). The sources go by chunks of rows; per
// chunk, cov_xy[p][chunk, block] is gathered and out[p][chunk, block] written
// row by row (nb contiguous doubles per row), the scores in between.
template <class V, int MR, int NV, class Src>
GSNN_ALWAYS_INLINE void run_block(const Ctx& c, int64_t p, int64_t j0, Scratch& sc) {
  const int64_t N = c.N, NN = N * N;
  const int64_t nb = std::min<int64_t>(kBlockTargets, N - j0);
  const Src src = Src::of(c, p);
  const double* co_p = c.corr + p * NN;
  double* o_p = c.out + p * NN;
  int state[kBlockTargets];
  System sys[kBlockTargets];
  double* Lnext = sc.Lblk.data();
  double* anext = sc.ablk.data();
  bool any_score = false;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j = j0 + b;
    const int64_t s = c.ptr[j + 1] - c.ptr[j];
    const int64_t* S = c.idx + c.ptr[j];
    if (s == 0) {
      state[b] = kCopy;
      continue;
    }
    if (s >= kBigSet) {
      state[b] = kSkip;
      continue;
    }
    double* Lp = Lnext;
    double* alpha = anext;
    Lnext += tri(s);
    anext += s;
    bool ok = cholesky_packed_at(src.xx, S, s, c.ridge, c.tol, Lp);
    double vy = 0.0;
    if (ok) {
      const double vyj = c.var_y[p * N + j];
      vy = solve_alpha_at(Lp, src.xy, S, s, j, vyj, alpha);
      ok = residual_ok(vy, vyj, c.tol);
    }
    state[b] = ok ? kScore : kNan;
    sys[b] = System{S, s, Lp, alpha, vy};
    any_score = any_score || ok;
  }
  const double nan = nan_d();
  double* xy = sc.xy;    // [nb][kChunkSmall]: cov_xy[p][i0 + k, j0 + b] at b * kChunkSmall + k
  double* res = sc.res;  // the scores, same layout
  for (int64_t i0 = 0; i0 < N; i0 += kChunkSmall) {
    const int64_t i1 = std::min<int64_t>(N, i0 + kChunkSmall), n = i1 - i0;
    if (any_score) {
      double row[kBlockTargets];
      for (int64_t k = 0; k < n; ++k) {
        src.template xy_row<VecLanes<V>>(i0 + k, j0, nb, row);
        for (int64_t b = 0; b < nb; ++b) xy[b * kChunkSmall + k] = row[b];
      }
      for (int64_t b = 0; b < nb; ++b) {
        if (state[b] != kScore) continue;
        score_sources<V, MR, NV>(c, src, p, j0 + b, sys[b], i0, i1, xy + b * kChunkSmall, sc.z,
                                 res + b * kChunkSmall);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      double* orow = o_p + (i0 + k) * N + j0;
      const double* crow = co_p + (i0 + k) * N + j0;
      for (int64_t b = 0; b < nb; ++b) {
        if (state[b] == kScore) {
          orow[b] = res[b * kChunkSmall + k];
        } else if (state[b] == kCopy) {
          orow[b] = crow[b];  // the bits of corr
        } else if (state[b] == kNan) {
          orow[b] = nan;
        }
      }
    }
  }
}

// A chunk [i0, i1) of the sources of a big system (p, j) (sys null: it failed).
template <class V, int MR, int NV, class Src>
GSNN_ALWAYS_INLINE void run_big_chunk(const Ctx& c, int64_t p, int64_t j, const System* sys,
                                      int64_t i0, int64_t i1, Scratch& sc) {
  const int64_t N = c.N, NN = N * N;
  double* oc = c.out + p * NN + i0 * N + j;
  const int64_t n = i1 - i0;
  if (!sys) {
    const double nan = nan_d();
    for (int64_t k = 0; k < n; ++k) oc[k * N] = nan;
    return;
  }
  const Src src = Src::of(c, p);
  for (int64_t k = 0; k < n; ++k) sc.xy[k] = src.xy(i0 + k, j);
  score_sources<V, MR, NV>(c, src, p, j, *sys, i0, i1, sc.xy, sc.z, sc.res);
  for (int64_t k = 0; k < n; ++k) oc[k * N] = sc.res[k];
}

// One row i of one pair's plain correlations for pair_partial_corr (the arguments
// of corr_row). PARITY: pair_corr_value lane by lane; the scalar tail runs the same
// sequence.
struct CorrRow {
  int64_t N;
  double n, mxi, vxi, zxi;
  const double* sxy;  // sum_xy[p] row i
  const double* my;   // mean_y[p]
  const double* vy;   // var_y[p] (as computed, not NaN-ed)
  const double* zy;   // zero_y[p] flags
  double* out;        // corr row i
};

template <class V>
GSNN_ALWAYS_INLINE void corr_row(const CorrRow& a) {
  using VL = VecLanes<V>;
  constexpr int64_t W = VL::kWidth;
  const V vn = VL::splat(a.n), vmx = VL::splat(a.mxi);
  const V vvx = VL::splat(a.vxi), vzx = VL::splat(a.zxi);
  int64_t j = 0;
  for (; j + W <= a.N; j += W) {
    VL::store(a.out + j,
              pair_corr_value<VL>(VL::load(a.sxy + j), vn, vmx, vvx, vzx, VL::load(a.my + j),
                                  VL::load(a.vy + j), VL::load(a.zy + j)));
  }
  for (; j < a.N; ++j) {
    a.out[j] = pair_corr_value<PairCorrScalar>(a.sxy[j], a.n, a.mxi, a.vxi, a.zxi, a.my[j], a.vy[j],
                                               a.zy[j]);
  }
}

// One ISA variant of the task kinds, for one covariance source.
struct Kernels {
  void (*block)(const Ctx&, int64_t, int64_t, Scratch&);
  void (*big_chunk)(const Ctx&, int64_t, int64_t, const System*, int64_t, int64_t, Scratch&);
  bool (*factor)(const Ctx&, int64_t, const int64_t*, int64_t, double*, double*, double*);
  void (*corr_row)(const CorrRow&);
  const char* name;
};

#define GSNN_PC_KERNELS(name, target, V, MR, NV, FMR, Src)                                        \
  target void block_##name(const Ctx& c, int64_t p, int64_t j0, Scratch& sc) {                    \
    run_block<V, MR, NV, Src>(c, p, j0, sc);                                                      \
  }                                                                                               \
  target void big_chunk_##name(const Ctx& c, int64_t p, int64_t j, const System* sys, int64_t i0, \
                               int64_t i1, Scratch& sc) {                                         \
    run_big_chunk<V, MR, NV, Src>(c, p, j, sys, i0, i1, sc);                                      \
  }                                                                                               \
  target bool factor_##name(const Ctx& c, int64_t p, const int64_t* S, int64_t s, double* Lp,     \
                            double* g, double* z) {                                               \
    return factor_big<V, FMR>(Src::of(c, p).xx, S, s, c.ridge, c.tol, Lp, g, z);                  \
  }

#define GSNN_PC_VARIANT(suffix, target, V, MR, NV, FMR)         \
  GSNN_PC_KERNELS(suffix##_mat, target, V, MR, NV, FMR, MatSrc) \
  GSNN_PC_KERNELS(suffix##_sum, target, V, MR, NV, FMR, SumSrc) \
  target void corr_row_##suffix(const CorrRow& a) { corr_row<V>(a); }

#if GSNN_HAVE_CLONES
// AVX-512F: 4 rows x 4 zmm lane groups (16 accumulators of 32 registers).
GSNN_PC_VARIANT(avx512, GSNN_TARGET("avx512f"), v8d, 4, 4, 8)
// AVX2: 3 x 3 ymm (9 accumulators of 16 registers).
GSNN_PC_VARIANT(avx2, GSNN_TARGET("avx2"), v4d, 3, 3, 8)
#endif
// Baseline (SSE2 on x86-64, 128-bit NEON on aarch64): 3 x 3 two-lane groups.
GSNN_PC_VARIANT(base, , v2d, 3, 3, 8)

#define GSNN_PC_TABLE(suffix, Src, tag, isa)                                        \
  Kernels {                                                                         \
    &block_##suffix##_##tag, &big_chunk_##suffix##_##tag, &factor_##suffix##_##tag, \
        &corr_row_##suffix, isa                                                     \
  }

template <class Src>
Kernels pick_kernels() {
  constexpr bool kSum = std::is_same<Src, SumSrc>::value;
  const char* env = std::getenv("GSNN_FAST_PARTIAL_CORR_ISA");
  const std::string cap = env ? env : "";
  TORCH_CHECK(cap.empty() || cap == "avx512f" || cap == "avx2" || cap == "baseline",
              "GSNN_FAST_PARTIAL_CORR_ISA must be avx512f, avx2 or baseline, got '", cap, "'");
#if GSNN_HAVE_CLONES
  __builtin_cpu_init();
  if (cap != "avx2" && cap != "baseline" && __builtin_cpu_supports("avx512f"))
    return kSum ? GSNN_PC_TABLE(avx512, Src, sum, "avx512f")
                : GSNN_PC_TABLE(avx512, Src, mat, "avx512f");
  if (cap != "baseline" && __builtin_cpu_supports("avx2"))
    return kSum ? GSNN_PC_TABLE(avx2, Src, sum, "avx2") : GSNN_PC_TABLE(avx2, Src, mat, "avx2");
#endif
  return kSum ? GSNN_PC_TABLE(base, Src, sum, "baseline")
              : GSNN_PC_TABLE(base, Src, mat, "baseline");
}

// Runs task(t, scratch) for t in [0, n) on the intra-op threads; each worker
// takes the next task from a shared counter. make() builds a worker's scratch.
template <class Make, class Task>
void run_tasks(int64_t n, const Make& make, const Task& task) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    if (begin >= end) return;
    Scratch sc = make();
    for (int64_t t = next.fetch_add(1); t < n; t = next.fetch_add(1)) task(t, sc);
  });
}

// Every system of c (c.P pairs, sets of at most smax members) into c.out.
template <class Src>
void run_partial_corr(const Ctx& c, int64_t smax) {
  const int64_t N = c.N;
  const int64_t P = c.P;
  const int64_t* pp = c.ptr;
  const int64_t* ix = c.idx;
  const double tol = c.tol;
  const Kernels k = pick_kernels<Src>();
  const int64_t NN = N * N;

  // The big systems (p, j), |S_j| >= kBigSet, in (p, j) order.
  std::vector<int64_t> big_j;
  int64_t s_big_max = 0;
  for (int64_t j = 0; j < N; ++j) {
    const int64_t s = pp[j + 1] - pp[j];
    if (s >= kBigSet) {
      big_j.push_back(j);
      s_big_max = std::max(s_big_max, s);
    }
  }
  const int64_t n_bj = static_cast<int64_t>(big_j.size());
  const int64_t n_big = P * n_bj;
  const int64_t blocks_per_pair = (N + kBlockTargets - 1) / kBlockTargets;
  const int64_t n_blocks = P * blocks_per_pair;
  const int64_t n_chunks = (N + kChunkBig - 1) / kChunkBig;  // per big system

  auto make_scratch = [&]() {
    Scratch sc;
    sc.z = sc.zbuf.get(std::max<int64_t>(1, smax) * kMaxTileLanes);
    sc.g = sc.gbuf.get(std::max<int64_t>(1, s_big_max) * 8);
    const int64_t nbuf = std::max(kBlockTargets * kChunkSmall, kChunkBig);
    sc.xy = sc.blk.get(2 * nbuf);
    sc.res = sc.xy + nbuf;
    sc.Lblk.resize(static_cast<size_t>(kBlockTargets * tri(kBigSet)));
    sc.ablk.resize(static_cast<size_t>(kBlockTargets * kBigSet));
    return sc;
  };

  // The big systems go in waves whose factors (tri(s) + s doubles each) fit in
  // max(N^2 / 8, the largest one) doubles. Phase 1 factorises a wave (the first
  // one together with all the small-system blocks), phase 2 scores its sources.
  const int64_t budget = std::max<int64_t>(NN / 8, tri(s_big_max) + s_big_max);
  std::unique_ptr<double[]> fac;
  int64_t fac_size = 0;
  std::vector<System> wave;
  std::vector<char> wave_ok;
  for (int64_t b0 = 0; b0 == 0 || b0 < n_big;) {
    int64_t b1 = b0, need = 0;
    while (b1 < n_big) {
      const int64_t j = big_j[b1 % n_bj];
      const int64_t sz = tri(pp[j + 1] - pp[j]) + (pp[j + 1] - pp[j]);
      if (b1 > b0 && need + sz > budget) break;
      need += sz;
      ++b1;
    }
    if (need > fac_size) {
      fac.reset(new double[static_cast<size_t>(need)]);
      fac_size = need;
    }
    const int64_t nw = b1 - b0;
    wave.assign(static_cast<size_t>(nw), System{});
    wave_ok.assign(static_cast<size_t>(nw), 0);
    for (int64_t w = 0, off = 0; w < nw; ++w) {
      const int64_t j = big_j[(b0 + w) % n_bj];
      const int64_t s = pp[j + 1] - pp[j];
      wave[w] = System{ix + pp[j], s, fac.get() + off, fac.get() + off + tri(s), 0.0};
      off += tri(s) + s;
    }
    const int64_t n1 = nw + (b0 == 0 ? n_blocks : 0);
    run_tasks(n1, make_scratch, [&](int64_t t, Scratch& sc) {
      if (t >= nw) {  // a block of small systems
        const int64_t q = t - nw;
        k.block(c, q / blocks_per_pair, (q % blocks_per_pair) * kBlockTargets, sc);
        return;
      }
      const int64_t b = b0 + t, p = b / n_bj, j = big_j[b % n_bj];
      System& sys = wave[t];
      bool ok = k.factor(c, p, sys.S, sys.s, sys.Lp, sc.g, sc.z);
      if (ok) {
        const double vyj = c.var_y[p * N + j];
        sys.vy = solve_alpha_at(sys.Lp, Src::of(c, p).xy, sys.S, sys.s, j, vyj, sys.alpha);
        ok = residual_ok(sys.vy, vyj, tol);
      }
      wave_ok[t] = ok ? 1 : 0;
    });
    run_tasks(nw * n_chunks, make_scratch, [&](int64_t t, Scratch& sc) {
      const int64_t w = t / n_chunks, i0 = (t % n_chunks) * kChunkBig;
      const int64_t b = b0 + w, p = b / n_bj, j = big_j[b % n_bj];
      k.big_chunk(c, p, j, wave_ok[w] ? &wave[w] : nullptr, i0, std::min(N, i0 + kChunkBig), sc);
    });
    b0 = b1;
    if (n_big == 0) break;
  }
}

}  // namespace

at::Tensor partial_corr_cpu(const at::Tensor& corr_in, const at::Tensor& cov_xy_in,
                            const at::Tensor& cov_xx_in, const at::Tensor& var_x_in,
                            const at::Tensor& var_y_in, const at::Tensor& ptr_in,
                            const at::Tensor& idx_in, double ridge, double tol) {
  check_partial_corr(corr_in, cov_xy_in, cov_xx_in, var_x_in, var_y_in, ptr_in, idx_in);
  const at::Tensor corr = corr_in.contiguous(), cov_xy = cov_xy_in.contiguous(),
                   cov_xx = cov_xx_in.contiguous(), var_x = var_x_in.contiguous(),
                   var_y = var_y_in.contiguous(), ptr = ptr_in.contiguous(),
                   idx = idx_in.contiguous();
  const int64_t P = corr.size(0), N = corr.size(1);
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t smax = check_partial_corr_csr(pp, N, ix, idx.size(0));
  at::Tensor out = at::empty({P, N, N}, corr.options());
  advise_huge_pages(out);
  if (P == 0 || N == 0) return out;
  const Ctx c{corr.data_ptr<double>(),
              cov_xy.data_ptr<double>(),
              cov_xx.data_ptr<double>(),
              var_x.data_ptr<double>(),
              var_y.data_ptr<double>(),
              out.data_ptr<double>(),
              pp,
              ix,
              P,
              N,
              ridge,
              tol};
  run_partial_corr<MatSrc>(c, smax);
  return out;
}

// gsnn_fast::pair_partial_corr: the partial correlation of every layer pair from the
// streaming sums, and its aggregation over pairs (MagnitudeEdgeInferer.score_matrices
// with score='partial' and the relative zero-variance rule, in one call).
//
// Per pair p, ascending: the node moments and the plain corr are those of
// pair_corr (pair_corr_node_moments, pair_corr_value); var_x / var_y NaN where they
// count as zero; the systems of partial_corr for that pair (run_partial_corr) read
// cov_xy = sum_xy / n - mean_x mean_y^T and cov_xx = sum_xx / n - mean_x mean_x^T
// entry by entry as they need them (SumSrc: div, mul, sub, one rounding each,
// torch's order; no [N, N] covariance is stored), and write per_pair[p] (or a
// scratch matrix); the pairs are folded into the aggregate by pair_agg_step. So the
// result is, bit for bit up to NaN payloads, what pair_corr + partial_corr + the
// pure-torch aggregation of the Python fallback give (the CUDA path; see
// gsnn_fast._ops.pair_partial_corr). corr is formed only when some target has an
// empty set, written straight into the output (the systems' pass then leaves those
// columns as they are), on the SIMD variant of the systems
// (GSNN_FAST_PARTIAL_CORR_ISA).
std::tuple<at::Tensor, at::Tensor> pair_partial_corr_cpu(
    const at::Tensor& sum_x_in, const at::Tensor& sum_y_in, const at::Tensor& sum_x2_in,
    const at::Tensor& sum_y2_in, const at::Tensor& sum_xy_in, const at::Tensor& sum_xx_in,
    const at::Tensor& ptr_in, const at::Tensor& idx_in, double n, double ridge, double tol,
    int64_t agg, bool per_pair) {
  check_pair_partial_corr(sum_x_in, sum_y_in, sum_x2_in, sum_y2_in, sum_xy_in, sum_xx_in, ptr_in,
                          idx_in, n, ridge, tol, agg);
  const int64_t P = sum_xy_in.size(0), N = sum_xy_in.size(1), NN = N * N;
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous(),
                   sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous(),
                   sum_xy = sum_xy_in.contiguous(), sum_xx = sum_xx_in.contiguous(),
                   ptr = ptr_in.contiguous(), idx = idx_in.contiguous();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t smax = check_partial_corr_csr(pp, N, ix, idx.size(0), "pair_partial_corr");
  const auto opts = sum_xy.options();
  at::Tensor pairs = per_pair ? at::empty({P, N, N}, opts) : at::empty({0}, opts);
  at::Tensor out = at::empty({N, N}, opts);
  advise_huge_pages(pairs);
  advise_huge_pages(out);
  if (P == 0 || N == 0) {
    out.fill_(nan_d());
    return {pairs, out};
  }
  const int32_t ag = static_cast<int32_t>(agg);
  const Kernels kern = pick_kernels<SumSrc>();

  // Node moments of every pair (as pair_corr), and the variances the systems take.
  at::Tensor node = at::empty({3 * P * 2 * N + 2 * N}, opts);
  const PairCorrMoments m = pair_corr_moments_view(node.data_ptr<double>(), P, N, N);
  double* vx = node.data_ptr<double>() + 6 * P * N;  // [N], NaN where var_x is zero
  double* vy = vx + N;
  {
    const double* sx = sum_x.data_ptr<double>();
    const double* sx2 = sum_x2.data_ptr<double>();
    const double* sy = sum_y.data_ptr<double>();
    const double* sy2 = sum_y2.data_ptr<double>();
    for (int64_t t = 0; t < P * N; ++t) {
      pair_corr_node_moments(sx[t], sx2[t], n, tol, kZeroVarRelative, m.mean_x + t, m.var_x + t,
                             m.zero_x + t);
      pair_corr_node_moments(sy[t], sy2[t], n, tol, kZeroVarRelative, m.mean_y + t, m.var_y + t,
                             m.zero_y + t);
    }
  }
  bool any_empty = false;
  for (int64_t j = 0; j < N && !any_empty; ++j) any_empty = pp[j + 1] == pp[j];
  // The pair's output when per_pair is false; the running count of the mean when the
  // pairs are folded one at a time.
  at::Tensor scratch = at::empty({per_pair ? 0 : (ag == kAggMean ? 2 : 1) * NN}, opts);
  advise_huge_pages(scratch);
  double* cnt = !per_pair && ag == kAggMean ? scratch.data_ptr<double>() + NN : nullptr;
  double* acc = out.data_ptr<double>();
  const double* sxy_all = sum_xy.data_ptr<double>();
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, N));
  for (int64_t p = 0; p < P; ++p) {
    double* dst = per_pair ? pairs.data_ptr<double>() + p * NN : scratch.data_ptr<double>();
    for (int64_t i = 0; i < N; ++i) {
      vx[i] = m.zero_x[p * N + i] != 0.0 ? nan_d() : m.var_x[p * N + i];
      vy[i] = m.zero_y[p * N + i] != 0.0 ? nan_d() : m.var_y[p * N + i];
    }
    if (any_empty) {
      // The corr rows go straight into the output (whole rows, vectorised): the
      // systems' pass copies the corr columns of empty sets onto themselves and
      // overwrites every other column.
      const double* sxy = sxy_all + p * NN;
      at::parallel_for(0, N, grain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t xi = p * N + i;
          kern.corr_row(CorrRow{N, n, m.mean_x[xi], m.var_x[xi], m.zero_x[xi], sxy + i * N,
                                m.mean_y + p * N, m.var_y + p * N, m.zero_y + p * N, dst + i * N});
        }
      });
    }
    // pair p's sums and means, as the one pair of the call
    const Ctx c{dst,
                sxy_all + p * NN,
                sum_xx.data_ptr<double>() + p * NN,
                vx,
                vy,
                dst,
                pp,
                ix,
                1,
                N,
                ridge,
                tol,
                m.mean_x + p * N,
                m.mean_y + p * N,
                n};
    run_partial_corr<SumSrc>(c, smax);
    if (per_pair) continue;  // folded below, all pairs at once
    // PARITY: the pairs fold into the aggregate in ascending order.
    at::parallel_for(0, NN, grain * N, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        double a = p == 0 ? pair_agg_start<PairCorrScalar>(ag) : acc[e];
        double k = p == 0 || !cnt ? 0.0 : cnt[e];
        pair_agg_step<PairCorrScalar>(a, k, dst[e], ag);
        if (p + 1 == P) {
          acc[e] = pair_agg_result<PairCorrScalar>(a, k, ag);
        } else {
          acc[e] = a;
          if (cnt) cnt[e] = k;
        }
      }
    });
  }
  if (per_pair) {
    // PARITY: the same fold, all pairs of an element at once.
    const double* all = pairs.data_ptr<double>();
    at::parallel_for(0, NN, grain * N, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        double a = pair_agg_start<PairCorrScalar>(ag), k = 0.0;
        for (int64_t p = 0; p < P; ++p) pair_agg_step<PairCorrScalar>(a, k, all[p * NN + e], ag);
        acc[e] = pair_agg_result<PairCorrScalar>(a, k, ag);
      }
    });
  }
  return {pairs, out};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) {
  m.impl("partial_corr", &partial_corr_cpu);
  m.impl("pair_partial_corr", &pair_partial_corr_cpu);
}

}  // namespace gsnn_fast
