// gsnn_fast._C: every op schema, once. Backends register their kernels with
// TORCH_LIBRARY_IMPL in csrc/cpu/*_cpu.cpp and csrc/cuda/*_cuda.cpp; the
// dispatcher picks the backend from the tensors' device.
//
// The module itself is a plain CPython extension (no pybind11): importing it runs
// the static registrations above, and it exposes one function, build_info().
#include <Python.h>
#include <torch/library.h>

#include "generated/build_flags.h"

TORCH_LIBRARY(gsnn_fast, m) {
  // (L, B, C) activations or gradients -> (K, L, B, N) float64 magnitudes.
  m.def("segment_magnitude(Tensor x, Tensor ptr, int[] modes) -> Tensor");
}

namespace {

PyObject* build_info(PyObject* /*self*/, PyObject* /*args*/) {
#ifdef GSNN_FAST_WITH_CUDA
  PyObject* cuda = Py_True;
#else
  PyObject* cuda = Py_False;
#endif
  return Py_BuildValue("{s:O,s:s,s:s,s:s}", "cuda", cuda, "cxx_flags", GSNN_FAST_CXX_FLAGS,
                       "nvcc_flags", GSNN_FAST_NVCC_FLAGS, "compiler", __VERSION__);
}

PyMethodDef methods[] = {
    {"build_info", build_info, METH_NOARGS, "What this extension was built with."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "gsnn_fast kernels (torch ops)", -1,
                          methods};

}  // namespace

extern "C" PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
