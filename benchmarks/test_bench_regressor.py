"""MagnitudeEdgeRegressor: one training step and ``evaluate_against``."""

from __future__ import annotations

import pytest
import torch

from . import cases
from .conftest import problem_and_model

STEP_CASES = cases.grid("regressor_step") + cases.sweep("regressor_step", "B")
EA_CASES = cases.grid("regressor_evaluate_against")


def _regressor(case, prob, model):
    if case.impl == "gsnn_fast":
        cases.require("GSNN")
        Reg = cases.require("regressor")
    else:
        Reg = cases.baseline(case.impl).MagnitudeEdgeRegressor
    torch.manual_seed(1)
    return Reg(model, prob.data, **cases.REG_KW).to(case.device)


@pytest.mark.parametrize("case", STEP_CASES, ids=str)
def test_regressor_step(bench, case):
    """One step of the notebook's training loop: ``pre_forward`` -> ``model(x)`` ->
    loss -> ``arm_retained_grads`` -> ``loss.backward()`` -> ``aux_step()`` -> the
    GSNN's AdamW step (model in train mode, regressor dropout 0.2 as in the notebook)."""
    prob, model = problem_and_model(case)
    reg = _regressor(case, prob, model)
    model.train()
    reg.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    crit = torch.nn.MSELoss()
    x, y = cases.batch(prob, case.B, case.device)

    def step():
        reg.pre_forward()
        loss = crit(model(x), y)
        reg.arm_retained_grads()
        opt.zero_grad()
        loss.backward()
        reg.aux_step()
        opt.step()

    try:
        bench(case, step, N=prob.N, E=prob.E, E_ff=prob.E_ff)
    finally:
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("case", EA_CASES, ids=str)
def test_regressor_evaluate_against(bench, case):
    """``evaluate_against(edges_val)`` (ROC-AUC against non-edges + within-target
    ranking) with the same trained-looking state in every implementation: W
    (xavier, gain 0.1), a positive-definite gram, n_samples = 10 N."""
    prob, model = problem_and_model(case)
    reg = _regressor(case, prob, model)
    N = prob.N
    g = torch.Generator().manual_seed(2)
    W = torch.empty(N, N)
    torch.nn.init.xavier_uniform_(W, gain=0.1, generator=g)
    F = torch.randn(N, 32, generator=g, dtype=torch.float64)
    gram = F @ F.T + N * torch.eye(N, dtype=torch.float64)
    with torch.no_grad():
        reg.W.copy_(W)
        reg.gram.copy_(gram * 10)
        reg.n_samples.fill_(10 * N)
        reg.residual_sum_sq.fill_(float(5 * N))
    positives = list(prob.edges_val)

    def fn():
        reg.evaluate_against(positives)

    bench(case, fn, N=N, E=prob.E, E_ff=prob.E_ff, n_positives=len(positives))
