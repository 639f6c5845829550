"""The incremental max-min network against a from-scratch oracle.

The oracle is the textbook water-filling, written here independently of ``sim.network.maxmin``:
raise one water level for all unfrozen flows, find the level at which the next link fills,
freeze every flow through the links that fill at that level, repeat. It re-rates *every* flow.
``NaiveNetwork`` runs it at every flow start and end, which is what the incremental network
must be equivalent to.

With ACK demand (``ack_fraction`` a > 0: the tcp transport's ACKs on each flow's reverse path)
the rates are the fixed point r = maxmin(C - a A r), where (A r)_l sums the rates of the flows
ACKed across link l. The oracle finds it by plain iteration from r = 0, each step a global
water-filling: nothing of the incremental solver's regions or passes.
"""

from __future__ import annotations

import dataclasses
import math
import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import NetworkConfig
from sim.errors import SimFailure
from sim.network.base import Flow, Network
from sim.network.maxmin import ACK_SLACK, VECTOR_MIN_FLOWS, MaxMinNetwork
from sim.network.tcp import TcpConfig, TcpTransport
from sim.world import World
from topologies import clusters_of_clusters, uniform
from topologies.topology import from_graph

REL = 1e-6


def oracle_rates(flows: list[tuple[int, tuple[int, ...]]],
                 capacity: dict[int, float]) -> dict[int, float]:
    """Max-min fair rates (bytes/s) of ``flows`` = [(flow id, links)] by global water-filling."""
    rates: dict[int, float] = {}
    used = {link: 0.0 for _, links in flows for link in links}
    while len(rates) < len(flows):
        unfrozen = [(fid, links) for fid, links in flows if fid not in rates]
        count = {link: 0 for link in used}
        for _, links in unfrozen:
            for link in links:
                count[link] += 1
        frozen_load = {link: 0.0 for link in used}
        for fid, links in flows:
            if fid in rates:
                for link in links:
                    frozen_load[link] += rates[fid]
        level = {link: (capacity[link] - frozen_load[link]) / count[link]
                 for link in used if count[link]}
        lowest = min(level.values())
        full = [link for link, value in level.items() if value <= lowest * (1 + 1e-12)]
        for fid, links in unfrozen:
            if any(link in full for link in links):
                rates[fid] = max(lowest, 0.0)
    return rates


def oracle_rates_with_acks(flows: list[tuple[int, tuple[int, ...], tuple[int, ...]]],
                           capacity: dict[int, float], fraction: float) -> dict[int, float]:
    """Rates of ``flows`` = [(flow id, links, ACK links)]: iterate water-filling to the fixed
    point where each link's capacity is what the ACKs across it leave (see the docstring), the
    ACKs taking at most half of it."""
    rates = {fid: 0.0 for fid, _, _ in flows}
    for _ in range(500):
        acks = dict.fromkeys(capacity, 0.0)
        for fid, _, back in flows:
            for link in back:
                acks[link] += fraction * rates[fid]
        new = oracle_rates([(fid, links) for fid, links, _ in flows],
                           {link: value - min(acks[link], value / 2)
                            for link, value in capacity.items()})
        if all(abs(new[fid] - rates[fid]) <= 1e-14 * new[fid] for fid in new):
            return new
        rates = new
    raise AssertionError("the ACK fixed point did not converge")


def ack_links(net: Network, flow: Flow) -> tuple[int, ...]:
    """The finite links of the flow's reverse path (where its ACKs go)."""
    back = net.route(flow.dst, flow.src)
    return back[0] if back is not None else ()


def expected_rates(net: Network, sending: list[Flow]) -> dict[int, float]:
    """The oracle's rates of the ``sending`` flows of ``net`` (with its ACK demand).

    A flow with a rate cap (``net._caps``: the tcp transport's paced rounds) crosses one more
    link of its own, ``("cap", flow id)``, whose capacity is the cap: water-filling with caps.
    """
    caps = getattr(net, "_caps", {})
    flows = [(f.id, f.links + ((("cap", f.id),) if f.id in caps else ()),
              ack_links(net, f) if net.ack_fraction else ()) for f in sending]
    capacity = {link: net.capacity_Bps[link] * net.efficiency
                for _, links, back in flows for link in (*links, *back)
                if not isinstance(link, tuple)}
    capacity.update({("cap", fid): cap for fid, cap in caps.items()})
    return oracle_rates_with_acks(flows, capacity, net.ack_fraction)


class NaiveNetwork(TcpTransport):
    """Every flow start or end: bring all flows up to now and re-rate all of them (oracle).

    A model like ``maxmin``: under the transport layer, ``fluid`` unless built with ``tcp=``.
    """

    model_name = "naive"

    def _init_model(self) -> None:
        self._sending: dict[int, Flow] = {}
        self._caps: dict[int, float] = {}  # flow id -> rate cap (see expected_rates)
        self._token = 0

    def _set_cap(self, flow: Flow, cap_Bps: float) -> None:
        self._advance()
        if cap_Bps < math.inf:
            self._caps[flow.id] = cap_Bps
        else:
            self._caps.pop(flow.id, None)
        if flow.id in self._sending:
            self._rerate()

    def _start(self, flow: Flow) -> None:
        if flow.nbytes == 0 or not flow.links:
            self._transmitted(flow)
            return
        self._advance()
        self._sending[flow.id] = flow
        self._rerate()

    def _stop(self, flow: Flow) -> None:
        self._advance()
        del self._sending[flow.id]
        self._caps.pop(flow.id, None)
        self._rerate()

    def _advance(self) -> None:
        now = self.env.now
        for flow in self._sending.values():
            flow.remaining -= flow.rate * (now - flow.last_s)
            flow.last_s = now

    def _rerate(self) -> None:
        rates = expected_rates(self, list(self._sending.values()))
        for fid, flow in self._sending.items():
            flow.rate = rates[fid]
        self._token += 1
        if self._sending:
            token = self._token
            wait = min(max(f.remaining, 0.0) / f.rate for f in self._sending.values())
            self.env.timeout(wait).callbacks.append(lambda _ev: self._on_timer(token))

    def _on_timer(self, token: int) -> None:
        if token != self._token:
            return
        self._advance()
        # done: what is left would take less than a rounding error of the clock
        slack_s = 1e-12 * max(1.0, self.env.now)
        done = [f for f in self._sending.values()
                if f.remaining <= f.rate * slack_s + 1e-9 * f.nbytes]
        for flow in done:
            del self._sending[flow.id]
            self._caps.pop(flow.id, None)
        self._rerate()
        for flow in done:
            self._transmitted(flow)


# -- worlds ----------------------------------------------------------------------------------

def access_world(n: int, uplinks: list, downlinks: list, core_Bps: float) -> World:
    """``n`` nodes behind one switch (core links ``core_Bps``) with per-node access links."""
    topo = dataclasses.replace(uniform(n, latency_s=0.001, bandwidth_Bps=core_Bps),
                               uplink_Bps=tuple(uplinks), downlink_Bps=tuple(downlinks))
    return World(topo, network=NetworkConfig(model="maxmin", transport="fluid"))


def datacenter_world(n: int, clusters: int, wan_Bps: float) -> World:
    """Data centres of fast node links joined by slow, shared WAN links."""
    topo = clusters_of_clusters(n, num_clusters=clusters, intra_latency_s=0.001,
                                intra_bandwidth_Bps=10.0, wan_latency_s=0.01,
                                wan_bandwidth_Bps=wan_Bps)
    return World(topo, network=NetworkConfig(model="maxmin", transport="fluid",
                                             tcp_efficiency=0.9))


bandwidth = st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0, 5.0, 8.0]))

fillings = st.sampled_from([VECTOR_MIN_FLOWS, 1])
"""``MaxMinNetwork.vector_min_flows``: the default (small regions in pure Python) or 1 (every
region filled by numpy, :meth:`MaxMinNetwork._fill_arrays`)."""


@st.composite
def worlds(draw) -> World:
    if draw(st.booleans()):
        n = draw(st.integers(2, 7))
        world = access_world(n, draw(st.lists(bandwidth, min_size=n, max_size=n)),
                             draw(st.lists(bandwidth, min_size=n, max_size=n)),
                             draw(st.sampled_from([4.0, 7.0, 1e18])))
    else:
        n = draw(st.integers(3, 8))
        world = datacenter_world(n, draw(st.integers(2, 3)),
                                 draw(st.sampled_from([1.0, 4.0, 20.0])))
    # ACK demand on reverse paths (the tcp transport's, here on fluid flows): none, Linux's
    # size, and a large one that couples links strongly; chased to the exact fixed point
    world.network.ack_fraction = draw(st.sampled_from([0.0, 0.0125, 0.3]))
    world.network.ack_slack = 0.0
    # regions filled in pure Python (the default at these sizes) or all with numpy
    world.network.vector_min_flows = draw(fillings)
    return world


def twin_of(world: World, network: type[Network] | None = None) -> World:
    """The same topology, efficiency and ACK demand; optionally over another network class."""
    efficiency = world.network.efficiency
    twin = World(world.topology, network=NetworkConfig(
        model="maxmin", transport="fluid", tcp_efficiency=efficiency))
    if network is not None:
        twin.network = network(twin, twin.topology, tcp_efficiency=efficiency)
    twin.network.ack_fraction = world.network.ack_fraction
    twin.network.ack_slack = world.network.ack_slack
    if isinstance(world.network, MaxMinNetwork) and isinstance(twin.network, MaxMinNetwork):
        twin.network.vector_min_flows = world.network.vector_min_flows
    return twin


transfers = st.lists(st.tuples(st.floats(0, 3), st.integers(0, 7), st.integers(0, 7),
                               st.floats(0.1, 10)), min_size=1, max_size=30)


def start(world: World, plan: list, kills: list = ()) -> list:
    """Start ``plan`` = [(time_s, src, dst, nbytes)] and ``kills`` = [(time_s, node)]."""
    n = world.num_nodes
    ends: list = [None] * len(plan)

    def send(i, t, a, b, size):
        yield world.env.timeout(t)
        try:
            delivery = yield world.network.transfer(a % n, b % n, size)
            ends[i] = delivery.end_s
        except SimFailure:
            ends[i] = ("cut", world.now)

    def kill(t, node):
        yield world.env.timeout(t)
        world.nodes[node % n].fail()

    for i, item in enumerate(plan):
        world.env.process(send(i, *item))
    for t, node in kills:
        world.env.process(kill(t, node))
    return ends


# -- properties ------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(world=worlds(), plan=transfers, moment=st.floats(1e-6, 6))
def test_rates_equal_global_progressive_filling_at_any_moment(world, plan, moment):
    start(world, plan)
    world.env.run(until=moment)
    net = world.network
    sending = [f for f in net._flows.values() if f.state == "sending" and f.links]
    expected = expected_rates(net, sending)
    assert {f.id: f.rate for f in sending} == {
        fid: pytest.approx(rate, rel=REL) for fid, rate in expected.items()}
    for link in {link for f in sending for link in (*f.links, *ack_links(net, f))}:
        # feasible: no link carries more than its capacity, ACKs included
        usable = net.capacity_Bps[link] * net.efficiency
        load = sum(f.rate for f in sending if link in f.links) + min(usable / 2, (
            net.ack_fraction * sum(f.rate for f in sending if link in ack_links(net, f))))
        assert load <= usable * (1 + REL)


@settings(max_examples=100, deadline=None)
@given(world=worlds(), plan=transfers,
       kills=st.lists(st.tuples(st.floats(0, 4), st.integers(0, 7)), max_size=2))
def test_completion_times_equal_the_naive_global_recompute(world, plan, kills):
    twin = twin_of(world, NaiveNetwork)
    incremental, naive = start(world, plan, kills), start(twin, plan, kills)
    world.env.run()
    twin.env.run()
    for got, want in zip(incremental, naive, strict=True):
        if isinstance(want, tuple):  # cut by a failure, at the same moment
            assert got == ("cut", pytest.approx(want[1], rel=REL, abs=1e-9))
        else:
            assert got == pytest.approx(want, rel=REL, abs=1e-9)
    assert world.network.active_flows == twin.network.active_flows == 0


# -- a hand-worked chain ---------------------------------------------------------------------

def settle(world: World) -> None:
    """Run the rest of this instant (and a nanosecond): coalesced re-ratings happen at its end."""
    world.env.run(until=world.now + 1e-9)


@pytest.mark.parametrize("min_flows", [VECTOR_MIN_FLOWS, 1])
@pytest.mark.parametrize("coalesce", [True, False])
def test_a_new_flow_changes_rates_two_links_away(coalesce, min_flows):
    """Node 0's uplink = 2 B/s, node 1's downlink = 10 B/s, node 2's uplink = 100 B/s.

    f1: 0->1 is held to 2 by up0; f2: 2->1 takes the rest of down1, 8; f3: 2->3 takes the rest
    of up2, 92. A new flow f4: 0->4 halves up0: f1 = f4 = 1, so f2 = 10 - 1 = 9 and
    f3 = 100 - 9 = 91. f3 shares no link with f4, yet its rate must change.
    """
    world = access_world(5, [2.0, None, 100.0, None, None], [None, 10.0, None, None, None], 1e18)
    net = world.network
    net.coalesce = coalesce
    net.vector_min_flows = min_flows
    for src, dst in ((0, 1), (2, 1), (2, 3)):
        net.transfer(src, dst, 1e3)

    def rates():
        return sorted((f.src, f.dst, f.rate) for f in net._flows.values())

    settle(world)
    assert rates() == [(0, 1, 2.0), (2, 1, 8.0), (2, 3, 92.0)]
    net.transfer(0, 4, 1e3)
    settle(world)
    assert rates() == [(0, 1, 1.0), (0, 4, 1.0), (2, 1, 9.0), (2, 3, 91.0)]
    assert net.repair_rounds > 0  # the first region (flows on up0) was not enough


@pytest.mark.parametrize("min_flows", [VECTOR_MIN_FLOWS, 1])
@pytest.mark.parametrize("coalesce", [True, False])
def test_a_flow_that_ends_frees_capacity_for_flows_beyond_its_links(coalesce, min_flows):
    """The chain above, backwards: when f4 is cut, f1, f2 and f3 go back to 2, 8 and 92.

    f4 starts first here, so reaching (1, 1, 9, 91) needs no repair; going back does: f1 can
    only rise to 2 if f2 gives down1 back, and f3 then takes what f2 left on up2.
    """
    world = access_world(5, [2.0, None, 100.0, None, None], [None, 10.0, None, None, None], 1e18)
    net = world.network
    net.coalesce = coalesce
    net.vector_min_flows = min_flows
    for src, dst in ((0, 4), (0, 1), (2, 1), (2, 3)):
        net.transfer(src, dst, 1e3)
    settle(world)
    assert sorted((f.src, f.dst, f.rate) for f in net._flows.values()) == [
        (0, 1, 1.0), (0, 4, 1.0), (2, 1, 9.0), (2, 3, 91.0)]
    world.nodes[4].fail()
    settle(world)
    assert sorted((f.src, f.dst, f.rate) for f in net._flows.values()) == [
        (0, 1, 2.0), (2, 1, 8.0), (2, 3, 92.0)]


# -- ACK demand: hand-worked ------------------------------------------------------------------

A = 0.05
"""ACK demand of the hand-worked cases: 5% of a flow's rate on its reverse path."""


@pytest.mark.parametrize("coalesce", [True, False])
def test_two_opposite_flows_each_get_capacity_over_one_plus_a(coalesce):
    """0 -> 1 and 1 -> 0 over uplinks of C = 100 B/s: up0 carries f(0->1) at r and the ACKs of
    f(1->0) at a r, so r (1 + a) = C and r = 100 / 1.05 = 95.238 B/s, both ways."""
    world = access_world(2, [100.0, 100.0], [None, None], 1e18)
    world.network.ack_fraction = A
    world.network.ack_slack = 0.0
    world.network.coalesce = coalesce
    for src, dst in ((0, 1), (1, 0)):
        world.network.transfer(src, dst, 1e4)
    settle(world)
    assert [f.rate for f in world.network._flows.values()] == [
        pytest.approx(100.0 / (1 + A), rel=1e-12)] * 2
    assert world.network.ack_passes > 0


def test_opposite_flows_on_unequal_uplinks_are_not_equalised():
    """Uplinks C = 100 and 2C = 200 B/s. ACKs are served first, so each flow gets what the other
    flow's ACKs leave of its own uplink: r1 = C - a r2, r2 = 2C - a r1, hence
    r1 = C (1 - 2a) / (1 - a^2) = 90.226 and r2 = C (2 - a) / (1 - a^2) = 195.489 B/s.
    (Weighted max-min over the same constraints would give both C / (1 + a) = 95.2: the fast
    flow held to the slow one's rate by 5 B/s of ACKs, which TCP does not do.)"""
    world = access_world(2, [100.0, 200.0], [None, None], 1e18)
    world.network.ack_fraction = A
    world.network.ack_slack = 0.0
    net = world.network
    for src, dst in ((0, 1), (1, 0)):
        net.transfer(src, dst, 1e4)
    settle(world)
    rates = {(f.src, f.dst): f.rate for f in net._flows.values()}
    assert rates == {(0, 1): pytest.approx(100 * (1 - 2 * A) / (1 - A * A), rel=1e-12),
                     (1, 0): pytest.approx(100 * (2 - A) / (1 - A * A), rel=1e-12)}


def test_when_one_flow_ends_the_other_gets_its_whole_uplink_back():
    """The opposite flows above with 1,000 bytes each on 100 B/s uplinks: both send at
    100 / 1.05 until 0 -> 1 (started with 500 bytes fewer) ends, then 1 -> 0 is alone and its
    uplink carries no ACKs: it sends its rest at 100 B/s."""
    world = access_world(2, [100.0, 100.0], [None, None], 1e18)
    world.network.ack_fraction = A
    world.network.ack_slack = 0.0
    short = world.network.transfer(0, 1, 500.0)
    long = world.network.transfer(1, 0, 1000.0)
    world.env.run()
    r = 100.0 / (1 + A)
    assert short.value.end_s == pytest.approx(500 / r + 0.001, rel=1e-12)
    assert long.value.end_s == pytest.approx(500 / r + 500 / 100 + 0.001, rel=1e-12)


def test_one_way_traffic_is_not_slowed_by_its_own_acks():
    """A fan-out 0 -> 1, 2: the ACKs go up1 and up2, which carry no data. Rates are the
    fluid ones (C / 2 each), and nothing beyond the first rating is re-rated."""
    world = access_world(3, [100.0, 100.0, 100.0], [None, None, None], 1e18)
    world.network.ack_fraction = A
    world.network.ack_slack = 0.0
    for dst in (1, 2):
        world.network.transfer(0, dst, 1e3)
    settle(world)
    assert [f.rate for f in world.network._flows.values()] == [50.0, 50.0]
    assert world.network.ack_passes == 0


def test_the_default_slack_keeps_rates_within_it():
    """With the default ``ack_slack`` the opposite flows stop short of the fixed point: 100 (no
    ACKs yet), then one link re-rated to 95 and the other to 95.25 (ACKs of the 95); what is
    left to move (0.25 B/s) is below 0.3% of a link: within the slack of the exact 95.238."""
    world = access_world(2, [100.0, 100.0], [None, None], 1e18)
    world.network.ack_fraction = A
    assert world.network.ack_slack == ACK_SLACK
    for src, dst in ((0, 1), (1, 0)):
        world.network.transfer(src, dst, 1e4)
    settle(world)
    rates = [f.rate for f in world.network._flows.values()]
    assert rates == [pytest.approx(100.0 / (1 + A), rel=ACK_SLACK)] * 2
    assert rates != [pytest.approx(100.0 / (1 + A), rel=1e-6)] * 2  # (it did stop short)


SLACK_REL = 0.01
"""Stated tolerance of completion times with the default ``ack_slack`` against the exact oracle."""


@settings(max_examples=60, deadline=None)
@given(world=worlds(), plan=transfers)
def test_the_default_slack_keeps_completion_times_near_the_oracle(world, plan):
    """Capacities within ``ACK_SLACK`` (0.3%) of the exact ones, at Linux's ACK size: completion
    times within ``SLACK_REL`` of the exact fixed point's."""
    world.network.ack_fraction = 0.0125
    world.network.ack_slack = ACK_SLACK
    twin = twin_of(world, NaiveNetwork)
    twin.network.ack_slack = 0.0
    got, want = start(world, plan), start(twin, plan)
    world.env.run()
    twin.env.run()
    assert got == [pytest.approx(w, rel=SLACK_REL, abs=1e-9) for w in want]


# -- coalesced re-rating ---------------------------------------------------------------------

COALESCE_REL = 1e-9
"""Stated tolerance: coalesced and per-change completion times agree to this relative error."""

ACK_REL = 5e-9
"""The same with ACK demand: each way stops its passes at its own rounding (``SAME_RATE`` per
pass; the oracle's iteration), and a flow ends when 1e-9 of its bytes are left, so flows that
start and end at the same instants can part by ~1e-9 (measured up to 1.2e-9)."""

same_instants = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 7),
                                   st.integers(0, 7), st.sampled_from([1.0, 2.0, 4.0])),
                         min_size=2, max_size=30)


@settings(max_examples=60, deadline=None)
@given(world=worlds(), plan=same_instants,
       kills=st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 7)),
                      max_size=1))
def test_coalesced_rerating_equals_the_oracle_and_per_change_rerating(world, plan, kills):
    """Flows that start (and end) together: one re-rating per instant gives the same times.

    Start times come from three instants and sizes from three values, so most flows start and
    end at the same instants as others (the collective's pattern that coalescing is for).
    """
    per_change = twin_of(world)
    per_change.network.coalesce = False
    naive = twin_of(world, NaiveNetwork)
    runs = [start(w, plan, kills) for w in (world, per_change, naive)]
    for w in (world, per_change, naive):
        w.env.run()
    coalesced = runs[0]
    rel = ACK_REL if world.network.ack_fraction else COALESCE_REL
    for other in runs[1:]:
        for got, want in zip(coalesced, other, strict=True):
            if isinstance(want, tuple):
                assert got == ("cut", pytest.approx(want[1], rel=rel, abs=1e-12))
            else:
                assert got == pytest.approx(want, rel=rel, abs=1e-12)
    if not world.network.ack_fraction:  # (with ACKs, the order of the passes varies the count)
        assert world.network.reallocations <= per_change.network.reallocations


def test_flows_starting_together_are_rerated_once():
    """Six flows join one shared WAN link at t = 0: one re-rating, not one per flow."""
    reallocations = {}
    for coalesce in (True, False):
        world = datacenter_world(12, 2, wan_Bps=6.0)  # nodes 0-5 in one data centre, 6-11 in
        # the other
        net = world.network
        net.coalesce = coalesce
        events = [net.transfer(i, 6 + i, 6.0) for i in range(6)]
        world.env.run()
        # 6 flows share the 6 B/s WAN link (x 0.9 efficiency): 0.9 B/s each, 6 bytes in 6.67 s
        for ev in events:
            latency_s = net.path_latency_s(ev.value.src, ev.value.dst)
            assert ev.value.end_s - ev.value.start_s == pytest.approx(6 / 0.9 + latency_s,
                                                                      rel=1e-9)
        reallocations[coalesce] = net.reallocations
    # the first flow is alone (rated at once); then one re-rating for the five others, or one
    # each; when all six end together nobody is left to re-rate
    assert reallocations == {True: 2, False: 6}


# -- the tcp transport's chunks on the same solver ---------------------------------------------

TINY_TCP = TcpConfig(mss_bytes=1, frame_bytes=1, initial_window_segments=1,
                     max_window_bytes=8, min_rto_s=0.0, ack_frame_bytes=1, segments_per_ack=20)
"""1-byte segments on B/s links 2 ms apart: slow start (1, 2, 4, 8 bytes) and window-capped
rounds (8 bytes per 2 ms RTT = 4,000 B/s) both happen on paths of 1,000-8,000 B/s; one 1-byte
ACK per 20 segments puts 5% of each chunk's rate on its reverse path."""

tcp_bandwidth = st.one_of(st.none(), st.sampled_from([1000.0, 2000.0, 5000.0, 8000.0]))


@st.composite
def tcp_worlds(draw, rounds: str = "burst") -> tuple[World, World]:
    """The same switched world twice: tcp over ``maxmin``, and tcp over the oracle."""
    # with and without ACK demand: a cap that rises takes it at once only without (_takes_cap)
    tcp = dataclasses.replace(TINY_TCP, rounds=rounds,
                              ack_frame_bytes=draw(st.sampled_from([0, 1])))
    n = draw(st.integers(2, 7))
    world = access_world(n, draw(st.lists(tcp_bandwidth, min_size=n, max_size=n)),
                         draw(st.lists(tcp_bandwidth, min_size=n, max_size=n)),
                         draw(st.sampled_from([4000.0, 7000.0, 1e18])))
    twin = World(world.topology, network=NetworkConfig(model="maxmin", transport="fluid"))
    world.network = MaxMinNetwork(world, world.topology, tcp=tcp)
    world.network.ack_slack = 0.0  # exact (the default's lag is checked on its own below)
    world.network.vector_min_flows = draw(fillings)
    twin.network = NaiveNetwork(twin, twin.topology, tcp=tcp)
    return world, twin


tcp_transfers = st.lists(st.tuples(st.sampled_from([0.0, 0.001, 0.004, 0.01]),
                                   st.integers(0, 7), st.integers(0, 7),
                                   st.sampled_from([3.0, 20.0, 60.0, 150.0])),
                         min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(worlds=tcp_worlds(), plan=tcp_transfers,
       kills=st.lists(st.tuples(st.floats(0, 0.05), st.integers(0, 7)), max_size=1))
def test_tcp_chunks_on_maxmin_equal_the_oracle(worlds, plan, kills):
    """Slow-start and window-capped rounds start and end chunks at many instants, several of
    them shared; completion times equal the oracle's (global water-filling at every chunk
    start and end) to ``COALESCE_REL``, with node failures cutting chunks and queues."""
    assert_tcp_equals_the_oracle(*worlds, plan, kills)


@settings(max_examples=60, deadline=None)
@given(worlds=tcp_worlds(rounds="paced"), plan=tcp_transfers,
       kills=st.lists(st.tuples(st.floats(0, 0.05), st.integers(0, 7)), max_size=1))
def test_paced_tcp_rounds_on_maxmin_equal_the_oracle(worlds, plan, kills):
    """Paced rounds (``rounds = "paced"``): every slow-start and window-capped round that does
    not hold its message's last bytes is a rate cap of window / RTT. The solver's caps (private
    links in its filling, re-rated only when a cap binds) against the oracle's global
    water-filling with each cap as a link of one flow, at every chunk start and end and every
    cap change: completion times equal to ``COALESCE_REL``, failures included."""
    assert_tcp_equals_the_oracle(*worlds, plan, kills)


@pytest.mark.parametrize("seed", range(6))
def test_paced_rounds_on_shared_uplinks_equal_the_oracle(seed):
    """Three senders on each node's slow uplink (the flow benchmark's residential case), paced
    rounds: a slow-start round's cap rise fills the uplink and takes capacity from the other
    two, re-rated on the spot (:meth:`MaxMinNetwork._cap_fills_link`). Completion times equal
    the oracle's to ``COALESCE_REL``; the spot re-rating happened."""
    rng = random.Random(seed)
    n = 6
    tcp = dataclasses.replace(TINY_TCP, rounds="paced", ack_frame_bytes=0)
    world = access_world(n, [rng.choice([1000.0, 2000.0, 3000.0]) for _ in range(n)],
                         [rng.choice([None, 8000.0]) for _ in range(n)], 1e18)
    twin = World(world.topology, network=NetworkConfig(model="maxmin", transport="fluid"))
    world.network = MaxMinNetwork(world, world.topology, tcp=tcp)
    twin.network = NaiveNetwork(twin, twin.topology, tcp=tcp)
    plan = [(rng.choice([0.0, 0.001, 0.003]), src, (src + rng.randrange(1, n)) % n,
             rng.choice([60.0, 150.0, 400.0])) for src in range(n) for _ in range(3)]
    assert_tcp_equals_the_oracle(world, twin, plan, [])
    assert world.network.caps_filled > 3


def assert_tcp_equals_the_oracle(world: World, twin: World, plan: list, kills: list) -> None:
    """Run ``plan`` and ``kills`` on both; every delivery or cut at the same instant."""
    got, want = start(world, plan, kills), start(twin, plan, kills)
    world.env.run()
    twin.env.run()
    n = world.num_nodes
    if not kills and any(a % n != b % n for _, a, b, _ in plan):
        assert world.network.rounds_started > 0  # the chunks this test is about
    for a, b in zip(got, want, strict=True):
        if isinstance(b, tuple):
            assert a == ("cut", pytest.approx(b[1], rel=COALESCE_REL, abs=1e-12))
        else:
            assert a == pytest.approx(b, rel=COALESCE_REL, abs=1e-12)


def test_a_message_that_ends_with_its_round_opens_a_new_one_on_either_solver():
    """The example hypothesis found: 2 -> 1 sends 60 bytes, then 20 on the same connection.

    The 60-byte message's last chunk ends as its round does (0.0248 s + the 2 ms RTT, with 5
    of the 8 window bytes sent); the solver puts that instant one ulp after the round's end
    and the oracle one ulp before. Both must open a new window for the 20 bytes (the
    transport's ``ROUND_END_SLACK``): without it the oracle finished the old round and
    delivered at 0.0332 s, 0.3 ms after the solver.
    """
    plan = [(0.0, 0, 1, 20.0), (0.0, 2, 1, 60.0), (0.0, 2, 1, 20.0), (0.0, 2, 3, 60.0),
            (0.001, 2, 0, 60.0)]
    world = access_world(4, [None] * 4, [None, None, None, 2000.0], 7000.0)
    twin = World(world.topology, network=NetworkConfig(model="maxmin", transport="fluid"))
    burst = dataclasses.replace(TINY_TCP, rounds="burst")  # chunks, as hypothesis drew them
    world.network = MaxMinNetwork(world, world.topology, tcp=burst)
    world.network.ack_slack = 0.0
    twin.network = NaiveNetwork(twin, twin.topology, tcp=burst)
    got, want = start(world, plan), start(twin, plan)
    world.env.run()
    twin.env.run()
    assert got == pytest.approx(want, rel=COALESCE_REL, abs=1e-12)
    assert got[2] == pytest.approx(0.0329, rel=1e-9)  # a new window, as the exact tie says


# -- bookkeeping that costs nothing in results -----------------------------------------------

def test_a_message_alone_on_its_links_costs_three_events():
    """Send timer, propagation timer, delivery: its end re-rates nobody, so no more events."""
    world = access_world(2, [5.0, None], [None, None], 1e18)
    event = world.network.transfer(0, 1, 10.0)
    world.env.run()
    assert event.value.end_s == pytest.approx(10.0 / 5.0 + 0.001, rel=1e-12)
    assert world.env.events_processed == 3 + 1  # (the count includes the final empty step)
    assert world.network.reallocations == 1  # its start, rated directly


@pytest.mark.parametrize("min_flows", [VECTOR_MIN_FLOWS, 1])
def test_the_finish_heap_is_compacted_and_completions_still_equal_the_oracle(min_flows):
    """Hundreds of staggered flows on shared links leave stale finish entries behind every
    re-rating; rebuilding the heap from the live ones keeps its order (entries never tie),
    so completion times stay equal to the oracle's."""
    rng = __import__("random").Random(7)
    plan = [(rng.uniform(0, 20), rng.randrange(8), rng.randrange(8), rng.choice([2.0, 5.0, 9.0]))
            for _ in range(400)]
    world = access_world(8, [3.0, 5.0, None, 8.0, 2.0, None, 4.0, 1.0],
                         [None, 6.0, 2.0, None, 3.0, 5.0, None, 7.0], 9.0)
    twin = access_world(8, [3.0, 5.0, None, 8.0, 2.0, None, 4.0, 1.0],
                        [None, 6.0, 2.0, None, 3.0, 5.0, None, 7.0], 9.0)
    twin.network = NaiveNetwork(twin, twin.topology)
    world.network.vector_min_flows = min_flows
    got, want = start(world, plan), start(twin, plan)
    world.env.run()
    twin.env.run()
    assert world.network.heap_compactions > 0
    assert got == [pytest.approx(w, rel=COALESCE_REL, abs=1e-12) for w in want]


# -- a rising cap re-rated on the spot ---------------------------------------------------------

def test_a_rising_cap_that_fills_one_link_rerates_it_on_the_spot():
    """Node 0's uplink 10 B/s carries a, b, c (to nodes 1, 2, 3; other links unlimited). With a
    capped at 2: a = 2, b = c = 4 (the uplink's rest). Its cap raised to 3 fills the uplink
    and nothing else: a = 3, b = c = 3.5 at once, with no re-rating left for the instant's
    end; raised to 5, above the uplink's share of 10/3: all three at 10/3, a held by the
    uplink. The rise waits for the coalesced re-rating when another change is pending this
    instant (a fourth flow on the uplink: all four at 2.5), and when node 3's downlink
    (12 B/s) also carries e (5 -> 3), held there at 8 (c is slower): c's slowing lets e speed
    up; the coalesced re-rating gives a = 3, b = c = 3.5, e = 8.5."""
    def three_senders(down3: float | None):
        world = access_world(6, [10.0] + [None] * 5, [None, None, None, down3, None, None],
                             1e18)
        net = world.network
        events = [net.transfer(src, dst, 1e6) for src, dst in ((0, 1), (0, 2), (0, 3), (5, 3))]
        settle(world)
        flows = [net._flows[event] for event in events]
        net._set_cap(flows[0], 2.0)
        settle(world)
        return world, net, flows

    world, net, flows = three_senders(None)
    assert [f.rate for f in flows] == pytest.approx([2.0, 4.0, 4.0, 1e18], rel=1e-12)
    before = net.reallocations
    net._set_cap(flows[0], 3.0)
    assert net._pending_event is None and net.caps_filled == 1
    assert net.reallocations == before + 1
    assert [f.rate for f in flows[:3]] == pytest.approx([3.0, 3.5, 3.5], rel=1e-12)
    net._set_cap(flows[0], 5.0)
    assert net.caps_filled == 2
    assert [f.rate for f in flows[:3]] == pytest.approx([10 / 3] * 3, rel=1e-12)
    assert net._bottleneck[flows[0].id] == net._uplink[0]
    net._set_cap(flows[0], 2.0)
    settle(world)
    net.transfer(0, 4, 1e6)  # another change this instant: bottlenecks are not all known
    net._set_cap(flows[0], 3.0)
    assert net.caps_filled == 2 and net._pending_event is not None
    settle(world)
    assert [f.rate for f in flows[:3]] == pytest.approx([2.5] * 3, rel=1e-12)

    world, net, flows = three_senders(12.0)
    assert [f.rate for f in flows] == pytest.approx([2.0, 4.0, 4.0, 8.0], rel=1e-12)
    net._set_cap(flows[0], 3.0)
    assert net.caps_filled == 0 and net._pending_event is not None
    settle(world)
    assert [f.rate for f in flows] == pytest.approx([3.0, 3.5, 3.5, 8.5], rel=1e-12)


def test_a_rising_cap_waits_when_a_flow_held_at_the_link_would_speed_up():
    """The spot re-rating only slows the held flows down (or keeps them): its test that nobody
    at their other links would speed up holds only then. A link counts as full within
    TOLERANCE of its capacity, so it may have room: node 0's uplink carries a (capped at 2),
    b and c (held there at 4 each) and is set to 10 + 5e-9 B/s, still full. a's cap rising by
    2e-9 fills it, and the level left for b and c, 4 + 1.5e-9, is above their rates: the
    rise waits for the coalesced re-rating, which gives b and c the link's rest, 4 + 1.5e-9."""
    world = access_world(4, [10.0, None, None, None], [None] * 4, 1e18)
    net = world.network
    events = [net.transfer(0, dst, 1e6) for dst in (1, 2, 3)]
    settle(world)
    a, b, c = (net._flows[event] for event in events)
    net._set_cap(a, 2.0)
    settle(world)
    assert [f.rate for f in (a, b, c)] == pytest.approx([2.0, 4.0, 4.0], rel=1e-12)
    uplink = net._uplink[0]
    assert net._bottleneck[b.id] == net._bottleneck[c.id] == uplink
    net._capacity[uplink] = 10.0 + 5e-9  # room within the slack: the link is still full
    net._set_cap(a, 2.0 + 2e-9)
    assert net.caps_filled == 0 and net._pending_event is not None
    settle(world)
    rest = (10.0 + 5e-9 - (2.0 + 2e-9)) / 2
    assert [f.rate for f in (a, b, c)] == pytest.approx([2.0 + 2e-9, rest, rest], rel=1e-15)


@pytest.mark.parametrize("seed", range(8))
def test_rising_caps_rerated_on_the_spot_equal_the_oracle(seed):
    """Random access links, 30 long flows, half of them capped below their rates; then 80
    times a capped flow's cap rises (by 1.2-4x, or goes): right after each rise, before the
    instant ends, every flow's rate equals global water-filling with the caps (the oracle),
    to 1e-9, whether the rise was re-rated on the spot or waits for the coalesced re-rating
    (then read after it). Both happen."""
    rng = random.Random(seed)
    n = 10
    world = access_world(n, [rng.choice([2.0, 3.0, 5.0, 8.0]) for _ in range(n)],
                         [rng.choice([None, 4.0, 6.0, 9.0]) for _ in range(n)], 1e18)
    net = world.network
    plan = [(a, (a + rng.randrange(1, n)) % n) for a in (rng.randrange(n) for _ in range(30))]
    events = [net.transfer(src, dst, 1e9) for src, dst in plan]
    settle(world)
    sending = [net._flows[event] for event in events]
    spot = coalesced = 0
    for step in range(80):
        if step % 10 == 0:  # (re-)cap half of the flows below their rates
            for flow in rng.sample(sending, len(sending) // 2):
                net._set_cap(flow, flow.rate * rng.uniform(0.3, 0.9))
            settle(world)
        capped = [f for f in sending if net._bottleneck[f.id] < 0]
        if not capped:
            continue
        flow = rng.choice(capped)
        before = net.caps_filled
        net._set_cap(flow, flow.rate * rng.choice([1.2, 1.5, 2.0, 4.0, math.inf]))
        if net.caps_filled > before:
            spot += 1
            assert net._pending_event is None
        else:
            coalesced += 1
            settle(world)
        want = expected_rates(net, sending)
        assert [f.rate for f in sending] == [pytest.approx(want[f.id], rel=1e-9)
                                             for f in sending]
    assert spot > 10 and coalesced > 10


# -- numpy filling of large regions ------------------------------------------------------------

def crowded_world(seed: int) -> World:
    """A random world where hundreds of flows share links: 4-6 data centres (several WAN links
    of 3-20 B/s) or 40 access-linked nodes (uplinks and downlinks of 1-8 B/s, a 60 B/s core)."""
    rng = random.Random(seed)
    if seed % 2:
        return datacenter_world(48, rng.randint(4, 6), wan_Bps=rng.choice([3.0, 7.0, 20.0]))
    n = 40
    return access_world(n, [rng.choice([None, 1.0, 2.0, 5.0, 8.0]) for _ in range(n)],
                        [rng.choice([None, 1.0, 3.0, 8.0]) for _ in range(n)], 60.0)


def crowded_plan(seed: int, flows: int) -> list:
    """``flows`` transfers starting at five instants, so that regions are large."""
    rng = random.Random(seed)
    return [(rng.choice([0.0, 0.5, 1.0, 2.0, 4.0]), rng.randrange(48), rng.randrange(48),
             rng.choice([1.0, 3.0, 10.0, 30.0])) for _ in range(flows)]


@pytest.mark.parametrize("seed", range(6))
def test_numpy_filling_equals_the_python_filling_on_large_regions(seed):
    """With 300 flows sending, fill the whole network and random parts of it (the rest keep
    their rates and their share of the links) both ways: the same rates to 1e-12 (the two
    differ only in the order of subtractions), each flow's bottleneck is one of its links, and
    both name the same links as shared with flows outside the region: exactly those that are."""
    world = crowded_world(seed)
    start(world, [(0.0, a, b, size) for _, a, b, size in crowded_plan(seed, 300)])
    settle(world)
    net = world.network
    sending = {f.id: f for f in net._flows.values() if f.state == "sending" and f.links}
    assert len(sending) > 250
    rng = random.Random(seed)
    regions = [sending] + [{fid: f for fid, f in sending.items() if rng.random() < share}
                           for share in (0.2, 0.5, 0.8)]
    for region in regions:
        net.vector_min_flows = math.inf
        rates, bottleneck, shared = net._fill(region)
        got_rates, got_bottleneck, got_shared = net._fill_arrays(region)
        assert got_rates == {fid: pytest.approx(r, rel=1e-12, abs=1e-300)
                             for fid, r in rates.items()}
        assert all(got_bottleneck[fid] in region[fid].links for fid in region)
        crossed = {link for flow in region.values() for link in flow.links}
        assert shared == got_shared == {link for link in crossed
                                        if not set(net._on_link[link]) <= set(region)}


@pytest.mark.parametrize("seed", range(6))
def test_one_link_filling_with_caps_equals_the_heap_to_the_bit(seed, monkeypatch):
    """Regions whose flows all cross one link (the flows of a link, with random rate caps on
    some, as the tcp transport's paced rounds set them): the one-pass water-filling of that
    link gives the heap's rates and bottlenecks to the bit (also where a cap equals the link's
    share: the heap pops the cap first), and hands back to the heap when another link would
    fill first; both happen, and flows are held both at their caps and at links."""
    world = crowded_world(seed)
    start(world, [(0.0, a, b, size) for _, a, b, size in crowded_plan(seed, 300)])
    settle(world)
    net = world.network
    net.vector_min_flows = math.inf
    rng = random.Random(seed)
    regions = []  # (the link's share when the region is all its flows, the region)
    for link, flows in enumerate(net._on_link):
        if len(flows) > 1:
            regions.append((net._capacity[link] / len(flows), dict(flows)))
            for _ in range(4):
                regions.append((0.0, dict(rng.sample(sorted(flows.items()),
                                                     rng.randint(1, len(flows))))))
    outcomes: list[bool] = []
    one_link = MaxMinNetwork._fill_one_link

    def counted(*args):
        outcomes.append(one_link(*args))
        return outcomes[-1]

    held = {"cap": 0, "link": 0}
    for share, region in regions:
        net._caps = {fid: flow.rate * rng.choice([0.2, 0.5, 0.9, 1.0, 1.5, 4.0])
                     for fid, flow in region.items() if rng.random() < 0.6}
        if share and rng.random() < 0.5:  # a cap equal to the link's share: the cap pops first
            net._caps[rng.choice(sorted(region))] = share
        monkeypatch.setattr(MaxMinNetwork, "_fill_one_link", staticmethod(counted))
        got = net._fill(region)
        monkeypatch.setattr(MaxMinNetwork, "_fill_one_link",
                            staticmethod(lambda *args: False))  # the heap decides
        want = net._fill(region)
        assert got == want
        for link in got[1].values():
            held["cap" if link < 0 else "link"] += 1
    assert outcomes.count(True) > 20 and outcomes.count(False) > 0
    assert held["cap"] > 20 and held["link"] > 20


@pytest.mark.parametrize("seed", range(4))
def test_numpy_and_python_filling_give_the_same_completion_times(seed):
    """400 flows starting at five instants (regions of hundreds of flows), one node failing:
    every completion time agrees to ``COALESCE_REL`` with and without numpy filling."""
    plan = crowded_plan(seed, 400)
    kills = [(1.0, seed)]
    worlds = [crowded_world(seed), crowded_world(seed)]
    worlds[0].network.vector_min_flows = math.inf
    runs = [start(w, plan, kills) for w in worlds]
    for w in worlds:
        w.env.run()
    assert worlds[0].network.array_fills == 0 < worlds[1].network.array_fills
    for got, want in zip(runs[1], runs[0], strict=True):
        if isinstance(want, tuple):
            assert got == ("cut", pytest.approx(want[1], rel=COALESCE_REL))
        else:
            assert got == pytest.approx(want, rel=COALESCE_REL)


def test_large_regions_at_the_default_threshold_equal_the_oracle():
    """The default threshold, crossed (100 flows over the 3 WAN links of 3 data centres, half
    starting together): completion times equal the oracle's (global water-filling at every
    change) to ``COALESCE_REL``."""
    world = datacenter_world(30, 3, wan_Bps=7.0)
    plan = [(min(t, 1.0), a, b, size) for t, a, b, size in crowded_plan(11, 100)]
    twin = twin_of(world, NaiveNetwork)
    got, want = start(world, plan, [(0.5, 3)]), start(twin, plan, [(0.5, 3)])
    world.env.run()
    twin.env.run()
    assert world.network.array_fills > 0
    for a, b in zip(got, want, strict=True):
        if isinstance(b, tuple):
            assert a == ("cut", pytest.approx(b[1], rel=COALESCE_REL, abs=1e-12))
        else:
            assert a == pytest.approx(b, rel=COALESCE_REL, abs=1e-12)


@pytest.mark.parametrize("min_flows", [VECTOR_MIN_FLOWS, math.inf])
def test_a_faster_flow_on_a_large_regions_link_joins_it_at_once(min_flows):
    """Hand-worked: a long flow held by its own node link (9 of payload) alone on a WAN link
    of 63, then 80 flows start across that WAN link together. Filled without the long flow,
    they would get (63 - 9) / 80 each, below its 9: the bottleneck test adds it and the region
    is filled again (one repair round, as small regions still do). A large region takes it in
    at once (``MaxMinNetwork._faster_outside``): no repair round, every flow 63 / 81, and
    completion times equal to the oracle's."""
    world = datacenter_world(170, 2, wan_Bps=70.0)
    net = world.network
    net.vector_min_flows = min_flows
    plan = [(0.0, 0, 85, 500.0)] + [(1.0, i, 85 + i, 20.0 + i % 7) for i in range(1, 81)]
    twin = twin_of(world, NaiveNetwork)
    got, want = start(world, plan), start(twin, plan)
    world.env.run(until=1.0)
    (long,) = net._flows.values()
    assert long.rate == pytest.approx(9.0, rel=1e-12)
    repairs = net.repair_rounds
    settle(world)
    assert net.repair_rounds - repairs == (0 if min_flows == VECTOR_MIN_FLOWS else 1)
    assert all(flow.rate == pytest.approx(63.0 / 81, rel=1e-12) for flow in net._flows.values())
    world.env.run()
    twin.env.run()
    assert got == [pytest.approx(end, rel=COALESCE_REL) for end in want]


# -- links no allocation can fill ----------------------------------------------------------------

def leaves_world() -> World:
    """Sites behind one hub ``h`` (edges of 5 B/s): ``a`` holds nodes 0 and 1 (access 2 B/s
    each), ``b`` node 2 (2 B/s), ``c`` node 3 (8 B/s), ``d`` node 4 (no access limit), ``e``
    node 5 (5 B/s, as fast as its edge)."""
    graph = nx.Graph()
    for site in "abcde":
        graph.add_edge(site, "h", latency_s=0.001, bandwidth_Bps=5.0)
    access = [2.0, 2.0, 2.0, 8.0, None, 5.0]
    topo = from_graph(graph, ["a", "a", "b", "c", "d", "e"], uplink_Bps=access,
                      downlink_Bps=access)
    return World(topo, network=NetworkConfig(model="maxmin", transport="fluid"))


def test_only_a_lone_nodes_edge_faster_than_its_access_link_is_left_out():
    """Only node 2's site ``b`` qualifies: one node, one neighbour, an edge (5) faster than
    its access links (2), so messages from and to node 2 never fill ``b->h`` and ``h->b``.
    ``a``'s edge carries two nodes' messages; ``c``'s (8 > 5) and ``e``'s (5 = 5) edges can
    fill; ``d`` has no access link. A message 2 -> 3 is rated on up:2, h->c and down:3."""
    net = leaves_world().network
    assert isinstance(net, MaxMinNetwork)
    index = {name: i for i, name in enumerate(net.link_names)}
    assert net._links_never_full() == {index["b->h"], index["h->b"]}
    net.transfer(2, 3, 10.0)
    (flow,) = net._flows.values()
    assert flow.links == tuple(index[x] for x in ("up:2", "b->h", "h->c", "down:3"))
    assert flow.rated_links == tuple(index[x] for x in ("up:2", "h->c", "down:3"))
    acked = leaves_world().network
    acked.ack_fraction = 0.0125
    assert acked._links_never_full() == frozenset()  # (ACK demand moves capacities)


@pytest.mark.parametrize("min_flows", [VECTOR_MIN_FLOWS, 1])
def test_leaving_out_links_that_never_fill_keeps_the_oracles_completion_times(min_flows):
    """Every pair of the six nodes sends, in two waves, across edges that can and cannot fill:
    completion times equal those of the oracle (global water-filling over every link of every
    path) to ``COALESCE_REL``, with the Python and the numpy filling."""
    world = leaves_world()
    world.network.vector_min_flows = min_flows
    plan = [(0.5 * (a % 2), a, b, 3.0 + (a * 7 + b) % 5) for a in range(6) for b in range(6)
            if a != b]
    twin = twin_of(world, NaiveNetwork)
    got, want = start(world, plan), start(twin, plan)
    world.env.run()
    twin.env.run()
    assert got == [pytest.approx(end, rel=COALESCE_REL) for end in want]
