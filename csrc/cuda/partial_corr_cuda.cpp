// CUDA glue of gsnn_fast::partial_corr (CUDA builds only): checks (the CSR is
// validated on a host copy, by the CPU op's function, which also gives the largest
// set size that sizes the shared memory), device guard, stream, scratch, launcher
// (csrc/cuda/partial_corr_kernel.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "glue.h"
#include "launchers.h"

namespace gsnn_fast {

at::Tensor partial_corr_cuda(const at::Tensor& corr_in, const at::Tensor& cov_xy_in,
                             const at::Tensor& cov_xx_in, const at::Tensor& var_x_in,
                             const at::Tensor& var_y_in, const at::Tensor& ptr_in,
                             const at::Tensor& idx_in, double ridge, double tol) {
  check_partial_corr(corr_in, cov_xy_in, cov_xx_in, var_x_in, var_y_in, ptr_in, idx_in);
  const c10::cuda::CUDAGuard guard(corr_in.device());
  const at::Tensor corr = corr_in.contiguous(), cov_xy = cov_xy_in.contiguous(),
                   cov_xx = cov_xx_in.contiguous(), var_x = var_x_in.contiguous(),
                   var_y = var_y_in.contiguous(), ptr = ptr_in.contiguous(),
                   idx = idx_in.contiguous();
  const int64_t P = corr.size(0), N = corr.size(1);

  // Host copies of the CSR (N + 1 and nnz integers; this synchronises).
  const at::Tensor ptr_h = ptr.cpu(), idx_h = idx.cpu();
  const int64_t smax =
      check_partial_corr_csr(ptr_h.data_ptr<int64_t>(), N, idx_h.data_ptr<int64_t>(), idx.size(0));

  at::Tensor out = at::empty({P, N, N}, corr.options());
  if (P == 0 || N == 0) return out;

  check_solve_shared_memory(smax, "partial_corr");
  const int64_t blocks = solve_blocks(P * N, smax);
  at::Tensor scratch =
      at::empty({std::max<int64_t>(1, blocks * smax * kPartialCorrThreads)}, corr.options());

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err = launch_partial_corr(
      corr.data_ptr<double>(), cov_xy.data_ptr<double>(), cov_xx.data_ptr<double>(),
      var_x.data_ptr<double>(), var_y.data_ptr<double>(), ptr.data_ptr<int64_t>(),
      idx.data_ptr<int64_t>(), P, N, smax, ridge, tol, out.data_ptr<double>(),
      scratch.data_ptr<double>(), blocks, stream);
  check_launch(err, "partial_corr");
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) { m.impl("partial_corr", &partial_corr_cuda); }

}  // namespace gsnn_fast
