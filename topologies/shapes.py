"""Textbook shapes where every node is its own site: star, ring, 2-D torus, random regular, uniform.

Node ``i`` sits at site ``"n{i}"``; the graph edges are the physical links, all with the same
``latency_s`` (one-way, seconds) and ``bandwidth_Bps`` (bytes/s per direction). Star and uniform
add one ``"switch"`` vertex with no node attached.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from dtsim_errors import FieldError
from topologies.topology import (
    Topology,
    check_bandwidth,
    check_non_negative,
    check_num_nodes,
    from_graph,
)

#: Tries at drawing a connected random regular graph before giving up.
MAX_REGULAR_DRAWS = 100


def node_site(i: int) -> str:
    """Return the site name of node ``i`` in the shapes where each node is its own site."""
    return f"n{i}"


def star(num_nodes: int, *, latency_s: float, bandwidth_Bps: float) -> Topology:
    """Link every node to one central ``"switch"`` vertex.

    ``num_nodes`` edges; a transfer between two nodes crosses two links (latency ``2 * latency_s``).

    Parameters
    ----------
    num_nodes:
        Number of nodes (leaves), >= 1.
    latency_s, bandwidth_Bps:
        One-way latency (s) and per-direction bandwidth (bytes/s) of each node-switch link.
    """
    check_num_nodes(num_nodes)
    graph = _sites_graph(num_nodes)
    for i in range(num_nodes):
        _link(graph, node_site(i), "switch", latency_s, bandwidth_Bps)
    return _per_node(graph, num_nodes, f"star({num_nodes})")


def uniform(num_nodes: int, *, latency_s: float = 0.0, bandwidth_Bps: float = math.inf) -> Topology:
    """Put every node at its own site behind one ideal (non-blocking) switch.

    Any two nodes are ``latency_s`` apart with ``bandwidth_Bps`` between them: the alpha-beta
    model (alpha = ``latency_s``, beta = ``bandwidth_Bps``). Each node-switch link carries half
    the latency, so a two-link path adds up to ``latency_s``. Because the switch is non-blocking,
    a node's sends share only its own link, as the closed forms of ring collectives assume.
    With the defaults (0 s, ``inf``) the switch is free and the scenario's access links decide
    everything.

    Parameters
    ----------
    num_nodes:
        Number of nodes, >= 1.
    latency_s:
        One-way node-to-node latency, seconds (default 0).
    bandwidth_Bps:
        Node-to-node bandwidth per direction, bytes/s (default ``inf``: no limit).
    """
    check_num_nodes(num_nodes)
    check_non_negative("latency_s", latency_s)
    graph = _sites_graph(num_nodes)
    for i in range(num_nodes):
        _link(graph, node_site(i), "switch", latency_s / 2, bandwidth_Bps)
    return _per_node(graph, num_nodes, f"uniform({num_nodes})")


def ring(num_nodes: int, *, latency_s: float, bandwidth_Bps: float) -> Topology:
    """Link node ``i`` to nodes ``i - 1`` and ``i + 1`` (mod ``num_nodes``).

    ``num_nodes`` edges, diameter ``num_nodes // 2`` hops, bisection 2 links.

    Parameters
    ----------
    num_nodes:
        Number of nodes, >= 3 (with 2 the two ring links would be the same edge).
    latency_s, bandwidth_Bps:
        One-way latency (s) and per-direction bandwidth (bytes/s) of each link.
    """
    check_num_nodes(num_nodes, minimum=3)
    graph = _sites_graph(num_nodes)
    for i in range(num_nodes):
        _link(graph, node_site(i), node_site((i + 1) % num_nodes), latency_s, bandwidth_Bps)
    return _per_node(graph, num_nodes, f"ring({num_nodes})")


def torus_2d(rows: int, cols: int, *, latency_s: float, bandwidth_Bps: float) -> Topology:
    """Build a ``rows x cols`` grid with wrap-around links (node ``i`` at ``divmod(i, cols)``).

    For ``rows, cols >= 3``: ``2 * rows * cols`` edges, degree 4, diameter
    ``rows // 2 + cols // 2`` hops. A dimension of 2 has one link per pair (the wrap-around link
    is the same edge); a dimension of 1 has none.

    Parameters
    ----------
    rows, cols:
        Grid size, each >= 1, with ``rows * cols >= 2``; ``rows * cols`` nodes.
    latency_s, bandwidth_Bps:
        One-way latency (s) and per-direction bandwidth (bytes/s) of each link.
    """
    for field_name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FieldError(field_name, f"got {value!r}; allowed: an int >= 1")
    num_nodes = rows * cols
    if num_nodes < 2:
        raise ValueError(f"rows * cols: got {num_nodes}; allowed: >= 2 nodes")
    graph = _sites_graph(num_nodes)
    for r in range(rows):
        for c in range(cols):
            here = node_site(r * cols + c)
            if cols > 1:
                _link(graph, here, node_site(r * cols + (c + 1) % cols), latency_s, bandwidth_Bps)
            if rows > 1:
                _link(graph, here, node_site(((r + 1) % rows) * cols + c), latency_s, bandwidth_Bps)
    return _per_node(graph, num_nodes, f"torus-2d({rows}x{cols})")


def random_regular(
    num_nodes: int,
    *,
    degree: int,
    seed: int | np.random.Generator | None = None,
    latency_s: float,
    bandwidth_Bps: float,
) -> Topology:
    """Draw a connected random graph in which every node has ``degree`` links.

    ``num_nodes * degree / 2`` edges. Drawn with networkx's ``random_regular_graph`` from the
    numpy generator built from ``seed``, redrawn (up to 100 times) until connected.

    Parameters
    ----------
    num_nodes:
        Number of nodes, >= 3; ``num_nodes * degree`` must be even.
    degree:
        Links per node, ``2 <= degree < num_nodes`` (degree 2 is a union of cycles and is rarely
        connected for many nodes; prefer 3 or more).
    seed:
        Seed or ``numpy.random.Generator``; the same seed gives the same graph.
    latency_s, bandwidth_Bps:
        One-way latency (s) and per-direction bandwidth (bytes/s) of each link.
    """
    check_num_nodes(num_nodes, minimum=3)
    if isinstance(degree, bool) or not isinstance(degree, int) or not 2 <= degree < num_nodes:
        raise FieldError("degree", f"got {degree!r}; allowed: an int with 2 <= degree < num_nodes")
    if num_nodes * degree % 2:
        raise FieldError(
            "degree", f"got {degree} with num_nodes={num_nodes}; allowed: num_nodes * degree even"
        )
    check_non_negative("latency_s", latency_s)
    check_bandwidth("bandwidth_Bps", bandwidth_Bps)
    rng = np.random.default_rng(seed)
    for _ in range(MAX_REGULAR_DRAWS):
        drawn = nx.random_regular_graph(degree, num_nodes, seed=rng)
        if nx.is_connected(drawn):
            break
    else:
        raise FieldError(
            "degree", f"no connected {degree}-regular graph on {num_nodes} nodes in "
            f"{MAX_REGULAR_DRAWS} draws; allowed: a larger degree"
        )
    graph = _sites_graph(num_nodes)
    for u, v in sorted(tuple(sorted(e)) for e in drawn.edges):
        _link(graph, node_site(u), node_site(v), latency_s, bandwidth_Bps)
    return _per_node(graph, num_nodes, f"random-regular({num_nodes}, d={degree})")


def _sites_graph(num_nodes: int) -> nx.Graph:
    """Return a graph with the vertices ``n0 .. n{num_nodes-1}``."""
    graph = nx.Graph()
    graph.add_nodes_from(node_site(i) for i in range(num_nodes))
    return graph


def _link(graph: nx.Graph, a: str, b: str, latency_s: float, bandwidth_Bps: float) -> None:
    """Add the link ``a - b`` after checking its numbers."""
    check_non_negative("latency_s", latency_s)
    check_bandwidth("bandwidth_Bps", bandwidth_Bps)
    graph.add_edge(a, b, latency_s=latency_s, bandwidth_Bps=bandwidth_Bps)


def _per_node(graph: nx.Graph, num_nodes: int, name: str) -> Topology:
    """Wrap a shape graph with node ``i`` at site ``n{i}``."""
    return from_graph(graph, tuple(node_site(i) for i in range(num_nodes)), name=name)
