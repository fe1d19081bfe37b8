from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Each op test runs on the CPU, and on CUDA when a GPU and a CUDA build are present."""
    if request.param == "cuda":
        import gsnn_fast

        if not (torch.cuda.is_available() and gsnn_fast.build_info()["cuda"]):
            pytest.skip("no CUDA device or CPU-only build")
    return torch.device(request.param)


def require_cuda():
    import gsnn_fast

    if not (torch.cuda.is_available() and gsnn_fast.build_info()["cuda"]):
        pytest.skip("no CUDA device or CPU-only build")


def bits(t: torch.Tensor) -> torch.Tensor:
    """Bit pattern of a float64 tensor (NaN- and -0.0-exact comparison), on the CPU."""
    assert t.dtype == torch.float64
    return t.detach().cpu().contiguous().view(torch.int64)


def wide_range(shape, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Values with a wide dynamic range and sign mix (cancellation-prone inputs)."""
    mant = torch.randn(shape, generator=generator, dtype=torch.float64)
    expo = torch.randint(-20, 21, shape, generator=generator).to(torch.float64)
    return (mant * torch.pow(2.0, expo)).to(dtype)


#: The CPU kernels' SIMD variants, widest first (csrc/cpu/isa.h).
ISAS = ("avx512f", "avx2", "baseline")


def use_isa(monkeypatch, isa: str) -> None:
    """Caps the SIMD variant of the CPU kernels at ``isa`` (GSNN_FAST_ISA)."""
    monkeypatch.setenv("GSNN_FAST_ISA", isa)


def require_isa_ran(op: str, isa: str) -> None:
    """Checks that ``op`` ran its ``isa`` variant on its last call. The cap can only
    lower the variant: when a narrower one ran, this CPU cannot run ``isa``, and the
    test is skipped with that reason instead of comparing a variant with itself."""
    from gsnn_fast.ops import isa_ran

    ran = isa_ran(op)
    if ran != isa:
        assert ISAS.index(ran) > ISAS.index(isa), (op, isa, ran)
        pytest.skip(f"this CPU cannot run the {isa} variant ({op} ran {ran}): not compared here")
