// Argument checks shared by the CPU and CUDA glue of every op (torch-facing;
// not part of the math headers in csrc/include).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <vector>

#include "gsnn_fast/pair_corr.h"
#include "gsnn_fast/segment_magnitude.h"

namespace gsnn_fast {

// Validates the arguments of segment_magnitude and packs the modes.
// x (L, B, C) float32/float64; ptr (N+1,) int64 on x's device.
inline MagModes check_segment_magnitude(const at::Tensor& x, const at::Tensor& ptr,
                                        c10::IntArrayRef modes) {
  TORCH_CHECK(x.dim() == 3, "segment_magnitude: x must be (L, B, C), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "segment_magnitude: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) >= 1,
              "segment_magnitude: ptr must be a 1-d int64 tensor of N+1 offsets, got ",
              ptr.sizes());
  TORCH_CHECK(ptr.scalar_type() == at::kLong, "segment_magnitude: ptr must be int64, got ",
              ptr.scalar_type());
  TORCH_CHECK(ptr.device() == x.device(), "segment_magnitude: ptr is on ", ptr.device(),
              " but x is on ", x.device());
  TORCH_CHECK(!modes.empty() && static_cast<int64_t>(modes.size()) <= kMaxModes,
              "segment_magnitude: modes must hold 1 to ", kMaxModes, " entries, got ",
              modes.size());
  MagModes m{};
  m.k = static_cast<int32_t>(modes.size());
  for (size_t i = 0; i < modes.size(); ++i) {
    TORCH_CHECK(modes[i] >= kSumAbs && modes[i] <= kMeanAbs, "segment_magnitude: unknown mode ",
                modes[i], " (0 = sum|v|, 1 = l2, 2 = max|v|, 3 = mean|v|)");
    m.mode[i] = static_cast<int32_t>(modes[i]);
  }
  return m;
}

// --- sparse_linear / sparse_linear_backward (gsnn_fast/sparse_linear.h) ---
// x (B, N_in) float32/float64; values (nnz,) and the optional bias (M_out,) of
// x's dtype and device.
inline void check_sparse_linear(const char* op, const at::Tensor& x, const at::Tensor& values,
                                const c10::optional<at::Tensor>& bias, int64_t n_out) {
  TORCH_CHECK(x.dim() == 2, op, ": x must be (B, N_in), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(values.dim() == 1, op, ": values must be 1-d (nnz,), got ", values.sizes());
  TORCH_CHECK(values.scalar_type() == x.scalar_type(), op, ": values dtype ", values.scalar_type(),
              " must equal x's ", x.scalar_type());
  TORCH_CHECK(values.device() == x.device(), op, ": values is on ", values.device(),
              " but x is on ", x.device());
  TORCH_CHECK(n_out >= 0, op, ": n_out must be >= 0, got ", n_out);
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == n_out, op, ": bias must be (", n_out,
                ",), got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type(), op, ": bias dtype ", bias->scalar_type(),
                " must equal x's ", x.scalar_type());
    TORCH_CHECK(bias->device() == x.device(), op, ": bias is on ", bias->device(), " but x is on ",
                x.device());
  }
}

// One CSR of the sparse matrix: ptr (n_seg + 1,), idx and perm (nnz,), int64,
// on `dev`. Shapes only (cheap, no device sync); see validate_sparse_csr.
inline void check_sparse_csr(const char* op, const char* which, const at::Tensor& ptr,
                             const at::Tensor& idx, const at::Tensor& perm, int64_t n_seg,
                             int64_t nnz, const at::Device& dev) {
  for (const at::Tensor* t : {&ptr, &idx, &perm}) {
    TORCH_CHECK(t->scalar_type() == at::kLong && t->dim() == 1, op, ": ", which, "_ptr/", which,
                "_* must be 1-d int64 tensors, got ", t->scalar_type(), " ", t->sizes());
    TORCH_CHECK(t->device() == dev, op, ": ", which, " CSR tensors are on ", t->device(),
                " but x is on ", dev);
  }
  TORCH_CHECK(ptr.size(0) == n_seg + 1, op, ": ", which, "_ptr must have ", n_seg + 1,
              " entries, got ", ptr.size(0));
  TORCH_CHECK(idx.size(0) == nnz && perm.size(0) == nnz, op, ": ", which, " CSR index and perm",
              " must have nnz = ", nnz, " entries (the length of values), got ", idx.size(0),
              " and ", perm.size(0));
}

// Content checks of one CSR (O(nnz + n_seg)), on host tensors: ptr[0] = 0,
// non-decreasing, ptr[n_seg] = nnz, idx in [0, n_idx), perm in [0, nnz) and, with
// check_perm, a permutation (the backward writes grad_values[perm[s]] once per slot).
// The CUDA glue runs it on host copies (validate_on_host).
inline void validate_sparse_csr(const char* op, const char* which, const at::Tensor& ptr_t,
                                const at::Tensor& idx_t, const at::Tensor& perm_t, int64_t n_idx,
                                bool check_perm) {
  const at::Tensor ptr_c = ptr_t.contiguous(), idx_c = idx_t.contiguous(),
                   perm_c = perm_t.contiguous();
  const int64_t n_seg = ptr_c.size(0) - 1, nnz = idx_c.size(0);
  const int64_t* p = ptr_c.data_ptr<int64_t>();
  const int64_t* ix = idx_c.data_ptr<int64_t>();
  const int64_t* pm = perm_c.data_ptr<int64_t>();
  TORCH_CHECK(p[0] == 0, op, ": ", which, "_ptr[0] must be 0, got ", p[0]);
  bool sorted = true;
  for (int64_t j = 0; j < n_seg; ++j) sorted &= p[j] <= p[j + 1];
  if (!sorted) {
    for (int64_t j = 0; j < n_seg; ++j) {
      TORCH_CHECK(p[j] <= p[j + 1], op, ": ", which, "_ptr must be non-decreasing (", which,
                  "_ptr[", j, "] = ", p[j], " > ", which, "_ptr[", j + 1, "] = ", p[j + 1], ")");
    }
  }
  TORCH_CHECK(p[n_seg] == nnz, op, ": ", which, "_ptr[-1] = ", p[n_seg], " must equal nnz = ", nnz);
  bool in_range = true;  // branch-free first pass (vectorised); details only on failure
  for (int64_t s = 0; s < nnz; ++s) {
    in_range &= (ix[s] >= 0) & (ix[s] < n_idx) & (pm[s] >= 0) & (pm[s] < nnz);
  }
  if (!in_range) {
    for (int64_t s = 0; s < nnz; ++s) {
      TORCH_CHECK(ix[s] >= 0 && ix[s] < n_idx, op, ": ", which, " CSR index ", ix[s], " at slot ",
                  s, " is out of range [0, ", n_idx, ")");
      TORCH_CHECK(pm[s] >= 0 && pm[s] < nnz, op, ": ", which, "_perm must be a permutation of [0, ",
                  nnz, "); bad value ", pm[s], " at slot ", s);
    }
  }
  if (check_perm) {
    std::vector<char> seen(static_cast<size_t>(nnz), 0);
    for (int64_t s = 0; s < nnz; ++s) {
      TORCH_CHECK(!seen[pm[s]], op, ": ", which, "_perm must be a permutation of [0, ", nnz,
                  "); value ", pm[s], " repeats at slot ", s);
      seen[pm[s]] = 1;
    }
  }
}

// Content checks of segment_magnitude's ptr (host tensor, N + 1 offsets): ptr[0] = 0,
// non-decreasing, ptr[N] <= C (the channels of x).
inline void validate_segment_ptr(const at::Tensor& ptr_t, int64_t C) {
  const at::Tensor ptr = ptr_t.contiguous();
  const int64_t N = ptr.size(0) - 1;
  const int64_t* p = ptr.data_ptr<int64_t>();
  TORCH_CHECK(p[0] == 0, "segment_magnitude: ptr[0] must be 0, got ", p[0]);
  for (int64_t n = 0; n < N; ++n) {
    TORCH_CHECK(p[n] <= p[n + 1], "segment_magnitude: ptr must be non-decreasing (ptr[", n,
                "] = ", p[n], " > ptr[", n + 1, "] = ", p[n + 1], ")");
  }
  TORCH_CHECK(p[N] <= C, "segment_magnitude: ptr[N] = ", p[N], " exceeds the ", C,
              " channels of x");
}

// Runs a content check of index tensors that may live on a GPU: `check` receives
// host tensors (the inputs themselves on the CPU, else copies, which synchronise the
// device). On a GPU the outcome is remembered, so that an op called again with the
// same unmodified index tensors (a layer's plan, every training step) skips the copy
// and its sync. An entry matches only the same storage (held by a weak reference, so
// a freed and reused allocation cannot match), offset, sizes, strides and version
// counter (bumped by every in-place change), under the same key (op, part, param and
// flag: what the check depended on; formed only on a GPU). Inference tensors have no
// version counter and are checked every time.
inline void validate_on_host(const char* op, const char* part, int64_t param, bool flag,
                             std::initializer_list<at::Tensor> tensors,
                             const std::function<void(const std::vector<at::Tensor>&)>& check) {
  struct Item {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    int64_t offset, version;
    std::vector<int64_t> sizes, strides;
    bool matches(const at::Tensor& t) const {
      return !storage.expired() &&
             storage._unsafe_get_target() == t.storage().unsafeGetStorageImpl() &&
             offset == t.storage_offset() && version == t._version() &&
             c10::IntArrayRef(sizes) == t.sizes() && c10::IntArrayRef(strides) == t.strides();
    }
  };
  struct Entry {
    std::string key;
    std::vector<Item> items;
  };
  static std::mutex mutex;
  static std::deque<Entry> cache;  // most recent first, at most kKeep entries
  constexpr size_t kKeep = 64;

  bool on_host = true, cacheable = true;
  for (const at::Tensor& t : tensors) {
    on_host = on_host && t.device().is_cpu();
    cacheable = cacheable && !t.is_inference() && t.has_storage();
  }
  if (on_host) {  // the CPU ops: check the tensors themselves, nothing to remember
    check(std::vector<at::Tensor>(tensors));
    return;
  }
  const std::string key =
      std::string(op) + "/" + part + "/" + std::to_string(param) + (flag ? "/1" : "/0");
  if (cacheable) {
    const std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : cache) {
      if (e.key != key || e.items.size() != tensors.size()) continue;
      size_t k = 0;
      bool same = true;
      for (const at::Tensor& t : tensors) same = same && e.items[k++].matches(t);
      if (same) return;
    }
  }
  std::vector<at::Tensor> host;
  for (const at::Tensor& t : tensors) host.push_back(t.device().is_cpu() ? t : t.cpu());
  check(host);  // throws on bad contents
  if (!cacheable) return;
  Entry e{key, {}};
  for (const at::Tensor& t : tensors) {
    e.items.push_back(Item{t.storage().getWeakStorageImpl(), t.storage_offset(), t._version(),
                           t.sizes().vec(), t.strides().vec()});
  }
  const std::lock_guard<std::mutex> lock(mutex);
  cache.push_front(std::move(e));
  if (cache.size() > kKeep) cache.pop_back();
}

// The content checks of a sparse-linear CSR on any device (validate_sparse_csr on
// host tensors, through validate_on_host).
inline void validate_sparse_csr_on_host(const char* op, const char* which, const at::Tensor& ptr,
                                        const at::Tensor& idx, const at::Tensor& perm,
                                        int64_t n_idx, bool check_perm) {
  validate_on_host(op, which, n_idx, check_perm, {ptr, idx, perm},
                   [&](const std::vector<at::Tensor>& h) {
                     validate_sparse_csr(op, which, h[0], h[1], h[2], n_idx, check_perm);
                   });
}

// The content checks of segment_magnitude's ptr on any device.
inline void validate_segment_ptr_on_host(const at::Tensor& ptr, int64_t C) {
  validate_on_host("segment_magnitude", "ptr", C, false, {ptr},
                   [&](const std::vector<at::Tensor>& h) { validate_segment_ptr(h[0], C); });
}

// grad_out (B, M_out) of x's dtype and device; x (B, N_in); values (nnz,).
inline void check_sparse_linear_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& values) {
  check_sparse_linear("sparse_linear_backward", x, values, c10::nullopt, 0);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == x.size(0),
              "sparse_linear_backward: grad_out must be (B, M_out) with B = ", x.size(0), ", got ",
              grad_out.sizes());
  TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "sparse_linear_backward: grad_out dtype ",
              grad_out.scalar_type(), " must equal x's ", x.scalar_type());
  TORCH_CHECK(grad_out.device() == x.device(), "sparse_linear_backward: grad_out is on ",
              grad_out.device(), " but x is on ", x.device());
}

// Every check of sparse_linear's arguments, for both backends: dtypes, shapes and
// devices, and the contents of the CSR by output that the forward reads.
inline void check_sparse_linear_call(const at::Tensor& x, const at::Tensor& values,
                                     const c10::optional<at::Tensor>& bias,
                                     const at::Tensor& out_ptr, const at::Tensor& out_rows,
                                     const at::Tensor& out_perm, const at::Tensor& in_ptr,
                                     const at::Tensor& in_cols, const at::Tensor& in_perm,
                                     int64_t n_out) {
  constexpr const char* op = "sparse_linear";
  check_sparse_linear(op, x, values, bias, n_out);
  check_sparse_csr(op, "out", out_ptr, out_rows, out_perm, n_out, values.size(0), x.device());
  check_sparse_csr(op, "in", in_ptr, in_cols, in_perm, x.size(1), values.size(0), x.device());
  validate_sparse_csr_on_host(op, "out", out_ptr, out_rows, out_perm, x.size(1),
                              /*check_perm=*/false);
}

// Every check of sparse_linear_backward's arguments, for both backends; the CSR by
// input must hold a permutation when the value gradient is asked for.
inline void check_sparse_linear_backward_call(const at::Tensor& grad_out, const at::Tensor& x,
                                              const at::Tensor& values, const at::Tensor& in_ptr,
                                              const at::Tensor& in_cols, const at::Tensor& in_perm,
                                              bool need_values) {
  constexpr const char* op = "sparse_linear_backward";
  check_sparse_linear_backward(grad_out, x, values);
  check_sparse_csr(op, "in", in_ptr, in_cols, in_perm, x.size(1), values.size(0), x.device());
  validate_sparse_csr_on_host(op, "in", in_ptr, in_cols, in_perm, grad_out.size(1), need_values);
}

// Validates the arguments of pair_stats_update (both backends). xmag, ymag
// (L, B, N) float64 with L >= 1 (P = L - 1 pairs; L = 1 is a no-op);
// accumulators float64, contiguous, on xmag's device: sum_x/y/x2/y2 [P, N],
// sum_xy and the optional sum_xx [P, N, N].
inline void check_pair_stats_update(const at::Tensor& xmag, const at::Tensor& ymag,
                                    const at::Tensor& sum_x, const at::Tensor& sum_y,
                                    const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                                    const at::Tensor& sum_xy,
                                    const c10::optional<at::Tensor>& sum_xx) {
  TORCH_CHECK(xmag.dim() == 3, "pair_stats_update: xmag must be (L, B, N), got ", xmag.sizes());
  TORCH_CHECK(xmag.scalar_type() == at::kDouble, "pair_stats_update: xmag must be float64, got ",
              xmag.scalar_type());
  TORCH_CHECK(ymag.sizes() == xmag.sizes(), "pair_stats_update: ymag must have xmag's shape ",
              xmag.sizes(), ", got ", ymag.sizes());
  TORCH_CHECK(ymag.scalar_type() == at::kDouble, "pair_stats_update: ymag must be float64, got ",
              ymag.scalar_type());
  TORCH_CHECK(ymag.device() == xmag.device(), "pair_stats_update: ymag is on ", ymag.device(),
              " but xmag is on ", xmag.device());
  TORCH_CHECK(xmag.size(0) >= 1, "pair_stats_update: xmag needs at least one layer (L >= 1)");
  const int64_t P = xmag.size(0) - 1, N = xmag.size(2);
  auto acc = [&](const at::Tensor& t, const char* name, bool square) {
    const std::vector<int64_t> want =
        square ? std::vector<int64_t>{P, N, N} : std::vector<int64_t>{P, N};
    TORCH_CHECK(t.sizes() == c10::IntArrayRef(want), "pair_stats_update: ", name,
                " must have shape ", c10::IntArrayRef(want), " (P = L - 1 = ", P, ", N = ", N,
                "), got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kDouble, "pair_stats_update: ", name,
                " must be float64, got ", t.scalar_type());
    TORCH_CHECK(t.device() == xmag.device(), "pair_stats_update: ", name, " is on ", t.device(),
                " but xmag is on ", xmag.device());
    TORCH_CHECK(t.is_contiguous(), "pair_stats_update: ", name,
                " must be contiguous (it is updated in place)");
  };
  acc(sum_x, "sum_x", false);
  acc(sum_y, "sum_y", false);
  acc(sum_x2, "sum_x2", false);
  acc(sum_y2, "sum_y2", false);
  acc(sum_xy, "sum_xy", true);
  if (sum_xx.has_value()) acc(*sum_xx, "sum_xx", true);
}

// Validates the tensor arguments of partial_corr (both backends); the CSR
// contents (ptr monotone, idx sorted / distinct / in range / != target) are
// checked by check_partial_corr_csr on host copies. corr, cov_xy, cov_xx
// [P, N, N] float64; var_x, var_y [P, N] float64; ptr [N + 1], idx [nnz] int64;
// all on corr's device.
inline void check_partial_corr(const at::Tensor& corr, const at::Tensor& cov_xy,
                               const at::Tensor& cov_xx, const at::Tensor& var_x,
                               const at::Tensor& var_y, const at::Tensor& ptr,
                               const at::Tensor& idx) {
  TORCH_CHECK(corr.dim() == 3 && corr.size(1) == corr.size(2),
              "partial_corr: corr must be [P, N, N], got ", corr.sizes());
  const int64_t P = corr.size(0), N = corr.size(1);
  auto f64 = [&](const at::Tensor& t, const char* name, c10::IntArrayRef want) {
    TORCH_CHECK(t.sizes() == want, "partial_corr: ", name, " must have shape ", want, " (P = ", P,
                ", N = ", N, "), got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kDouble, "partial_corr: ", name, " must be float64, got ",
                t.scalar_type());
    TORCH_CHECK(t.device() == corr.device(), "partial_corr: ", name, " is on ", t.device(),
                " but corr is on ", corr.device());
  };
  f64(corr, "corr", corr.sizes());
  f64(cov_xy, "cov_xy", corr.sizes());
  f64(cov_xx, "cov_xx", corr.sizes());
  const std::vector<int64_t> pn{P, N};
  f64(var_x, "var_x", pn);
  f64(var_y, "var_y", pn);
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) == N + 1, "partial_corr: ptr must be [N + 1] = [",
              N + 1, "] offsets, got ", ptr.sizes());
  TORCH_CHECK(idx.dim() == 1, "partial_corr: idx must be 1-d, got ", idx.sizes());
  auto i64 = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.scalar_type() == at::kLong, "partial_corr: ", name, " must be int64, got ",
                t.scalar_type());
    TORCH_CHECK(t.device() == corr.device(), "partial_corr: ", name, " is on ", t.device(),
                " but corr is on ", corr.device());
  };
  i64(ptr, "ptr");
  i64(idx, "idx");
}

// Checks the conditioning-set CSR on the host (contiguous int64 pointers) and
// returns the largest set size. S_j = idx[ptr[j]:ptr[j+1]] must be strictly
// increasing, in [0, N) and must not contain j.
inline int64_t check_partial_corr_csr(const int64_t* p, int64_t N, const int64_t* ix, int64_t nnz,
                                      const char* op = "partial_corr") {
  TORCH_CHECK(p[0] == 0, op, ": ptr[0] must be 0, got ", p[0]);
  int64_t smax = 0;
  for (int64_t j = 0; j < N; ++j) {
    TORCH_CHECK(p[j] <= p[j + 1], op, ": ptr must be non-decreasing (ptr[", j, "] = ", p[j],
                " > ptr[", j + 1, "] = ", p[j + 1], ")");
    smax = std::max(smax, p[j + 1] - p[j]);
  }
  TORCH_CHECK(p[N] == nnz, op, ": ptr[N] = ", p[N], " must equal the length of idx (", nnz, ")");
  for (int64_t j = 0; j < N; ++j) {
    for (int64_t e = p[j]; e < p[j + 1]; ++e) {
      TORCH_CHECK(ix[e] >= 0 && ix[e] < N, op, ": idx[", e, "] = ", ix[e], " is out of range [0, ",
                  N, ")");
      TORCH_CHECK(ix[e] != j, op, ": idx[", e, "]: target ", j, " is in its own conditioning set");
      TORCH_CHECK(e == p[j] || ix[e - 1] < ix[e], op, ": idx[", p[j], ":", p[j + 1],
                  "] (conditioning set of target ", j, ") must be strictly increasing");
    }
  }
  return smax;
}

// Validates the arguments of pair_corr (both backends): sum_x, sum_x2 [P, M],
// sum_y, sum_y2 [P, N], sum_xy [P, M, N], float64 on sum_xy's device; n > 0,
// tol >= 0 (both finite); rule and agg known codes.
inline void check_pair_corr(const at::Tensor& sum_x, const at::Tensor& sum_y,
                            const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                            const at::Tensor& sum_xy, double n, double tol, int64_t rule,
                            int64_t agg, const char* op = "pair_corr") {
  TORCH_CHECK(sum_xy.dim() == 3, op, ": sum_xy must be [P, M, N], got ", sum_xy.sizes());
  const int64_t P = sum_xy.size(0), M = sum_xy.size(1), N = sum_xy.size(2);
  auto f64 = [&](const at::Tensor& t, const char* name, int64_t cols) {
    const std::vector<int64_t> want{P, cols};
    TORCH_CHECK(t.sizes() == c10::IntArrayRef(want), op, ": ", name, " must have shape ",
                c10::IntArrayRef(want), " (sum_xy is [P, M, N] = ", sum_xy.sizes(), "), got ",
                t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kDouble, op, ": ", name, " must be float64, got ",
                t.scalar_type());
    TORCH_CHECK(t.device() == sum_xy.device(), op, ": ", name, " is on ", t.device(),
                " but sum_xy is on ", sum_xy.device());
  };
  TORCH_CHECK(sum_xy.scalar_type() == at::kDouble, op, ": sum_xy must be float64, got ",
              sum_xy.scalar_type());
  f64(sum_x, "sum_x", M);
  f64(sum_x2, "sum_x2", M);
  f64(sum_y, "sum_y", N);
  f64(sum_y2, "sum_y2", N);
  TORCH_CHECK(std::isfinite(n) && n > 0, op,
              ": n (the sample count) must be a finite number > 0, got ", n);
  TORCH_CHECK(std::isfinite(tol) && tol >= 0, op, ": tol must be a finite number >= 0, got ", tol);
  TORCH_CHECK(rule == kZeroVarRelative || rule == kZeroVarAbsolute, op, ": unknown rule ", rule,
              " (0 = relative, 1 = absolute)");
  TORCH_CHECK(agg == kAggMean || agg == kAggMax, op, ": unknown agg ", agg, " (0 = mean, 1 = max)");
}

// Validates the arguments of pair_partial_corr: the sums of pair_corr with
// M = N, sum_xx of sum_xy's shape, float64, ridge >= 0, and the shapes and dtypes
// of the conditioning CSR ptr [N + 1] / idx (int64, on sum_xy's device). The CSR's
// contents are checked by check_partial_corr_csr on a host copy.
inline void check_pair_partial_corr(const at::Tensor& sum_x, const at::Tensor& sum_y,
                                    const at::Tensor& sum_x2, const at::Tensor& sum_y2,
                                    const at::Tensor& sum_xy, const at::Tensor& sum_xx,
                                    const at::Tensor& ptr, const at::Tensor& idx, double n,
                                    double ridge, double tol, int64_t agg,
                                    const char* op = "pair_partial_corr") {
  check_pair_corr(sum_x, sum_y, sum_x2, sum_y2, sum_xy, n, tol, kZeroVarRelative, agg, op);
  TORCH_CHECK(sum_xy.size(1) == sum_xy.size(2), op, ": sum_xy must be [P, N, N], got ",
              sum_xy.sizes());
  TORCH_CHECK(sum_xx.sizes() == sum_xy.sizes(), op, ": sum_xx must have the shape of sum_xy ",
              sum_xy.sizes(), ", got ", sum_xx.sizes());
  TORCH_CHECK(sum_xx.scalar_type() == at::kDouble, op, ": sum_xx must be float64, got ",
              sum_xx.scalar_type());
  TORCH_CHECK(sum_xx.device() == sum_xy.device(), op, ": sum_xx is on ", sum_xx.device(),
              " but sum_xy is on ", sum_xy.device());
  TORCH_CHECK(std::isfinite(ridge) && ridge >= 0, op, ": ridge must be a finite number >= 0, got ",
              ridge);
  const int64_t N = sum_xy.size(1);
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) == N + 1, op, ": ptr must be [N + 1] = [", N + 1,
              "] offsets, got ", ptr.sizes());
  TORCH_CHECK(idx.dim() == 1, op, ": idx must be 1-d, got ", idx.sizes());
  TORCH_CHECK(ptr.scalar_type() == at::kLong && idx.scalar_type() == at::kLong, op,
              ": ptr and idx must be int64, got ", ptr.scalar_type(), " and ", idx.scalar_type());
  TORCH_CHECK(ptr.device() == sum_xy.device() && idx.device() == sum_xy.device(), op,
              ": ptr and idx must be on sum_xy's device ", sum_xy.device(), ", got ", ptr.device(),
              " and ", idx.device());
}

// The error of a host-only op (the result-frame helpers) called on a device tensor;
// registered as their CUDA kernel, so that it replaces the dispatcher's "no kernel".
[[noreturn]] inline void host_only(const char* op, const at::Tensor& t) {
  TORCH_CHECK(false, "gsnn_fast::", op, " runs on the host only (result frames are built on ",
              "the CPU), got a tensor on ", t.device(), "; move its inputs with .cpu() first");
}

}  // namespace gsnn_fast
