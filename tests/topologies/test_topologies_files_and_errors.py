"""from_graph / from_edgelist validation, the edge-list round trip, and clear errors."""

import networkx as nx
import pytest

from topologies import (
    Topology,
    from_edgelist,
    from_graph,
    gcp_regions,
    ring,
    to_edgelist,
    uniform,
)


def two_sites(**edge_attrs) -> nx.Graph:
    graph = nx.Graph()
    graph.add_edge("a", "b", **edge_attrs)
    return graph


def graph_data(topo: Topology):
    return list(topo.graph.nodes(data=True)), list(topo.graph.edges(data=True))


@pytest.mark.parametrize(
    "topo", [gcp_regions(12), ring(6, latency_s=0.003, bandwidth_Bps=1e9 / 7), uniform(3)]
)
def test_edgelist_round_trip(tmp_path, topo):
    path = tmp_path / "graph.csv"
    to_edgelist(topo, path)
    back = from_edgelist(path, topo.node_sites)
    assert graph_data(back) == graph_data(topo)
    assert back.node_sites == topo.node_sites


def test_edgelist_reads_comments_local_links_and_extra_columns(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(
        "# two regions\n"
        "site_a,site_b,latency_s,bandwidth_Bps,loss\n"
        "x,y,0.02,1e8,0.001\n"
        "\n"
        "x,x,0.001,2e9,\n"
    )
    topo = from_edgelist(path)
    assert topo.node_sites == ("x", "y")  # one node per site by default
    assert topo.graph.edges["x", "y"] == {"latency_s": 0.02, "bandwidth_Bps": 1e8, "loss": 0.001}
    assert topo.graph.nodes["x"] == {"local_latency_s": 0.001, "local_bandwidth_Bps": 2e9}


def test_edgelist_missing_file_is_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        from_edgelist(tmp_path / "nope.csv")


def test_edgelist_missing_column_is_named(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("site_a,site_b,latency_s,capacity\nx,y,0.02,1e8\n")
    with pytest.raises(ValueError, match="missing the column 'bandwidth_Bps'"):
        from_edgelist(path)


def test_edgelist_missing_cell_names_line_edge_and_attribute(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("site_a,site_b,latency_s,bandwidth_Bps\nx,y,0.02,1e8\ny,z,0.01,\n")
    with pytest.raises(
        ValueError, match=r"g.csv:3: edge \('y', 'z'\) is missing attribute 'bandwidth_Bps'"
    ):
        from_edgelist(path)


def test_edgelist_bad_number_and_duplicate_edge(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("site_a,site_b,latency_s,bandwidth_Bps\nx,y,20ms,1e8\n")
    with pytest.raises(ValueError, match="'latency_s': got '20ms'"):
        from_edgelist(path)
    path.write_text("site_a,site_b,latency_s,bandwidth_Bps\nx,y,0.02,1e8\ny,x,0.02,1e8\n")
    with pytest.raises(ValueError, match="given twice"):
        from_edgelist(path)


def test_from_graph_missing_bandwidth_names_the_edge():
    with pytest.raises(ValueError, match=r"edge \('a', 'b'\): missing attribute 'bandwidth_Bps'"):
        from_graph(two_sites(latency_s=0.01))


@pytest.mark.parametrize(
    "attrs,field",
    [
        (dict(latency_s=-1, bandwidth_Bps=1e6), "latency_s"),
        (dict(latency_s=0.01, bandwidth_Bps=float("nan")), "bandwidth_Bps"),
        (dict(latency_s=float("inf"), bandwidth_Bps=1e6), "latency_s"),
    ],
)
def test_from_graph_rejects_bad_values(attrs, field):
    with pytest.raises(ValueError, match=field):
        from_graph(two_sites(**attrs))


def test_from_graph_rejects_disconnected_and_non_str_graphs():
    graph = two_sites(latency_s=0.01, bandwidth_Bps=1e6)
    graph.add_node("island")
    with pytest.raises(ValueError, match="not connected.*island"):
        from_graph(graph)
    with pytest.raises(ValueError, match="must be str"):
        from_graph(nx.relabel_nodes(two_sites(latency_s=0.0, bandwidth_Bps=1.0), {"a": 0}))
    with pytest.raises(ValueError, match="undirected"):
        from_graph(nx.DiGraph(two_sites(latency_s=0.0, bandwidth_Bps=1.0)))


def test_from_graph_orders_sites_naturally_and_copies():
    graph = nx.Graph()
    for u, v in [("n10", "n2"), ("n2", "n1"), ("n1", "n10")]:
        graph.add_edge(u, v, latency_s=1, bandwidth_Bps=2)
    topo = from_graph(graph)
    assert list(topo.graph.nodes) == ["n1", "n2", "n10"]
    assert topo.node_sites == ("n1", "n2", "n10")
    assert list(topo.graph.edges) == [("n1", "n2"), ("n1", "n10"), ("n2", "n10")]
    assert isinstance(topo.graph.edges["n1", "n2"]["latency_s"], float)
    graph.add_edge("n1", "n3", latency_s=1, bandwidth_Bps=2)  # the topology kept its own copy
    assert "n3" not in topo.graph


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(node_sites=("a", "zz")), r"node_sites\[1\]"),
        (dict(node_sites=()), "node_sites"),
        (dict(node_sites=("a", "b"), uplink_Bps=(1e6,)), "uplink_Bps"),
        (dict(node_sites=("a",), downlink_Bps=(0.0,)), r"downlink_Bps\[0\]"),
        (dict(node_sites=("a",), access_latency_s=(-1.0,)), r"access_latency_s\[0\]"),
        (dict(node_sites=("a",), routing="fastest"), "routing"),
    ],
)
def test_topology_fields_are_checked(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Topology(graph=two_sites(latency_s=0.01, bandwidth_Bps=1e6), **kwargs)


def test_none_overrides_mean_scenario_default():
    topo = Topology(
        graph=two_sites(latency_s=0.01, bandwidth_Bps=1e6),
        node_sites=("a", "b"),
        uplink_Bps=(None, 5e6),
    )
    assert topo.uplink_Bps == (None, 5e6)


def test_to_edgelist_refuses_what_the_format_cannot_hold(tmp_path):
    from topologies import residential

    path = tmp_path / "core.csv"
    with pytest.raises(ValueError, match="local_bandwidth_Bps"):
        to_edgelist(residential(2, seed=0), path)  # the core has a latency but no bandwidth
    assert not path.exists()  # nothing half-written


def test_infinite_bandwidth_means_unlimited():
    topo = from_graph(two_sites(latency_s=0.0, bandwidth_Bps=float("inf")))
    assert topo.graph.edges["a", "b"]["bandwidth_Bps"] == float("inf")
