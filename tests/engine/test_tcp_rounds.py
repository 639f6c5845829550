"""The ``tcp`` transport's round mechanics: what they cost, and that cheaper is the same run.

Connections that wake at one instant (the end of a round that started together) share one SimPy
timer. The oracle is the same transport with ``shared_wakes = False`` (a timer per wake): every
delivery and cut time, every byte count and the rounds must be equal **bit for bit** (the shared
timer processes the same wakes in the same order, with nothing in between).

A chunk followed at once by the connection's next one stays on its links (``continued_chunks``)
instead of leaving them and joining again, two re-ratings that give the same rates up to
rounding. The oracle is ``continued_chunks = False``; stated tolerance: times and bytes within
``RAMP_REL = 1e-9`` relative (the closed-form ramps' tolerance), the same rounds.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import NetworkConfig
from sim.network.tcp import Connection, TcpConfig, TcpTransport, slow_start_send_time_s
from sim.world import World
from topologies import clusters_of_clusters

from .conftest import make_world
from .test_tcp_ramp import (
    EFF,
    assert_runs_agree,
    configs,
    faults,
    plans,
    run,
    topologies_,
)


def run_with(switch: str, on: bool, topology, model, tcp, plan, fault_plan, ramps):
    """:func:`test_tcp_ramp.run` with the transport's class switch ``switch`` on or off."""
    setattr(TcpTransport, switch, on)
    try:
        return run(topology, model, tcp, plan, fault_plan, ramps)
    finally:
        setattr(TcpTransport, switch, True)


@settings(max_examples=120, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]), tcp=configs,
       plan=plans, fault_plan=faults, ramps=st.booleans())
def test_shared_wake_timers_change_no_bit(topology, model, tcp, plan, fault_plan, ramps):
    """Random senders (shared start instants, so rounds wake together), failures, idle restarts,
    window caps, HyStart's exit, with and without closed-form ramps: identical, not close."""
    got, fast = run_with("shared_wakes", True, topology, model, tcp, plan, fault_plan, ramps)
    want, slow = run_with("shared_wakes", False, topology, model, tcp, plan, fault_plan, ramps)
    assert got == want
    assert fast.network.rounds_started == slow.network.rounds_started
    for field in ("bytes_sent", "bytes_received", "bytes_cut"):
        assert list(getattr(fast.recorder, field)) == list(getattr(slow.recorder, field))
    assert dict(fast.recorder.link_bytes) == dict(slow.recorder.link_bytes)
    assert fast.env.events_processed <= slow.env.events_processed


def tree_round(shared: bool, k: int = 6) -> tuple[list[float], int, int]:
    """``k`` nodes of one data centre each send 1 MB to a node of the other, all at t = 0.

    The WAN link (10 MB/s, shared: 10/k MB/s each) is every message's bottleneck, so the ``k``
    connections run their slow-start rounds in step: their chunks end together and their next
    rounds start together.
    """
    TcpTransport.shared_wakes = shared
    try:
        topology = clusters_of_clusters(2 * k, num_clusters=2, intra_latency_s=0.001,
                                        intra_bandwidth_Bps=1e9, wan_latency_s=0.01,
                                        wan_bandwidth_Bps=10e6)
        world = World(topology, network=NetworkConfig(model="maxmin", transport="tcp"))
        events = [world.network.transfer(i, k + i, 1e6) for i in range(k)]
        world.env.run()
    finally:
        TcpTransport.shared_wakes = True
    return ([e.value.end_s for e in events], world.env.events_processed,
            world.network.rounds_started)


def test_wakes_at_one_instant_share_a_timer_and_change_nothing():
    """Six connections in step over one WAN link: one timer per round instead of six.

    Hand count of what is saved: every round after the first ends with a wait for the next
    round (the window is out), and the six connections wait for the same instant: 6 timers
    become 1, so the run saves 5 events per waiting round, and nothing else moves.
    """
    ends_shared, events_shared, rounds = tree_round(shared=True)
    ends_own, events_own, rounds_own = tree_round(shared=False)
    assert ends_shared == ends_own  # bit for bit
    assert rounds == rounds_own
    waits = events_own - events_shared
    assert waits > 0 and waits % 5 == 0  # 5 timers saved per round the six wait for together
    assert len(set(ends_shared)) == 1  # in step to the last byte


def test_a_wake_set_after_another_event_at_its_instant_keeps_its_place():
    """The simulator processes one instant's events in the order they were scheduled: a wake set
    after another event of the same instant must not join the earlier wakes' timer (it would run
    before that event). Wakes set one after the other share a timer."""
    world = make_world(2, transport="tcp")
    net = world.network
    order: list = []
    net._pump = lambda conn, first=False: order.append(conn)  # record instead of sending
    a, b, c, d = (Connection(1.0) for _ in range(4))
    for conn in (a, b, c, d):
        conn.head = object()
    net._wake_at(a, 1.0, world.now)
    net._wake_at(b, 1.0, world.now)
    world.env.timeout(1.0).callbacks.append(lambda _ev: order.append("other"))
    net._wake_at(c, 1.0, world.now)
    net._wake_at(d, 1.0, world.now)
    world.env.run()
    assert order == [a, b, "other", c, d]
    assert world.env.events_processed == 3 + 1  # two shared timers, the other event, the end


def test_the_engine_names_the_event_it_filed_last_at_an_instant():
    """The contract the shared wakes rest on (:meth:`Environment.last_scheduled`): the last
    event filed under (time, priority) until it runs, none once it has; another priority or
    instant is another key; an instant reached from a later ``now`` is the same key."""
    import simpy

    from sim.world import Environment

    env = Environment()
    first, second = env.timeout(1.0), env.timeout(1.0)
    env.timeout(2.0)
    urgent = simpy.Event(env)
    urgent._ok, urgent._value = True, None
    env.schedule(urgent, simpy.core.URGENT, 1.0)
    assert env.last_scheduled(1.0) is second
    assert env.last_scheduled(1.0, simpy.core.URGENT) is urgent
    assert env.last_scheduled(1.5) is None
    env.step()  # the urgent one runs first
    env.step()
    assert env.now == 1.0 and first.processed and env.last_scheduled(1.0) is second
    third = env.timeout(0.0)  # filed at now + 0 = 1.0, after ``second``
    assert env.last_scheduled(1.0) is third
    env.step()
    env.step()
    assert env.last_scheduled(1.0) is None and env.last_scheduled(2.0) is not None


# -- a chunk followed at once by the next one ---------------------------------------------------

def two_into_one_downlink(continued: bool) -> tuple[list[float], World]:
    """Nodes 0 and 1 each send 2 MB into node 2's 100 Mbit/s downlink at t = 0, 10 ms one way.

    Burst rounds: a chunk that goes on at once is theirs (a paced round stays on its links).
    """
    TcpTransport.continued_chunks = continued
    try:
        world = make_world(3, latency_s=0.01, downlink=(None, None, 12.5e6), transport="tcp",
                           tcp=TcpConfig(rounds="burst"))
        events = [world.network.transfer(i, 2, 2e6) for i in (0, 1)]
        world.env.run()
    finally:
        TcpTransport.continued_chunks = True
    return [e.value.end_s for e in events], world


def test_the_rest_after_a_full_round_stays_on_the_link():
    """Hand-worked: each connection gets r = 12.5e6 x 1448/1514 / 2 = 5.98 MB/s. Rounds 0-3
    (14,480 x 2^i B) take 2.4 to 19.4 ms of each 20 ms RTT and wait; round 4 (231,680 B) opens
    at 80 ms and takes 38.7 ms: the pipe is full, so when its chunk ends (118.7 ms) the next
    round opens at once and the rest goes as one chunk. Both chunks end together and go on
    with the rest at the same rate. Leaving and joining instead, the first rest would start
    alone on the emptied link (rated at once, a re-rating, with a finish timer that goes stale)
    and the second join it (a coalesced re-rating, its event): two re-ratings and two events
    saved. Each message ends at 80 ms + (2 MB - 217,200 B) / r + 10 ms either way.
    """
    r = 12.5e6 * EFF / 2
    expected = slow_start_send_time_s(2e6, 0.02, r) + 0.01
    assert expected == pytest.approx(0.08 + (2e6 - 14480 * 15) / r + 0.01, rel=1e-12)
    ends, fast = two_into_one_downlink(continued=True)
    ends_old, slow = two_into_one_downlink(continued=False)
    assert ends == pytest.approx([expected, expected], rel=1e-12)
    assert ends_old == pytest.approx([expected, expected], rel=1e-12)
    assert fast.network.rounds_started == slow.network.rounds_started == 2 * 6
    assert slow.network.reallocations - fast.network.reallocations == 2
    assert slow.env.events_processed - fast.env.events_processed == 2


@settings(max_examples=120, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]),
       tcp=configs.map(lambda c: dataclasses.replace(c, rounds="burst")),
       plan=plans, fault_plan=faults, ramps=st.booleans())
def test_continued_chunks_equal_chunks_that_leave_and_join(topology, model, tcp, plan,
                                                           fault_plan, ramps):
    """Random senders on shared links, failures cutting continued chunks, idle restarts, window
    caps (rounds held below the cap by the share), HyStart's exits, ramps on and off: every
    delivery and cut time and byte count within the stated tolerance, the same rounds. Burst
    rounds: a chunk that goes on at once is theirs (a paced round never leaves its links)."""
    got, fast = run_with("continued_chunks", True, topology, model, tcp, plan, fault_plan, ramps)
    want, slow = run_with("continued_chunks", False, topology, model, tcp, plan, fault_plan,
                          ramps)
    assert_runs_agree(got, fast, want, slow)
    if model == "maxmin":
        assert fast.network.reallocations <= slow.network.reallocations
