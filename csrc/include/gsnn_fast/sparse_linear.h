// gsnn_fast/sparse_linear.h -- per-element math of the sparse linear layer.
//
// W is a sparse (N_in x M_out) matrix given as COO entries e = 0..nnz-1 with
// row r_e (input index), column m_e (output index) and value v_e.
//
// Op: gsnn_fast::sparse_linear(x, values, bias?, out_ptr, out_rows, out_perm,
//                              in_ptr, in_cols, in_perm, n_out) -> y
//   x        (B, N_in)   float32 or float64 (any strides; the glue makes xT)
//   values   (nnz,)      same dtype as x, entry order
//   bias     (M_out,)    same dtype as x, or None
//   out_ptr  (M_out+1,)  int64: CSR by output; out_rows[out_ptr[m]..out_ptr[m+1])
//   out_rows (nnz,)      int64: input index of each CSR-by-output slot
//   out_perm (nnz,)      int64: entry index of each CSR-by-output slot
//   in_*                 the same by input (CSR of the transpose); unused by the
//                        forward, carried so that autograd can reach them
//   y        (B, M_out)  same dtype as x, contiguous:
//            y[b, m] = (sum over slots s of m of v[out_perm[s]] * x[b, out_rows[s]]) + bias[m]
//
// Op: gsnn_fast::sparse_linear_backward(grad_out, x, values, in_ptr, in_cols,
//                                       in_perm, need_x, need_values, need_bias)
//                                       -> (grad_x, grad_values, grad_bias)
//   grad_x[b, r]   = sum over slots s of input r of v[in_perm[s]] * g[b, in_cols[s]]
//   grad_values[e] = sum over b of x[b, r_e] * g[b, m_e]           (8-lane tree below)
//   grad_bias[m]   = sum over b of g[b, m]
//   An output that is not needed comes back as an empty (0,) tensor.
//
// PARITY -- summation order and accumulator, identical on the CPU and CUDA:
//   * accumulator: the input dtype S (acc_t<S> below): float32 inputs are
//     multiplied and summed in float32, float64 in float64 -- as torch's own
//     kernels do, and at full speed on GPUs with slow float64.
//   * y and grad_x: one output element per CPU SIMD lane / CUDA thread; its terms
//     v * x are added in ascending slot order of its CSR segment, starting from 0;
//     the CSR segments keep the entries of one output (input) in ascending entry
//     order (SparsePlan sorts stably). The bias is added last: y = sum + bias.
//     No bias: y = sum.
//   * grad_bias[m]: sum over b = 0, 1, ..., B-1 in ascending order, from 0.
//   * grad_values[e]: 8 lane sums, lane j = x[j]g[j] + x[j+8]g[j+8] + ...
//     (b = j mod 8, ascending, from 0), then the fixed tree
//     ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). The CPU vectorises
//     the lanes; a CUDA thread runs the same function.
//   * every add / multiply is one correctly rounded IEEE operation of type S
//     (hd.h helpers and their float32 twins below; never fused into an FMA).
//   * a NaN output is stored as the canonical quiet NaN (canonical() below).
// Layouts: the kernels read xT = x^T (N_in, B) and gT = g^T (M_out, B), both
// contiguous, so that a slot's contribution is a contiguous B-vector.
#pragma once

#include <cstring>

#include "gsnn_fast/hd.h"

namespace gsnn_fast {
namespace sl {

// PARITY: the accumulator type, one place for both backends.
template <typename S>
struct Acc {
  using type = S;
};
template <typename S>
using acc_t = typename Acc<S>::type;

constexpr int kLanes = 8;  // lanes of the grad_values dot product

// The rounding helpers of hd.h (double, float, and on the host the GCC vector
// types of csrc/cpu/simd.h), found by the unqualified calls in term() and friends.
using gsnn_fast::add_rn;
using gsnn_fast::mul_rn;

// ---- the arithmetic, written once ------------------------------------------
// A is the scalar accumulator on the device and in scalar host code, and a host
// SIMD type (csrc/cpu/simd.h: independent elements, element-wise IEEE operations)
// in the CPU loops.

// One term of a sum: acc + v * x, two roundings (never fused).
template <typename A>
GSNN_HD A term(A acc, A v, A x) {
  return add_rn(acc, mul_rn(v, x));  // PARITY: mul then add, each rounded
}

// The grad_values lane tree: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
template <typename A>
GSNN_HD A lane_tree(const A* l) {
  // PARITY: fixed pairwise tree over the 8 lanes.
  return add_rn(add_rn(add_rn(l[0], l[1]), add_rn(l[2], l[3])),
                add_rn(add_rn(l[4], l[5]), add_rn(l[6], l[7])));
}

// PARITY: one NaN bit pattern. Every output element is stored through canonical()
// (the CUDA threads, the CPU's scalar tails) or canonicalised in place after its
// loop (the CPU's vector paths), so a NaN result is the positive quiet NaN of its
// type on both backends, whatever payload the hardware produced (see hd.h).
GSNN_HD double canonical(double v) { return canonical_nan(v); }
GSNN_HD float canonical(float v) {
#if defined(__CUDA_ARCH__)
  return v == v ? v : __int_as_float(0x7fc00000);
#else
  if (v == v) return v;
  const uint32_t u = 0x7fc00000u;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// ---- scalar per-element functions (CUDA threads, CPU tails) ------------------

// y[b, col] (or grad_x[b, col]): xT (rows, ldx) contiguous, CSR slots [s0, s1),
// idx[s] = row of xT, perm[s] = entry index into values.
template <typename S>
GSNN_HD S spmm_one(const S* xT, int64_t ldx, const int64_t* idx, const int64_t* perm,
                   const S* values, int64_t s0, int64_t s1, int64_t b, bool has_bias, S bias) {
  using A = acc_t<S>;
  A acc = A(0);
  // PARITY: ascending slot order from 0, then + bias.
  for (int64_t s = s0; s < s1; ++s) {
    acc = term(acc, static_cast<A>(values[perm[s]]), static_cast<A>(xT[idx[s] * ldx + b]));
  }
  if (has_bias) acc = add_rn(acc, static_cast<A>(bias));
  return canonical(static_cast<S>(acc));
}

// grad_values of one entry: the 8-lane dot product of a[0..n) and b[0..n).
template <typename S>
GSNN_HD S lane_dot(const S* a, const S* b, int64_t n) {
  using A = acc_t<S>;
  A l[kLanes];
  for (int j = 0; j < kLanes; ++j) l[j] = A(0);
  // PARITY: lane j sums the terms i = j (mod 8) in ascending order.
  const int64_t n8 = n - n % kLanes;
  for (int64_t i = 0; i < n8; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      l[j] = term(l[j], static_cast<A>(a[i + j]), static_cast<A>(b[i + j]));
    }
  }
  for (int j = 0; j < kLanes; ++j) {
    if (n8 + j < n) l[j] = term(l[j], static_cast<A>(a[n8 + j]), static_cast<A>(b[n8 + j]));
  }
  return canonical(static_cast<S>(lane_tree(l)));
}

// grad_bias[m]: the column sum of g (B, ldg) over b.
template <typename S>
GSNN_HD S column_sum_one(const S* g, int64_t ldg, int64_t B, int64_t m) {
  using A = acc_t<S>;
  A acc = A(0);
  // PARITY: b ascending, from 0.
  for (int64_t b = 0; b < B; ++b) acc = add_rn(acc, static_cast<A>(g[b * ldg + m]));
  return canonical(static_cast<S>(acc));
}

}  // namespace sl
}  // namespace gsnn_fast
