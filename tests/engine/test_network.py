"""The network models against closed forms and hand-worked examples."""

from __future__ import annotations

import pytest

from sim.errors import TransferCut

from .conftest import make_world


def test_one_transfer_costs_latency_plus_size_over_bandwidth(model):
    world = make_world(2, model=model, latency_s=0.05, bandwidth_Bps=12.5e6)
    ev = world.network.transfer(0, 1, 25e6)
    world.env.run()
    assert ev.value.end_s == pytest.approx(0.05 + 25e6 / 12.5e6, rel=1e-12)


def test_two_flows_through_one_bottleneck_halve_under_maxmin_only(model):
    # both flows leave node 0 through its 1 MB/s uplink
    world = make_world(3, model=model, uplink=(1e6, None, None))
    a = world.network.transfer(0, 1, 1e6)
    b = world.network.transfer(0, 2, 1e6)
    world.env.run()
    expected = 2.0 if model == "maxmin" else 1.0
    assert a.value.end_s == pytest.approx(expected)
    assert b.value.end_s == pytest.approx(expected)


def test_hand_worked_maxmin_three_flows_two_bottlenecks():
    """Link A = node 0's uplink (10 B/s), link B = node 3's downlink (4 B/s).

    f1: 0->1 (A), f4: 0->2 (A), f2: 0->3 (A and B), f3: 4->3 (B).
    Progressive filling: B's fair share 4/2 = 2 < A's 10/3, so f2 = f3 = 2; then A has 10 - 2 = 8
    left for f1 and f4: 4 each. With 8, 8, 8, 4 bytes, f1, f4 (8/4) and f3 (4/2) end at t = 2;
    f2 has 8 - 2*2 = 4 bytes left and is alone on B: 4 B/s, so it ends at t = 3.
    """
    world = make_world(5, model="maxmin", uplink=(10.0, None, None, None, None),
                       downlink=(None, None, None, 4.0, None))
    net = world.network
    f1, f4 = net.transfer(0, 1, 8), net.transfer(0, 2, 8)
    f2, f3 = net.transfer(0, 3, 8), net.transfer(4, 3, 4)
    world.env.run(until=1e-9)
    rates = sorted((f.src, f.dst, f.rate) for f in net._flows.values())
    assert rates == [(0, 1, 4.0), (0, 2, 4.0), (0, 3, 2.0), (4, 3, 2.0)]
    world.env.run()
    assert [f1.value.end_s, f4.value.end_s, f3.value.end_s] == pytest.approx([2.0, 2.0, 2.0])
    assert f2.value.end_s == pytest.approx(3.0)


def test_asymmetric_access_links(model):
    # residential: 1 MB/s up, 10 MB/s down on node 0
    world = make_world(2, model=model, uplink=(1e6, None), downlink=(10e6, None))
    up = world.network.transfer(0, 1, 1e6)
    down = world.network.transfer(1, 0, 1e6)
    world.env.run()
    assert up.value.end_s == pytest.approx(1.0)
    assert down.value.end_s == pytest.approx(0.1)


def test_tcp_efficiency_scales_capacity(model):
    world = make_world(2, model=model, bandwidth_Bps=1e6, tcp_efficiency=0.9)
    ev = world.network.transfer(0, 1, 0.9e6)
    world.env.run()
    assert ev.value.end_s == pytest.approx(1.0)


def test_maxmin_rerates_when_a_flow_ends():
    # a short and a long flow share 1 MB/s: 0.5 each until the short one (0.5 MB) ends at t=1,
    # then the long one (1.5 MB) has 1 MB left at full rate: ends at t=2.
    world = make_world(3, model="maxmin", uplink=(1e6, None, None))
    short = world.network.transfer(0, 1, 0.5e6)
    long = world.network.transfer(0, 2, 1.5e6)
    world.env.run()
    assert short.value.end_s == pytest.approx(1.0)
    assert long.value.end_s == pytest.approx(2.0)


def test_only_the_affected_component_is_rerated():
    world = make_world(4, model="maxmin", uplink=(1e6, 1e6, None, None))
    net = world.network
    net.transfer(0, 2, 1e6)
    before = net.flows_rerated
    net.transfer(1, 3, 1e6)  # shares no finite link with the first flow
    assert net.flows_rerated - before == 1


def test_transfer_to_a_failed_node_is_cut_and_accounted(model):
    world = make_world(2, model=model, bandwidth_Bps=1e6)
    ev = world.network.transfer(0, 1, 2e6)
    world.env.run(until=0.5)
    world.nodes[1].fail()
    world.env.run()
    assert not ev.ok and isinstance(ev.value, TransferCut)
    assert ev.value.delivered_bytes == pytest.approx(0.5e6)
    rec = world.recorder
    assert rec.bytes_sent[0] == rec.bytes_received.sum() + rec.bytes_cut[0] == 2e6
    assert rec.bytes_cut[0] == 2e6


def test_link_down_cuts_flows_and_reroutes_nothing_on_a_star():
    from sim.config import NetworkConfig
    from sim.world import World
    from topologies import star

    world = World(star(3, latency_s=0.0, bandwidth_Bps=1e6),
                  network=NetworkConfig(model="maxmin", transport="fluid"))
    ev = world.network.transfer(0, 1, 1e6)
    world.env.run(until=0.25)
    site0, site1 = world.nodes[0].site, world.nodes[1].site
    world.network.set_link_state(site0, "switch", up=False)
    world.env.run()
    assert isinstance(ev.value, TransferCut)
    again = world.network.transfer(0, 1, 1e6)
    world.env.run()
    assert isinstance(again.value, TransferCut) and "no working path" in again.value.reason
    world.network.set_link_state(site0, "switch", up=True)
    third = world.network.transfer(1, 0, 1e6)
    world.env.run()
    assert third.ok
    del site1
