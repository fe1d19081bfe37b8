// CUDA kernels of gsnn_fast::pair_stats_update; the per-element order and the
// arithmetic (pair_step, pair_flush, batch_moments) are in
// csrc/include/gsnn_fast/pair_stats.h, shared with the CPU kernel.
//
// Products: one 64 x 64 output tile per block, 16 x 16 threads, each thread owns
// a 4 x 4 sub-grid of outputs in registers (rows ty + 16 r, columns tx + 16 c).
// The block stages kChunk samples of x and y in shared memory at a time; each
// thread walks b in ascending order over all chunks (one pair_step chain per
// output element, as on the CPU), then adds the partial once (pair_flush).
// No atomics: every output element is written by exactly one thread.
// sum_xx: only tiles with tile_i <= tile_k run; diagonal tiles write their
// elements directly (both (i, k) and (k, i) lie in the tile), off-diagonal tiles
// add each partial to (i, k) and, through a transposed shared-memory copy
// (coalesced), to (k, i).
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"

namespace gsnn_fast {
namespace {

constexpr int kTile = 64;   // output tile edge
constexpr int kSub = 16;    // threads per tile edge
constexpr int kPer = 4;     // outputs per thread per edge (kTile / kSub)
constexpr int kChunk = 16;  // samples staged per shared-memory round

// First and second moments: one (pair, node) per thread.
__global__ void pair_moments_kernel(const double* __restrict__ x, const double* __restrict__ y,
                                    int64_t P, int64_t B, int64_t N, double* __restrict__ sum_x,
                                    double* __restrict__ sum_y, double* __restrict__ sum_x2,
                                    double* __restrict__ sum_y2) {
  const int64_t total = P * N;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t p = t / N, i = t % N;
    double s1, s2;
    batch_moments(x + p * B * N + i, N, B, &s1, &s2);
    sum_x[t] = pair_flush(sum_x[t], s1);
    sum_x2[t] = pair_flush(sum_x2[t], s2);
    batch_moments(y + (p + 1) * B * N + i, N, B, &s1, &s2);
    sum_y[t] = pair_flush(sum_y[t], s1);
    sum_y2[t] = pair_flush(sum_y2[t], s2);
  }
}

// C[p] (N x N) += U_p^T V_p, U_p = u + p * B * N, V_p = v + p * B * N (B x N each).
// kSym: V == U and C symmetric (sum_xx): upper tiles only, mirrored.
template <bool kSym>
__global__ void __launch_bounds__(kSub* kSub)
    pair_product_kernel(const double* __restrict__ u, const double* __restrict__ v, int64_t B,
                        int64_t N, double* __restrict__ C) {
  const int64_t ti = blockIdx.y, tk = blockIdx.x;
  if (kSym && ti > tk) return;
  const int64_t p = blockIdx.z;
  const int64_t i0 = ti * kTile, k0 = tk * kTile;
  const double* U = u + p * B * N;
  const double* V = v + p * B * N;
  double* Cp = C + p * N * N;

  // Staging buffers during the b loop; the transposed tile afterwards.
  GSNN_SHARED_ARRAY(double, smem, kTile*(kTile + 1));
  double* Us = smem;                   // [kChunk][kTile]
  double* Vs = smem + kChunk * kTile;  // [kChunk][kTile]

  const int tx = threadIdx.x % kSub, ty = threadIdx.x / kSub;
  double acc[kPer][kPer];
#pragma unroll
  for (int r = 0; r < kPer; ++r)
#pragma unroll
    for (int c = 0; c < kPer; ++c) acc[r][c] = 0.0;

  for (int64_t b0 = 0; b0 < B; b0 += kChunk) {
    const int nb = static_cast<int>(B - b0 < kChunk ? B - b0 : kChunk);
    for (int e = threadIdx.x; e < kChunk * kTile; e += kSub * kSub) {
      const int kb = e / kTile, col = e % kTile;
      const bool in_b = kb < nb;
      Us[e] = (in_b && i0 + col < N) ? U[(b0 + kb) * N + i0 + col] : 0.0;
      Vs[e] = (in_b && k0 + col < N) ? V[(b0 + kb) * N + k0 + col] : 0.0;
    }
    __syncthreads();
    // PARITY: b ascending, one pair_step per sample (only the nb real samples).
    for (int kb = 0; kb < nb; ++kb) {
      double a[kPer], w[kPer];
#pragma unroll
      for (int r = 0; r < kPer; ++r) a[r] = Us[kb * kTile + ty + kSub * r];
#pragma unroll
      for (int c = 0; c < kPer; ++c) w[c] = Vs[kb * kTile + tx + kSub * c];
#pragma unroll
      for (int r = 0; r < kPer; ++r)
#pragma unroll
        for (int c = 0; c < kPer; ++c) acc[r][c] = pair_step(acc[r][c], a[r], w[c]);
    }
    __syncthreads();
  }

  // Direct half: C[i, k] += partial (coalesced along k).
#pragma unroll
  for (int r = 0; r < kPer; ++r) {
    const int64_t i = i0 + ty + kSub * r;
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
      const int64_t k = k0 + tx + kSub * c;
      if (i < N && k < N) Cp[i * N + k] = pair_flush(Cp[i * N + k], acc[r][c]);
    }
  }
  if (!kSym || ti == tk) return;

  // Mirror half of an off-diagonal sum_xx tile: C[k, i] += partial(i, k).
  double* T = smem;  // [kTile][kTile + 1], T[il][kl]; staging is done (synced above)
#pragma unroll
  for (int r = 0; r < kPer; ++r)
#pragma unroll
    for (int c = 0; c < kPer; ++c) T[(ty + kSub * r) * (kTile + 1) + tx + kSub * c] = acc[r][c];
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * kTile; e += kSub * kSub) {
    const int kl = e / kTile, il = e % kTile;
    const int64_t k = k0 + kl, i = i0 + il;
    if (i < N && k < N) Cp[k * N + i] = pair_flush(Cp[k * N + i], T[il * (kTile + 1) + kl]);
  }
}

}  // namespace

cudaError_t launch_pair_stats_update(const double* x, const double* y, int64_t L, int64_t B,
                                     int64_t N, double* sum_x, double* sum_y, double* sum_x2,
                                     double* sum_y2, double* sum_xy, double* sum_xx,
                                     cudaStream_t stream) {
  const int64_t P = L - 1;
  if (P <= 0 || N == 0) return cudaSuccess;
  {
    const int threads = 256;
    int64_t blocks = (P * N + threads - 1) / threads;
    if (blocks > 65535L * 32L) blocks = 65535L * 32L;
    GSNN_LAUNCH(pair_moments_kernel, static_cast<unsigned int>(blocks), threads, 0, stream)(
        x, y, P, B, N, sum_x, sum_y, sum_x2, sum_y2);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  const int64_t nt = (N + kTile - 1) / kTile;
  if (nt > 65535 || P > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned int>(nt), static_cast<unsigned int>(nt),
                  static_cast<unsigned int>(P));
  // x_p pairs with y_{p+1}: V starts one layer later.
  GSNN_LAUNCH(pair_product_kernel<false>, grid, kSub * kSub, 0, stream)(x, y + B * N, B, N, sum_xy);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || sum_xx == nullptr) return err;
  GSNN_LAUNCH(pair_product_kernel<true>, grid, kSub * kSub, 0, stream)(x, x, B, N, sum_xx);
  return cudaGetLastError();
}

}  // namespace gsnn_fast
