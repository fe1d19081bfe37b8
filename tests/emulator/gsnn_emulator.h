// gsnn_emulator.h -- a test-only CUDA grid emulator on the CPU (docs/EMULATOR.md).
// Over ~450 lines on purpose: the whole emulator (fibers, barriers, shared memory,
// launch limits, runtime stubs) is this one header, which the .cu files include.
//
// The .cu files of csrc/cuda are compiled as host C++ with GSNN_FAST_EMULATOR
// defined and this directory first on the include path (cuda_runtime.h and
// cuda_runtime_api.h here only include this header). A launch written
//   GSNN_LAUNCH(kernel, grid, block, smem, stream)(args...);
// (csrc/cuda/launch.h) then runs the whole grid on the calling OS thread:
//   * the blocks run one after another (x fastest, then y, then z);
//   * the threads of a block are fibers, one per CUDA thread, each on
//     its own stack. A fiber runs until it reaches __syncthreads() or returns; the
//     block resumes its fibers once every thread is waiting at the barrier.
//     Consecutive blocks use two different pools of fibers.
//   * shared memory: GSNN_SHARED / GSNN_SHARED_ARRAY variables and the dynamic
//     shared memory live in one mapping per launch; plain __shared__ variables
//     are statics on their own pages. Before every block the shared memory in
//     use is refilled with 0xff bytes, so a value left by the previous block is
//     never taken for a fresh one.
//   * CUDA's launch limits are checked before a launch (and the static shared
//     memory when a kernel's GSNN_SHARED declarations run); a violation is
//     recorded (violations()), the launch does not run, and cudaGetLastError()
//     returns the error, as on a device.
// Under ThreadSanitizer (-fsanitize=thread) every fiber is a TSan fiber. Fibers
// switch without synchronisation; the only happens-before edges are the barriers
// of a block (release by every arriving thread, acquire by every leaving one),
// host -> every thread at the start of each block and every thread -> host at
// the end of the grid. Before each block the shared memory gets fresh pages,
// which makes TSan forget the previous block's accesses to it. So TSan reports
//   * two threads of a block touching the same address (shared or global)
//     between two barriers, at least one of them writing;
//   * two blocks touching the same global address, at least one writing (two
//     blocks of the same pool, k and k + 2, run on the same fibers: a thread and
//     its twin two blocks later are ordered, every other pair is not).
// The emulator's own bookkeeping runs with TSan's access tracking switched off.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer (the "asan" build): told about every stack switch.
#include <sanitizer/common_interface_defs.h>
#define GSNN_EMU_ASAN 1
#endif

#if defined(__SANITIZE_THREAD__)
#define GSNN_EMU_TSAN 1
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
}
#endif

// ---------------------------------------------------------------------------
// Qualifiers and builtin types.
// ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// A plain __shared__ variable: one copy per kernel (blocks run one after
// another), each on its own pages of one section, so that the emulator can map
// fresh pages there between blocks (TSan then forgets the previous block's
// accesses) and refill them. GCC keeps the section of statics in ordinary
// functions only (not in templates), and their bytes are not counted towards
// the launch limits: declarations written with GSNN_SHARED / GSNN_SHARED_ARRAY
// have neither restriction (they live in the launch's own shared memory).
#define __shared__ static __attribute__((section("gsnn_shared"), aligned(4096)))
extern "C" char __start_gsnn_shared[] __attribute__((weak));
extern "C" char __stop_gsnn_shared[] __attribute__((weak));
// The last page of the section: defined once, in the translation unit linked
// last (GSNN_EMULATOR_DEFINE_SHARED_END), so that no other data shares the
// section's pages.
extern "C" char gsnn_shared_end_page[] __attribute__((weak));
#define GSNN_EMULATOR_DEFINE_SHARED_END                                                         \
  extern "C" {                                                                                  \
  __attribute__((section("gsnn_shared"), aligned(4096), used)) char gsnn_shared_end_page[4096]; \
  }

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
};

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999
} cudaError_t;

typedef struct CUstream_st* cudaStream_t;

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9
};

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxBlockDimX = 2,
  cudaDevAttrMaxGridDimY = 6,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

// The builtin indices of the running thread (written by the emulator before a
// fiber runs; read by the kernels).
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace gsnn_emu {

// The limits of the emulated device (an H100/H200: compute capability 9.0).
struct Limits {
  static constexpr uint64_t kMaxThreadsPerBlock = 1024;
  static constexpr uint64_t kMaxBlockX = 1024, kMaxBlockY = 1024, kMaxBlockZ = 64;
  static constexpr uint64_t kMaxGridX = 0x7fffffffULL, kMaxGridY = 65535, kMaxGridZ = 65535;
  static constexpr int64_t kDefaultSharedBytes = 48 * 1024;  // without an opt-in
  static constexpr int64_t kOptinSharedBytes = 227 * 1024;   // static + dynamic, opted in
};

namespace detail {

#if defined(GSNN_EMU_TSAN)
struct Untracked {  // TSan ignores this fiber's memory accesses while it lives
  Untracked() { __tsan_ignore_thread_begin(); }
  ~Untracked() { __tsan_ignore_thread_end(); }
};
inline void hb_release(void* a) { __tsan_release(a); }
inline void hb_acquire(void* a) { __tsan_acquire(a); }
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
struct Untracked {
  Untracked() {}
};
inline void hb_release(void*) {}
inline void hb_acquire(void*) {}
#endif

enum FiberState { kReady, kAtBarrier, kDone };

#if defined(__x86_64__)
// A context switch without system calls (swapcontext saves and restores the
// signal mask, two system calls per switch): the callee-saved registers, the
// SSE / x87 control words and the stack pointer. gsnn_emu_switch(from, to)
// saves the running context's stack pointer in *from and resumes `to`.
struct Context {
  void* sp = nullptr;
};
extern "C" void gsnn_emu_switch(void** from_sp, void* to_sp);
asm(R"(
  .text
  .weak gsnn_emu_switch
  .type gsnn_emu_switch, @function
gsnn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size gsnn_emu_switch, .-gsnn_emu_switch
)");

inline void switch_context(Context* from, Context* to) { gsnn_emu_switch(&from->sp, to->sp); }

// A stack whose first switch "returns" into entry (which never returns).
inline void make_context(Context* c, void* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
  uint64_t* ret_slot = reinterpret_cast<uint64_t*>(top - 16);  // 16-byte aligned
  ret_slot[0] = reinterpret_cast<uint64_t>(entry);
  ret_slot[1] = 0;
  uint64_t* sp = ret_slot - 7;  // rbp, rbx, r12..r15, control words
  for (int k = 1; k < 7; ++k) sp[k] = 0;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  c->sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_context(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
inline void make_context(Context* c, void* stack, size_t bytes, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif

struct Fiber {
  Context ctx;
  void* stack = nullptr;
  void* tsan = nullptr;
  void* asan_fake_stack = nullptr;
  uint3 tid{0, 0, 0};
  FiberState state = kReady;
  uint64_t phase = 0;  // barriers passed in the current block
};

struct StaticShared {
  const void* key;
  int64_t offset;
};

// Room for the GSNN_SHARED variables of one launch (CUDA allows 48 KiB of static
// shared memory; more is reported and then served from the spare room).
inline constexpr int64_t kStaticArenaBytes = 256 * 1024;

struct LaunchState {
  std::string name;
  dim3 grid, block;
  int64_t dyn_bytes = 0;
  bool opted_in = false;
  std::vector<StaticShared> statics;
  int64_t static_bytes = 0;
  bool static_violation = false;
  std::function<void()> body;
  unsigned char* dyn = nullptr;
  unsigned char* statics_arena = nullptr;
};

struct Runtime {
  std::vector<std::string> violations;
  cudaError_t last_error = cudaSuccess;
  std::vector<std::pair<const void*, int>> max_dyn_attr;  // per kernel, opt-ins
  std::vector<Fiber*> pools[2];  // fibers, grown on demand; blocks alternate the pools
  Context main_ctx;
  void* main_tsan = nullptr;
  void* main_asan_fake_stack = nullptr;
  const void* main_stack_bottom = nullptr;  // the host's stack, as ASan saw it
  size_t main_stack_size = 0;
  Fiber* current = nullptr;
  LaunchState* launch = nullptr;
  char* barrier_sync = nullptr;  // two sync objects, fresh for every block
  char block_start_sync = 0;     // main -> every thread of the next block
  char block_end_sync = 0;       // every thread of the grid -> main
  uint64_t launches = 0, blocks = 0, barriers = 0;
};

inline Runtime& rt() {
  static Runtime r;
  return r;
}

inline constexpr size_t kStackBytes = 256 * 1024;

[[noreturn]] inline void fatal(const char* what) {
  std::fprintf(stderr, "gsnn emulator: %s\n", what);
  std::abort();
}

inline void to_main() {
  Runtime& r = rt();
  Fiber* f;
  {
    Untracked u;
    f = r.current;
  }
#if defined(GSNN_EMU_TSAN)
  __tsan_switch_to_fiber(r.main_tsan, 1u);  // no synchronisation
#endif
#if defined(GSNN_EMU_ASAN)
  __sanitizer_start_switch_fiber(&f->asan_fake_stack, r.main_stack_bottom, r.main_stack_size);
#endif
  switch_context(&f->ctx, &r.main_ctx);
#if defined(GSNN_EMU_ASAN)
  __sanitizer_finish_switch_fiber(f->asan_fake_stack, nullptr, nullptr);
#endif
  Untracked u;
  threadIdx = f->tid;  // resumed: this fiber's indices again
}

inline void fiber_entry() {
#if defined(GSNN_EMU_ASAN)
  // First entry: ASan hands over the bounds of the host's stack.
  __sanitizer_finish_switch_fiber(nullptr, &rt().main_stack_bottom, &rt().main_stack_size);
#endif
  for (;;) {
    Runtime& r = rt();
    std::function<void()>* body;
    {
      Untracked u;
      threadIdx = r.current->tid;
      r.current->phase = 0;
      body = &r.launch->body;
    }
    hb_acquire(&r.block_start_sync);
    (*body)();
    hb_release(&r.block_end_sync);
    {
      Untracked u;
      r.current->state = kDone;
    }
    to_main();
  }
}

inline Fiber* pool_fiber(int pool, size_t i) {
  Runtime& r = rt();
  std::vector<Fiber*>& fibers = r.pools[pool];
  while (fibers.size() <= i) {
    Fiber* f = new Fiber();
    f->stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (f->stack == MAP_FAILED) fatal("cannot map a fiber stack");
    mprotect(f->stack, 4096, PROT_NONE);  // guard page: a stack overflow faults
    make_context(&f->ctx, f->stack, kStackBytes, fiber_entry);
#if defined(GSNN_EMU_TSAN)
    if (r.main_tsan == nullptr) r.main_tsan = __tsan_get_current_fiber();
    f->tsan = __tsan_create_fiber(0);
    char name[32];
    std::snprintf(name, sizeof(name), "cuda thread %zu (pool %d)", fibers.size(), pool);
    __tsan_set_fiber_name(f->tsan, name);
#endif
    fibers.push_back(f);
  }
  return fibers[i];
}

inline void resume(Fiber* f) {
  Runtime& r = rt();
  r.current = f;
#if defined(GSNN_EMU_TSAN)
  __tsan_switch_to_fiber(f->tsan, 1u);  // no synchronisation
#endif
#if defined(GSNN_EMU_ASAN)
  __sanitizer_start_switch_fiber(&r.main_asan_fake_stack, f->stack, kStackBytes);
#endif
  switch_context(&r.main_ctx, &f->ctx);
#if defined(GSNN_EMU_ASAN)
  __sanitizer_finish_switch_fiber(r.main_asan_fake_stack, &r.main_stack_bottom, &r.main_stack_size);
#endif
}

inline void report(std::string msg) {
  Untracked u;
  std::fprintf(stderr, "gsnn emulator: VIOLATION: %s\n", msg.c_str());
  rt().violations.push_back(std::move(msg));
}

inline constexpr size_t kPage = 4096;

inline size_t round_pages(size_t n) { return (n + kPage - 1) / kPage * kPage; }

// Fresh zero pages at [p, p + n) (page aligned). Under TSan the mmap counts as a
// new allocation by the host: the accesses of the previous block are forgotten.
inline void remap(void* p, size_t n) {
  if (n == 0) return;
  void* q = mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (q != p) fatal("cannot map fresh shared memory");
}

// The static shared variables: [__start_gsnn_shared, gsnn_shared_end_page).
inline void static_shared_range(char** begin, size_t* bytes) {
  *begin = nullptr;
  *bytes = 0;
  if (__start_gsnn_shared == nullptr) return;
  if (gsnn_shared_end_page == nullptr || gsnn_shared_end_page + kPage != __stop_gsnn_shared ||
      reinterpret_cast<uintptr_t>(__start_gsnn_shared) % kPage != 0)
    fatal(
        "the gsnn_shared section must start on a page and end with gsnn_shared_end_page "
        "(GSNN_EMULATOR_DEFINE_SHARED_END in the translation unit linked last)");
  *begin = __start_gsnn_shared;
  *bytes = static_cast<size_t>(gsnn_shared_end_page - __start_gsnn_shared);
}

// Before every block: the shared memory (static and dynamic) gets fresh pages
// under TSan, and every byte is set to 0xff (a NaN as a double, -1 as an
// integer), so that nothing a previous block left there passes for a value.
inline void fresh_shared(LaunchState& L, bool first_block) {
  if (L.statics_arena != nullptr) {
    // The part in use (known after the first block; the first block gets fresh
    // pages from the launch's mmap, poisoned here).
    const size_t used =
        first_block ? size_t{64 * 1024} : round_pages(static_cast<size_t>(L.static_bytes));
    if (kTsan && !first_block && used > 0) remap(L.statics_arena, used);
    std::memset(L.statics_arena, 0xff, used);
  }
  if (L.dyn != nullptr) {
    if (kTsan && !first_block) remap(L.dyn, round_pages(static_cast<size_t>(L.dyn_bytes)));
    std::memset(L.dyn, 0xff, static_cast<size_t>(L.dyn_bytes));
  }
  // Plain __shared__ statics (of any kernel): only when the last block wrote
  // some (the bytes are no longer all 0xff; read with TSan looking away).
  char* begin;
  size_t bytes;
  static_shared_range(&begin, &bytes);
  if (bytes == 0) return;
  bool dirty = false;
  {
    Untracked u;
    static unsigned char ones[kPage];
    if (ones[0] != 0xff) std::memset(ones, 0xff, kPage);
    for (size_t k = 0; k < bytes && !dirty; k += kPage)
      dirty = std::memcmp(begin + k, ones, bytes - k < kPage ? bytes - k : kPage) != 0;
  }
  if (!dirty) return;
  if (kTsan) remap(begin, bytes);
  std::memset(begin, 0xff, bytes);
}

// Runs every block of the launch L with T threads each.
inline void run_grid(LaunchState& L) {
  Runtime& r = rt();
  const unsigned T = L.block.x * L.block.y * L.block.z;
  std::vector<Fiber*> pool_fs[2];
  for (int p = 0; p < 2; ++p) {
    pool_fs[p].resize(T);
    for (unsigned t = 0; t < T; ++t) {
      Fiber* f = pool_fiber(p, t);
      f->tid = uint3{t % L.block.x, (t / L.block.x) % L.block.y, t / (L.block.x * L.block.y)};
      pool_fs[p][t] = f;
    }
  }
  r.launch = &L;
  {
    Untracked u;
    blockDim = L.block;
    gridDim = L.grid;
  }
  // Happens-before edges (TSan): the host -> every thread of the grid (its
  // inputs); every thread of the grid -> the host (the outputs, at the end); the
  // barriers of a block between its own threads. Nothing orders two blocks:
  // consecutive blocks run on different fibers, the barrier sync objects are new
  // for every block and the shared memory is forgotten in between, so two blocks
  // touching the same global address (one writing) are reported as a race, as
  // are two threads of one block touching the same address between barriers.
  uint64_t nblock = 0;
  for (unsigned bz = 0; bz < L.grid.z; ++bz) {
    for (unsigned by = 0; by < L.grid.y; ++by) {
      for (unsigned bx = 0; bx < L.grid.x; ++bx) {
        std::vector<Fiber*>& fs = pool_fs[nblock++ & 1];
        {
          Untracked u;
          blockIdx = uint3{bx, by, bz};
        }
        fresh_shared(L, nblock == 1);
        ++r.blocks;
        for (Fiber* f : fs) f->state = kReady;
        char* sync = new char[2];
        r.barrier_sync = sync;
        hb_release(&r.block_start_sync);
        bool divergent = false;
        for (;;) {
          for (Fiber* f : fs)
            if (f->state == kReady) resume(f);
          unsigned waiting = 0, done = 0;
          for (Fiber* f : fs) (f->state == kDone ? done : waiting) += 1;
          if (waiting == 0) break;
          if (done > 0 && !divergent) {
            divergent = true;
            report(L.name + ": block (" + std::to_string(bx) + "," + std::to_string(by) + "," +
                   std::to_string(bz) + "): __syncthreads() reached by " + std::to_string(waiting) +
                   " of " + std::to_string(T) + " threads while the others had returned");
          }
          ++r.barriers;
          for (Fiber* f : fs)
            if (f->state == kAtBarrier) f->state = kReady;
        }
        r.barrier_sync = nullptr;
        delete[] sync;  // its sync objects go with it
      }
    }
  }
  hb_acquire(&r.block_end_sync);
  r.launch = nullptr;
}

inline int max_dyn_attr(const void* fn) {
  for (const auto& a : rt().max_dyn_attr)
    if (a.first == fn) return a.second;
  return -1;
}

inline void set_error(cudaError_t e) { rt().last_error = e; }

// Checks the launch configuration; returns the error a device would give.
inline cudaError_t check_config(LaunchState& L, const void* fn) {
  const uint64_t bx = L.block.x, by = L.block.y, bz = L.block.z;
  const uint64_t gx = L.grid.x, gy = L.grid.y, gz = L.grid.z;
  const std::string dims = " (grid " + std::to_string(gx) + "x" + std::to_string(gy) + "x" +
                           std::to_string(gz) + ", block " + std::to_string(bx) + "x" +
                           std::to_string(by) + "x" + std::to_string(bz) + ")";
  if (bx == 0 || by == 0 || bz == 0 || gx == 0 || gy == 0 || gz == 0) {
    report(L.name + ": a grid or block dimension is zero" + dims);
    return cudaErrorInvalidConfiguration;
  }
  if (bx * by * bz > Limits::kMaxThreadsPerBlock || bx > Limits::kMaxBlockX ||
      by > Limits::kMaxBlockY || bz > Limits::kMaxBlockZ) {
    report(L.name + ": " + std::to_string(bx * by * bz) +
           " threads per block, more than the device's 1024 (x, y <= 1024, z <= 64)" + dims);
    return cudaErrorInvalidConfiguration;
  }
  if (gx > Limits::kMaxGridX || gy > Limits::kMaxGridY || gz > Limits::kMaxGridZ) {
    report(L.name + ": grid beyond the device's limits (x <= 2^31 - 1, y, z <= 65535)" + dims);
    return cudaErrorInvalidConfiguration;
  }
  const int attr = max_dyn_attr(fn);
  L.opted_in = attr > Limits::kDefaultSharedBytes;
  const int64_t dyn_limit = attr >= 0 ? attr : Limits::kDefaultSharedBytes;
  if (L.dyn_bytes > dyn_limit) {
    report(L.name + ": " + std::to_string(L.dyn_bytes) +
           " bytes of dynamic shared memory, more than the kernel's limit of " +
           std::to_string(dyn_limit) +
           (attr >= 0 ? std::string(" (its opt-in)")
                      : std::string(" (no cudaFuncSetAttribute opt-in)")));
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

}  // namespace detail

// The violations recorded so far (launch limits, divergent barriers).
inline std::vector<std::string>& violations() { return detail::rt().violations; }

// Counters of what ran (launches, blocks, barriers passed).
inline uint64_t launches() { return detail::rt().launches; }
inline uint64_t blocks() { return detail::rt().blocks; }
inline uint64_t barriers() { return detail::rt().barriers; }

// The running block's copy of the static shared variable `key` (a
// GSNN_SHARED / GSNN_SHARED_ARRAY declaration). Its bytes are counted once per
// launch, and static + dynamic shared memory is checked against the limits.
inline void* static_shared(const void* key, int64_t bytes, int64_t align) {
  detail::Untracked u;
  detail::LaunchState* L = detail::rt().launch;
  if (L == nullptr) detail::fatal("a GSNN_SHARED declaration ran outside a launch");
  for (const detail::StaticShared& s : L->statics)
    if (s.key == key) return L->statics_arena + s.offset;
  const int64_t offset = (L->static_bytes + align - 1) / align * align;
  if (offset + bytes > detail::kStaticArenaBytes)
    detail::fatal("static shared memory beyond the emulator's arena");
  L->statics.push_back({key, offset});
  L->static_bytes = offset + bytes;
  const int64_t limit = L->opted_in ? Limits::kOptinSharedBytes : Limits::kDefaultSharedBytes;
  const bool too_much =
      L->static_bytes > Limits::kDefaultSharedBytes || L->static_bytes + L->dyn_bytes > limit;
  if (too_much && !L->static_violation) {
    L->static_violation = true;
    detail::report(L->name + ": " + std::to_string(L->static_bytes) + " bytes of static + " +
                   std::to_string(L->dyn_bytes) + " bytes of dynamic shared memory, more than " +
                   std::to_string(limit) +
                   (L->opted_in ? " (the opt-in maximum)" : " (no opt-in)") +
                   " or more than 48 KiB of static shared memory");
  }
  return L->statics_arena + offset;
}

// The dynamic shared memory of the running block.
inline void* dynamic_shared() {
  detail::Untracked u;
  detail::LaunchState* L = detail::rt().launch;
  return L != nullptr ? L->dyn : nullptr;
}

template <class... P>
class Launch {
 public:
  using Fn = void (*)(P...);
  Launch(Fn fn, const char* name, dim3 grid, dim3 block, size_t smem)
      : fn_(fn), name_(name), grid_(grid), block_(block), smem_(smem) {}

  void operator()(std::type_identity_t<P>... args) const {
    detail::LaunchState L;
    L.name = name_;
    L.grid = grid_;
    L.block = block_;
    L.dyn_bytes = static_cast<int64_t>(smem_);
    const cudaError_t err = detail::check_config(L, reinterpret_cast<const void*>(fn_));
    if (err != cudaSuccess) {
      detail::set_error(err);
      return;
    }
    // Page-aligned mappings (fresh pages for every block under TSan): the static
    // arena, then the dynamic shared memory.
    const size_t dyn_map = detail::round_pages(static_cast<size_t>(L.dyn_bytes));
    const size_t map_bytes = static_cast<size_t>(detail::kStaticArenaBytes) + dyn_map;
    void* p = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) detail::fatal("cannot map the shared memory");
    L.statics_arena = static_cast<unsigned char*>(p);
    if (dyn_map > 0) L.dyn = L.statics_arena + detail::kStaticArenaBytes;
    const Fn fn = fn_;
    L.body = [&]() { fn(args...); };
    ++detail::rt().launches;
    detail::run_grid(L);
    munmap(p, map_bytes);
  }

 private:
  Fn fn_;
  const char* name_;
  dim3 grid_, block_;
  size_t smem_;
};

template <class... P>
Launch<P...> make_launch(void (*fn)(P...), const char* name, dim3 grid, dim3 block, size_t smem,
                         cudaStream_t) {
  return Launch<P...>(fn, name, grid, block, smem);
}

}  // namespace gsnn_emu

inline void __syncthreads() {
  using namespace gsnn_emu::detail;
  Runtime& r = rt();
  Fiber* f;
  uint64_t phase;
  char* sync;
  {
    Untracked u;
    f = r.current;
    phase = f->phase;
    sync = r.barrier_sync;
  }
  // Two sync objects used in turn: a thread that leaves barrier k acquires what
  // every thread released on arriving at barrier k, never what a faster thread
  // released later on its way to barrier k + 1.
  hb_release(&sync[phase & 1]);
  {
    Untracked u;
    f->state = kAtBarrier;
  }
  to_main();
  hb_acquire(&sync[phase & 1]);
  Untracked u;
  f->phase = phase + 1;
}

// ---------------------------------------------------------------------------
// Runtime API stubs used by the .cu files and the driver.
// ---------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = gsnn_emu::detail::rt().last_error;
  gsnn_emu::detail::rt().last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return gsnn_emu::detail::rt().last_error; }

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDeviceFunction:
      return "invalid device function";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    default:
      return "unknown error";
  }
}

template <class F>
cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute attr, int value) {
  using gsnn_emu::Limits;
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > Limits::kOptinSharedBytes) {
    gsnn_emu::detail::report("cudaFuncSetAttribute: " + std::to_string(value) +
                             " bytes of dynamic shared memory requested, more than the " +
                             std::to_string(Limits::kOptinSharedBytes) + " a block may opt in to");
    return cudaErrorInvalidValue;
  }
  auto& attrs = gsnn_emu::detail::rt().max_dyn_attr;
  const void* key = reinterpret_cast<const void*>(fn);
  for (auto& a : attrs)
    if (a.first == key) {
      a.second = value;
      return cudaSuccess;
    }
  attrs.emplace_back(key, value);
  return cudaSuccess;
}

inline cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}

inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
    case cudaDevAttrMaxBlockDimX:
      *value = 1024;
      return cudaSuccess;
    case cudaDevAttrMaxGridDimY:
      *value = 65535;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(gsnn_emu::Limits::kDefaultSharedBytes);
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(gsnn_emu::Limits::kOptinSharedBytes);
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// ---------------------------------------------------------------------------
// The launch macros of csrc/cuda/launch.h.
// ---------------------------------------------------------------------------
#define GSNN_LAUNCH(kernel, grid, block, smem, stream) \
  ::gsnn_emu::make_launch(kernel, #kernel, (grid), (block), (smem), (stream))
#define GSNN_DYNAMIC_SHARED(type, name) \
  type* const name = static_cast<type*>(::gsnn_emu::dynamic_shared())
#define GSNN_SHARED(type, name)                                                                  \
  static const char gsnn_shared_key_##name = 0;                                                  \
  type& name = *static_cast<type*>(::gsnn_emu::static_shared(&gsnn_shared_key_##name,            \
                                                             static_cast<int64_t>(sizeof(type)), \
                                                             static_cast<int64_t>(alignof(type))))
#define GSNN_SHARED_ARRAY(type, name, count)                                 \
  static const char gsnn_shared_key_##name = 0;                              \
  type* const name = static_cast<type*>(::gsnn_emu::static_shared(           \
      &gsnn_shared_key_##name, static_cast<int64_t>(sizeof(type) * (count)), \
      static_cast<int64_t>(alignof(type))))
