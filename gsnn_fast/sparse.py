"""Deterministic sparse linear layer: ``y = x @ W + bias`` with ``W`` sparse (kernels + fallback).

Over ~450 lines on purpose: the op family in one place -- the plan, the op wrappers and
fakes, the autograd registration, and the pure-torch twin (fallback and reference).

Interface (what a model's ``SparseLinear.forward`` calls)::

    from gsnn_fast.sparse import SparsePlan, sparse_linear

    plan = SparsePlan.from_indices(indices, size=(N_in, M_out))   # once: __init__, prune(), load
    plan = plan.to(device)                                         # when the module moves
    y = sparse_linear(x, values, bias, plan)                       # every forward

* ``indices`` ``[2, nnz]`` int64: row ``r = indices[0, e]`` is the input index in
  ``[0, N_in)``, column ``m = indices[1, e]`` the output index in ``[0, M_out)``.
* ``x`` ``(B, N_in)`` or ``(B, N_in, 1)``; ``values`` ``(nnz,)``; ``bias`` ``(M_out, 1)``,
  ``(M_out,)`` or ``None``. Returns ``(B, M_out)``, or ``(B, M_out, 1)`` for a 3-d ``x``:
  ``y[b, m] = sum over entries e with indices[1, e] == m of values[e] * x[b, indices[0, e]]
  + bias[m]``.
* Gradients flow to ``x``, ``values`` and ``bias`` (``torch.library.register_autograd``
  on the op ``gsnn_fast::sparse_linear``; the backward is the op
  ``gsnn_fast::sparse_linear_backward``).
* ``SparsePlan`` holds the two CSR forms of ``W`` as int64 tensors (see the class). It
  is built once per index set -- never per forward -- and is cheap to rebuild after a
  prune (two stable argsorts). A module registers its tensors as (non-persistent)
  buffers with :meth:`SparsePlan.buffers` / :meth:`SparsePlan.from_buffers`, or keeps
  the plan as an attribute and calls :meth:`SparsePlan.to` on device moves; either way
  the ``state_dict`` is unchanged (only ``indices``, ``values``, ``bias``).

The op runs for float32 and float64 when ``x``, ``values`` and ``bias`` share dtype
and device; the dispatcher picks its kernel by device: the compiled CPU and (in CUDA
builds) CUDA kernels, and on devices without a compiled kernel (CUDA in a CPU-only
build, MPS) the pure-torch kernels registered at the end of this module. Other
dtypes (float16, bfloat16) go through :func:`sparse_linear_torch`, a vectorised
pure-torch version (torch CSR @ dense products, gather-dot value gradient), also used
by the tests as a reference.

Determinism (kernels): every output element is computed by one CPU SIMD lane / CUDA
thread in one fixed order, in the input dtype (float32 inputs are multiplied and
summed in float32, like torch's own kernels; float64 in float64), each operation
rounded once (no FMA): ``y`` and ``grad_x`` over the CSR segment in ascending entry
order, then ``+ bias``; ``grad_bias`` over ``b`` ascending; ``grad_values`` as 8
lanes ``b mod 8`` (each ascending) combined by the tree ``((l0+l1)+(l2+l3)) +
((l4+l5)+(l6+l7))`` (csrc/include/gsnn_fast/sparse_linear.h). No atomics, so two
runs, any thread count, any CPU ISA, and CPU vs CUDA give the same bits.

Memory: O(B * (N_in + M_out) + nnz), never O(B * nnz): the kernels read transposed
copies of x and of the output gradient. On the CPU those copies live in two
per-thread scratch blocks that are kept between calls (so their pages are not
faulted in again on every call); they hold at most B * max(N_in, M_out) elements
each.

Ops (csrc/ops.cpp)::

    sparse_linear(Tensor x, Tensor values, Tensor? bias, Tensor out_ptr, Tensor out_rows,
                  Tensor out_perm, Tensor in_ptr, Tensor in_cols, Tensor in_perm,
                  int n_out) -> Tensor
    sparse_linear_backward(Tensor grad_out, Tensor x, Tensor values, Tensor in_ptr,
                           Tensor in_cols, Tensor in_perm, bool need_x,
                           bool need_values, bool need_bias) -> (Tensor, Tensor, Tensor)

The forward takes the transpose CSR (``in_*``) too, unused by its kernel, so that the
registered autograd formula can hand it to the backward op. ``bias`` is 1-d there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from . import ops

__all__ = ["SparsePlan", "sparse_linear", "sparse_linear_torch", "has_kernel"]

_KERNEL_DTYPES = (torch.float32, torch.float64)


class SparsePlan:
    """The two CSR forms of a sparse ``(N_in x M_out)`` matrix given by COO ``indices``.

    Attributes (int64 tensors on one device):
        out_ptr ``(M_out + 1,)``, out_rows ``(nnz,)``, out_perm ``(nnz,)``: CSR by output.
            The slots ``out_ptr[m] .. out_ptr[m+1]`` are the entries of output ``m`` in
            ascending entry order (stable sort); ``out_rows[s]`` is the input index of
            slot ``s`` and ``out_perm[s]`` its entry index into ``values``.
        in_ptr ``(N_in + 1,)``, in_cols ``(nnz,)``, in_perm ``(nnz,)``: the same by input
            (CSR of the transpose), used by the backward.
        size: ``(N_in, M_out)``.
    """

    _NAMES = ("out_ptr", "out_rows", "out_perm", "in_ptr", "in_cols", "in_perm")

    def __init__(
        self,
        out_ptr: torch.Tensor,
        out_rows: torch.Tensor,
        out_perm: torch.Tensor,
        in_ptr: torch.Tensor,
        in_cols: torch.Tensor,
        in_perm: torch.Tensor,
        size: Sequence[int],
    ) -> None:
        self.out_ptr, self.out_rows, self.out_perm = out_ptr, out_rows, out_perm
        self.in_ptr, self.in_cols, self.in_perm = in_ptr, in_cols, in_perm
        self.size = (int(size[0]), int(size[1]))
        self._indices: torch.Tensor | None = None

    @classmethod
    def from_indices(cls, indices: torch.Tensor, size: Sequence[int]) -> SparsePlan:
        """Builds both CSR forms from COO ``indices`` ``[2, nnz]`` of an ``(N_in, M_out)``
        matrix (on the indices' device). Raises ValueError on bad shapes or out-of-range
        indices."""
        if len(size) != 2:
            raise ValueError(f"size must be (N_in, M_out), got {tuple(size)}")
        n_in, n_out = int(size[0]), int(size[1])
        if n_in < 0 or n_out < 0:
            raise ValueError(f"size must be non-negative, got {(n_in, n_out)}")
        if not isinstance(indices, torch.Tensor) or indices.dim() != 2 or indices.shape[0] != 2:
            shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices)
            raise ValueError(f"indices must be a [2, nnz] integer tensor, got {shape}")
        if (
            indices.dtype.is_floating_point
            or indices.dtype.is_complex
            or indices.dtype == torch.bool
        ):
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        idx = indices.to(torch.int64)
        rows, cols = idx[0], idx[1]
        if idx.shape[1] > 0:
            rmin, rmax, cmin, cmax = (
                int(v) for v in (rows.min(), rows.max(), cols.min(), cols.max())
            )
            if rmin < 0 or rmax >= n_in:
                raise ValueError(
                    f"indices[0] (input index) must lie in [0, {n_in}), got [{rmin}, {rmax}]"
                )
            if cmin < 0 or cmax >= n_out:
                raise ValueError(
                    f"indices[1] (output index) must lie in [0, {n_out}), got [{cmin}, {cmax}]"
                )
        out_perm = torch.argsort(cols, stable=True)
        in_perm = torch.argsort(rows, stable=True)
        out_ptr = torch.zeros(n_out + 1, dtype=torch.int64, device=idx.device)
        torch.cumsum(torch.bincount(cols, minlength=n_out), 0, out=out_ptr[1:])
        in_ptr = torch.zeros(n_in + 1, dtype=torch.int64, device=idx.device)
        torch.cumsum(torch.bincount(rows, minlength=n_in), 0, out=in_ptr[1:])
        plan = cls(
            out_ptr,
            rows[out_perm].contiguous(),
            out_perm,
            in_ptr,
            cols[in_perm].contiguous(),
            in_perm,
            (n_in, n_out),
        )
        plan._indices = idx.contiguous()
        return plan

    @property
    def nnz(self) -> int:
        return int(self.out_rows.shape[0])

    @property
    def device(self) -> torch.device:
        return self.out_ptr.device

    def to(self, device: torch.device | str) -> SparsePlan:
        """The plan on ``device`` (self if it is already there)."""
        device = torch.device(device)
        if self.out_ptr.device == device:
            return self
        plan = SparsePlan(*(getattr(self, n).to(device) for n in self._NAMES), self.size)
        if self._indices is not None:
            plan._indices = self._indices.to(device)
        return plan

    def buffers(self) -> dict[str, torch.Tensor]:
        """The six index tensors by name, e.g. for ``module.register_buffer(name, t,
        persistent=False)``."""
        return {n: getattr(self, n) for n in self._NAMES}

    @classmethod
    def from_buffers(cls, buffers: dict[str, torch.Tensor], size: Sequence[int]) -> SparsePlan:
        """Inverse of :meth:`buffers` (no copy)."""
        return cls(*(buffers[n] for n in cls._NAMES), size)

    def indices(self) -> torch.Tensor:
        """COO ``[2, nnz]`` indices in entry order, rebuilt from the CSR if needed (cached)."""
        if self._indices is None:
            nnz, dev = self.nnz, self.device
            rows = torch.empty(nnz, dtype=torch.int64, device=dev)
            rows[self.out_perm] = self.out_rows
            cols = torch.empty(nnz, dtype=torch.int64, device=dev)
            cols[self.in_perm] = self.in_cols
            self._indices = torch.stack([rows, cols])
        return self._indices

    def __repr__(self) -> str:
        return f"SparsePlan(size={self.size}, nnz={self.nnz}, device={self.device})"


# ----------------------------------------------------------------------------- ops glue


@torch.library.register_fake("gsnn_fast::sparse_linear")
def _sparse_linear_fake(
    x, values, bias, out_ptr, out_rows, out_perm, in_ptr, in_cols, in_perm, n_out
):
    torch._check(x.dim() == 2, lambda: "sparse_linear: x must be (B, N_in)")
    torch._check(values.dim() == 1, lambda: "sparse_linear: values must be 1-d")
    torch._check(values.dtype == x.dtype, lambda: "sparse_linear: values dtype must equal x's")
    return x.new_empty((x.shape[0], n_out))


@torch.library.register_fake("gsnn_fast::sparse_linear_backward")
def _sparse_linear_backward_fake(
    grad_out, x, values, in_ptr, in_cols, in_perm, need_x, need_values, need_bias
):
    torch._check(
        x.dim() == 2 and grad_out.dim() == 2, lambda: "sparse_linear_backward: 2-d x, grad_out"
    )
    gx = x.new_empty((x.shape[0], x.shape[1]) if need_x else (0, 0))
    gv = x.new_empty((values.shape[0],) if need_values else (0,))
    gb = x.new_empty((grad_out.shape[1],) if need_bias else (0,))
    return gx, gv, gb


def _setup_context(ctx, inputs, output):
    x, values, bias, _op, _or, _oq, in_ptr, in_cols, in_perm, _n = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, values, in_ptr, in_cols, in_perm)


def _backward(ctx, grad_out):
    x, values, in_ptr, in_cols, in_perm = ctx.saved_tensors
    need_x, need_values, need_bias = ctx.needs_input_grad[:3]
    need_bias = need_bias and ctx.has_bias
    gx, gv, gb = torch.ops.gsnn_fast.sparse_linear_backward.default(
        grad_out.to(x.dtype), x, values, in_ptr, in_cols, in_perm, need_x, need_values, need_bias
    )
    return (
        gx if need_x else None,
        gv if need_values else None,
        gb if need_bias else None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


torch.library.register_autograd("gsnn_fast::sparse_linear", _backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- public API


def has_kernel(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None = None) -> bool:
    """Whether :func:`sparse_linear` calls the ``gsnn_fast::sparse_linear`` op for these
    tensors: float32 or float64, one dtype and one device. The dispatcher then runs the
    compiled kernel of that device, or, on a device without one (CUDA in a CPU-only
    build, MPS), the torch version registered for it below."""
    if x.dtype not in _KERNEL_DTYPES or values.dtype != x.dtype or values.device != x.device:
        return False
    return bias is None or (bias.dtype == x.dtype and bias.device == x.device)


def _as_2d(x: torch.Tensor, n_in: int) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3 and x.shape[2] == 1:
        x2, three = x.squeeze(2), True
    elif x.dim() == 2:
        x2, three = x, False
    else:
        raise ValueError(f"x: expected shape (B, {n_in}) or (B, {n_in}, 1), got {tuple(x.shape)}")
    if x2.shape[1] != n_in:
        raise ValueError(f"x: expected shape (B, {n_in}) or (B, {n_in}, 1), got {tuple(x.shape)}")
    return x2, three


def _bias_1d(bias: torch.Tensor | None, n_out: int) -> torch.Tensor | None:
    if bias is None:
        return None
    if bias.numel() != n_out or not (bias.dim() == 1 or (bias.dim() == 2 and bias.shape[1] == 1)):
        raise ValueError(
            f"bias must be (M_out, 1) or (M_out,) with M_out = {n_out}, got {tuple(bias.shape)}"
        )
    return bias.reshape(n_out)


def sparse_linear(
    x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, plan: SparsePlan
) -> torch.Tensor:
    """``y[b, m] = sum_{e: indices[1,e] = m} values[e] * x[b, indices[0,e]] + bias[m]``.

    Args:
        x: ``(B, N_in)`` or ``(B, N_in, 1)``.
        values: ``(nnz,)`` in the entry order of the ``indices`` the plan was built from.
        bias: ``(M_out, 1)``, ``(M_out,)`` or None.
        plan: :class:`SparsePlan` of the indices, on x's device.

    Returns:
        ``(B, M_out)``, or ``(B, M_out, 1)`` when x is 3-d; x's dtype. Deterministic and
        bit-identical on CPU and CUDA for float32 / float64 (see the module docstring);
        other dtypes and devices use :func:`sparse_linear_torch`.
    """
    n_in, n_out = plan.size
    x2, three = _as_2d(x, n_in)
    if x2.dtype != values.dtype:
        raise TypeError(f"x: dtype {x2.dtype} does not match the layer's weights ({values.dtype})")
    if values.dim() != 1 or values.shape[0] != plan.nnz:
        raise ValueError(f"values must be (nnz,) with nnz = {plan.nnz}, got {tuple(values.shape)}")
    b1 = _bias_1d(bias, n_out)
    if has_kernel(x2, values, b1) and plan.device == x2.device:
        y = torch.ops.gsnn_fast.sparse_linear.default(
            x2,
            values,
            b1,
            plan.out_ptr,
            plan.out_rows,
            plan.out_perm,
            plan.in_ptr,
            plan.in_cols,
            plan.in_perm,
            n_out,
        )
    else:
        p = plan.to(x2.device)
        y = sparse_linear_torch(x2, p.indices(), values, b1, p.size, plan=p)
    return y.unsqueeze(2) if three else y


_CHUNK = 1 << 22  # elements of a (B, chunk) gather temporary in the fallback


def _csr_ok(t: torch.Tensor) -> bool:
    # torch's CSR @ dense: float32/float64 on CPU (MKL) and CUDA (cuSPARSE)
    return t.dtype in _KERNEL_DTYPES and t.device.type in ("cpu", "cuda")


def _spmm_torch(ptr, idx, vals_csr, x, n_rows, n_cols, entry_idx, entry_cols, values):
    """out (B, n_rows) with out[b, i] = sum over CSR row i of vals * x[b, idx]."""
    B = x.shape[0]
    if values.numel() == 0 or B == 0:
        return x.new_zeros(B, n_rows)
    if _csr_ok(x):
        with warnings.catch_warnings():  # torch's one-time "CSR support is beta" warning
            warnings.simplefilter("ignore", UserWarning)
            w = torch.sparse_csr_tensor(
                ptr, idx, vals_csr, (n_rows, n_cols), check_invariants=False
            )
        return (w @ x.t().contiguous()).t()
    out = x.new_zeros(B, n_rows)
    step = max(1, _CHUNK // max(B, 1))
    for s in range(0, values.numel(), step):
        sl = slice(s, s + step)
        out.index_add_(1, entry_cols[sl], x[:, entry_idx[sl]] * values[sl])
    return out


def _grad_values_torch(
    x: torch.Tensor, g: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """grad_values[e] = sum_b x[b, rows[e]] * g[b, cols[e]], a gather-dot over chunks."""
    gv = x.new_empty(rows.shape[0])
    step = max(1, _CHUNK // max(x.shape[0], 1))
    for s in range(0, rows.shape[0], step):
        sl = slice(s, s + step)
        gv[sl] = (x[:, rows[sl]] * g[:, cols[sl]]).sum(0)
    return gv


class _SparseLinearTorch(torch.autograd.Function):
    """Vectorised pure torch; forward and grad_x as CSR @ dense (or chunked gather +
    index_add where torch has no CSR kernel), grad_values as a chunked gather-dot."""

    @staticmethod
    def forward(ctx, x, values, bias, plan):
        n_in, n_out = plan.size
        idx = plan.indices()
        y = _spmm_torch(
            plan.out_ptr,
            plan.out_rows,
            values[plan.out_perm],
            x,
            n_out,
            n_in,
            idx[0],
            idx[1],
            values,
        )
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x, values)
        ctx.plan = plan
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, values = ctx.saved_tensors
        plan = ctx.plan
        n_in, n_out = plan.size
        idx = plan.indices()
        g = g.to(x.dtype)
        gx = gv = gb = None
        if ctx.needs_input_grad[0]:
            gx = _spmm_torch(
                plan.in_ptr,
                plan.in_cols,
                values[plan.in_perm],
                g,
                n_in,
                n_out,
                idx[1],
                idx[0],
                values,
            )
        if ctx.needs_input_grad[1]:
            gv = _grad_values_torch(x, g, idx[0], idx[1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gv, gb, None


def sparse_linear_torch(
    x: torch.Tensor,
    indices: torch.Tensor,
    values: torch.Tensor,
    bias: torch.Tensor | None,
    size: Sequence[int],
    plan: SparsePlan | None = None,
) -> torch.Tensor:
    """Vectorised pure-torch sparse linear map (fallback and test reference).

    Same contract as :func:`sparse_linear`, but takes the COO ``indices`` ``[2, nnz]``
    and ``size = (N_in, M_out)``; pass ``plan`` to reuse its CSR structures (otherwise
    one is built per call). Forward and input gradient are torch CSR @ dense products
    (float32/float64 on CPU and CUDA), or a gather + ``index_add_`` over chunks of
    entries for other dtypes and devices; the value gradient is a gather-dot over
    chunks of entries; the bias gradient ``g.sum(0)``. Any dtype and device torch
    supports. Extra memory O(B (N_in + M_out) + nnz) plus a bounded chunk; the
    summation order is torch's (not bit-reproducible across backends).
    """
    n_in, n_out = int(size[0]), int(size[1])
    x2, three = _as_2d(x, n_in)
    b1 = _bias_1d(bias, n_out)
    if plan is None or plan.size != (n_in, n_out) or plan.nnz != values.shape[0]:
        plan = SparsePlan.from_indices(indices, (n_in, n_out))
    plan = plan.to(x2.device)
    y = _SparseLinearTorch.apply(x2, values, b1, plan)
    return y.unsqueeze(2) if three else y


# ------------------------------------------- the op on devices without a compiled kernel


def _sparse_linear_kernel_torch(
    x, values, bias, out_ptr, out_rows, out_perm, in_ptr, in_cols, in_perm, n_out
):
    """``gsnn_fast::sparse_linear`` in torch ops (same contract, torch's order)."""
    plan = SparsePlan(out_ptr, out_rows, out_perm, in_ptr, in_cols, in_perm, (x.shape[1], n_out))
    rows, cols = plan.indices()
    y = _spmm_torch(out_ptr, out_rows, values[out_perm], x, n_out, x.shape[1], rows, cols, values)
    return y + bias if bias is not None else y


def _sparse_linear_backward_kernel_torch(
    grad_out, x, values, in_ptr, in_cols, in_perm, need_x, need_values, need_bias
):
    """``gsnn_fast::sparse_linear_backward`` in torch ops (same contract, torch's order)."""
    n_in, n_out = x.shape[1], grad_out.shape[1]
    seg = torch.repeat_interleave(torch.arange(n_in, device=x.device), in_ptr.diff())
    rows = torch.empty_like(in_cols)
    rows[in_perm] = seg
    cols = torch.empty_like(in_cols)
    cols[in_perm] = in_cols
    gx = (
        _spmm_torch(in_ptr, in_cols, values[in_perm], grad_out, n_in, n_out, cols, rows, values)
        if need_x
        else x.new_empty((0, 0))
    )
    gv = _grad_values_torch(x, grad_out, rows, cols) if need_values else x.new_empty((0,))
    gb = grad_out.sum(0) if need_bias else x.new_empty((0,))
    return gx, gv, gb


def _torch_kernel_devices() -> tuple[str, ...]:
    """Device types that get the torch kernels: those without a compiled one."""
    return ("mps",) if ops.build_info()["cuda"] else ("cuda", "mps")


for _device in _torch_kernel_devices():
    torch.library.register_kernel("gsnn_fast::sparse_linear", _device, _sparse_linear_kernel_torch)
    torch.library.register_kernel(
        "gsnn_fast::sparse_linear_backward", _device, _sparse_linear_backward_kernel_torch
    )
