// POD-only declarations of the CUDA launchers (csrc/cuda/*_kernel.cu).
// Included by the .cu files and by the torch glue (csrc/cuda/*_cuda.cpp);
// no torch or ATen types cross this boundary. Each launcher enqueues its
// kernels on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gsnn_fast/segment_magnitude.h"
#include "gsnn_fast/pair_stats.h"
#include "gsnn_fast/pair_corr.h"
#include "gsnn_fast/partial_corr.h"

namespace gsnn_fast {

cudaError_t launch_segment_magnitude_f32(const float* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream);
cudaError_t launch_segment_magnitude_f64(const double* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream);

// sparse_linear (gsnn_fast/sparse_linear.h). spmm: out[b, c] (leading dimension
// ldo) for the n_cols CSR segments of ptr/idx/perm, reading xT (rows, B); bias
// may be null. grad_values: gv[perm[s]] for every slot of the transpose CSR
// (n_rows segments). grad_bias: column sums of g (B, M).
cudaError_t launch_sparse_linear_spmm_f32(const float* xT, int64_t B, const int64_t* ptr,
                                          const int64_t* idx, const int64_t* perm,
                                          const float* values, const float* bias, float* out,
                                          int64_t ldo, int64_t n_cols, cudaStream_t stream);
cudaError_t launch_sparse_linear_spmm_f64(const double* xT, int64_t B, const int64_t* ptr,
                                          const int64_t* idx, const int64_t* perm,
                                          const double* values, const double* bias, double* out,
                                          int64_t ldo, int64_t n_cols, cudaStream_t stream);
cudaError_t launch_sparse_linear_grad_values_f32(const float* xT, const float* gT, int64_t B,
                                                 const int64_t* ptr, const int64_t* cols,
                                                 const int64_t* perm, int64_t n_rows, int64_t nnz,
                                                 float* gv, cudaStream_t stream);
cudaError_t launch_sparse_linear_grad_values_f64(const double* xT, const double* gT, int64_t B,
                                                 const int64_t* ptr, const int64_t* cols,
                                                 const int64_t* perm, int64_t n_rows, int64_t nnz,
                                                 double* gv, cudaStream_t stream);
cudaError_t launch_sparse_linear_grad_bias_f32(const float* g, int64_t B, int64_t M, float* out,
                                               cudaStream_t stream);
cudaError_t launch_sparse_linear_grad_bias_f64(const double* g, int64_t B, int64_t M, double* out,
                                               cudaStream_t stream);

// x, y: (L, B, N) float64 device pointers; sums as in gsnn_fast/pair_stats.h,
// sum_xx may be null (not tracked).
cudaError_t launch_pair_stats_update(const double* x, const double* y, int64_t L, int64_t B,
                                     int64_t N, double* sum_x, double* sum_y, double* sum_x2,
                                     double* sum_y2, double* sum_xy, double* sum_xx,
                                     cudaStream_t stream);

// Inputs as in gsnn_fast/partial_corr.h (contiguous device pointers); smax = the
// largest set size; scratch holds num_blocks * kPartialCorrThreads * smax
// doubles; the dynamic shared memory is partial_corr_smem_bytes(smax), which the
// caller has checked against the device's opt-in limit.
cudaError_t launch_partial_corr(const double* corr, const double* cov_xy, const double* cov_xx,
                                const double* var_x, const double* var_y, const int64_t* ptr,
                                const int64_t* idx, int64_t P, int64_t N, int64_t smax,
                                double ridge, double tol, double* out, double* scratch,
                                int64_t num_blocks, cudaStream_t stream);

// Inputs as in gsnn_fast/pair_corr.h (contiguous device pointers: sum_x, sum_x2
// [P, M], sum_y, sum_y2 [P, N], sum_xy [P, M, N]); scratch holds 3 * P * (M + N)
// doubles (the per-node moments, pair_corr_moments_view); per_pair ([P, M, N]) may
// be null; out is [M, N].
cudaError_t launch_pair_corr(const double* sum_x, const double* sum_y, const double* sum_x2,
                             const double* sum_y2, const double* sum_xy, int64_t P, int64_t M,
                             int64_t N, double n, double tol, int32_t rule, int32_t agg,
                             double* scratch, double* per_pair, double* out, cudaStream_t stream);

// Inputs as in gsnn_fast::pair_partial_corr (contiguous device pointers: sum_x,
// sum_y, sum_x2, sum_y2 [P, N], sum_xy, sum_xx [P, N, N]; the conditioning CSR
// ptr [N + 1] / idx, validated, smax = the largest set); per_pair ([P, N, N]) may
// be null; out is [N, N]; work holds pair_partial_corr_work_doubles(P, N, smax,
// num_blocks, per_pair != null, agg) doubles (gsnn_fast/partial_corr.h); the
// dynamic shared memory is partial_corr_smem_bytes(smax), which the caller has
// checked against the device's opt-in limit.
cudaError_t launch_pair_partial_corr(const double* sum_x, const double* sum_y, const double* sum_x2,
                                     const double* sum_y2, const double* sum_xy,
                                     const double* sum_xx, const int64_t* ptr, const int64_t* idx,
                                     int64_t P, int64_t N, int64_t smax, double n, double ridge,
                                     double tol, int32_t agg, double* per_pair, double* out,
                                     double* work, int64_t num_blocks, cudaStream_t stream);

}  // namespace gsnn_fast
