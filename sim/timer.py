"""The engine's own timers: a value for one callback at a later simulated time.

Every message and every compute task sets a timer (a message's propagation, ``ideal``'s send,
a task's end) that no process waits for: the network or the node reacts in a callback. SimPy's
:class:`simpy.Timeout` is an event a process can yield, with an attribute dictionary (its
environment, callbacks, value, delay, outcome): about 230 bytes with its list of callbacks.
A round of 100,000 messages keeps 100,000 timers alive at once, each touched again only when
it fires, after the round's other ones, out of the caches. A :class:`Timer` has what
:meth:`sim.world.Environment.step` (and SimPy's own ``step``) reads of an event, its callbacks
and its outcome, and the value: three slots and a list of one, about 120 bytes. It is queued
and processed exactly like the ``Timeout`` it replaces (same instant, priority and place in
the queue), so a run is event for event the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simpy.core import NORMAL


class Timer:
    """Call ``callback(timer)`` after ``delay`` simulated seconds; ``timer.value`` is ``value``.

    Scheduled on ``env`` at once (``delay`` >= 0, seconds), at normal priority, as
    ``simpy.Timeout(env, delay, value)`` with ``callback`` appended would be. More callbacks
    may be appended to ``callbacks`` before it fires; a process cannot yield it.

    ``priority`` (SimPy's: 0 urgent, 1 normal; larger runs later among the events of one
    instant) files it elsewhere in the instant, as ``env.schedule(event, priority, delay)`` of
    a triggered :class:`simpy.Event` would (``maxmin``'s coalesced re-rating runs after every
    other event of its instant).
    """

    __slots__ = ("callbacks", "value", "_ok")

    def __init__(self, env: Any, delay: float, value: Any,
                 callback: Callable[[Timer], None], priority: int = NORMAL) -> None:
        if delay < 0:  # (as simpy.Timeout: a clock that ran backwards would corrupt the run)
            raise ValueError(f"Negative delay {delay}")
        self.callbacks: list[Callable[[Timer], None]] | None = [callback]
        self.value = value
        self._ok = True  # (what a step reads: a timer never fails)
        env.schedule(self, priority, delay)
