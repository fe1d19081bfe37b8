// CPU kernels of the result-frame helpers. They run on the host only (frames are
// built on the host); a CUDA tensor gets a clear error (registered below for the
// CUDA key) instead of the dispatcher's "no kernel" message:
//   argsort_stable(x, descending): the stable argsort of a float64 vector, NaN last;
//   frame_order(score, exclude_self): the same order over the flat positions
//     i * N + j of an [N, N] score matrix, the diagonal skipped when asked (the row
//     order of a result frame, src-major on ties);
//   bh_q_grouped(p, group): Benjamini-Hochberg q-values of p-values that are
//     non-decreasing within each group (in their order), by merging the groups
//     instead of sorting;
//   top_k_rows(dst, score, k): the first k rows of each target in frame order.
//
// Sorting. The values map to order-preserving 64-bit keys. An item is one 64-bit
// word: the upper 64 - b bits of the key above a b-bit position (b = the bits of the
// largest position: 22 for 4e6 rows). An LSD radix sort (11-bit digits: 4 passes for
// b = 22) orders the items by those key bits, keeping position order among equal
// ones; then every run of equal key bits longer than one is ordered by (lower key
// bits, position), which is the stable order of the whole key. Runs are rare (the
// item holds the exponent and 30 mantissa bits at b = 22), so this fix-up is nearly
// a copy; a run of NaN (the only key whose upper bits are all ones) is already in
// order. Passes whose digit is the same for every key are skipped. -0.0 and +0.0 share one
// key (they compare equal), so the order matches a stable comparison sort exactly.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "huge_pages.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace gsnn_fast {
namespace {

// Radix digits of 11 bits (2048 buckets: the scatter's write heads stay in cache).
constexpr int kDigitBits = 11;
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

}  // namespace

namespace {

// Sorts the m positions that for_each_pos(f) hands to f (ascending, each <= max_pos
// < 2^32) by the key of xp[pos], stably, into out[0, m). work: 2 m scratch items.
template <class ForEachPos>
void sort_positions(const double* xp, int64_t m, uint64_t max_pos, bool descending,
                    ForEachPos for_each_pos, uint64_t* work, int64_t* out) {
  if (m == 0) return;
  int pos_bits = 1;
  while (pos_bits < 32 && (max_pos >> pos_bits) != 0) ++pos_bits;
  const uint64_t pos_mask = (uint64_t{1} << pos_bits) - 1;
  const int passes = (64 - pos_bits + kDigitBits - 1) / kDigitBits;
  auto digit = [pos_bits](uint64_t item, int pass) {
    return static_cast<size_t>((item >> (pos_bits + kDigitBits * pass)) & kMask);
  };
  uint64_t* a = work;
  uint64_t* b = work + m;
  // One read of the data: items and every pass's histogram.
  std::vector<std::array<int64_t, kBuckets>> counts(static_cast<size_t>(passes));
  for (auto& c : counts) c.fill(0);
  int64_t t = 0;
  for_each_pos([&](uint64_t pos) {
    const uint64_t item = (order_key(xp[pos], descending) & ~pos_mask) | pos;
    a[t++] = item;
    for (int p = 0; p < passes; ++p) ++counts[p][digit(item, p)];
  });
  for (int p = 0; p < passes; ++p) {
    auto& c = counts[p];
    if (c[digit(a[0], p)] == m) continue;  // one digit value: nothing to do
    int64_t offset = 0;
    for (size_t d = 0; d < kBuckets; ++d) {
      const int64_t cnt = c[d];
      c[d] = offset;
      offset += cnt;
    }
    // Scatter in ascending position: stable.
    for (int64_t u = 0; u < m; ++u) b[c[digit(a[u], p)]++] = a[u];
    std::swap(a, b);
  }
  // Runs of equal key bits (in position order): order by (lower key bits, position).
  const uint64_t nan_hi = ~pos_mask;
  std::vector<uint64_t> run;
  for (int64_t r0 = 0; r0 < m;) {
    const uint64_t hi = a[r0] & ~pos_mask;
    int64_t r1 = r0 + 1;
    while (r1 < m && (a[r1] & ~pos_mask) == hi) ++r1;
    if (r1 - r0 > 1 && hi != nan_hi) {
      run.clear();
      bool sorted = true;
      for (int64_t u = r0; u < r1; ++u) {
        const uint64_t pos = a[u] & pos_mask;
        run.push_back(((order_key(xp[pos], descending) & pos_mask) << pos_bits) | pos);
        sorted =
            sorted && (u == r0 || (run[run.size() - 2] >> pos_bits) <= (run.back() >> pos_bits));
      }
      if (!sorted) std::sort(run.begin(), run.end());
      for (int64_t u = r0; u < r1; ++u) out[u] = static_cast<int64_t>(run[u - r0] & pos_mask);
    } else {
      for (int64_t u = r0; u < r1; ++u) out[u] = static_cast<int64_t>(a[u] & pos_mask);
    }
    r0 = r1;
  }
}

// The int64 output and the sort's scratch for m items.
std::pair<at::Tensor, at::Tensor> sort_buffers(int64_t m, const at::TensorOptions& opts) {
  at::Tensor out = at::empty({m}, opts.dtype(at::kLong));
  at::Tensor work = at::empty({2 * m}, opts.dtype(at::kLong));
  advise_huge_pages(out);
  advise_huge_pages(work);
  return {out, work};
}

}  // namespace

at::Tensor argsort_stable_cpu(const at::Tensor& x_in, bool descending) {
  TORCH_CHECK(x_in.dim() == 1, "argsort_stable: x must be 1-d, got ", x_in.sizes());
  TORCH_CHECK(x_in.scalar_type() == at::kDouble, "argsort_stable: x must be float64, got ",
              x_in.scalar_type());
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0);
  TORCH_CHECK(n <= static_cast<int64_t>(kLow),
              "argsort_stable: at most 2^32 - 1 elements on the CPU, got ", n);
  auto [out, work] = sort_buffers(n, x.options());
  sort_positions(
      x.data_ptr<double>(), n, static_cast<uint64_t>(n - 1), descending,
      [n](auto&& f) {
        for (int64_t t = 0; t < n; ++t) f(static_cast<uint64_t>(t));
      },
      reinterpret_cast<uint64_t*>(work.data_ptr<int64_t>()), out.data_ptr<int64_t>());
  return out;
}

at::Tensor frame_order_cpu(const at::Tensor& score_in, bool exclude_self) {
  TORCH_CHECK(score_in.dim() == 2 && score_in.size(0) == score_in.size(1),
              "frame_order: score must be [N, N], got ", score_in.sizes());
  TORCH_CHECK(score_in.scalar_type() == at::kDouble, "frame_order: score must be float64, got ",
              score_in.scalar_type());
  const at::Tensor score = score_in.contiguous();
  const int64_t N = score.size(0);
  TORCH_CHECK(N * N <= static_cast<int64_t>(kLow),
              "frame_order: N^2 must be below 2^32, got N = ", N);
  const int64_t m = exclude_self ? N * (N - 1) : N * N;
  auto [out, work] = sort_buffers(m, score.options());
  sort_positions(
      score.data_ptr<double>(), m, static_cast<uint64_t>(N * N - 1), true,
      [N, exclude_self](auto&& f) {
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j)
            if (!exclude_self || i != j) f(static_cast<uint64_t>(i * N + j));
      },
      reinterpret_cast<uint64_t*>(work.data_ptr<int64_t>()), out.data_ptr<int64_t>());
  return out;
}

// BH q-values (see ranking.bh_qvalues: q_(k) = min(min_{l >= k} p_(l) * (m / l), 1)
// over the ascending order; the same rounded operations, so the same bits, and any
// order of ties gives them) of p-values that are non-decreasing within each group in
// their order. The groups are laid out one after the other (one pass), then merged
// from their ends (the largest p first, k = m down to 1) while the running minimum
// is taken and each q written to its position: no sort, no merged copy. Returns an
// empty tensor when some group is not non-decreasing (or a p is NaN): the caller
// then sorts. Meant for few groups (each step scans the G group ends).
at::Tensor bh_q_grouped_cpu(const at::Tensor& p_in, const at::Tensor& group_in) {
  TORCH_CHECK(p_in.dim() == 1 && p_in.scalar_type() == at::kDouble,
              "bh_q_grouped: p must be a 1-d float64 tensor, got ", p_in.sizes(), " ",
              p_in.scalar_type());
  TORCH_CHECK(group_in.sizes() == p_in.sizes() && group_in.scalar_type() == at::kLong,
              "bh_q_grouped: group must be int64 of the shape of p ", p_in.sizes(), ", got ",
              group_in.sizes(), " ", group_in.scalar_type());
  const at::Tensor p = p_in.contiguous(), group = group_in.contiguous();
  const int64_t m = p.size(0);
  TORCH_CHECK(m <= static_cast<int64_t>(kLow), "bh_q_grouped: at most 2^32 - 1 p-values, got ", m);
  const double* pv = p.data_ptr<double>();
  const int64_t* gv = group.data_ptr<int64_t>();
  at::Tensor q = at::empty({m}, p.options());
  advise_huge_pages(q);
  if (m == 0) return q;
  int64_t G = 0;
  for (int64_t t = 0; t < m; ++t) {
    TORCH_CHECK(gv[t] >= 0 && gv[t] < m, "bh_q_grouped: group[", t, "] = ", gv[t],
                " is out of range [0, ", m, ")");
    G = std::max(G, gv[t] + 1);
  }
  std::vector<int64_t> start(static_cast<size_t>(G + 1), 0);
  for (int64_t t = 0; t < m; ++t) ++start[static_cast<size_t>(gv[t]) + 1];
  for (int64_t g = 0; g < G; ++g) start[g + 1] += start[g];
  // The groups one after the other: p-values and positions.
  at::Tensor buf = at::empty({m + (m + 1) / 2}, p.options());
  advise_huge_pages(buf);
  double* gp = buf.data_ptr<double>();
  uint32_t* gpos = reinterpret_cast<uint32_t*>(gp + m);
  std::vector<int64_t> end(start.begin(), start.end() - 1);  // one past each group's last
  for (int64_t t = 0; t < m; ++t) {
    const int64_t g = gv[t];
    const int64_t k = end[g]++;
    // not non-decreasing (false for NaN too): no merge
    if (!(pv[t] >= (k > start[g] ? gp[k - 1] : pv[t]))) return at::empty({0}, p.options());
    gp[k] = pv[t];
    gpos[k] = static_cast<uint32_t>(t);
  }
  // Merge from the ends: head[g] = one past the next element of group g; cur[g] its
  // p (-inf once the group is used up).
  std::vector<int64_t> head(end);
  std::vector<double> cur(static_cast<size_t>(G));
  const double none = -std::numeric_limits<double>::infinity();
  for (int64_t g = 0; g < G; ++g) cur[g] = head[g] > start[g] ? gp[head[g] - 1] : none;
  // PARITY with ranking._bh_sorted: ranked = p * (m / k); running minimum from the
  // top; then min(., 1).
  double* qv = q.data_ptr<double>();
  const double md = static_cast<double>(m);
  double running = std::numeric_limits<double>::infinity();
  for (int64_t k = m; k >= 1; --k) {
    int64_t best = 0;
    for (int64_t g = 1; g < G; ++g) best = cur[g] > cur[best] ? g : best;
    const int64_t e = --head[best];
    cur[best] = head[best] > start[best] ? gp[head[best] - 1] : none;
    const double ranked = gp[e] * (md / static_cast<double>(k));
    running = ranked < running ? ranked : running;
    qv[gpos[e]] = running < 1.0 ? running : 1.0;
  }
  return q;
}

// keep[t]: row t is among the first k rows of its target dst[t] whose score is not
// NaN (rows in frame order: the k best sources of each target, ties to the earlier
// row). One pass with a counter per target.
at::Tensor top_k_rows_cpu(const at::Tensor& dst_in, const at::Tensor& score_in, int64_t k) {
  TORCH_CHECK(dst_in.dim() == 1 && dst_in.scalar_type() == at::kLong,
              "top_k_rows: dst must be a 1-d int64 tensor, got ", dst_in.sizes(), " ",
              dst_in.scalar_type());
  TORCH_CHECK(score_in.sizes() == dst_in.sizes() && score_in.scalar_type() == at::kDouble,
              "top_k_rows: score must be float64 of the shape of dst ", dst_in.sizes(), ", got ",
              score_in.sizes(), " ", score_in.scalar_type());
  TORCH_CHECK(k >= 1, "top_k_rows: k must be >= 1, got ", k);
  const at::Tensor dst = dst_in.contiguous(), score = score_in.contiguous();
  const int64_t m = dst.size(0);
  const int64_t* d = dst.data_ptr<int64_t>();
  const double* sc = score.data_ptr<double>();
  int64_t n_targets = 0;
  for (int64_t t = 0; t < m; ++t) {
    TORCH_CHECK(d[t] >= 0 && d[t] < m, "top_k_rows: dst[", t, "] = ", d[t], " is out of range [0, ",
                m, ")");
    n_targets = std::max(n_targets, d[t] + 1);
  }
  std::vector<int64_t> taken(static_cast<size_t>(n_targets), 0);
  at::Tensor keep = at::empty({m}, dst.options().dtype(at::kBool));
  bool* kp = keep.data_ptr<bool>();
  for (int64_t t = 0; t < m; ++t) {
    const bool ok = sc[t] == sc[t] && taken[d[t]] < k;
    taken[d[t]] += ok ? 1 : 0;
    kp[t] = ok;
  }
  return keep;
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) {
  m.impl("top_k_rows", &top_k_rows_cpu);
  m.impl("argsort_stable", &argsort_stable_cpu);
  m.impl("frame_order", &frame_order_cpu);
  m.impl("bh_q_grouped", &bh_q_grouped_cpu);
}

// The same ops on CUDA tensors: a clear error (in CPU-only builds too).
TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) {
  m.impl("top_k_rows", [](const at::Tensor& dst, const at::Tensor&, int64_t) -> at::Tensor {
    host_only("top_k_rows", dst);
  });
  m.impl("argsort_stable",
         [](const at::Tensor& x, bool) -> at::Tensor { host_only("argsort_stable", x); });
  m.impl("frame_order",
         [](const at::Tensor& score, bool) -> at::Tensor { host_only("frame_order", score); });
  m.impl("bh_q_grouped", [](const at::Tensor& p, const at::Tensor&) -> at::Tensor {
    host_only("bh_q_grouped", p);
  });
}

}  // namespace gsnn_fast
