"""The ``tcp`` transport against hand-computed values, one test per mechanism.

Paths are ``make_world``'s: one switch, one-way latency ``latency_s`` between any two nodes, so
RTT = 2 latency_s. Capacities are wire bytes/s; a flow's payload rate is capacity * 1448 / 1514.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sim.errors import TransferCut
from sim.network.tcp import TcpConfig, idle_restart_window_bytes, slow_start_send_time_s

from .conftest import make_world

EFF = 1448 / 1514
IW = 10 * 1448  # 14,480 bytes


def tcp_world(n=2, *, model="maxmin", latency_s=0.075, bandwidth_Bps=12.5e6, **tcp):
    return make_world(n, model=model, latency_s=latency_s, bandwidth_Bps=bandwidth_Bps,
                      transport="tcp", tcp=TcpConfig(**tcp))


def send_at(world, t, src, dst, nbytes):
    """A process that sends at time ``t``; returns the process (value: the Delivery)."""
    def go():
        yield world.env.timeout(t)
        delivery = yield world.network.transfer(src, dst, nbytes)
        return delivery
    return world.env.process(go())


@pytest.fixture(params=["ideal", "maxmin"])
def model(request):
    return request.param


def test_efficiency_factor_on_a_zero_latency_path(model):
    # RTT 0: no window limits anything; 1 MB at 1 MB/s wire = 1e6 / (1e6 * 1448/1514) s
    world = tcp_world(model=model, latency_s=0.0, bandwidth_Bps=1e6)
    ev = world.network.transfer(0, 1, 1e6)
    world.env.run()
    assert ev.value.end_s == pytest.approx(1514 / 1448, rel=1e-12)
    assert world.network.path_bandwidth_Bps(0, 1) == pytest.approx(1e6 * 1448 / 1514)


def test_slow_start_ramp_for_a_10MB_message_on_a_100Mbit_150ms_rtt_path(model):
    """100 Mbit/s, 75 ms one way: payload rate r = 12.5e6 * 1448/1514 = 11.95 MB/s.

    BDP = r * 0.15 s = 1.793 MB. Windows 14,480 * 2^i: round 6 sends 926,720 B (< BDP, the
    sender waits), round 7's 1,853,440 B take 0.155 s >= RTT: the pipe is full from round 7
    on. So 7 RTTs carry 127 IW = 1,838,960 B, the rest goes at r, then 75 ms to arrive:
    1.05 + 8,161,040 / r + 0.075 = 1.8077 s, against 0.912 s for the fluid model.
    """
    world = tcp_world(model=model)
    ev = world.network.transfer(0, 1, 10e6)
    world.env.run()
    r = 12.5e6 * EFF
    expected = 7 * 0.15 + (10e6 - 127 * IW) / r + 0.075
    assert expected == pytest.approx(1.8077, abs=1e-4)
    assert ev.value.end_s == pytest.approx(expected, rel=1e-9)
    assert ev.value.end_s == pytest.approx(slow_start_send_time_s(10e6, 0.15, r) + 0.075,
                                           rel=1e-12)


def test_small_message_ends_inside_slow_start(model):
    # 1 MB: rounds 0-5 carry 63 IW = 912,240 B; round 6 (926,720 B allowed) sends the last
    # 87,760 B at the line rate
    world = tcp_world(model=model)
    ev = world.network.transfer(0, 1, 1e6)
    world.env.run()
    assert ev.value.end_s == pytest.approx(6 * 0.15 + (1e6 - 63 * IW) / (12.5e6 * EFF) + 0.075,
                                           rel=1e-9)


def test_window_cap_on_a_long_fat_path(model):
    """1 Gbit/s, 150 ms RTT: BDP 17.9 MB > the 4 MiB cap, so rate <= 4 MiB / 0.15 s = 28 MB/s.

    Slow start: rounds 0-8 carry 511 IW = 7,399,280 B (round 8's 3.7 MB window still < cap);
    then cwnd is capped at 4,194,304 B per RTT. The remaining 92,600,720 B need 22 full capped
    rounds and a last one of 323,032 B at the line rate.
    """
    world = tcp_world(model=model, bandwidth_Bps=125e6)
    ev = world.network.transfer(0, 1, 100e6)
    world.env.run()
    r, cap = 125e6 * EFF, 4 * 1024 * 1024
    left = 100e6 - 511 * IW
    assert math.ceil(left / cap) - 1 == 22
    expected = 9 * 0.15 + 22 * 0.15 + (left - 22 * cap) / r + 0.075
    assert ev.value.end_s == pytest.approx(expected, rel=1e-9)
    # the long-run rate is the cap over the RTT, far below the link
    assert 100e6 / ev.value.end_s < cap / 0.15 < r / 4


def test_warm_connection_skips_the_ramp_and_idle_restarts_it(model):
    """10 Mbit/s, 25 ms one way (RTT 50 ms, RTO 250 ms): BDP = 59,774 B.

    The first 2 MB message ramps (14,480 / 28,960 / 57,920 B rounds, then full). A second
    message sent when the first arrives (idle 25 ms < RTO) costs m / r + latency. After 1 s idle,
    Linux halves cwnd (115,840 B, the window that filled the pipe) per RTO down to IW: the third
    message ramps again exactly like the first.
    """
    world = tcp_world(model=model, latency_s=0.025, bandwidth_Bps=1.25e6)
    r = 1.25e6 * EFF
    cold = slow_start_send_time_s(2e6, 0.05, r) + 0.025
    assert cold == pytest.approx(3 * 0.05 + (2e6 - 7 * IW) / r + 0.025, rel=1e-12)

    def sender():
        first = yield world.network.transfer(0, 1, 2e6)
        second = yield world.network.transfer(0, 1, 2e6)
        yield world.env.timeout(1.0)
        third = yield world.network.transfer(0, 1, 2e6)
        return first, second, third

    proc = world.env.process(sender())
    world.env.run()
    first, second, third = proc.value
    assert first.end_s - first.start_s == pytest.approx(cold, rel=1e-9)
    assert second.end_s - second.start_s == pytest.approx(2e6 / r + 0.025, rel=1e-9)
    assert third.end_s - third.start_s == pytest.approx(cold, rel=1e-9)


def test_without_idle_restart_the_connection_stays_warm(model):
    world = tcp_world(model=model, latency_s=0.025, bandwidth_Bps=1.25e6,
                      slow_start_after_idle=False)
    r = 1.25e6 * EFF

    def sender():
        yield world.network.transfer(0, 1, 2e6)
        yield world.env.timeout(5.0)
        return (yield world.network.transfer(0, 1, 2e6))

    proc = world.env.process(sender())
    world.env.run()
    assert proc.value.end_s - proc.value.start_s == pytest.approx(2e6 / r + 0.025, rel=1e-9)


def test_messages_on_one_connection_go_in_order_not_side_by_side():
    # zero latency (no window effects): fluid maxmin would halve the rate for both and deliver
    # both at 2 s; one connection sends the first, then the second
    world = tcp_world(latency_s=0.0, bandwidth_Bps=1e6)
    r = 1e6 * EFF
    a = world.network.transfer(0, 1, 1e6)
    b = world.network.transfer(0, 1, 1e6)
    world.env.run()
    assert a.value.end_s == pytest.approx(1e6 / r)
    assert b.value.end_s == pytest.approx(2e6 / r)


def test_back_to_back_messages_share_the_ramp_like_one_stream(model):
    # two 0.5 MB messages queued at once cost what one 1 MB message costs (one byte stream)
    world = tcp_world(model=model)
    a = world.network.transfer(0, 1, 0.5e6)
    b = world.network.transfer(0, 1, 0.5e6)
    world.env.run()
    one = tcp_world(model=model)
    whole = one.network.transfer(0, 1, 1e6)
    one.env.run()
    assert b.value.end_s == pytest.approx(whole.value.end_s, rel=1e-9)
    assert a.value.end_s < b.value.end_s


def test_parallel_streams_multiply_the_windows(model):
    world = tcp_world(model=model, parallel_streams=4)
    ev = world.network.transfer(0, 1, 10e6)
    world.env.run()
    r = 12.5e6 * EFF
    expected = slow_start_send_time_s(10e6, 0.15, r, initial_window_bytes=4 * IW) + 0.075
    # windows 57,920 * 2^i: round 5 (1,853,440 B) fills the pipe, so 5 RTTs carry 31 * 4 IW
    assert expected == pytest.approx(5 * 0.15 + (10e6 - 31 * 4 * IW) / r + 0.075, rel=1e-12)
    assert ev.value.end_s == pytest.approx(expected, rel=1e-9)


def test_handshake_costs_one_rtt_on_a_cold_connection_only(model):
    world = tcp_world(model=model, handshake=True)
    plain = tcp_world(model=model)
    ev, ref = world.network.transfer(0, 1, 1e6), plain.network.transfer(0, 1, 1e6)
    world.env.run()
    plain.env.run()
    assert ev.value.end_s == pytest.approx(ref.value.end_s + 0.15, rel=1e-9)


def test_two_flows_share_a_bottleneck_after_their_ramps():
    """Two senders into node 2's 100 Mbit/s downlink, 10 ms one way (RTT 20 ms).

    Each gets r/2 = 5.98 MB/s, a BDP of 119,548 B: rounds of 14,480 ... 115,840 B leave the
    link idle part of each RTT; round 4 (231,680 B) fills it. So 4 RTTs carry 15 IW per flow,
    then both send at r/2 to the end: 0.08 + (40e6 - 30 IW) / r + 0.01.
    """
    world = make_world(3, latency_s=0.01, downlink=(None, None, 12.5e6), transport="tcp")
    a = world.network.transfer(0, 2, 20e6)
    b = world.network.transfer(1, 2, 20e6)
    world.env.run()
    r = 12.5e6 * EFF
    expected = 4 * 0.02 + (40e6 - 30 * IW) / r + 0.01
    assert a.value.end_s == pytest.approx(expected, rel=1e-9)
    assert b.value.end_s == pytest.approx(expected, rel=1e-9)


def test_cut_queued_and_parked_messages_keep_the_byte_balance(model):
    world = tcp_world(3, model=model)
    net = world.network
    events = [net.transfer(0, 1, 3e6), net.transfer(0, 1, 1e6), net.transfer(0, 2, 2e6)]
    for ev in events:
        ev.callbacks.append(lambda e: setattr(e, "defused", True))

    def killer():
        yield world.env.timeout(0.2)  # node 0 is between slow-start rounds
        world.nodes[0].fail("test")

    world.env.process(killer())
    world.env.run()
    rec = world.recorder
    assert all(isinstance(ev.value, TransferCut) for ev in events)
    assert rec.bytes_sent[0] == rec.bytes_received[1] + rec.bytes_received[2] + rec.bytes_cut[0]
    assert rec.bytes_cut[0] == 6e6
    assert net.active_flows == 0


def test_tcp_efficiency_and_tcp_transport_do_not_mix():
    with pytest.raises(ValueError, match="network.tcp_efficiency"):
        make_world(2, transport="tcp", tcp_efficiency=0.9)


def test_unknown_transport_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="network.transport"):
        make_world(2, transport="udp")


def test_hystart_short_rtt_exit_then_cubic_grows_five_percent_per_rtt(model):
    """1 Gbit/s, 0.5 ms one way: RTT 1 ms, payload rate r = 125e6 * 1448/1514 = 119.5 MB/s.

    Round 0 sends IW = 10 segments in 0.12 ms; the 0.88 ms until the next round is under
    HyStart's 2 ms ACK spacing, so the train never breaks and the window, now 20 segments
    (>= 16), leaves slow start. With no loss yet CUBIC adds one segment per 20 ACKed: windows
    10, 20, 21, 22.05, 23.1525 segments, each round one RTT (none fills the 119.5 kB pipe). A
    message of exactly those 96.2025 segments ends in round 4: 4 RTTs + 23.1525 segments / r +
    0.5 ms. Without the exit (slow start: 10, 20, 40, then 26.2025 of 80 segments in round 3)
    it takes 3 RTTs + 26.2025 segments / r + 0.5 ms.
    """
    r, seg, nbytes = 125e6 * EFF, 1448, 96.2025 * 1448
    world = tcp_world(model=model, latency_s=0.0005, bandwidth_Bps=125e6,
                      hystart_short_rtt_exit=True)
    ev = world.network.transfer(0, 1, nbytes)
    world.env.run()
    assert ev.value.end_s == pytest.approx(4e-3 + 23.1525 * seg / r + 0.0005, rel=1e-9)
    plain = tcp_world(model=model, latency_s=0.0005, bandwidth_Bps=125e6)
    ev = plain.network.transfer(0, 1, nbytes)
    plain.env.run()
    assert ev.value.end_s == pytest.approx(3e-3 + 26.2025 * seg / r + 0.0005, rel=1e-9)


def test_hystart_short_rtt_exit_leaves_paths_with_longer_gaps_alone(model):
    # 100 Mbit/s, 150 ms RTT: the gap between rounds is far above 2 ms, slow start runs to the
    # full pipe exactly as without the option (the closed form of the 10 MB test above)
    world = tcp_world(model=model, hystart_short_rtt_exit=True)
    ev = world.network.transfer(0, 1, 10e6)
    world.env.run()
    assert ev.value.end_s == pytest.approx(
        slow_start_send_time_s(10e6, 0.15, 12.5e6 * EFF) + 0.075, rel=1e-12)


def linux_cwnd_restart(cwnd: float, idle_s: float, rto_s: float, iw: float) -> float:
    """Linux's ``tcp_cwnd_restart`` in floats, the oracle: halve once per RTO of idleness past
    the first, down to ``min(IW, cwnd)``."""
    if idle_s <= rto_s:
        return cwnd
    restart = min(iw, cwnd)
    while idle_s > rto_s and cwnd > restart:
        cwnd /= 2
        idle_s -= rto_s
    return max(cwnd, restart)


@settings(max_examples=400, deadline=None)
@example(cwnd=33.0, iw=1.0, rto=1.0, rtos=0.0, near=None, halvings=0.56)  # 5 halvings of 6
@example(cwnd=33 * IW, iw=IW, rto=0.2, rtos=0.0, near=None, halvings=1.5)
@given(cwnd=st.floats(1.0, 1e12), iw=st.sampled_from([1.0, 3.0, IW, 4 * IW]),
       rto=st.floats(1e-6, 10.0),
       rtos=st.one_of(st.floats(0.0, 200.0), st.sampled_from([1e6, 1e18, math.inf])),
       near=st.sampled_from([None, 1 - 1e-12, 1.0, 1 + 1e-12]),
       halvings=st.one_of(st.none(), st.floats(-1.0, 3.0)))
def test_idle_restart_after_a_long_idle_equals_the_kernels_loop(cwnd, iw, rto, rtos, near,
                                                                halvings):
    """The restart window without the loop (an idle of more than 2 (H + 1) RTOs) is the loop's,
    bit for bit: random windows and idle times, idle times at the shortcut's threshold, and
    idle times about as many RTOs as the halvings down to the restart window (log2(cwnd /
    restart)), where a loop stopped by the idle time ends above it."""
    idle = rtos * rto
    if near is not None:  # at the threshold, within rounding either way
        idle = 2 * (math.log2(cwnd / min(iw, cwnd)) + 3) * rto * near
    elif halvings is not None:
        idle = (math.log2(cwnd / min(iw, cwnd)) + halvings) * rto
    assert idle_restart_window_bytes(cwnd, idle, rto, iw) == linux_cwnd_restart(cwnd, idle, rto,
                                                                                 iw)
