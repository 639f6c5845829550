"""The ``tcp`` transport's round mechanics: what they cost, and that cheaper is the same run.

Connections that wake at one instant (the end of a round that started together) share one SimPy
timer. The oracle is the same transport with ``shared_wakes = False`` (a timer per wake): every
delivery and cut time, every byte count and the rounds must be equal **bit for bit** (the shared
timer processes the same wakes in the same order, with nothing in between).

The edges of one-node leaf sites carry the same messages as those nodes' access links, so their
senders are not counted (``counts_leaf_edges = False``); the oracle counts them: bit for bit.

A chunk followed at once by the connection's next one stays on its links (``continued_chunks``)
instead of leaving them and joining again, two re-ratings that give the same rates up to
rounding. The oracle is ``continued_chunks = False``; stated tolerance: times and bytes within
``RAMP_REL = 1e-9`` relative (the closed-form ramps' tolerance), the same rounds.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import NetworkConfig
from sim.network.tcp import Connection, TcpConfig, TcpTransport, slow_start_send_time_s
from sim.world import World
from topologies import clusters_of_clusters
from topologies.topology import from_graph

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
    before = getattr(TcpTransport, switch)
    setattr(TcpTransport, switch, on)
    try:
        return run(topology, model, tcp, plan, fault_plan, ramps)
    finally:
        setattr(TcpTransport, switch, before)


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


@settings(max_examples=120, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]), tcp=configs,
       plan=plans, fault_plan=faults, ramps=st.booleans())
def test_leaf_edges_left_uncounted_change_no_bit(topology, model, tcp, plan, fault_plan, ramps):
    """Random senders on switches and data centres (access links finite or not), failures, links
    down and up again (routes that change under a warm connection), idle restarts, ramps on and
    off: counting a path's senders without the leaf edges is the same run, not a close one."""
    got, fast = run_with("counts_leaf_edges", False, topology, model, tcp, plan, fault_plan,
                         ramps)
    want, slow = run_with("counts_leaf_edges", True, topology, model, tcp, plan, fault_plan,
                          ramps)
    assert got == want
    for name in ("rounds_started", "ramps_started", "ramps_interrupted", "ramps_shared"):
        assert getattr(fast.network, name) == getattr(slow.network, name)
    for field in ("bytes_sent", "bytes_received", "bytes_cut"):
        assert list(getattr(fast.recorder, field)) == list(getattr(slow.recorder, field))
    assert fast.env.events_processed == slow.env.events_processed


def coc_world(n: int = 6, *, access_Bps: float | None = 1e6) -> World:
    """Three data centres of two one-node sites each, access links of ``access_Bps``."""
    topology = clusters_of_clusters(n, num_clusters=3, intra_latency_s=0.002,
                                    intra_bandwidth_Bps=1e9, wan_latency_s=0.01,
                                    wan_bandwidth_Bps=1e7)
    return World(topology, network=NetworkConfig(model="maxmin", transport="tcp",
                                                 uplink_Bps=access_Bps, downlink_Bps=access_Bps))


def test_a_path_counts_its_access_links_not_the_leaf_edges_behind_them():
    """Hand example: node 0 (data centre 0) to node 2 (data centre 1). There: up:0, n0->dc0,
    dc0->dc1, dc1->n2, down:2; back the same from node 2. Counted: the access links and the WAN
    links, 6 of 10; the edges are left in when the access links are infinite (not on the path).
    With every link counted, each leaf edge has as many senders as its access link throughout."""
    world = coc_world()
    world.network.transfer(0, 2, 1e5)
    conn = world.network._pairs[(0, 2)]
    names = [world.network.link_names[x] for x in conn.links]
    assert names == ["up:0", "dc0->dc1", "down:2", "up:2", "dc1->dc0", "down:0"]
    open_access = coc_world(access_Bps=None)
    open_access.network.transfer(0, 2, 1e5)
    conn = open_access.network._pairs[(0, 2)]
    names = [open_access.network.link_names[x] for x in conn.links]
    assert names == ["n0->dc0", "dc0->dc1", "dc1->n2", "n2->dc1", "dc1->dc0", "dc0->n0"]
    # a leaf site of two nodes: its edge carries both nodes' messages, so it stays counted
    graph = nx.Graph()
    graph.add_edge("a", "hub", latency_s=0.001, bandwidth_Bps=1e6)
    graph.add_edge("b", "hub", latency_s=0.001, bandwidth_Bps=1e6)
    shared = World(from_graph(graph, ["a", "a", "b"]),
                   network=NetworkConfig(model="maxmin", transport="tcp", uplink_Bps=1e6,
                                         downlink_Bps=1e6))
    net = shared.network
    assert {net.link_names[x] for x in net._uncounted} == {"b->hub", "hub->b"}
    saved, TcpTransport.counts_leaf_edges = TcpTransport.counts_leaf_edges, True
    try:
        world = coc_world()
    finally:
        TcpTransport.counts_leaf_edges = saved
    net = world.network
    pairs = [(0, 2), (1, 2), (3, 0), (4, 1), (2, 5), (5, 3)]
    for src, dst in pairs:
        net.transfer(src, dst, 2e5)
    access = {}  # leaf edge -> its node's access link
    for node, site in enumerate(net.node_sites):
        (hub,) = net.graph.neighbors(site)
        access[net._edge_link[(site, hub)]] = net._uplink[node]
        access[net._edge_link[(hub, site)]] = net._downlink[node]
    checked = 0
    while world.env.peek() < float("inf"):
        world.env.step()
        assert all(net._senders[e] == net._senders[a] for e, a in access.items())
        checked += any(net._senders[e] > 0 for e in access)
    assert checked > 10 and sum(net._senders) == 0


def test_a_warm_connection_keeps_its_path_until_a_route_changes():
    """The round trip and counted links are made once per connection: a second message finds
    them (the same tuple), and a WAN link down makes them again from the detour (node 0 to
    node 2 through data centre 2: two WAN hops of 10 ms each way, RTT 2 x 22 ms), and up again
    from the direct route (RTT 2 x 12 ms)."""
    world = coc_world()
    net = world.network
    ends = []

    def sender():
        for when in (0.0, 5.0, 10.0):
            yield world.env.timeout(when - world.now)
            if when == 5.0:
                net.set_link_state("dc0", "dc1", False)
            if when == 10.0:
                net.set_link_state("dc0", "dc1", True)
            conn = net._pairs.get((0, 2))
            before = conn.links if conn is not None else None
            delivery = yield net.transfer(0, 2, 1e4)
            ends.append((net._pairs[(0, 2)].rtt_s, net._pairs[(0, 2)].links is before))
            assert delivery.end_s > when

    def warm():
        yield world.env.timeout(1.0)
        before = net._pairs[(0, 2)].links
        yield net.transfer(0, 2, 1e4)
        ends.append(("warm", net._pairs[(0, 2)].links is before))

    world.env.process(sender())
    world.env.process(warm())
    world.env.run()
    assert ends[0] == (pytest.approx(2 * 0.012, rel=1e-12), False)
    assert ends[1] == ("warm", True)
    assert ends[2] == (pytest.approx(2 * 0.022, rel=1e-12), False)
    assert ends[3] == (pytest.approx(2 * 0.012, rel=1e-12), False)


@pytest.mark.parametrize("ack_frame", [0, 66])
def test_a_message_queued_on_an_older_route_takes_the_way_back_of_now(ack_frame):
    """A message made on the detour (link dc0-dc1 down: node 0 -> dc0 -> dc2 -> dc1 -> node 2,
    22 ms one way) waits behind another on its connection while the link comes back up; when
    it starts, its round trip is its own detour out and today's direct way back: 22 + 12 ms.
    Under ACK demand the model renews the pair's way back on its own (``Pair.back_epoch``),
    which once left the connection's kept path stale: 22 + 22 ms, and a delivery 12% late.
    The delivery equals the one with the path made again for every message."""

    def run(remake_every_message: bool) -> tuple[float, float]:
        topology = clusters_of_clusters(6, num_clusters=3, intra_latency_s=0.002,
                                        intra_bandwidth_Bps=1e9, wan_latency_s=0.01,
                                        wan_bandwidth_Bps=1e7)
        world = World(topology, network=NetworkConfig(
            model="maxmin", transport="tcp", uplink_Bps=1e8, downlink_Bps=1e8,
            tcp=TcpConfig(ack_frame_bytes=ack_frame, rounds="burst", max_window_bytes=65536)))
        net = world.network
        if remake_every_message:
            plain = net._next_message

            def remade(conn, flow):
                conn.path_links = None  # no kept path: made from this message's route
                plain(conn, flow)
            net._next_message = remade
        out = []

        def sender():
            net.set_link_state("dc0", "dc1", False)
            yield world.env.timeout(0.1)
            first = net.transfer(0, 2, 1e6)
            second = net.transfer(0, 2, 1e6)  # queued behind the first, on the detour
            for src, dst in ((0, 1), (3, 2), (1, 2)):
                net.transfer(src, dst, 1e8)
            yield world.env.timeout(0.1)
            net.set_link_state("dc0", "dc1", True)
            yield first
            delivery = yield second
            out.extend((net._pairs[(0, 2)].rtt_s, delivery.end_s))

        world.env.process(sender())
        world.env.run()
        return out[0], out[1]

    rtt_s, end_s = run(remake_every_message=False)
    assert rtt_s == pytest.approx(0.022 + 0.012, rel=1e-12)
    assert (rtt_s, end_s) == run(remake_every_message=True)
