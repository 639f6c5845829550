"""Waiting for an event unless the node fails first: what every worker does at a synchronisation.

- :func:`wait_or_fail` waits for an event and raises :class:`~sim.errors.NodeFailure` if the
  node fails first;
- :func:`first_of` is the event that fires with the first of two (``env.any_of`` for exactly
  two events, without its condition value).

Its own module because both :mod:`.common` (the data-parallel policies' helpers) and
:mod:`.pipelines` (DP x PP, which :mod:`.common` builds) wait this way.
"""

from __future__ import annotations

from typing import Any

import simpy

from sim.errors import NodeFailure


def wait_or_fail(node: Any, event: simpy.Event):
    """Wait for ``event``; raise :class:`NodeFailure` if ``node`` fails first. Returns its value."""
    env = node.env
    if not node.is_up:
        raise NodeFailure(node.id, env.now)
    failed = node.failed_event()
    yield first_of(env, event, failed)
    if not event.triggered or not node.is_up:
        raise NodeFailure(node.id, env.now)
    return event.value


def first_of(env: simpy.Environment, a: simpy.Event, b: simpy.Event) -> simpy.Event:
    """An event that fires when the first of ``a`` and ``b`` is processed (fails if it fails).

    ``env.any_of([a, b])`` for exactly two events, without a condition value: a worker waits
    like this once per synchronisation, so at 1,000 nodes the difference counts. As with
    ``any_of``, a failed ``a`` or ``b`` is marked handled and its exception is passed on, and
    the event stops listening to the other one once it has fired.
    """
    first = simpy.Event(env)
    watch = _FirstOf(first, a, b)
    for ev in (a, b):
        if first.triggered:
            break
        if ev.callbacks is None:  # already processed
            watch(ev)
        else:
            ev.callbacks.append(watch)
    return first


class _FirstOf:
    """The callback of :func:`first_of`, hung on both events.

    An object rather than a closure: a closure that removes itself from a callback list must
    refer to itself, a reference cycle that only the garbage collector frees. Workers wait once
    per synchronisation, so at 100,000 nodes those cycles kept the collector's full walks busy.
    Once fired, it drops its references, so the long-lived event it may stay hung on (a node's
    ``failed_event``) does not keep the others alive.
    """

    __slots__ = ("first", "a", "b")

    def __init__(self, first: simpy.Event, a: simpy.Event, b: simpy.Event) -> None:
        self.first: simpy.Event | None = first
        self.a, self.b = a, b

    def __call__(self, ev: simpy.Event) -> None:
        first = self.first
        if first is None or first.triggered:
            return
        other = self.b if ev is self.a else self.a
        callbacks = other.callbacks
        if callbacks is not None and self in callbacks:
            callbacks.remove(self)
        self.first = self.a = self.b = None  # type: ignore[assignment]
        if ev.ok:
            first.succeed()
        else:
            ev.defused = True
            first.fail(ev.value)
