"""gsnn_fast::argsort_stable (radix sort used to build result frames) vs numpy's stable sort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsnn_fast._ops import argsort_stable, argsort_stable_torch


def _values(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    v[rng.random(n) < 0.1] = np.nan
    v[rng.random(n) < 0.1] = 0.5  # ties
    v[rng.random(n) < 0.05] = 0.0
    v[rng.random(n) < 0.05] = -0.0
    v[rng.random(n) < 0.02] = np.inf
    v[rng.random(n) < 0.02] = -np.inf
    return v


def _reference(v, descending):
    # numpy sorts NaN last ascending; descending = ascending order of -v (NaN stays NaN)
    return np.argsort(-v if descending else v, kind="stable")


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("impl", [argsort_stable, argsort_stable_torch])
def test_matches_numpy_stable_sort(descending, impl):
    for n, seed in [(0, 0), (1, 1), (2, 2), (1000, 3), (200_003, 4)]:
        v = _values(n, seed)
        got = impl(torch.from_numpy(v), descending).numpy()
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, _reference(v, descending))


def test_nan_payloads_and_all_equal():
    nans = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001], np.uint64)
    v = np.concatenate([nans.view(np.float64), [1.0, -1.0]])
    for d in (False, True):
        got = argsort_stable(torch.from_numpy(v), d).numpy()
        assert list(got[-3:]) == [0, 1, 2]  # NaN last, in input order
    same = torch.full((1000,), 3.0, dtype=torch.float64)
    assert torch.equal(argsort_stable(same, True), torch.arange(1000))


def test_non_contiguous_and_bad_arguments():
    v = torch.from_numpy(_values(101, 5))
    strided = v[::2]
    np.testing.assert_array_equal(
        argsort_stable(strided, True).numpy(), _reference(strided.numpy().copy(), True)
    )
    with pytest.raises(RuntimeError, match="float64"):
        argsort_stable(v.float(), True)
    with pytest.raises(RuntimeError, match="1-d"):
        argsort_stable(v.view(1, -1), True)


def test_opcheck():
    v = torch.from_numpy(_values(64, 6))
    torch.library.opcheck(torch.ops.gsnn_fast.argsort_stable.default, (v, True))


def test_runs_sharing_the_upper_key_half():
    """Values equal in their upper 32 bits and differing below (the radix passes see
    them as ties; the run fix-up must order them), in long, short and reversed runs."""
    rng = np.random.default_rng(7)
    base = np.array([0.3, -0.3, 1e-300, -2.5], np.float64).view(np.uint64)
    parts = []
    for b in base:
        lo = rng.integers(0, 2**32, 3000, dtype=np.uint64)
        parts.append(b + np.sort(lo)[::-1])  # lower halves descending within the run
        parts.append(b + rng.integers(0, 4, 50, dtype=np.uint64))  # short runs, ties
    v = np.concatenate(parts).view(np.float64)
    v = np.concatenate([v, rng.standard_normal(5000), [np.nan] * 10, [0.3] * 5])
    rng.shuffle(v)
    for d in (False, True):
        got = argsort_stable(torch.from_numpy(v), d).numpy()
        np.testing.assert_array_equal(got, _reference(v, d))
