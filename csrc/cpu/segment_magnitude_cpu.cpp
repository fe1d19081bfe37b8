// CPU backend of gsnn_fast::segment_magnitude (math: gsnn_fast/segment_magnitude.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "gsnn_fast/segment_magnitude.h"

namespace gsnn_fast {

at::Tensor segment_magnitude_cpu(const at::Tensor& x_in, const at::Tensor& ptr_in,
                                 c10::IntArrayRef modes_in) {
  const MagModes modes = check_segment_magnitude(x_in, ptr_in, modes_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor ptr = ptr_in.contiguous();
  const int64_t L = x.size(0), B = x.size(1), C = x.size(2), N = ptr.size(0) - 1;
  const int64_t* p = ptr.data_ptr<int64_t>();
  validate_segment_ptr_on_host(ptr, C);
  at::Tensor out = at::empty({modes.k, L, B, N}, x.options().dtype(at::kDouble));
  const int64_t total = L * B * N;
  double* o = out.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "segment_magnitude_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    // PARITY: one output element per iteration, as one CUDA thread does it.
    at::parallel_for(0, total, 2048, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t n = t % N;
        segment_magnitude_one(xp + (t / N) * C, p[n], p[n + 1], modes, o + t, total);
      }
    });
  });
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("segment_magnitude", &segment_magnitude_cpu); }

}  // namespace gsnn_fast
