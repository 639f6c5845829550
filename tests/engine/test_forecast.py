"""``sim.network.forecast``: the transport's closed forms for planners, against hand-worked
values and against the engine itself (random message sequences, ``ideal`` model).

Hand-worked paths are ``make_world``'s: one switch, one-way latency ``latency_s`` between any
two nodes, RTT = 2 latency_s, payload rate = capacity * 1448 / 1514.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.config import NetworkConfig
from sim.network.forecast import MessageForecast
from sim.network.tcp import (
    TcpConfig,
    idle_restart_window_bytes,
    slow_start_send_time_s,
    slow_start_window_after,
)
from sim.world import World
from topologies import gcp_regions

from .conftest import make_world

EFF = 1448 / 1514
IW = 10 * 1448  # 14,480 bytes
MIB = 2**20


def test_idle_restart_halves_the_window_once_per_rto_down_to_iw():
    # RTO 0.25 s: 0.2 s idle keeps the window; 0.6 s is two RTOs and a bit: two halvings
    # (Linux tcp_cwnd_restart); 10 s would halve 40 times but stops at IW
    assert idle_restart_window_bytes(64 * IW, 0.2, 0.25, IW) == 64 * IW
    assert idle_restart_window_bytes(64 * IW, 0.6, 0.25, IW) == 16 * IW
    assert idle_restart_window_bytes(64 * IW, 10.0, 0.25, IW) == IW
    assert idle_restart_window_bytes(IW / 2, 10.0, 0.25, IW) == IW / 2  # never grows


def test_window_after_slow_start_on_a_100Mbit_150ms_path():
    """BDP = 12.5e6 * EFF * 0.15 = 1.793 MB: round 7's 128 IW = 1,853,440 B fills the pipe.

    A 10 MB message passes round 7 (127 IW sent before it, 255 IW through it): slow start is
    over, cwnd = 128 IW. A 1 MB message ends in round 6 (63 IW sent before it): still in slow
    start with round 6's window, 64 IW. With a 0.5 MiB cap, the window reaches the cap after
    rounds of 1..32 IW (63 IW = 912,240 B sent), so 10 MB leaves slow start at the cap.
    """
    r = 12.5e6 * EFF
    assert slow_start_window_after(10e6, 0.15, r, IW) == (128 * IW, False)
    assert slow_start_window_after(1e6, 0.15, r, IW) == (64 * IW, True)
    assert slow_start_window_after(10e6, 0.15, r, IW, 0.5 * MIB) == (0.5 * MIB, False)
    assert slow_start_window_after(900_000, 0.15, r, IW, 0.5 * MIB) == (32 * IW, True)


def test_cold_price_is_the_transports_closed_form():
    world = make_world(3, model="ideal", latency_s=0.075, bandwidth_Bps=12.5e6, transport="tcp")
    forecast = MessageForecast.of_network(world.network, 3)
    r = 12.5e6 * EFF
    cold = forecast.cold_s(10e6)
    assert forecast.transport == "tcp"
    assert cold[0, 1] == pytest.approx(slow_start_send_time_s(10e6, 0.15, r) + 0.075, rel=1e-12)
    assert cold[0, 1] == pytest.approx(7 * 0.15 + (10e6 - 127 * IW) / r + 0.075, rel=1e-12)
    assert np.all(np.diag(cold) == 0.0)
    fluid = make_world(3, model="ideal", latency_s=0.075, bandwidth_Bps=12.5e6)
    plain = MessageForecast.of_network(fluid.network, 3)
    assert plain.transport == "fluid"
    assert plain.cold_s(10e6)[0, 1] == 0.075 + 10e6 / 12.5e6


def test_handshake_adds_one_rtt_to_a_cold_connection_only():
    world = make_world(2, model="ideal", latency_s=0.025, bandwidth_Bps=1.25e6, transport="tcp",
                       tcp=TcpConfig(handshake=True))
    conns = MessageForecast.of_network(world.network, 2).connections()
    r = 1.25e6 * EFF
    first = conns.send(0, 1, 2e6, 0.0)
    assert first == pytest.approx(0.05 + slow_start_send_time_s(2e6, 0.05, r) + 0.025)
    second = conns.send(0, 1, 2e6, first)   # warm: idle 25 ms < RTO
    assert second - first == pytest.approx(2e6 / r + 0.025)


def engine_arrivals(world, messages):
    """Arrival times of ``(t, src, dst, nbytes)`` messages sent through the engine."""
    arrived = {}

    def send(k, t, src, dst, nbytes):
        yield world.env.timeout(t)
        yield world.network.transfer(src, dst, nbytes)
        arrived[k] = world.env.now

    for k, message in enumerate(messages):
        world.env.process(send(k, *message))
    world.env.run()
    return [arrived[k] for k in range(len(messages))]


@pytest.mark.parametrize("transport", ["tcp", "fluid"])
@pytest.mark.parametrize("seed", range(3))
def test_connections_reproduce_the_engine_for_messages_past_the_ramp(transport, seed):
    """Random 8 and 32 MiB messages between 5 nodes in 5 GCP regions (RTT 6-260 ms): cold and
    warm connections, idle restarts after gaps of 0-3 s, messages queued behind each other on a
    connection. Every arrival matches the engine (``ideal`` model: every flow alone)."""
    rng = np.random.default_rng(seed)
    n = 5
    world = World(gcp_regions(n), network=NetworkConfig(model="ideal", transport=transport),
                  flops_per_s=1e12)
    messages = []
    for _ in range(60):
        src, dst = (int(x) for x in rng.choice(n, size=2, replace=False))
        messages.append((float(rng.uniform(0.0, 12.0)), src, dst,
                         float(rng.choice([8 * MIB, 32 * MIB]))))
    messages.sort()
    expected = engine_arrivals(world, messages)
    conns = MessageForecast.of_network(world.network, n).connections()
    predicted = [conns.send(src, dst, nbytes, t) for t, src, dst, nbytes in messages]
    assert predicted == pytest.approx(expected, rel=1e-12, abs=1e-9)
    cold = MessageForecast.of_network(world.network, n).cold_s(32 * MIB)
    if transport == "tcp":  # somewhere a warm connection beat the cold price
        assert any(p - t < cold[s, d] - 1e-6 for (t, s, d, b), p in zip(messages, predicted)
                   if b == 32 * MIB)


@pytest.mark.parametrize("transport", ["fluid", "tcp"])
def test_path_matrices_read_each_route_once_and_equal_the_two_lookups(transport):
    """One route lookup per ordered pair gives what the two path methods give one by one.

    With some pairs unreachable (a data centre cut off: inf latency, 0 bandwidth), header
    overhead on the bandwidth, and pairs that have sent (their route kept) beside pairs that
    have not. The oracle is the two methods, asked per pair by the generic loop.
    """
    from sim.network.forecast import path_matrices  # noqa: PLC0415
    from topologies import clusters_of_clusters  # noqa: PLC0415

    topo = clusters_of_clusters(9, num_clusters=3, intra_latency_s=0.001,
                                intra_bandwidth_Bps=1e9, wan_latency_s=0.03,
                                wan_bandwidth_Bps=1e8)
    efficiency = {"tcp_efficiency": 0.9} if transport == "fluid" else {}  # (tcp: its headers)
    world = World(topo, network=NetworkConfig(model="maxmin", transport=transport,
                                              **efficiency))
    net = world.network
    net.transfer(0, 4, 1e5)
    world.env.run()
    hub, site = next((u, v) for u, v in topo.graph.edges if topo.graph.degree(v) == 1)
    net.set_link_state(hub, site, False)  # (a leaf cut off from its data centre)
    asked = []
    route = net.route
    net.route = lambda src, dst: asked.append((src, dst)) or route(src, dst)
    latency, bandwidth = path_matrices(net, 9)
    assert len(asked) == 9 * 8  # once per ordered pair
    assert np.isinf(latency).any() and (bandwidth == 0).any()

    class Methods:  # only the two methods: path_matrices asks them per pair
        path_latency_s = net.path_latency_s
        path_bandwidth_Bps = net.path_bandwidth_Bps

    expected = path_matrices(Methods(), 9)
    assert len(asked) == 9 * 8 * 3
    np.testing.assert_array_equal(latency, expected[0])
    np.testing.assert_array_equal(bandwidth, expected[1])
