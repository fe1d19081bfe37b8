// The CPU engine of the batched ridge partial-correlation systems
// (gsnn_fast/partial_corr.h), shared by the ops partial_corr
// (partial_corr_cpu.cpp: covariances given) and pair_partial_corr
// (pair_partial_corr_cpu.cpp: covariances formed from the streaming sums as the
// solves read them). The loops are in partial_corr_engine.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "isa.h"
#include "gsnn_fast/pair_corr.h"

namespace gsnn_fast {

// Inputs of one call. cxy / cxx: the covariances [P, N, N], or (the *_from_sums
// form) the sums sum_xy / sum_xx, with the means and n; var_x / var_y [P, N]: the
// variances the systems take (NaN = zero); corr [P, N, N]: copied for targets with
// an empty set; out [P, N, N] (may be corr itself: those columns are then left as
// they are).
struct PartialCorrCtx {
  const double* corr;
  const double* cxy;
  const double* cxx;
  const double* var_x;
  const double* var_y;
  double* out;
  const int64_t* ptr;
  const int64_t* idx;
  int64_t P, N;
  double ridge, tol;
  const double* mean_x = nullptr;  // [P, N] (from sums)
  const double* mean_y = nullptr;  // [P, N] (from sums)
  double n = 0.0;                  // sample count (from sums)
};

// Every system of c (c.P pairs, conditioning sets of at most smax members) into
// c.out, with the ISA variant isa (all variants give the same bits).
void partial_corr_systems(const PartialCorrCtx& c, int64_t smax, Isa isa);

// gsnn_fast::pair_partial_corr in one pass over the outputs: every pair's scores
// (corr for targets with an empty set, the systems' scores otherwise, the
// covariances formed from the sums as they are read) and their aggregate.
struct PairPartialCtx {
  const double* sum_xy;     // [P, N, N]
  const double* sum_xx;     // [P, N, N]
  PairCorrMoments m;        // the node moments of pair_corr, [P, N] each
  const double* sys_var_x;  // [P, N]: var_x, NaN where it counts as zero
  const double* sys_var_y;  // [P, N]: var_y, likewise
  const int64_t* ptr;
  const int64_t* idx;
  int64_t P, N;
  double n, ridge, tol;
  int32_t agg;
  double* per_pair;  // [P, N, N], or null
  double* out;       // [N, N]
};
// Returns the targets whose sets are big (at least 64 members, solved first; ascending)
// and their per-pair scores, [P, targets.size(), N], each as per_pair holds it: the
// kept-row entries of those targets need not solve them again.
struct BigColumns {
  std::vector<int64_t> targets;
  std::vector<double> cols;
};
BigColumns pair_partial_corr_fused(const PairPartialCtx& c, int64_t smax, Isa isa);

// The per-pair scores of pair_partial_corr_fused at R entries (src[r], dst[r]) only,
// into vals[p * R + r] (c.per_pair and c.out are not used): the same bits, each
// system (p, j) solved once for all its entries.
void pair_partial_corr_entries(const PairPartialCtx& c, int64_t smax, const int64_t* src,
                               const int64_t* dst, int64_t R, double* vals, Isa isa);

}  // namespace gsnn_fast
