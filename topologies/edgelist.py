"""Read and write a topology's graph as a CSV edge list.

Format (SI units; lines starting with ``#`` and blank lines are ignored)::

    site_a,site_b,latency_s,bandwidth_Bps
    Belgium,Canada,0.041,21362500.0
    Belgium,Belgium,0.001,2147483648.0

The header row names the columns: the first two are the endpoints, then ``latency_s`` and
``bandwidth_Bps`` are required; any further columns become extra numeric edge attributes. A row
whose two endpoints are the same site sets that site's local link instead (its vertex
attributes ``local_latency_s`` and ``local_bandwidth_Bps``). Node placement is not part of the
file: by default one node sits at each site.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import networkx as nx

from topologies.topology import Topology, from_graph

REQUIRED_COLUMNS = ("latency_s", "bandwidth_Bps")


def from_edgelist(
    path: str | os.PathLike[str],
    node_sites: Sequence[str] | None = None,
    *,
    routing: str = "min_latency",
) -> Topology:
    """Load a topology from a CSV edge list (see the module docstring for the format).

    Parameters
    ----------
    path:
        The CSV file.
    node_sites:
        Site of each node; ``None``: one node per site, in natural order of the names.
    routing:
        As in :class:`~topologies.topology.Topology`.

    Raises
    ------
    ValueError
        If the file does not exist, lacks a required column, has an empty or non-numeric cell
        (the message names the line, the edge and the attribute), or lists an edge twice.
    """
    if not os.path.isfile(path):
        raise ValueError(f"path: edge-list file {os.fspath(path)!r} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        lines = [(n, line) for n, line in enumerate(f, start=1) if _is_data(line)]
    if not lines:
        raise ValueError(f"{os.fspath(path)}: empty; expected a header row and edges")
    rows = list(csv.reader([line for _, line in lines]))
    header = [name.strip() for name in rows[0]]
    where = f"{os.fspath(path)}:{lines[0][0]}"
    if len(header) < 4:
        raise ValueError(
            f"{where}: header {header} has {len(header)} columns; expected two endpoint "
            f"columns then {list(REQUIRED_COLUMNS)}"
        )
    for column in REQUIRED_COLUMNS:
        if column not in header[2:]:
            raise ValueError(f"{where}: header {header} is missing the column {column!r}")
    attr_names = header[2:]
    graph = nx.Graph()
    for (line_number, _), row in zip(lines[1:], rows[1:]):
        where = f"{os.fspath(path)}:{line_number}"
        if len(row) != len(header):
            raise ValueError(f"{where}: {len(row)} cells; the header has {len(header)}")
        a, b = row[0].strip(), row[1].strip()
        if not a or not b:
            raise ValueError(f"{where}: empty site name in {row}")
        attrs = {}
        for name, cell in zip(attr_names, row[2:]):
            cell = cell.strip()
            if not cell and a == b and name not in REQUIRED_COLUMNS:
                continue  # extra edge attributes do not apply to a site's local link
            if not cell:
                raise ValueError(f"{where}: edge ({a!r}, {b!r}) is missing attribute {name!r}")
            try:
                attrs[name] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{where}: edge ({a!r}, {b!r}) attribute {name!r}: got {cell!r}; "
                    f"allowed: a number"
                ) from None
        if a == b:
            if "local_latency_s" in graph.nodes.get(a, {}):
                raise ValueError(f"{where}: local link of site {a!r} given twice")
            graph.add_node(
                a, local_latency_s=attrs["latency_s"], local_bandwidth_Bps=attrs["bandwidth_Bps"]
            )
            continue
        if graph.has_edge(a, b):
            raise ValueError(f"{where}: edge ({a!r}, {b!r}) given twice")
        graph.add_edge(a, b, **attrs)
    return from_graph(graph, node_sites, routing=routing, name=os.path.basename(path))


def to_edgelist(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Write ``topology.graph`` as a CSV edge list that :func:`from_edgelist` reads back.

    Sites' local links become rows with equal endpoints. A site's local link needs both
    ``local_latency_s`` and ``local_bandwidth_Bps`` to be written; a site with only one of the two
    (e.g. the residential core) cannot be expressed in this format and raises ``ValueError``, as
    do isolated sites that have no edge and no local link.
    """
    graph = topology.graph
    extra = sorted({k for _, _, d in graph.edges(data=True) for k in d} - set(REQUIRED_COLUMNS))
    rows = [["site_a", "site_b", *REQUIRED_COLUMNS, *extra]]
    for site, attrs in graph.nodes(data=True):
        has = [k in attrs for k in ("local_latency_s", "local_bandwidth_Bps")]
        if any(has) and not all(has):
            raise ValueError(
                f"site {site!r}: has only one of local_latency_s / local_bandwidth_Bps; "
                f"the edge-list format needs both"
            )
        if all(has):
            local = [attrs["local_latency_s"], attrs["local_bandwidth_Bps"]]
            rows.append([site, site, *(repr(float(x)) for x in local)] + [""] * len(extra))
        elif graph.degree(site) == 0:
            raise ValueError(f"site {site!r}: no edge and no local link to write")
    for a, b, attrs in graph.edges(data=True):
        cells = []
        for k in (*REQUIRED_COLUMNS, *extra):
            if k not in attrs or not isinstance(attrs[k], (int, float)):
                raise ValueError(
                    f"edge ({a!r}, {b!r}): attribute {k!r} is {attrs.get(k)!r}; the "
                    f"edge-list format needs a number on every edge"
                )
            cells.append(repr(float(attrs[k])))
        rows.append([a, b, *cells])
    # Write only once every row is known, so an error never leaves half a file behind.
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _is_data(line: str) -> bool:
    """Return True for a line that is neither blank nor a ``#`` comment."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")
