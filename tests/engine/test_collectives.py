"""Collectives against their alpha-beta closed forms."""

from __future__ import annotations

import networkx as nx
import pytest

from sim import collectives as C
from sim.errors import CollectiveAborted

from .conftest import make_world

ALPHA, BETA, M = 0.02, 1e6, 4e6


@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_ring_allreduce_matches_closed_form(model, k):
    world = make_world(k, model=model, latency_s=ALPHA, bandwidth_Bps=BETA)
    proc = C.ring_allreduce(world, world.nodes, M)
    world.env.run()
    expected = 2 * (k - 1) * ALPHA + 2 * (k - 1) / k * M / BETA
    assert proc.value == pytest.approx(expected, rel=0.01)
    assert C.ring_allreduce_cost(k, M, ALPHA, BETA) == pytest.approx(expected)
    # every node sent 2(k-1) chunks of M/k
    assert world.recorder.bytes_sent == pytest.approx([2 * (k - 1) * M / k] * k)


@pytest.mark.parametrize("k", [4, 8, 6])
def test_halving_doubling_and_tree_match_closed_forms(k):
    world = make_world(k, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    hd = C.halving_doubling_allreduce(world, world.nodes, M)
    world.env.run()
    closed = C.halving_doubling_cost(k, M, ALPHA, BETA)
    if k & (k - 1) == 0:
        assert hd.value == pytest.approx(closed, rel=0.01)
    else:
        # Without a global barrier the core nodes start halving while the extra nodes fold in,
        # so a partner's downlink carries both: slower than the barrier-synchronous closed form.
        assert closed < hd.value < closed + M / BETA
    tree = C.tree_allreduce(world, world.nodes, M)
    world.env.run()
    assert tree.value == pytest.approx(C.tree_allreduce_cost(k, M, ALPHA, BETA), rel=0.01)


def test_reduce_scatter_all_gather_broadcast_pairwise():
    k = 8
    world = make_world(k, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    for fn, cost in [(C.reduce_scatter, C.reduce_scatter_cost), (C.all_gather, C.all_gather_cost),
                     (C.broadcast, C.broadcast_cost)]:
        proc = fn(world, world.nodes, M)
        world.env.run()
        assert proc.value == pytest.approx(cost(k, M, ALPHA, BETA), rel=0.01), fn.__name__
    proc = C.pairwise_exchange(world, [(0, 1), (2, 3)], M)
    world.env.run()
    assert proc.value == pytest.approx(C.pairwise_exchange_cost(M, ALPHA, BETA), rel=1e-9)


def test_gossip_round_shares_the_uplink_under_maxmin():
    k = 6
    world = make_world(k, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    ring = nx.cycle_graph(k)
    proc = C.gossip_round(world, ring, M)
    world.env.run()
    assert proc.value == pytest.approx(C.gossip_round_cost(2, M, ALPHA, BETA), rel=0.01)


def test_ring_is_bottlenecked_by_one_slow_uplink():
    k, slow = 8, 0.1 * BETA
    uplink = tuple([slow] + [None] * (k - 1))
    world = make_world(k, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA, uplink=uplink)
    proc = C.ring_allreduce(world, world.nodes, M)
    world.env.run()
    # every one of the 2(k-1) rounds waits for node 0's chunk over its slow uplink
    expected = 2 * (k - 1) * (ALPHA + M / k / slow)
    assert proc.value == pytest.approx(expected, rel=0.01)
    assert proc.value > 5 * C.ring_allreduce_cost(k, M, ALPHA, BETA)


def test_collective_aborts_when_a_member_fails():
    world = make_world(4, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    seen = {}

    def driver():
        try:
            yield C.ring_allreduce(world, world.nodes, M)
        except CollectiveAborted as exc:
            seen["failed"], seen["t"] = exc.failed, world.now

    def killer():
        yield world.env.timeout(1.0)
        world.nodes[2].fail()

    world.env.process(driver())
    world.env.process(killer())
    world.env.run()
    assert seen == {"failed": [2], "t": 1.0}


def test_an_aborted_collective_cuts_its_messages_in_flight():
    world = make_world(4, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)

    def driver():
        with pytest.raises(CollectiveAborted):
            yield C.ring_allreduce(world, world.nodes, M)

    def killer():
        yield world.env.timeout(0.5)
        world.nodes[2].fail()

    world.env.process(driver())
    world.env.process(killer())
    world.env.run(until=0.5 + 1e-9)
    assert world.network.active_flows == 0  # nobody keeps sending for a dead collective
    rec = world.recorder
    assert rec.bytes_sent.sum() == pytest.approx(rec.bytes_received.sum() + rec.bytes_cut.sum())
    assert rec.bytes_cut.sum() == pytest.approx(4 * M / 4)  # the four first-round chunks


# -- gloo's ring all-reduce ------------------------------------------------------------------

def test_gloo_schedule_segments_direction_and_bytes():
    """m = 10 MiB over k = 4: S = roundup(max(10, 8), 4) = 12 segments of 873,816 B
    (10 MiB / 12 = 873,813.3, rounded up to whole fp32 elements); 9 iterations per phase;
    rank r sends to r - 1; every rank sends 2 (k-1)/k m bytes give or take the short tail."""
    m = 10 * 2**20
    schedule, fence = C.gloo_ring_allreduce_schedule([0, 1, 2, 3], m)
    assert (len(schedule), fence) == (18, 9)
    assert {(src, dst) for rnd in schedule for src, dst, _ in rnd} == {(1, 0), (2, 1), (3, 2),
                                                                      (0, 3)}
    sizes = {n for rnd in schedule for _, _, n in rnd}
    assert max(sizes) == 873_816 and all(n <= 2**20 for n in sizes)
    assert sum(n for rnd in schedule for _, _, n in rnd) == pytest.approx(4 * 2 * 3 / 4 * m,
                                                                          rel=1e-4)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_gloo_ring_matches_its_closed_form_under_fluid_maxmin(k):
    # two iterations issued together: their notices, then their segments, share each uplink;
    # pairs cost 2 alpha + 2 (s + 48) / beta (the notice's round trip, then the data's)
    m = 64 * 2**20
    world = make_world(k, latency_s=0.01, bandwidth_Bps=12.5e6)
    proc = C.gloo_ring_allreduce(world, list(range(k)), m)
    world.env.run()
    assert proc.value == pytest.approx(C.gloo_ring_allreduce_cost(k, m, 0.01, 12.5e6), rel=1e-9)
    # same bandwidth term as the textbook ring, more latency terms than its 2(k-1)
    textbook = C.ring_allreduce_cost(k, m, 0.01, 12.5e6)
    assert proc.value > textbook


@pytest.mark.parametrize("notice, want_s", [(None, 1.01), (48, 1.068)])
def test_a_rendezvous_waits_for_the_receivers_notice(notice, want_s):
    """A ring shift of 3 nodes (i -> i - 1), 1,000 B each, 10 ms apart at 1,000 B/s. With
    48-byte notices every node sends its notice to its sender at t = 0 (0.048 s on its uplink,
    then 0.01 s); the data leaves at 0.058 s and takes 1 s + 0.01 s: 1.068 s (1.01 s without)."""
    world = make_world(3, latency_s=0.01, bandwidth_Bps=1000.0)
    ring = [[(i, (i - 1) % 3, 1000.0) for i in range(3)]]
    proc = C.run_schedule(world, ring, notice_bytes=notice)
    world.env.run()
    assert proc.value == pytest.approx(want_s, rel=1e-12)


@pytest.mark.parametrize("notice, want_s", [(None, 2.0), (48, 1.644)])
def test_a_sender_waits_for_a_receiver_that_opens_its_round_late(notice, want_s):
    """Round 0: node 3 sends node 0 500 B. Round 1: the ring shift of nodes 0-2 (i -> i - 1,
    1,000 B). 1,000 B/s links, no latency; nodes 1 and 2 open round 1 at once, node 0 when
    its round 0 is done.

    Without a rendezvous node 1's data to node 0 leaves at 0 and shares node 0's downlink with
    node 3's: both at 500 B/s, node 3's ends at 1.0 s; node 0 then sends node 2 its 1,000 B:
    2.0 s. With 48-byte notices: node 0's notice reaches node 3 at 0.048 s, whose 500 B end at
    0.548 s. Node 0 then opens round 1: its data to node 2 (whose notice came at 0.048 s) and
    its notice to node 1 share its uplink, 500 B/s each: the notice arrives at 0.644 s, and node
    1's 1,000 B end at 1.644 s (node 0's at 0.644 + 952 / 1000 = 1.596 s, node 2's at 1.048 s).
    The wait can also save time: node 1's data no longer competes with node 3's.
    """
    world = make_world(4, bandwidth_Bps=1000.0)
    schedule = [[(3, 0, 500.0)], [(i, (i - 1) % 3, 1000.0) for i in range(3)]]
    proc = C.run_schedule(world, schedule, notice_bytes=notice)
    world.env.run()
    assert proc.value == pytest.approx(want_s, rel=1e-12)


def test_gloo_ring_keeps_the_link_busy_on_one_tcp_connection():
    """Under the tcp transport a rank's segments to its neighbour go in order on one warm
    connection, so with two in flight the next is queued while one is on the wire: the
    all-reduce costs about the bandwidth term plus one latency per phase, not one per pair.
    Each link out of a rank carries its data and the ACKs of the data coming in, so the rate per
    direction is the usable capacity / (1 + ack_fraction)."""
    from sim.network.tcp import TcpConfig

    k, m = 4, 64 * 2**20
    world = make_world(k, latency_s=0.0005, bandwidth_Bps=12.5e6, transport="tcp")
    proc = C.gloo_ring_allreduce(world, list(range(k)), m)
    world.env.run()
    rate = 12.5e6 * TcpConfig().efficiency / (1 + TcpConfig().ack_fraction)
    bandwidth = 2 * (k - 1) / k * m / rate
    assert bandwidth < proc.value < bandwidth + 0.5
    assert proc.value < C.gloo_ring_allreduce_cost(k, m, 0.0005, rate)


def test_window_one_is_the_textbook_executor():
    k, m = 4, 8e6
    plain, windowed = make_world(k, latency_s=0.01, bandwidth_Bps=1e7), \
        make_world(k, latency_s=0.01, bandwidth_Bps=1e7)
    a = C.run_schedule(plain, C.ring_allreduce_schedule(list(range(k)), m))
    b = C.run_schedule(windowed, C.ring_allreduce_schedule(list(range(k)), m), window=1)
    plain.env.run()
    windowed.env.run()
    assert a.value == b.value
    assert plain.recorder.trace_hash() == windowed.recorder.trace_hash()


@pytest.mark.parametrize("algorithm", ["tree", "ring", "gloo_ring"])
def test_a_finished_or_aborted_collective_is_freed_without_the_cycle_collector(
        algorithm, monkeypatch):
    """A collective's state (O(messages)) goes when its run ends, by reference counting alone.

    Its deliveries call one bound method kept on the run (not a callable made per message);
    the run drops it when it ends, so no reference cycle keeps the state alive until a full
    collection (at 100,000 nodes a run's state is megabytes, promoted to the oldest
    generation). Checked with the collector off, after a finished run and an aborted one.
    """
    import gc
    import weakref

    runs: list = []
    make_run = C._ScheduleRun.__init__

    def keep_a_weak_reference(self, *args, **kwargs):
        make_run(self, *args, **kwargs)
        runs.append(weakref.ref(self))

    monkeypatch.setattr(C._ScheduleRun, "__init__", keep_a_weak_reference)
    enabled = gc.isenabled()
    gc.disable()
    try:
        world = make_world(8, bandwidth_Bps=1e9, latency_s=0.001)
        done = C.allreduce(world, list(range(8)), 1e7, algorithm)
        world.env.run()
        assert done.ok and done.value > 0
        aborted = C.allreduce(world, list(range(8)), 1e7, algorithm)
        aborted.defused = True  # (its failure is expected: nobody waits for it)
        world.env.run(until=world.env.now + 0.002)
        world.nodes[3].fail("crash")
        world.env.run()
        assert isinstance(aborted.value, CollectiveAborted)
        del done, aborted
        assert len(runs) == 2 and [ref() for ref in runs] == [None, None]
    finally:
        if enabled:
            gc.enable()
