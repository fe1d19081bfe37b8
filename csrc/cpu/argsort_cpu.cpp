// CPU kernel of gsnn_fast::argsort_stable: the stable argsort of a float64 vector,
// NaN last, ascending or descending.
//
// Used to build result frames (sort by score, Benjamini-Hochberg ranks) on the host,
// where comparison sorts of N^2 scores dominate: an LSD radix sort on
// order-preserving 64-bit keys is O(n) (6 passes of 11 bits; passes whose digit is
// the same for every key are skipped). -0.0 and +0.0 share one key (they compare
// equal), so the order matches a stable comparison sort exactly. There is no CUDA
// kernel: frames are built on the host (the Python wrapper sends CUDA tensors to
// torch.sort(stable=True)).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace gsnn_fast {
namespace {

// 11-bit digits: 6 passes over 2048 buckets (the last pass takes the top 9 bits);
// small enough that the scatter's write heads stay in cache.
constexpr int kDigitBits = 11;
constexpr int kPasses = (64 + kDigitBits - 1) / kDigitBits;
constexpr uint64_t kMask = (uint64_t{1} << kDigitBits) - 1;
constexpr size_t kBuckets = size_t{1} << kDigitBits;

struct Item {
  uint64_t key;
  int64_t idx;
};

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

  std::unique_ptr<Item[]> a(new Item[n]), b(new Item[n]);  // uninitialised on purpose
  // One read of the data: keys, identity permutation, and every pass's histogram.
  std::vector<std::array<int64_t, kBuckets>> counts(kPasses);
  for (auto& c : counts) c.fill(0);
  for (int64_t t = 0; t < n; ++t) {
    const uint64_t k = order_key(xp[t], descending);
    a[t] = Item{k, t};
    for (int p = 0; p < kPasses; ++p) ++counts[p][(k >> (kDigitBits * p)) & kMask];
  }
  for (int p = 0; p < kPasses; ++p) {
    auto& c = counts[p];
    const int shift = kDigitBits * p;
    if (c[(a[0].key >> shift) & kMask] == n) continue;  // one digit value: nothing to do
    int64_t offset = 0;
    for (size_t d = 0; d < kBuckets; ++d) {
      const int64_t cnt = c[d];
      c[d] = offset;
      offset += cnt;
    }
    // Scatter in ascending input position: stable.
    for (int64_t t = 0; t < n; ++t) b[c[(a[t].key >> shift) & kMask]++] = a[t];
    std::swap(a, b);
  }
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t t = 0; t < n; ++t) o[t] = a[t].idx;
  return out;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) { m.impl("argsort_stable", &argsort_stable_cpu); }

}  // namespace gsnn_fast
