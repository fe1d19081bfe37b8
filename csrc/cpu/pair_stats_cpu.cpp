// CPU backend of gsnn_fast::pair_stats_update (order and math: gsnn_fast/pair_stats.h).
//
// sum_xy[p] and sum_xx[p] are (N x B)(B x N) products. The kernel is blocked like
// a GEMM, but every output element still sums its own batch partial in ascending
// b (pair_step), so the bits do not depend on the blocking, the SIMD width or
// the number of threads:
//   * x_p and y_{p+1} are packed into panels: MR consecutive rows (i) or NR
//     consecutive columns (j) of every sample b stored together, so the b loop
//     walks contiguous memory; panels are zero-padded past N.
//   * a micro-tile of MR x NR outputs keeps MR x NV vector accumulators in
//     registers (NR = NV * lanes); for each b it broadcasts the MR x values and
//     runs pair_step on NR lanes at once -- SIMD ACROSS output elements, never
//     across b. Then pair_flush adds the finished partials to the accumulator.
//   * sum_xx: only micro-tiles touching the i <= k half are computed; each
//     element (i, k) with i < k is added to both (i, k) and (k, i).
//   * ISA: the tile loops are compiled three times (AVX-512F, AVX2, baseline)
//     and picked at run time (isa.h). Every variant is a lane-wise
//     transcription of the same IEEE operations.
//   * threads: at::parallel_for over column panels (no reduction across
//     threads); panel jp is paired with panel nJ-1-jp so the triangular sum_xx
//     work is balanced.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "../checks.h"
#include "isa.h"
#include "simd.h"
#include "gsnn_fast/pair_stats.h"

namespace gsnn_fast {
namespace {

// Prefetches (for writing) rows [i0, i0 + nrows) x columns [j0, j0 + ncols) of
// the N x N accumulator C: the next micro-tile's outputs, whose rows are N apart
// and so invisible to the hardware prefetchers. No effect on the values.
GSNN_INLINE void prefetch_block(const double* C, int64_t N, int64_t i0, int64_t nrows, int64_t j0,
                                int64_t ncols) {
  for (int64_t r = 0; r < nrows; ++r) {
    const double* row = C + (i0 + r) * N + j0;
    for (int64_t c = 0; c < ncols; c += 8) __builtin_prefetch(row + c, 1, 3);
    __builtin_prefetch(row + ncols - 1, 1, 3);
  }
}

// Packs rows [0, N) of u (B x N, row stride N) into panels of `width` columns:
// out[(q * B + b) * width + c] = u[b, q * width + c], zero past N.
void pack_panels(const double* u, int64_t B, int64_t N, int64_t width, int64_t q, double* out) {
  const int64_t c0 = q * width;
  const int64_t w = std::min(width, N - c0);
  double* o = out + q * B * width;
  for (int64_t b = 0; b < B; ++b) {
    const double* src = u + b * N + c0;
    double* dst = o + b * width;
    for (int64_t c = 0; c < w; ++c) dst[c] = src[c];
    for (int64_t c = w; c < width; ++c) dst[c] = 0.0;
  }
}

// The micro-kernel: acc[r][v] lane l = partial of output (i0 + r, j0 + v * lanes + l).
template <class V, int MR, int NV>
GSNN_INLINE void micro_tile(const double* __restrict__ xp, const double* __restrict__ yp, int64_t B,
                            V (&acc)[MR][NV]) {
  constexpr int W = kLanes<V>;
  constexpr int NR = NV * W;
  // The constant-trip loops are unrolled so that acc lives in registers.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = vbroadcast<V>(0.0);
  // PARITY: b ascending; each lane is one output element's pair_step chain.
  for (int64_t b = 0; b < B; ++b) {
    V y[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) y[v] = loadv<V>(yp + b * NR + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V xb = vbroadcast_load<V>(xp + b * MR + r);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = pair_step(acc[r][v], xb, y[v]);
    }
  }
}

// sum_xy[p] for all rows of column panel jp: C[i, j] += partial (pair_flush).
template <class V, int MR, int NV>
GSNN_INLINE void xy_column(const double* xr, const double* yc, int64_t B, int64_t N, int64_t jp,
                           double* C) {
  constexpr int W = kLanes<V>;
  constexpr int NR = NV * W;
  const int64_t j0 = jp * NR;
  const int64_t nj = std::min<int64_t>(NR, N - j0);
  const double* yp = yc + jp * B * NR;
  const int64_t nI = (N + MR - 1) / MR;
  for (int64_t ip = 0; ip < nI; ++ip) {
    const int64_t i0 = ip * MR;
    const int64_t ni = std::min<int64_t>(MR, N - i0);
    if (ip + 1 < nI) prefetch_block(C, N, i0 + MR, std::min<int64_t>(MR, N - i0 - MR), j0, nj);
    V acc[MR][NV];
    micro_tile<V, MR, NV>(xr + ip * B * MR, yp, B, acc);
    if (ni == MR && nj == NR) {
      for (int r = 0; r < MR; ++r) {
        double* row = C + (i0 + r) * N + j0;
        for (int v = 0; v < NV; ++v)
          storev(row + v * W, pair_flush(loadv<V>(row + v * W), acc[r][v]));
      }
    } else {
      alignas(64) double t[MR][NR];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) storev(&t[r][v * W], acc[r][v]);
      for (int64_t r = 0; r < ni; ++r)
        for (int64_t c = 0; c < nj; ++c)
          C[(i0 + r) * N + j0 + c] = pair_flush(C[(i0 + r) * N + j0 + c], t[r][c]);
    }
  }
}

// sum_xx[p] for column panel jp (k in [k0, k0 + NR)), rows i <= k only; each
// (i, k) with i < k is added to both (i, k) and (k, i), (i, i) once.
template <class V, int MR, int NV>
GSNN_INLINE void xx_column(const double* xr, const double* xc, int64_t B, int64_t N, int64_t kp,
                           double* C) {
  constexpr int W = kLanes<V>;
  constexpr int NR = NV * W;
  const int64_t k0 = kp * NR;
  const int64_t nk = std::min<int64_t>(NR, N - k0);
  const double* kpan = xc + kp * B * NR;
  const int64_t i_end = std::min<int64_t>(N, k0 + nk);  // rows i < k0 + nk
  const int64_t nI = (i_end + MR - 1) / MR;
  for (int64_t ip = 0; ip < nI; ++ip) {
    const int64_t i0 = ip * MR;
    const int64_t ni = std::min<int64_t>(MR, N - i0);
    if (ip + 1 < nI) {
      const int64_t n1 = std::min<int64_t>(MR, N - i0 - MR);
      prefetch_block(C, N, i0 + MR, n1, k0, nk);  // direct half of the next tile
      prefetch_block(C, N, k0, nk, i0 + MR, n1);  // its mirror
    }
    V acc[MR][NV];
    micro_tile<V, MR, NV>(xr + ip * B * MR, kpan, B, acc);
    alignas(64) double t[MR][NR];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) storev(&t[r][v * W], acc[r][v]);
    if (ni == MR && nk == NR && i0 + MR - 1 < k0) {
      // strictly above the diagonal: every element goes to both halves.
      for (int r = 0; r < MR; ++r) {
        double* row = C + (i0 + r) * N + k0;
        for (int v = 0; v < NV; ++v)
          storev(row + v * W, pair_flush(loadv<V>(row + v * W), acc[r][v]));
      }
      for (int c = 0; c < NR; ++c) {
        double* row = C + (k0 + c) * N + i0;
        for (int r = 0; r < MR; ++r) row[r] = pair_flush(row[r], t[r][c]);
      }
    } else {
      for (int64_t r = 0; r < ni; ++r) {
        const int64_t i = i0 + r;
        for (int64_t c = 0; c < nk; ++c) {
          const int64_t k = k0 + c;
          if (k < i) continue;
          C[i * N + k] = pair_flush(C[i * N + k], t[r][c]);
          if (k > i) C[k * N + i] = pair_flush(C[k * N + i], t[r][c]);
        }
      }
    }
  }
}

// One ISA variant: tile shape and the two column routines.
struct TileKernel {
  int mr;
  int nr;
  void (*xy)(const double*, const double*, int64_t, int64_t, int64_t, double*);
  void (*xx)(const double*, const double*, int64_t, int64_t, int64_t, double*);
  const char* name;
};

#if GSNN_HAVE_CLONES
// AVX-512F: 8 x 3 zmm accumulators (24 of 32 registers), 8 x 24 tiles.
GSNN_TARGET("avx512f")
void xy_avx512(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xy_column<v8d, 8, 3>(a, b, B, N, jp, C);
}
GSNN_TARGET("avx512f")
void xx_avx512(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xx_column<v8d, 8, 3>(a, b, B, N, jp, C);
}
// AVX2: 6 x 2 ymm accumulators (12 of 16 registers), 6 x 8 tiles.
GSNN_TARGET("avx2")
void xy_avx2(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xy_column<v4d, 6, 2>(a, b, B, N, jp, C);
}
GSNN_TARGET("avx2")
void xx_avx2(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xx_column<v4d, 6, 2>(a, b, B, N, jp, C);
}
#endif

// Baseline (SSE2 on x86-64, 128-bit NEON on aarch64): 4 x 2 accumulators, 4 x 4 tiles.
void xy_base(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xy_column<v2d, 4, 2>(a, b, B, N, jp, C);
}
void xx_base(const double* a, const double* b, int64_t B, int64_t N, int64_t jp, double* C) {
  xx_column<v2d, 4, 2>(a, b, B, N, jp, C);
}

// The variant of isa.h's choice.
TileKernel pick_kernel() {
  const Isa isa = pick_isa("pair_stats_update");
#if GSNN_HAVE_CLONES
  if (isa == Isa::kAvx512f) return {8, 24, &xy_avx512, &xx_avx512, "avx512f"};
  if (isa == Isa::kAvx2) return {6, 8, &xy_avx2, &xx_avx2, "avx2"};
#endif
  (void)isa;
  return {4, 4, &xy_base, &xx_base, "baseline"};
}

}  // namespace

void pair_stats_update_cpu(const at::Tensor& xmag_in, const at::Tensor& ymag_in,
                           const at::Tensor& sum_x, const at::Tensor& sum_y,
                           const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                           const at::Tensor& sum_xy, const c10::optional<at::Tensor>& sum_xx) {
  check_pair_stats_update(xmag_in, ymag_in, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx);
  const at::Tensor xmag = xmag_in.contiguous();
  const at::Tensor ymag = ymag_in.contiguous();
  const int64_t L = xmag.size(0), B = xmag.size(1), N = xmag.size(2), P = L - 1;
  if (P == 0 || N == 0) return;
  const bool xx = sum_xx.has_value();
  const double* x = xmag.data_ptr<double>();
  const double* y = ymag.data_ptr<double>();
  double* sx = sum_x.data_ptr<double>();
  double* sy = sum_y.data_ptr<double>();
  double* sx2 = sum_x2.data_ptr<double>();
  double* sy2 = sum_y2.data_ptr<double>();
  double* sxy = sum_xy.data_ptr<double>();
  double* sxx = xx ? sum_xx->data_ptr<double>() : nullptr;
  const int64_t BN = B * N;

  // First and second moments: one (pair, node) per iteration.
  at::parallel_for(0, P * N, 256, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / N, i = t % N;
      double s1, s2;
      batch_moments(x + p * BN + i, N, B, &s1, &s2);
      sx[t] = pair_flush(sx[t], s1);
      sx2[t] = pair_flush(sx2[t], s2);
      batch_moments(y + (p + 1) * BN + i, N, B, &s1, &s2);
      sy[t] = pair_flush(sy[t], s1);
      sy2[t] = pair_flush(sy2[t], s2);
    }
  });

  // Packed panels of every pair: x_p by rows (MR), y_{p+1} and x_p by columns (NR).
  const TileKernel k = pick_kernel();
  const int64_t MR = k.mr, NR = k.nr;
  const int64_t nI = (N + MR - 1) / MR, nJ = (N + NR - 1) / NR;
  const int64_t xr_size = nI * B * MR, yc_size = nJ * B * NR;
  at::Tensor buf = at::empty({P * (xr_size + yc_size * (xx ? 2 : 1))}, xmag.options());
  double* xr = buf.data_ptr<double>();
  double* yc = xr + P * xr_size;
  double* xc = yc + P * yc_size;
  const int64_t n_col = xx ? 2 * nJ : nJ;
  at::parallel_for(0, P * (nI + n_col), 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / (nI + n_col), q = t % (nI + n_col);
      if (q < nI) {
        pack_panels(x + p * BN, B, N, MR, q, xr + p * xr_size);
      } else if (q < nI + nJ) {
        pack_panels(y + (p + 1) * BN, B, N, NR, q - nI, yc + p * yc_size);
      } else {
        pack_panels(x + p * BN, B, N, NR, q - nI - nJ, xc + p * yc_size);
      }
    }
  });

  // Products: task (p, t) owns column panels t and nJ-1-t of sum_xy[p] and
  // sum_xx[p]; no two tasks write the same element.
  const int64_t half = (nJ + 1) / 2;
  const int64_t NN = N * N;
  at::parallel_for(0, P * half, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / half, a = t % half, b = nJ - 1 - a;
      for (const int64_t jp : {a, b}) {
        k.xy(xr + p * xr_size, yc + p * yc_size, B, N, jp, sxy + p * NN);
        if (xx) k.xx(xr + p * xr_size, xc + p * yc_size, B, N, jp, sxx + p * NN);
        if (b == a) break;  // odd nJ: the middle panel once
      }
    }
  });
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("pair_stats_update", &pair_stats_update_cpu); }

}  // namespace gsnn_fast
