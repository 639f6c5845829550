"""Paths of ``maxmin`` made cheaper without changing a result: checked against what they replace.

**Its own timers keep SimPy's order of events at equal times.**

The finish timer (one per earliest completion) and the coalesced re-rating (one per instant,
at ``LATE`` priority) are lean :class:`sim.timer.Timer` objects. The oracle is what they
replace, SimPy's own events: a ``simpy.Timeout`` with the callback appended, and a triggered
``simpy.Event`` scheduled at ``LATE``. Random programs whose flows, sends and network timers
meet at shared instants (round sizes over round bandwidths, processes waking at the same
times) must give the same deliveries at the same times in the same order, the same re-ratings
and the same number of processed events, over both transports. A timer filed elsewhere in its
instant (another priority, or ahead of the events already queued for it) changes the order.

**A lone flow's bottleneck** is found by a loop instead of ``min`` with a key: the slowest of
its links, the lowest index among equals, as progressive filling's heap pops it.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import simpy
from simpy.core import NORMAL

import sim.network.maxmin as maxmin
from sim.config import NetworkConfig
from sim.errors import SimFailure
from sim.world import World
from topologies import uniform


def simpy_timer(env, delay, value, callback, priority=NORMAL):  # noqa: ANN001, ANN201, ARG001
    """The oracle: SimPy's own event where ``maxmin`` files a :class:`sim.timer.Timer`.

    Chosen by what the timer is for, whatever priority it was asked with: the coalesced
    re-rating was a triggered ``simpy.Event`` scheduled at ``LATE``, the finish timer a
    ``simpy.Timeout``.
    """
    if callback.__name__ == "_rerate_pending":
        event = simpy.Event(env)
        event._ok, event._value = True, value
        env.schedule(event, maxmin.LATE, delay)
    else:
        event = simpy.Timeout(env, delay, value)
    event.callbacks.append(callback)
    return event


def run_program(seed: int, transport: str) -> tuple[list, tuple[int, ...]]:
    """A random program's deliveries (in the order they happened) and the network's counts."""
    rng = random.Random(seed)
    n = rng.randint(3, 6)
    rates = [1e6, 2e6, 4e6, None]
    topo = dataclasses.replace(uniform(n, latency_s=0.001, bandwidth_Bps=1e18),
                               uplink_Bps=tuple(rng.choice(rates) for _ in range(n)),
                               downlink_Bps=tuple(rng.choice(rates) for _ in range(n)))
    world = World(topo, network=NetworkConfig(model="maxmin", transport=transport))
    env, net = world.env, world.network
    log: list = []

    def sender(i: int):
        for k in range(rng.randint(2, 6)):
            yield env.timeout(rng.choice([0.0, 0.0, 0.01, 0.02, 0.05]))
            burst = [net.transfer(i % n, rng.randrange(n), rng.choice([1e4, 2e4, 5e4, 1e5]))
                     for _ in range(rng.choice([1, 1, 2, 3]))]
            for j, event in enumerate(burst):
                try:
                    delivery = yield event
                    log.append((env.now.hex(), i, k, j, delivery.end_s.hex()))
                except SimFailure:
                    log.append((env.now.hex(), i, k, j, "cut"))

    def killer():
        yield env.timeout(rng.choice([0.01, 0.02, 0.05]))
        world.nodes[rng.randrange(n)].fail()

    for i in range(rng.randint(3, 10)):
        env.process(sender(i))
    if rng.random() < 0.3:
        env.process(killer())
    env.run()
    counts = (env.events_processed, net.reallocations, net.flows_rerated, net.repair_rounds)
    return log, counts


@pytest.mark.parametrize("transport", ["fluid", "tcp"])
def test_maxmin_timers_keep_simpys_order_at_equal_times(transport, monkeypatch):
    ties = 0
    for seed in range(40):
        lean = run_program(seed, transport)
        with monkeypatch.context() as patch:
            patch.setattr(maxmin, "Timer", simpy_timer)
            oracle = run_program(seed, transport)
        assert lean == oracle, f"seed {seed}"
        times = [entry[0] for entry in lean[0]]
        ties += len(times) - len(set(times))
    assert ties > 20  # (the programs do meet at shared instants: the test can see an order)


@pytest.mark.parametrize(("up", "down", "held_by"), [
    (5.0, 5.0, "up"), (5.0, 4.0, "down"), (4.0, 5.0, "up"), (5.0, None, "up")])
def test_a_flow_alone_is_held_by_its_slowest_link_the_lowest_among_equals(up, down, held_by):
    """A lone flow's rate and bottleneck, as progressive filling's heap gives them.

    The filling pops the smallest (share, link index): among links of equal capacity the one
    with the lowest index (a node's uplink is made before its downlink) holds the flow.
    """
    topo = dataclasses.replace(uniform(2, latency_s=0.001, bandwidth_Bps=1e18),
                               uplink_Bps=(up, None), downlink_Bps=(None, down))
    world = World(topo, network=NetworkConfig(model="maxmin", transport="fluid"))
    net = world.network
    event = net.transfer(0, 1, 10.0)
    (fid,) = net._bottleneck
    link = {"up": net._uplink[0], "down": net._downlink[1]}[held_by]
    assert net._uplink[0] < net._downlink[1]
    assert net._bottleneck[fid] == link
    world.env.run()
    assert event.value.end_s == pytest.approx(10.0 / min(up, down or up) + 0.001, rel=1e-12)
