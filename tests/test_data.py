"""Graph container, networkx conversion and synthetic graphs (gsnn_fast.data)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest
import torch

from gsnn_fast.data import (
    EDGE_TYPES,
    GraphData,
    build_convergence_graph,
    default_held_out_edges,
    nx2pyg,
    pyg2nx,
    scale_free_graph,
    scaled_convergence_graph,
    split_held_out,
)

IF, FF, FO = EDGE_TYPES
N_TIER_A = 25


@pytest.fixture(scope="module")
def seed_graph():
    G, pos, inputs, functions, outputs, ff_true = build_convergence_graph(N_TIER_A)
    held = default_held_out_edges(N_TIER_A, b2sink_stride=2)
    G_partial = G.copy()
    G_partial.remove_edges_from(held)
    return SimpleNamespace(
        G=G,
        pos=pos,
        G_partial=G_partial,
        inputs=inputs,
        functions=functions,
        outputs=outputs,
        ff_true=ff_true,
        held=held,
    )


def _named_edges(data, et):
    names = data.node_names_dict
    ei = data.edge_index_dict[et].tolist()
    return [(names[et[0]][s], names[et[2]][d]) for s, d in zip(ei[0], ei[1])]


# ---------------------------------------------------------------- nx2pyg / GraphData


def test_nx2pyg_seed_graph_counts_and_order(seed_graph):
    s = seed_graph
    data = nx2pyg(s.G_partial, s.inputs, s.functions, s.outputs)
    assert isinstance(data, GraphData)
    assert data.num_nodes_dict == {"input": 25, "function": 50, "output": 25}
    assert data.num_edges_dict == {IF: 25, FF: 37, FO: 25}
    assert data.edge_weight_dict is None
    for et in EDGE_TYPES:
        ei = data.edge_index_dict[et]
        assert ei.dtype == torch.int64 and ei.shape[0] == 2 and ei.is_contiguous()
    assert data.node_names_dict == {"input": s.inputs, "function": s.functions, "output": s.outputs}
    # Edge order is G.edges order, restricted to each type.
    kinds = {**dict.fromkeys(s.inputs, 0), **dict.fromkeys(s.functions, 1)}
    kinds.update(dict.fromkeys(s.outputs, 2))
    for et, pair in ((IF, (0, 1)), (FF, (1, 1)), (FO, (1, 2))):
        expected = [(u, v) for u, v in s.G_partial.edges if (kinds[u], kinds[v]) == pair]
        assert _named_edges(data, et) == expected
    kept = set(s.ff_true) - set(s.held)
    assert set(_named_edges(data, FF)) == kept
    assert _named_edges(data, IF) == [(f"in{i}", f"f{i}") for i in range(25)]
    text = repr(data)
    assert "function=50" in text and "function->function=37" in text and "none" in text


def test_nx2pyg_ignores_edges_of_other_kinds(seed_graph):
    s = seed_graph
    G = s.G_partial.copy()
    G.add_edges_from(
        [
            ("o0", "f3"),  # output -> function
            ("in0", "o2"),  # input -> output
            ("f2", "in4"),  # function -> input
            ("in1", "in2"),  # input -> input
            ("o1", "o3"),  # output -> output
            ("f5", "extra"),  # to a node in no list
            ("extra", "f7"),
        ]
    )
    base = nx2pyg(s.G_partial, s.inputs, s.functions, s.outputs)
    data = nx2pyg(G, s.inputs, s.functions, s.outputs)
    for et in EDGE_TYPES:
        assert torch.equal(data.edge_index_dict[et], base.edge_index_dict[et])


def test_nx2pyg_weight_attr(seed_graph):
    s = seed_graph
    G = s.G_partial.copy()
    for k, (u, v) in enumerate(G.edges):
        G.edges[u, v]["w"] = 0.5 * k - 3.0
    data = nx2pyg(G, s.inputs, s.functions, s.outputs, weight_attr="w")
    assert data.edge_weight_dict is not None
    for et in EDGE_TYPES:
        w = data.edge_weight_dict[et]
        assert w.dtype == torch.float32 and w.shape == (data.edge_index_dict[et].shape[1],)
        expected = [G.edges[u, v]["w"] for u, v in _named_edges(data, et)]
        assert w.tolist() == expected
    assert "edge weights: yes" in repr(data)

    del G.edges["f30", "f49"]["w"]
    with pytest.raises(ValueError, match=r"weight_attr='w'.*'f30', 'f49'"):
        nx2pyg(G, s.inputs, s.functions, s.outputs, weight_attr="w")
    G.edges["f30", "f49"]["w"] = "heavy"
    with pytest.raises(ValueError, match="non-numeric"):
        nx2pyg(G, s.inputs, s.functions, s.outputs, weight_attr="w")
    # Edges that are ignored need no weight.
    G.edges["f30", "f49"]["w"] = 1.0
    G.add_edge("o0", "f1")
    nx2pyg(G, s.inputs, s.functions, s.outputs, weight_attr="w")


def test_round_trip(seed_graph):
    s = seed_graph
    G = s.G_partial.copy()
    G.add_node("f_isolated")
    functions = s.functions + ["f_isolated"]
    data = nx2pyg(G, s.inputs, functions, s.outputs)
    H = pyg2nx(data)
    assert isinstance(H, nx.DiGraph)
    assert set(H.edges) == set(G.edges) and H.number_of_edges() == G.number_of_edges()
    assert set(H.nodes) == set(G.nodes)  # isolated node kept
    back = nx2pyg(H, s.inputs, functions, s.outputs)
    for et in EDGE_TYPES:  # sources of the seed graph appear in node-list order
        assert torch.equal(back.edge_index_dict[et], data.edge_index_dict[et])

    for k, (u, v) in enumerate(G.edges):
        G.edges[u, v]["weight"] = float(k)
    wdata = nx2pyg(G, s.inputs, functions, s.outputs, weight_attr="weight")
    H = pyg2nx(wdata)
    assert {e: H.edges[e]["weight"] for e in H.edges} == {e: G.edges[e]["weight"] for e in G.edges}


def test_pyg2nx_accepts_duck_typed_objects():
    obj = SimpleNamespace(
        edge_index_dict={
            IF: torch.tensor([[0, 1], [0, 1]]),
            FF: torch.tensor([[0], [1]]),
            FO: torch.tensor([[1], [0]]),
        },
        node_names_dict={"input": ["a", "b"], "function": ["x", "y"], "output": ["z"]},
        edge_weight_dict={},  # what HeteroData reports when no weights were set
    )
    H = pyg2nx(obj)
    assert list(H.edges) == [("a", "x"), ("b", "y"), ("x", "y"), ("y", "z")]
    g = GraphData.from_data(obj)
    assert g.edge_weight_dict is None
    assert GraphData.from_data(g) is g
    with pytest.raises(TypeError, match="node_names_dict"):
        pyg2nx(SimpleNamespace(edge_index_dict=obj.edge_index_dict))


def test_graph_data_validation_and_empty_types():
    names = {"input": ["a"], "function": ["x", "y"], "output": ["z"]}
    ok = {IF: [[0], [0]], FF: torch.empty(0, dtype=torch.long), FO: np.array([[1], [0]])}
    g = GraphData(ok, names)
    assert g.edge_index_dict[FF].shape == (2, 0)  # the pure-torch version gives (0,)
    assert g.edge_index_dict[IF].dtype == torch.int64
    assert g.to("cpu").num_edges_dict == g.num_edges_dict

    with pytest.raises(ValueError, match=r"destination indices in \[2, 2\].*2 'function'"):
        GraphData({**ok, FF: [[0], [2]]}, names)
    with pytest.raises(ValueError, match="missing"):
        GraphData({IF: ok[IF], FF: ok[FF]}, names)
    with pytest.raises(ValueError, match=r"shape \(2, E\)"):
        GraphData({**ok, IF: [0, 0, 0]}, names)
    with pytest.raises(TypeError, match="integers"):
        GraphData({**ok, IF: torch.zeros(2, 1)}, names)
    with pytest.raises(ValueError, match=r"node_names_dict\['function'\].*duplicate"):
        GraphData(ok, {**names, "function": ["x", "x"]})
    with pytest.raises(ValueError, match=r"edge_weight_dict.*shape \(1,\)"):
        GraphData(ok, names, {IF: [1.0, 2.0], FF: [], FO: [1.0]})


def test_nx2pyg_errors(seed_graph):
    s = seed_graph
    G = s.G_partial
    with pytest.raises(ValueError, match="function_nodes contains duplicate.*'f3'"):
        nx2pyg(G, s.inputs, s.functions + ["f3"], s.outputs)
    with pytest.raises(ValueError, match="output_nodes and function_nodes share.*'f2'"):
        nx2pyg(G, s.inputs, s.functions, s.outputs + ["f2"])
    with pytest.raises(ValueError, match="input_nodes contains node.*not in G.*'ghost'"):
        nx2pyg(G, s.inputs + ["ghost"], s.functions, s.outputs)
    with pytest.raises(TypeError, match="input_nodes must be a sequence"):
        nx2pyg(G, "in0", s.functions, s.outputs)
    with pytest.raises(TypeError, match="DiGraph"):
        nx2pyg(G.to_undirected(), s.inputs, s.functions, s.outputs)
    with pytest.raises(TypeError, match="multigraph"):
        nx2pyg(nx.MultiDiGraph(G), s.inputs, s.functions, s.outputs)


# ---------------------------------------------------------------- synthetic graphs


def test_convergence_graph_matches_notebook(seed_graph):
    s = seed_graph
    assert (len(s.inputs), len(s.functions), len(s.outputs)) == (25, 50, 25)
    assert len(s.ff_true) == 72 and len(set(s.ff_true)) == 72
    assert len(s.held) == 35 and len(set(s.held) - set(s.ff_true)) == 0
    assert s.G.number_of_edges() == 72 + 25 + 25
    assert s.G_partial.number_of_edges() == 87  # notebook: "G_partial edges: 87"
    assert nx.is_directed_acyclic_graph(s.G)
    assert s.ff_true[:4] == [("f0", "f25"), ("f1", "f25"), ("f1", "f26"), ("f2", "f26")]
    assert s.ff_true[-1] == ("f48", "f49")
    assert s.held[0] == ("f1", "f26") and s.held[22] == ("f23", "f48")
    assert s.held[23:] == [(f"f{25 + k}", "f49") for k in range(0, 24, 2)]
    assert set(s.pos) == set(s.G.nodes)
    assert s.pos["in0"] == (-24.0, 4.0) and s.pos["o24"] == (24.0, 0.0)
    assert s.pos["f49"] == (0.0, 1.0)
    assert s.pos["f25"] == pytest.approx((0.5 * 48 / 23 - 24, 2.0))
    assert s.G.has_edge("f49", "o24") and s.G.has_edge("f48", "o23")
    n_non_edges = 50 * 49 - len(set(s.ff_true))
    assert n_non_edges == 2378


def test_split_held_out_reproduces_notebook(seed_graph):
    held = seed_graph.held
    original = list(held)
    val, test = split_held_out(held, "f49", seed=0)
    assert held == original  # input untouched
    assert (len(val), len(test)) == (17, 18)

    # The notebook's cell, step by step.
    left_merge = [e for e in held if e[1] != "f49"]
    b2sink = [e for e in held if e[1] == "f49"]
    rng = np.random.default_rng(0)
    rng.shuffle(left_merge)
    rng.shuffle(b2sink)
    nl, nb = len(left_merge) // 2, len(b2sink) // 2
    assert val == left_merge[:nl] + b2sink[:nb]
    assert test == left_merge[nl:] + b2sink[nb:]
    assert sorted(val + test) == sorted(held)
    assert split_held_out(held, "f49", seed=1) != (val, test)


def test_scaled_convergence_graph():
    G, inputs, functions, outputs = scaled_convergence_graph(100)
    assert len(functions) == 100 and len(inputs) == len(outputs) == 50
    assert len(scaled_convergence_graph(99)[2]) == 100
    with pytest.raises(ValueError, match="n_function"):
        scaled_convergence_graph(0)
    with pytest.raises(ValueError, match="n_tier_a"):
        build_convergence_graph(1)


def _check_scale_free(G, inputs, functions, outputs):
    assert nx.is_directed_acyclic_graph(G)
    kinds = {**dict.fromkeys(inputs, "i"), **dict.fromkeys(functions, "f")}
    kinds.update(dict.fromkeys(outputs, "o"))
    assert set(kinds) == set(G.nodes)
    assert {(kinds[u], kinds[v]) for u, v in G.edges} <= {("i", "f"), ("f", "f"), ("f", "o")}
    G.add_edges_from(("SRC", u) for u in inputs)
    G.add_edges_from((o, "DST") for o in outputs)
    from_inputs = nx.descendants(G, "SRC")
    to_outputs = nx.ancestors(G, "DST")
    G.remove_nodes_from(["SRC", "DST"])
    assert set(functions) <= from_inputs and set(functions) <= to_outputs
    assert all(G.out_degree(u) >= 1 for u in inputs)
    assert all(G.in_degree(o) >= 1 for o in outputs)


def test_scale_free_graph_properties_and_determinism():
    G, inputs, functions, outputs = scale_free_graph(2000, seed=3)
    assert (len(inputs), len(functions), len(outputs)) == (200, 2000, 200)
    _check_scale_free(G, inputs, functions, outputs)
    ff_in = np.array([sum(p[0] == "f" for p in G.predecessors(f)) for f in functions])
    assert ff_in[:200].max() == 0 and ff_in[200:].min() >= 1  # sources, then the rest
    again = scale_free_graph(2000, seed=3)[0]
    assert list(again.edges) == list(G.edges)
    assert list(scale_free_graph(2000, seed=4)[0].edges) != list(G.edges)

    # Small and odd sizes: more inputs than functions, more outputs than sinks.
    for args in [(1,), (3, 7, 9, 2), (40, 1, 30, 5)]:
        _check_scale_free(*scale_free_graph(*args, seed=1))
    with pytest.raises(ValueError, match="max_in_degree"):
        scale_free_graph(10, max_in_degree=0)


def test_scale_free_graph_large_is_heavy_tailed_and_fast():
    t0 = time.perf_counter()
    G, inputs, functions, outputs = scale_free_graph(20_000, max_in_degree=50, seed=0)
    elapsed = time.perf_counter() - t0
    print(f"\nscale_free_graph(20000): {elapsed:.3f} s, {G.number_of_edges()} edges")
    assert elapsed < 10.0  # generous sanity bound; about 0.2 s on one core
    indeg = np.fromiter((G.in_degree(f) for f in functions), dtype=np.int64)
    indeg[: len(inputs)] -= 1  # the input edge of each source
    non_src = indeg[len(inputs) :]
    assert non_src.min() >= 1 and non_src.max() <= 50
    assert 2.0 < non_src.mean() < 4.0
    assert non_src.max() >= 40  # hubs near the cap
    # Power-law tail P(d >= 10) = sum_{d>=10} d^-2 / sum_{d<=50} d^-2, about 0.053.
    assert 0.04 < (non_src >= 10).mean() < 0.07
    assert nx.is_directed_acyclic_graph(G)
