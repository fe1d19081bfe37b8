// CPU kernels of the large-N frame queries (host-only, like csrc/cpu/frame_cpu.cpp):
// Both take an [N, C] float64 block of an [N, N] score matrix (indexed [src, dst]):
// its columns are the targets col_offset .. col_offset + C - 1 (the whole matrix:
// C = N, offset 0; a rank's shard of targets otherwise), and exclude_self skips the
// entries with i == col_offset + j.
//   column_top_k(score, k, exclude_self, col_offset): for every column j, the k best
//     sources i (score descending, NaN never kept, ties to the lower i), as a [C, k]
//     int64 table padded with -1. One pass in row order with k running entries per
//     column.
//   score_buckets(score, group, edges, select, exclude_self, col_offset): counts the
//     entries per bucket and returns the block positions i * C + j (ascending) of the
//     entries whose bucket is selected. Column j uses the edge row edges[group[j]]
//     (non-increasing scores, +inf where no score qualifies); the bucket of a score s
//     is the first e with s >= edges[g][e], E (= edges.size(1)) when there is none or
//     s is NaN. Scores are finite or NaN.
//
// score_buckets looks a score up in a per-group table over 2^16 (few groups) or
// 2^13 equal cells of [-1, 1]: the cell bounds the bucket range, a binary search inside that range
// gives the bucket with exact comparisons (scores outside [-1, 1] search all edges). Rows are split
// into blocks across threads; the counts are integers and the positions are concatenated in block
// order, so the result does not depend on the threads. Within a block, neighbouring entries count
// into different copies of the counters (kWays), and the diagonal entry is skipped by splitting
// its row, not by a test per entry.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace gsnn_fast {
namespace {

// Cells of the lookup table per group: fine for few groups (mostly one candidate
// bucket per cell: no search), coarser for many (the tables stay in cache).
inline int64_t table_cells(int64_t G) { return G <= 4 ? int64_t{1} << 16 : int64_t{1} << 13; }

// First e in [lo, hi) with s >= edges[e] (hi when none); edges non-increasing.
inline int64_t first_at_or_below(const double* edges, int64_t lo, int64_t hi, double s) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (s >= edges[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

struct BucketTable {
  const double* edges;  // [G, E]
  int64_t E;
  int64_t kCells;
  double kCellScale;
  // [G, kCells]: the bucket range [lo, hi] of each cell (together: one load per lookup)
  struct Range {
    int32_t lo, hi;
  };
  std::vector<Range> range;

  BucketTable(const double* e, int64_t G, int64_t n_edges)
      : edges(e),
        E(n_edges),
        kCells(table_cells(G)),
        kCellScale(static_cast<double>(table_cells(G)) / 2.0) {
    range.resize(static_cast<size_t>(G * kCells));
    for (int64_t g = 0; g < G; ++g) {
      const double* eg = edges + g * E;
      for (int64_t c = 0; c < kCells; ++c) {
        // the cell's score interval, widened well beyond the rounding of the lookup
        const double a = static_cast<double>(c) / kCellScale - 1.0 - 1e-9;
        const double b = static_cast<double>(c + 1) / kCellScale - 1.0 + 1e-9;
        range[g * kCells + c] = Range{static_cast<int32_t>(first_at_or_below(eg, 0, E, b)),
                                      static_cast<int32_t>(first_at_or_below(eg, 0, E, a))};
      }
    }
  }

  int64_t bucket(int64_t g, double s) const {
    if (s != s) return E;
    const double* eg = edges + g * E;
    if (!(s >= -1.0 && s <= 1.0)) return first_at_or_below(eg, 0, E, s);
    int64_t c = static_cast<int64_t>((s + 1.0) * kCellScale);
    c = std::min<int64_t>(std::max<int64_t>(c, 0), kCells - 1);
    const Range r = range[g * kCells + c];
    // s >= edges[hi] holds (or hi == E): the answer lies in [lo, hi]
    return first_at_or_below(eg, r.lo, r.hi, s);
  }
};

// Counts of one worker: kWays interleaved copies of the E + 1 counters (copy w counts
// the entries of columns j with j % kWays == w). Neighbouring entries often fall in the
// same bucket, and with one copy each increment would wait on the previous one's store.
constexpr int64_t kWays = 4;

// Entries [j0, j1) of row i of the block into h (and their positions, for the buckets
// selected, into pos).
template <bool kGather>
void count_run(const BucketTable& table, const int64_t* gp, const double* row, int64_t i,
               int64_t NC, int64_t j0, int64_t j1, const bool* sel, int64_t* h,
               std::vector<int64_t>& pos) {
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t b = table.bucket(gp[j], row[j]);
    ++h[b * kWays + (j & (kWays - 1))];
    if (kGather && sel[b]) pos.push_back(i * NC + j);
  }
}

void check_block(const char* op, const at::Tensor& score, int64_t col_offset) {
  TORCH_CHECK(score.dim() == 2, op, ": score must be an [N, C] block, got ", score.sizes());
  TORCH_CHECK(score.scalar_type() == at::kDouble, op, ": score must be float64, got ",
              score.scalar_type());
  TORCH_CHECK(col_offset >= 0 && col_offset + score.size(1) <= score.size(0), op, ": columns [",
              col_offset, ", ", col_offset + score.size(1),
              ") do not lie in [0, N = ", score.size(0), ")");
}

}  // namespace

at::Tensor column_top_k_cpu(const at::Tensor& score_in, int64_t k, bool exclude_self,
                            int64_t col_offset) {
  check_block("column_top_k", score_in, col_offset);
  TORCH_CHECK(k >= 1, "column_top_k: k must be >= 1, got ", k);
  const at::Tensor score = score_in.contiguous();
  const int64_t N = score.size(0), NC = score.size(1);
  at::Tensor out = at::full({NC, k}, -1, score.options().dtype(at::kLong));
  const double* sp = score.data_ptr<double>();
  int64_t* op = out.data_ptr<int64_t>();
  // Column blocks per thread; within a block every row in ascending order, so an
  // equal score never displaces an earlier (lower) source.
  constexpr int64_t kBlock = 512;
  at::parallel_for(0, (NC + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t j0 = blk * kBlock, j1 = std::min(NC, j0 + kBlock);
      const int64_t w = j1 - j0;
      std::vector<double> val(static_cast<size_t>(w * k));
      std::vector<int64_t> src(static_cast<size_t>(w * k), -1);
      std::vector<int64_t> cnt(static_cast<size_t>(w), 0);
      for (int64_t i = 0; i < N; ++i) {
        const double* row = sp + i * NC;
        for (int64_t j = j0; j < j1; ++j) {
          const double v = row[j];
          const int64_t c = j - j0;
          const int64_t have = cnt[c];
          double* vv = val.data() + c * k;
          if (!(v == v) || (have == k && !(v > vv[k - 1])) || (exclude_self && i == col_offset + j))
            continue;
          int64_t* ss = src.data() + c * k;
          // insert after every entry >= v (ties keep the earlier source first)
          int64_t pos = have < k ? have : k - 1;
          while (pos > 0 && vv[pos - 1] < v) {
            vv[pos] = vv[pos - 1];
            ss[pos] = ss[pos - 1];
            --pos;
          }
          vv[pos] = v;
          ss[pos] = i;
          cnt[c] = have < k ? have + 1 : k;
        }
      }
      for (int64_t c = 0; c < w; ++c)
        for (int64_t t = 0; t < cnt[c]; ++t) op[(j0 + c) * k + t] = src[c * k + t];
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> score_buckets_cpu(const at::Tensor& score_in,
                                                     const at::Tensor& group_in,
                                                     const at::Tensor& edges_in,
                                                     const at::Tensor& select_in, bool exclude_self,
                                                     int64_t col_offset) {
  check_block("score_buckets", score_in, col_offset);
  const int64_t N = score_in.size(0), NC = score_in.size(1);
  TORCH_CHECK(group_in.dim() == 1 && group_in.size(0) == NC && group_in.scalar_type() == at::kLong,
              "score_buckets: group must be [C] int64, got ", group_in.sizes(), " ",
              group_in.scalar_type());
  TORCH_CHECK(edges_in.dim() == 2 && edges_in.scalar_type() == at::kDouble,
              "score_buckets: edges must be [G, E] float64, got ", edges_in.sizes(), " ",
              edges_in.scalar_type());
  const int64_t G = edges_in.size(0), E = edges_in.size(1);
  TORCH_CHECK(E < std::numeric_limits<int32_t>::max(), "score_buckets: too many edges: ", E);
  TORCH_CHECK(select_in.scalar_type() == at::kBool &&
                  (select_in.numel() == 0 || (select_in.dim() == 1 && select_in.size(0) == E + 1)),
              "score_buckets: select must be bool [E + 1] = [", E + 1, "] or empty, got ",
              select_in.sizes(), " ", select_in.scalar_type());
  const at::Tensor score = score_in.contiguous(), group = group_in.contiguous();
  const at::Tensor edges = edges_in.contiguous(), select = select_in.contiguous();
  const int64_t* gp = group.data_ptr<int64_t>();
  for (int64_t j = 0; j < NC; ++j)
    TORCH_CHECK(gp[j] >= 0 && gp[j] < G, "score_buckets: group[", j, "] = ", gp[j],
                " is out of range [0, ", G, ")");
  const double* ep = edges.data_ptr<double>();
  for (int64_t g = 0; g < G; ++g)
    for (int64_t e = 1; e < E; ++e)
      TORCH_CHECK(ep[g * E + e] <= ep[g * E + e - 1], "score_buckets: edges[", g,
                  "] must be non-increasing (and not NaN) at ", e);
  const BucketTable table(ep, G, E);
  const bool gather = select.numel() > 0;
  const bool* sel = gather ? select.data_ptr<bool>() : nullptr;
  const double* sp = score.data_ptr<double>();

  constexpr int64_t kRows = 64;
  const int64_t n_blocks = (N + kRows - 1) / kRows;
  std::vector<std::vector<int64_t>> counts(static_cast<size_t>(n_blocks));
  std::vector<std::vector<int64_t>> found(static_cast<size_t>(n_blocks));
  at::parallel_for(0, n_blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> h(static_cast<size_t>((E + 1) * kWays));
    for (int64_t blk = b0; blk < b1; ++blk) {
      std::vector<int64_t>& pos = found[blk];
      std::fill(h.begin(), h.end(), 0);
      const int64_t i1 = std::min(N, (blk + 1) * kRows);
      for (int64_t i = blk * kRows; i < i1; ++i) {
        const double* row = sp + i * NC;
        // the runs left and right of the skipped diagonal entry (if it is in the block)
        const int64_t self = i - col_offset;
        const bool skip = exclude_self && self >= 0 && self < NC;
        const int64_t mid0 = skip ? self : NC, mid1 = skip ? self + 1 : NC;
        for (const auto& [j0, j1] : {std::pair<int64_t, int64_t>{0, mid0}, {mid1, NC}}) {
          if (gather) {
            count_run<true>(table, gp, row, i, NC, j0, j1, sel, h.data(), pos);
          } else {
            count_run<false>(table, gp, row, i, NC, j0, j1, sel, h.data(), pos);
          }
        }
      }
      std::vector<int64_t>& cnt = counts[blk];
      cnt.assign(static_cast<size_t>(E + 1), 0);
      for (int64_t b = 0; b <= E; ++b)
        for (int64_t w = 0; w < kWays; ++w) cnt[b] += h[b * kWays + w];
    }
  });
  at::Tensor total = at::zeros({E + 1}, score.options().dtype(at::kLong));
  int64_t* tp = total.data_ptr<int64_t>();
  int64_t n_found = 0;
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    for (int64_t b = 0; b <= E; ++b) tp[b] += counts[blk][b];
    n_found += static_cast<int64_t>(found[blk].size());
  }
  at::Tensor positions = at::empty({n_found}, score.options().dtype(at::kLong));
  int64_t* pp = positions.data_ptr<int64_t>();
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    std::copy(found[blk].begin(), found[blk].end(), pp);
    pp += found[blk].size();
  }
  return {total, positions};
}

TORCH_LIBRARY_IMPL(gsnn_fast, CPU, m) {
  m.impl("column_top_k", &column_top_k_cpu);
  m.impl("score_buckets", &score_buckets_cpu);
}

// The same ops on CUDA tensors: a clear error (in CPU-only builds too).
TORCH_LIBRARY_IMPL(gsnn_fast, CUDA, m) {
  m.impl("column_top_k", [](const at::Tensor& score, int64_t, bool, int64_t) -> at::Tensor {
    host_only("column_top_k", score);
  });
  m.impl("score_buckets",
         [](const at::Tensor& score, const at::Tensor&, const at::Tensor&, const at::Tensor&, bool,
            int64_t) -> std::tuple<at::Tensor, at::Tensor> { host_only("score_buckets", score); });
}

}  // namespace gsnn_fast
