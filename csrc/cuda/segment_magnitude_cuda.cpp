// CUDA glue of gsnn_fast::segment_magnitude (CUDA builds only): checks, device
// guard, stream, launcher (csrc/cuda/segment_magnitude_kernel.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "launchers.h"

namespace gsnn_fast {

at::Tensor segment_magnitude_cuda(const at::Tensor& x_in, const at::Tensor& ptr_in,
                                  c10::IntArrayRef modes_in) {
  const MagModes modes = check_segment_magnitude(x_in, ptr_in, modes_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor ptr = ptr_in.contiguous();
  const int64_t L = x.size(0), B = x.size(1), C = x.size(2), N = ptr.size(0) - 1;
  validate_segment_ptr_on_host(ptr, C);  // as on the CPU, on a host copy
  at::Tensor out = at::empty({modes.k, L, B, N}, x.options().dtype(at::kDouble));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err =
      x.scalar_type() == at::kFloat
          ? launch_segment_magnitude_f32(x.data_ptr<float>(), ptr.data_ptr<int64_t>(), modes, L, B,
                                         C, N, out.data_ptr<double>(), stream)
          : launch_segment_magnitude_f64(x.data_ptr<double>(), ptr.data_ptr<int64_t>(), modes, L, B,
                                         C, N, out.data_ptr<double>(), stream);
  TORCH_CHECK(err == cudaSuccess,
              "segment_magnitude: CUDA launch failed: ", cudaGetErrorString(err));
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) { m.impl("segment_magnitude", &segment_magnitude_cuda); }

}  // namespace gsnn_fast
