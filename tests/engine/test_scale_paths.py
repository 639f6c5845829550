"""The shortcuts that make 1,000-node runs fast give the same answers as the plain way.

- Routing from a leaf site (one neighbour) through its hub: every route equals the one an
  independent per-source Dijkstra over the whole site graph finds (same links, same latency),
  on every preset shape and on random graphs with leaves and random latencies, before and after
  links go down; and routing all pairs of a star runs one shortest-path search, not one per node.
- A finished collective stops listening for its members' failures, so a long run does not keep
  every collective it ever ran alive.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import sim.network.base as base
from sim import collectives
from sim.config import NetworkConfig
from sim.errors import CollectiveAborted
from sim.world import World
from topologies import (
    clusters_of_clusters,
    from_graph,
    random_regular,
    residential,
    ring,
    star,
    uniform,
)


def oracle_route(net, src: int, dst: int):
    """Links and latency of the min-latency route from one Dijkstra per *node* (the old way)."""
    graph, sites = net.graph, net.node_sites
    a, b = sites[src], sites[dst]
    index = {name: i for i, name in enumerate(net.link_names)}
    if a == b:
        core = [index[f"local:{a}"]] if f"local:{a}" in index else []
    else:
        def weight(u, v, _attrs):
            link = index[f"{u}->{v}"]
            return net.link_latency_s[link] if net.link_up[link] else None

        paths = nx.single_source_dijkstra_path(graph, a, weight=weight)
        if b not in paths:
            return None
        core = [index[f"{u}->{v}"] for u, v in zip(paths[b], paths[b][1:])]
    links = [index[f"up:{src}"], *core, index[f"down:{dst}"]]
    if not all(net.link_up[x] for x in links):
        return None
    latency = (net._access_latency[src] + sum(net.link_latency_s[x] for x in core)
               + net._access_latency[dst])
    return tuple(x for x in links if net.capacity_Bps[x] < float("inf")), latency


def random_leafy_topology(seed: int, num_nodes: int = 24):
    """A random connected core of 6 sites with random latencies, nodes on leaves and on cores."""
    rng = np.random.default_rng(seed)
    core = nx.connected_watts_strogatz_graph(6, 3, 0.5, seed=seed)
    graph = nx.Graph()
    for u, v in core.edges:
        graph.add_edge(f"c{u}", f"c{v}", latency_s=float(rng.uniform(1e-3, 5e-2)),
                       bandwidth_Bps=float(rng.uniform(1e8, 1e9)))
    sites = []
    for i in range(num_nodes):
        if i % 4 == 0:  # some nodes sit on a core site itself
            sites.append(f"c{rng.integers(6)}")
        else:
            leaf = f"n{i}"
            graph.add_edge(leaf, f"c{rng.integers(6)}", latency_s=float(rng.uniform(0, 1e-2)),
                           bandwidth_Bps=float(rng.uniform(1e8, 1e10)))
            sites.append(leaf)
    return from_graph(graph, tuple(sites), name=f"leafy({seed})")


TOPOLOGIES = {
    "star": lambda: star(12, latency_s=2e-3, bandwidth_Bps=1e9),
    "uniform": lambda: uniform(12, latency_s=1e-2, bandwidth_Bps=1e9),
    "clusters": lambda: clusters_of_clusters(15, num_clusters=4, intra_latency_s=1e-3,
                                             intra_bandwidth_Bps=1e10, wan_latency_s=3e-2,
                                             wan_bandwidth_Bps=1e9),
    "residential": lambda: residential(10, seed=3),
    "ring": lambda: ring(9, latency_s=1e-3, bandwidth_Bps=1e9),
    "random-regular": lambda: random_regular(12, degree=3, latency_s=1e-3, bandwidth_Bps=1e9,
                                             seed=1),
    "leafy-0": lambda: random_leafy_topology(0),
    "leafy-1": lambda: random_leafy_topology(1),
}


def check_routes_match(net) -> None:
    n = len(net.node_sites)
    for src in range(n):
        for dst in range(n):
            if src == dst:
                continue
            got, want = net.route(src, dst), oracle_route(net, src, dst)
            if want is None:
                assert got is None, (src, dst)
            else:
                assert got[0] == want[0], (src, dst)
                assert got[1] == pytest.approx(want[1], rel=1e-12, abs=0.0), (src, dst)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_every_route_equals_a_per_node_dijkstra(name):
    world = World(TOPOLOGIES[name](), network=NetworkConfig(
        model="ideal", uplink_Bps=1e8, downlink_Bps=2e8, access_latency_s=1e-3))
    check_routes_match(world.network)


@pytest.mark.parametrize("name", ["clusters", "leafy-0", "leafy-1", "star"])
def test_routes_match_after_links_go_down(name):
    world = World(TOPOLOGIES[name](), network="maxmin")
    net = world.network
    rng = np.random.default_rng(7)
    edges = sorted(net.graph.edges)
    for k in rng.choice(len(edges), size=2, replace=False):
        u, v = edges[k]
        net.set_link_state(u, v, up=False)
        check_routes_match(net)
    u, v = edges[int(k)]
    net.set_link_state(u, v, up=True)
    check_routes_match(net)


def test_a_star_of_200_nodes_needs_one_shortest_path_search(monkeypatch):
    calls = []
    real = nx.single_source_dijkstra_path

    def counting(graph, source, **kwargs):
        calls.append(source)
        return real(graph, source, **kwargs)

    monkeypatch.setattr(base.nx, "single_source_dijkstra_path", counting)
    world = World(uniform(200, latency_s=1e-2, bandwidth_Bps=1e9), network="ideal")
    for src in range(200):
        for dst in (src + 1, src + 37, src + 101):
            world.network.route(src, dst % 200)
    assert calls == ["switch"]


def test_finished_collectives_stop_watching_member_failures():
    world = World(uniform(8, latency_s=1e-3, bandwidth_Bps=1e9), network="maxmin")

    def many():
        for _ in range(30):
            yield collectives.tree_allreduce(world, world.nodes, 1e6)
            yield collectives.ring_allreduce(world, world.nodes, 1e6)

    world.env.process(many())
    world.env.run()
    assert world.network.flows_finished > 0
    for node in world.nodes:
        assert node.failed_event().callbacks == []


def test_a_collective_still_aborts_when_a_member_fails():
    world = World(uniform(8, latency_s=1e-3, bandwidth_Bps=1e6), network="maxmin")
    outcome = []

    def run():
        try:
            yield collectives.ring_allreduce(world, world.nodes, 1e6)
            outcome.append("done")
        except CollectiveAborted as exc:
            outcome.append(exc.failed)

    def crash():
        yield world.env.timeout(0.5)
        world.nodes[3].fail()

    world.env.process(run())
    world.env.process(crash())
    world.env.run()
    assert outcome == [[3]]
    for node in world.nodes:
        callbacks = node.failed_event().callbacks
        assert callbacks is None or callbacks == []
