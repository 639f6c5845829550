"""One fault of a failure schedule: what goes down, when, for how long.

Both the failure models (:mod:`sim.faults.failures`) and the trace reader
(:mod:`sim.faults.traces`) produce these, so they live in a module of their own that imports
neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FAILURE_KINDS", "FailureEvent", "sort_events"]

FAILURE_KINDS = ("crash", "preempt", "link_down", "partition", "group")


@dataclass(frozen=True, kw_only=True)
class FailureEvent:
    """One fault in a schedule.

    time_s:
        When the fault strikes (for ``preempt``: the kill, not the notice), seconds.
    kind:
        ``"crash"``, ``"preempt"``, ``"link_down"``, ``"partition"`` or ``"group"``.
    nodes:
        Node ids that go down (crash, preempt, group).
    links:
        Topology links ``(u, v)`` (site names) that go down (link_down; partition once its
        cut is known).
    groups:
        Partition only: the groups of sites that can no longer reach each other; every link
        between two groups goes down (resolved against the topology by the injector when
        ``links`` is empty).
    duration_s:
        How long the fault lasts, seconds; ``None`` means it never comes back.
    notice_s:
        Warning before the fault strikes, seconds (spot preemption); the notice is given at
        ``time_s - notice_s``.
    """

    time_s: float
    kind: str
    nodes: tuple[int, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    duration_s: float | None = None
    notice_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(
                f"FailureEvent.kind must be one of {list(FAILURE_KINDS)}, got {self.kind!r}"
            )
        if not (math.isfinite(self.time_s) and self.time_s >= 0.0):
            raise ValueError(f"FailureEvent.time_s must be finite and >= 0, got {self.time_s!r}")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s >= 0.0
        ):
            raise ValueError(
                "FailureEvent.duration_s must be >= 0 or None (never back), "
                f"got {self.duration_s!r}"
            )
        if not (math.isfinite(self.notice_s) and 0.0 <= self.notice_s <= self.time_s):
            raise ValueError(
                f"FailureEvent.notice_s must be in [0, time_s={self.time_s}], got {self.notice_s!r}"
            )
        if self.kind in ("crash", "preempt", "group") and not self.nodes:
            raise ValueError(f"a {self.kind!r} FailureEvent needs nodes")
        if self.kind == "link_down" and not self.links:
            raise ValueError("a 'link_down' FailureEvent needs links")
        if self.kind == "partition" and not (self.links or self.groups):
            raise ValueError("a 'partition' FailureEvent needs groups or links")

    @property
    def sort_key(self) -> tuple:
        """Order of events in a schedule: time, then nodes, kind and links (deterministic)."""
        return (self.time_s, self.nodes, self.kind, self.links, self.groups)


def sort_events(events: Iterable[FailureEvent]) -> list[FailureEvent]:
    """Return ``events`` sorted by :attr:`FailureEvent.sort_key`."""
    return sorted(events, key=lambda event: event.sort_key)
