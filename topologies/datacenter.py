"""Data centres, each a fast switched cluster, joined pairwise over a slow WAN."""

from __future__ import annotations

import networkx as nx

from dtsim_errors import FieldError
from topologies.shapes import node_site
from topologies.topology import (
    Topology,
    check_bandwidth,
    check_non_negative,
    check_num_nodes,
    from_graph,
)


def cluster_site(k: int) -> str:
    """Return the site name of data centre ``k``'s core switch."""
    return f"dc{k}"


def cluster_of_node(i: int, *, num_nodes: int, num_clusters: int) -> int:
    """Return the data centre of node ``i``: contiguous blocks whose sizes differ by at most 1."""
    return i * num_clusters // num_nodes


def clusters_of_clusters(
    num_nodes: int,
    *,
    num_clusters: int,
    intra_latency_s: float,
    intra_bandwidth_Bps: float,
    wan_latency_s: float,
    wan_bandwidth_Bps: float,
) -> Topology:
    """Join ``num_clusters`` data centres, each with a core switch, by a full mesh of WAN links.

    Node ``i`` is its own site ``"n{i}"``, linked to the core switch ``"dc{k}"`` of its data
    centre ``k = i * num_clusters // num_nodes`` (contiguous blocks, sizes differing by at most
    one). Each node-core link carries half of ``intra_latency_s``, so two nodes of one data
    centre are ``intra_latency_s`` apart, and two nodes of different data centres
    ``intra_latency_s + wan_latency_s``. The cores are non-blocking; the WAN link between two
    data centres is shared by every flow between them.

    Edges: ``num_nodes + num_clusters * (num_clusters - 1) / 2``.

    Parameters
    ----------
    num_nodes:
        Number of nodes, >= ``num_clusters``.
    num_clusters:
        Number of data centres, >= 1.
    intra_latency_s:
        One-way node-to-node latency inside a data centre, seconds.
    intra_bandwidth_Bps:
        Bandwidth of each node-core link per direction, bytes/s.
    wan_latency_s:
        One-way latency of each core-core WAN link, seconds.
    wan_bandwidth_Bps:
        Bandwidth of each WAN link per direction, bytes/s.
    """
    check_num_nodes(num_nodes)
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
        raise FieldError("num_clusters", f"got {num_clusters!r}; allowed: an int >= 1")
    if num_clusters > num_nodes:
        raise FieldError(
            "num_clusters", f"got {num_clusters} for {num_nodes} nodes; allowed: <= num_nodes"
        )
    check_non_negative("intra_latency_s", intra_latency_s)
    check_bandwidth("intra_bandwidth_Bps", intra_bandwidth_Bps)
    check_non_negative("wan_latency_s", wan_latency_s)
    check_bandwidth("wan_bandwidth_Bps", wan_bandwidth_Bps)
    graph = nx.Graph()
    for k in range(num_clusters):
        graph.add_node(cluster_site(k))
    for i in range(num_nodes):
        k = cluster_of_node(i, num_nodes=num_nodes, num_clusters=num_clusters)
        graph.add_edge(
            node_site(i),
            cluster_site(k),
            latency_s=intra_latency_s / 2,
            bandwidth_Bps=intra_bandwidth_Bps,
        )
    for a in range(num_clusters):
        for b in range(a + 1, num_clusters):
            graph.add_edge(
                cluster_site(a),
                cluster_site(b),
                latency_s=wan_latency_s,
                bandwidth_Bps=wan_bandwidth_Bps,
            )
    node_sites = tuple(node_site(i) for i in range(num_nodes))
    return from_graph(
        graph, node_sites, name=f"clusters-of-clusters({num_nodes}, {num_clusters} DCs)"
    )
