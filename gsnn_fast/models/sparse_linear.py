"""Sparse linear layer of a GSNN.

A :class:`SparseLinear` holds a sparse weight matrix ``W`` of size ``(N_in, M_out)``
in COO form: ``indices`` (LongTensor ``[2, nnz]``, rows = input index ``r``, columns
= output index ``m``) and ``values`` (``[nnz]``). Its forward pass is

    ``out[b, m] = sum over entries (r, m) of values * x[b, r] + bias[m]``

computed by :func:`gsnn_fast.sparse.sparse_linear`: deterministic CPU/CUDA kernels for
float32 and float64 (bit-identical across devices, runs and thread counts) and the
vectorised pure-torch :func:`gsnn_fast.sparse.sparse_linear_torch` for other dtypes.
Memory is ``O(B * (N_in + M_out) + nnz)``: no batch-replicated index tensors. The CSR
index structures (:class:`gsnn_fast.sparse.SparsePlan`) are built once, at
construction, after :meth:`SparseLinear.prune` and after ``load_state_dict``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn

from ..sparse import SparsePlan, sparse_linear, sparse_linear_torch

__all__ = [
    "SparseLinear",
    "SparsePlan",
    "build_sparse_plan",
    "plan_cache",
    "sparse_linear_torch",
    "INITS",
]

INITS: tuple[str, ...] = (
    "degree_normalized",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "uniform",
    "normal",
    "zeros",
)
# names used by older releases of the pure-torch library (normal draws):
# xavier/glorot: std sqrt(2/(n_in+n_out)); kaiming/he: std sqrt(2/n_in); lecun: sqrt(1/n_in)
_LEGACY_INITS: tuple[str, ...] = ("xavier", "glorot", "kaiming", "he", "lecun")


_PLAN_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "gsnn_fast_plan_cache", default=None
)


@contextlib.contextmanager
def plan_cache() -> Iterator[None]:
    """Within this context, :func:`build_sparse_plan` returns the same plan (shared
    tensors) for the same ``indices`` tensor object: the blocks of a GSNN, which all
    use one sparsity pattern, then build and store it once."""
    token = _PLAN_CACHE.set({})
    try:
        yield
    finally:
        _PLAN_CACHE.reset(token)


def build_sparse_plan(indices: torch.Tensor, size: Sequence[int]) -> SparsePlan:
    """Sort the COO ``indices`` ``[2, nnz]`` of an ``(N, M)`` matrix into both CSR forms."""
    N, M = int(size[0]), int(size[1])
    cache = _PLAN_CACHE.get()
    if cache is not None:
        key = (id(indices), indices._version, N, M)
        hit = cache.get(key)
        if hit is not None and hit[0] is indices:
            return hit[1]
        plan = SparsePlan.from_indices(indices, (N, M))
        cache[key] = (indices, plan)  # the strong reference keeps id(indices) unique
        return plan
    return SparsePlan.from_indices(indices, (N, M))


def _init_values(
    init: str, indices: torch.Tensor, size: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor:
    N, M = size
    r, m = indices[0], indices[1]
    nnz = r.numel()
    # per entry: n_in = entries in its output column, n_out = entries in its input row
    n_in = torch.bincount(m, minlength=M).to(torch.float64)[m]
    n_out = torch.bincount(r, minlength=N).to(torch.float64)[r]

    def u() -> torch.Tensor:
        return torch.rand(nnz, dtype=torch.float64) * 2 - 1

    def n() -> torch.Tensor:
        return torch.randn(nnz, dtype=torch.float64)

    if init == "degree_normalized":
        v = u() / torch.sqrt((n_in + 1e-8) * (n_out + 1e-8))
    elif init == "xavier_uniform":
        v = u() * torch.sqrt(6.0 / (n_in + n_out))
    elif init in ("xavier_normal", "xavier", "glorot"):
        v = n() * torch.sqrt(2.0 / (n_in + n_out))
    elif init == "kaiming_uniform":
        v = u() * torch.sqrt(3.0 / n_in)
    elif init == "kaiming_normal":
        v = n() / torch.sqrt(n_in)
    elif init in ("kaiming", "he"):
        v = n() * torch.sqrt(2.0 / n_in)
    elif init == "lecun":
        v = n() * torch.sqrt(1.0 / n_in)
    elif init == "uniform":
        v = u()
    elif init == "normal":
        v = n()
    elif init == "zeros":
        v = torch.zeros(nnz, dtype=torch.float64)
    else:
        raise ValueError(
            f"init: unrecognized weight initialization {init!r}; options: "
            + ", ".join(INITS)
            + " (legacy names: "
            + ", ".join(_LEGACY_INITS)
            + ")"
        )
    return v.to(dtype)


class SparseLinear(nn.Module):
    """Linear layer with a fixed sparse weight pattern.

    Args:
        indices: LongTensor ``[2, nnz]`` of ``(input r, output m)`` coordinates.
        size: ``(N_in, M_out)``.
        bias: add a learnable bias ``[M_out, 1]`` initialised to zeros.
        init: weight initialisation, one of :data:`INITS` (``n_in`` = entries in the
            entry's output column, ``n_out`` = entries in its input row):
            ``degree_normalized`` U(-1,1)/sqrt((n_in+1e-8)(n_out+1e-8)),
            ``xavier_uniform`` U(-1,1)*sqrt(6/(n_in+n_out)),
            ``xavier_normal`` N(0,1)*sqrt(2/(n_in+n_out)),
            ``kaiming_uniform`` U(-1,1)*sqrt(3/n_in), ``kaiming_normal`` N(0,1)/sqrt(n_in),
            ``uniform`` U(-1,1), ``normal`` N(0,1), ``zeros``. The older library names
            ``xavier``/``glorot``, ``kaiming``/``he`` and ``lecun`` are accepted too.
        dtype: parameter dtype (default: ``torch.get_default_dtype()``).

    State (pure-torch library names): parameter ``values [nnz]``, parameter
    ``bias [M_out, 1]`` (if ``bias``), buffer ``indices [2, nnz]``. The CSR plan is
    kept in non-persistent buffers (not in the ``state_dict``).

    Forward: ``(B, N_in)`` or ``(B, N_in, 1)`` -> ``(B, M_out, 1)`` via
    :func:`gsnn_fast.sparse.sparse_linear` (kernels; torch fallback for other dtypes).
    """

    def __init__(
        self,
        indices: torch.Tensor,
        size: Sequence[int],
        bias: bool = True,
        init: str = "degree_normalized",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        indices = torch.as_tensor(indices).to(torch.long)
        if indices.dim() != 2 or indices.shape[0] != 2:
            raise ValueError(f"indices: expected shape [2, nnz], got {tuple(indices.shape)}")
        self.N, self.M = int(size[0]), int(size[1])
        self.size = (self.N, self.M)
        self.init = init
        dtype = dtype or torch.get_default_dtype()
        plan = build_sparse_plan(indices, self.size)  # validates ranges
        self.values = nn.Parameter(_init_values(init, indices, self.size, dtype))
        self.register_buffer("indices", indices.contiguous())
        if bias:
            self.bias = nn.Parameter(torch.zeros((self.M, 1), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self._set_plan(plan)

    # -- plan management ------------------------------------------------------------
    def _set_plan(self, plan: SparsePlan) -> None:
        for name, t in plan.buffers().items():
            self.register_buffer("_plan_" + name, t, persistent=False)

    def rebuild_plan(self) -> None:
        """Recompute the CSR plan from ``indices`` (after editing ``indices`` by hand)."""
        self._set_plan(build_sparse_plan(self.indices, self.size))

    @property
    def plan(self) -> SparsePlan:
        """The current :class:`SparsePlan` (on the module's device)."""
        f = {name: getattr(self, "_plan_" + name) for name in SparsePlan._NAMES}
        return SparsePlan.from_buffers(f, self.size)

    @property
    def nnz(self) -> int:
        return int(self.values.numel())

    def forward(self, x: torch.Tensor, batched_indices: object = None) -> torch.Tensor:
        """``(B, N_in)`` or ``(B, N_in, 1)`` -> ``(B, M_out, 1)``.

        ``batched_indices`` is accepted (and ignored) for compatibility with the
        pure-torch call signature.
        """
        y = sparse_linear(x, self.values, self.bias, self.plan)
        return y if y.dim() == 3 else y.unsqueeze(2)

    def prune(self, idxs: torch.Tensor, _new_indices: torch.Tensor | None = None) -> None:
        """Keep only the entries ``idxs`` (LongTensor of positions or bool mask ``[nnz]``).

        Replaces the ``values`` Parameter (re-create optimisers afterwards).
        ``_new_indices`` (internal) is ``indices[:, idxs]`` computed by the caller, so
        that layers with one pattern can share it.
        """
        idxs = torch.as_tensor(idxs, device=self.indices.device)
        if idxs.dtype == torch.bool:
            if idxs.numel() != self.nnz:
                raise ValueError(f"idxs: boolean mask must have {self.nnz} entries")
            idxs = idxs.nonzero(as_tuple=True)[0]
        idxs = idxs.to(torch.long).reshape(-1)
        self.values = nn.Parameter(self.values.detach()[idxs].clone())
        if _new_indices is None:
            _new_indices = self.indices[:, idxs].contiguous()
        self.register_buffer("indices", _new_indices)
        self.rebuild_plan()

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # accept checkpoints of pruned layers (different nnz): resize before copying
        key_i, key_v = prefix + "indices", prefix + "values"
        if key_i in state_dict and key_v in state_dict:
            ind, val = state_dict[key_i], state_dict[key_v]
            if (
                ind.dim() == 2
                and ind.shape[0] == 2
                and val.dim() == 1
                and val.shape[0] == ind.shape[1]
                and ind.shape[1] != self.indices.shape[1]
            ):
                dev = self.indices.device
                self.values = nn.Parameter(self.values.new_empty(val.shape[0]))
                self.register_buffer(
                    "indices", torch.empty(2, ind.shape[1], dtype=torch.long, device=dev)
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self.rebuild_plan()

    def extra_repr(self) -> str:
        return f"size={self.size}, nnz={self.nnz}, bias={self.bias is not None}, init={self.init!r}"
