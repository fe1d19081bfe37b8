// CUDA kernel of gsnn_fast::partial_corr; the math and its order are in
// csrc/include/gsnn_fast/partial_corr.h, shared with the CPU loop.
//
// One block per (pair, target) system (grid-stride over systems, so that the
// per-thread scratch stays bounded): an empty set copies the corr column, any other
// is solved by the block (solve_block.cuh: the factor in dynamic shared memory sized
// from the largest set smax).
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"
#include "solve_block.cuh"

namespace gsnn_fast {
namespace {

__global__ void __launch_bounds__(kPartialCorrThreads)
    partial_corr_kernel(const double* __restrict__ corr, const double* __restrict__ cov_xy,
                        const double* __restrict__ cov_xx, const double* __restrict__ var_x,
                        const double* __restrict__ var_y, const int64_t* __restrict__ ptr,
                        const int64_t* __restrict__ idx, int64_t P, int64_t N, int64_t smax,
                        double ridge, double tol, double* __restrict__ out,
                        double* __restrict__ scratch) {
  GSNN_SOLVE_SHARED(sh, smax);
  double* z = solve_z(scratch, smax);
  const int tid = threadIdx.x;
  const int64_t nthreads = blockDim.x;
  const int64_t NN = N * N;

  for (int64_t sys = blockIdx.x; sys < P * N; sys += gridDim.x) {
    const int64_t p = sys / N, j = sys % N;
    const int64_t s = ptr[j + 1] - ptr[j];
    double* oc = out + p * NN + j;  // column j, stride N
    if (s == 0) {
      for (int64_t i = tid; i < N; i += nthreads) oc[i * N] = corr[p * NN + i * N + j];
      continue;  // shared memory untouched, the same branch in every thread
    }
    const double* cxx = cov_xx + p * NN;
    solve_system_block(sh, PlainMat{cxx, N}, PlainMat{cov_xy + p * NN, N},
                       PlainRowsOf{cxx, sh.S, N}, idx + ptr[j], s, j, N, var_x + p * N, var_y[sys],
                       ridge, tol, z, oc);
  }
}

}  // namespace

cudaError_t launch_partial_corr(const double* corr, const double* cov_xy, const double* cov_xx,
                                const double* var_x, const double* var_y, const int64_t* ptr,
                                const int64_t* idx, int64_t P, int64_t N, int64_t smax,
                                double ridge, double tol, double* out, double* scratch,
                                int64_t num_blocks, cudaStream_t stream) {
  if (P == 0 || N == 0) return cudaSuccess;
  if (num_blocks < 1 || num_blocks > 0x7fffffffL) return cudaErrorInvalidConfiguration;
  const int64_t smem = partial_corr_smem_bytes(smax);
  if (smem > 48 * 1024) {
    // Opt in to more than the default 48 KB; the glue has checked the device limit.
    const cudaError_t err = cudaFuncSetAttribute(
        partial_corr_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  GSNN_LAUNCH(partial_corr_kernel, static_cast<unsigned int>(num_blocks), kPartialCorrThreads,
              static_cast<size_t>(smem), stream)(corr, cov_xy, cov_xx, var_x, var_y, ptr, idx, P, N,
                                                 smax, ridge, tol, out, scratch);
  return cudaGetLastError();
}

}  // namespace gsnn_fast
