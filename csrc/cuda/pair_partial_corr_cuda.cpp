// CUDA glue of gsnn_fast::pair_partial_corr (CUDA builds only): the checks shared
// with the CPU op (checks.h; the CSR on a host copy, which also gives the largest
// set), device guard, stream, work buffer, launcher
// (csrc/cuda/pair_partial_corr_kernel.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "glue.h"
#include "launchers.h"

namespace gsnn_fast {

std::tuple<at::Tensor, at::Tensor> pair_partial_corr_cuda(
    const at::Tensor& sum_x_in, const at::Tensor& sum_y_in, const at::Tensor& sum_x2_in,
    const at::Tensor& sum_y2_in, const at::Tensor& sum_xy_in, const at::Tensor& sum_xx_in,
    const at::Tensor& ptr_in, const at::Tensor& idx_in, double n, double ridge, double tol,
    int64_t agg, bool per_pair) {
  constexpr const char* kOp = "pair_partial_corr";
  check_pair_partial_corr(sum_x_in, sum_y_in, sum_x2_in, sum_y2_in, sum_xy_in, sum_xx_in, ptr_in,
                          idx_in, n, ridge, tol, agg);
  const c10::cuda::CUDAGuard guard(sum_xy_in.device());
  const at::Tensor sum_x = sum_x_in.contiguous(), sum_y = sum_y_in.contiguous(),
                   sum_x2 = sum_x2_in.contiguous(), sum_y2 = sum_y2_in.contiguous(),
                   sum_xy = sum_xy_in.contiguous(), sum_xx = sum_xx_in.contiguous(),
                   ptr = ptr_in.contiguous(), idx = idx_in.contiguous();
  const int64_t P = sum_xy.size(0), N = sum_xy.size(1);

  // Host copies of the CSR (N + 1 and nnz integers; this synchronises).
  const at::Tensor ptr_h = ptr.cpu(), idx_h = idx.cpu();
  const int64_t smax = check_partial_corr_csr(ptr_h.data_ptr<int64_t>(), N,
                                              idx_h.data_ptr<int64_t>(), idx.size(0), kOp);

  const auto opts = sum_xy.options();
  at::Tensor pairs = per_pair ? at::empty({P, N, N}, opts) : at::empty({0}, opts);
  at::Tensor out = at::empty({N, N}, opts);
  if (N == 0) return {pairs, out};
  const int64_t blocks = solve_blocks(N, smax);
  if (P > 0) check_solve_shared_memory(smax, kOp);
  const int32_t ag = static_cast<int32_t>(agg);
  at::Tensor work = at::empty(
      {std::max<int64_t>(1, pair_partial_corr_work_doubles(P, N, smax, blocks, per_pair, ag))},
      opts);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  check_launch(launch_pair_partial_corr(
                   sum_x.data_ptr<double>(), sum_y.data_ptr<double>(), sum_x2.data_ptr<double>(),
                   sum_y2.data_ptr<double>(), sum_xy.data_ptr<double>(), sum_xx.data_ptr<double>(),
                   ptr.data_ptr<int64_t>(), idx.data_ptr<int64_t>(), P, N, smax, n, ridge, tol, ag,
                   per_pair ? pairs.data_ptr<double>() : nullptr, out.data_ptr<double>(),
                   work.data_ptr<double>(), blocks, stream),
               kOp);
  return {pairs, out};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) { m.impl("pair_partial_corr", &pair_partial_corr_cuda); }

}  // namespace gsnn_fast
