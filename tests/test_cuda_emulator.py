"""The CUDA kernels of csrc/cuda, run on the CPU by the grid emulator
(tests/emulator, docs/EMULATOR.md), against the CPU ops, bit for bit. (Over ~450
lines on purpose: one section per launcher family, plus the emulator's self-tests.)

Every launcher of csrc/cuda/launchers.h is called the way its torch glue
(csrc/cuda/*_cuda.cpp) calls it: the same transposes, scratch sizes and number of
blocks. Each case runs on two builds of the emulator: "tsan" (ThreadSanitizer:
fails on a race between two threads of a block or between two blocks) and "asan"
(AddressSanitizer: fails on an access past the end of a buffer); the larger cases
run on "asan" only. Every run also fails on a launch beyond CUDA's limits
(threads per block, grid size, shared memory with and without the opt-in). The
self-tests at the end plant such bugs and check that each one is reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gsnn_fast.ops  # noqa: F401  (loads torch.ops.gsnn_fast)
from gsnn_fast.sparse import SparsePlan

from .emulator import harness as emu
from .emulator.harness import F64, I32, I64, Modes, call

ops = torch.ops.gsnn_fast
THREADS = 128  # kPartialCorrThreads (gsnn_fast/partial_corr.h)
BOTH = ("tsan", "asan")
MEAN, MAX = 0, 1
RELATIVE, ABSOLUTE = 0, 1


@pytest.fixture(scope="module", autouse=True)
def _built():
    """Compiles the emulator drivers once (cached under build/emulator/)."""
    emu.build()


# --- helpers ---------------------------------------------------------------------


def poison(shape, dtype=np.float64) -> np.ndarray:
    """An output buffer filled with a NaN payload no kernel writes."""
    if dtype == np.float32:
        return np.full(shape, 0x7FA0BEEF, dtype=np.uint32).view(np.float32)
    return np.full(shape, 0x7FF4DEAD0000BEEF, dtype=np.uint64).view(np.float64)


def np_(t) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else t


def assert_bits(got: np.ndarray, want, what: str) -> None:
    want = np_(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} vs {want.dtype}"
    it = np.int32 if got.dtype == np.float32 else np.int64
    g, w = got.view(it), want.view(it)
    if not np.array_equal(g, w):
        bad = np.argwhere(g != w)
        k = tuple(bad[0])
        raise AssertionError(
            f"{what}: {len(bad)} of {got.size} elements differ; first at {k}: "
            f"emulator {got[k]!r} ({int(g[k]):#x}) vs CPU {want[k]!r} ({int(w[k]):#x})"
        )


def run_checked(calls, compare, variants=BOTH) -> None:
    """Runs the calls on each emulator build; each run must be clean (no race, no
    limit violation, every launcher returned cudaSuccess), then `compare()`
    checks the outputs of that run."""
    for v in variants:
        emu.run(calls, v).check_clean()
        compare()


def solve_blocks(systems: int, smax: int) -> int:
    """Blocks of the solve kernels, as the CUDA glue chooses them (csrc/cuda/glue.h)."""
    blocks = max(1, min(systems, 65535))
    per_block = smax * THREADS
    if per_block > 0:
        blocks = max(1, min(blocks, (1 << 25) // per_block))
    return blocks


def csr(sets) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    idx = np.array([i for s in sets for i in s], dtype=np.int64)
    return ptr, idx


def cond_sets(N: int, sizes, seed: int) -> list[list[int]]:
    """Target j gets a sorted set of sizes[j % len(sizes)] members, never j."""
    rng = np.random.default_rng(seed)
    sets = []
    for j in range(N):
        s = sizes[j % len(sizes)]
        others = np.array([i for i in range(N) if i != j])
        sets.append(sorted(int(i) for i in rng.choice(others, size=s, replace=False)))
    return sets


# --- segment_magnitude -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("modes", [(0, 1, 2, 3), (2, 0)])
def test_segment_magnitude(dtype, modes):
    rng = np.random.default_rng(1)
    lens = [0, 1, 33, 1025, 0, 2, 7, 1, 33]
    ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    L, B, C, N = 2, 5, int(ptr[-1]) + 3, len(lens)  # 3 channels belong to no node
    x = (rng.standard_normal((L, B, C)) * 2.0 ** rng.integers(-20, 21, (L, B, C))).astype(dtype)
    x[0, 1, ptr[2] + 5] = np.nan
    x[1, 2, ptr[3] + 1000] = np.inf
    x[1, 3, ptr[6] + 1] = -np.inf
    x[0, 4, ptr[8]] = np.nan  # NaN and Inf in one segment
    x[0, 4, ptr[8] + 1] = np.inf
    want = ops.segment_magnitude(torch.from_numpy(x), torch.from_numpy(ptr), list(modes))
    out = poison((len(modes), L, B, N))
    name = "segment_magnitude_f32" if dtype == np.float32 else "segment_magnitude_f64"
    c = call(name, x, ptr, Modes(modes), I64(L), I64(B), I64(C), I64(N), out)
    run_checked([c], lambda: assert_bits(c.out[7], want, "segment_magnitude"))


# --- sparse_linear -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 19])
@pytest.mark.parametrize("with_bias", [True, False])
def test_sparse_linear(dtype, B, with_bias):
    n_in, n_out, nnz = 41, 37, 300
    g = torch.Generator().manual_seed(B)
    rows = torch.randint(0, n_in - 1, (nnz,), generator=g)  # input n_in - 1: no entries
    cols = torch.randint(0, n_out - 1, (nnz,), generator=g)  # output n_out - 1: none
    rows[-1], cols[-1] = rows[0], cols[0]  # a duplicate entry
    plan = SparsePlan.from_indices(torch.stack([rows, cols]), (n_in, n_out))
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    x = torch.randn(B, n_in, generator=g, dtype=torch.float64).to(tdt)
    values = torch.randn(nnz, generator=g, dtype=torch.float64).to(tdt)
    bias = torch.randn(n_out, generator=g, dtype=torch.float64).to(tdt) if with_bias else None
    gout = torch.randn(B, n_out, generator=g, dtype=torch.float64).to(tdt)
    x[0, 3] = float("nan")
    x[-1, 5] = float("inf")
    gout[0, 2] = float("-inf")

    y = ops.sparse_linear(
        x, values, bias, plan.out_ptr, plan.out_rows, plan.out_perm,
        plan.in_ptr, plan.in_cols, plan.in_perm, n_out,
    )  # fmt: skip
    gx, gv, gb = ops.sparse_linear_backward(
        gout, x, values, plan.in_ptr, plan.in_cols, plan.in_perm, True, True, True
    )

    sfx = "f32" if dtype == np.float32 else "f64"
    xT, gT = np_(x.t()), np_(gout.t())  # (N, B), (M, B) as the glue makes them
    vals, bias_np = np_(values), (np_(bias) if with_bias else None)
    op, orow, operm = np_(plan.out_ptr), np_(plan.out_rows), np_(plan.out_perm)
    ip, icol, iperm = np_(plan.in_ptr), np_(plan.in_cols), np_(plan.in_perm)
    calls = [
        call(f"sparse_linear_spmm_{sfx}", xT, I64(B), op, orow, operm, vals, bias_np,
             poison((B, n_out), dtype), I64(n_out), I64(n_out)),
        call(f"sparse_linear_spmm_{sfx}", gT, I64(B), ip, icol, iperm, vals, None,
             poison((B, n_in), dtype), I64(n_in), I64(n_in)),
        call(f"sparse_linear_grad_values_{sfx}", xT, gT, I64(B), ip, icol, iperm, I64(n_in),
             I64(nnz), poison((nnz,), dtype)),
        call(f"sparse_linear_grad_bias_{sfx}", np_(gout), I64(B), I64(n_out),
             poison((n_out,), dtype)),
    ]  # fmt: skip

    def compare():
        assert_bits(calls[0].out[7], y, "spmm (forward)")
        assert_bits(calls[1].out[7], gx, "spmm (grad_x)")
        assert_bits(calls[2].out[8], gv, "grad_values")
        assert_bits(calls[3].out[3], gb, "grad_bias")

    run_checked(calls, compare)


# --- pair_stats_update -------------------------------------------------------------


@pytest.mark.parametrize(
    ("L", "B", "N", "variants"),
    [
        pytest.param(3, 37, 130, BOTH, id="N130-B37"),
        pytest.param(2, 16, 64, BOTH, id="N64-B16"),
        pytest.param(2, 5, 1, BOTH, id="N1-B5"),
        pytest.param(4, 70, 200, ("asan",), id="N200-B70-asan"),
    ],
)
@pytest.mark.parametrize("with_xx", [True, False])
def test_pair_stats_update(L, B, N, variants, with_xx):
    rng = np.random.default_rng(N + B)
    x = rng.standard_normal((L, B, N)) * 2.0 ** rng.integers(-8, 9, (L, B, N))
    y = rng.standard_normal((L, B, N))
    x[0, min(3, B - 1), N // 2] = np.nan
    y[-1, B - 1, N - 1] = np.inf
    P = L - 1
    sums = [rng.standard_normal(s) for s in [(P, N)] * 4 + [(P, N, N)]]  # running sums
    sum_xx = rng.standard_normal((P, N, N)) if with_xx else None
    want = [torch.from_numpy(s.copy()) for s in sums]
    want_xx = torch.from_numpy(sum_xx.copy()) if with_xx else None
    ops.pair_stats_update(torch.from_numpy(x), torch.from_numpy(y), *want, want_xx)
    c = call("pair_stats_update", x, y, I64(L), I64(B), I64(N), *sums, sum_xx)

    def compare():
        for k, name in enumerate(["sum_x", "sum_y", "sum_x2", "sum_y2", "sum_xy"]):
            assert_bits(c.out[5 + k], want[k], name)
        if with_xx:
            assert_bits(c.out[10], want_xx, "sum_xx")

    run_checked([c], compare, variants)


# --- pair_corr ---------------------------------------------------------------------


def corr_sums(P, B, M, N, seed):
    """Streaming sums of correlated samples with a constant node (zero variance in
    every pair), a NaN sample and an infinite one."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, B, M)) * 3.0 + 1.0
    y = rng.standard_normal((P, B, N))
    y[:, :, : min(M, N)] += 0.5 * x[:, :, : min(M, N)]
    x[:, :, 2] = 4.0  # constant
    y[0, :, 1] = 0.0  # all-zero gradient node in pair 0
    x[-1, 3, 5] = np.nan
    y[0, 2, 7] = np.inf
    sums = [
        x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), np.einsum("pbi,pbj->pij", x, y),
    ]  # fmt: skip
    return sums, float(B)


@pytest.mark.parametrize("rule", [RELATIVE, ABSOLUTE])
@pytest.mark.parametrize("agg", [MEAN, MAX])
@pytest.mark.parametrize("per_pair", [True, False])
def test_pair_corr(rule, agg, per_pair):
    P, M, N = 3, 70, 45
    sums, n = corr_sums(P, 9, M, N, seed=3)
    tol = 1e-12 if rule == RELATIVE else 1e-6
    want_pp, want = ops.pair_corr(*map(torch.from_numpy, sums), n, tol, rule, agg, per_pair)
    c = call(
        "pair_corr", *sums, I64(P), I64(M), I64(N), F64(n), F64(tol), I32(rule), I32(agg),
        poison((3 * P * (M + N),)), poison((P, M, N)) if per_pair else None, poison((M, N)),
    )  # fmt: skip

    def compare():
        assert_bits(c.out[14], want, "pair_corr out")
        if per_pair:
            assert_bits(c.out[13], want_pp, "pair_corr per_pair")

    run_checked([c], compare)


# --- partial_corr ------------------------------------------------------------------


def partial_inputs(P, N, sizes, seed, big=()):
    """corr, cov_xy, cov_xx, var_x, var_y of P pairs from samples, conditioning sets
    with the given sizes (cycled over the targets; `big` = sizes of the last
    targets' sets), a duplicated column (sets holding both fail), a constant node,
    a NaN variance and an infinite covariance."""
    rng = np.random.default_rng(seed)
    n = 3 * N
    X = rng.standard_normal((P, n, N)) * rng.uniform(0.5, 2.0, N)
    Y = rng.standard_normal((P, n, N)) + 0.4 * np.einsum(
        "pbi,ij->pbj", X, rng.standard_normal((N, N))
    ) / np.sqrt(N)  # noqa: E501
    X[:, :, 4] = X[:, :, 3]
    X[0, :, 2] = 7.0
    mx, my = X.mean(1), Y.mean(1)
    cov_xy = np.einsum("pbi,pbj->pij", X, Y) / n - mx[:, :, None] * my[:, None, :]
    cov_xx = np.einsum("pbi,pbj->pij", X, X) / n - mx[:, :, None] * mx[:, None, :]
    cov_xx = (cov_xx + cov_xx.transpose(0, 2, 1)) / 2
    var_x = (X**2).mean(1) - mx**2
    var_y = (Y**2).mean(1) - my**2
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov_xy / np.sqrt(var_x[:, :, None] * var_y[:, None, :])
    var_x[-1, 6] = np.nan
    cov_xx[0, 8, 9] = cov_xx[0, 9, 8] = np.inf
    sets = cond_sets(N, sizes, seed)
    for k, s in enumerate(big):
        j = N - 1 - k
        sets[j] = sorted(int(i) for i in rng.choice(np.delete(np.arange(N), j), s, replace=False))
    sets[N // 2] = sorted(set(sets[N // 2]) | {3, 4} - {N // 2})  # holds the duplicate
    return [corr, cov_xy, cov_xx, var_x, var_y], sets


def run_partial_corr(inputs, sets, ridge, tol, num_blocks, variants=BOTH):
    P, N = inputs[0].shape[:2]
    ptr, idx = csr(sets)
    smax = max(len(s) for s in sets)
    want = ops.partial_corr(*map(torch.from_numpy, inputs), torch.from_numpy(ptr),
                            torch.from_numpy(idx), ridge, tol)  # fmt: skip
    blocks = num_blocks or solve_blocks(P * N, smax)
    c = call(
        "partial_corr", *inputs, ptr, idx, I64(P), I64(N), I64(smax), F64(ridge), F64(tol),
        poison((P, N, N)), poison((max(1, blocks * THREADS * smax),)), I64(blocks),
    )  # fmt: skip
    run_checked([c], lambda: assert_bits(c.out[12], want, "partial_corr"), variants)


@pytest.mark.parametrize("num_blocks", [None, 7, 1])
@pytest.mark.parametrize("ridge", [0.0, 1e-6])
def test_partial_corr_sets_0_to_33(num_blocks, ridge):
    """Sets of 0..33 members; num_blocks < P * N: a block solves several systems."""
    inputs, sets = partial_inputs(2, 40, list(range(34)), seed=5)
    run_partial_corr(inputs, sets, ridge, 1e-12, num_blocks)


@pytest.mark.parametrize("num_blocks", [None, 3])
def test_partial_corr_set_of_150(num_blocks):
    """One set of 150 members: 93,000 bytes of dynamic shared memory, above the
    48 KiB default, so the launcher must opt in (the emulator fails it otherwise).
    The other sets are empty or small, which keeps the run short under TSan."""
    inputs, sets = partial_inputs(1, 152, [0, 0, 0, 1, 0, 33], seed=6, big=(150,))
    run_partial_corr(inputs, sets, 0.0, 1e-12, num_blocks)


def test_partial_corr_large():
    inputs, sets = partial_inputs(2, 170, list(range(34)), seed=7, big=(150, 120))
    run_partial_corr(inputs, sets, 1e-8, 1e-12, None, ("asan",))
    run_partial_corr(inputs, sets, 1e-8, 1e-12, 11, ("asan",))


def test_partial_corr_no_sets():
    inputs, sets = partial_inputs(2, 20, [0], seed=8)
    run_partial_corr(inputs, sets, 0.0, 1e-12, None)


# --- pair_partial_corr -------------------------------------------------------------

PPC_KERNEL = emu.ROOT / "csrc" / "cuda" / "pair_partial_corr_kernel.cu"


def ppc_inputs(P, B, N, sizes, seed, big=()):
    """Streaming sums (sum_x, sum_y, sum_x2, sum_y2, sum_xy, sum_xx) of correlated
    samples with a duplicated column (sets holding both fail with ridge 0), a
    constant node, an all-zero gradient node, a NaN sample, and conditioning sets
    of the given sizes (`big`: the last targets' set sizes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, B, N)) + 2.0
    y = rng.standard_normal((P, B, N)) * 0.5
    y[:, :, 1:] += 0.6 * x[:, :, :-1]
    x[:, :, 4] = x[:, :, 3]
    x[0, :, 2] = 7.0
    y[-1, :, 5] = 0.0
    x[-1, 1, 9] = np.nan
    sums = [
        x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1),
        np.einsum("pbi,pbj->pij", x, y), np.einsum("pbi,pbj->pij", x, x),
    ]  # fmt: skip
    sets = cond_sets(N, sizes, seed)
    for k, s in enumerate(big):
        j = N - 1 - k
        sets[j] = sorted(int(i) for i in rng.choice(np.delete(np.arange(N), j), s, replace=False))
    sets[6] = [3, 4]
    return sums, float(B), sets


def run_pair_partial_corr(sums, n, sets, ridge, agg, per_pair, num_blocks, variants=BOTH):
    P, N = sums[0].shape
    ptr, idx = csr(sets)
    smax = max(len(s) for s in sets)
    tol = 1e-12
    want_pp, want = ops.pair_partial_corr(
        *map(torch.from_numpy, sums), torch.from_numpy(ptr), torch.from_numpy(idx),
        n, ridge, tol, agg, per_pair,
    )  # fmt: skip
    blocks = num_blocks or solve_blocks(N, smax)
    work = 8 * P * N + (0 if per_pair else N * N) + (N * N if agg == MEAN else 0)
    work += blocks * THREADS * smax  # pair_partial_corr_work_doubles (partial_corr.h)
    c = call(
        "pair_partial_corr", *sums, ptr, idx, I64(P), I64(N), I64(smax), F64(n), F64(ridge),
        F64(tol), I32(agg), poison((P, N, N)) if per_pair else None, poison((N, N)),
        poison((max(1, work),)), I64(blocks),
    )  # fmt: skip

    def compare():
        assert_bits(c.out[16], want, "pair_partial_corr out")
        if per_pair:
            assert_bits(c.out[15], want_pp, "pair_partial_corr per_pair")

    run_checked([c], compare, variants)


# Runs once csrc/cuda/pair_partial_corr_kernel.cu exists (the harness builds every
# csrc/cuda/*_kernel.cu it finds).
needs_ppc = pytest.mark.skipif(not PPC_KERNEL.exists(), reason="no pair_partial_corr kernel yet")


@needs_ppc
@pytest.mark.parametrize("agg", [MEAN, MAX])
@pytest.mark.parametrize("per_pair", [True, False])
@pytest.mark.parametrize(("ridge", "num_blocks"), [(0.0, None), (1e-6, 5)])
def test_pair_partial_corr_sets_0_to_33(agg, per_pair, ridge, num_blocks):
    sums, n, sets = ppc_inputs(2, 12, 40, list(range(34)), seed=11)
    run_pair_partial_corr(sums, n, sets, ridge, agg, per_pair, num_blocks)


@needs_ppc
@pytest.mark.parametrize("agg", [MEAN, MAX])
def test_pair_partial_corr_set_of_150(agg):
    """A set of 150 members: the systems kernel must opt in to 93,000 bytes of
    dynamic shared memory."""
    sums, n, sets = ppc_inputs(2, 9, 152, [0, 0, 1, 0, 0, 33], seed=12, big=(150,))
    run_pair_partial_corr(sums, n, sets, 0.0, agg, True, 3)


@needs_ppc
@pytest.mark.parametrize("per_pair", [True, False])
def test_pair_partial_corr_large(per_pair):
    sums, n, sets = ppc_inputs(3, 40, 170, list(range(34)), seed=13, big=(150, 97))
    run_pair_partial_corr(sums, n, sets, 1e-8, MEAN, per_pair, None, ("asan",))
    run_pair_partial_corr(sums, n, sets, 1e-8, MAX, per_pair, 13, ("asan",))


@needs_ppc
def test_pair_partial_corr_no_pairs_or_sets():
    sums, n, sets = ppc_inputs(2, 7, 20, [0], seed=14)
    run_pair_partial_corr(sums, n, sets, 0.0, MAX, False, None)
    empty = [s[:0] for s in sums]  # P = 0: the aggregate is all NaN
    run_pair_partial_corr(empty, n, sets, 0.0, MEAN, False, None)


# --- the emulator's own checks -----------------------------------------------------


def run_one(name, *args, variant="tsan"):
    c = call(name, *args)
    return c, emu.run([c], variant)


@pytest.mark.parametrize("plain_shared", [0, 1])
def test_selftest_correct_kernels_pass(plain_shared):
    x = np.arange(1000.0)
    c, r = run_one("selftest_block_sum", x, I64(1000), np.zeros(4), I32(1), I32(plain_shared))
    r.check_clean()
    np.testing.assert_array_equal(c.out[2], [x[k * 256 : (k + 1) * 256].sum() for k in range(4)])
    c, r = run_one("selftest_block_scratch", np.zeros(256), np.zeros(256), I32(1))
    r.check_clean()
    np.testing.assert_array_equal(c.out[1], [b * 1000.0 + t for b in range(4) for t in range(64)])
    _, r = run_one("selftest_flag_race", np.zeros(64), I32(1))
    r.check_clean()


@pytest.mark.parametrize(
    ("name", "args", "what"),
    [
        ("selftest_block_sum", (np.arange(1000.0), I64(1000), np.zeros(4), I32(0), I32(0)),
         "shared memory, missing __syncthreads()"),
        ("selftest_block_sum", (np.arange(1000.0), I64(1000), np.zeros(4), I32(0), I32(1)),
         "plain __shared__ memory, missing __syncthreads()"),
        ("selftest_flag_race", (np.zeros(64), I32(0)), "shared flag read while thread 0 writes"),
        ("selftest_block_scratch", (np.zeros(256), np.zeros(256), I32(0)),
         "global memory, two blocks"),
        ("selftest_global_race", (np.zeros(1),), "global memory, one block"),
    ],
)  # fmt: skip
def test_selftest_races_are_reported(name, args, what):
    c, r = run_one(name, *args)
    assert r.races >= 1, f"{what}: no race reported\n{r.stderr[-3000:]}"
    assert r.returncode != 0
    assert c.status == 0 and c.violations == 0  # a race is not a launch error


def test_selftest_past_end_is_reported():
    c, r = run_one("selftest_past_end", np.zeros(10), I64(10), variant="asan")
    assert r.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in r.stderr, r.stderr[-3000:]
    assert "past_end_kernel" in r.stderr
    c, r = run_one("selftest_past_end", np.zeros(10), I64(9), variant="asan")
    r.check_clean()
    np.testing.assert_array_equal(c.out[0], np.ones(10))


@pytest.mark.parametrize(
    ("name", "args", "status", "message"),
    [
        ("selftest_fill", (np.zeros(1025), I64(1025)), 9, "1025 threads per block"),
        ("selftest_grid_y", (np.zeros(65536), I64(65536)), 9, "grid beyond"),
        ("selftest_dynamic_smem", (np.zeros(1), I64(50000), I32(0)), 1,
         "50000 bytes of dynamic shared memory"),
        ("selftest_static_smem", (np.zeros(1), I64(10000)), 0, "40960 bytes of static"),
        ("selftest_dynamic_smem", (np.zeros(1), I64(240000), I32(1)), 1,
         "more than the 232448"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("variant", BOTH)
def test_selftest_limits_are_reported(name, args, status, message, variant):
    c, r = run_one(name, *args, variant=variant)
    assert c.status == status and c.violations == 1, (c.status, c.violations, r.stderr)
    assert r.returncode != 0
    assert any(message in line for line in r.reports), r.reports


@pytest.mark.parametrize("variant", BOTH)
def test_selftest_limits_within_bounds_pass(variant):
    calls = [
        call("selftest_fill", np.zeros(1024), I64(1024)),
        call("selftest_grid_y", np.zeros(65535), I64(65535)),
        call("selftest_dynamic_smem", np.zeros(1), I64(48 * 1024), I32(0)),
        call("selftest_static_smem", np.zeros(1), I64(8 * 1024)),
        call("selftest_dynamic_smem", np.zeros(1), I64(227 * 1024), I32(1)),
    ]
    emu.run(calls, variant).check_clean()
    np.testing.assert_array_equal(calls[0].out[0], np.arange(1024.0))
    assert calls[1].out[0][-1] == 65534.0
