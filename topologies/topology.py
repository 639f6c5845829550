"""The Topology record: where nodes sit and the links between sites.

A topology is a graph of *sites* (regions, data-centre switches, or single machines) joined by
links, plus the site each simulated node attaches to. It holds numbers only; the engine
(``sim.network``) turns it into links and flows.

Conventions (SI units everywhere)
---------------------------------
* Vertices are ``str`` site names, inserted in natural order (``"n2"`` before ``"n10"``) so that
  iterating over the graph is the same on every machine and every run.
* Edge attributes: ``latency_s`` (one-way latency, seconds) and ``bandwidth_Bps`` (bytes per
  second in *each* direction; links are full duplex; ``inf`` means no limit).
* Optional vertex attributes ``local_latency_s`` and ``local_bandwidth_Bps``: the cost between two
  nodes attached to the same site (e.g. two machines in one cloud region). An absent attribute
  means no cost of that kind.
* Node ``i`` attaches to site ``node_sites[i]`` through its own access links (an uplink and a
  downlink). Their bandwidths default to the scenario's; ``uplink_Bps`` / ``downlink_Bps`` /
  ``access_latency_s`` override them per node.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from dtsim_errors import FieldError

#: How a transfer between two sites chooses its path (see ``Topology.routing``).
ROUTINGS = ("min_latency", "direct")


@dataclass(frozen=True, kw_only=True)
class Topology:
    """Sites, the links between them, and the site of every node.

    Attributes
    ----------
    graph:
        Undirected, connected ``networkx.Graph`` whose vertices are ``str`` site names. Every edge
        carries ``latency_s`` (one-way, seconds) and ``bandwidth_Bps`` (bytes/s per direction).
        A vertex may carry ``local_latency_s`` (seconds) and ``local_bandwidth_Bps`` (bytes/s),
        the cost of a transfer between two nodes of that site.
    node_sites:
        ``node_sites[i]`` is the site (graph vertex) node ``i`` attaches to.
    uplink_Bps, downlink_Bps:
        Per-node access bandwidth overrides in bytes/s; ``None`` (whole tuple or one entry) means
        "use the scenario's default access bandwidth".
    access_latency_s:
        Per-node one-way latency of the access link, seconds, paid once when the node sends and
        once when it receives; ``None`` means the scenario's default.
    routing:
        ``"min_latency"``: a transfer between sites follows the minimum-latency path in
        ``graph`` (ties broken by the natural order of site names). ``"direct"``: it uses the
        edge joining the two sites, which must exist for every pair of sites hosting nodes; this
        is how measured pairwise tables (``gcp_regions``) are meant to be read, since measured
        latencies need not obey the triangle inequality.
    name:
        Human-readable label, e.g. ``"ring(8)"``.
    """

    graph: nx.Graph
    node_sites: tuple[str, ...]
    uplink_Bps: tuple[float | None, ...] | None = None
    downlink_Bps: tuple[float | None, ...] | None = None
    access_latency_s: tuple[float, ...] | None = None
    routing: str = "min_latency"
    name: str = ""

    def __post_init__(self) -> None:
        """Check the record; raises ``ValueError`` naming the bad field and value."""
        validate_graph(self.graph)
        if len(self.node_sites) == 0:
            raise ValueError("node_sites: a topology needs at least one node, got 0")
        for i, site in enumerate(self.node_sites):
            if site not in self.graph:
                raise ValueError(
                    f"node_sites[{i}]: site {site!r} is not a vertex of the graph; "
                    f"allowed: {sorted_sites(self.graph.nodes)}"
                )
        n = len(self.node_sites)
        for field_name in ("uplink_Bps", "downlink_Bps"):
            values = getattr(self, field_name)
            if values is None:
                continue
            _check_length(field_name, values, n)
            for i, value in enumerate(values):
                if value is not None:
                    check_bandwidth(f"{field_name}[{i}]", value)
        if self.access_latency_s is not None:
            _check_length("access_latency_s", self.access_latency_s, n)
            for i, value in enumerate(self.access_latency_s):
                check_non_negative(f"access_latency_s[{i}]", value)
        if self.routing not in ROUTINGS:
            raise FieldError("routing", f"got {self.routing!r}; allowed: {list(ROUTINGS)}")
        if self.routing == "direct":
            hosts = sorted_sites(set(self.node_sites))
            for a_index, a in enumerate(hosts):
                for b in hosts[a_index + 1 :]:
                    if not self.graph.has_edge(a, b):
                        raise ValueError(
                            f"routing: 'direct' needs an edge between every two sites hosting "
                            f"nodes, but ({a!r}, {b!r}) has none; use 'min_latency'"
                        )

    def num_nodes(self) -> int:
        """Return the number of simulated nodes."""
        return len(self.node_sites)

    def nodes_at(self, site: str) -> tuple[int, ...]:
        """Return the ids of the nodes attached to ``site``, in increasing order."""
        return tuple(i for i, s in enumerate(self.node_sites) if s == site)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``"n2"`` before ``"n10"`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def sorted_sites(sites: Any) -> list[str]:
    """Return site names in natural order (the order every graph here is built in)."""
    return sorted(sites, key=natural_key)


def validate_graph(graph: nx.Graph) -> None:
    """Check that ``graph`` is a valid site graph; raise ``ValueError`` otherwise.

    The message names the edge (or vertex) and the attribute at fault.
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise ValueError(
            f"graph: expected an undirected networkx.Graph, got {type(graph).__name__}"
        )
    if graph.number_of_nodes() == 0:
        raise ValueError("graph: has no vertices; a topology needs at least one site")
    for site in graph.nodes:
        if not isinstance(site, str):
            raise ValueError(
                f"graph: vertex {site!r} is a {type(site).__name__}; site names must be str "
                f"(relabel with networkx.relabel_nodes)"
            )
    for u, v, attrs in graph.edges(data=True):
        if u == v:
            raise ValueError(
                f"graph: self-loop on {u!r}; give a site's own cost as vertex attributes "
                f"local_latency_s / local_bandwidth_Bps"
            )
        edge = f"edge ({u!r}, {v!r})"
        for attr in ("latency_s", "bandwidth_Bps"):
            if attr not in attrs:
                raise ValueError(f"{edge}: missing attribute {attr!r}")
        check_non_negative(f"{edge} latency_s", attrs["latency_s"])
        check_bandwidth(f"{edge} bandwidth_Bps", attrs["bandwidth_Bps"])
    for site, attrs in graph.nodes(data=True):
        if "local_latency_s" in attrs:
            check_non_negative(f"site {site!r} local_latency_s", attrs["local_latency_s"])
        if "local_bandwidth_Bps" in attrs:
            check_bandwidth(f"site {site!r} local_bandwidth_Bps", attrs["local_bandwidth_Bps"])
    if not nx.is_connected(graph):
        components = [sorted_sites(c) for c in nx.connected_components(graph)]
        components.sort(key=lambda c: natural_key(c[0]))
        raise ValueError(
            f"graph: not connected; every site must reach every other. Components: {components}"
        )


def from_graph(
    graph: nx.Graph,
    node_sites: Sequence[str] | None = None,
    *,
    uplink_Bps: Sequence[float | None] | None = None,
    downlink_Bps: Sequence[float | None] | None = None,
    access_latency_s: Sequence[float] | None = None,
    routing: str = "min_latency",
    name: str = "",
) -> Topology:
    """Build a ``Topology`` from any networkx graph with link attributes.

    The graph is validated, copied with vertices and edges in natural order and with attribute
    values as ``float``, and frozen (so a topology cannot change under a running simulation).

    Parameters
    ----------
    graph:
        Undirected graph with ``str`` vertices; each edge needs ``latency_s`` (s) and
        ``bandwidth_Bps`` (bytes/s). Other edge and vertex attributes are kept.
    node_sites:
        Site of each node. ``None``: one node per vertex, in natural order of the names.
    uplink_Bps, downlink_Bps, access_latency_s, routing, name:
        As in :class:`Topology`.
    """
    validate_graph(graph)
    ordered = nx.Graph(**graph.graph)
    for site in sorted_sites(graph.nodes):
        ordered.add_node(site, **_floats(graph.nodes[site]))
    edges = [(u, v) if natural_key(u) <= natural_key(v) else (v, u) for u, v in graph.edges]
    edges.sort(key=lambda e: (natural_key(e[0]), natural_key(e[1])))
    for u, v in edges:
        ordered.add_edge(u, v, **_floats(graph.edges[u, v]))
    nx.freeze(ordered)
    if node_sites is None:
        node_sites = list(ordered.nodes)
    return Topology(
        graph=ordered,
        node_sites=tuple(node_sites),
        uplink_Bps=None if uplink_Bps is None else tuple(uplink_Bps),
        downlink_Bps=None if downlink_Bps is None else tuple(downlink_Bps),
        access_latency_s=None if access_latency_s is None else tuple(access_latency_s),
        routing=routing,
        name=name,
    )


def place_round_robin(sites: Sequence[str], num_nodes: int) -> tuple[str, ...]:
    """Place node ``i`` at ``sites[i % len(sites)]``."""
    check_num_nodes(num_nodes)
    return tuple(sites[i % len(sites)] for i in range(num_nodes))


def check_num_nodes(num_nodes: int, *, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``num_nodes`` is an int of at least ``minimum``."""
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < minimum:
        raise FieldError("num_nodes", f"got {num_nodes!r}; allowed: an int >= {minimum}")


def _floats(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Copy attributes, turning numbers into ``float`` (numpy scalars included)."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = float(value.item())
        out[key] = value
    return out


def _is_real(value: Any) -> bool:
    """Return True for a real number that is not a bool."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        or (hasattr(value, "item") and getattr(value, "ndim", None) == 0)
    )


def check_bandwidth(field_name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a bandwidth: a number > 0, ``inf`` = unlimited."""
    if not _is_real(value) or math.isnan(float(value)) or float(value) <= 0:
        raise FieldError(field_name, f"got {value!r}; allowed: a number > 0 (inf = unlimited)")


def check_non_negative(field_name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise FieldError(field_name, f"got {value!r}; allowed: a finite number >= 0")


def _check_length(field_name: str, values: Sequence[Any], num_nodes: int) -> None:
    """Raise ``ValueError`` unless there is one value per node."""
    if len(values) != num_nodes:
        raise ValueError(
            f"{field_name}: got {len(values)} values; allowed: one per node ({num_nodes})"
        )
