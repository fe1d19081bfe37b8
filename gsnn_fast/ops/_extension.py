"""Loading the compiled extension ``gsnn_fast._C``, with clear errors when it is
missing or was built against another torch."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import torch

_REBUILD = (
    "rebuild it against the running torch: `make build` in a checkout, or "
    "`pip install --no-build-isolation .` (add `-e` for an editable install) in an "
    "environment that has the torch you want to use"
)


def _recorded_torch_version() -> str | None:
    """The torch version the extension was built against, as setup.py recorded it in
    ``gsnn_fast/_build_record.py`` (None when there is no record)."""
    try:
        from .. import _build_record
    except ImportError:
        return None
    return getattr(_build_record, "TORCH_VERSION", None)


def check_torch_matches(built: str | None, running: str | None = None) -> None:
    """Raise ImportError when the extension was built against torch ``built`` and
    another torch (``running``, default: the imported one) is running. A torch
    extension only works with the torch it was compiled against; loading it into
    another one fails with undefined symbols or worse."""
    running = torch.__version__ if running is None else running
    if built is not None and built != running:
        raise ImportError(
            f"gsnn_fast's compiled extension was built against torch {built}, but torch "
            f"{running} is running; {_REBUILD}."
        )


def _load() -> ModuleType:
    check_torch_matches(_recorded_torch_version())
    if importlib.util.find_spec("gsnn_fast._C") is None:
        raise ImportError(
            "gsnn_fast's compiled extension (gsnn_fast._C) is not built. In a checkout run "
            "`make build` (or `make test`, which also sets up .venv); elsewhere install "
            "the package with `pip install --no-build-isolation .`."
        )
    try:
        module = importlib.import_module("gsnn_fast._C")
    except ImportError as err:
        raise ImportError(
            f"gsnn_fast's compiled extension failed to load ({err}); {_REBUILD}."
        ) from err
    check_torch_matches(module.build_info().get("torch_version"))
    return module


#: The loaded extension module.
extension = _load()


def build_info() -> dict:
    """What the extension was built with: ``cuda`` (bool: CUDA kernels compiled in),
    the parity-relevant ``cxx_flags`` / ``nvcc_flags``, the host ``compiler``, the
    ``cxx_standard`` (``__cplusplus``), ``torch_version`` (the torch it was built
    against), and the running torch's ``torch`` / ``torch_cuda`` versions and whether
    a GPU is visible (``cuda_available``)."""
    info = dict(extension.build_info())
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    return info


def isa_ran(op: str) -> str:
    """The CPU ISA variant (``'avx512f'``, ``'avx2'`` or ``'baseline'``) that the op
    ``op`` (e.g. ``'pair_corr'``) ran on its last CPU call, ``''`` before the first.
    The variant is the widest the CPU runs, capped by the environment variable
    ``GSNN_FAST_ISA``; every variant gives the same bits."""
    return extension.isa_ran(op)
