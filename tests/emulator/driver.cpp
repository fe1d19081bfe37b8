// Command-line driver of the grid emulator: runs the CUDA launchers of
// csrc/cuda/launchers.h (and the self-test launchers) on host buffers read from
// files, as described by a call script, and writes the buffers back.
//
// Script (one token group per line):
//   call NAME                   start a call of launcher NAME
//   buf IN NBYTES OUT           a buffer argument: read from file IN ('-': zero
//                               filled), written to file OUT after the call ('-': not)
//   null | i64 V | i32 V | f64 V (V in any strtod form, e.g. hex floats)
//   modes K M0 .. M{K-1}        a MagModes argument
//   end                         run the call
// For every call it prints "result NAME STATUS VIOLATIONS" on stdout; the exit
// status is 0 when every call returned cudaSuccess without violations.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "launchers.h"
#include "selftest.h"

// Declared weak so that the driver links before a launcher's .cu file exists.
namespace gsnn_fast {
__attribute__((weak)) cudaError_t launch_pair_partial_corr(
    const double* sum_x, const double* sum_y, const double* sum_x2, const double* sum_y2,
    const double* sum_xy, const double* sum_xx, const int64_t* ptr, const int64_t* idx, int64_t P,
    int64_t N, int64_t smax, double n, double ridge, double tol, int32_t agg, double* per_pair,
    double* out, double* work, int64_t num_blocks, cudaStream_t stream);
}  // namespace gsnn_fast

// The driver is linked last: the end of the emulator's static shared section.
GSNN_EMULATOR_DEFINE_SHARED_END

namespace {

struct Arg {
  std::string kind;
  void* ptr = nullptr;
  int64_t nbytes = 0;
  std::string out_path;
  int64_t i = 0;
  double d = 0.0;
  gsnn_fast::MagModes modes{};
};

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "driver: " << msg << "\n";
  std::exit(2);
}

struct Args {
  std::string name;
  std::vector<Arg> v;
  const Arg& at(size_t k, const char* kind) const {
    if (k >= v.size()) die(name + ": missing argument " + std::to_string(k));
    const Arg& a = v[k];
    const bool ok = a.kind == kind || (std::string(kind) == "buf" && a.kind == "null");
    if (!ok) die(name + ": argument " + std::to_string(k) + " is " + a.kind + ", not " + kind);
    return a;
  }
  template <class T>
  T* p(size_t k) const {
    return static_cast<T*>(at(k, "buf").ptr);
  }
  const double* cd(size_t k) const { return p<double>(k); }
  double* d(size_t k) const { return p<double>(k); }
  const float* cf(size_t k) const { return p<float>(k); }
  float* f(size_t k) const { return p<float>(k); }
  const int64_t* ci(size_t k) const { return p<int64_t>(k); }
  int64_t i64(size_t k) const { return at(k, "i64").i; }
  int32_t i32(size_t k) const { return static_cast<int32_t>(at(k, "i32").i); }
  double f64(size_t k) const { return at(k, "f64").d; }
  gsnn_fast::MagModes modes(size_t k) const { return at(k, "modes").modes; }
};

using Launcher = std::function<cudaError_t(const Args&)>;

std::map<std::string, Launcher> launchers() {
  using namespace gsnn_fast;
  namespace st = gsnn_emu_selftest;
  const cudaStream_t s = nullptr;
  std::map<std::string, Launcher> m;
  m["segment_magnitude_f32"] = [=](const Args& a) {
    return launch_segment_magnitude_f32(a.cf(0), a.ci(1), a.modes(2), a.i64(3), a.i64(4), a.i64(5),
                                        a.i64(6), a.d(7), s);
  };
  m["segment_magnitude_f64"] = [=](const Args& a) {
    return launch_segment_magnitude_f64(a.cd(0), a.ci(1), a.modes(2), a.i64(3), a.i64(4), a.i64(5),
                                        a.i64(6), a.d(7), s);
  };
  m["sparse_linear_spmm_f32"] = [=](const Args& a) {
    return launch_sparse_linear_spmm_f32(a.cf(0), a.i64(1), a.ci(2), a.ci(3), a.ci(4), a.cf(5),
                                         a.cf(6), a.f(7), a.i64(8), a.i64(9), s);
  };
  m["sparse_linear_spmm_f64"] = [=](const Args& a) {
    return launch_sparse_linear_spmm_f64(a.cd(0), a.i64(1), a.ci(2), a.ci(3), a.ci(4), a.cd(5),
                                         a.cd(6), a.d(7), a.i64(8), a.i64(9), s);
  };
  m["sparse_linear_grad_values_f32"] = [=](const Args& a) {
    return launch_sparse_linear_grad_values_f32(a.cf(0), a.cf(1), a.i64(2), a.ci(3), a.ci(4),
                                                a.ci(5), a.i64(6), a.i64(7), a.f(8), s);
  };
  m["sparse_linear_grad_values_f64"] = [=](const Args& a) {
    return launch_sparse_linear_grad_values_f64(a.cd(0), a.cd(1), a.i64(2), a.ci(3), a.ci(4),
                                                a.ci(5), a.i64(6), a.i64(7), a.d(8), s);
  };
  m["sparse_linear_grad_bias_f32"] = [=](const Args& a) {
    return launch_sparse_linear_grad_bias_f32(a.cf(0), a.i64(1), a.i64(2), a.f(3), s);
  };
  m["sparse_linear_grad_bias_f64"] = [=](const Args& a) {
    return launch_sparse_linear_grad_bias_f64(a.cd(0), a.i64(1), a.i64(2), a.d(3), s);
  };
  m["pair_stats_update"] = [=](const Args& a) {
    return launch_pair_stats_update(a.cd(0), a.cd(1), a.i64(2), a.i64(3), a.i64(4), a.d(5), a.d(6),
                                    a.d(7), a.d(8), a.d(9), a.d(10), s);
  };
  m["partial_corr"] = [=](const Args& a) {
    return launch_partial_corr(a.cd(0), a.cd(1), a.cd(2), a.cd(3), a.cd(4), a.ci(5), a.ci(6),
                               a.i64(7), a.i64(8), a.i64(9), a.f64(10), a.f64(11), a.d(12), a.d(13),
                               a.i64(14), s);
  };
  m["pair_corr"] = [=](const Args& a) {
    return launch_pair_corr(a.cd(0), a.cd(1), a.cd(2), a.cd(3), a.cd(4), a.i64(5), a.i64(6),
                            a.i64(7), a.f64(8), a.f64(9), a.i32(10), a.i32(11), a.d(12), a.d(13),
                            a.d(14), s);
  };
  m["pair_partial_corr"] = [=](const Args& a) {
    if (&launch_pair_partial_corr == nullptr) die("pair_partial_corr is not built");
    return launch_pair_partial_corr(a.cd(0), a.cd(1), a.cd(2), a.cd(3), a.cd(4), a.cd(5), a.ci(6),
                                    a.ci(7), a.i64(8), a.i64(9), a.i64(10), a.f64(11), a.f64(12),
                                    a.f64(13), a.i32(14), a.d(15), a.d(16), a.d(17), a.i64(18), s);
  };
  m["selftest_block_sum"] = [=](const Args& a) {
    return st::launch_block_sum(a.cd(0), a.i64(1), a.d(2), a.i32(3), a.i32(4), s);
  };
  m["selftest_fill"] = [=](const Args& a) { return st::launch_fill(a.d(0), a.i64(1), s); };
  m["selftest_grid_y"] = [=](const Args& a) { return st::launch_grid_y(a.d(0), a.i64(1), s); };
  m["selftest_dynamic_smem"] = [=](const Args& a) {
    return st::launch_dynamic_smem(a.d(0), a.i64(1), a.i32(2), s);
  };
  m["selftest_static_smem"] = [=](const Args& a) {
    return st::launch_static_smem(a.d(0), a.i64(1), s);
  };
  m["selftest_flag_race"] = [=](const Args& a) {
    return st::launch_flag_race(a.d(0), a.i32(1), s);
  };
  m["selftest_block_scratch"] = [=](const Args& a) {
    return st::launch_block_scratch(a.d(0), a.d(1), a.i32(2), s);
  };
  m["selftest_global_race"] = [=](const Args& a) { return st::launch_global_race(a.d(0), s); };
  m["selftest_past_end"] = [=](const Args& a) { return st::launch_past_end(a.d(0), a.i64(1), s); };
  return m;
}

void read_file(const std::string& path, void* dst, int64_t nbytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read " + path);
  in.read(static_cast<char*>(dst), nbytes);
  if (in.gcount() != nbytes) die(path + ": expected " + std::to_string(nbytes) + " bytes");
}

void write_file(const std::string& path, const void* src, int64_t nbytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(src), nbytes);
  if (!out) die("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) die("usage: driver SCRIPT");
  std::ifstream script(argv[1]);
  if (!script) die(std::string("cannot read ") + argv[1]);
  const std::map<std::string, Launcher> table = launchers();
  Args call;
  bool failed = false;
  std::string line;
  while (std::getline(script, line)) {
    std::istringstream ls(line);
    std::string tok;
    if (!(ls >> tok)) continue;
    if (tok == "call") {
      call = Args();
      ls >> call.name;
    } else if (tok == "end") {
      const auto it = table.find(call.name);
      if (it == table.end()) die("unknown launcher " + call.name);
      const size_t before = gsnn_emu::violations().size();
      const cudaError_t err = it->second(call);
      const size_t nv = gsnn_emu::violations().size() - before;
      std::cout << "result " << call.name << " " << static_cast<int>(err) << " " << nv << std::endl;
      if (err != cudaSuccess || nv != 0) failed = true;
      for (Arg& a : call.v) {
        if (a.kind != "buf") continue;
        if (a.out_path != "-") write_file(a.out_path, a.ptr, a.nbytes);
        std::free(a.ptr);
      }
      call = Args();
    } else {
      Arg a;
      a.kind = tok;
      if (tok == "buf") {
        std::string in;
        ls >> in >> a.nbytes >> a.out_path;
        // Exactly the requested size (at least one byte): memory checkers see
        // any access past the end.
        a.ptr = std::malloc(static_cast<size_t>(a.nbytes > 0 ? a.nbytes : 1));
        if (in == "-")
          std::memset(a.ptr, 0, static_cast<size_t>(a.nbytes));
        else
          read_file(in, a.ptr, a.nbytes);
      } else if (tok == "i64" || tok == "i32") {
        ls >> a.i;
      } else if (tok == "f64") {
        std::string v;
        ls >> v;
        a.d = std::strtod(v.c_str(), nullptr);
      } else if (tok == "modes") {
        ls >> a.modes.k;
        for (int k = 0; k < a.modes.k; ++k) ls >> a.modes.mode[k];
      } else if (tok != "null") {
        die("unknown token " + tok);
      }
      if (!ls) die("malformed line: " + line);
      call.v.push_back(a);
    }
  }
  std::cout << "stats launches " << gsnn_emu::launches() << " blocks " << gsnn_emu::blocks()
            << " barriers " << gsnn_emu::barriers() << std::endl;
  return failed ? 1 : 0;
}
