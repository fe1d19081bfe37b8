// CPU backend of gsnn_fast::sparse_linear and sparse_linear_backward
// (math and summation order: gsnn_fast/sparse_linear.h).
//
// Layout: the batch is the inner-most dimension of every inner loop (xT, gT are
// (rows, B) contiguous), so each CSR slot adds one contiguous B-vector and the
// compiler vectorises across b; every output element still sums its terms in the
// fixed order of the header. The hot loops are compiled for AVX-512F, AVX2 and the
// baseline ISA and picked at run time (isa.h); with -ffp-contract=off every ISA
// gives the same bits. Over ~450 lines on purpose: the forward and the fused
// backward share their tiles, transposes and scratch, all instantiated per ISA here.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../checks.h"
#include "isa.h"
#include "simd.h"
#include "gsnn_fast/sparse_linear.h"

namespace gsnn_fast {
namespace {

// The SIMD loops below accumulate in the input type, as the header's acc_t says.
static_assert(std::is_same<sl::acc_t<float>, float>::value &&
                  std::is_same<sl::acc_t<double>, double>::value,
              "CPU SIMD loops assume acc_t<S> == S");

constexpr int64_t kColBlock = 16;  // output columns per transposed write-back

// ---- transposes (pure data movement, bit-exact) -------------------------------
// Elements I... of the concatenation (a, b) of two 8-element vectors.
template <typename S, int... I>
inline typename Lane8<S>::V shuf(typename Lane8<S>::V a, typename Lane8<S>::V b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, I...);
#else
  return __builtin_shuffle(a, b, typename Lane8<S>::I{I...});
#endif
}

// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block, in registers.
template <typename S>
inline void transpose8x8(const S* src, int64_t lds, S* dst, int64_t ldd) {
  using V = typename Lane8<S>::V;
  V r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * lds, sizeof(V));
  for (int i = 0; i < 8; i += 2) {
    t[i] = shuf<S, 0, 8, 1, 9, 4, 12, 5, 13>(r[i], r[i + 1]);
    t[i + 1] = shuf<S, 2, 10, 3, 11, 6, 14, 7, 15>(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = shuf<S, 0, 1, 8, 9, 4, 5, 12, 13>(t[i], t[i + 2]);
    u[i + 1] = shuf<S, 2, 3, 10, 11, 6, 7, 14, 15>(t[i], t[i + 2]);
    u[i + 2] = shuf<S, 0, 1, 8, 9, 4, 5, 12, 13>(t[i + 1], t[i + 3]);
    u[i + 3] = shuf<S, 2, 3, 10, 11, 6, 7, 14, 15>(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    const V a = shuf<S, 0, 1, 2, 3, 8, 9, 10, 11>(u[i], u[i + 4]);
    const V b = shuf<S, 4, 5, 6, 7, 12, 13, 14, 15>(u[i], u[i + 4]);
    std::memcpy(dst + i * ldd, &a, sizeof(V));
    std::memcpy(dst + (i + 4) * ldd, &b, sizeof(V));
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < R, c in [c0, c1).
template <typename S>
inline void transpose_cols(const S* src, int64_t R, int64_t lds, S* dst, int64_t ldd, int64_t c0,
                           int64_t c1) {
  int64_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    int64_t r = 0;
    for (; r + 8 <= R; r += 8) transpose8x8(src + r * lds + c, lds, dst + c * ldd + r, ldd);
    for (; r < R; ++r) {
      for (int k = 0; k < 8; ++k) dst[(c + k) * ldd + r] = src[r * lds + c + k];
    }
  }
  for (; c < c1; ++c) {
    for (int64_t r = 0; r < R; ++r) dst[c * ldd + r] = src[r * lds + c];
  }
}

// Software prefetch of the row chunk a later slot will read (rows are gathered at
// random, which the hardware prefetchers do not follow). No effect on results.
constexpr int64_t kAhead = 4;
template <typename S>
inline void prefetch_row(const S* xT, int64_t B, const int64_t* idx, int64_t s, int64_t s_lim,
                         int64_t b0, int64_t n) {
  if (s < s_lim) {
    const char* p = reinterpret_cast<const char*>(xT + idx[s] * B + b0);
    for (int64_t off = 0; off < n * static_cast<int64_t>(sizeof(S)); off += 64) {
      __builtin_prefetch(p + off);
    }
  }
}

template <typename S>
using SV = typename Simd<S>::V;  // W = 64 / sizeof(S) samples
template <typename S>
using LV = typename Lane8<S>::V;  // the 8 lanes of lane_dot
constexpr int64_t kTile = 64;     // samples per full tile

// Tile of NV * W samples b0 .. of one output column: NV vector accumulators, slots in
// ascending order, + bias, into dst[b0 ..].
// PARITY: element t of the tile is spmm_one(..., b0 + t, ...) term by term.
template <int NV, typename S>
inline void spmm_tile(const S* xT, int64_t B, const int64_t* idx, const int64_t* perm,
                      const S* values, int64_t s0, int64_t s1, int64_t b0, bool has_bias, S bias,
                      S* dst, int64_t s_lim) {
  constexpr int W = Simd<S>::W;
  SV<S> acc[NV];
  for (int j = 0; j < NV; ++j) acc[j] = splat<S>(S(0));
  for (int64_t s = s0; s < s1; ++s) {
    prefetch_row(xT, B, idx, s + kAhead, s_lim, b0, NV * W);
    const SV<S> v = splat<S>(values[perm[s]]);
    const S* xr = xT + idx[s] * B + b0;
    for (int j = 0; j < NV; ++j) acc[j] = sl::term(acc[j], v, loadv<SV<S>>(xr + W * j));
  }
  if (has_bias) {
    const SV<S> bb = splat<S>(bias);
    for (int j = 0; j < NV; ++j) acc[j] = add_rn(acc[j], bb);
  }
  for (int j = 0; j < NV; ++j) storev(dst + b0 + W * j, acc[j]);
}

// out[b, c] for the columns c in [c0, c1) of a CSR and every b. Each column is
// computed into a (kColBlock, B) buffer, then written back transposed.
template <typename S>
inline void spmm_cols(const S* xT, int64_t B, const int64_t* ptr, const int64_t* idx,
                      const int64_t* perm, const S* values, const S* bias, S* out, int64_t ldo,
                      int64_t c0, int64_t c1, S* buf) {
  constexpr int W = Simd<S>::W;
  const bool hb = bias != nullptr;
  const int64_t s_lim = ptr[c1];  // prefetch only slots of this chunk
  for (int64_t cb = c0; cb < c1; cb += kColBlock) {
    const int64_t ce = cb + kColBlock < c1 ? cb + kColBlock : c1;
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t s0 = ptr[c], s1 = ptr[c + 1];
      const S bv = hb ? bias[c] : S(0);
      S* dst = buf + (c - cb) * B;
      int64_t b = 0;
      for (; b + kTile <= B; b += kTile)
        spmm_tile<kTile / W>(xT, B, idx, perm, values, s0, s1, b, hb, bv, dst, s_lim);
      for (; b + W <= B; b += W)
        spmm_tile<1>(xT, B, idx, perm, values, s0, s1, b, hb, bv, dst, s_lim);
      for (; b < B; ++b) dst[b] = sl::spmm_one(xT, B, idx, perm, values, s0, s1, b, hb, bv);
    }
    // out[b, cb + k] = buf[k, b]
    transpose_cols(buf, ce - cb, B, out + cb, ldo, 0, B);
  }
}

// Fused backward tile of NV * W samples b0 ..: grad_x[., r] (into dst) and the lane
// sums of grad_values for the slots [s0, s1) of input r (lane[s - s0], carried
// across tiles). Both read each gT row once. PARITY: grad_x elements as in
// spmm_tile; lane j of slot s adds the chunks of 8 samples in ascending order, as
// in lane_dot.
template <int NV, typename S>
inline void backward_tile(const S* xT, const S* gT, int64_t B, const int64_t* cols,
                          const int64_t* perm, const S* values, int64_t r, int64_t s0, int64_t s1,
                          int64_t b0, S* lane, S* dst, int64_t s_lim) {
  constexpr int W = Simd<S>::W;
  constexpr int NL = NV * W / sl::kLanes;  // chunks of 8 samples in the tile
  SV<S> acc[NV];
  LV<S> xl[NL];
  for (int j = 0; j < NV; ++j) acc[j] = splat<S>(S(0));
  for (int k = 0; k < NL; ++k) xl[k] = loadv<LV<S>>(xT + r * B + b0 + sl::kLanes * k);
  for (int64_t s = s0; s < s1; ++s) {
    prefetch_row(gT, B, cols, s + kAhead, s_lim, b0, NV * W);
    const SV<S> v = splat<S>(values[perm[s]]);
    const S* gr = gT + cols[s] * B + b0;
    for (int j = 0; j < NV; ++j) acc[j] = sl::term(acc[j], v, loadv<SV<S>>(gr + W * j));
    LV<S> la = loadv<LV<S>>(lane + sl::kLanes * (s - s0));
    for (int k = 0; k < NL; ++k) {
      la = sl::term(la, xl[k], loadv<LV<S>>(gr + sl::kLanes * k));
    }
    storev(lane + sl::kLanes * (s - s0), la);
  }
  for (int j = 0; j < NV; ++j) storev(dst + b0 + W * j, acc[j]);
}

// Fused backward over the inputs [r0, r1): grad_x (B, N) written back transposed
// through buf (kColBlock, B), and grad_values[perm[s]] for their slots.
template <typename S>
inline void backward_rows(const S* xT, const S* gT, int64_t B, const int64_t* ptr,
                          const int64_t* cols, const int64_t* perm, const S* values, S* gx,
                          int64_t ldx, S* gv, int64_t r0, int64_t r1, S* buf, S* lane) {
  constexpr int W = Simd<S>::W;
  const int64_t s_lim = ptr[r1];  // prefetch only slots of this chunk
  for (int64_t rb = r0; rb < r1; rb += kColBlock) {
    const int64_t re = rb + kColBlock < r1 ? rb + kColBlock : r1;
    for (int64_t r = rb; r < re; ++r) {
      const int64_t s0 = ptr[r], s1 = ptr[r + 1];
      std::fill(lane, lane + sl::kLanes * (s1 - s0), S(0));
      S* dst = buf + (r - rb) * B;
      int64_t b = 0;
      for (; b + kTile <= B; b += kTile)
        backward_tile<kTile / W>(xT, gT, B, cols, perm, values, r, s0, s1, b, lane, dst, s_lim);
      for (; b + W <= B; b += W)
        backward_tile<1>(xT, gT, B, cols, perm, values, r, s0, s1, b, lane, dst, s_lim);
      const int64_t done = b;  // a multiple of 8: sample i >= done goes to lane i % 8
      for (; b < B; ++b) {
        dst[b] = sl::spmm_one(gT, B, cols, perm, values, s0, s1, b, false, S(0));
      }
      const S* a = xT + r * B;
      for (int64_t s = s0; s < s1; ++s) {
        const S* g = gT + cols[s] * B;
        S l[sl::kLanes];
        for (int j = 0; j < sl::kLanes; ++j) l[j] = lane[sl::kLanes * (s - s0) + j];
        for (int64_t i = done; i < B; ++i)
          l[i % sl::kLanes] = sl::term(l[i % sl::kLanes], a[i], g[i]);
        gv[perm[s]] = sl::lane_tree(l);
      }
    }
    transpose_cols(buf, re - rb, B, gx + rb, ldx, 0, B);
  }
}

// grad_values[perm[s]] for Q slots at once (independent dot products interleaved for
// instruction-level parallelism): a[q] = xT row of slot q, g[q] = gT row.
// PARITY: vector element j of acc[q] is lane j of sl::lane_dot, term by term.
template <int Q, typename S>
inline void lane_dots(const S* const* a, const S* const* g, int64_t B, S* res) {
  const int64_t n8 = B - B % sl::kLanes;
  LV<S> acc[Q];
  for (int q = 0; q < Q; ++q) acc[q] = LV<S>{};
  for (int64_t i = 0; i < n8; i += sl::kLanes) {
    for (int q = 0; q < Q; ++q) {
      acc[q] = sl::term(acc[q], loadv<LV<S>>(a[q] + i), loadv<LV<S>>(g[q] + i));
    }
  }
  for (int q = 0; q < Q; ++q) {
    S l[sl::kLanes];
    for (int j = 0; j < sl::kLanes; ++j) l[j] = acc[q][j];
    for (int64_t i = n8; i < B; ++i) l[i - n8] = sl::term(l[i - n8], a[q][i], g[q][i]);
    res[q] = sl::lane_tree(l);
  }
}

// grad_values[perm[s]] for the slots of inputs [r0, r1) of the transpose CSR.
template <typename S>
inline void grad_values_rows(const S* xT, const S* gT, int64_t B, const int64_t* ptr,
                             const int64_t* cols, const int64_t* perm, S* gv, int64_t r0,
                             int64_t r1) {
  constexpr int Q = 4;
  const int64_t s_end = ptr[r1];
  int64_t r = r0, s = ptr[r0];
  const S* a[Q];
  const S* g[Q];
  S res[Q];
  for (; s + Q <= s_end; s += Q) {
    for (int q = 0; q < Q; ++q) {
      while (ptr[r + 1] <= s + q) ++r;  // the input row of slot s + q
      a[q] = xT + r * B;
      g[q] = gT + cols[s + q] * B;
    }
    lane_dots<Q>(a, g, B, res);
    for (int q = 0; q < Q; ++q) gv[perm[s + q]] = res[q];
  }
  for (; s < s_end; ++s) {
    while (ptr[r + 1] <= s) ++r;
    a[0] = xT + r * B;
    g[0] = gT + cols[s] * B;
    lane_dots<1>(a, g, B, res);
    gv[perm[s]] = res[0];
  }
}

// grad_bias[m] for m in [m0, m1): column sums of g (B, M), 4 W columns at a time.
// PARITY: vector element t is column_sum_one(m + t): b ascending from 0.
template <typename S>
inline void column_sums(const S* g, int64_t B, int64_t M, S* out, int64_t m0, int64_t m1) {
  constexpr int W = Simd<S>::W;
  int64_t m = m0;
  for (; m + 4 * W <= m1; m += 4 * W) {
    SV<S> acc[4];
    for (int j = 0; j < 4; ++j) acc[j] = splat<S>(S(0));
    for (int64_t b = 0; b < B; ++b) {
      const S* gr = g + b * M + m;
      for (int j = 0; j < 4; ++j) acc[j] = add_rn(acc[j], loadv<SV<S>>(gr + W * j));
    }
    for (int j = 0; j < 4; ++j) storev(out + m + W * j, acc[j]);
  }
  for (; m < m1; ++m) out[m] = sl::column_sum_one(g, M, B, m);
}

// The hot loops of one ISA variant, per dtype. flatten: the templates they call are
// inlined, so they are compiled for the variant's ISA too.
template <typename S>
struct Loops {
  void (*spmm_cols)(const S*, int64_t, const int64_t*, const int64_t*, const int64_t*, const S*,
                    const S*, S*, int64_t, int64_t, int64_t, S*);
  void (*grad_values_rows)(const S*, const S*, int64_t, const int64_t*, const int64_t*,
                           const int64_t*, S*, int64_t, int64_t);
  void (*backward_rows)(const S*, const S*, int64_t, const int64_t*, const int64_t*, const int64_t*,
                        const S*, S*, int64_t, S*, int64_t, int64_t, S*, S*);
  void (*transpose_cols)(const S*, int64_t, int64_t, S*, int64_t, int64_t, int64_t);
  void (*column_sums)(const S*, int64_t, int64_t, S*, int64_t, int64_t);
};

#define GSNN_SL_VARIANT(tag, attr)                                                                \
  template <typename S>                                                                           \
  attr void spmm_cols_##tag(const S* xT, int64_t B, const int64_t* ptr, const int64_t* idx,       \
                            const int64_t* perm, const S* values, const S* bias, S* out,          \
                            int64_t ldo, int64_t c0, int64_t c1, S* buf) {                        \
    spmm_cols<S>(xT, B, ptr, idx, perm, values, bias, out, ldo, c0, c1, buf);                     \
  }                                                                                               \
  template <typename S>                                                                           \
  attr void grad_values_rows_##tag(const S* xT, const S* gT, int64_t B, const int64_t* ptr,       \
                                   const int64_t* cols, const int64_t* perm, S* gv, int64_t r0,   \
                                   int64_t r1) {                                                  \
    grad_values_rows<S>(xT, gT, B, ptr, cols, perm, gv, r0, r1);                                  \
  }                                                                                               \
  template <typename S>                                                                           \
  attr void backward_rows_##tag(const S* xT, const S* gT, int64_t B, const int64_t* ptr,          \
                                const int64_t* cols, const int64_t* perm, const S* values, S* gx, \
                                int64_t ldx, S* gv, int64_t r0, int64_t r1, S* buf, S* lane) {    \
    backward_rows<S>(xT, gT, B, ptr, cols, perm, values, gx, ldx, gv, r0, r1, buf, lane);         \
  }                                                                                               \
  template <typename S>                                                                           \
  attr void transpose_cols_##tag(const S* src, int64_t R, int64_t lds, S* dst, int64_t ldd,       \
                                 int64_t c0, int64_t c1) {                                        \
    transpose_cols<S>(src, R, lds, dst, ldd, c0, c1);                                             \
  }                                                                                               \
  template <typename S>                                                                           \
  attr void column_sums_##tag(const S* g, int64_t B, int64_t M, S* out, int64_t m0, int64_t m1) { \
    column_sums<S>(g, B, M, out, m0, m1);                                                         \
  }                                                                                               \
  template <typename S>                                                                           \
  Loops<S> loops_##tag() {                                                                        \
    return {&spmm_cols_##tag<S>, &grad_values_rows_##tag<S>, &backward_rows_##tag<S>,             \
            &transpose_cols_##tag<S>, &column_sums_##tag<S>};                                     \
  }

#if GSNN_HAVE_CLONES
GSNN_SL_VARIANT(avx512, __attribute__((target("avx512f"), flatten)))
GSNN_SL_VARIANT(avx2, __attribute__((target("avx2"), flatten)))
#endif
GSNN_SL_VARIANT(base, __attribute__((flatten)))
#undef GSNN_SL_VARIANT

// The loops of isa.h's choice for the op.
template <typename S>
Loops<S> loops(Isa isa) {
#if GSNN_HAVE_CLONES
  if (isa == Isa::kAvx512f) return loops_avx512<S>();
  if (isa == Isa::kAvx2) return loops_avx2<S>();
#endif
  (void)isa;
  return loops_base<S>();
}

// spmm over [c0, c1) with a per-chunk write-back buffer.
template <typename S>
void spmm_chunk(const Loops<S>& k, const S* xT, int64_t B, const int64_t* ptr, const int64_t* idx,
                const int64_t* perm, const S* values, const S* bias, S* out, int64_t ldo,
                int64_t c0, int64_t c1) {
  std::vector<S> buf(static_cast<size_t>(kColBlock * B));
  k.spmm_cols(xT, B, ptr, idx, perm, values, bias, out, ldo, c0, c1, buf.data());
}

// Per-thread scratch memory for the transposed copies (xT, gT), kept between calls:
// glibc hands large freed blocks back to the OS, and faulting their pages in again
// on every call cost as much as the kernels. Each calling thread keeps at most two
// blocks (slot 0, 1), each as large as the largest transpose it has made.
void* scratch(int slot, size_t bytes) {
  struct Block {
    void* p = nullptr;
    size_t cap = 0;
    ~Block() { std::free(p); }
  };
  thread_local Block blocks[2];
  Block& b = blocks[slot];
  if (bytes > b.cap) {
    std::free(b.p);
    b.cap = 0;
    const size_t cap = (bytes + 4095) / 4096 * 4096;
    b.p = std::aligned_alloc(64, cap);
    TORCH_CHECK(b.p != nullptr, "sparse_linear: out of memory (", cap, " bytes of scratch)");
    b.cap = cap;
  }
  return b.p;
}

// (R, C) matrix with unit column stride -> contiguous (C, R), in parallel, in scratch
// slot `slot` (valid until the next call on this thread; never returned to users).
at::Tensor transposed(const at::Tensor& t_in, int slot, Isa isa) {
  const at::Tensor t = t_in.stride(1) == 1 ? t_in : t_in.contiguous();
  const int64_t R = t.size(0), C = t.size(1);
  if (R == 0 || C == 0) return at::empty({C, R}, t.options());
  at::Tensor out = at::from_blob(scratch(slot, static_cast<size_t>(R * C) * t.element_size()),
                                 {C, R}, t.options());
  const int64_t lds = R > 1 ? t.stride(0) : C;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "sparse_linear_transpose", [&] {
    const scalar_t* src = t.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(8, (65536 / std::max<int64_t>(R, 1)) / 8 * 8);
    const Loops<scalar_t> k = loops<scalar_t>(isa);
    at::parallel_for(0, (C + 7) / 8, grain / 8, [&](int64_t q0, int64_t q1) {
      k.transpose_cols(src, R, lds, dst, R, q0 * 8, std::min(q1 * 8, C));
    });
  });
  return out;
}

// Grain sizes: enough work per chunk to amortise a task (~B * slots terms).
int64_t grain_for(int64_t n_items, int64_t nnz, int64_t B) {
  const int64_t per_item = n_items > 0 ? (nnz * (B > 0 ? B : 1)) / n_items + B + 1 : 1;
  const int64_t g = 32768 / per_item;
  return g < 1 ? 1 : g;
}

}  // namespace

// PARITY: every NaN of an output as the canonical quiet NaN (sl::canonical), after
// the vector loops that stored raw results.
static void canonicalize_nans(at::Tensor& t) {
  if (t.numel() == 0) return;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "canonicalize_nans", [&] {
    scalar_t* p = t.data_ptr<scalar_t>();
    at::parallel_for(0, t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = sl::canonical(p[i]);
    });
  });
}

at::Tensor sparse_linear_cpu(const at::Tensor& x_in, const at::Tensor& values_in,
                             const c10::optional<at::Tensor>& bias_in, const at::Tensor& out_ptr,
                             const at::Tensor& out_rows, const at::Tensor& out_perm,
                             const at::Tensor& in_ptr, const at::Tensor& in_cols,
                             const at::Tensor& in_perm, int64_t n_out) {
  check_sparse_linear_call(x_in, values_in, bias_in, out_ptr, out_rows, out_perm, in_ptr, in_cols,
                           in_perm, n_out);
  const int64_t B = x_in.size(0), M = n_out, nnz = values_in.size(0);
  const Isa isa = pick_isa("sparse_linear");
  const at::Tensor xT = transposed(x_in, 0, isa);  // (N, B)
  const at::Tensor values = values_in.contiguous();
  const at::Tensor ptr = out_ptr.contiguous(), rows = out_rows.contiguous(),
                   perm = out_perm.contiguous();
  at::Tensor bias;
  if (bias_in.has_value() && bias_in->defined()) bias = bias_in->contiguous();
  at::Tensor y = at::empty({B, M}, x_in.options());
  if (B == 0 || M == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x_in.scalar_type(), "sparse_linear_cpu", [&] {
    const Loops<scalar_t> k = loops<scalar_t>(isa);
    const scalar_t* xp = xT.data_ptr<scalar_t>();
    const scalar_t* vp = values.data_ptr<scalar_t>();
    const scalar_t* bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    const int64_t* pp = ptr.data_ptr<int64_t>();
    const int64_t* ip = rows.data_ptr<int64_t>();
    const int64_t* qp = perm.data_ptr<int64_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    // PARITY: one output column m per iteration; its B elements are independent.
    at::parallel_for(0, M, grain_for(M, nnz, B), [&](int64_t c0, int64_t c1) {
      spmm_chunk(k, xp, B, pp, ip, qp, vp, bp, yp, M, c0, c1);
    });
  });
  canonicalize_nans(y);
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_linear_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& values_in,
    const at::Tensor& in_ptr, const at::Tensor& in_cols, const at::Tensor& in_perm, bool need_x,
    bool need_values, bool need_bias) {
  check_sparse_linear_backward_call(grad_out, x_in, values_in, in_ptr, in_cols, in_perm,
                                    need_values);
  const int64_t B = x_in.size(0), N = x_in.size(1), M = grad_out.size(1), nnz = values_in.size(0);
  const at::Tensor g = grad_out.contiguous();  // (B, M)
  const at::Tensor ptr = in_ptr.contiguous(), cols = in_cols.contiguous(),
                   perm = in_perm.contiguous();
  const at::Tensor values = values_in.contiguous();
  const Isa isa = pick_isa("sparse_linear_backward");
  at::Tensor gT, xT;
  if (need_x || need_values) gT = transposed(g, 0, isa);  // (M, B)
  if (need_values) xT = transposed(x_in, 1, isa);         // (N, B)
  at::Tensor grad_x = at::empty({need_x ? B : 0, need_x ? N : 0}, x_in.options());
  at::Tensor grad_values = at::empty({need_values ? nnz : 0}, x_in.options());
  at::Tensor grad_bias = at::empty({need_bias ? M : 0}, x_in.options());
  AT_DISPATCH_FLOATING_TYPES(x_in.scalar_type(), "sparse_linear_backward_cpu", [&] {
    const Loops<scalar_t> k = loops<scalar_t>(isa);
    const int64_t* pp = ptr.data_ptr<int64_t>();
    const int64_t* cp = cols.data_ptr<int64_t>();
    const int64_t* qp = perm.data_ptr<int64_t>();
    if (need_x && need_values && B > 0 && N > 0) {
      // Fused: one pass over the transpose CSR gives grad_x and grad_values.
      const scalar_t* xp = xT.data_ptr<scalar_t>();
      const scalar_t* gp = gT.data_ptr<scalar_t>();
      const scalar_t* vp = values.data_ptr<scalar_t>();
      scalar_t* gxp = grad_x.data_ptr<scalar_t>();
      scalar_t* gvp = grad_values.data_ptr<scalar_t>();
      at::parallel_for(0, N, grain_for(N, nnz, B), [&](int64_t r0, int64_t r1) {
        int64_t max_seg = 0;
        for (int64_t r = r0; r < r1; ++r) max_seg = std::max(max_seg, pp[r + 1] - pp[r]);
        std::vector<scalar_t> buf(static_cast<size_t>(kColBlock * B));
        std::vector<scalar_t> lane(static_cast<size_t>(sl::kLanes * std::max<int64_t>(max_seg, 1)));
        k.backward_rows(xp, gp, B, pp, cp, qp, vp, gxp, N, gvp, r0, r1, buf.data(), lane.data());
      });
    } else if (need_x && B > 0 && N > 0) {
      const scalar_t* gp = gT.data_ptr<scalar_t>();
      const scalar_t* vp = values.data_ptr<scalar_t>();
      scalar_t* out = grad_x.data_ptr<scalar_t>();
      // PARITY: one input column r per iteration (transpose CSR), no bias.
      at::parallel_for(0, N, grain_for(N, nnz, B), [&](int64_t r0, int64_t r1) {
        spmm_chunk(k, gp, B, pp, cp, qp, vp, static_cast<const scalar_t*>(nullptr), out, N, r0, r1);
      });
    }
    if (need_values && !(need_x && B > 0 && N > 0) && nnz > 0) {
      const scalar_t* xp = xT.data_ptr<scalar_t>();
      const scalar_t* gp = gT.data_ptr<scalar_t>();
      scalar_t* out = grad_values.data_ptr<scalar_t>();
      // PARITY: one entry per dot product; entries are grouped by input row only
      // for locality.
      at::parallel_for(0, N, grain_for(N, nnz, B), [&](int64_t r0, int64_t r1) {
        k.grad_values_rows(xp, gp, B, pp, cp, qp, out, r0, r1);
      });
    }
    if (need_bias && M > 0) {
      const scalar_t* gp = g.data_ptr<scalar_t>();
      scalar_t* out = grad_bias.data_ptr<scalar_t>();
      at::parallel_for(0, M, 256,
                       [&](int64_t m0, int64_t m1) { k.column_sums(gp, B, M, out, m0, m1); });
    }
  });
  canonicalize_nans(grad_x);
  canonicalize_nans(grad_values);
  canonicalize_nans(grad_bias);
  return {grad_x, grad_values, grad_bias};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) {
  m.impl("sparse_linear", &sparse_linear_cpu);
  m.impl("sparse_linear_backward", &sparse_linear_backward_cpu);
}

}  // namespace gsnn_fast
