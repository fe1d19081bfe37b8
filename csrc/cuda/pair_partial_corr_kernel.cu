// CUDA kernels of gsnn_fast::pair_partial_corr: the partial correlation of every
// layer pair straight from the streaming sums, folded over the pairs. The math is
// the header functions the CPU op (csrc/cpu/partial_corr_cpu.cpp) calls:
//   * node moments: pair_corr_node_moments (relative zero-variance rule), plus the
//     variances the systems take (NaN where the variance counts as zero);
//   * per pair p, one block per target j (grid-stride over the N systems):
//       |S_j| = 0: the plain correlation pair_corr_value of every source;
//       else the block solves the system (solve_block.cuh) with the covariances
//       read through SumMat / SumRows;
//     written into per_pair[p] (or a one-pair buffer);
//   * per pair p, the fold of its scores into the aggregate (pair_agg_step, pairs
//     in ascending order; the running values are stored as doubles between pairs,
//     which is exact, so this equals the CPU's fold of all pairs at once).
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"
#include "solve_block.cuh"

namespace gsnn_fast {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535L * 32L;

unsigned int grid_for(int64_t total) {
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned int>(blocks);
}

// One thread per (pair, node) of each side: the moments of pair_corr, and the
// variance the systems take (NaN where it counts as zero).
__global__ void ppc_moments_kernel(const double* __restrict__ sum_x,
                                   const double* __restrict__ sum_x2,
                                   const double* __restrict__ sum_y,
                                   const double* __restrict__ sum_y2, int64_t PN, double n,
                                   double tol, PairCorrMoments m, double* __restrict__ sys_var_x,
                                   double* __restrict__ sys_var_y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < 2 * PN;
       t += stride) {
    if (t < PN) {
      pair_corr_node_moments(sum_x[t], sum_x2[t], n, tol, kZeroVarRelative, m.mean_x + t,
                             m.var_x + t, m.zero_x + t);
      sys_var_x[t] = m.zero_x[t] != 0.0 ? nan_d() : m.var_x[t];
    } else {
      const int64_t u = t - PN;
      pair_corr_node_moments(sum_y[u], sum_y2[u], n, tol, kZeroVarRelative, m.mean_y + u,
                             m.var_y + u, m.zero_y + u);
      sys_var_y[u] = m.zero_y[u] != 0.0 ? nan_d() : m.var_y[u];
    }
  }
}

// The systems of pair p: dst[i * N + j] for every source i and target j.
__global__ void __launch_bounds__(kPartialCorrThreads)
    ppc_systems_kernel(const double* __restrict__ sum_xy, const double* __restrict__ sum_xx,
                       PairCorrMoments m, const double* __restrict__ sys_var_x,
                       const double* __restrict__ sys_var_y, const int64_t* __restrict__ ptr,
                       const int64_t* __restrict__ idx, int64_t N, int64_t smax, double n,
                       double ridge, double tol, double* __restrict__ dst,
                       double* __restrict__ scratch) {
  GSNN_SOLVE_SHARED(sh, smax);
  double* z = solve_z(scratch, smax);
  const int tid = threadIdx.x;
  const int64_t nthreads = blockDim.x;
  const SumMat xy{sum_xy, m.mean_x, m.mean_y, n, N};
  const SumMat xx{sum_xx, m.mean_x, m.mean_x, n, N};
  const SumRowsOf rows_of{sum_xx, m.mean_x, n, sh.S, N};

  for (int64_t j = blockIdx.x; j < N; j += gridDim.x) {
    const int64_t s = ptr[j + 1] - ptr[j];
    double* oc = dst + j;  // column j, stride N
    if (s == 0) {
      // PARITY: pair_corr_value with the moments as computed (the CPU's corr rows).
      for (int64_t i = tid; i < N; i += nthreads) {
        oc[i * N] = pair_corr_value<ScalarLanes>(sum_xy[i * N + j], n, m.mean_x[i], m.var_x[i],
                                                 m.zero_x[i], m.mean_y[j], m.var_y[j], m.zero_y[j]);
      }
      continue;  // shared memory untouched, the same branch in every thread
    }
    solve_system_block(sh, xx, xy, rows_of, idx + ptr[j], s, j, N, sys_var_x, sys_var_y[j], ridge,
                       tol, z, oc);
  }
}

// Folds pair p's scores into the aggregate, one thread per element (PARITY: the
// steps of pair_agg_step in pair order; acc and cnt kept as doubles).
__global__ void ppc_fold_kernel(const double* __restrict__ scores, int64_t NN, int64_t p, int64_t P,
                                int32_t agg, double* __restrict__ acc, double* __restrict__ cnt) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < NN;
       e += stride) {
    double a = p == 0 ? pair_agg_start<ScalarLanes>(agg) : acc[e];
    double k = p == 0 || cnt == nullptr ? 0.0 : cnt[e];
    pair_agg_step<ScalarLanes>(a, k, scores[e], agg);
    if (p + 1 == P) {
      acc[e] = pair_agg_result<ScalarLanes>(a, k, agg);
    } else {
      acc[e] = a;
      if (cnt != nullptr) cnt[e] = k;
    }
  }
}

__global__ void ppc_fill_nan_kernel(double* __restrict__ out, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride)
    out[e] = nan_d();
}

}  // namespace

cudaError_t launch_pair_partial_corr(const double* sum_x, const double* sum_y, const double* sum_x2,
                                     const double* sum_y2, const double* sum_xy,
                                     const double* sum_xx, const int64_t* ptr, const int64_t* idx,
                                     int64_t P, int64_t N, int64_t smax, double n, double ridge,
                                     double tol, int32_t agg, double* per_pair, double* out,
                                     double* work, int64_t num_blocks, cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  const int64_t NN = N * N;
  if (P == 0) {
    GSNN_LAUNCH(ppc_fill_nan_kernel, grid_for(NN), kThreads, 0, stream)(out, NN);
    return cudaGetLastError();
  }
  if (num_blocks < 1 || num_blocks > 0x7fffffffL) return cudaErrorInvalidConfiguration;
  // The work buffer, in the order of pair_partial_corr_work_doubles.
  const PairCorrMoments m = pair_corr_moments_view(work, P, N, N);
  double* sys_var_x = work + 6 * P * N;
  double* sys_var_y = sys_var_x + P * N;
  double* next = sys_var_y + P * N;
  double* one_pair = nullptr;
  if (per_pair == nullptr) {
    one_pair = next;
    next += NN;
  }
  double* cnt = nullptr;
  if (agg == kAggMean) {
    cnt = next;
    next += NN;
  }
  double* scratch = next;

  GSNN_LAUNCH(ppc_moments_kernel, grid_for(2 * P * N), kThreads, 0, stream)(
      sum_x, sum_x2, sum_y, sum_y2, P * N, n, tol, m, sys_var_x, sys_var_y);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  const int64_t smem = partial_corr_smem_bytes(smax);
  if (smem > 48 * 1024) {
    // Opt in to more than the default 48 KB; the glue has checked the device limit.
    err = cudaFuncSetAttribute(ppc_systems_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  for (int64_t p = 0; p < P; ++p) {
    double* dst = per_pair != nullptr ? per_pair + p * NN : one_pair;
    // pair p's moments: PairCorrMoments of one pair (the views are [P, N], row p).
    PairCorrMoments mp;
    mp.mean_x = m.mean_x + p * N;
    mp.var_x = m.var_x + p * N;
    mp.zero_x = m.zero_x + p * N;
    mp.mean_y = m.mean_y + p * N;
    mp.var_y = m.var_y + p * N;
    mp.zero_y = m.zero_y + p * N;
    GSNN_LAUNCH(ppc_systems_kernel, static_cast<unsigned int>(num_blocks), kPartialCorrThreads,
                static_cast<size_t>(smem), stream)(sum_xy + p * NN, sum_xx + p * NN, mp,
                                                   sys_var_x + p * N, sys_var_y + p * N, ptr, idx,
                                                   N, smax, n, ridge, tol, dst, scratch);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    GSNN_LAUNCH(ppc_fold_kernel, grid_for(NN), kThreads, 0, stream)(dst, NN, p, P, agg, out, cnt);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace gsnn_fast
