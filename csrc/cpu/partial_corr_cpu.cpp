// CPU backend of gsnn_fast::partial_corr (math and order: gsnn_fast/partial_corr.h).
// at::parallel_for over the (pair, target) systems; each chunk of systems has
// its own scratch (L, alpha, z), so no two threads share anything they write.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "gsnn_fast/partial_corr.h"

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
  if (P == 0 || N == 0) return out;
  const double* co = corr.data_ptr<double>();
  const double* cxy = cov_xy.data_ptr<double>();
  const double* cxx = cov_xx.data_ptr<double>();
  const double* vxp = var_x.data_ptr<double>();
  const double* vyp = var_y.data_ptr<double>();
  double* o = out.data_ptr<double>();
  const int64_t NN = N * N;
  const double nan = nan_d();

  // PARITY: one system per iteration, the same functions as one CUDA block.
  at::parallel_for(0, P * N, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> Lp(static_cast<size_t>(tri(smax)) + 1), alpha(smax + 1), z(smax + 1);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / N, j = t % N;
      const int64_t s = pp[j + 1] - pp[j];
      const int64_t* S = ix + pp[j];
      double* oc = o + p * NN + j;  // column j, stride N
      if (s == 0) {
        for (int64_t i = 0; i < N; ++i) oc[i * N] = co[p * NN + i * N + j];
        continue;
      }
      const double* cxx_p = cxx + p * NN;
      const double* cxy_p = cxy + p * NN;
      bool ok = cholesky_packed(cxx_p, N, S, s, ridge, tol, Lp.data());
      double vy = 0.0;
      if (ok) {
        vy = solve_alpha(Lp.data(), cxy_p, N, S, s, j, vyp[t], alpha.data());
        ok = residual_ok(vy, vyp[t], tol);
      }
      if (!ok) {
        for (int64_t i = 0; i < N; ++i) oc[i * N] = nan;
        continue;
      }
      for (int64_t i = 0; i < N; ++i) {
        oc[i * N] = partial_corr_source(Lp.data(), alpha.data(), S, s, cxx_p, cxy_p, N, i, j,
                                        vxp[p * N + i], vy, tol, z.data(), 1);
      }
    }
  });
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("partial_corr", &partial_corr_cpu); }

}  // namespace gsnn_fast
