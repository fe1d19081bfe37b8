// CUDA glue of gsnn_fast::pair_corr (CUDA builds only): checks, device guard,
// stream, scratch, launcher (csrc/cuda/pair_corr_kernel.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "launchers.h"

namespace gsnn_fast {

std::tuple<at::Tensor, at::Tensor> pair_corr_cuda(const at::Tensor& sum_x_in,
                                                  const at::Tensor& sum_y_in,
                                                  const at::Tensor& sum_x2_in,
                                                  const at::Tensor& sum_y2_in,
                                                  const at::Tensor& sum_xy_in, double n, double tol,
                                                  int64_t rule, int64_t agg, bool per_pair) {
  check_pair_corr(sum_x_in, sum_y_in, sum_x2_in, sum_y2_in, sum_xy_in, n, tol, rule, agg);
  const c10::cuda::CUDAGuard guard(sum_xy_in.device());
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous();
  const at::Tensor sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous();
  const at::Tensor sum_xy = sum_xy_in.contiguous();
  const int64_t P = sum_xy.size(0), M = sum_xy.size(1), N = sum_xy.size(2);
  const auto opts = sum_xy.options();
  at::Tensor pairs = per_pair ? at::empty({P, M, N}, opts) : at::empty({0}, opts);
  at::Tensor out = at::empty({M, N}, opts);
  if (M == 0 || N == 0) return {pairs, out};
  at::Tensor scratch = at::empty({3 * P * (M + N)}, opts);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err = launch_pair_corr(
      sum_x.data_ptr<double>(), sum_y.data_ptr<double>(), sum_x2.data_ptr<double>(),
      sum_y2.data_ptr<double>(), sum_xy.data_ptr<double>(), P, M, N, n, tol,
      static_cast<int32_t>(rule), static_cast<int32_t>(agg), scratch.data_ptr<double>(),
      per_pair ? pairs.data_ptr<double>() : nullptr, out.data_ptr<double>(), stream);
  TORCH_CHECK(err == cudaSuccess, "pair_corr: CUDA launch failed: ", cudaGetErrorString(err));
  return {pairs, out};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) { m.impl("pair_corr", &pair_corr_cuda); }

}  // namespace gsnn_fast
