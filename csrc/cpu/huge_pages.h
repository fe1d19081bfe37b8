// Transparent-huge-page advice for large CPU buffers (the outputs of the scoring ops
// and the sort's work buffers). CPU only; not used by the CUDA glue.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gsnn_fast {

// Asks Linux for transparent huge pages on a fresh output buffer before its first
// write. Large CPU tensors are fresh mmap'ed memory, and with THP in the default
// "madvise" mode the first-touch page faults (4 KiB each) cost about as much as the
// kernel itself (~120 ms -> ~40 ms to first write 160 MB here), and random reads of
// the result (the frame gathers of evaluate) miss the TLB far less (about 3x faster
// here). Advice only: no effect on the values, and none where the kernel ignores it.
inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (t.nbytes() < 4 * kHuge) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (p + t.nbytes()) & ~(kHuge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

}  // namespace gsnn_fast
