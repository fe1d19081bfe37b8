// How the .cu files launch kernels and declare shared memory.
//
// Every launch in csrc/cuda/*_kernel.cu is written
//   GSNN_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...);
// the dynamic shared memory of a kernel is declared
//   GSNN_DYNAMIC_SHARED(double, smem);   // then used as `double* smem`
// and its static shared variables
//   GSNN_SHARED(int, flag);
//   GSNN_SHARED_ARRAY(double, tile, 64 * 65);
// With nvcc these are the plain CUDA forms. The test-only grid emulator
// (tests/emulator, docs/EMULATOR.md) compiles the same .cu files as host C++ with
// GSNN_FAST_EMULATOR defined and its own cuda_runtime.h first on the include
// path; there the macros run the grid on host fibers, check CUDA's launch limits
// and count the static shared memory of each kernel.
#pragma once

#if defined(GSNN_FAST_EMULATOR)
#include "gsnn_emulator.h"
#else
#define GSNN_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
#define GSNN_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define GSNN_SHARED(type, name) __shared__ type name
#define GSNN_SHARED_ARRAY(type, name, count) __shared__ type name[count]
#endif
