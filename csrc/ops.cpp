// gsnn_fast._C: every op schema, once. Backends register their kernels with
// TORCH_LIBRARY_IMPL in csrc/cpu/*_cpu.cpp and csrc/cuda/*_cuda.cpp; the
// dispatcher picks the backend from the tensors' device.
//
// The module itself is a plain CPython extension (no pybind11): importing it runs
// the static registrations above, and it exposes two functions: build_info() and
// isa_ran(op), the CPU ISA variant an op ran last (csrc/cpu/isa.h).
#include <Python.h>
#include <torch/library.h>

#include <string>

#include "cpu/isa.h"
#include "generated/build_flags.h"

TORCH_LIBRARY(gsnn_fast, m) {
  // (L, B, C) activations or gradients -> (K, L, B, N) float64 magnitudes.
  m.def("segment_magnitude(Tensor x, Tensor ptr, int[] modes) -> Tensor");
  // Sparse linear layer y = x W + bias with W in CSR by output (forward) and by
  // input (the transpose, for the backward) (csrc/include/gsnn_fast/sparse_linear.h).
  m.def(
      "sparse_linear(Tensor x, Tensor values, Tensor? bias, Tensor out_ptr, Tensor out_rows, "
      "Tensor out_perm, Tensor in_ptr, Tensor in_cols, Tensor in_perm, int n_out) -> Tensor");
  m.def(
      "sparse_linear_backward(Tensor grad_out, Tensor x, Tensor values, Tensor in_ptr, "
      "Tensor in_cols, Tensor in_perm, bool need_x, bool need_values, bool need_bias) "
      "-> (Tensor, Tensor, Tensor)");
  // (L, B, N) activation / gradient magnitudes -> in-place update of the streaming
  // sums of the P = L - 1 layer pairs (csrc/include/gsnn_fast/pair_stats.h).
  m.def(
      "pair_stats_update(Tensor xmag, Tensor ymag, Tensor(a!) sum_x, Tensor(b!) sum_y, "
      "Tensor(c!) sum_x2, Tensor(d!) sum_y2, Tensor(e!) sum_xy, Tensor(f!)? sum_xx) -> ()");
  // Ridge partial correlation of every (pair, target) system given conditioning
  // sets in CSR form -> [P, N, N] float64 (csrc/include/gsnn_fast/partial_corr.h).
  m.def(
      "partial_corr(Tensor corr, Tensor cov_xy, Tensor cov_xx, Tensor var_x, Tensor var_y, "
      "Tensor ptr, Tensor idx, float ridge, float tol) -> Tensor");
  // Plain correlation of every layer pair from the streaming sums and its mean / max
  // over pairs, in one pass -> ([P, M, N] or empty, [M, N]) float64
  // (csrc/include/gsnn_fast/pair_corr.h).
  m.def(
      "pair_corr(Tensor sum_x, Tensor sum_y, Tensor sum_x2, Tensor sum_y2, Tensor sum_xy, "
      "float n, float tol, int rule, int agg, bool per_pair) -> (Tensor, Tensor)");
  // Partial correlation of every layer pair from the streaming sums (relative
  // zero-variance rule) and its mean / max over pairs -> ([P, N, N] or empty, [N, N])
  // float64 (csrc/include/gsnn_fast/partial_corr.h; CPU and CUDA kernels).
  m.def(
      "pair_partial_corr(Tensor sum_x, Tensor sum_y, Tensor sum_x2, Tensor sum_y2, "
      "Tensor sum_xy, Tensor sum_xx, Tensor ptr, Tensor idx, float n, float ridge, float tol, "
      "int agg, bool per_pair) -> (Tensor, Tensor)");
  // pair_partial_corr's aggregate, plus the targets whose sets are big (>= 64
  // members) and every pair's scores of those targets -> ([N, N], [B] int64,
  // [P, B, N]): the large-N frame query takes the kept rows of those targets from
  // them instead of solving the big sets again (host-only: CPU tensors).
  m.def(
      "pair_partial_corr_keep_big(Tensor sum_x, Tensor sum_y, Tensor sum_x2, Tensor sum_y2, "
      "Tensor sum_xy, Tensor sum_xx, Tensor ptr, Tensor idx, float n, float ridge, float tol, "
      "int agg) -> (Tensor, Tensor, Tensor)");
  // Each pair's value of pair_partial_corr at the entries (src[r], dst[r]) only ->
  // [P, R] float64, the same bits (host-only: CPU tensors; the large-N frame query).
  m.def(
      "pair_partial_corr_entries(Tensor sum_x, Tensor sum_y, Tensor sum_x2, Tensor sum_y2, "
      "Tensor sum_xy, Tensor sum_xx, Tensor ptr, Tensor idx, float n, float ridge, float tol, "
      "Tensor src, Tensor dst) -> Tensor");
  // Host-only helpers of the result frames (csrc/cpu/frame_cpu.cpp): they take CPU
  // tensors; CUDA tensors get a clear error.
  // Stable argsort of a float64 vector (NaN last): LSD radix sort.
  m.def("argsort_stable(Tensor x, bool descending) -> Tensor");
  // The row order of a result frame: flat positions i * N + j of an [N, N] score
  // sorted by score descending, NaN last, ties src-major, the diagonal skipped when
  // asked.
  m.def("frame_order(Tensor score, bool exclude_self) -> Tensor");
  // Benjamini-Hochberg q-values of p-values non-decreasing within each group (by
  // merging the groups), or an empty tensor if they are not.
  m.def("bh_q_grouped(Tensor p, Tensor group) -> Tensor");
  // The first k rows of each target (non-NaN score) of a frame in frame order.
  m.def("top_k_rows(Tensor dst, Tensor score, int k) -> Tensor");
  // Large-N frame queries (csrc/cpu/score_select_cpu.cpp), host-only as well: the k
  // best sources of every target column of an [N, C] block of a score matrix (its
  // columns col_offset .. col_offset + C - 1), as [C, k] (-1 padded).
  m.def("column_top_k(Tensor score, int k, bool exclude_self, int col_offset) -> Tensor");
  // Counts of the entries of such a block per bucket (per-column-group score edges)
  // and the flat block positions of the entries in the selected buckets.
  m.def(
      "score_buckets(Tensor score, Tensor group, Tensor edges, Tensor select, "
      "bool exclude_self, int col_offset) -> (Tensor, Tensor)");
}

namespace {

PyObject* build_info(PyObject* /*self*/, PyObject* /*args*/) {
#ifdef GSNN_FAST_WITH_CUDA
  PyObject* cuda = Py_True;
#else
  PyObject* cuda = Py_False;
#endif
  return Py_BuildValue("{s:O,s:s,s:s,s:s,s:l,s:s}", "cuda", cuda, "cxx_flags", GSNN_FAST_CXX_FLAGS,
                       "nvcc_flags", GSNN_FAST_NVCC_FLAGS, "compiler", __VERSION__, "cxx_standard",
                       static_cast<long>(__cplusplus), "torch_version", GSNN_FAST_TORCH_VERSION);
}

PyObject* isa_ran(PyObject* /*self*/, PyObject* args) {
  const char* op = nullptr;
  if (!PyArg_ParseTuple(args, "s", &op)) return nullptr;
  return PyUnicode_FromString(gsnn_fast::isa_ran(op).c_str());
}

PyMethodDef methods[] = {
    {"build_info", build_info, METH_NOARGS, "What this extension was built with."},
    {"isa_ran", isa_ran, METH_VARARGS,
     "The CPU ISA variant (avx512f, avx2, baseline) the op ran last; '' before its first call."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "gsnn_fast kernels (torch ops)", -1,
                          methods};

}  // namespace

extern "C" PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
