// The ISA picker of the CPU kernels (isa.h).
#include "isa.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "simd.h"

namespace gsnn_fast {
namespace {

std::mutex& ran_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Isa>& ran() {
  static std::map<std::string, Isa> r;
  return r;
}

Isa widest_supported() {
#if GSNN_HAVE_CLONES
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512f;
  // the AVX2 variants use the FMA instructions too (partial correlation's sums)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512f:
      return "avx512f";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "baseline";
  }
}

Isa pick_isa(const char* op) {
  const char* env = std::getenv("GSNN_FAST_ISA");
  const std::string cap = env ? env : "";
  Isa want = Isa::kAvx512f;
  if (cap == "avx2") {
    want = Isa::kAvx2;
  } else if (cap == "baseline") {
    want = Isa::kBaseline;
  } else {
    TORCH_CHECK(cap.empty() || cap == "avx512f",
                "GSNN_FAST_ISA must be avx512f, avx2 or baseline, got '", cap, "'");
  }
  const Isa have = widest_supported();
  const Isa isa = static_cast<int>(want) < static_cast<int>(have) ? want : have;
  const std::lock_guard<std::mutex> lock(ran_mutex());
  ran()[op] = isa;
  return isa;
}

std::string isa_ran(const std::string& op) {
  const std::lock_guard<std::mutex> lock(ran_mutex());
  const auto it = ran().find(op);
  return it == ran().end() ? std::string() : isa_name(it->second);
}

}  // namespace gsnn_fast
