"""The world's event queue processes events in exactly SimPy's order.

:class:`sim.world.Environment` files events in buckets of one (time, priority) and remembers
the bucket it filed into last and the one at the head of the queue. The oracle is SimPy's own
``Environment`` (one heap ordered by time, priority and insertion): the same random program of
processes, timeouts at a few shared instants, events triggered from callbacks, processes
started and interrupted (urgent priority) at those instants, must resume every process at the
same instants in the same order, with the same number of processed events.
"""

from __future__ import annotations

import random

import pytest
import simpy

from sim.world import Environment


def _program(env: simpy.Environment, seed: int) -> list[tuple[float, int, str]]:
    """Run a random program on ``env``; the log of (time, process, what) in order."""
    rng = random.Random(seed)
    log: list[tuple[float, int, str]] = []
    delays = [0.0, 0.0, 0.5, 1.0, 1.5, 0.25 * rng.randint(1, 8)]
    signals = [env.event() for _ in range(4)]
    procs: list[simpy.Process] = []

    def worker(i: int):
        for k in range(rng.randint(3, 12)):
            choice = rng.random()
            try:
                if choice < 0.6:
                    yield env.timeout(rng.choice(delays), value=k)
                    log.append((env.now, i, "timeout"))
                elif choice < 0.75:
                    signal = rng.choice(signals)
                    if signal.triggered:
                        signals[signals.index(signal)] = env.event()
                        continue
                    yield signal | env.timeout(rng.choice(delays))
                    log.append((env.now, i, "signal or timeout"))
                elif choice < 0.85:
                    signal = rng.choice(signals)
                    if not signal.triggered:
                        signal.succeed(i)
                        log.append((env.now, i, "fired"))
                    yield env.timeout(0)
                elif choice < 0.95 and len(procs) < 40:
                    procs.append(env.process(worker(len(procs))))
                    log.append((env.now, i, "started"))
                    yield env.timeout(rng.choice(delays))
                else:
                    target = rng.choice(procs)
                    if target.is_alive and target is not env.active_process:
                        target.interrupt(i)
                        log.append((env.now, i, "interrupted"))
                    yield env.timeout(rng.choice(delays))
            except simpy.Interrupt:
                log.append((env.now, i, "was interrupted"))

    for i in range(8):
        procs.append(env.process(worker(i)))
    env.run(until=20.0)
    return log


@pytest.mark.parametrize("seed", range(12))
def test_the_bucketed_queue_runs_a_random_program_as_simpy_does(seed):
    ours, theirs = Environment(), simpy.Environment()
    log = _program(ours, seed)
    assert log == _program(theirs, seed)
    assert len(log) > 20
    processed = ours.events_processed
    counted = simpy.Environment()
    steps = 0
    step = counted.step

    def counting_step() -> None:
        nonlocal steps
        steps += 1
        step()

    counted.step = counting_step  # type: ignore[method-assign]
    _program(counted, seed)
    assert processed == steps
