"""Hypothesis properties: path latencies on ring and torus match hop-count closed forms."""

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topologies import ring, torus_2d

LATENCY_S = 0.007


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 40), data=st.data())
def test_ring_path_latency_is_the_shorter_arc(n, data):
    k = data.draw(st.integers(0, n - 1))
    topo = ring(n, latency_s=LATENCY_S, bandwidth_Bps=1e6)
    latency = nx.shortest_path_length(topo.graph, "n0", f"n{k}", weight="latency_s")
    assert latency == pytest.approx(min(k, n - k) * LATENCY_S)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(3, 8), cols=st.integers(3, 8), data=st.data())
def test_torus_path_latency_is_the_wrapped_manhattan_distance(rows, cols, data):
    i = data.draw(st.integers(0, rows * cols - 1))
    r, c = divmod(i, cols)
    topo = torus_2d(rows, cols, latency_s=LATENCY_S, bandwidth_Bps=1e6)
    latency = nx.shortest_path_length(topo.graph, "n0", f"n{i}", weight="latency_s")
    hops = min(r, rows - r) + min(c, cols - c)
    assert latency == pytest.approx(hops * LATENCY_S)
