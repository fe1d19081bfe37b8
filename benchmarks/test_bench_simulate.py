"""Simulation and the whole demo (the seed notebook end to end)."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from . import cases
from .conftest import skip_if_no_device

N_TRAIN, N_TEST = 2000, 500  # the seed notebook
#: reference_style simulates sample by sample, so its cost is linear in the number of
#: samples; above N = 50 it is measured on fewer samples and scaled (marked
#: "extrapolated" in the results): function nodes -> samples actually simulated.
REF_SAMPLES = {200: 250, 1000: 50, 2000: 25}

SIM_CASES = cases.grid("simulate", big=True)


@pytest.mark.parametrize("case", SIM_CASES, ids=str)
def test_simulate(bench, case):
    """``simulate(G, 2000, 500, inputs, outputs, noise_scale=0.15)`` on the full graph."""
    skip_if_no_device(case)
    if case.device != "cpu":
        pytest.skip("simulate runs on the host (numpy) in every implementation")
    prob = cases.problem(case.family, case.N, case.max_in_degree)
    if case.impl == "gsnn_fast":
        sim = cases.require("simulate")
    else:
        sim = cases.baseline(case.impl).simulate
    n_train, n_test, scale = N_TRAIN, N_TEST, 1.0
    if case.impl == "reference_style" and prob.N > 60:
        n_sub = REF_SAMPLES.get(case.N, 25)
        n_train, n_test = n_sub * 4 // 5, n_sub // 5
        scale = (N_TRAIN + N_TEST) / (n_train + n_test)

    def fn():
        np.random.seed(0)
        torch.manual_seed(0)
        sim(prob.G, n_train, n_test, prob.inputs, prob.outputs, noise_scale=0.15)

    extra = {}
    if scale != 1.0:
        extra = dict(time_scale=scale, measured_samples=n_train + n_test, extrapolated=True)
    bench(case, fn, N=prob.N, E=prob.E, E_ff=prob.E_ff, **extra)


def _demo_epochs() -> int:
    default = "2" if cases.profile() == "quick" else "30"
    return int(os.environ.get("GSNN_BENCH_DEMO_EPOCHS", default))


DEMO_CASES = [cases.Case("demo", "gsnn_fast", "conv", 50, device="cuda")]
if cases.profile() != "gpu":  # the CPU cases (the baselines take tens of seconds)
    DEMO_CASES = [
        replace(cases.Case("demo", impl, "conv", 50), slow=True) for impl in cases.IMPLS
    ] + DEMO_CASES


@pytest.mark.parametrize("case", DEMO_CASES, ids=str)
def test_demo(bench, case, tmp_path):
    """The seed notebook end to end (width 25 -> 50 function nodes, 2,000 + 500 samples,
    ``GSNN_BENCH_DEMO_EPOCHS`` epochs, default 30 as the notebook, one CPU thread as
    ``gsnn-fast demo`` defaults to), plots and results.json included. One round."""
    skip_if_no_device(case)
    epochs = _demo_epochs()
    prob = cases.problem("conv", 50)
    if case.impl == "gsnn_fast":
        run_demo = cases.require("demo")

        def fn():
            run_demo(width=25, epochs=epochs, seed=0, device=case.device, out=tmp_path, log=None)
    else:
        if case.device != "cpu":
            pytest.skip("the baseline demos run on the CPU")
        from .baselines import demo

        impl = cases.baseline(case.impl)

        def fn():
            demo.run_demo(impl, width=25, epochs=epochs, seed=0, out=tmp_path, threads=1)

    bench(case, fn, N=prob.N, E=prob.E, E_ff=prob.E_ff, epochs=epochs)
