"""``first_of(env, a, b)`` behaves like ``env.any_of([a, b])`` for what workers rely on."""

from __future__ import annotations

import simpy

from policies.data_parallel.waiting import first_of


def outcome(make_wait, schedule):
    """Run ``schedule(env, a, b)`` with a process waiting on ``make_wait(env, a, b)``."""
    env = simpy.Environment()
    a, b = env.event(), env.event()
    seen = []

    def waiter():
        try:
            yield make_wait(env, a, b)
            seen.append(("ok", env.now, a.triggered, b.triggered))
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome
            seen.append(("failed", env.now, type(exc).__name__, str(exc)))

    env.process(waiter())
    schedule(env, a, b)
    env.run()
    return seen, a, b


def any_of(env, a, b):
    return env.any_of([a, b])


def later(env, delay, action):
    def proc():
        yield env.timeout(delay)
        action()
    env.process(proc())


def test_fires_with_the_first_event_like_any_of():
    def schedule(env, a, b):
        later(env, 2.0, lambda: a.succeed("a"))
        later(env, 1.0, lambda: b.succeed("b"))

    got, a, b = outcome(first_of, schedule)
    want, _, _ = outcome(any_of, schedule)
    assert got == want == [("ok", 1.0, False, True)]
    assert a.callbacks is None  # fired later with nobody left listening


def test_a_failing_event_fails_it_and_is_marked_handled():
    def schedule(env, a, b):
        later(env, 1.0, lambda: a.fail(RuntimeError("boom")))

    got, a, _ = outcome(first_of, schedule)
    want, _, _ = outcome(any_of, schedule)
    assert got == want == [("failed", 1.0, "RuntimeError", "boom")]
    assert a.defused


def test_an_already_processed_event_fires_it_at_once():
    env = simpy.Environment()
    done, other = env.event(), env.event()
    done.succeed()
    env.run()
    assert done.processed
    first = first_of(env, done, other)
    env.run()
    assert first.processed and first.ok
    assert other.callbacks == []  # never started listening to the other one


def test_stops_listening_to_the_other_event():
    env = simpy.Environment()
    a, b = env.event(), env.event()
    first_of(env, a, b)
    assert len(a.callbacks) == len(b.callbacks) == 1
    a.succeed()
    env.run()
    assert b.callbacks == []
