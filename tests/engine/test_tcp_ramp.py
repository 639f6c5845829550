"""The ``tcp`` transport's closed-form ramps against its own per-round mechanism.

A connection alone on its links runs its rounds on a virtual clock (one SimPy event at the
message's end) and hands its state to the per-round mechanism when another connection's chunk
starts on one of its links or the message is cut. The oracle is the same transport with
``lone_ramps = False``: every round a chunk and a timer on the simulator's clock. Stated
tolerance: delivery and cut times, bytes and link bytes equal the oracle's within
``RAMP_REL = 1e-9`` relative; the number of rounds is the same.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from sim.config import NetworkConfig
from sim.errors import SimFailure
from sim.network.tcp import TcpConfig, TcpTransport, slow_start_send_time_s
from sim.world import World
from topologies import clusters_of_clusters, uniform

from .conftest import make_world

RAMP_REL = 1e-9
"""Stated tolerance: closed-form ramps equal the per-round mechanism to this relative error."""

EFF = 1448 / 1514


@pytest.fixture
def per_round(monkeypatch):
    """Turn the closed-form ramps off for the test (the oracle's mechanism)."""
    monkeypatch.setattr(TcpTransport, "lone_ramps", False)


# -- a hand count -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["ideal", "maxmin"])
@pytest.mark.parametrize("ramps", [True, False])
def test_a_lone_10MB_message_costs_three_or_four_events_instead_of_eighteen(model, ramps,
                                                                           monkeypatch):
    """100 Mbit/s, 75 ms one way (the slow-start example of test_tcp.py).

    Burst rounds (the hand count is theirs; paced rounds: test_tcp_paced.py). Per round:
    rounds 0-6 send 14,480 * 2^i bytes, each a chunk end and a timer for the next
    round (14 events); round 7's 1,853,440 B take longer than the RTT (the pipe is full: one
    chunk end), and the rest goes as one chunk (one more); then the propagation timer and the
    delivery: 18. Closed form: one timer at the message's last byte, propagation, delivery: 3.
    Under ``maxmin`` the first chunk goes to the model (a message's first step never ramps
    where links are shared), and its end starts the ramp: 4. SimPy counts one more step, the
    empty one that ends the run.
    """
    monkeypatch.setattr(TcpTransport, "lone_ramps", ramps)
    world = make_world(2, model=model, latency_s=0.075, bandwidth_Bps=12.5e6, transport="tcp",
                       tcp=TcpConfig(rounds="burst"))
    event = world.network.transfer(0, 1, 10e6)
    world.env.run()
    expected = slow_start_send_time_s(10e6, 0.15, 12.5e6 * EFF) + 0.075
    assert event.value.end_s == pytest.approx(expected, rel=1e-12)
    assert world.env.events_processed == ((3 if model == "ideal" else 4) if ramps else 18) + 1
    assert world.network.rounds_started == 9  # rounds 0-8, either way
    assert world.network.ramps_started == (1 if ramps else 0)


def test_a_second_flow_on_the_link_takes_over_the_ramp_mid_chunk():
    """Two senders into node 2's 100 Mbit/s downlink, 10 ms one way (RTT 20 ms, r = 11.95 MB/s).

    Node 0 starts alone at t = 0 (a ramp): round 2 starts at 40 ms and sends 57,920 B in
    4.85 ms, round 3 at 60 ms 115,840 B in 9.69 ms, round 5 at 100 ms fills the pipe and the
    rest follows. Node 1 starts at 40.1 ms (inside round 2's chunk), 45 ms (waiting for round
    3), 60.1 and 61.1 ms (inside round 3's chunk) or 130 ms (inside the rest): the ramp is
    handed over at that instant, and both deliveries equal the per-round mechanism's.
    """
    r = 12.5e6 * EFF
    for t1 in (0.0401, 0.045, 0.0601, 0.0611, 0.13):
        ends = {}
        for ramps in (True, False):
            TcpTransport.lone_ramps = ramps
            try:
                world = make_world(3, latency_s=0.01, downlink=(None, None, 12.5e6),
                                   transport="tcp")
                net = world.network
                a = net.transfer(0, 2, 2e6)

                def late(net=net, world=world):
                    yield world.env.timeout(t1)
                    return (yield net.transfer(1, 2, 2e6))

                b = world.env.process(late())
                world.env.run()
                ends[ramps] = (a.value.end_s, b.value.end_s, net.rounds_started)
                if ramps:
                    assert net.ramps_interrupted >= 1
            finally:
                TcpTransport.lone_ramps = True
        assert ends[True][:2] == pytest.approx(ends[False][:2], rel=RAMP_REL)
        assert ends[True][2] == ends[False][2]
        assert ends[True][0] > slow_start_send_time_s(2e6, 0.02, r) + 0.01  # it did share


# -- the per-round mechanism as the oracle -----------------------------------------------------

configs = st.builds(
    TcpConfig, mss_bytes=st.just(1), frame_bytes=st.sampled_from([1, 2]),
    initial_window_segments=st.integers(1, 3),
    max_window_bytes=st.sampled_from([6.0, 16.0, 1e9]),
    slow_start_after_idle=st.booleans(), min_rto_s=st.sampled_from([0.0, 0.003]),
    parallel_streams=st.sampled_from([1, 1, 2]), handshake=st.booleans(),
    hystart_short_rtt_exit=st.booleans(), hystart_delay_exit=st.booleans(),
    rounds=st.sampled_from([None, "burst"]))
"""1-byte segments on B/s links ms apart: slow start, HyStart's exit and CUBIC's probing,
window-capped rounds and idle restarts all happen in tens of milliseconds. Both round models:
the default (paced; burst with ``hystart_delay_exit``) and burst. (With
``hystart_delay_exit`` the transport runs no closed-form ramps under ``maxmin`` and the option
acts on nothing under ``ideal``, so that draw only guards that the option keeps both sides
equal; its own tests are in test_tcp_hystart_delay.py.)"""

rates = st.one_of(st.none(), st.sampled_from([1000.0, 2000.0, 5000.0, 8000.0]))


@st.composite
def topologies_(draw):
    """A switch with per-node access links, or data centres joined by shared WAN links."""
    if draw(st.booleans()):
        n = draw(st.integers(2, 6))
        topo = uniform(n, latency_s=draw(st.sampled_from([0.0005, 0.001, 0.004])),
                       bandwidth_Bps=draw(st.sampled_from([4000.0, 7000.0, 1e18])))
        return dataclasses.replace(
            topo, uplink_Bps=tuple(draw(st.lists(rates, min_size=n, max_size=n))),
            downlink_Bps=tuple(draw(st.lists(rates, min_size=n, max_size=n))))
    n = draw(st.integers(3, 7))
    return clusters_of_clusters(n, num_clusters=draw(st.integers(2, 3)), intra_latency_s=0.001,
                                intra_bandwidth_Bps=draw(st.sampled_from([3000.0, 8000.0])),
                                wan_latency_s=draw(st.sampled_from([0.0005, 0.005])),
                                wan_bandwidth_Bps=draw(st.sampled_from([1000.0, 4000.0, 2e4])))


instants = st.one_of(st.floats(0, 0.08), st.sampled_from([0.0, 0.002, 0.004, 0.01, 0.02]))
"""Random instants (a ramp taken over anywhere in a chunk or a wait) and shared ones."""

plans = st.lists(st.tuples(instants, st.integers(0, 3), st.integers(0, 6),
                           st.sampled_from([0.0, 1.0, 3.0, 20.0, 60.0, 150.0, 400.0]),
                           st.sampled_from([0.0, 0.0, 0.01, 0.05])),
                 min_size=1, max_size=20)
"""(start, src, dst, bytes, gap): each sender sends its message, waits ``gap``, sends it again
(a warm connection, or one restarted after idle). Four senders at most, so messages meet."""

faults = st.lists(st.tuples(st.floats(0, 0.1), st.sampled_from(["node", "edge", "up"]),
                            st.integers(0, 20)), max_size=2)


def run(topology, model: str, tcp: TcpConfig, plan: list, fault_plan: list,
        ramps: bool) -> tuple[list, World]:
    """Run ``plan`` with ``fault_plan``; returns each message's (end or cut time) and the world."""
    TcpTransport.lone_ramps = ramps
    try:
        world = World(topology, network=NetworkConfig(model=model, transport="tcp", tcp=tcp))
    finally:
        TcpTransport.lone_ramps = True
    world.network.lone_ramps = ramps  # (an instance attribute: what the run uses)
    n = world.num_nodes
    edges = sorted(world.network.graph.edges)
    ends: list = [None] * (2 * len(plan))
    world.queued = []  # (src, dst, message, when) in the order messages joined a connection

    def send(i, t, a, b, size, gap):
        yield world.env.timeout(t)
        for k in (0, 1):
            world.queued.append((a % n, b % n, 2 * i + k, world.now))
            try:
                delivery = yield world.network.transfer(a % n, b % n, size)
                ends[2 * i + k] = delivery.end_s
            except SimFailure:
                ends[2 * i + k] = ("cut", world.now)
            yield world.env.timeout(gap)

    def fault(t, kind, index):
        yield world.env.timeout(t)
        if kind == "node":
            world.nodes[index % n].fail()
        elif edges:
            u, v = edges[index % len(edges)]
            world.network.set_link_state(u, v, False)
            if kind == "up":
                yield world.env.timeout(0.01)
                world.network.set_link_state(u, v, True)

    for i, item in enumerate(plan):
        world.env.process(send(i, *item))
    for item in fault_plan:
        world.env.process(fault(*item))
    world.env.run()
    return ends, world


def queued_in_another_order(fast: World, slow: World) -> bool:
    """Whether two messages joined one connection in another order in the two runs.

    Messages on a connection go in the order they are sent. Two runs that agree only to
    ``RAMP_REL`` can send two messages of one connection an ulp apart in either order (a send
    after one delivery plus a gap, another after another delivery, at one instant in exact
    arithmetic): then the queues differ and so do the deliveries, by design. Such a draw has no
    answer to compare; any other difference in order is a failure (the times show it).
    """
    def order(world: World) -> dict:
        per_pair: dict = {}
        for src, dst, message, when in world.queued:
            per_pair.setdefault((src, dst), []).append((message, when))
        return per_pair

    mine, theirs = order(fast), order(slow)
    for pair, queue in mine.items():
        other = theirs.get(pair, [])
        if [m for m, _ in queue] == [m for m, _ in other]:
            continue
        when = dict(other)
        return all(abs(t - when.get(m, t)) <= RAMP_REL * max(abs(t), 1e-3) for m, t in queue)
    return False


def assert_runs_agree(got: list, fast: World, want: list, slow: World) -> None:
    """Two runs of one plan agree to ``RAMP_REL``: every delivery and cut time, the rounds, the
    bytes sent, received and cut, each link's bytes, and nothing left in flight.

    A draw whose two runs queued one connection's messages in another order, within
    ``RAMP_REL`` of a tie, is rejected (:func:`queued_in_another_order`).
    """
    if queued_in_another_order(fast, slow):
        reject()
    for a, b in zip(got, want, strict=True):
        if isinstance(b, tuple):
            assert a == ("cut", pytest.approx(b[1], rel=RAMP_REL, abs=1e-12))
        else:
            assert a == pytest.approx(b, rel=RAMP_REL, abs=1e-12)
    assert fast.network.rounds_started == slow.network.rounds_started
    for field in ("bytes_sent", "bytes_received", "bytes_cut"):
        assert getattr(fast.recorder, field) == pytest.approx(getattr(slow.recorder, field),
                                                              rel=RAMP_REL, abs=1e-9)
    assert dict(fast.recorder.link_bytes) == pytest.approx(dict(slow.recorder.link_bytes),
                                                           rel=RAMP_REL, abs=1e-9)
    assert fast.network.active_flows == slow.network.active_flows == 0


@settings(max_examples=150, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]), tcp=configs,
       plan=plans, fault_plan=faults)
def test_closed_form_ramps_equal_the_per_round_mechanism(topology, model, tcp, plan, fault_plan):
    """Lone and contended connections, ramps taken over at random instants (in a chunk, in a
    wait, at a round's edge), cut by node and link failures, idle restarts, window caps,
    HyStart's exit: every delivery and cut time, every byte count equal the oracle's."""
    got, fast = run(topology, model, tcp, plan, fault_plan, ramps=True)
    want, slow = run(topology, model, tcp, plan, fault_plan, ramps=False)
    assert_runs_agree(got, fast, want, slow)
    assert slow.network.ramps_started == 0
    if model == "ideal" and not fault_plan and any(
            size > 0 and a % fast.num_nodes != b % fast.num_nodes for _, a, b, size, _ in plan):
        assert fast.network.ramps_started > 0  # (under ideal every message ramps)
