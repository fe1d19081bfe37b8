// CPU backend of gsnn_fast::partial_corr (math and order: gsnn_fast/partial_corr.h):
// the checks, then every (pair, target) system through the shared engine
// (partial_corr_engine.h) on the ISA variant isa.h picks.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "huge_pages.h"
#include "partial_corr_engine.h"

namespace gsnn_fast {

at::Tensor partial_corr_cpu(const at::Tensor& corr_in, const at::Tensor& cov_xy_in,
                            const at::Tensor& cov_xx_in, const at::Tensor& var_x_in,
                            const at::Tensor& var_y_in, const at::Tensor& ptr_in,
                            const at::Tensor& idx_in, double ridge, double tol) {
  check_partial_corr(corr_in, cov_xy_in, cov_xx_in, var_x_in, var_y_in, ptr_in, idx_in);
  const at::Tensor corr = corr_in.contiguous(), cov_xy = cov_xy_in.contiguous(),
                   cov_xx = cov_xx_in.contiguous(), var_x = var_x_in.contiguous(),
                   var_y = var_y_in.contiguous(), ptr = ptr_in.contiguous(),
                   idx = idx_in.contiguous();
  const int64_t P = corr.size(0), N = corr.size(1);
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t smax = check_partial_corr_csr(pp, N, ix, idx.size(0));
  at::Tensor out = at::empty({P, N, N}, corr.options());
  advise_huge_pages(out);
  if (P == 0 || N == 0) return out;
  const PartialCorrCtx c{corr.data_ptr<double>(),
                         cov_xy.data_ptr<double>(),
                         cov_xx.data_ptr<double>(),
                         var_x.data_ptr<double>(),
                         var_y.data_ptr<double>(),
                         out.data_ptr<double>(),
                         pp,
                         ix,
                         P,
                         N,
                         ridge,
                         tol};
  partial_corr_systems(c, smax, pick_isa("partial_corr"));
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("partial_corr", &partial_corr_cpu); }

}  // namespace gsnn_fast
