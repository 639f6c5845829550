"""Network faults: given links, or every link between groups of sites, down for a window.

Both are failure models (:class:`~sim.faults.failures.FailureModel`) with a fixed schedule
(one event, no random draw): :class:`LinkDown` names the links, :class:`Partition` names
groups of sites and cuts every link that joins two groups (:func:`partition_cut_links`). The
injector (:mod:`sim.faults.injector`) takes the links down and brings them back, cutting the
transfers that were crossing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sim.faults.events import FailureEvent
from sim.faults.failures import FailureModel

__all__ = ["LinkDown", "Partition", "partition_cut_links"]


class LinkDown(FailureModel):
    """Given topology links go down at ``start_s`` for ``duration_s`` (``None``: for good)."""

    def __init__(
        self, links: Sequence[Sequence[str]], start_s: float, duration_s: float | None = None
    ):
        self.links = tuple((str(u), str(v)) for u, v in links)
        if not self.links:
            raise ValueError("links must name at least one (u, v) pair of sites")
        self.start_s = float(start_s)
        self.duration_s = None if duration_s is None else float(duration_s)

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """One ``link_down`` event if it starts before the horizon."""
        if self.start_s >= horizon_s:
            return []
        return [
            FailureEvent(
                time_s=self.start_s, kind="link_down", links=self.links, duration_s=self.duration_s
            )
        ]


def partition_cut_links(
    edges: Iterable[tuple[str, str]], groups: Sequence[Sequence[str]]
) -> tuple[tuple[str, str], ...]:
    """Links joining two different groups of sites (sites in no group form one more group)."""
    group_of: dict[str, int] = {}
    for index, group in enumerate(groups):
        for site in group:
            if site in group_of:
                raise ValueError(f"partition groups: site {site!r} is in more than one group")
            group_of[site] = index
    rest = len(groups)
    cut = [
        (str(u), str(v))
        for u, v in edges
        if group_of.get(str(u), rest) != group_of.get(str(v), rest)
    ]
    return tuple(sorted(cut))


class Partition(FailureModel):
    """The network splits into groups of sites from ``start_s`` for ``duration_s``.

    With ``edges`` (the topology's links) the cut is computed here; otherwise the event carries
    the groups and the injector cuts the links of the world's topology graph.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[str]],
        start_s: float,
        duration_s: float | None = None,
        *,
        edges: Iterable[tuple[str, str]] | None = None,
    ):
        self.groups = tuple(tuple(str(site) for site in group) for group in groups)
        if len(self.groups) < 1:
            raise ValueError("partition groups must list at least one group of sites")
        self.start_s = float(start_s)
        self.duration_s = None if duration_s is None else float(duration_s)
        self.links = partition_cut_links(edges, self.groups) if edges is not None else ()

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """One ``partition`` event if it starts before the horizon."""
        if self.start_s >= horizon_s:
            return []
        return [
            FailureEvent(
                time_s=self.start_s,
                kind="partition",
                links=self.links,
                groups=self.groups,
                duration_s=self.duration_s,
            )
        ]
