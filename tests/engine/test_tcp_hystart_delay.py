"""HyStart's delay exit for connections that start together, and CUBIC's growth after it.

Hand-computed values for ``TcpConfig.hystart_delay_exit`` (``sim/network/tcp.py``). The fan-in
star of the validation grid: k senders on links 10x faster than the receiver's 100 Mbit/s link,
which has the whole 20 ms one-way latency (RTT 40 ms). Payload rate C = 12.5e6 x 1448 / 1514 =
11,954,887 B/s; Linux's threshold eta = clamp(40 ms / 8, 4 ms, 16 ms) = 5 ms, a queue of
eta x C = 59,774 B = 41.28 segments. Connections that open a round at the same instant queue in
the order they open it; in slow start each round's window reaches the bottleneck at twice the
rate the last one left it, so half of it queues: the j-th connection (from 0) of a round of
windows W waits behind j W / 2. The delay test fires for W >= 16 segments when j W / 2 > 41.28;
one RTT later (the first ACKs of that round) slow start ends at W + 8 segments (the 8 samples'
ACKs grew it), unless that round already filled the pipe.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.config import NetworkConfig
from sim.errors import FieldError
from sim.network.tcp import (
    RENO_FRIENDLY_SEGMENTS_PER_RTT,
    Connection,
    TcpConfig,
    TcpTransport,
    cubic_window_segments,
)
from sim.network.validation import Case, Message, predict
from sim.world import World
from topologies import uniform

SEG = 1448
DELAY_EXIT = TcpConfig(hystart_delay_exit=True)


def fan_in(k: int, nbytes: float = 10e6, stagger_s: float = 0.0) -> Case:
    """k flows into one 100 Mbit/s receiver with 20 ms one way (the grid's shared cases)."""
    return Case(name=f"{k} flows", kind="shared", rate_bps=(1e9,) * k + (1e8,),
                delay_s=(0.0,) * k + (0.02,),
                messages=tuple(Message(src=i, dst=k, nbytes=nbytes, start_s=i * stagger_s)
                               for i in range(k)))


def run_fan_in(k: int, tcp: TcpConfig, monkeypatch,
               stagger_s: float = 0.0) -> tuple[list[tuple[float, float]], World]:
    """Run ``fan_in(k, stagger_s=...)``; returns (time, window in segments) of every delay exit,
    and the world."""
    exits: list[tuple[float, float]] = []
    leave = TcpTransport._leave_slow_start

    def spy(conn: Connection, now: float) -> None:
        exits.append((now, conn.cwnd / SEG))
        leave(conn, now)

    monkeypatch.setattr(TcpTransport, "_leave_slow_start", staticmethod(spy))
    case = fan_in(k, stagger_s=stagger_s)
    topo = uniform(k + 1)
    topo = replace(topo, uplink_Bps=tuple(r / 8 for r in case.rate_bps),
                   downlink_Bps=tuple(r / 8 for r in case.rate_bps),
                   access_latency_s=case.delay_s)
    world = World(topo, network=NetworkConfig(model="maxmin", transport="tcp", tcp=tcp))

    def send_later(m: Message):
        yield world.env.timeout(m.start_s)
        world.network.transfer(m.src, m.dst, m.nbytes)

    for m in case.messages:
        if m.start_s:
            world.env.process(send_later(m))
        else:
            world.network.transfer(m.src, m.dst, m.nbytes)
    world.env.run()
    return exits, world


def test_threshold_is_linux_min_rtt_over_8_clamped_to_4_16_ms():
    tcp = TcpConfig()
    assert tcp.hystart_delay_threshold_s(0.040) == pytest.approx(0.005)
    assert tcp.hystart_delay_threshold_s(0.020) == pytest.approx(0.004)
    assert tcp.hystart_delay_threshold_s(0.300) == pytest.approx(0.016)
    ns3 = TcpConfig(hystart_delay_rtt_fraction=1.0, hystart_delay_max_s=1.0)
    assert ns3.hystart_delay_threshold_s(0.040) == pytest.approx(0.040)


def test_four_flows_together_exit_at_48_and_88_segments(monkeypatch):
    """Rounds of 10 (below 16: not tested), 20 (queues 0, 10, 20, 30 segments < 41.28), 40:
    the 4th connection waits behind 3 x 20 = 60 > 41.28 segments and leaves at 40 + 8 = 48
    segments one RTT later (t = 3 RTT = 0.12 s); the 3rd waits behind 40, not enough. Round of
    80: the 3rd waits behind 2 x 40 = 80 (the 4th, past slow start, adds no excess) and leaves
    at 88 at t = 4 RTT. The first two send 160 segments each in the next round with the others'
    138.4 (48 x 1.05 + 88): 458.4 segments take 55.5 ms > RTT, so that round fills the pipe and they
    leave slow start by the transport's own rule at 160 segments."""
    exits, world = run_fan_in(4, DELAY_EXIT, monkeypatch)
    assert [t for t, _ in exits] == pytest.approx([0.12, 0.16], abs=1e-12)
    assert [w for _, w in exits] == pytest.approx([48, 88], rel=1e-12)
    leaders = [c for c in world.network._connections.values() if not c.ca_start_s]
    assert len(leaders) == 2
    assert all(c.cwnd == pytest.approx(160 * SEG) and not c.slow_start for c in leaders)


def test_eight_flows_together_exit_at_28_and_48_segments(monkeypatch):
    """Round of 20: connections 5, 6, 7 wait behind 50, 60, 70 segments > 41.28 and leave at
    28 at t = 2 RTT; round of 40 (five left in slow start): connections 3 and 4 wait behind 60
    and 80 and leave at 48 at t = 3 RTT; the other three fill the pipe with the round of 80."""
    exits, _ = run_fan_in(8, DELAY_EXIT, monkeypatch)
    assert [t for t, _ in exits] == pytest.approx([0.08] * 3 + [0.12] * 2, abs=1e-12)
    assert [w for _, w in exits] == pytest.approx([28] * 3 + [48] * 2, rel=1e-12)


def test_two_flows_together_exit_at_168_segments(monkeypatch):
    """The 2nd connection waits behind W / 2: 40 segments for W = 80 (just under 41.28), 80 for
    W = 160: it leaves at 168 at t = 5 RTT; the two rounds of 160 (38.8 ms) did not fill the
    pipe. ns-3's threshold (the min RTT itself, 330 segments here) never fires on this path."""
    exits, _ = run_fan_in(2, DELAY_EXIT, monkeypatch)
    assert exits == [(pytest.approx(0.2, abs=1e-12), pytest.approx(168, rel=1e-12))]
    ns3 = replace(DELAY_EXIT, hystart_delay_rtt_fraction=1.0, hystart_delay_max_s=1.0)
    exits, _ = run_fan_in(2, ns3, monkeypatch)
    assert exits == []


def test_off_by_default_and_no_effect_on_a_lone_or_staggered_flow(monkeypatch):
    exits, _ = run_fan_in(4, TcpConfig(), monkeypatch)
    assert exits == []
    # alone, a connection's last burst drains before its next round (the pipe was not full);
    # with the option its rounds run on the clock, without it in closed form: equal to 1e-9
    exits, _ = run_fan_in(1, DELAY_EXIT, monkeypatch)
    assert exits == []
    lone = fan_in(1)
    assert predict(lone, tcp=DELAY_EXIT) == pytest.approx(predict(lone), rel=1e-9)
    # the option runs burst rounds (paced rounds, the default, would refuse it): compare with
    # burst rounds, since flows that share a link see a burst and a pace differently
    burst = TcpConfig(rounds="burst")
    # started 1 s apart, each newcomer's rounds meet the others past slow start (no excess)
    exits, _ = run_fan_in(4, DELAY_EXIT, monkeypatch, stagger_s=1.0)
    assert exits == []
    staggered = fan_in(4, stagger_s=1.0)
    assert predict(staggered, tcp=DELAY_EXIT) == pytest.approx(predict(staggered, tcp=burst),
                                                               rel=1e-9)


@pytest.mark.parametrize("lone_ramps", [True, False])
def test_a_newcomer_queues_behind_a_lone_connections_burst(lone_ramps, monkeypatch):
    """Initial windows of 100 segments, the 2nd connection 40.5 ms after the 1st. The 1st, alone,
    opens rounds of 100 (t = 0) and 200 segments (t = 40 ms: the first had drained, 50 - 40 ms
    x C < 0), so 100 segments queue from t = 40 ms. The 2nd opens its round of 100 at 40.5 ms
    behind 100 - 0.5 ms x C / 1448 = 95.9 > 41.28 segments: it leaves slow start one RTT later
    (t = 80.5 ms) at 100 + 8 = 108 segments. The 1st opens its round of 400 at 80 ms behind
    nothing (145.9 segments then, 326 drained since). The 1st's rounds run in closed form when
    it is alone; they must feed the queue all the same (the same exits with ``lone_ramps``
    on and off)."""
    monkeypatch.setattr(TcpTransport, "lone_ramps", lone_ramps)
    exits, _ = run_fan_in(2, replace(DELAY_EXIT, initial_window_segments=100), monkeypatch,
                          stagger_s=0.0405)
    assert exits == [(pytest.approx(0.0805, abs=1e-12), pytest.approx(108, rel=1e-12))]


def test_no_closed_form_ramps_with_the_option(monkeypatch):
    """A connection alone for 1 s takes a closed-form ramp from its second step without the
    option; with it, every round runs on the clock (the test above: its bursts must be in the
    queue), so ramps and rounds on the clock are the same run."""
    _, world = run_fan_in(2, TcpConfig(), monkeypatch, stagger_s=1.0)
    assert world.network.ramps_started > 0
    _, world = run_fan_in(2, DELAY_EXIT, monkeypatch, stagger_s=1.0)
    assert world.network.ramps_started == 0


def test_cubic_window_after_t_seconds():
    """max(W_origin + C (t + RTT)^3, W_origin + 3 (1 - beta) / (1 + beta) t / RTT), K = 0.

    From 28 segments on a 40 ms path: at t = 2 s the cubic term is 0.4 x 2.04^3 = 3.396 and the
    Reno-friendly one 0.5294 x 50 = 26.47 (Reno wins: 54.47); at t = 10 s 0.4 x 10.04^3 = 404.8
    against 132.4 (cubic wins: 432.8)."""
    assert RENO_FRIENDLY_SEGMENTS_PER_RTT == pytest.approx(0.9 / 1.7)
    assert cubic_window_segments(0.0, 28, 0.04) == pytest.approx(28 + 0.4 * 0.04 ** 3)
    assert cubic_window_segments(2.0, 28, 0.04) == pytest.approx(28 + 0.9 / 1.7 * 50)
    assert cubic_window_segments(10.0, 28, 0.04) == pytest.approx(28 + 0.4 * 10.04 ** 3)


def test_avoidance_growth_per_round(monkeypatch):
    """A round that ACKed its whole window grows it towards the target, by at least 5% (one
    segment per 20: W_max is unknown) and at most 50%. Origin 100 segments, RTT 0.1 s, 5 s into
    the epoch with a window of 140: target 100 + 0.4 x 5.1^3 = 153.06 (Reno: 126.5), +13.06
    segments; at 0.1 s (target 100.0032, Reno 100.53) the floor: +7 segments."""
    _, world = run_fan_in(1, DELAY_EXIT, monkeypatch)
    net = world.network
    conn = Connection(140 * SEG)
    conn.rtt_s, conn.ca_start_s, conn.ca_origin = 0.1, 0.0, 100 * SEG
    conn.round_sent = 140 * SEG
    assert net._avoidance_growth(conn, 5.0) / SEG == pytest.approx(0.4 * 5.1 ** 3 + 100 - 140)
    assert net._avoidance_growth(conn, 0.1) / SEG == pytest.approx(140 / 20)
    conn.cwnd, conn.round_sent = 10 * SEG, 10 * SEG   # far below a target of 153: capped at 1.5x
    assert net._avoidance_growth(conn, 5.0) / SEG == pytest.approx(5)


def test_bad_thresholds_name_the_field():
    with pytest.raises(FieldError, match="hystart_delay_min_s"):
        TcpConfig(hystart_delay_min_s=0.02, hystart_delay_max_s=0.016)
    with pytest.raises(FieldError, match="hystart_delay_rtt_fraction"):
        TcpConfig(hystart_delay_rtt_fraction=0)


def test_scenario_keys(tmp_path):
    """``[network.tcp]`` keys reach the TcpConfig (durations parsed)."""
    from sim.scenario import load
    from tests.product.test_field_errors import _scenario

    path = _scenario(tmp_path, tail="[network.tcp]\nhystart_delay_exit = true\n"
                                    "hystart_delay_rtt_fraction = 1.0\n"
                                    "hystart_delay_max = \"1s\"\n")
    tcp = load(path).network.tcp
    assert (tcp.hystart_delay_exit, tcp.hystart_delay_rtt_fraction, tcp.hystart_delay_min_s,
            tcp.hystart_delay_max_s) == (True, 1.0, 0.004, 1.0)
