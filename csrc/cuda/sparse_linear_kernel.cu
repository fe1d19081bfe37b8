// CUDA kernels of gsnn_fast::sparse_linear and sparse_linear_backward; the math
// and the summation order are in csrc/include/gsnn_fast/sparse_linear.h, shared
// with the CPU loops. No atomics: every output element has its own thread.
#include <cuda_runtime.h>

#include "gsnn_fast/sparse_linear.h"
#include "launch.h"
#include "launchers.h"

namespace gsnn_fast {
namespace {

constexpr int kThreads = 256;

inline unsigned int grid_for(int64_t total) {
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > 65535L * 32L) blocks = 65535L * 32L;
  return static_cast<unsigned int>(blocks);
}

// out[b, c] for every column c of the CSR (n_cols segments) and every b: one
// thread per (c, b), b fastest so that a warp reads contiguous xT rows.
template <typename scalar_t>
__global__ void spmm_kernel(const scalar_t* __restrict__ xT, int64_t B,
                            const int64_t* __restrict__ ptr, const int64_t* __restrict__ idx,
                            const int64_t* __restrict__ perm, const scalar_t* __restrict__ values,
                            const scalar_t* __restrict__ bias, scalar_t* __restrict__ out,
                            int64_t ldo, int64_t n_cols) {
  const int64_t total = n_cols * B;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t b = t % B, c = t / B;
    const bool hb = bias != nullptr;
    // PARITY: the same per-element function as the CPU, with a tile of one sample.
    out[b * ldo + c] = sl::spmm_one(xT, B, idx, perm, values, ptr[c], ptr[c + 1], b, hb,
                                    hb ? bias[c] : scalar_t(0));
  }
}

// grad_values: one thread per CSR slot s of the transpose CSR; its input row r is
// the segment holding s (binary search over ptr).
template <typename scalar_t>
__global__ void grad_values_kernel(const scalar_t* __restrict__ xT, const scalar_t* __restrict__ gT,
                                   int64_t B, const int64_t* __restrict__ ptr,
                                   const int64_t* __restrict__ cols,
                                   const int64_t* __restrict__ perm, int64_t n_rows, int64_t nnz,
                                   scalar_t* __restrict__ gv) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < nnz;
       s += stride) {
    int64_t lo = 0, hi = n_rows;  // largest r with ptr[r] <= s (then ptr[r + 1] > s)
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (ptr[mid] <= s)
        lo = mid;
      else
        hi = mid;
    }
    gv[perm[s]] = sl::lane_dot(xT + lo * B, gT + cols[s] * B, B);
  }
}

// grad_bias: one thread per output m, b ascending.
template <typename scalar_t>
__global__ void column_sum_kernel(const scalar_t* __restrict__ g, int64_t B, int64_t M,
                                  scalar_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < M;
       m += stride) {
    out[m] = sl::column_sum_one(g, M, B, m);
  }
}

template <typename scalar_t>
cudaError_t spmm(const scalar_t* xT, int64_t B, const int64_t* ptr, const int64_t* idx,
                 const int64_t* perm, const scalar_t* values, const scalar_t* bias, scalar_t* out,
                 int64_t ldo, int64_t n_cols, cudaStream_t stream) {
  const int64_t total = n_cols * B;
  if (total == 0) return cudaSuccess;
  GSNN_LAUNCH(spmm_kernel<scalar_t>, grid_for(total), kThreads, 0, stream)(
      xT, B, ptr, idx, perm, values, bias, out, ldo, n_cols);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t grad_values(const scalar_t* xT, const scalar_t* gT, int64_t B, const int64_t* ptr,
                        const int64_t* cols, const int64_t* perm, int64_t n_rows, int64_t nnz,
                        scalar_t* gv, cudaStream_t stream) {
  if (nnz == 0) return cudaSuccess;
  GSNN_LAUNCH(grad_values_kernel<scalar_t>, grid_for(nnz), kThreads, 0, stream)(
      xT, gT, B, ptr, cols, perm, n_rows, nnz, gv);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t grad_bias(const scalar_t* g, int64_t B, int64_t M, scalar_t* out, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  GSNN_LAUNCH(column_sum_kernel<scalar_t>, grid_for(M), kThreads, 0, stream)(g, B, M, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sparse_linear_spmm_f32(const float* xT, int64_t B, const int64_t* ptr,
                                          const int64_t* idx, const int64_t* perm,
                                          const float* values, const float* bias, float* out,
                                          int64_t ldo, int64_t n_cols, cudaStream_t stream) {
  return spmm(xT, B, ptr, idx, perm, values, bias, out, ldo, n_cols, stream);
}
cudaError_t launch_sparse_linear_spmm_f64(const double* xT, int64_t B, const int64_t* ptr,
                                          const int64_t* idx, const int64_t* perm,
                                          const double* values, const double* bias, double* out,
                                          int64_t ldo, int64_t n_cols, cudaStream_t stream) {
  return spmm(xT, B, ptr, idx, perm, values, bias, out, ldo, n_cols, stream);
}
cudaError_t launch_sparse_linear_grad_values_f32(const float* xT, const float* gT, int64_t B,
                                                 const int64_t* ptr, const int64_t* cols,
                                                 const int64_t* perm, int64_t n_rows, int64_t nnz,
                                                 float* gv, cudaStream_t stream) {
  return grad_values(xT, gT, B, ptr, cols, perm, n_rows, nnz, gv, stream);
}
cudaError_t launch_sparse_linear_grad_values_f64(const double* xT, const double* gT, int64_t B,
                                                 const int64_t* ptr, const int64_t* cols,
                                                 const int64_t* perm, int64_t n_rows, int64_t nnz,
                                                 double* gv, cudaStream_t stream) {
  return grad_values(xT, gT, B, ptr, cols, perm, n_rows, nnz, gv, stream);
}
cudaError_t launch_sparse_linear_grad_bias_f32(const float* g, int64_t B, int64_t M, float* out,
                                               cudaStream_t stream) {
  return grad_bias(g, B, M, out, stream);
}
cudaError_t launch_sparse_linear_grad_bias_f64(const double* g, int64_t B, int64_t M, double* out,
                                               cudaStream_t stream) {
  return grad_bias(g, B, M, out, stream);
}

}  // namespace gsnn_fast
