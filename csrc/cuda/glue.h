// Helpers shared by the torch glue of the CUDA ops (csrc/cuda/*_cuda.cpp; CUDA
// builds only): launch status, the shared-memory budget of the solve kernels,
// and their grid.
#pragma once

#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "gsnn_fast/partial_corr.h"

namespace gsnn_fast {

inline void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
}

// The dynamic shared memory of a block that factorises sets of up to smax members
// (partial_corr, pair_partial_corr), checked against the current device's opt-in
// limit; a clear error names the largest set the device can take.
inline int64_t check_solve_shared_memory(int64_t smax, const char* op) {
  const int64_t smem = partial_corr_smem_bytes(smax);
  int dev = 0, optin = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  TORCH_CHECK(err == cudaSuccess, op, ": cannot query the device: ", cudaGetErrorString(err));
  if (smem > optin) {
    int64_t s_ok = 0;
    while (partial_corr_smem_bytes(s_ok + 1) <= optin) ++s_ok;
    TORCH_CHECK(false, op, ": the largest conditioning set has ", smax,
                " members; its Cholesky factor needs ", smem,
                " bytes of shared memory per block, more than the ", optin,
                " bytes this device allows (at most ", s_ok,
                " members). Cap the conditioning sets or run this op on the CPU.");
  }
  return smem;
}

// Blocks of a solve kernel: one per system up to 65,535, fewer when the per-thread
// z scratch (smax doubles per thread) would pass ~256 MiB; the blocks then take
// several systems each (grid-stride).
inline int64_t solve_blocks(int64_t systems, int64_t smax) {
  const int64_t per_block = smax * kPartialCorrThreads;  // doubles
  int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(systems, 65535));
  if (per_block > 0)
    blocks = std::max<int64_t>(1, std::min<int64_t>(blocks, (int64_t{1} << 25) / per_block));
  return blocks;
}

}  // namespace gsnn_fast
