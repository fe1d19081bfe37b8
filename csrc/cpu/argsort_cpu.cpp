// CPU kernel of gsnn_fast::argsort_stable: the stable argsort of a float64 vector,
// NaN last, ascending or descending.
//
// Used to build result frames (sort by score, Benjamini-Hochberg ranks) on the host,
// where comparison sorts of N^2 scores dominate. The values map to order-preserving
// 64-bit keys; an LSD radix sort (3 passes of 11/11/10 bits) orders 8-byte items
// (upper 32 key bits, 32-bit position) by the upper half of the key, which keeps
// equal upper halves in input order; then every run of equal upper halves longer
// than one is ordered by (lower half, position), which is the stable order of the
// whole key. For scores, runs are short (the upper half holds the exponent and 20
// mantissa bits), and a run whose lower halves are all equal (ties, NaN) is
// already in order. Passes whose digit is the same for every key are skipped.
// -0.0 and +0.0 share one key (they compare equal), so the order matches a stable
// comparison sort exactly. There is no CUDA kernel: frames are built on the host
// (the Python wrapper sends CUDA tensors, and inputs of 2^32 or more elements, to
// torch.sort(stable=True)).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "huge_pages.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace gsnn_fast {
namespace {

// Digits of the upper 32 key bits: 11, 11 and 10 bits (the first two use kMask).
constexpr int kDigitBits = 11;
constexpr int kPasses = 3;
constexpr uint64_t kMask = (uint64_t{1} << kDigitBits) - 1;
constexpr size_t kBuckets = size_t{1} << kDigitBits;
constexpr uint64_t kLow = 0xFFFFFFFFu;

// Unsigned key whose ascending order is the requested order of the values; NaN
// (any payload) maps to the largest key in both directions.
inline uint64_t order_key(double v, bool descending) {
  if (v != v) return ~uint64_t{0};
  if (v == 0.0) v = 0.0;  // one key for -0.0 and +0.0
  uint64_t u;
  std::memcpy(&u, &v, sizeof(u));
  const uint64_t ascending = (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
  // Finite and infinite values map into [0x000F..F, 0xFFF0..0] either way (the
  // complement swaps the ends), below the NaN key ~0: NaN stays last.
  return descending ? ~ascending : ascending;
}

// Digit `pass` of an item (upper key half in bits 32..63).
inline size_t digit(uint64_t item, int pass) {
  return static_cast<size_t>((item >> (32 + kDigitBits * pass)) & kMask);
}

}  // namespace

at::Tensor argsort_stable_cpu(const at::Tensor& x_in, bool descending) {
  TORCH_CHECK(x_in.dim() == 1, "argsort_stable: x must be 1-d, got ", x_in.sizes());
  TORCH_CHECK(x_in.scalar_type() == at::kDouble, "argsort_stable: x must be float64, got ",
              x_in.scalar_type());
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0);
  at::Tensor out = at::empty({n}, x.options().dtype(at::kLong));
  if (n == 0) return out;
  const double* xp = x.data_ptr<double>();

  TORCH_CHECK(n <= static_cast<int64_t>(kLow),
              "argsort_stable: at most 2^32 - 1 elements on the CPU, got ", n);
  // Item: upper key half << 32 | position. Uninitialised on purpose.
  at::Tensor work = at::empty({2, n}, x.options().dtype(at::kLong));
  advise_huge_pages(work);
  advise_huge_pages(out);
  uint64_t* a = reinterpret_cast<uint64_t*>(work.data_ptr<int64_t>());
  uint64_t* b = a + n;
  // One read of the data: items and every pass's histogram.
  std::vector<std::array<int64_t, kBuckets>> counts(kPasses);
  for (auto& c : counts) c.fill(0);
  for (int64_t t = 0; t < n; ++t) {
    const uint64_t item = (order_key(xp[t], descending) & ~kLow) | static_cast<uint64_t>(t);
    a[t] = item;
    for (int p = 0; p < kPasses; ++p) ++counts[p][digit(item, p)];
  }
  for (int p = 0; p < kPasses; ++p) {
    auto& c = counts[p];
    if (c[digit(a[0], p)] == n) continue;  // one digit value: nothing to do
    int64_t offset = 0;
    for (size_t d = 0; d < kBuckets; ++d) {
      const int64_t cnt = c[d];
      c[d] = offset;
      offset += cnt;
    }
    // Scatter in ascending input position: stable.
    for (int64_t t = 0; t < n; ++t) b[c[digit(a[t], p)]++] = a[t];
    std::swap(a, b);
  }
  // Runs of equal upper halves (in input order): order by (lower half, position).
  int64_t* o = out.data_ptr<int64_t>();
  std::vector<uint64_t> run;
  for (int64_t r0 = 0; r0 < n;) {
    const uint64_t hi = a[r0] & ~kLow;
    int64_t r1 = r0 + 1;
    while (r1 < n && (a[r1] & ~kLow) == hi) ++r1;
    if (r1 - r0 > 1) {
      run.clear();
      bool sorted = true;
      for (int64_t t = r0; t < r1; ++t) {
        const uint64_t pos = a[t] & kLow;
        run.push_back((order_key(xp[pos], descending) << 32) | pos);
        sorted = sorted && (t == r0 || (run[run.size() - 2] >> 32) <= (run.back() >> 32));
      }
      if (!sorted) std::sort(run.begin(), run.end());
      for (int64_t t = r0; t < r1; ++t) o[t] = static_cast<int64_t>(run[t - r0] & kLow);
    } else {
      o[r0] = static_cast<int64_t>(a[r0] & kLow);
    }
    r0 = r1;
  }
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("argsort_stable", &argsort_stable_cpu); }

}  // namespace gsnn_fast
