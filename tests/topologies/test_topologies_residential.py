"""Residential access: asymmetric, seeded spreads around a core."""

import statistics

import pytest

from topologies import residential


def test_defaults_are_20_up_200_down_mbit():
    topo = residential(4, seed=0)
    assert topo.uplink_Bps == (20e6 / 8,) * 4
    assert topo.downlink_Bps == (200e6 / 8,) * 4
    assert all(up < down for up, down in zip(topo.uplink_Bps, topo.downlink_Bps))
    assert set(topo.node_sites) == {"core"}
    assert topo.graph.nodes["core"]["local_latency_s"] == 10e-3
    assert "local_bandwidth_Bps" not in topo.graph.nodes["core"]


def test_same_seed_same_draws_other_seed_other_draws():
    a = residential(8, seed=1, bandwidth_sigma=0.3)
    b = residential(8, seed=1, bandwidth_sigma=0.3)
    c = residential(8, seed=2, bandwidth_sigma=0.3)
    assert (a.access_latency_s, a.uplink_Bps) == (b.access_latency_s, b.uplink_Bps)
    assert a.access_latency_s != c.access_latency_s
    assert a.uplink_Bps != c.uplink_Bps


def test_access_latency_is_lognormal_around_its_median():
    topo = residential(4001, seed=7, access_latency_s=4e-3, access_latency_sigma=0.5)
    latencies = topo.access_latency_s
    assert statistics.median(latencies) == pytest.approx(4e-3, rel=0.05)
    assert len(set(latencies)) == 4001
    flat = residential(5, seed=7, access_latency_s=4e-3, access_latency_sigma=0.0)
    assert flat.access_latency_s == (4e-3,) * 5


def test_bandwidth_spread_keeps_ratio_and_latencies():
    plain = residential(50, seed=3)
    spread = residential(50, seed=3, bandwidth_sigma=0.5)
    assert spread.access_latency_s == plain.access_latency_s
    assert len(set(spread.uplink_Bps)) == 50
    for up, down in zip(spread.uplink_Bps, spread.downlink_Bps):
        assert down / up == pytest.approx(10.0)
    assert statistics.median(spread.uplink_Bps) == pytest.approx(2.5e6, rel=0.3)


def test_parameters_reach_the_topology():
    topo = residential(3, seed=0, uplink_Bps=1e6, downlink_Bps=4e6, core_latency_s=0.03)
    assert topo.uplink_Bps == (1e6,) * 3 and topo.downlink_Bps == (4e6,) * 3
    assert topo.graph.nodes["core"]["local_latency_s"] == 0.03


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(uplink_Bps=0.0), "uplink_Bps"),
        (dict(downlink_Bps=-1.0), "downlink_Bps"),
        (dict(core_latency_s=-0.1), "core_latency_s"),
        (dict(access_latency_sigma=-1.0), "access_latency_sigma"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        residential(3, seed=0, **kwargs)
