"""Micro-benchmark: the ``pair_corr`` op against the same arithmetic as torch operations.

``torch_steps`` is the reference the op is tested against bit for bit
(``tests/test_pair_corr.py::torch_steps``: one pair at a time, every rounded step a
separate torch operation over ``[N, N]`` float64 temporaries, then the fold over
pairs), here with torch's own square root. ``gsnn_fast`` is one ``pair_corr`` call for
all pairs and the aggregate. Inputs: ``cases.synthetic_stats`` with P = L - 1 pairs,
the relative zero-variance rule, ``layer_agg='max'``, per-pair matrices kept.
"""

from __future__ import annotations

import pytest

from tests.test_pair_corr import KEYS, TOL, torch_steps

from . import cases

IMPLS = ("gsnn_fast", "torch_steps")
CASES = [
    cases.Case("pair_corr", impl, "conv", N)
    for N in cases._sizes()
    if N <= cases.FAST_MAX["evaluate_corr"] and cases.profile() != "gpu"  # CPU cases only
    for impl in IMPLS
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pair_corr(bench, case):
    P = case.L - 1
    stats = cases.synthetic_stats(case.N, P)
    n = float(stats["n"])
    if case.impl == "gsnn_fast":
        op = cases.require("pair_corr")
        sums = [stats[k] for k in KEYS]

        def fn():
            op(*sums, n, TOL, "relative", "max", True)
    else:

        def fn():
            torch_steps(stats, n, "relative", "max", True, cr_sqrt=False)

    bench(case, fn, N=case.N)
