"""GSNN forward + backward (one training batch: MSE loss, ``loss.backward()``)."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from . import cases
from .conftest import problem_and_model

CASES = (
    cases.grid("gsnn_fwd_bwd", big=True)
    + cases.sweep("gsnn_fwd_bwd", "B")
    + cases.sweep("gsnn_fwd_bwd", "L")
    + cases.sweep("gsnn_fwd_bwd", "E")
)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gsnn_fwd_bwd(bench, case):
    prob, model = problem_and_model(case)
    model.train()
    x, y = cases.batch(prob, case.B, case.device)

    def step():
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()

    try:
        bench(case, step, N=prob.N, E=prob.E, E_ff=prob.E_ff)
    finally:
        model.zero_grad(set_to_none=True)
