"""Clusters of clusters: data centres joined over a WAN."""

import networkx as nx
import pytest

from topologies import clusters_of_clusters

PARAMS = dict(
    intra_latency_s=1e-4, intra_bandwidth_Bps=1.25e10, wan_latency_s=0.03, wan_bandwidth_Bps=1.25e8
)


@pytest.mark.parametrize("n,k", [(8, 2), (10, 3), (5, 5), (4, 1)])
def test_edge_count_and_block_sizes(n, k):
    topo = clusters_of_clusters(n, num_clusters=k, **PARAMS)
    assert topo.graph.number_of_edges() == n + k * (k - 1) // 2
    sizes = [topo.graph.degree[f"dc{c}"] - (k - 1) for c in range(k)]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    assert topo.node_sites == tuple(f"n{i}" for i in range(n))


def test_latency_inside_and_across_data_centres():
    topo = clusters_of_clusters(6, num_clusters=2, **PARAMS)  # n0-n2 in dc0, n3-n5 in dc1
    same = nx.shortest_path_length(topo.graph, "n0", "n2", weight="latency_s")
    across = nx.shortest_path_length(topo.graph, "n0", "n4", weight="latency_s")
    assert same == pytest.approx(PARAMS["intra_latency_s"])
    assert across == pytest.approx(PARAMS["intra_latency_s"] + PARAMS["wan_latency_s"])
    assert nx.shortest_path(topo.graph, "n0", "n4", weight="latency_s") == [
        "n0",
        "dc0",
        "dc1",
        "n4",
    ]


def test_wan_is_the_bisection_between_two_data_centres():
    topo = clusters_of_clusters(6, num_clusters=2, **PARAMS)
    cut, _ = nx.minimum_cut(topo.graph, "dc0", "dc1", capacity="bandwidth_Bps")
    assert cut == pytest.approx(PARAMS["wan_bandwidth_Bps"])


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(num_clusters=0), "num_clusters"),
        (dict(num_clusters=9), "num_clusters"),
        (dict(num_clusters=2, wan_bandwidth_Bps=0.0), "wan_bandwidth_Bps"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    params = {**PARAMS, **kwargs}
    with pytest.raises(ValueError, match=field):
        clusters_of_clusters(8, **params)
