// One ridge partial-correlation system (pair p, target j with a non-empty set),
// solved by the threads of one CUDA block: the device side shared by the kernels of
// partial_corr (covariances given) and pair_partial_corr (covariances formed from
// the sums). The math and its order are gsnn_fast/partial_corr.h's.
//   1. the threads copy S_j into shared memory;
//   2. Cholesky column by column: thread 0 computes the pivot, then the threads
//      share the rows below it (each entry by cholesky_offdiag: the sequence the
//      CPU's factors follow too);
//   3. thread 0 solves for alpha and vy (solve_alpha_at);
//   4. the threads share the sources i (partial_corr_source_at: the header's lane
//      templates on one source, the sequence every CPU SIMD lane follows too); each
//      thread's z vector lives in global scratch, interleaved with stride blockDim.x.
// Every thread of the block must call it (it has barriers), with the same system.
#pragma once

#include <cuda_runtime.h>

#include "launch.h"
#include "gsnn_fast/partial_corr.h"

namespace gsnn_fast {

// The block's shared state: the packed factor L, alpha and the set (dynamic
// shared memory, partial_corr_smem_bytes(smax)), and three flags written by thread
// 0 between barriers.
struct SolveShared {
  double* Lp;
  double* alpha;
  int64_t* S;
  int* factored;
  int* usable;
  double* vy;
};

// The block's view of its dynamic shared memory (tri(smax) + smax doubles, then
// smax indices) and of the kernel's three shared flags.
__device__ __forceinline__ SolveShared solve_shared(double* smem, int64_t smax, int* factored,
                                                    int* usable, double* vy) {
  double* alpha = smem + tri(smax);
  return SolveShared{smem, alpha, reinterpret_cast<int64_t*>(alpha + smax), factored, usable, vy};
}

// Declares a solving block's shared memory (dynamic: the factor, alpha and the set;
// static: the three flags) and its view `name`, in a kernel.
#define GSNN_SOLVE_SHARED(name, smax)       \
  GSNN_DYNAMIC_SHARED(double, name##_smem); \
  GSNN_SHARED(int, name##_factored);        \
  GSNN_SHARED(int, name##_usable);          \
  GSNN_SHARED(double, name##_vy);           \
  const SolveShared name =                  \
      solve_shared(name##_smem, smax, &name##_factored, &name##_usable, &name##_vy)

// This thread's z vector in the blocks' global scratch (smax doubles at stride
// blockDim.x, a block's after the previous block's).
__device__ __forceinline__ double* solve_z(double* scratch, int64_t smax) {
  return scratch + static_cast<int64_t>(blockIdx.x) * smax * blockDim.x + threadIdx.x;
}

// rows_of(i) for the two covariance sources: B = cov_xx[S, i] read from a matrix, or
// formed from sum_xx (SumRows).
struct PlainRowsOf {
  const double* cov_xx;
  const int64_t* S;
  int64_t N;
  __device__ PlainRows operator()(int64_t i) const { return PlainRows{cov_xx + i, S, N}; }
};
struct SumRowsOf {
  const double* sum_xx;
  const double* mean_x;
  double n;
  const int64_t* S;
  int64_t N;
  __device__ SumRows operator()(int64_t i) const { return SumRows{sum_xx, mean_x, n, N, S, i}; }
};

// Writes out_col[i * N] for every source i of system (p, j): NaN for the whole
// column when the factorisation or the target's residual variance fails, else the
// partial correlation. xx(r, c) / xy(r, c): the pair's covariance entries;
// rows_of(i): the rows of B = cov_xx[S, i] (PlainRows or SumRows); var_x: the pair's
// source variances; var_y_j: the target's.
template <class Xx, class Xy, class RowsOf>
__device__ __forceinline__ void solve_system_block(const SolveShared& sh, const Xx& xx,
                                                   const Xy& xy, const RowsOf& rows_of,
                                                   const int64_t* set, int64_t s, int64_t j,
                                                   int64_t N, const double* var_x, double var_y_j,
                                                   double ridge, double tol, double* z,
                                                   double* out_col) {
  const int tid = threadIdx.x;
  const int64_t nthreads = blockDim.x;
  for (int64_t a = tid; a < s; a += nthreads) sh.S[a] = set[a];
  __syncthreads();

  // PARITY: every entry of L by the shared functions; a column's pivot before its
  // rows, columns in order.
  for (int64_t c = 0; c < s; ++c) {
    if (tid == 0) *sh.factored = cholesky_pivot(sh.Lp, xx(sh.S[c], sh.S[c]), ridge, tol, c) ? 1 : 0;
    __syncthreads();
    if (!*sh.factored) break;
    for (int64_t r = c + 1 + tid; r < s; r += nthreads)
      cholesky_offdiag(sh.Lp, xx(sh.S[r], sh.S[c]), r, c);
    __syncthreads();
  }
  // Only thread 0 reads the factorisation flag here (it is the only writer).
  if (tid == 0) {
    bool ok = *sh.factored != 0;
    if (ok) {
      const double v = solve_alpha_at(sh.Lp, xy, sh.S, s, j, var_y_j, sh.alpha);
      *sh.vy = v;
      ok = residual_ok(v, var_y_j, tol);
    }
    *sh.usable = ok ? 1 : 0;
  }
  __syncthreads();
  if (!*sh.usable) {
    const double nan = nan_d();
    for (int64_t i = tid; i < N; i += nthreads) out_col[i * N] = nan;
  } else {
    const double v = *sh.vy;
    for (int64_t i = tid; i < N; i += nthreads) {
      out_col[i * N] = partial_corr_source_at(sh.Lp, sh.alpha, sh.S, s, rows_of(i), i, j, var_x[i],
                                              xy(i, j), v, tol, z, nthreads);
    }
  }
  __syncthreads();  // the next system overwrites the shared buffers
}

}  // namespace gsnn_fast
