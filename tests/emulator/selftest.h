// Launchers of the emulator's self-test kernels (selftest_kernel.cu): each one
// breaks, or carefully keeps, one rule the emulator checks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gsnn_emu_selftest {

// Block sums of x (n values, 256 per block) through shared memory; out gets one
// value per block. with_barrier = 0 leaves out the __syncthreads() between the
// writes of the shared tile and the reads of the neighbours' entries: a race.
// plain_shared = 1 declares the tile with a plain __shared__ instead of
// GSNN_SHARED_ARRAY.
cudaError_t launch_block_sum(const double* x, int64_t n, double* out, int32_t with_barrier,
                             int32_t plain_shared, cudaStream_t stream);
// Launches with `threads` threads per block (1025 is one too many).
cudaError_t launch_fill(double* out, int64_t threads, cudaStream_t stream);
// A grid of (1, grid_y, 1) blocks of one thread; grid_y = 65536 is one too many.
cudaError_t launch_grid_y(double* out, int64_t grid_y, cudaStream_t stream);
// `bytes` of dynamic shared memory; opt_in = 1 raises the kernel's limit first.
cudaError_t launch_dynamic_smem(double* out, int64_t bytes, int32_t opt_in, cudaStream_t stream);
// 40 KiB of static shared memory plus `dyn_bytes` of dynamic shared memory.
cudaError_t launch_static_smem(double* out, int64_t dyn_bytes, cudaStream_t stream);
// Thread 0 writes a shared flag that every thread reads in the same barrier
// interval (`if (flag && tid == 0)`), the pattern fixed in partial_corr.
cudaError_t launch_flag_race(double* out, int32_t fixed, cudaStream_t stream);
// 4 blocks of 64 threads; each thread writes its slot of a per-block scratch
// area, then copies it to out. per_block = 0 forgets the block's offset into
// the scratch: the blocks share one area, a race between blocks.
cudaError_t launch_block_scratch(double* scratch, double* out, int32_t per_block,
                                 cudaStream_t stream);
// Every thread of one block writes out[0]: a race in global memory.
cudaError_t launch_global_race(double* out, cudaStream_t stream);
// Threads 0..n of one block write out[tid]: with n elements in out, the last
// thread writes one past the end (an off-by-one bound).
cudaError_t launch_past_end(double* out, int64_t n, cudaStream_t stream);

}  // namespace gsnn_emu_selftest
