// CUDA glue of gsnn_fast::pair_stats_update (CUDA builds only): checks, device
// guard, stream, launcher (csrc/cuda/pair_stats_kernel.cu).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "launchers.h"

namespace gsnn_fast {

void pair_stats_update_cuda(const at::Tensor& xmag_in, const at::Tensor& ymag_in,
                            const at::Tensor& sum_x, const at::Tensor& sum_y,
                            const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                            const at::Tensor& sum_xy, const c10::optional<at::Tensor>& sum_xx) {
  check_pair_stats_update(xmag_in, ymag_in, sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx);
  const c10::cuda::CUDAGuard guard(xmag_in.device());
  const at::Tensor xmag = xmag_in.contiguous();
  const at::Tensor ymag = ymag_in.contiguous();
  const int64_t L = xmag.size(0), B = xmag.size(1), N = xmag.size(2);
  const int64_t nt = (N + 63) / 64;
  TORCH_CHECK(nt <= 65535 && L - 1 <= 65535, "pair_stats_update: N = ", N, " or P = ", L - 1,
              " exceeds the CUDA grid (N <= 4,194,240 and P <= 65,535)");
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err = launch_pair_stats_update(
      xmag.data_ptr<double>(), ymag.data_ptr<double>(), L, B, N, sum_x.data_ptr<double>(),
      sum_y.data_ptr<double>(), sum_x2.data_ptr<double>(), sum_y2.data_ptr<double>(),
      sum_xy.data_ptr<double>(), sum_xx.has_value() ? sum_xx->data_ptr<double>() : nullptr, stream);
  TORCH_CHECK(err == cudaSuccess,
              "pair_stats_update: CUDA launch failed: ", cudaGetErrorString(err));
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) { m.impl("pair_stats_update", &pair_stats_update_cuda); }

}  // namespace gsnn_fast
