// CUDA kernels of gsnn_fast::pair_corr; the math is in
// csrc/include/gsnn_fast/pair_corr.h, shared with the CPU loops.
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"

namespace gsnn_fast {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535L * 32L;

// One thread per node of one pair: t < P*M is (p, i) of the activation side, the
// rest (p, j) of the gradient side, as in the CPU moments loop.
__global__ void pair_corr_moments_kernel(const double* __restrict__ sum_x,
                                         const double* __restrict__ sum_x2,
                                         const double* __restrict__ sum_y,
                                         const double* __restrict__ sum_y2, int64_t PM, int64_t PN,
                                         double n, double tol, int32_t rule, PairCorrMoments m) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < PM + PN;
       t += stride) {
    if (t < PM) {
      pair_corr_node_moments(sum_x[t], sum_x2[t], n, tol, rule, m.mean_x + t, m.var_x + t,
                             m.zero_x + t);
    } else {
      const int64_t u = t - PM;
      pair_corr_node_moments(sum_y[u], sum_y2[u], n, tol, rule, m.mean_y + u, m.var_y + u,
                             m.zero_y + u);
    }
  }
}

// One thread per output element (i, j), consecutive threads along j (coalesced
// reads of sum_xy and writes of per_pair / out), as in the CPU loop.
__global__ void pair_corr_kernel(const double* __restrict__ sum_xy, PairCorrMoments m, int64_t P,
                                 int64_t M, int64_t N, double n, int32_t agg,
                                 double* __restrict__ per_pair, double* __restrict__ out) {
  const int64_t total = M * N;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t i = t / N, j = t - i * N;
    out[t] = pair_corr_element(sum_xy, m, P, M, N, i, j, n, agg, per_pair);
  }
}

unsigned int grid_for(int64_t total) {
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned int>(blocks);
}

}  // namespace

cudaError_t launch_pair_corr(const double* sum_x, const double* sum_y, const double* sum_x2,
                             const double* sum_y2, const double* sum_xy, int64_t P, int64_t M,
                             int64_t N, double n, double tol, int32_t rule, int32_t agg,
                             double* scratch, double* per_pair, double* out, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  const PairCorrMoments m = pair_corr_moments_view(scratch, P, M, N);
  if (P > 0) {
    GSNN_LAUNCH(pair_corr_moments_kernel, grid_for(P * (M + N)), kThreads, 0, stream)(
        sum_x, sum_x2, sum_y, sum_y2, P * M, P * N, n, tol, rule, m);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  GSNN_LAUNCH(pair_corr_kernel, grid_for(M * N), kThreads, 0, stream)(sum_xy, m, P, M, N, n, agg,
                                                                      per_pair, out);
  return cudaGetLastError();
}

}  // namespace gsnn_fast
