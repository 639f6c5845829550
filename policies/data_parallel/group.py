"""A synchronous group: members meet for numbered rounds of an all-reduce.

DDP (a round per step), DiLoCo and PALSGD (a round per outer step) and Streaming DiLoCo (a group
per fragment) all need the same thing: wait until every expected member has arrived with its
payload, run one all-reduce of ``nbytes`` over the network among them, then hand every participant
the mean of the payloads (after a ``combine`` hook, e.g. the outer optimizer step, has run once).

Protocol story of one round r:

1. A member calls :meth:`SyncGroup.arrive` with its payload and gets the round's ``done`` event;
   it may keep computing (Streaming DiLoCo's overlap) or wait on it at once.
2. When the last *expected* member has arrived, one collective (``ring``, ``tree`` or
   ``halving_doubling`` from :mod:`sim.collectives`) runs over the arrived members; a member that
   arrived early is idle until then: that is how stragglers hurt a synchronous method.
3. When the collective ends, ``combine(mean, participants)`` runs once and ``done`` fires with
   its value for every participant. Each participant's compute up to its arrival is committed
   as goodput (:meth:`~sim.recorder.Recorder.commit_work`); a member that fails has its compute
   since its last committed round discarded (it never reaches the model).

Failures (``on_failure``):

- ``"drop"``: a member that fails leaves the group at once; its payload for the open round is
  discarded, and a collective it was part of aborts (:class:`~sim.errors.CollectiveAborted`) and
  re-runs among the survivors. It re-enters with :meth:`join` from a later round.
- ``"wait"``: the group keeps expecting the failed member: the open round waits until it has
  recovered, caught up and arrived again.

When a member fails *during* the collective, the survivors notice only when the collective
library's timeout expires (``timeout_s``, :mod:`sim.collectives`): they stay blocked that long,
then the round's rule above applies (``drop``: the round re-runs among the survivors, the group
shrunk until the failed member rejoins; ``wait``: it re-runs once the member is back). The
rejoining member's download of the model is charged by the policy (``rejoin_group``).

A collective that aborts with every member up (a partition or a link down broke a path) is
retried once the network changes (a link comes back up) or a member fails, not at once.

Payloads are flat tensors. A payload of ``None`` is a contribution that was sent but not
delivered (DiLoCo's dropped outer gradients): its member still takes part in the collective
(same bytes, same time) but the mean is over the delivered payloads only
(:func:`~policies.data_parallel.rules.average_kept`); when none was delivered the mean is None.
Timing-only runs pass ``None`` (or empty vectors) everywhere and get None. The Python work per
round is O(members) and per member O(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy
import torch

from policies.data_parallel.rules import average_kept
from sim import collectives
from sim.errors import CollectiveAborted, FieldError

FAILURE_MODES = ("drop", "wait")


def check_sync_options(allreduce: str, on_failure: str | None = None,
                       collective_timeout_s: float = 0.0) -> None:
    """Raise ValueError naming the first field among the three that is not allowed."""
    collectives.check_timeout(collective_timeout_s, "collective_timeout_s")
    if allreduce not in collectives.ALLREDUCE_ALGORITHMS:
        raise FieldError("allreduce", f"unknown algorithm {allreduce!r}; allowed: "
                         f"{', '.join(sorted(collectives.ALLREDUCE_ALGORITHMS))}")
    if on_failure is not None and on_failure not in FAILURE_MODES:
        raise FieldError("on_failure", f"got {on_failure!r}; allowed: {', '.join(FAILURE_MODES)}")


@dataclass(eq=False)
class _Round:
    index: int
    done: simpy.Event
    arrivals: dict[int, Any] = field(default_factory=dict)
    arrived_s: dict[int, float] = field(default_factory=dict)
    running: bool = False
    attempts: int = 0


class SyncGroup:
    """Numbered all-reduce rounds among ``members`` (node ids).

    Parameters
    ----------
    world : the simulated world (network, nodes, recorder).
    members : node ids of the group.
    nbytes : bytes each member contributes to the all-reduce (the simulated model's size).
    algorithm : all-reduce schedule: 'ring', 'tree', 'halving_doubling' or 'gloo_ring'.
    on_failure : 'drop' or 'wait' (see the module docstring).
    combine : called once per round as ``combine(mean, participants, round_index)``, with
        ``mean`` None when no payload was delivered; its return value is what every participant
        receives. Default: the mean itself.
    label : name of the traffic in traces and of the recorded metrics.
    timeout_s : seconds the collective library waits for a failed peer before it aborts
        (0: it learns of the failure at once).
    """

    def __init__(self, world: Any, members: list[int], *, nbytes: float, algorithm: str = "ring",
                 on_failure: str = "drop",
                 combine: Callable[[torch.Tensor | None, list[int], int], Any] | None = None,
                 label: str = "allreduce", timeout_s: float = 0.0) -> None:
        check_sync_options(algorithm, on_failure, timeout_s)
        self.world = world
        self.env: simpy.Environment = world.env
        self.members = sorted(members)
        self.nbytes = float(nbytes)
        self.algorithm = algorithm
        self.on_failure = on_failure
        self.combine = combine or (lambda mean, _participants, _r: mean)
        self.label = label
        self.timeout_s = float(timeout_s)
        # member -> first round it is expected in (None: dropped until it joins again)
        self.member_from: dict[int, int | None] = {m: 0 for m in self.members}
        self.completed = -1                    # index of the last completed round
        self._expected_cache: tuple[int, int] | None = None   # (round, number expected)
        self._rounds: dict[int, _Round] = {}
        self.sync_seconds: list[float] = []    # collective durations, one per completed round
        self.bytes_per_round: list[float] = [] # recorder bytes sent during each completed round
        for m in self.members:
            self.env.process(self._watch(m))

    # -- what members call -----------------------------------------------------------------

    @property
    def open_round(self) -> int:
        """Index of the round now being gathered (the one after the last completed)."""
        return self.completed + 1

    def round_event(self, r: int) -> simpy.Event:
        """Return the event that fires (value: the combined result) when round ``r`` completes."""
        return self._round(r).done

    def arrive(self, node_id: int, r: int, payload: Any) -> simpy.Event:
        """Member ``node_id`` brings its payload to round ``r``; returns the round's done event."""
        rnd = self._round(r)
        if r <= self.completed:
            raise RuntimeError(f"node {node_id} arrived at round {r}, already completed")
        rnd.arrivals[node_id] = payload
        rnd.arrived_s[node_id] = self.env.now
        self._try_start()
        return rnd.done

    def join(self, node_id: int, r: int) -> None:
        """(Re-)admit a member from round ``r`` on: rounds from ``r`` wait for its payload."""
        self.member_from[node_id] = r
        self._expected_cache = None

    def expected(self, r: int) -> list[int]:
        """Members whose payload round ``r`` waits for."""
        return [m for m in self.members
                if self.member_from[m] is not None and self.member_from[m] <= r]

    def _num_expected(self, r: int) -> int:
        """``len(self.expected(r))``, cached until membership changes (O(1) per arrival)."""
        if self._expected_cache is None or self._expected_cache[0] != r:
            self._expected_cache = (r, len(self.expected(r)))
        return self._expected_cache[1]

    def live_peers(self, node_id: int) -> list[int]:
        """Members other than ``node_id`` that are up and in the group now."""
        nodes = self.world.nodes
        return [m for m in self.members if m != node_id and nodes[m].is_up
                and self.member_from[m] is not None]

    def collective(self, participants: list[int]) -> simpy.Process:
        """The collective of one round among ``participants`` (an all-reduce of ``nbytes``).

        Subclasses change how a round travels (e.g. an all-gather of compressed payloads).
        """
        return collectives.allreduce(self.world, participants, self.nbytes, self.algorithm,
                                     timeout_s=self.timeout_s)

    # -- internals -------------------------------------------------------------------------

    def _round(self, r: int) -> _Round:
        if r not in self._rounds:
            self._rounds[r] = _Round(r, self.env.event())
        return self._rounds[r]

    def _watch(self, m: int):
        node = self.world.nodes[m]
        while True:
            yield node.failed_event()
            self._on_failure(m)

    def _on_failure(self, m: int) -> None:
        # the failed member's work since its last completed round never reaches the model
        self.world.recorder.discard_uncommitted(m, reason=f"{self.label}_failure")
        for r, rnd in self._rounds.items():
            if r > self.completed:
                rnd.arrivals.pop(m, None)
        if self.on_failure == "drop":
            self.member_from[m] = None
            self._expected_cache = None
        self._try_start()

    def _try_start(self) -> None:
        r = self.open_round
        rnd = self._rounds.get(r)
        if rnd is None or rnd.running or len(rnd.arrivals) < self._num_expected(r):
            return
        expected = self.expected(r)
        if not expected or any(m not in rnd.arrivals for m in expected):
            return
        rnd.running = True
        self.env.process(self._run(rnd))

    def _run(self, rnd: _Round):
        participants = sorted(m for m in rnd.arrivals if self.world.nodes[m].is_up)
        rec = self.world.recorder
        bytes_before = float(rec.bytes_sent.sum())
        start = self.env.now
        rnd.attempts += 1
        if len(participants) > 1:
            try:
                yield self.collective(participants)
            except CollectiveAborted as exc:
                if not exc.failed:
                    # Every member is up but a path between two of them is gone (a partition
                    # or a link down): retrying now would fail at once, forever. Wait for the
                    # network to change, or for a member to fail (then the group shrinks).
                    network = self.world.network
                    yield self.env.any_of([network.link_change_event()] + [
                        self.world.nodes[m].failed_event() for m in participants])
                # the failure watcher already removed the failed payloads; gather again
                rnd.running = False
                self._try_start()
                return
            # a member that failed after its part was done: the others got the result
            participants = [m for m in participants if m in rnd.arrivals]
        payloads = [rnd.arrivals[m] for m in participants]
        first = next((x for x in payloads if x is not None), None)
        # timing-only learners send None or empty vectors: nothing to average
        mean = average_kept(payloads) if first is not None and first.numel() > 0 else None
        result = self.combine(mean, participants, rnd.index)
        for m in participants:        # their work up to their arrival is in the model now
            rec.commit_work(m, rnd.arrived_s[m])
        self.sync_seconds.append(self.env.now - start)
        self.bytes_per_round.append(float(rec.bytes_sent.sum()) - bytes_before)
        self.completed = rnd.index
        del self._rounds[rnd.index]
        rnd.done.succeed(result)
        self._try_start()
