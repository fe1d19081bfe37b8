"""Statistics that persist and merge: the memory preflight, fit(accumulate=True),
checkpoints with kill-and-resume (bit for bit), and merge of fits on disjoint data."""

from __future__ import annotations

import os

import pytest
import torch

from gsnn_fast.inference import memory
from gsnn_fast.inference.magnitude_edge_inferer import MagnitudeEdgeInferer
from gsnn_fast.inference.statistics import SUMS, load_statistics, merge, save_statistics

from .contract_model import ContractModel, Graph, random_ff_edges

N_IN, N_FUNC, N_OUT = 3, 9, 2


def _case(seed=0, n_batches=7):
    model = ContractModel(N_IN, N_FUNC, N_OUT, channels=2, layers=3, seed=seed)
    data = Graph(N_IN, N_FUNC, N_OUT, random_ff_edges(N_FUNC, 14, seed))
    g = torch.Generator().manual_seed(11 + seed)
    batches = [
        (
            torch.randn(b, N_IN, generator=g, dtype=torch.float64),
            torch.randn(b, N_OUT, generator=g, dtype=torch.float64),
        )
        for b in (5, 8, 3, 6, 9, 4, 7)[:n_batches]
    ]
    return model, data, batches


def _same_bits(a, b):
    for name in SUMS:
        ta, tb = getattr(a, name), getattr(b, name)
        assert (ta is None) == (tb is None), name
        if ta is not None:
            assert torch.equal(ta.view(torch.int64), tb.view(torch.int64)), name
    assert (a.n, a.n_skipped) == (b.n, b.n_skipped)


def test_preflight_message_for_a_graph_that_does_not_fit():
    need = memory.fit_bytes(5, 30_000, True, 6)
    assert need > memory.statistics_bytes(5, 30_000, True) == 8 * (4 * 5 * 30_000 + 2 * 5 * 9e8)
    with pytest.raises(memory.InsufficientMemoryError) as err:
        memory.check_memory(
            "MagnitudeEdgeInferer.fit", need, torch.device("cpu"), N=30_000, P=5,
            track_xx=True, available=24 * 2**30,
        )  # fmt: skip
    msg = str(err.value)
    for part in ("N=30000", "P=5", f"({need} bytes)", f"({24 * 2**30} bytes)", "track_xx=False"):
        assert part in msg
    assert "torchrun" in msg and "8 * P * N^2" in msg
    assert isinstance(err.value, MemoryError)


def test_fit_and_evaluate_refuse_before_allocating(monkeypatch):
    model, data, batches = _case()
    inf = MagnitudeEdgeInferer(model, data)
    inf.fit(batches, verbose=False)
    before = inf.sum_xy.clone()
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(memory.InsufficientMemoryError, match=f"N={N_FUNC} .*P=2") as err:
        inf.fit(batches[:2], verbose=False)
    assert torch.equal(inf.sum_xy, before) and inf.n == sum(len(x) for x, _ in batches)
    assert "still holds" not in str(err.value)  # releasing them would not be enough
    # a refit keeps the statistics held until it completes: when releasing them would
    # be enough, the message says so
    need = memory.fit_bytes(inf.n_pairs, inf.N, inf.track_xx, inf.L)
    monkeypatch.setattr(memory, "available_bytes", lambda device: need - 1)
    with pytest.raises(memory.InsufficientMemoryError, match=r"still holds .*reset_stats\(\)"):
        inf.fit(batches[:2], verbose=False)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(memory.InsufficientMemoryError, match="evaluate"):
        inf.evaluate()
    with pytest.raises(memory.InsufficientMemoryError, match="evaluate"):
        inf.evaluate(top_k=2)
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)  # unknown: no check
    inf.evaluate(top_k=2)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    inf.reset_stats()  # nothing held: the message has no such line
    with pytest.raises(memory.InsufficientMemoryError) as err:
        inf.fit(batches[:2], verbose=False)
    assert "still holds" not in str(err.value)


def test_accumulate_equals_one_fit():
    model, data, batches = _case()
    one = MagnitudeEdgeInferer(model, data)
    one.fit(batches, verbose=False)
    acc = MagnitudeEdgeInferer(model, data)
    acc.fit(batches[:3], verbose=False)
    acc.fit(batches[3:], verbose=False, accumulate=True)
    _same_bits(acc, one)
    fresh = MagnitudeEdgeInferer(model, data)
    fresh.fit(batches, verbose=False, accumulate=True)  # nothing held: a plain fit
    _same_bits(fresh, one)


class _Dies:
    """The batches, but raises when batch ``at`` is requested (a killed process)."""

    def __init__(self, batches, at):
        self.batches, self.at = batches, at

    def __iter__(self):
        for i, b in enumerate(self.batches):
            if i == self.at:
                raise KeyboardInterrupt(f"killed at batch {i}")
            yield b


@pytest.mark.parametrize("killed_at", [1, 4, 5])
def test_checkpoint_kill_and_resume_bit_for_bit(tmp_path, killed_at):
    model, data, batches = _case()
    want = MagnitudeEdgeInferer(model, data)
    want.fit(batches, verbose=False)
    path = tmp_path / "ckpt.pt"
    inf = MagnitudeEdgeInferer(model, data)
    with pytest.raises(KeyboardInterrupt):
        inf.fit(_Dies(batches, killed_at), verbose=False, checkpoint_path=path, checkpoint_every=2)
    assert inf.n == 0  # a plain fit keeps the old (here: no) statistics on an error
    saved = (killed_at // 2) * 2
    if saved == 0:
        assert not path.exists()
        return
    assert torch.load(path, weights_only=True)["n_batches"] == saved
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind
    resumed = MagnitudeEdgeInferer(model, data)
    resumed.fit(batches, verbose=False, resume_from=path, checkpoint_path=path, checkpoint_every=2)
    _same_bits(resumed, want)
    assert resumed.n_batches == len(batches)
    final = MagnitudeEdgeInferer(model, data)
    load_statistics(final, path)  # the last checkpoint is the finished fit
    _same_bits(final, want)


def test_checkpoint_arguments():
    model, data, batches = _case()
    inf = MagnitudeEdgeInferer(model, data)
    with pytest.raises(ValueError, match="go together"):
        inf.fit(batches, verbose=False, checkpoint_path="x.pt")
    with pytest.raises(ValueError, match="positive integer"):
        inf.fit(batches, verbose=False, checkpoint_path="x.pt", checkpoint_every=0)


def test_merge_of_disjoint_fits(tmp_path):
    model, data, batches = _case()
    whole = MagnitudeEdgeInferer(model, data)
    whole.fit(batches, verbose=False)
    parts = []
    for chunk in (batches[:2], batches[2:5], batches[5:]):
        inf = MagnitudeEdgeInferer(model, data)
        inf.fit(chunk, verbose=False)
        parts.append(inf)
    into = MagnitudeEdgeInferer(model, data)
    merge(*parts, into=into)
    assert (into.n, into.n_batches) == (whole.n, len(batches))
    for name in SUMS:
        torch.testing.assert_close(getattr(into, name), getattr(whole, name), rtol=1e-12, atol=0)
    again = MagnitudeEdgeInferer(model, data)
    merge(*parts, into=again)
    _same_bits(again, into)  # deterministic
    files = []
    for k, part in enumerate(parts):
        files.append(tmp_path / f"part{k}.pt")
        save_statistics(part, files[-1])
    from_files = MagnitudeEdgeInferer(model, data)
    merge(*files, into=from_files)
    _same_bits(from_files, into)
    # the order is part of the definition: (a + b) + c
    a, b, c = (p.sum_xy for p in parts)
    assert torch.equal(into.sum_xy, (a + b) + c)
    left = merge(parts[0], parts[1])  # into defaults to the first
    assert left is parts[0] and left.n == parts[0].n
    other_model, other_data, _ = _case(seed=3)
    stranger = MagnitudeEdgeInferer(other_model, other_data)
    with pytest.raises(ValueError, match="does not fit"):
        merge(into, files[0], into=stranger)
