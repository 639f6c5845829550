"""Apply a failure schedule to a running World.

:func:`start_injector` starts one SimPy process that walks a schedule in time order. For each
event it starts a small process that tells the story of that fault:

1. (spot preemption) at ``time_s - notice_s``: ``node.give_notice(kill_at_s=time_s)``;
2. at ``time_s``: ``node.fail(reason)`` for each node, or
   ``network.set_link_state(u, v, up=False)`` for each link;
3. ``duration_s`` later (unless ``None``): ``node.recover()`` / ``set_link_state(..., up=True)``.

Overlapping faults on one node (a crash during a stage failure) or one link are counted: the
node goes down at the first and comes back when the last one ends.

Nodes and the network record their own ``failure``, ``recovery``, ``preemption_notice``,
``link_down`` and ``link_up`` events; the injector adds one ``fault`` event per schedule entry
when it strikes (fields ``fault`` = the kind, ``nodes``, ``links``, ``duration_s``), so a trace
shows which fault caused which state changes (a partition is one ``fault``, many link events).

The engine objects used are ``world.env``, ``world.nodes[i]`` (``is_up``, ``fail``,
``recover``, ``give_notice``), ``world.network.set_link_state`` and, for a partition given as
groups of sites, ``world.network.graph`` (the topology, a networkx graph).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import simpy

from sim.faults.events import FailureEvent, sort_events
from sim.faults.link_failures import partition_cut_links


def _begin_s(event: FailureEvent) -> float:
    return event.time_s - event.notice_s


class FaultInjector:
    """Applies :class:`FailureEvent` s to a world, counting overlapping causes."""

    def __init__(self, world: Any):
        self.world = world
        self.env: simpy.Environment = world.env
        self._node_causes: Counter[int] = Counter()  # node id -> faults holding it down
        self._link_causes: Counter[tuple[str, str]] = Counter()  # sorted (u, v) -> faults

    # ------------------------------------------------------------ processes

    def run(self, events: Iterable[FailureEvent]):
        """Process: start each event's story at its beginning (notice or strike), in order."""
        for event in sorted(sort_events(events), key=_begin_s):
            delay = _begin_s(event) - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            self.env.process(self._story(event))

    def _story(self, event: FailureEvent):
        links = self._links_of(event)
        if event.notice_s > 0:
            for node_id in event.nodes:
                self._give_notice(node_id, event)
            yield self.env.timeout(event.notice_s)
        self.world.recorder.event(
            "fault",
            node=event.nodes[0] if len(event.nodes) == 1 else None,
            fault=event.kind,
            nodes=list(event.nodes),
            links=[f"{u}-{v}" for u, v in links],
            duration_s=event.duration_s,
        )
        for node_id in event.nodes:
            self._take_node_down(node_id, event.kind)
        for u, v in links:
            self._take_link_down(u, v)
        if event.duration_s is None:
            return
        yield self.env.timeout(event.duration_s)
        for node_id in event.nodes:
            self._bring_node_up(node_id)
        for u, v in links:
            self._bring_link_up(u, v)

    # ------------------------------------------------------------ actions

    def _give_notice(self, node_id: int, event: FailureEvent) -> None:
        node = self.world.nodes[node_id]
        if node.is_up:
            node.give_notice(kill_at_s=event.time_s)

    def _take_node_down(self, node_id: int, cause: str) -> None:
        self._node_causes[node_id] += 1
        node = self.world.nodes[node_id]
        if self._node_causes[node_id] == 1 and node.is_up:
            node.fail(cause)

    def _bring_node_up(self, node_id: int) -> None:
        self._node_causes[node_id] -= 1
        assert self._node_causes[node_id] >= 0, "more recoveries than failures"
        node = self.world.nodes[node_id]
        if self._node_causes[node_id] == 0 and not node.is_up:
            node.recover()

    def _take_link_down(self, u: str, v: str) -> None:
        key = (u, v) if u <= v else (v, u)
        self._link_causes[key] += 1
        if self._link_causes[key] == 1:
            self.world.network.set_link_state(u, v, False)

    def _bring_link_up(self, u: str, v: str) -> None:
        key = (u, v) if u <= v else (v, u)
        self._link_causes[key] -= 1
        assert self._link_causes[key] >= 0, "more link-ups than link-downs"
        if self._link_causes[key] == 0:
            self.world.network.set_link_state(u, v, True)

    def _links_of(self, event: FailureEvent) -> tuple[tuple[str, str], ...]:
        if event.links or not event.groups:
            return event.links
        graph = getattr(self.world.network, "graph", None)
        if graph is None:
            raise ValueError(
                "a partition given as groups of sites needs world.network.graph (the topology) "
                "or explicit links"
            )
        return partition_cut_links(((str(u), str(v)) for u, v in graph.edges()), event.groups)


def start_injector(world: Any, events: Iterable[FailureEvent]) -> simpy.Process:
    """Start a process that applies ``events`` to ``world`` at their times."""
    injector = FaultInjector(world)
    return world.env.process(injector.run(list(events)))


def fail_at(
    world: Any, node_id: int, time_s: float, duration_s: float | None = None
) -> simpy.Process:
    """Crash node ``node_id`` at ``time_s`` for ``duration_s`` (``None``: for good); for tests."""
    event = FailureEvent(time_s=time_s, kind="crash", nodes=(node_id,), duration_s=duration_s)
    return start_injector(world, [event])
