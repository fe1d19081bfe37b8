// The one ISA picker of the CPU kernels.
//
// The SIMD loops of pair_stats, pair_corr, partial_corr / pair_partial_corr and
// sparse_linear are compiled three times (AVX-512F, AVX2 with FMA, and the baseline:
// SSE2 on x86-64, NEON on aarch64) through per-function target attributes (simd.h's
// GSNN_TARGET), never -march=native for the whole extension. Each op asks
// pick_isa() on every call (cheap) for the widest variant the CPU runs, capped by
// the environment variable GSNN_FAST_ISA=avx512f|avx2|baseline, and records what it
// ran, which gsnn_fast._C.isa_ran(op) reports (the tests that compare the variants
// check it: a capped request the CPU cannot honour is skipped visibly, never
// compared silently). Every variant gives the same bits: the lanes are independent
// output elements, each with the scalar sequence of rounded operations.
#pragma once

#include <string>

namespace gsnn_fast {

enum class Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512f = 2 };

const char* isa_name(Isa isa);

// The variant `op` runs now (see above), recorded as the one it ran last.
Isa pick_isa(const char* op);

// The name of the variant `op` ran last ("" when it has not run).
std::string isa_ran(const std::string& op);

}  // namespace gsnn_fast
