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
