"""Inference across two gloo processes on this CPU (gsnn_fast.inference.distributed):
data-parallel statistics equal merge's bit for bit on every rank; target-sharded sums,
top-k rows and q-values equal one process's bit for bit; each rank holds half of
sum_xy and only the sum_xx columns its targets need."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gsnn_fast.inference import distributed as gd
from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
from gsnn_fast.inference.statistics import SUMS, merge

from .contract_model import ContractModel, Graph, random_batches, random_ff_edges

N_IN, N_FUNC, N_OUT = 3, 21, 2
QUERIES = [  # (score, layer_agg, exclude_self, top_k, q_threshold)
    ("corr", "mean", True, 3, None),
    ("corr", "max", False, 2, None),
    ("corr", "max", True, None, 0.3),
    ("corr", "max", True, 4, 0.5),
    ("corr", "mean", False, None, 0.95),
    ("partial", "mean", True, 3, None),
    ("partial", "max", False, 2, 0.9),
    ("partial", "max", True, None, 0.5),
]


def _case():
    model = ContractModel(N_IN, N_FUNC, N_OUT, channels=2, layers=3, seed=4)
    data = Graph(N_IN, N_FUNC, N_OUT, random_ff_edges(N_FUNC, 30, 4))
    batches = random_batches(N_IN, N_OUT, (6, 9, 4, 8, 7, 5), seed=9)
    return model, data, batches


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model, data, batches = _case()
    # data parallel: rank r fits its half, then the rank-ordered sum
    half = len(batches) // world
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches[rank * half : (rank + 1) * half], verbose=False)
    gd.gather_statistics(inf)
    dp = {name: getattr(inf, name) for name in SUMS} | {"n": inf.n, "n_batches": inf.n_batches}
    # target sharded: every batch on every rank, a block of target columns each
    inf2 = MagnitudeEdgeInferer(model, data)
    shard = gd.fit_target_shard(inf2, batches)
    gd._SRC_BLOCK, gd._TGT_BLOCK = 8, 4  # several reduced partial problems per shard
    frames = [
        gd.evaluate_sharded(inf2, shard, agg, ex, score, top_k=k, q_threshold=q)
        for score, agg, ex, k, q in QUERIES
    ]
    aggs = {
        (score, agg): gd.shard_scores(inf2, shard, agg, score)
        for score in ("corr", "partial")
        for agg in ("mean", "max")
    }
    with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
        pickle.dump({"dp": dp, "shard": shard._asdict(), "frames": frames, "aggs": aggs}, f)
    dist.destroy_process_group()


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int64), b.view(torch.int64))


def test_two_gloo_processes(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world)
    got = []
    for r in range(world):
        with open(tmp_path / f"rank{r}.pkl", "rb") as f:
            got.append(pickle.load(f))
    model, data, batches = _case()

    # data parallel == merge(rank 0, rank 1), bit for bit, on both ranks
    parts = []
    for r in range(world):
        inf = MagnitudeEdgeInferer(model, data)
        inf.fit(batches[r * 3 : (r + 1) * 3], verbose=False)
        parts.append(inf)
    merged = merge(*parts, into=MagnitudeEdgeInferer(model, data))
    for r in range(world):
        for name in SUMS:
            assert _bits_equal(got[r]["dp"][name], getattr(merged, name)), (r, name)
        assert got[r]["dp"]["n"] == merged.n and got[r]["dp"]["n_batches"] == len(batches)

    # target sharded sums == one process's columns, bit for bit
    one = MagnitudeEdgeInferer(model, data)
    one.fit(batches, verbose=False)
    P, N = one.n_pairs, one.N
    cols_total = 0
    for r in range(world):
        sh = got[r]["shard"]
        j0, j1 = sh["j0"], sh["j1"]
        cols_total += j1 - j0
        assert (j0, j1) == gd.target_block(N, r, world)
        assert _bits_equal(sh["sum_x"], one.sum_x) and _bits_equal(sh["sum_x2"], one.sum_x2)
        assert _bits_equal(sh["sum_y"], one.sum_y[:, j0:j1].contiguous())
        assert _bits_equal(sh["sum_y2"], one.sum_y2[:, j0:j1].contiguous())
        assert _bits_equal(sh["sum_xy"], one.sum_xy[:, :, j0:j1].contiguous())
        need = torch.unique(
            torch.cat([torch.as_tensor(one.parents_by_target[j]) for j in range(j0, j1)])
        )
        assert torch.equal(sh["xx_cols"], need)
        assert _bits_equal(sh["sum_xx"], one.sum_xx[:, :, need].contiguous())
        # memory held: half of sum_xy, the needed columns of sum_xx
        assert sh["sum_xy"].numel() == P * N * (j1 - j0)
        assert sh["sum_xx"].shape[2] == need.numel() < N
        print(
            f"rank {r}: targets [{j0}, {j1}), sum_xy {sh['sum_xy'].numel()} of {P * N * N} "
            f"entries, sum_xx {sh['sum_xx'].numel()} of {P * N * N} ({need.numel()} of {N} "
            "columns)"
        )
    assert cols_total == N

    # sharded scores == one process's aggregate columns, bit for bit
    for key in got[0]["aggs"]:
        full = one.score_matrices(key[0], layer_agg=key[1], per_pair=False).aggregated
        for r in range(world):
            j0, j1 = got[r]["shard"]["j0"], got[r]["shard"]["j1"]
            assert _bits_equal(got[r]["aggs"][key], full[:, j0:j1].contiguous()), (key, r)

    # sharded frames == one process's evaluate, bit for bit, on both ranks
    for i, (score, agg, ex, k, q) in enumerate(QUERIES):
        want = one.evaluate(layer_agg=agg, exclude_self=ex, score=score, top_k=k, q_threshold=q)
        assert len(want) > 0
        for r in range(world):
            frame = got[r]["frames"][i]
            pd.testing.assert_frame_equal(frame, want, check_exact=True)
            for col in frame.columns:
                a, b = frame[col].to_numpy(), want[col].to_numpy()
                if a.dtype == np.float64:
                    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64), err_msg=col)


def test_shard_preflight(monkeypatch):
    """A shard that does not fit is refused before anything is allocated (no process
    group needed: rank and world come from the arguments' defaults)."""
    import pytest

    from gsnn_fast.inference import memory

    model, data, batches = _case()
    inf = MagnitudeEdgeInferer(model, data)
    monkeypatch.setattr(gd, "_ranks", lambda group: (1, 2))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 100)
    with pytest.raises(memory.InsufficientMemoryError, match="fit_target_shard .rank 1"):
        gd.fit_target_shard(inf, batches)
