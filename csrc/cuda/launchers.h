// POD-only declarations of the CUDA launchers (csrc/cuda/*_kernel.cu).
// Included by the .cu files and by the torch glue (csrc/cuda/*_cuda.cpp);
// no torch or ATen types cross this boundary. Each launcher enqueues its
// kernels on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gsnn_fast/segment_magnitude.h"

namespace gsnn_fast {

cudaError_t launch_segment_magnitude_f32(const float* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream);
cudaError_t launch_segment_magnitude_f64(const double* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream);

}  // namespace gsnn_fast
