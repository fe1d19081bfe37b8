// Self-test kernels of the grid emulator (tests/test_cuda_emulator.py): planted
// races and launches beyond CUDA's limits, each of which the emulator must
// report, next to correct twins that it must pass.
#include <cuda_runtime.h>

#include "launch.h"
#include "selftest.h"

namespace gsnn_emu_selftest {
namespace {

constexpr int kThreads = 256;

__device__ void block_sum(const double* x, int64_t n, double* out, int32_t with_barrier,
                          double* tile) {
  const int tid = threadIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + tid;
  tile[tid] = i < n ? x[i] : 0.0;
  if (with_barrier) __syncthreads();
  // Tree reduction: each step reads the neighbour's partial.
  for (int half = kThreads / 2; half > 0; half /= 2) {
    double v = 0.0;
    if (tid < half) v = tile[tid] + tile[tid + half];
    if (with_barrier) __syncthreads();
    if (tid < half) tile[tid] = v;
    if (with_barrier) __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = tile[0];
}

__global__ void block_sum_kernel(const double* x, int64_t n, double* out, int32_t with_barrier) {
  GSNN_SHARED_ARRAY(double, tile, kThreads);
  block_sum(x, n, out, with_barrier, tile);
}

__global__ void block_sum_plain_kernel(const double* x, int64_t n, double* out,
                                       int32_t with_barrier) {
  __shared__ double tile[kThreads];
  block_sum(x, n, out, with_barrier, tile);
}

__global__ void fill_kernel(double* out) { out[threadIdx.x] = threadIdx.x; }

__global__ void grid_y_kernel(double* out) { out[blockIdx.y] = blockIdx.y; }

__global__ void dynamic_smem_kernel(double* out, int64_t count) {
  GSNN_DYNAMIC_SHARED(double, buf);
  buf[count - 1] = 1.0;
  out[0] = buf[count - 1];
}

__global__ void static_smem_kernel(double* out) {
  GSNN_SHARED_ARRAY(double, big, 40 * 1024 / 8);
  big[0] = 2.0;
  out[0] = big[0];
}

__global__ void flag_race_kernel(double* out, int32_t fixed) {
  GSNN_SHARED(int, flag);
  const int tid = threadIdx.x;
  if (tid == 0) flag = 1;
  __syncthreads();
  if (fixed) {
    if (tid == 0 && flag) flag = 0;  // only thread 0 reads before the barrier
  } else {
    if (flag && tid == 0) flag = 0;  // every thread reads while thread 0 writes
  }
  __syncthreads();
  out[tid] = flag;
}

__global__ void block_scratch_kernel(double* scratch, double* out, int32_t per_block) {
  const int tid = threadIdx.x;
  double* mine = scratch + (per_block ? blockIdx.x * blockDim.x : 0) + tid;
  *mine = blockIdx.x * 1000.0 + tid;
  out[blockIdx.x * blockDim.x + tid] = *mine;
}

__global__ void global_race_kernel(double* out) { out[0] = threadIdx.x; }

__global__ void past_end_kernel(double* out, int64_t n) {
  if (threadIdx.x <= n) out[threadIdx.x] = 1.0;  // should be < n
}

}  // namespace

cudaError_t launch_block_sum(const double* x, int64_t n, double* out, int32_t with_barrier,
                             int32_t plain_shared, cudaStream_t stream) {
  const unsigned int blocks = static_cast<unsigned int>((n + kThreads - 1) / kThreads);
  if (plain_shared) {
    GSNN_LAUNCH(block_sum_plain_kernel, blocks, kThreads, 0, stream)(x, n, out, with_barrier);
    return cudaGetLastError();
  }
  GSNN_LAUNCH(block_sum_kernel, blocks, kThreads, 0, stream)(x, n, out, with_barrier);
  return cudaGetLastError();
}

cudaError_t launch_fill(double* out, int64_t threads, cudaStream_t stream) {
  GSNN_LAUNCH(fill_kernel, 1, static_cast<unsigned int>(threads), 0, stream)(out);
  return cudaGetLastError();
}

cudaError_t launch_grid_y(double* out, int64_t grid_y, cudaStream_t stream) {
  GSNN_LAUNCH(grid_y_kernel, dim3(1, static_cast<unsigned int>(grid_y), 1), 1, 0, stream)(out);
  return cudaGetLastError();
}

cudaError_t launch_dynamic_smem(double* out, int64_t bytes, int32_t opt_in, cudaStream_t stream) {
  if (opt_in) {
    const cudaError_t err = cudaFuncSetAttribute(
        dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (err != cudaSuccess) return err;
  }
  GSNN_LAUNCH(dynamic_smem_kernel, 1, 1, static_cast<size_t>(bytes), stream)(out, bytes / 8);
  return cudaGetLastError();
}

cudaError_t launch_static_smem(double* out, int64_t dyn_bytes, cudaStream_t stream) {
  GSNN_LAUNCH(static_smem_kernel, 1, 1, static_cast<size_t>(dyn_bytes), stream)(out);
  return cudaGetLastError();
}

cudaError_t launch_flag_race(double* out, int32_t fixed, cudaStream_t stream) {
  GSNN_LAUNCH(flag_race_kernel, 1, 64, 0, stream)(out, fixed);
  return cudaGetLastError();
}

}  // namespace gsnn_emu_selftest

namespace gsnn_emu_selftest {

cudaError_t launch_block_scratch(double* scratch, double* out, int32_t per_block,
                                 cudaStream_t stream) {
  GSNN_LAUNCH(block_scratch_kernel, 4, 64, 0, stream)(scratch, out, per_block);
  return cudaGetLastError();
}

cudaError_t launch_global_race(double* out, cudaStream_t stream) {
  GSNN_LAUNCH(global_race_kernel, 1, 32, 0, stream)(out);
  return cudaGetLastError();
}

cudaError_t launch_past_end(double* out, int64_t n, cudaStream_t stream) {
  GSNN_LAUNCH(past_end_kernel, 1, 64, 0, stream)(out, n);
  return cudaGetLastError();
}

}  // namespace gsnn_emu_selftest
