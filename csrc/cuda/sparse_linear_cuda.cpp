// CUDA glue of gsnn_fast::sparse_linear and sparse_linear_backward (CUDA builds
// only): checks, device guard, stream, launchers (csrc/cuda/sparse_linear_kernel.cu).
// The CSR contents are checked as on the CPU, on host copies, once per unmodified
// index tensor (checks.h, validate_on_host).
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
namespace {

cudaError_t spmm(const at::Tensor& xT, int64_t B, const at::Tensor& ptr, const at::Tensor& idx,
                 const at::Tensor& perm, const at::Tensor& values, const at::Tensor& bias,
                 at::Tensor& out, int64_t ldo, int64_t n_cols, cudaStream_t stream) {
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t* qp = perm.data_ptr<int64_t>();
  if (xT.scalar_type() == at::kFloat) {
    return launch_sparse_linear_spmm_f32(xT.data_ptr<float>(), B, pp, ip, qp,
                                         values.data_ptr<float>(),
                                         bias.defined() ? bias.data_ptr<float>() : nullptr,
                                         out.data_ptr<float>(), ldo, n_cols, stream);
  }
  return launch_sparse_linear_spmm_f64(xT.data_ptr<double>(), B, pp, ip, qp,
                                       values.data_ptr<double>(),
                                       bias.defined() ? bias.data_ptr<double>() : nullptr,
                                       out.data_ptr<double>(), ldo, n_cols, stream);
}

}  // namespace

at::Tensor sparse_linear_cuda(const at::Tensor& x_in, const at::Tensor& values_in,
                              const c10::optional<at::Tensor>& bias_in, const at::Tensor& out_ptr,
                              const at::Tensor& out_rows, const at::Tensor& out_perm,
                              const at::Tensor& in_ptr, const at::Tensor& in_cols,
                              const at::Tensor& in_perm, int64_t n_out) {
  check_sparse_linear_call(x_in, values_in, bias_in, out_ptr, out_rows, out_perm, in_ptr, in_cols,
                           in_perm, n_out);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t B = x_in.size(0), M = n_out;
  const at::Tensor xT = x_in.t().contiguous();  // (N, B)
  const at::Tensor values = values_in.contiguous();
  at::Tensor bias;
  if (bias_in.has_value() && bias_in->defined()) bias = bias_in->contiguous();
  at::Tensor y = at::empty({B, M}, x_in.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  check_launch(spmm(xT, B, out_ptr.contiguous(), out_rows.contiguous(), out_perm.contiguous(),
                    values, bias, y, M, M, stream),
               "sparse_linear");
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_linear_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& values_in,
    const at::Tensor& in_ptr, const at::Tensor& in_cols, const at::Tensor& in_perm, bool need_x,
    bool need_values, bool need_bias) {
  check_sparse_linear_backward_call(grad_out, x_in, values_in, in_ptr, in_cols, in_perm,
                                    need_values);
  const int64_t B = x_in.size(0), N = x_in.size(1), M = grad_out.size(1), nnz = values_in.size(0);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor g = grad_out.contiguous();  // (B, M)
  const at::Tensor ptr = in_ptr.contiguous(), cols = in_cols.contiguous(),
                   perm = in_perm.contiguous();
  const at::Tensor values = values_in.contiguous();
  at::Tensor gT, xT;
  if (need_x || need_values) gT = g.t().contiguous();  // (M, B)
  if (need_values) xT = x_in.t().contiguous();         // (N, B)
  at::Tensor grad_x = at::empty({need_x ? B : 0, need_x ? N : 0}, x_in.options());
  at::Tensor grad_values = at::empty({need_values ? nnz : 0}, x_in.options());
  at::Tensor grad_bias = at::empty({need_bias ? M : 0}, x_in.options());
  const bool f32 = x_in.scalar_type() == at::kFloat;
  if (need_x) {
    check_launch(spmm(gT, B, ptr, cols, perm, values, at::Tensor(), grad_x, N, N, stream),
                 "sparse_linear_backward");
  }
  if (need_values) {
    const int64_t* pp = ptr.data_ptr<int64_t>();
    const int64_t* cp = cols.data_ptr<int64_t>();
    const int64_t* qp = perm.data_ptr<int64_t>();
    check_launch(f32 ? launch_sparse_linear_grad_values_f32(
                           xT.data_ptr<float>(), gT.data_ptr<float>(), B, pp, cp, qp, N, nnz,
                           grad_values.data_ptr<float>(), stream)
                     : launch_sparse_linear_grad_values_f64(
                           xT.data_ptr<double>(), gT.data_ptr<double>(), B, pp, cp, qp, N, nnz,
                           grad_values.data_ptr<double>(), stream),
                 "sparse_linear_backward");
  }
  if (need_bias) {
    check_launch(f32 ? launch_sparse_linear_grad_bias_f32(g.data_ptr<float>(), B, M,
                                                          grad_bias.data_ptr<float>(), stream)
                     : launch_sparse_linear_grad_bias_f64(g.data_ptr<double>(), B, M,
                                                          grad_bias.data_ptr<double>(), stream),
                 "sparse_linear_backward");
  }
  return {grad_x, grad_values, grad_bias};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) {
  m.impl("sparse_linear", &sparse_linear_cuda);
  m.impl("sparse_linear_backward", &sparse_linear_backward_cuda);
}

}  // namespace gsnn_fast
