// CUDA kernel of gsnn_fast::partial_corr; the math and its order are in
// csrc/include/gsnn_fast/partial_corr.h, shared with the CPU loop.
//
// One block per (pair, target) system (grid-stride over systems, so that the
// per-thread scratch stays bounded). Shared memory (dynamic, sized from the
// largest set smax): the packed Cholesky factor L, alpha and the set S.
//   1. threads copy S_j into shared memory;
//   2. Cholesky column by column: thread 0 computes the pivot, then the threads
//      share the rows below it (every entry by cholesky_offdiag: the sequence
//      the CPU's factors follow too);
//   3. thread 0 solves for alpha and vy (solve_alpha);
//   4. the threads share the sources i (partial_corr_source: the header's lane
//      templates on one source, the sequence every CPU SIMD lane follows too);
//      each thread's z vector lives in global scratch, interleaved with stride
//      blockDim.x.
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"

namespace gsnn_fast {
namespace {

__global__ void __launch_bounds__(kPartialCorrThreads)
    partial_corr_kernel(const double* __restrict__ corr, const double* __restrict__ cov_xy,
                        const double* __restrict__ cov_xx, const double* __restrict__ var_x,
                        const double* __restrict__ var_y, const int64_t* __restrict__ ptr,
                        const int64_t* __restrict__ idx, int64_t P, int64_t N, int64_t smax,
                        double ridge, double tol, double* __restrict__ out,
                        double* __restrict__ scratch) {
  GSNN_DYNAMIC_SHARED(double, smem);
  double* Lp = smem;                                      // tri(smax) doubles
  double* alpha = Lp + tri(smax);                         // smax doubles
  int64_t* S = reinterpret_cast<int64_t*>(alpha + smax);  // smax indices
  GSNN_SHARED(int, ok);
  GSNN_SHARED(double, vy_s);

  const int tid = threadIdx.x;
  const int64_t nthreads = blockDim.x;
  double* z = scratch + static_cast<int64_t>(blockIdx.x) * smax * nthreads + tid;
  const int64_t NN = N * N;

  for (int64_t sys = blockIdx.x; sys < P * N; sys += gridDim.x) {
    const int64_t p = sys / N, j = sys % N;
    const int64_t s = ptr[j + 1] - ptr[j];
    double* oc = out + p * NN + j;  // column j, stride N
    if (s == 0) {
      for (int64_t i = tid; i < N; i += nthreads) oc[i * N] = corr[p * NN + i * N + j];
      continue;  // shared memory untouched
    }
    const double* cxx = cov_xx + p * NN;
    const double* cxy = cov_xy + p * NN;
    for (int64_t a = tid; a < s; a += nthreads) S[a] = idx[ptr[j] + a];
    __syncthreads();

    // PARITY: every entry of L by the shared functions; a column's pivot
    // before its rows, columns in order.
    for (int64_t c = 0; c < s; ++c) {
      if (tid == 0) ok = cholesky_pivot(Lp, cxx[S[c] * N + S[c]], ridge, tol, c) ? 1 : 0;
      __syncthreads();
      if (!ok) break;
      for (int64_t r = c + 1 + tid; r < s; r += nthreads)
        cholesky_offdiag(Lp, cxx[S[r] * N + S[c]], r, c);
      __syncthreads();
    }
    // Only thread 0 reads ok before the barrier below: it also writes it here, so
    // a read by another thread in the same interval would race with that write.
    if (tid == 0 && ok) {
      const double vy = solve_alpha(Lp, cxy, N, S, s, j, var_y[sys], alpha);
      vy_s = vy;
      ok = residual_ok(vy, var_y[sys], tol) ? 1 : 0;
    }
    __syncthreads();
    if (!ok) {
      const double nan = nan_d();
      for (int64_t i = tid; i < N; i += nthreads) oc[i * N] = nan;
    } else {
      const double vy = vy_s;
      for (int64_t i = tid; i < N; i += nthreads) {
        oc[i * N] = partial_corr_source(Lp, alpha, S, s, cxx, cxy, N, i, j, var_x[p * N + i], vy,
                                        tol, z, nthreads);
      }
    }
    __syncthreads();  // the next system overwrites the shared buffers
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
