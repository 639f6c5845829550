"""Round-tagged messages between workers, for methods without a global barrier.

NoLoCo (a partner per round) and D-PSGD (every graph neighbour per step) wait only for the
workers they exchange with. A :class:`Mailbox` carries those messages over the simulated network
and answers one question for a receiver: "have my senders' round-r messages arrived, or have
they dropped out of round r?". A sender has *dropped out* of round r when it never sent its
round-r message and either is down or has already moved past round r (a rejoining worker
resumes at a later round); a message cut in flight counts as dropped too.
"""

from __future__ import annotations

from typing import Any

import simpy

from sim.errors import NodeFailure

_CUT = object()


class Mailbox:
    """Messages ``(round, src) -> dst`` with their payloads; one per policy run."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.env: simpy.Environment = world.env
        n = len(world.nodes)
        self.round_of = [0] * n                       # the round each worker is in
        self._moved = [self.env.event() for _ in range(n)]
        self._boxes: dict[tuple[int, int], dict[int, Any]] = {}     # (round, dst) -> src -> msg
        self._arrived: dict[tuple[int, int], simpy.Event] = {}
        self._sent: set[tuple[int, int, int]] = set()               # (round, src, dst)

    def enter_round(self, i: int, r: int) -> None:
        """Worker i is now in round r (wakes whoever waits on i)."""
        self.round_of[i] = r
        moved, self._moved[i] = self._moved[i], self.env.event()
        moved.succeed(r)

    def moved_event(self, i: int) -> simpy.Event:
        """An event that fires when worker i next enters a round."""
        return self._moved[i]

    def send(self, src: int, dst: int, r: int, payload: Any, nbytes: float, label: str) -> None:
        """Start the transfer; at delivery the payload lands in dst's box for round r."""
        self._sent.add((r, src, dst))
        ev = self.world.network.transfer(src, dst, nbytes, label=label)

        def land(event: simpy.Event) -> None:
            self._boxes.setdefault((r, dst), {})[src] = payload if event.ok else _CUT
            arrived = self._arrived.pop((r, dst), None)
            if arrived is not None:
                arrived.succeed()

        ev.callbacks.append(land)

    def dropped(self, src: int, dst: int, r: int) -> bool:
        """Whether ``src`` will not deliver a round-r message to ``dst``."""
        box = self._boxes.get((r, dst), {})
        if src in box:
            return box[src] is _CUT
        if (r, src, dst) in self._sent:
            return False                               # in flight
        return not self.world.nodes[src].is_up or self.round_of[src] > r

    def receive(self, node: Any, senders: list[int], r: int):
        """Wait until every sender delivered or dropped out; return ``{src: payload}``.

        A generator. Raises :class:`NodeFailure` if ``node`` fails while waiting.
        """
        i, nodes = node.id, self.world.nodes
        while True:
            box = self._boxes.get((r, i), {})
            waiting = [j for j in senders if j not in box and not self.dropped(j, i, r)]
            if not waiting:
                self._boxes.pop((r, i), None)
                for j in senders:                   # resolved: forget, so memory stays O(k)
                    self._sent.discard((r, j, i))
                return {j: box[j] for j in senders if j in box and box[j] is not _CUT}
            if (r, i) not in self._arrived:
                self._arrived[(r, i)] = self.env.event()
            wake = [self._arrived[(r, i)], node.failed_event()]
            for j in waiting:
                wake += [nodes[j].failed_event(), self._moved[j]]
            yield self.env.any_of(wake)
            if not node.is_up:
                raise NodeFailure(i, self.env.now)
