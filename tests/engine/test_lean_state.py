"""State a world keeps per node and per connection is made when needed, with the same behaviour.

A world of 100,000 nodes keeps 100,000 nodes and about two ``tcp`` connections per node, so
what each holds matters (docs/performance.md, node scaling). Two things are made only when
used: a connection's queue of waiting messages, and a node's failure, recovery and notice
events. These tests check that the lazy versions behave exactly as eager ones would: the same
deliveries, the same values, and the same number of processed events (the run summary reports
it, and the snapshot of the shipped scenarios compares it).
"""

from __future__ import annotations

import pytest

from sim.network.tcp import TcpConfig

from .conftest import make_world


def tcp_world(n: int = 3):
    return make_world(n, model="maxmin", latency_s=0.01, bandwidth_Bps=12.5e6,
                      transport="tcp", tcp=TcpConfig())


def test_a_connection_makes_its_queue_only_when_a_message_waits():
    world = tcp_world()
    net = world.network
    alone = net.transfer(0, 1, 1e6)
    first, second = net.transfer(0, 2, 1e6), net.transfer(0, 2, 1e6)
    world.env.run()
    assert net._connections[(0, 1)].queue is None      # one message at a time: no queue
    assert net._connections[(0, 2)].queue is not None  # the second waited behind the first
    assert first.value.end_s < second.value.end_s      # in order, on one byte stream
    later = net.transfer(0, 1, 1e6)                    # the idle connection takes it at once
    world.env.run()
    assert later.value.start_s >= alone.value.end_s
    assert net._connections[(0, 1)].queue is None
    assert world.recorder.bytes_received[1] == 2e6 and world.recorder.bytes_received[2] == 2e6


def _fail_and_recover(ask: bool) -> tuple[int, list]:
    """Notice, failure and recovery of node 0; ``ask``: something waits on each event first."""
    world = make_world(2)
    node, env = world.nodes[0], world.env
    seen: list = []
    if ask:
        for event in (node.notice_event(), node.failed_event(), node.recovered_event()):
            event.callbacks.append(lambda ev: seen.append((env.now, ev.value)))

    def script():
        yield env.timeout(1.0)
        node.give_notice(kill_at_s=3.0)
        yield env.timeout(2.0)
        node.fail("spot")
        yield env.timeout(1.5)
        node.recover()
        yield env.timeout(1.0)

    env.process(script())
    env.run()
    return env.events_processed, seen


def test_a_nodes_failure_events_fire_alike_whether_or_not_anyone_waits():
    asked, seen = _fail_and_recover(ask=True)
    unasked, nobody = _fail_and_recover(ask=False)
    assert seen == [(1.0, 3.0), (3.0, "spot"), (4.5, 4.5)]
    assert nobody == []
    assert asked == unasked  # an event nobody asked for is still made and processed


def test_a_nodes_next_failure_event_is_a_new_one():
    world = make_world(1)
    node = world.nodes[0]
    before = node.failed_event()
    assert node.failed_event() is before  # the same event until it fires
    node.fail("crash")
    after = node.failed_event()
    assert before.triggered and not after.triggered and after is not before
    with pytest.raises(AttributeError):
        node.some_new_field = 1  # fixed slots: a typo cannot add a field


def test_bytes_per_link_are_counted_by_name_with_empty_and_cut_messages():
    """``Recorder.link_bytes`` (a flat array by link id inside) reads as bytes per link name.

    The oracle sums each message's bytes over the names of its route's links: a delivered
    message counts whole, an empty one puts its links in the record with 0 bytes, a message
    cut half-way counts the half that left. Links nothing crossed are absent.
    """
    world = make_world(4, model="maxmin", bandwidth_Bps=1e6)
    net, env = world.network, world.env
    delivered = net.transfer(0, 1, 1e6)
    empty = net.transfer(2, 0, 0)
    halfway = net.transfer(1, 2, 1e6)
    env.run(until=0.5)
    assert net.cancel(1, halfway)
    env.run()
    assert delivered.ok and empty.ok and not halfway.ok
    expected: dict[str, float] = {}
    for (src, dst), nbytes in (((0, 1), 1e6), ((2, 0), 0.0), ((1, 2), 0.5e6)):
        for link in net.route(src, dst)[0]:
            name = net.link_names[link]
            expected[name] = expected.get(name, 0.0) + nbytes
    assert len(expected) == 6 and 0.0 in expected.values()  # node 3's links: not crossed
    assert dict(world.recorder.link_bytes) == pytest.approx(expected)
    table = world.recorder.bytes_by_link()
    assert list(table["link"]) == sorted(expected)


def _ring_of_three_under_tcp(hop_s: float):
    """Three sites in a ring, a node each, ``hop_s`` per hop, 1 GB/s links; ``tcp`` on ``ideal``."""
    from sim.config import NetworkConfig
    from sim.world import World
    from topologies import ring

    return World(ring(3, latency_s=hop_s, bandwidth_Bps=1e9),
                 network=NetworkConfig(model="ideal", transport="tcp", tcp=TcpConfig()))


def test_a_connection_takes_the_new_route_back_after_a_link_changes():
    """A tcp connection keeps the route back between messages, until a link changes state.

    On a ring of 3 sites (one hop of ``L`` each), 0 -> 1 and back are one hop: RTT ``2 L``.
    With the edge between them down both ways go round (``2 L`` each): RTT ``4 L``; a route
    back kept from before would give ``3 L``. With the edge up again: ``2 L``.
    """
    hop_s = 0.01
    world = _ring_of_three_under_tcp(hop_s)
    net, env = world.network, world.env
    site0, site1 = world.nodes[0].site, world.nodes[1].site
    rtts = []
    for up in (True, False, True):
        net.set_link_state(site0, site1, up=up)
        done = net.transfer(0, 1, 1e5)
        env.run()
        assert done.ok
        rtts.append(net._connections[(0, 1)].rtt_s)
    assert rtts == pytest.approx([2 * hop_s, 4 * hop_s, 2 * hop_s])


def test_a_route_carries_its_bottleneck_capacity():
    """The route cached per node pair keeps the smallest capacity on its way.

    A ring of 3 sites with 1 GB/s edges, 100 MB/s uplinks and 200 MB/s downlinks (given by
    hand here, the oracle): every route's bottleneck is the uplink, 1e8; with the edge 0-1 down
    the route goes round and is still bounded by the uplink; ``path_bandwidth_Bps`` is that
    times the transport's efficiency (1448 / 1514 for ``tcp``), and ``ideal`` sends a message
    at exactly that rate (1e6 bytes: 1e6 / (1e8 x 1448 / 1514) s plus the hop's latency).
    """
    from sim.config import NetworkConfig
    from sim.world import World
    from topologies import ring

    world = World(ring(3, latency_s=0.01, bandwidth_Bps=1e9),
                  network=NetworkConfig(model="ideal", transport="tcp", tcp=TcpConfig(),
                                        uplink_Bps=1e8, downlink_Bps=2e8))
    net = world.network
    efficiency = 1448 / 1514
    for src, dst in ((0, 1), (1, 2), (2, 0)):
        links, latency_s, bottleneck_Bps = net.route(src, dst)
        assert bottleneck_Bps == min(net.capacity_Bps[link] for link in links) == 1e8
        assert net.path_bandwidth_Bps(src, dst) == pytest.approx(1e8 * efficiency, rel=1e-15)
    net.set_link_state(world.nodes[0].site, world.nodes[1].site, up=False)
    links, latency_s, bottleneck_Bps = net.route(0, 1)
    assert len(links) == 4 and latency_s == pytest.approx(0.02) and bottleneck_Bps == 1e8
    net.set_link_state(world.nodes[0].site, world.nodes[1].site, up=True)
    cfg = NetworkConfig(model="ideal", transport="fluid", uplink_Bps=1e8, downlink_Bps=2e8)
    world = World(ring(3, latency_s=0.01, bandwidth_Bps=1e9), network=cfg)
    done = world.network.transfer(0, 1, 1e6)
    world.env.run()
    assert done.value.end_s == pytest.approx(1e6 / 1e8 + 0.01, rel=1e-12)


def test_timers_carry_their_flow_and_call_a_method():
    """The timer of a message's propagation (and of its send under ``ideal``) carries the flow.

    Its callback is a bound method of the network, not a closure made per message (a
    function, its cells): at 100,000 nodes those objects are touched again only after the
    whole round's other messages, out of the caches.
    """
    import inspect

    world = make_world(2, model="ideal", latency_s=0.01, bandwidth_Bps=1e6)
    net, env = world.network, world.env
    net.transfer(0, 1, 1e3)
    (flow,) = net._flows.values()
    for _ in range(2):  # the send, then the propagation
        pending = [event for bucket in env._buckets.values() for event in bucket]
        timers = [event for event in pending if event.value is flow]
        assert len(timers) == 1
        assert all(inspect.ismethod(callback) and callback.__self__ is net
                   for callback in timers[0].callbacks)
        env.step()
    env.run()
    assert flow.state == "done"


def test_a_timer_refuses_a_negative_delay_as_simpy_does():
    """The engine's own :class:`~sim.timer.Timer` stands in for ``simpy.Timeout``: it must not
    move the clock back either (a bad speed or straggler factor would corrupt the run)."""
    import simpy

    from sim.timer import Timer

    world = make_world(2, model="ideal", latency_s=0.01, bandwidth_Bps=1e6)
    world.env.run(until=1.0)
    with pytest.raises(ValueError, match="Negative delay"):
        simpy.Timeout(world.env, -0.5)
    with pytest.raises(ValueError, match="Negative delay"):
        Timer(world.env, -0.5, None, lambda timer: None)
    fired: list[float] = []
    Timer(world.env, 0.0, None, lambda timer: fired.append(world.env.now))
    world.env.run()
    assert fired == [1.0]


def test_one_record_per_node_pair_holds_its_route_and_its_connection():
    """A message finds its route and its ``tcp`` connection in one record per node pair.

    Ring of 3 sites, one hop of 10 ms each (the oracle, by hand): 0 -> 1 is one hop. The
    flow's connection is the pair's record; with the edge 0-1 down the record's route goes
    round (two hops, 20 ms) and the message arrives after it; with the edge back, one hop
    again. The route back (for the round trip) is kept in the same record: the pair (1, 0),
    which sends nothing, has none.
    """
    hop_s = 0.01
    world = _ring_of_three_under_tcp(hop_s)
    net, env = world.network, world.env
    site0, site1 = world.nodes[0].site, world.nodes[1].site
    latencies = []
    for up in (True, False, True):
        net.set_link_state(site0, site1, up=up)
        net.transfer(0, 1, 1e3)
        (flow,) = net._flows.values()
        assert flow.transport is net._pairs[(0, 1)]  # one record: route and connection
        latencies.append(flow.latency_s)
        assert flow.latency_s == net.route(0, 1)[1]
        env.run()
    assert latencies == pytest.approx([hop_s, 2 * hop_s, hop_s])
    assert net._pairs[(0, 1)].back == net.route(1, 0)  # the route back, in the same record
    assert list(net._pairs) == [(0, 1)] == list(net._connections)  # only the pair that sent


def test_asking_for_routes_makes_no_per_pair_record():
    """A planner prices every ordered pair (N^2 routes); none of them gets a record.

    Only a pair that sends keeps a record (under ``tcp`` its connection, ~230 bytes). On a
    ring of 3 sites (10 ms per hop, by hand) every route is asked for, before and after the
    edge 0-1 goes down (then 0 -> 1 goes round: 20 ms): the network holds no record; after a
    message 0 -> 1, exactly one, whose latency is the route asked for.
    """
    hop_s = 0.01
    world = _ring_of_three_under_tcp(hop_s)
    net, env = world.network, world.env
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    assert all(net.route(i, j)[1] == pytest.approx(hop_s) for i, j in pairs)
    assert net.path_latency_s(0, 1) == pytest.approx(hop_s) and not net._pairs
    net.set_link_state(world.nodes[0].site, world.nodes[1].site, up=False)
    assert net.route(0, 1)[1] == pytest.approx(2 * hop_s) and not net._pairs
    net.transfer(0, 1, 1e3)
    (flow,) = net._flows.values()
    assert flow.latency_s == pytest.approx(2 * hop_s) and list(net._pairs) == [(0, 1)]
    env.run()


def test_asking_every_route_of_a_world_keeps_no_memory_per_pair():
    """All N (N - 1) routes of 150 nodes, each at its own site behind one switch, asked once.

    The routes from the switch to each node are kept (N of them: asked first, outside the
    count); what asking the 22,350 node pairs then keeps, traced by ``tracemalloc``, is under
    40 bytes per pair: a record per pair (a connection, ~230 bytes) or a route kept per pair
    of sites (a tuple key and a route, ~200 bytes) would be 5 times more. (Not 0: CPython
    keeps up to 2,000 freed tuples of each size for reuse, and tracemalloc counts them.)
    """
    import tracemalloc

    n = 150
    world = make_world(n, model="ideal", latency_s=0.01, bandwidth_Bps=1e9, transport="tcp",
                       tcp=TcpConfig())
    net = world.network
    for j in range(1, n):
        assert net.route(0, j)[1] == pytest.approx(0.01)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    total_s = 0.0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, j in pairs:
            total_s += net.path_latency_s(i, j)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert total_s == pytest.approx(0.01 * len(pairs))
    assert kept < 40 * len(pairs) and not net._pairs


def test_the_network_reads_up_flags_that_follow_failures_and_recoveries():
    """A message to or from a node that is down is cut at once; after recovery it goes.

    The network keeps a byte per node (``node_up``) instead of reading two ``Node`` objects
    per message: it must follow :meth:`Node.fail` and :meth:`Node.recover` exactly. Oracle:
    the delivery time of 1e3 bytes at 1e6 B/s plus 10 ms of latency under ``ideal``: 11 ms.
    """
    from sim.errors import TransferCut

    world = make_world(2, model="ideal", latency_s=0.01, bandwidth_Bps=1e6)
    net, env, node = world.network, world.env, world.nodes[1]
    assert list(net.node_up) == [1, 1]
    node.fail("crash")
    assert list(net.node_up) == [1, 0]
    for src, dst, end in ((0, 1, "destination"), (1, 0, "source")):
        cut = net.transfer(src, dst, 1e3)
        assert not cut.ok and isinstance(cut.value, TransferCut)
        assert f"{end} node 1 is down" in str(cut.value)
    node.recover()
    assert list(net.node_up) == [1, 1]
    done = net.transfer(0, 1, 1e3)
    env.run()
    assert done.ok and done.value.end_s - done.value.start_s == pytest.approx(0.011, rel=1e-12)


def test_a_delivery_is_the_frozen_dataclass_its_constructor_makes():
    """The network makes a message's ``Delivery`` through its slots (faster than the frozen
    dataclass's ``__init__``): the value must be the object the constructor would make, equal,
    with the same hash and repr, and still frozen. Oracle: 1e3 bytes at 1e6 B/s plus 10 ms
    of latency under ``ideal``, sent at 0: it arrives at 11 ms."""
    import dataclasses

    from sim.network.base import Delivery

    world = make_world(2, model="ideal", latency_s=0.01, bandwidth_Bps=1e6)
    done = world.network.transfer(0, 1, 1e3, "grad")
    world.env.run()
    expected = Delivery(0, 1, 1e3, done.value.start_s, done.value.end_s, "grad")
    assert done.value.start_s == 0 and done.value.end_s == pytest.approx(0.011, rel=1e-12)
    assert type(done.value) is Delivery and done.value == expected
    assert hash(done.value) == hash(expected) and repr(done.value) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.value.nbytes = 0


@pytest.mark.parametrize("model", ["ideal", "maxmin"])
def test_a_failure_cuts_exactly_the_nodes_flows_in_flight_which_are_counted(model):
    """Each node counts its flows in flight, so that a failure looks for them only while it has
    some and stops at its last. Every node of five sends to every other; node 2 fails while
    the messages fly: exactly the 8 to or from it are cut (the other 12 arrive), in the order
    they started, and at every step each node's count equals a recount of the flows in flight.
    """
    from sim.errors import TransferCut

    world = make_world(5, model=model, latency_s=0.01, bandwidth_Bps=1e6)
    net, env = world.network, world.env
    sent = {(a, b): net.transfer(a, b, 1e4) for a in range(5) for b in range(5) if a != b}
    for event in sent.values():
        event.defused = True

    def counts_hold() -> bool:
        recount = [0] * 5
        for flow in net._flows.values():
            recount[flow.src] += 1
            recount[flow.dst] += 1
        return net._flows_of_node == recount

    assert counts_hold() and net._flows_of_node == [8] * 5
    env.run(until=0.005)
    cuts: list[tuple[int, int]] = []
    world.recorder.event = lambda kind, **fields: (  # type: ignore[method-assign]
        cuts.append((fields["node"], fields["peer"]))
        if kind == "transfer_cut" and fields["role"] == "sender" else None)
    world.nodes[2].fail("crash")
    assert counts_hold() and net._flows_of_node[2] == 0
    assert cuts == [(a, b) for (a, b) in sent if 2 in (a, b)]  # in the order they started
    while env.peek() != float("inf"):
        env.step()
        assert counts_hold()
    for (a, b), event in sent.items():
        assert isinstance(event.value, TransferCut) == (2 in (a, b))
    assert net._flows_of_node == [0] * 5
