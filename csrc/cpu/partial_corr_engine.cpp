// The CPU engine of the partial-correlation systems (partial_corr_engine.h; math
// and order: gsnn_fast/partial_corr.h). One file over ~450 lines on purpose: the
// engine's templates (sources, factor, task kinds) are instantiated once per ISA
// variant and covariance source in this translation unit, and only here.
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
//   * ISA: the lane loops are compiled three times (AVX-512F, AVX2, baseline);
//     the op picks the variant (isa.h) and passes it in.
//   * small systems (|S| < kBigSet): a task owns kBlockTargets consecutive
//     targets of one pair; it factorises them (cholesky_packed, solve_alpha),
//     then walks the sources in chunks of rows: it gathers cov_xy[p][chunk, block]
//     row by row (contiguous runs of the block's columns, instead of one strided
//     pass per target), scores its targets on the chunk, and writes
//     out[p][chunk, block] row by row (scores, NaN columns and the copies of corr
//     for empty sets alike).
//   * big systems (|S| >= kBigSet, e.g. the hub of a converging graph): the
//     factor is built by panels of FNV * kWidth rows (factor_big: the panel rows'
//     entries left of the panel are one forward substitution vectorised across
//     those rows, and the sums of the panel's triangle over those columns are dots
//     of the same rows, also vectorised), then the sources are cut into chunks
//     that the threads share.
//   * pair_partial_corr (pair_partial_corr_fused): the big systems first, their
//     columns into a [P, n_big, N] buffer; then blocks of kFusedTargets targets,
//     every pair of a block together, chunk by chunk of sources in row-major tiles
//     (covariances gathered once, corr for the empty sets from them, the systems'
//     scores, the big columns), each element's pairs folded into an aggregate tile
//     in ascending order, one write of the output. pair_partial_corr_entries: one
//     solve per (pair, target) of the entries asked for, the per-source function of
//     the header for each entry.
//   * threads: at::parallel_for starts one worker per thread and the workers
//     take tasks from a shared counter (the task costs differ by orders of
//     magnitude). Every task writes its own outputs and nothing else (no
//     reduction across tasks), so the result does not depend on the thread count
//     or on which worker ran what.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "partial_corr_engine.h"
#include "simd.h"
#include "gsnn_fast/pair_corr.h"
#include "gsnn_fast/partial_corr.h"

namespace gsnn_fast {
namespace {

using Ctx = PartialCorrCtx;

// Sets of at least this many members are "big" (factor by panels, sources
// shared by the threads); the others are handled a block of targets at a time.
constexpr int64_t kBigSet = 64;
// Targets per small-system task (a row of the block: 4 cache lines of cov_xy,
// corr and out), and sources per chunk of a block of small systems.
constexpr int64_t kBlockTargets = 32;
constexpr int64_t kChunk = 128;
// Sources per chunk of a big system (at most kChunk): a multiple of every variant's
// big register tile (24, 12 and 6 sources).
constexpr int64_t kBigChunk = 120;
static_assert(kBigChunk <= kChunk, "a big chunk's sources use the chunk buffers");
// Targets per block of pair_partial_corr_fused: each source row of sum_xy is read
// in runs of this many columns (2 KB: fewer pages touched per byte than 32).
constexpr int64_t kFusedTargets = 256;
// Widest lane tile of all variants (NV * lanes): z scratch per set member.
constexpr int64_t kMaxTileLanes = 32;

// 64-byte aligned scratch of doubles (z: accessed through loadv / storev, i.e.
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
  // cov_xy(i, j0 .. j0 + nb) into out[0, nb): a copy, by lane groups of VL.
  template <class VL>
  GSNN_INLINE void xy_row(int64_t i, int64_t j0, int64_t nb, double* out) const {
    const double* a = xy.p + i * xy.N + j0;
    int64_t b = 0;
    for (; b + VL::kWidth <= nb; b += VL::kWidth) VL::store(out + b, VL::load(a + b));
    for (; b < nb; ++b) out[b] = a[b];
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
  GSNN_INLINE void xy_row(int64_t i, int64_t j0, int64_t nb, double* out) const {
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

// True when every source of [i, i + n) scores NaN whatever the solve gives: its
// variance counts as zero (NaN in var_x, which partial_corr_finish turns into the
// canonical NaN), it is the target, or it is in S (q: the first member of S >= i,
// advanced past the range).
GSNN_INLINE bool all_dead(const double* var_x, const int64_t* S, int64_t s, const int64_t*& q,
                          int64_t j, int64_t i, int64_t n) {
  bool dead = true;
  for (int64_t l = i; l < i + n; ++l) {
    while (q < S + s && *q < l) ++q;
    dead = dead && (var_x[l] != var_x[l] || l == j || (q < S + s && *q == l));
  }
  return dead;
}

// Scores of sources [i0, i1) of system (p, j) into res[0, i1 - i0); cxy_col[k] =
// cov_xy[p, i0 + k, j]. z: scratch for s * kMaxTileLanes doubles, 64-byte aligned.
// PARITY: every element by forward_subst + partial_corr_finish (the same
// sequence for the vector lanes and the scalar tail), then NaN for i == j and
// i in S (what partial_corr_source returns for them). big (the big systems, where
// a tile costs ~s^2 per source): a tile whose every source scores NaN anyway
// (all_dead) is not solved, and the rows of B of a tile are formed into bt (s *
// kMaxTileLanes doubles) before its solve, so that the solve reads them from the
// caches (in the covariances they are s scattered rows, each a miss the whole
// register tile would wait on): the same values.
template <class V, int MR, int NV, class Src>
GSNN_INLINE void score_sources(const Ctx& c, const Src& src, int64_t p, int64_t j,
                               const System& sys, int64_t i0, int64_t i1, const double* cxy_col,
                               double* z, double* res, double* bt = nullptr) {
  const bool skip_dead = bt != nullptr;
  using VL = VecLanes<V>;
  constexpr int W = VL::kWidth;
  static_assert(NV * W <= kMaxTileLanes, "z scratch too small for the tile");
  const int64_t N = c.N;
  const double* vx_p = c.var_x + p * N;
  const double tol = c.tol;
  int64_t i = i0;
  const int64_t* q = sys.S;
  for (; i + NV * W <= i1; i += NV * W) {
    if (skip_dead && all_dead(vx_p, sys.S, sys.s, q, j, i, NV * W)) {
      for (int64_t l = 0; l < NV * W; ++l) res[i - i0 + l] = nan_d();
      continue;
    }
    V zz[NV], ba[NV];
    for (int v = 0; v < NV; ++v) zz[v] = ba[v] = VL::splat(0.0);
    const auto rows = src.xx_rows(sys.S, i);
    if (bt) {
      for (int64_t a = 0; a < sys.s; ++a)
        for (int v = 0; v < NV; ++v)
          VL::store(bt + (a * NV + v) * W, rows.template load<VL>(a, v * W));
      forward_subst<VL, MR, NV, true>(sys.Lp, sys.s, PlainRows{bt, nullptr, NV * W}, sys.alpha, z,
                                      1, zz, ba);
    } else {
      forward_subst<VL, MR, NV, true>(sys.Lp, sys.s, rows, sys.alpha, z, 1, zz, ba);
    }
    for (int v = 0; v < NV; ++v) {
      const V r = partial_corr_finish<VL>(zz[v], ba[v], VL::load(vx_p + i + v * W),
                                          VL::load(cxy_col + (i - i0) + v * W), sys.vy, tol);
      storev(res + (i - i0) + v * W, r);
    }
  }
  for (; i + W <= i1; i += W) {
    V zz[1] = {VL::splat(0.0)}, ba[1] = {VL::splat(0.0)};
    forward_subst<VL, MR, 1, true>(sys.Lp, sys.s, src.xx_rows(sys.S, i), sys.alpha, z, 1, zz, ba);
    const V r = partial_corr_finish<VL>(zz[0], ba[0], VL::load(vx_p + i),
                                        VL::load(cxy_col + (i - i0)), sys.vy, tol);
    storev(res + (i - i0), r);
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

// Rows lc0 .. lc0+MC-1 of the panel sums T (PW x PW, row lc = column r0 + lc of L,
// lane l = row r0 + l): T[lc][l] -= Z[k][l] Z[k][lc] for k < r0 ascending, where
// Z[k][l] = L[r0 + l][k] (z, PW doubles per k). PARITY: the terms k < r0 of
// cholesky_offdiag (row r0 + l, column r0 + lc) and of cholesky_pivot (l == lc), in
// their order, each fused (nmsub; the products are commutative).
template <class V, int NV, int MC>
GSNN_INLINE void panel_sums(const double* z, int64_t r0, int64_t lc0, double* T) {
  using VL = VecLanes<V>;
  constexpr int W = VL::kWidth, PW = NV * W;
  V acc[MC][NV];
  GSNN_UNROLL
  for (int m = 0; m < MC; ++m) {
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) acc[m][v] = VL::load(T + (lc0 + m) * PW + v * W);
  }
  for (int64_t k = 0; k < r0; ++k) {
    const double* zk = z + k * PW;
    V zl[NV];
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) zl[v] = VL::load(zk + v * W);
    GSNN_UNROLL
    for (int m = 0; m < MC; ++m) {
      const V b = VL::bcast(zk + lc0 + m);
      GSNN_UNROLL
      for (int v = 0; v < NV; ++v) acc[m][v] = VL::nmsub(acc[m][v], b, zl[v]);
    }
  }
  GSNN_UNROLL
  for (int m = 0; m < MC; ++m) {
    GSNN_UNROLL
    for (int v = 0; v < NV; ++v) VL::store(T + (lc0 + m) * PW + v * W, acc[m][v]);
  }
}

// Factor of a big set: panels of PW = NV * kWidth rows r0 .. r0+PW-1. Entries left of
// the panel (columns c < r0) are the forward substitution L[r][c] = Z[c][r] of
// B[c][r] = A[r][c] with the rows of L above the panel, vectorised across the panel's
// rows (an MR x NV register tile); the panel's triangle then starts from the sums
// T of its entries' terms k < r0 (panel_sums: dots of the panel rows just computed,
// vectorised across the rows) and finishes each entry with its terms k >= r0
// (cholesky_pivot_from / cholesky_offdiag_from), column by column. PARITY: each entry
// is the sequence of cholesky_offdiag (a_rc minus L[r][k] L[c][k], k ascending, then
// / L[c][c]; the products are commutative), each pivot that of cholesky_pivot, and
// pivots are tested in column order, so the outcome equals cholesky_packed's. g, z:
// s * PW doubles.
template <class V, int MR, int NV, class M>
GSNN_INLINE bool factor_big(const M& xx, const int64_t* S, int64_t s, double ridge, double tol,
                            double* Lp, double* g, double* z) {
  using VL = VecLanes<V>;
  constexpr int PW = NV * VL::kWidth;
  constexpr int MC = 8;  // panel columns per panel_sums pass
  static_assert(PW <= kMaxTileLanes, "g and z hold kMaxTileLanes doubles per set member");
  alignas(64) double T[PW * PW];
  double a[PW];  // a_cc + ridge of the panel's columns
  for (int64_t r0 = 0; r0 < s; r0 += PW) {
    const int64_t w = std::min<int64_t>(PW, s - r0);
    for (int64_t lc = 0; lc < w; ++lc) {
      a[lc] = add_rn(xx(S[r0 + lc], S[r0 + lc]), ridge);
      for (int64_t l = 0; l < PW; ++l)
        T[lc * PW + l] = l == lc ? a[lc] : (l > lc && l < w ? xx(S[r0 + l], S[r0 + lc]) : 0.0);
    }
    if (r0 > 0) {
      for (int64_t l = 0; l < PW; ++l) {
        const int64_t r = S[r0 + std::min<int64_t>(l, w - 1)];
        for (int64_t k = 0; k < r0; ++k) g[k * PW + l] = l < w ? xx(r, S[k]) : 0.0;
      }
      forward_subst<VL, MR, NV, false>(Lp, r0, PlainRows{g, nullptr, PW}, nullptr, z, 1, nullptr,
                                       nullptr);
      for (int64_t l = 0; l < w; ++l) {
        double* lr = Lp + tri(r0 + l);
        for (int64_t k = 0; k < r0; ++k) lr[k] = z[k * PW + l];
      }
      int64_t lc = 0;
      for (; lc + MC <= w; lc += MC) panel_sums<V, NV, MC>(z, r0, lc, T);
      for (; lc < w; ++lc) panel_sums<V, NV, 1>(z, r0, lc, T);
    }
    for (int64_t lc = 0; lc < w; ++lc) {
      const int64_t col = r0 + lc;
      if (!cholesky_pivot_from(Lp, a[lc], T[lc * PW + lc], tol, col, r0)) return false;
      for (int64_t l = lc + 1; l < w; ++l)
        cholesky_offdiag_from(Lp, T[lc * PW + l], r0 + l, col, r0);
    }
  }
  return true;
}

// Per-worker scratch.
struct Scratch {
  AlignedBuf zbuf, gbuf, blk, bbuf;
  std::vector<double> Lblk, ablk;
  double* z = nullptr;   // smax * kMaxTileLanes
  double* g = nullptr;   // s_big_max * kMaxTileLanes
  double* bt = nullptr;  // s_big_max * kMaxTileLanes: a big system's tile of B
  double* xy = nullptr;
  double* res = nullptr;
  // pair_partial_corr_fused: per (pair, target of the block) states and systems,
  // and the four [chunk][target] tiles of a chunk (cov, val, acc, cnt)
  std::vector<int> state;
  std::vector<System> sys;
  std::vector<double> tile;
};

enum : int { kCopy = 0, kNan = 1, kScore = 2, kSkip = 3 };

// Factorises the small system (p, j) of c into Lp / alpha (room for tri(s) and s
// doubles) and returns its state: kCopy (empty set), kSkip (a big set, handled
// elsewhere), kScore, or kNan (the factorisation or vy failed).
template <class Src>
GSNN_INLINE int small_system(const Ctx& c, const Src& src, int64_t p, int64_t j, double* Lp,
                             double* alpha, System& sys) {
  const int64_t s = c.ptr[j + 1] - c.ptr[j];
  const int64_t* S = c.idx + c.ptr[j];
  if (s == 0) return kCopy;
  if (s >= kBigSet) return kSkip;
  bool ok = cholesky_packed_at(src.xx, S, s, c.ridge, c.tol, Lp);
  double vy = 0.0;
  if (ok) {
    const double vyj = c.var_y[p * c.N + j];
    vy = solve_alpha_at(Lp, src.xy, S, s, j, vyj, alpha);
    ok = residual_ok(vy, vyj, c.tol);
  }
  sys = System{S, s, Lp, alpha, vy};
  return ok ? kScore : kNan;
}

// cov_xy[p][i0 .. i0 + n, j0 .. j0 + nb] into xy[b * kChunk + k] (row by row:
// contiguous runs of the block's columns).
template <class V, class Src>
GSNN_INLINE void gather_xy(const Src& src, int64_t i0, int64_t n, int64_t j0, int64_t nb,
                           double* xy) {
  double row[kBlockTargets];
  for (int64_t k = 0; k < n; ++k) {
    src.template xy_row<VecLanes<V>>(i0 + k, j0, nb, row);
    for (int64_t b = 0; b < nb; ++b) xy[b * kChunk + k] = row[b];
  }
}

// A small-system task: targets [j0, j0 + nb) of pair p (big sets skipped: their
// columns are written by run_big_chunk). The sources go by chunks of rows; per
// chunk, cov_xy[p][chunk, block] is gathered and out[p][chunk, block] written
// row by row (nb contiguous doubles per row), the scores in between.
template <class V, int MR, int NV, class Src>
GSNN_INLINE void run_block(const Ctx& c, int64_t p, int64_t j0, Scratch& sc) {
  const int64_t N = c.N, NN = N * N;
  const int64_t nb = std::min<int64_t>(kBlockTargets, N - j0);
  const Src src = Src::of(c, p);
  const double* co_p = c.corr + p * NN;
  double* o_p = c.out + p * NN;
  int state[kBlockTargets];
  System sys[kBlockTargets];
  bool any_score = false;
  for (int64_t b = 0; b < nb; ++b) {
    state[b] = small_system(c, src, p, j0 + b, sc.Lblk.data() + b * tri(kBigSet),
                            sc.ablk.data() + b * kBigSet, sys[b]);
    any_score = any_score || state[b] == kScore;
  }
  const double nan = nan_d();
  double* xy = sc.xy;    // [nb][kChunk]: cov_xy[p][i0 + k, j0 + b] at b * kChunk + k
  double* res = sc.res;  // the scores, same layout
  for (int64_t i0 = 0; i0 < N; i0 += kChunk) {
    const int64_t i1 = std::min<int64_t>(N, i0 + kChunk), n = i1 - i0;
    if (any_score) {
      gather_xy<V>(src, i0, n, j0, nb, xy);
      for (int64_t b = 0; b < nb; ++b) {
        if (state[b] != kScore) continue;
        score_sources<V, MR, NV>(c, src, p, j0 + b, sys[b], i0, i1, xy + b * kChunk, sc.z,
                                 res + b * kChunk);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      double* orow = o_p + (i0 + k) * N + j0;
      const double* crow = co_p + (i0 + k) * N + j0;
      for (int64_t b = 0; b < nb; ++b) {
        if (state[b] == kScore) {
          orow[b] = res[b * kChunk + k];
        } else if (state[b] == kCopy) {
          orow[b] = crow[b];  // the bits of corr
        } else if (state[b] == kNan) {
          orow[b] = nan;
        }
      }
    }
  }
}

// A chunk [i0, i1) of the sources of a big system (p, j) (sys null: it failed):
// source i0 + k's score to oc[k * stride].
template <class V, int MR, int NV, class Src>
GSNN_INLINE void run_big_chunk(const Ctx& c, int64_t p, int64_t j, const System* sys, int64_t i0,
                               int64_t i1, double* oc, int64_t stride, Scratch& sc) {
  const int64_t n = i1 - i0;
  if (!sys) {
    const double nan = nan_d();
    for (int64_t k = 0; k < n; ++k) oc[k * stride] = nan;
    return;
  }
  const Src src = Src::of(c, p);
  for (int64_t k = 0; k < n; ++k) sc.xy[k] = src.xy(i0 + k, j);
  score_sources<V, MR, NV>(c, src, p, j, *sys, i0, i1, sc.xy, sc.z, sc.res, sc.bt);
  for (int64_t k = 0; k < n; ++k) oc[k * stride] = sc.res[k];
}

// How far ahead a fused block asks for its memory (rows of sum_xy, targets' rows of
// sum_xx).
constexpr int64_t kAhead = 4;
// Targets whose columns a fused block moves between its row-major tiles and the
// per-target buffers of the systems together (8 doubles: one cache line per row).
constexpr int64_t kGroup = 8;
// Ask the caches for the n doubles at p, and for the doubles [i0, i0 + n) of the rows
// S of sum_xx (xx_p) that system sys will read (prefetches: no value changes).
GSNN_INLINE void prefetch_run(const double* p, int64_t n) {
  const char* b = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * 8; off += 64) __builtin_prefetch(b + off);
}
GSNN_INLINE void prefetch_rows(const double* xx_p, int64_t N, const System& sys, int64_t i0,
                               int64_t n) {
  for (int64_t a = 0; a < sys.s; ++a) prefetch_run(xx_p + sys.S[a] * N + i0, n);
}

// Row operations of the fused block's tiles, over elements [b0, b1): whole lane
// groups of V, then ScalarLanes (the same sequence per element). No lambdas here:
// they would not inherit the ISA variant's target attribute.
template <class L>
GSNN_INLINE void corr_from_cov_at(const double* cr, double vx, double zx, const double* vy,
                                  const double* zy, double* vr, int64_t b) {
  L::store(vr + b, pair_corr_from_cov<L>(L::load(cr + b), L::splat(vx), L::splat(zx),
                                         L::load(vy + b), L::load(zy + b)));
}
template <class L>
GSNN_INLINE void agg_step_at(const double* vr, double* ar, double* cr, bool first, int32_t agg,
                             int64_t b) {
  auto a = first ? pair_agg_start<L>(agg) : L::load(ar + b);
  auto t = first ? L::splat(0.0) : L::load(cr + b);
  pair_agg_step<L>(a, t, L::load(vr + b), agg);
  L::store(ar + b, a);
  L::store(cr + b, t);
}
template <class L>
GSNN_INLINE void agg_result_at(const double* ar, const double* cr, double* orow, int32_t agg,
                               int64_t b) {
  L::store(orow + b, pair_agg_result<L>(L::load(ar + b), L::load(cr + b), agg));
}
// Each of them over [b0, b1): whole lane groups of V, then ScalarLanes.
template <class V>
GSNN_INLINE void corr_from_cov_row(const double* cr, double vx, double zx, const double* vy,
                                   const double* zy, double* vr, int64_t b0, int64_t b1) {
  int64_t b = b0;
  for (; b + VecLanes<V>::kWidth <= b1; b += VecLanes<V>::kWidth)
    corr_from_cov_at<VecLanes<V>>(cr, vx, zx, vy, zy, vr, b);
  for (; b < b1; ++b) corr_from_cov_at<ScalarLanes>(cr, vx, zx, vy, zy, vr, b);
}
template <class V>
GSNN_INLINE void agg_step_row(const double* vr, double* ar, double* cr, bool first, int32_t agg,
                              int64_t nb) {
  int64_t b = 0;
  for (; b + VecLanes<V>::kWidth <= nb; b += VecLanes<V>::kWidth)
    agg_step_at<VecLanes<V>>(vr, ar, cr, first, agg, b);
  for (; b < nb; ++b) agg_step_at<ScalarLanes>(vr, ar, cr, first, agg, b);
}
template <class V>
GSNN_INLINE void agg_result_row(const double* ar, const double* cr, double* orow, int32_t agg,
                                int64_t nb) {
  int64_t b = 0;
  for (; b + VecLanes<V>::kWidth <= nb; b += VecLanes<V>::kWidth)
    agg_result_at<VecLanes<V>>(ar, cr, orow, agg, b);
  for (; b < nb; ++b) agg_result_at<ScalarLanes>(ar, cr, orow, agg, b);
}

// A block of targets [j0, j0 + nb) of pair_partial_corr_fused, every pair: the
// small systems of the block are factorised first (all pairs); then, chunk by
// chunk of sources, each pair's scores of the chunk are formed in a row-major
// tile [source][target] (the covariances cov_xy[chunk, block] gathered row by
// row; from them corr for the runs of empty sets, lane groups across targets; the
// systems' scores, lane groups across sources, for each target with a set; NaN for
// failed systems; the big systems' columns from bigcol), written to per_pair (if
// kept) and folded into the chunk's aggregate tile, which goes to out once the last
// pair is in. big_of[j]: the index of target j among the big systems;
// bigcol[(p * n_big + b) * N + i]: their scores.
// PARITY: every value is that of the header functions (pair_corr_from_cov of the
// covariance pair_corr_value forms, forward_subst + partial_corr_finish), and each
// element folds the pairs in ascending order (pair_agg_step): the blocking only
// decides what runs together.
template <class V, int MR, int NV>
GSNN_INLINE void run_fused_block(const PairPartialCtx& f, const Ctx& c, int64_t j0,
                                 const double* bigcol, const int64_t* big_of, int64_t n_big,
                                 Scratch& sc) {
  const int64_t N = c.N, NN = N * N, P = c.P;
  const int64_t nb = std::min<int64_t>(kFusedTargets, N - j0);
  const int64_t per = kFusedTargets;  // systems per pair in the scratch
  int64_t nL = 0, na = 0;             // the small factors of one pair
  for (int64_t j = j0; j < j0 + nb; ++j) {
    const int64_t s = c.ptr[j + 1] - c.ptr[j];
    if (s < kBigSet) nL += tri(s), na += s;
  }
  sc.Lblk.resize(static_cast<size_t>(std::max<int64_t>(1, P * nL)));
  sc.ablk.resize(static_cast<size_t>(std::max<int64_t>(1, P * na)));
  sc.state.resize(static_cast<size_t>(P * per));
  sc.sys.resize(static_cast<size_t>(P * per));
  sc.tile.resize(static_cast<size_t>(4 * per * kChunk));
  double* Lnext = sc.Lblk.data();
  double* anext = sc.ablk.data();
  for (int64_t p = 0; p < P; ++p) {
    const SumSrc src = SumSrc::of(c, p);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t q = p * per + b;
      sc.state[q] = small_system(c, src, p, j0 + b, Lnext, anext, sc.sys[q]);
      if (sc.state[q] == kScore || sc.state[q] == kNan) {
        Lnext += tri(sc.sys[q].s);
        anext += sc.sys[q].s;
      }
    }
  }
  // row-major tiles [k][b], row stride nb
  double* cov = sc.tile.data();
  double* val = cov + per * kChunk;
  double* acc = val + per * kChunk;
  double* cnt = acc + per * kChunk;
  const PairCorrMoments& m = f.m;
  const double nan = nan_d();
  for (int64_t i0 = 0; i0 < N; i0 += kChunk) {
    const int64_t i1 = std::min<int64_t>(N, i0 + kChunk), n = i1 - i0;
    for (int64_t p = 0; p < P; ++p) {
      const SumSrc src = SumSrc::of(c, p);
      const int* st = sc.state.data() + p * per;
      const System* sy = sc.sys.data() + p * per;
      const bool any_cov =
          std::any_of(st, st + nb, [](int v) { return v == kScore || v == kCopy; });
      if (any_cov) {
        // the runs of sum_xy rows kAhead rows on requested meanwhile (each run is a
        // short stream of its own, which the hardware prefetchers pick up late)
        const double* sxy = src.xy.sum + j0;
        for (int64_t k = 0; k < std::min<int64_t>(kAhead, n); ++k)
          prefetch_run(sxy + (i0 + k) * N, nb);
        for (int64_t k = 0; k < n; ++k) {
          if (k + kAhead < n) prefetch_run(sxy + (i0 + k + kAhead) * N, nb);
          src.template xy_row<VecLanes<V>>(i0 + k, j0, nb, cov + k * nb);
        }
      }
      // corr over the runs of empty sets
      const double* vy = m.var_y + p * N + j0;
      const double* zy = m.zero_y + p * N + j0;
      for (int64_t b0 = 0; b0 < nb;) {
        if (st[b0] != kCopy) {
          ++b0;
          continue;
        }
        int64_t b1 = b0 + 1;
        while (b1 < nb && st[b1] == kCopy) ++b1;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t xi = p * N + i0 + k;
          const double vx = m.var_x[xi], zx = m.zero_x[xi];
          corr_from_cov_row<V>(cov + k * nb, vx, zx, vy, zy, val + k * nb, b0, b1);
        }
        b0 = b1;
      }
      // the other columns, by groups of kGroup: the group's covariance columns out of
      // the row-major tile (one cache line per source row), each target's scores (the
      // rows of B of the target kAhead columns on requested from memory meanwhile:
      // they are scattered rows of sum_xx), then the group's values back by rows
      const double* xx_p = src.xx.sum;
      double* xyT = sc.xy;    // [kGroup][kChunk]
      double* resT = sc.res;  // [kGroup][kChunk]
      for (int64_t b = 0; b < std::min<int64_t>(kAhead, nb); ++b)
        if (st[b] == kScore) prefetch_rows(xx_p, N, sy[b], i0, n);
      for (int64_t g0 = 0; g0 < nb; g0 += kGroup) {
        const int64_t g1 = std::min<int64_t>(nb, g0 + kGroup);
        if (std::none_of(st + g0, st + g1, [](int v) { return v != kCopy; })) continue;
        if (std::any_of(st + g0, st + g1, [](int v) { return v == kScore; }))
          for (int64_t k = 0; k < n; ++k)
            for (int64_t b = g0; b < g1; ++b) xyT[(b - g0) * kChunk + k] = cov[k * nb + b];
        for (int64_t b = g0; b < g1; ++b) {
          const int64_t j = j0 + b;
          double* rb = resT + (b - g0) * kChunk;
          if (b + kAhead < nb && st[b + kAhead] == kScore)
            prefetch_rows(xx_p, N, sy[b + kAhead], i0, n);
          if (st[b] == kScore) {
            score_sources<V, MR, NV>(c, src, p, j, sy[b], i0, i1, xyT + (b - g0) * kChunk, sc.z,
                                     rb);
          } else if (st[b] == kSkip) {
            std::memcpy(rb, bigcol + (p * n_big + big_of[j]) * N + i0, n * 8);
          } else if (st[b] == kNan) {
            std::fill(rb, rb + n, nan);
          }
        }
        for (int64_t k = 0; k < n; ++k)
          for (int64_t b = g0; b < g1; ++b)
            if (st[b] != kCopy) val[k * nb + b] = resT[(b - g0) * kChunk + k];
      }
      for (int64_t k = 0; k < n; ++k) {
        const double* vr = val + k * nb;
        if (f.per_pair) std::memcpy(f.per_pair + p * NN + (i0 + k) * N + j0, vr, nb * 8);
        // PARITY: pair p folds into each element's aggregate after pairs 0 .. p-1.
        agg_step_row<V>(vr, acc + k * nb, cnt + k * nb, p == 0, f.agg, nb);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      agg_result_row<V>(acc + k * nb, cnt + k * nb, f.out + (i0 + k) * N + j0, f.agg, nb);
    }
  }
}

// One ISA variant of the task kinds, for one covariance source: the blocks of small
// systems of partial_corr (block, covariances given: MatSrc) or of
// pair_partial_corr_fused (fused_block, from the sums: SumSrc); the other is null.
struct Kernels {
  void (*block)(const Ctx&, int64_t, int64_t, Scratch&);
  void (*big_chunk)(const Ctx&, int64_t, int64_t, const System*, int64_t, int64_t, double*, int64_t,
                    Scratch&);
  bool (*factor)(const Ctx&, int64_t, const int64_t*, int64_t, double*, double*, double*);
  void (*fused_block)(const PairPartialCtx&, const Ctx&, int64_t, const double*, const int64_t*,
                      int64_t, Scratch&);
};

#define GSNN_PC_KERNELS(name, target, V, MR, NV, FMR, FNV, Src)                                   \
  target void big_chunk_##name(const Ctx& c, int64_t p, int64_t j, const System* sys, int64_t i0, \
                               int64_t i1, double* oc, int64_t stride, Scratch& sc) {             \
    run_big_chunk<V, FMR, FNV, Src>(c, p, j, sys, i0, i1, oc, stride, sc);                        \
  }                                                                                               \
  target bool factor_##name(const Ctx& c, int64_t p, const int64_t* S, int64_t s, double* Lp,     \
                            double* g, double* z) {                                               \
    return factor_big<V, FMR, FNV>(Src::of(c, p).xx, S, s, c.ridge, c.tol, Lp, g, z);             \
  }

#define GSNN_PC_VARIANT(suffix, target, V, MR, NV, FMR, FNV)                                   \
  GSNN_PC_KERNELS(suffix##_mat, target, V, MR, NV, FMR, FNV, MatSrc)                           \
  GSNN_PC_KERNELS(suffix##_sum, target, V, MR, NV, FMR, FNV, SumSrc)                           \
  target void block_##suffix(const Ctx& c, int64_t p, int64_t j0, Scratch& sc) {               \
    run_block<V, MR, NV, MatSrc>(c, p, j0, sc);                                                \
  }                                                                                            \
  target void fused_block_##suffix(const PairPartialCtx& f, const Ctx& c, int64_t j0,          \
                                   const double* bigcol, const int64_t* big_of, int64_t n_big, \
                                   Scratch& sc) {                                              \
    run_fused_block<V, MR, NV>(f, c, j0, bigcol, big_of, n_big, sc);                           \
  }

// MR x NV: the register tile of the small systems' substitutions; FMR x FNV: that of
// the big systems, their sources' substitutions and their factors' panels (FNV lane
// groups: panels of FNV * lanes rows).
#if GSNN_HAVE_CLONES
// AVX-512F: 4 rows x 4 zmm lane groups (16 accumulators of 32 registers); big
// systems 8 x 3 (24: each loaded Z[k] serves 8 rows of L, which the long
// substitutions need).
GSNN_PC_VARIANT(avx512, GSNN_TARGET("avx512f"), v8d, 4, 4, 8, 3)
// AVX2: 3 x 3 ymm (9 accumulators of 16 registers); big systems 4 x 3.
GSNN_PC_VARIANT(avx2, GSNN_TARGET("avx2,fma"), v4d, 3, 3, 4, 3)
#endif
// Baseline (SSE2 on x86-64, 128-bit NEON on aarch64): 3 x 3 two-lane groups.
GSNN_PC_VARIANT(base, , v2d, 3, 3, 3, 3)

#define GSNN_PC_TABLE(suffix, sum)                                           \
  (sum ? Kernels{nullptr, &big_chunk_##suffix##_sum, &factor_##suffix##_sum, \
                 &fused_block_##suffix}                                      \
       : Kernels{&block_##suffix, &big_chunk_##suffix##_mat, &factor_##suffix##_mat, nullptr})

// The task kinds of one ISA variant and covariance source.
template <class Src>
Kernels kernels_for(Isa isa) {
  constexpr bool kSum = std::is_same<Src, SumSrc>::value;
#if GSNN_HAVE_CLONES
  if (isa == Isa::kAvx512f) return GSNN_PC_TABLE(avx512, kSum);
  if (isa == Isa::kAvx2) return GSNN_PC_TABLE(avx2, kSum);
#endif
  (void)isa;
  return GSNN_PC_TABLE(base, kSum);
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

// The big sets of c: big_j (targets with |S_j| >= kBigSet, ascending), and the
// largest of them.
struct BigSets {
  std::vector<int64_t> big_j;
  int64_t s_max = 0;
  explicit BigSets(const Ctx& c) {
    for (int64_t j = 0; j < c.N; ++j) {
      const int64_t s = c.ptr[j + 1] - c.ptr[j];
      if (s >= kBigSet) {
        big_j.push_back(j);
        s_max = std::max(s_max, s);
      }
    }
  }
};

// Per-worker scratch for the systems of c (sets of at most smax members).
inline Scratch make_scratch(int64_t smax, int64_t s_big_max) {
  Scratch sc;
  sc.z = sc.zbuf.get(std::max<int64_t>(1, smax) * kMaxTileLanes);
  sc.g = sc.gbuf.get(std::max<int64_t>(1, s_big_max) * kMaxTileLanes);
  sc.bt = sc.bbuf.get(std::max<int64_t>(1, s_big_max) * kMaxTileLanes);
  const int64_t nbuf = std::max(kFusedTargets, kBlockTargets) * kChunk;
  sc.xy = sc.blk.get(2 * nbuf);
  sc.res = sc.xy + nbuf;
  sc.Lblk.resize(static_cast<size_t>(kBlockTargets * tri(kBigSet)));
  sc.ablk.resize(static_cast<size_t>(kBlockTargets * kBigSet));
  return sc;
}

// The big systems (p, big_j[b]) of c, in (p, b) order: factorised in waves whose
// factors (tri(s) + s doubles each) fit in max(N^2 / 4, the largest one) doubles,
// then their sources scored by chunks that the threads share; the score of source
// i goes to col(p, b) + i * stride. The first wave's factor phase also runs the
// tasks extra(t, scratch), t < n_extra (work that does not need the big systems,
// run by the threads the factors leave idle).
template <class Src, class Col, class Extra>
void run_big_systems(const Ctx& c, const Kernels& k, const BigSets& big, int64_t smax,
                     const Col& col, int64_t stride, int64_t n_extra, const Extra& extra) {
  const int64_t N = c.N, P = c.P;
  const int64_t n_bj = static_cast<int64_t>(big.big_j.size());
  const int64_t n_big = P * n_bj;
  const int64_t n_chunks = (N + kBigChunk - 1) / kBigChunk;  // per big system
  const auto make = [&] { return make_scratch(smax, big.s_max); };
  const int64_t budget = std::max<int64_t>(N * N / 4, tri(big.s_max) + big.s_max);
  std::unique_ptr<double[]> fac;
  int64_t fac_size = 0;
  std::vector<System> wave;
  std::vector<char> wave_ok;
  for (int64_t b0 = 0; b0 == 0 || b0 < n_big;) {
    int64_t b1 = b0, need = 0;
    while (b1 < n_big) {
      const int64_t j = big.big_j[b1 % n_bj];
      const int64_t sz = tri(c.ptr[j + 1] - c.ptr[j]) + (c.ptr[j + 1] - c.ptr[j]);
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
      const int64_t j = big.big_j[(b0 + w) % n_bj];
      const int64_t s = c.ptr[j + 1] - c.ptr[j];
      wave[w] = System{c.idx + c.ptr[j], s, fac.get() + off, fac.get() + off + tri(s), 0.0};
      off += tri(s) + s;
    }
    run_tasks(nw + (b0 == 0 ? n_extra : 0), make, [&](int64_t t, Scratch& sc) {
      if (t >= nw) {
        extra(t - nw, sc);
        return;
      }
      const int64_t b = b0 + t, p = b / n_bj, j = big.big_j[b % n_bj];
      System& sys = wave[t];
      bool ok = k.factor(c, p, sys.S, sys.s, sys.Lp, sc.g, sc.z);
      if (ok) {
        const double vyj = c.var_y[p * N + j];
        sys.vy = solve_alpha_at(sys.Lp, Src::of(c, p).xy, sys.S, sys.s, j, vyj, sys.alpha);
        ok = residual_ok(sys.vy, vyj, c.tol);
      }
      wave_ok[t] = ok ? 1 : 0;
    });
    run_tasks(nw * n_chunks, make, [&](int64_t t, Scratch& sc) {
      const int64_t w = t / n_chunks, i0 = (t % n_chunks) * kBigChunk;
      const int64_t b = b0 + w, p = b / n_bj, j = big.big_j[b % n_bj];
      k.big_chunk(c, p, j, wave_ok[w] ? &wave[w] : nullptr, i0, std::min(N, i0 + kBigChunk),
                  col(p, b % n_bj) + i0 * stride, stride, sc);
    });
    b0 = b1;
    if (n_big == 0) break;
  }
}

// Every system of c (c.P pairs, sets of at most smax members) into c.out: the
// blocks of small systems run with the first wave of big factors.
template <class Src>
void run_partial_corr(const Ctx& c, int64_t smax, Isa isa) {
  const int64_t N = c.N, NN = N * N;
  const Kernels k = kernels_for<Src>(isa);
  const BigSets big(c);
  const int64_t blocks_per_pair = (N + kBlockTargets - 1) / kBlockTargets;
  run_big_systems<Src>(
      c, k, big, smax, [&](int64_t p, int64_t b) { return c.out + p * NN + big.big_j[b]; }, N,
      c.P * blocks_per_pair,
      [&](int64_t q, Scratch& sc) {
        k.block(c, q / blocks_per_pair, (q % blocks_per_pair) * kBlockTargets, sc);
      });
}

// The context of the engine's kernels for the sums and moments of f (all pairs).
inline Ctx sums_ctx(const PairPartialCtx& f) {
  return Ctx{nullptr, f.sum_xy, f.sum_xx, f.sys_var_x, f.sys_var_y, nullptr,    f.ptr, f.idx,
             f.P,     f.N,      f.ridge,  f.tol,       f.m.mean_x,  f.m.mean_y, f.n};
}

}  // namespace

void partial_corr_systems(const PartialCorrCtx& c, int64_t smax, Isa isa) {
  run_partial_corr<MatSrc>(c, smax, isa);
}

BigColumns pair_partial_corr_fused(const PairPartialCtx& f, int64_t smax, Isa isa) {
  const Ctx c = sums_ctx(f);
  const int64_t N = c.N;
  const Kernels k = kernels_for<SumSrc>(isa);
  const BigSets big(c);
  const int64_t n_bj = static_cast<int64_t>(big.big_j.size());
  // The big systems' columns first (their scores kept in bigcol, P x n_bj x N), with
  // the blocks that hold no big target; then the blocks that do.
  std::vector<int64_t> big_of(static_cast<size_t>(N), -1);
  for (int64_t b = 0; b < n_bj; ++b) big_of[big.big_j[b]] = b;
  std::vector<double> bigcol(static_cast<size_t>(c.P * n_bj * N));
  std::vector<int64_t> plain, holding;
  for (int64_t j0 = 0; j0 < N; j0 += kFusedTargets) {
    const int64_t j1 = std::min<int64_t>(N, j0 + kFusedTargets);
    const bool has_big =
        std::any_of(big_of.begin() + j0, big_of.begin() + j1, [](int64_t v) { return v >= 0; });
    (has_big ? holding : plain).push_back(j0);
  }
  const auto block = [&](int64_t j0, Scratch& sc) {
    k.fused_block(f, c, j0, bigcol.data(), big_of.data(), n_bj, sc);
  };
  run_big_systems<SumSrc>(
      c, k, big, smax, [&](int64_t p, int64_t b) { return bigcol.data() + (p * n_bj + b) * N; }, 1,
      static_cast<int64_t>(plain.size()), [&](int64_t t, Scratch& sc) { block(plain[t], sc); });
  run_tasks(
      static_cast<int64_t>(holding.size()), [&] { return make_scratch(smax, big.s_max); },
      [&](int64_t t, Scratch& sc) { block(holding[t], sc); });
  return BigColumns{big.big_j, std::move(bigcol)};
}

void pair_partial_corr_entries(const PairPartialCtx& f, int64_t smax, const int64_t* src,
                               const int64_t* dst, int64_t R, double* vals, Isa isa) {
  const Ctx c = sums_ctx(f);
  const int64_t N = c.N, NN = N * N, P = c.P;
  const Kernels k = kernels_for<SumSrc>(isa);
  // the entries grouped by target; one task per (pair, target), biggest sets first
  std::vector<int64_t> order(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return dst[a] < dst[b]; });
  std::vector<int64_t> start;  // group g: order[start[g] .. start[g + 1])
  for (int64_t r = 0; r < R; ++r)
    if (r == 0 || dst[order[r]] != dst[order[r - 1]]) start.push_back(r);
  const int64_t G = static_cast<int64_t>(start.size());
  start.push_back(R);
  const auto set_size = [&](int64_t g) {
    const int64_t j = dst[order[start[g]]];
    return c.ptr[j + 1] - c.ptr[j];
  };
  std::vector<int64_t> tasks(static_cast<size_t>(P * G));
  for (int64_t t = 0; t < P * G; ++t) tasks[t] = t;
  std::stable_sort(tasks.begin(), tasks.end(),
                   [&](int64_t a, int64_t b) { return set_size(a % G) > set_size(b % G); });
  const int64_t s_big_max = BigSets(c).s_max;
  run_tasks(
      P * G,
      [&] {
        Scratch sc = make_scratch(smax, s_big_max);
        sc.Lblk.resize(static_cast<size_t>(tri(smax) + 1));
        sc.ablk.resize(static_cast<size_t>(smax + 1));
        return sc;
      },
      [&](int64_t t, Scratch& sc) {
        const int64_t p = tasks[t] / G, g = tasks[t] % G;
        const int64_t j = dst[order[start[g]]];
        const int64_t s = c.ptr[j + 1] - c.ptr[j];
        const int64_t* S = c.idx + c.ptr[j];
        const SumSrc src_p = SumSrc::of(c, p);
        const PairCorrMoments& m = f.m;
        System sys{S, s, sc.Lblk.data(), sc.ablk.data(), 0.0};
        int state = kCopy;
        if (s >= kBigSet) {
          bool ok = k.factor(c, p, S, s, sys.Lp, sc.g, sc.z);
          if (ok) {
            const double vyj = c.var_y[p * N + j];
            sys.vy = solve_alpha_at(sys.Lp, src_p.xy, S, s, j, vyj, sys.alpha);
            ok = residual_ok(sys.vy, vyj, c.tol);
          }
          state = ok ? kScore : kNan;
        } else if (s > 0) {
          state = small_system(c, src_p, p, j, sys.Lp, sys.alpha, sys);
        }
        for (int64_t q = start[g]; q < start[g + 1]; ++q) {
          const int64_t r = order[q], i = src[r];
          double v = nan_d();
          if (state == kCopy) {
            const int64_t xi = p * N + i, yj = p * N + j;
            v = pair_corr_value<ScalarLanes>(f.sum_xy[p * NN + i * N + j], c.n, m.mean_x[xi],
                                             m.var_x[xi], m.zero_x[xi], m.mean_y[yj], m.var_y[yj],
                                             m.zero_y[yj]);
          } else if (state == kScore) {
            v = partial_corr_source_at(sys.Lp, sys.alpha, S, s, src_p.xx_rows(S, i), i, j,
                                       c.var_x[p * N + i], src_p.xy(i, j), sys.vy, c.tol, sc.z, 1);
          }
          vals[p * R + r] = v;
        }
      });
}

}  // namespace gsnn_fast
