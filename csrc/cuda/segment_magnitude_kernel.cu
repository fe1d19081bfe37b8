// CUDA kernel of gsnn_fast::segment_magnitude; the math is in
// csrc/include/gsnn_fast/segment_magnitude.h, shared with the CPU loop.
#include <cuda_runtime.h>

#include "launch.h"
#include "launchers.h"

namespace gsnn_fast {
namespace {

// One thread per output element (l, b, n), as in the CPU loop.
template <typename scalar_t>
__global__ void segment_magnitude_kernel(const scalar_t* __restrict__ x,
                                         const int64_t* __restrict__ ptr, MagModes modes, int64_t L,
                                         int64_t B, int64_t C, int64_t N,
                                         double* __restrict__ out) {
  const int64_t total = L * B * N;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t n = t % N;
    const int64_t lb = t / N;  // l * B + b
    segment_magnitude_one(x + lb * C, ptr[n], ptr[n + 1], modes, out + t, total);
  }
}

template <typename scalar_t>
cudaError_t launch(const scalar_t* x, const int64_t* ptr, MagModes modes, int64_t L, int64_t B,
                   int64_t C, int64_t N, double* out, cudaStream_t stream) {
  const int64_t total = L * B * N;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 65535L * 32L) blocks = 65535L * 32L;
  GSNN_LAUNCH(segment_magnitude_kernel<scalar_t>, static_cast<unsigned int>(blocks), threads, 0,
              stream)(x, ptr, modes, L, B, C, N, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_segment_magnitude_f32(const float* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream) {
  return launch(x, ptr, modes, L, B, C, N, out, stream);
}

cudaError_t launch_segment_magnitude_f64(const double* x, const int64_t* ptr, MagModes modes,
                                         int64_t L, int64_t B, int64_t C, int64_t N, double* out,
                                         cudaStream_t stream) {
  return launch(x, ptr, modes, L, B, C, N, out, stream);
}

}  // namespace gsnn_fast
