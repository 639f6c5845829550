"""A simulated device: compute slots, speed, stragglers, and an up/down state.

``compute`` is the only way simulated compute time passes. A task's duration is its nominal cost
(seconds on a speed-1 node, or FLOP / the device's FLOP/s) divided by the node's persistent speed
multiplier and multiplied by a straggler factor drawn for that one task from the world's streams.
Tasks queue FIFO for the node's slots (one by default), so two tasks on one node never overlap.

A failure cancels every running and queued task: their events fail with :class:`NodeFailure`,
which SimPy throws into whatever process was waiting. A process that wants to react to a failure
without waiting on a task yields :meth:`Node.failed_event`.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, cast

import simpy

from sim.errors import NodeFailure
from sim.timer import Timer

if TYPE_CHECKING:
    from sim.world import World


class Node:
    """One device of the cluster.

    Parameters
    ----------
    world:
        The world this node lives in.
    node_id:
        Index in ``world.nodes``.
    site:
        The topology vertex this node attaches to.
    flops_per_s:
        Sustained FLOP/s of the device for training steps (converts ``flops=`` work to seconds).
    device:
        The device profile (``workloads.get_device``) that timing models charge against.
    speed:
        Persistent speed multiplier (1.0 = nominal; 0.5 = twice as slow).
    memory_bytes:
        Memory capacity in bytes (checked by :meth:`allocate`).
    slots:
        Tasks that run at once.
    stragglers:
        A straggler model with ``factor(node_id, rng) -> float``.
    straggler_rng:
        This node's own stream of straggler draws (so draws do not depend on other nodes).

    A world of 100,000 nodes keeps 100,000 of these, so a node has fixed slots (no ``__dict__``)
    and makes the events of its failure, recovery and preemption notice only when something
    waits for one or it happens.
    """

    __slots__ = ("world", "env", "id", "name", "site", "flops_per_s", "device", "speed",
                 "memory_bytes", "memory_used_bytes", "stragglers", "_straggler_rng",
                 "_slot_free_s", "_tasks", "tasks_done", "is_up", "_down_interval", "_failed",
                 "_recovered", "_notice")

    def __init__(self, world: World, node_id: int, *, name: str, site: str,
                 flops_per_s: float = float("nan"), device: Any = None, speed: float = 1.0,
                 memory_bytes: float = float("inf"),
                 slots: int = 1, stragglers: Any = None, straggler_rng: Any = None) -> None:
        if speed <= 0:
            raise ValueError(f"cluster.speed: node {node_id} speed must be > 0, got {speed}")
        if slots < 1:
            raise ValueError(f"cluster.compute_slots: must be >= 1, got {slots}")
        self.world = world
        self.env: simpy.Environment = world.env
        self.id = node_id
        self.name = name
        self.site = site
        self.flops_per_s = float(flops_per_s)
        self.device = device
        self.speed = float(speed)
        self.memory_bytes = float(memory_bytes)
        self.memory_used_bytes = 0.0
        self.stragglers = stragglers
        self._straggler_rng = straggler_rng
        self._slot_free_s = [0.0] * slots  # a heap of the times each slot becomes free
        # running and queued: event -> (start_s, end_s, recorder interval index)
        self._tasks: dict[simpy.Event, tuple[float, float, int]] = {}
        self.tasks_done = 0
        self.is_up = True
        self._down_interval: int | None = None  # recorder index of the open "down" interval
        # the events of the next failure, recovery and notice, made when first asked for
        self._failed: simpy.Event | None = None
        self._recovered: simpy.Event | None = None
        self._notice: simpy.Event | None = None

    def __repr__(self) -> str:
        return f"Node({self.id}, {self.name!r}, site={self.site!r}, up={self.is_up})"

    # -- compute ---------------------------------------------------------------------------

    def task_seconds(self, seconds: float | None = None, flops: float | None = None) -> float:
        """Nominal duration of a task on this node before stragglers (seconds)."""
        if (seconds is None) == (flops is None):
            raise ValueError("compute: give exactly one of seconds= or flops=")
        if flops is not None and not self.flops_per_s > 0:
            raise ValueError(f"compute: node {self.id}'s device has no FLOP rate; give seconds=")
        nominal = seconds if seconds is not None else float(flops) / self.flops_per_s  # type: ignore[arg-type]  # noqa: E501  (exactly one of them is given, checked above)
        if nominal < 0:
            raise ValueError(f"compute: work must be >= 0, got {nominal}")
        return nominal / self.speed

    def compute(self, seconds: float | None = None, flops: float | None = None,
                label: str = "compute") -> simpy.Event:
        """Run one task; the returned event fires when it ends (value: its duration in s).

        The event fails with :class:`NodeFailure` if the node is down or goes down first.
        """
        if flops is None and seconds is not None and seconds >= 0:  # the common case, fast
            duration = seconds / self.speed
        else:
            duration = self.task_seconds(seconds, flops)
        env = self.env
        event = simpy.Event(env)  # (simpy.Event(env) is env.event() without the binding)
        if not self.is_up:  # (before the straggler draw: a refused task draws nothing)
            event.defused = True
            return event.fail(NodeFailure(self.id, env.now))
        if self.stragglers is not None:
            duration *= self.stragglers.factor(self.id, self._straggler_rng)
        now = env.now
        slots = self._slot_free_s
        start = slots[0] if slots[0] > now else now  # the slot that frees first takes the task
        end = start + duration
        heapq.heapreplace(slots, end)
        self._tasks[event] = (start, end, self.world.recorder.interval(self.id, "busy", start, end,
                                                                       label))
        Timer(env, end - now, event, self._finish)  # (a method, not a partial; no Timeout)
        return event

    def _finish(self, timer: Timer) -> None:
        event = cast(simpy.Event, timer.value)
        task = self._tasks.pop(event, None)
        if task is None:  # cancelled by a failure
            return
        self.tasks_done += 1
        event.succeed(task[1] - task[0])  # (start_s, end_s, interval index)

    @property
    def busy_until_s(self) -> float:
        """When the last queued task ends (now if idle)."""
        return max(self.env.now, max(self._slot_free_s))

    # -- memory ----------------------------------------------------------------------------

    def allocate(self, nbytes: float) -> bool:
        """Reserve memory; False (and nothing reserved) if it would exceed the capacity."""
        if self.memory_used_bytes + nbytes > self.memory_bytes:
            return False
        self.memory_used_bytes += nbytes
        return True

    def free(self, nbytes: float) -> None:
        """Release memory reserved with :meth:`allocate`."""
        self.memory_used_bytes = max(0.0, self.memory_used_bytes - nbytes)

    # -- up and down -----------------------------------------------------------------------

    def failed_event(self) -> simpy.Event:
        """An event that fires at this node's next failure (value: the reason)."""
        if self._failed is None:
            self._failed = simpy.Event(self.env)
        return self._failed

    def recovered_event(self) -> simpy.Event:
        """An event that fires at this node's next recovery."""
        if self._recovered is None:
            self._recovered = simpy.Event(self.env)
        return self._recovered

    def notice_event(self) -> simpy.Event:
        """An event that fires at the next preemption notice (value: the kill time in s)."""
        if self._notice is None:
            self._notice = simpy.Event(self.env)
        return self._notice

    def fail(self, reason: str = "crash") -> None:
        """Take the node down now: cancel its tasks, cut its flows, wake its waiters."""
        if not self.is_up:
            return
        now = self.env.now
        self.is_up = False
        self.world.recorder.event("failure", node=self.id, reason=reason)
        self._down_interval = self.world.recorder.interval(self.id, "down", now, float("inf"),
                                                           reason)
        tasks, self._tasks = self._tasks, {}
        rec = self.world.recorder
        for event, (start, _end, interval) in tasks.items():
            rec.close_interval(interval, now)
            rec.discard_work(self.id, start, now, "interrupted")  # a cut task's work is lost
            event.defused = True
            event.fail(NodeFailure(self.id, now))
        self._slot_free_s = [now] * len(self._slot_free_s)
        self.memory_used_bytes = 0.0
        self.world.network.node_failed(self.id)
        # (fired even when nobody waits, so that the run's events are counted as always)
        failed, self._failed = self.failed_event(), None
        failed.succeed(reason)

    def recover(self) -> None:
        """Bring the node back (empty: policies decide what state it rejoins with)."""
        if self.is_up:
            return
        now = self.env.now
        self.is_up = True
        if self._down_interval is not None:
            self.world.recorder.close_interval(self._down_interval, now)
            self._down_interval = None
        self._slot_free_s = [now] * len(self._slot_free_s)
        self.world.recorder.event("recovery", node=self.id)
        self.world.network.node_recovered(self.id)
        recovered, self._recovered = self.recovered_event(), None
        recovered.succeed(now)

    def give_notice(self, kill_at_s: float) -> None:
        """Announce a preemption at ``kill_at_s`` (spot instances get 30-120 s of notice)."""
        self.world.recorder.event("preemption_notice", node=self.id, kill_at_s=kill_at_s)
        notice, self._notice = self.notice_event(), None
        notice.succeed(kill_at_s)
