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
