"""Network topologies: where nodes sit and the links between sites.

Every builder is a pure function returning a :class:`Topology` (a networkx graph of sites with
``latency_s`` / ``bandwidth_Bps`` link attributes, plus each node's site). Random ones take
``seed=``. See docs/topologies.md.
"""

from topologies.datacenter import clusters_of_clusters
from topologies.edgelist import from_edgelist, to_edgelist
from topologies.gcp import gcp_link, gcp_region_names, gcp_regions
from topologies.presets import PRESETS, get_topology
from topologies.residential import residential
from topologies.shapes import random_regular, ring, star, torus_2d, uniform
from topologies.topology import ROUTINGS, Topology, from_graph, place_round_robin

__all__ = [
    "PRESETS",
    "ROUTINGS",
    "Topology",
    "clusters_of_clusters",
    "from_edgelist",
    "from_graph",
    "gcp_link",
    "gcp_region_names",
    "gcp_regions",
    "get_topology",
    "place_round_robin",
    "random_regular",
    "residential",
    "ring",
    "star",
    "to_edgelist",
    "torus_2d",
    "uniform",
]
