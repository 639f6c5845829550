"""Star, ring, torus, random regular and uniform against their closed forms."""

import itertools

import networkx as nx
import pytest

from topologies import random_regular, ring, star, torus_2d, uniform

LINK = dict(latency_s=0.01, bandwidth_Bps=1e8)


def bisection_bandwidth_Bps(graph: nx.Graph) -> float:
    """Brute force: the smallest total bandwidth cut by splitting the vertices in two halves."""
    sites = list(graph.nodes)
    first, rest = sites[0], sites[1:]
    best = float("inf")
    for half in itertools.combinations(rest, len(sites) // 2 - 1):
        side = {first, *half}
        best = min(best, nx.cut_size(graph, side, weight="bandwidth_Bps"))
    return best


@pytest.mark.parametrize("n", [3, 4, 7, 10])
def test_ring_edges_degree_and_diameter(n):
    topo = ring(n, **LINK)
    assert topo.graph.number_of_edges() == n
    assert {d for _, d in topo.graph.degree} == {2}
    assert nx.diameter(topo.graph) == n // 2
    assert topo.num_nodes() == n
    assert topo.node_sites == tuple(f"n{i}" for i in range(n))


@pytest.mark.parametrize("n", [4, 8, 10])
def test_ring_bisection_is_two_links(n):
    topo = ring(n, **LINK)
    closed_form = 2 * LINK["bandwidth_Bps"]
    assert bisection_bandwidth_Bps(topo.graph) == pytest.approx(closed_form)
    # Max-flow min-cut between antipodal nodes gives the same two links.
    cut_value, _ = nx.minimum_cut(topo.graph, "n0", f"n{n // 2}", capacity="bandwidth_Bps")
    assert cut_value == pytest.approx(closed_form)


@pytest.mark.parametrize("rows,cols", [(3, 3), (3, 4), (4, 4), (5, 3)])
def test_torus_edges_degree_and_diameter(rows, cols):
    topo = torus_2d(rows, cols, **LINK)
    assert topo.graph.number_of_edges() == 2 * rows * cols
    assert {d for _, d in topo.graph.degree} == {4}
    assert nx.diameter(topo.graph) == rows // 2 + cols // 2
    assert topo.num_nodes() == rows * cols


def test_torus_layout_is_row_major():
    topo = torus_2d(3, 4, **LINK)
    # Node 5 is row 1, col 1: neighbours at (1,0)=4, (1,2)=6, (0,1)=1, (2,1)=9.
    assert sorted(topo.graph.neighbors("n5"), key=lambda s: int(s[1:])) == ["n1", "n4", "n6", "n9"]
    # Wrap-around: node 0 touches (0,3)=3 and (2,0)=8.
    assert topo.graph.has_edge("n0", "n3") and topo.graph.has_edge("n0", "n8")


@pytest.mark.parametrize("rows,cols", [(2, 3), (1, 5), (2, 2), (1, 2)])
def test_torus_small_dimensions_merge_links(rows, cols):
    def links_along(k):
        return k if k >= 3 else (1 if k == 2 else 0)

    expected = rows * links_along(cols) + cols * links_along(rows)
    assert torus_2d(rows, cols, **LINK).graph.number_of_edges() == expected


def test_torus_bisection_closed_form():
    # Cutting a 4x4 torus in two 4x2 halves cuts 2 * 4 wrap and direct links.
    topo = torus_2d(4, 4, **LINK)
    assert bisection_bandwidth_Bps(topo.graph) == pytest.approx(8 * LINK["bandwidth_Bps"])


@pytest.mark.parametrize("n,d", [(10, 3), (12, 4), (20, 5), (9, 2)])
def test_random_regular_edges_and_degrees(n, d):
    topo = random_regular(n, degree=d, seed=3, **LINK)
    assert topo.graph.number_of_edges() == n * d // 2
    assert {deg for _, deg in topo.graph.degree} == {d}
    assert nx.is_connected(topo.graph)


def test_random_regular_is_a_function_of_its_seed():
    a = random_regular(16, degree=3, seed=11, **LINK)
    b = random_regular(16, degree=3, seed=11, **LINK)
    c = random_regular(16, degree=3, seed=12, **LINK)
    assert list(a.graph.edges(data=True)) == list(b.graph.edges(data=True))
    assert set(a.graph.edges) != set(c.graph.edges)


@pytest.mark.parametrize(
    "kwargs,field",
    [(dict(num_nodes=7, degree=3), "degree"), (dict(num_nodes=5, degree=5), "degree")],
)
def test_random_regular_rejects_impossible_degree(kwargs, field):
    with pytest.raises(ValueError, match=field):
        random_regular(seed=0, **LINK, **kwargs)


def test_star_has_an_empty_switch_in_the_middle():
    topo = star(6, **LINK)
    assert topo.graph.number_of_edges() == 6
    assert topo.graph.degree["switch"] == 6
    assert topo.nodes_at("switch") == ()
    assert "switch" not in topo.node_sites
    latency = nx.shortest_path_length(topo.graph, "n0", "n5", weight="latency_s")
    assert latency == pytest.approx(2 * LINK["latency_s"])


def test_uniform_is_alpha_beta_between_any_two_nodes():
    topo = uniform(5, latency_s=0.004, bandwidth_Bps=3e7)
    for a, b in itertools.combinations(topo.node_sites, 2):
        path = nx.shortest_path(topo.graph, a, b, weight="latency_s")
        latency = nx.path_weight(topo.graph, path, weight="latency_s")
        bottleneck = min(
            topo.graph.edges[u, v]["bandwidth_Bps"] for u, v in nx.utils.pairwise(path)
        )
        assert latency == pytest.approx(0.004)
        assert bottleneck == 3e7


@pytest.mark.parametrize("builder", [star, ring, uniform])
def test_link_parameters_reach_every_edge(builder):
    topo = builder(5, latency_s=0.02, bandwidth_Bps=7e6)
    scale = 0.5 if builder is uniform else 1.0
    for _, _, attrs in topo.graph.edges(data=True):
        assert attrs["latency_s"] == pytest.approx(0.02 * scale)
        assert attrs["bandwidth_Bps"] == 7e6


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda: ring(2, **LINK), "num_nodes"),
        (lambda: star(0, **LINK), "num_nodes"),
        (lambda: ring(4, latency_s=-1.0, bandwidth_Bps=1e8), "latency_s"),
        (lambda: star(4, latency_s=0.01, bandwidth_Bps=0), "bandwidth_Bps"),
        (lambda: torus_2d(0, 3, **LINK), "rows"),
        (lambda: torus_2d(1, 1, **LINK), "rows \\* cols"),
    ],
)
def test_bad_parameters_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_graph_is_frozen():
    with pytest.raises(nx.NetworkXError):
        ring(4, **LINK).graph.add_edge("n0", "n2", latency_s=1.0, bandwidth_Bps=1.0)


def test_uniform_defaults_to_a_free_switch():
    # The scenario default ("uniform" with no parameters): the access links decide everything.
    topo = uniform(4)
    for _, _, attrs in topo.graph.edges(data=True):
        assert attrs == {"latency_s": 0.0, "bandwidth_Bps": float("inf")}
