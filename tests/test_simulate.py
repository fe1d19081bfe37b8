"""gsnn_fast.data.simulate reproduces the structural model of the pure-torch simulate."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest

from gsnn_fast.data import build_convergence_graph, simulate
from gsnn_fast.data.simulate import _simulate

Z = 5.0  # tolerance in standard errors: a false failure has probability < 1e-6 per check


def _linear_dag():
    """in0, in1, in2 -> a, b, c; root r (no parents, not an input); s special."""
    G = nx.DiGraph()
    G.add_edges_from([("in0", "a"), ("in1", "a")])  # a = in0 - in1 (signed_edges)
    G.add_edge("a", "b")
    G.add_edge("in2", "b", sign=-1)  # b = a - in2 (attribute)
    G.add_edge("b", "c", sign=-1)  # c = -b + r + a (attribute, overridden below)
    G.add_edges_from([("r", "c"), ("a", "c")])
    G.add_edge("a", "s")
    G.add_edge("in2", "s")
    signed = {("in1", "a"): -1, ("b", "c"): -1.0, ("not", "an edge"): 7}
    G.edges["b", "c"]["sign"] = +1  # signed_edges wins over the attribute
    truth = {
        "a": {"in0": 1.0, "in1": -1.0},
        "b": {"a": 1.0, "in2": -1.0},
        "c": {"b": -1.0, "r": 1.0, "a": 1.0},
    }
    return G, signed, truth


def _regress(y, X):
    """Least squares y ~ [1, X]; returns coefficients, their standard errors, residual std."""
    A = np.column_stack([np.ones(len(y)), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = len(y) - A.shape[1]
    s2 = resid @ resid / dof
    se = np.sqrt(s2 * np.diag(np.linalg.inv(A.T @ A)))
    return coef, se, np.sqrt(s2), dof


def test_recovers_signed_linear_model():
    G, signed, truth = _linear_dag()
    sigma = 0.5
    inputs = ["in0", "in1", "in2"]
    outputs = ["r", "a", "b", "c", "s"]
    np.random.seed(1)
    x_tr, x_te, y_tr, y_te = simulate(
        G, 30_000, 10_000, inputs, outputs, noise_scale=sigma, signed_edges=signed
    )
    values = dict(zip(inputs, np.vstack([x_tr, x_te]).T))
    values.update(zip(outputs, np.vstack([y_tr, y_te]).T))
    n = len(values["a"])

    for node, parents in truth.items():
        names = list(parents)
        coef, se, s, dof = _regress(values[node], np.column_stack([values[p] for p in names]))
        expected = np.array([0.0] + [parents[p] for p in names])
        assert np.all(np.abs(coef - expected) <= Z * se), (node, coef, se)
        # sd of the residual-std estimate is sigma / sqrt(2 dof)
        assert abs(s - sigma) <= Z * sigma / np.sqrt(2 * dof), (node, s)

    # Nodes without parents (inputs and the root r) are N(0, 1), mutually independent.
    for node in inputs + ["r"]:
        v = values[node]
        assert abs(v.mean()) <= Z / np.sqrt(n)
        assert abs(v.std() - 1.0) <= Z / np.sqrt(2 * n)
    assert abs(np.corrcoef(values["r"], values["in0"])[0, 1]) <= Z / np.sqrt(n)


def test_sign_attribute_used_without_signed_edges():
    G, _, _ = _linear_dag()  # 'b' -> 'c' carries sign=+1, ('in1','a') has no sign
    np.random.seed(2)
    x, _, y, _ = simulate(G, 20_000, 1, ["in0", "in1", "in2"], ["r", "a", "b", "c"], noise_scale=0)
    r, a, b, c = y.T
    np.testing.assert_allclose(a, x[:, 0] + x[:, 1], atol=1e-12)
    np.testing.assert_allclose(b, a - x[:, 2], atol=1e-12)
    np.testing.assert_allclose(c, b + r + a, atol=1e-12)


def test_special_functions_receive_sample_arrays():
    G, signed, _ = _linear_dag()
    seen = []

    def fn(parents):
        seen.append([(p.shape, p.dtype, p.flags.writeable) for p in parents])
        return parents[0] - 2.0 * parents[1] ** 2  # parent order = G.predecessors('s')

    sigma = 0.25
    np.random.seed(3)
    x, _, y, _ = simulate(
        G,
        20_000,
        5,
        ["in0", "in1", "in2"],
        ["a", "s"],
        noise_scale=sigma,
        special_functions={"s": fn},
        signed_edges=signed,
    )
    assert list(G.predecessors("s")) == ["a", "in2"]
    assert seen[0] == [((20_000,), np.float64, False)] * 2 and seen[1][0][0] == (5,)
    resid = y[:, 1] - (y[:, 0] - 2.0 * x[:, 2] ** 2)
    n = len(resid)
    assert abs(resid.mean()) <= Z * sigma / np.sqrt(n)
    assert abs(resid.std() - sigma) <= Z * sigma / np.sqrt(2 * n)

    # A scalar is broadcast; in-place writes to parents are refused.
    _, _, y, _ = simulate(
        G, 10, 1, ["in0"], ["s"], noise_scale=0, special_functions={"s": lambda p: 3.5}
    )
    np.testing.assert_array_equal(y, 3.5)

    def bad_inplace(parents):
        parents[0] += 1
        return parents[0]

    with pytest.raises(ValueError, match="read-only"):
        simulate(G, 4, 1, ["in0"], ["s"], special_functions={"s": bad_inplace})
    with pytest.raises(ValueError, match=r"special_functions\['s'\].*shape \(4,\)"):
        simulate(G, 4, 1, ["in0"], ["s"], special_functions={"s": lambda p: np.zeros((4, 2))})


def test_shapes_dtypes_reproducibility_and_chunking():
    G, pos, inputs, functions, outputs, _ = build_convergence_graph(6)
    np.random.seed(0)
    out = simulate(G, 7, 3, inputs, outputs, noise_scale=0.15)
    assert [a.shape for a in out] == [(7, 6), (3, 6), (7, 6), (3, 6)]
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in out)
    np.random.seed(0)
    again = simulate(G, 7, 3, inputs, outputs, noise_scale=0.15)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    different = simulate(G, 7, 3, inputs, outputs, noise_scale=0.15)
    assert not np.array_equal(out[0], different[0])
    # Chunking over samples does not change the draws.
    np.random.seed(0)
    chunked = _simulate(G, 7, 3, inputs, outputs, noise_scale=0.15, chunk_elements=60)
    assert all(np.array_equal(a, b) for a, b in zip(out, chunked))
    # Train samples come first in the stream: test == the tail of one longer train draw.
    np.random.seed(0)
    longer = simulate(G, 10, 1, inputs, outputs, noise_scale=0.15)
    np.testing.assert_array_equal(longer[0][7:], out[1])
    np.testing.assert_array_equal(longer[2][:7], out[2])


def test_inputs_ignore_their_parents():
    G = nx.DiGraph([("f", "in0"), ("in0", "g")])
    np.random.seed(4)
    x, _, y, _ = simulate(G, 5_000, 1, ["in0"], ["f", "g"], noise_scale=0.0)
    assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) <= Z / np.sqrt(5_000)
    np.testing.assert_array_equal(y[:, 1], x[:, 0])


def test_seed_graph_speed():
    G, _, inputs, _, outputs, _ = build_convergence_graph(25)
    np.random.seed(0)
    t0 = time.perf_counter()
    x_tr, x_te, y_tr, y_te = simulate(
        G, n_train=2000, n_test=500, input_nodes=inputs, output_nodes=outputs, noise_scale=0.15
    )
    elapsed = time.perf_counter() - t0
    print(f"\nsimulate(seed graph, 2,500 samples): {elapsed * 1e3:.1f} ms")
    assert elapsed < 5.0  # generous sanity bound; the pure-torch loop takes minutes
    assert x_tr.shape == (2000, 25) and y_te.shape == (500, 25)
    # o24 reads the sink f49 = sum of 24 tier-B nodes, each f_k + f_{k+1}: large variance.
    assert y_tr[:, 24].std() > 5 * y_tr[:, 0].std()


def test_errors():
    G, signed, _ = _linear_dag()
    ins, outs = ["in0"], ["c"]
    with pytest.raises(ValueError, match="acyclic.*cycle"):
        simulate(nx.DiGraph([("a", "b"), ("b", "a")]), 2, 2, ["a"], ["b"])
    with pytest.raises(TypeError, match="G must be a networkx DiGraph"):
        simulate(G.to_undirected(), 2, 2, ins, outs)
    with pytest.raises(TypeError, match="multigraph"):
        simulate(nx.MultiDiGraph(G), 2, 2, ins, outs)
    for bad in (0, -3, 2.0, True, "5"):
        with pytest.raises(ValueError, match="n_train must be a positive integer"):
            simulate(G, bad, 2, ins, outs)
    with pytest.raises(ValueError, match="n_test must be a positive integer"):
        simulate(G, 2, 0, ins, outs)
    with pytest.raises(ValueError, match="input_nodes contains node.*'zz'"):
        simulate(G, 2, 2, ["in0", "zz"], outs)
    with pytest.raises(ValueError, match="output_nodes contains duplicate"):
        simulate(G, 2, 2, ins, ["c", "c"])
    with pytest.raises(TypeError, match="output_nodes must be a sequence"):
        simulate(G, 2, 2, ins, "c")
    for bad in (-0.1, float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="noise_scale"):
            simulate(G, 2, 2, ins, outs, noise_scale=bad)
    with pytest.raises(ValueError, match="special_functions has a key.*'zz'"):
        simulate(G, 2, 2, ins, outs, special_functions={"zz": np.sum})
    with pytest.raises(ValueError, match=r"special_functions\['in0'\].*input node"):
        simulate(G, 2, 2, ins, outs, special_functions={"in0": np.sum})
    with pytest.raises(TypeError, match="callable"):
        simulate(G, 2, 2, ins, outs, special_functions={"c": 3})
    with pytest.raises(ValueError, match=r"signed_edges\[\('in1', 'a'\)\].*finite number"):
        simulate(G, 2, 2, ins, outs, signed_edges={("in1", "a"): "neg"})
    G.edges["in0", "a"]["sign"] = float("nan")
    with pytest.raises(ValueError, match=r"G.edges\['in0', 'a'\]\['sign'\]"):
        simulate(G, 2, 2, ins, outs)
