"""The bottleneck buffer of the ``tcp`` transport (``TcpConfig.bottleneck_queue_bytes``).

Hand-computed values. The world: nodes 0 and 1 send to node 2, whose 100 Mbit/s downlink is
the bottleneck (every other link unlimited), one-way latency 20 ms between any two nodes, so
RTT = 40 ms. Payload rate C = 12.5e6 x 1448 / 1514 = 11,954,887 B/s; the pipe B = C x RTT =
330.25 segments of 1448 bytes. While the windows (sum W, segments) exceed B, the queue holds
sum W - B and a round trip lasts RTT + (sum W - B) x 1448 / C = sum W x 1448 / C.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import FieldError, TransferCut
from sim.network.droptail import CubicState, queueing_delay_s, reduced_window_bytes
from sim.network.tcp import Connection, TcpConfig, TcpTransport, cubic_window_segments
from sim.network.validation import Case, Message, predict, with_bottleneck_queue

from .conftest import make_world, ring_run_summary
from .test_tcp_hystart_delay import fan_in

SEG = 1448
C = 12.5e6 * 1448 / 1514
RTT = 0.04
B = C * RTT / SEG  # 330.25 segments


def world_with(queue_segments: float, **tcp):
    """The fan-in world with a buffer of ``queue_segments`` full frames."""
    config = TcpConfig(bottleneck_queue_bytes=queue_segments * 1514, **tcp)
    return make_world(3, latency_s=RTT / 2, downlink=(None, None, 12.5e6), transport="tcp",
                      tcp=config)


def in_avoidance(world, src: int, dst: int, segments: float) -> Connection:
    """A warm connection ``src -> dst`` in CUBIC's congestion avoidance with this window (no
    loss yet, its epoch starting at 0)."""
    conn = Connection(segments * SEG)
    conn.slow_start, conn.probing = False, True
    conn.ca_start_s, conn.ca_origin = 0.0, segments * SEG
    conn.cubic = CubicState()
    world.network._pairs[(src, dst)] = conn  # (the pair's record is its connection)
    return conn


def spy_rounds(monkeypatch) -> list[tuple[float, int, float, float]]:
    """Record every round that opens: (time, connection's source, window in segments, its
    queueing delay in s)."""
    rounds: list[tuple[float, int, float, float]] = []
    new_round = TcpTransport._new_round

    def spy(self, conn, now):
        new_round(self, conn, now)
        rounds.append((now, conn.head.src, conn.round_window / SEG, conn.cubic.delay_s))

    monkeypatch.setattr(TcpTransport, "_new_round", spy)
    return rounds


# -- the pure functions ------------------------------------------------------------------------

def test_queueing_delay_equal_rtts_is_windows_over_capacity_minus_rtt():
    assert queueing_delay_s([300 * SEG, 200 * SEG], [RTT, RTT], C) == pytest.approx(
        500 * SEG / C - RTT, rel=1e-12)
    assert queueing_delay_s([200 * SEG, 100 * SEG], [RTT, RTT], C) == 0.0  # below the pipe


def test_queueing_delay_unequal_rtts_solves_the_quadratic():
    """W1 / (r1 + d) + W2 / (r2 + d) = C  <=>  C d^2 + (C (r1 + r2) - W1 - W2) d
    + C r1 r2 - W1 r2 - W2 r1 = 0; the positive root."""
    w1, w2, r1, r2 = 400 * SEG, 300 * SEG, 0.02, 0.08
    a, b, c = C, C * (r1 + r2) - w1 - w2, C * r1 * r2 - w1 * r2 - w2 * r1
    root = (-b + (b * b - 4 * a * c) ** 0.5) / (2 * a)
    assert queueing_delay_s([w1, w2], [r1, r2], C) == pytest.approx(root, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(windows=st.lists(st.floats(1e3, 5e7), min_size=2, max_size=40),
       rtts_ms=st.lists(st.floats(0.1, 400.0), min_size=2, max_size=40),
       capacity=st.floats(1e5, 2e9))
def test_queueing_delay_fills_the_link_for_any_rtts(windows, rtts_ms, capacity):
    """Any windows and RTTs: d lies between the closed forms of the largest and the smallest
    RTT (sum W / C - max RTT <= d <= sum W / C - min RTT), and the windows ACK-clocked over
    RTT + d fill the link to 1e-9 (or d = 0 when they do not fill it at d = 0)."""
    k = min(len(windows), len(rtts_ms))
    ws, rs = windows[:k], [r / 1000 for r in rtts_ms[:k]]
    d = queueing_delay_s(ws, rs, capacity)
    if sum(w / r for w, r in zip(ws, rs, strict=True)) <= capacity:
        assert d == 0.0
        return
    total = sum(ws) / capacity
    assert max(0.0, total - max(rs)) <= d <= total - min(rs) + 1e-12 * total
    assert sum(w / (r + d) for w, r in zip(ws, rs, strict=True)) == pytest.approx(capacity,
                                                                                 rel=1e-9)


def test_cubic_reduction_with_fast_convergence():
    """beta = 0.7; W_max = the window, or (1 + beta) / 2 of it below the last W_max."""
    assert reduced_window_bytes(100.0, 0.0, 0.7, 2.0) == pytest.approx((70.0, 100.0))
    assert reduced_window_bytes(100.0, 120.0, 0.7, 2.0) == pytest.approx((70.0, 85.0))
    assert reduced_window_bytes(2.0, 0.0, 0.7, 2.0) == pytest.approx((2.0, 2.0))


def test_cubic_window_returns_to_w_max_after_k():
    """After a loss at W_max = 1000 (window 700): K = (1000 x 0.3 / 0.4)^(1/3) = 750^(1/3) =
    9.086 s, so the curve aimed at one RTT ahead is W_max at t = K - RTT (W_est is 700 +
    0.529 x 9.046 / 0.04 = 819.8 then); at t = 0 it is 1000 - 0.4 (K - RTT)^3 = 703.9 (above
    W_est = 700)."""
    k = 750 ** (1 / 3)
    assert cubic_window_segments(k - RTT, 700, RTT, 1000) == pytest.approx(1000, rel=1e-12)
    assert cubic_window_segments(0.0, 700, RTT, 1000) == pytest.approx(
        1000 - 0.4 * (k - RTT) ** 3, rel=1e-12)
    # a W_max below the window: K = 0 from the window, as with none
    assert cubic_window_segments(1.0, 700, RTT, 500) == cubic_window_segments(1.0, 700, RTT)


def test_reno_estimate_counts_windows_acked_not_time():
    """W_est grows 3 (1 - beta) / (1 + beta) = 0.529 segments per window ACKed (Linux's
    ``ack_cnt``): 2 s into an epoch from 28 segments on a 40 ms path whose round trips the
    queue doubled, 25 windows were ACKed, not 50: W_est = 28 + 0.529 x 25 = 41.24 (the cubic
    term, 28 + 0.4 x 2.04^3 = 31.40, is below)."""
    assert cubic_window_segments(2.0, 28, RTT, acked_windows=25) == pytest.approx(
        28 + 0.9 / 1.7 * 25, rel=1e-12)
    assert cubic_window_segments(2.0, 28, RTT) == pytest.approx(28 + 0.9 / 1.7 * 50, rel=1e-12)


# -- rates from windows while a queue stands --------------------------------------------------

def test_a_small_window_waits_for_the_queue_of_a_large_one(monkeypatch):
    """Windows of 100 and 400 segments in congestion avoidance, a buffer of 1000 (no loss).

    Node 0 opens its first round alone at t = 0 (node 1 opens its own just after): no queue.
    At RTT it opens its second with 105 segments (+5%: W_max unknown) while node 1's 400 are
    in flight: the queue holds 505 - B, the round trip lasts 505 x 1448 / C = 61.17 ms, and its
    third round opens at RTT + 505 x 1448 / C, not at 2 RTT. Its rate in that round is
    W / (RTT + Q / C) = 105 segments per 61.17 ms."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(1000)
    in_avoidance(world, 0, 2, 100)
    in_avoidance(world, 1, 2, 400)
    world.network.transfer(0, 2, 5e6)
    world.network.transfer(1, 2, 5e6)
    world.env.run(until=0.2)
    mine = [(t, w, d) for t, src, w, d in rounds if src == 0]
    assert mine[0] == (0.0, pytest.approx(100), 0.0)
    assert mine[1] == (pytest.approx(RTT), pytest.approx(105), pytest.approx(505 * SEG / C - RTT))
    assert mine[2][0] == pytest.approx(RTT + 505 * SEG / C, rel=1e-9)
    theirs = [(t, w, d) for t, src, w, d in rounds if src == 1]
    assert theirs[0] == (0.0, pytest.approx(400), pytest.approx(500 * SEG / C - RTT))


def test_without_the_buffer_the_small_window_keeps_its_rtt(monkeypatch):
    """The same two windows without the option: the second round of node 0 lasts one RTT."""
    rounds: list[tuple[float, int]] = []
    new_round = TcpTransport._new_round

    def spy(self, conn, now):
        new_round(self, conn, now)
        rounds.append((now, conn.head.src))

    monkeypatch.setattr(TcpTransport, "_new_round", spy)
    world = make_world(3, latency_s=RTT / 2, downlink=(None, None, 12.5e6), transport="tcp")
    for src, w in ((0, 100), (1, 400)):
        conn = in_avoidance(world, src, 2, w)
        conn.cubic = None
    world.network.transfer(0, 2, 5e6)
    world.network.transfer(1, 2, 5e6)
    world.env.run(until=0.2)
    assert [t for t, src in rounds if src == 0][:3] == [0.0, pytest.approx(RTT),
                                                          pytest.approx(2 * RTT)]


# -- CUBIC's growth in congestion avoidance -------------------------------------------------

def test_the_window_grows_at_most_1_5x_per_round_towards_a_far_target(monkeypatch):
    """CUBIC grows the window at most one segment per 2 ACKed (``tcp_cubic.c``: ``cnt`` at
    least 2), so at most 1.5x per round trip, however far its target is.

    The state is set by hand: node 0 alone, in congestion avoidance at 10 segments, no W_max,
    its epoch begun 5 s before t = 0 from 10 segments (as if it had sent little since; the
    window grows only with what is ACKed). Every window stays below the pipe (B = 330.25), so
    no queue stands and rounds open every RTT = 40 ms; each round sends its whole window.
    CUBIC's target when a round closes at ``now`` (t = 5 s + now into the epoch, the curve
    aimed one RTT ahead, K = 0) is 10 + 0.4 (5 + now + 0.04)^3 segments; W_est = 10 + 0.529 n
    (n windows ACKed, n <= 5) stays below it:

        round closes   target                        1.5 x window   next window
        0.04 s         10 + 0.4 x 5.08^3 = 62.44     15             15        (capped)
        0.08 s         10 + 0.4 x 5.12^3 = 63.69     22.5           22.5      (capped)
        0.12 s         10 + 0.4 x 5.16^3 = 64.96     33.75          33.75     (capped)
        0.16 s         10 + 0.4 x 5.20^3 = 66.24     50.625         50.625    (capped)
        0.20 s         10 + 0.4 x 5.24^3 = 67.55     75.94          67.55     (the target)

    Without the cap the second round would already send 62.44 segments."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(1000)
    conn = in_avoidance(world, 0, 2, 10)
    conn.ca_start_s = -5.0
    world.network.transfer(0, 2, 2e6)
    world.env.run(until=5.5 * RTT)
    assert [(t, w, d) for t, _, w, d in rounds] == [
        (pytest.approx(i * RTT), pytest.approx(w, rel=1e-9), 0.0)
        for i, w in enumerate((10, 15, 22.5, 33.75, 50.625, 10 + 0.4 * 5.24 ** 3))]


# -- losses at a full buffer ------------------------------------------------------------------

def test_two_windows_lose_when_the_queue_fills(monkeypatch):
    """Two windows of 230 segments in congestion avoidance, a buffer of 200: B + Q = 530.25.

    In step, each round trip lasts sum W x 1448 / C and each window grows 5% (its target is
    below: the floor while W_max is unknown), 230 x 1.05^n. Rounds open at 460, 483, 507.15
    segments together; the fourth (532.54 > 530.25) overflows the buffer the instant it opens,
    at (460 + 483 + 507.15) x 1448 / C; both connections lose. They answer when their next
    round opens, one round trip (532.54 x 1448 / C) later: 0.7 x 266.27 = 186.39 segments,
    W_max 266.27, and no second loss event."""
    rounds = spy_rounds(monkeypatch)
    overflows: list[float] = []
    overflow = TcpTransport._overflow

    def spy(queue, now):
        overflows.append(now)
        overflow(queue, now)

    monkeypatch.setattr(TcpTransport, "_overflow", staticmethod(spy))
    world = world_with(200)
    conns = [in_avoidance(world, src, 2, 230) for src in (0, 1)]
    world.network.transfer(0, 2, 20e6)
    world.network.transfer(1, 2, 20e6)
    world.env.run(until=0.3)
    fill_s = 2 * 230 * (1 + 1.05 + 1.05 ** 2) * SEG / C
    assert overflows[0] == pytest.approx(fill_s, rel=1e-9)
    answered = [(t, src, w) for t, src, w, _ in rounds if t > fill_s + 1e-9][:2]
    w3 = 230 * 1.05 ** 3
    assert answered == [(pytest.approx(fill_s + 2 * w3 * SEG / C, rel=1e-9), src,
                         pytest.approx(0.7 * w3, rel=1e-9)) for src in (0, 1)]
    assert [c.cubic.w_max_bytes / SEG for c in conns] == [pytest.approx(w3)] * 2
    assert [c.cubic.losses for c in conns] == [1, 1]


def test_an_overflowing_queue_holds_the_buffer_and_each_loss_epoch_one_reduction(monkeypatch):
    """Windows of 50 and 600 segments, a buffer of 100 (B + Q = 430.25): node 1's round opens
    at 0 with 650 in flight, so both connections have a loss event. Node 0 answers when its
    second round opens at RTT: 0.7 x 50 = 35 segments, W_max 50. The windows then (35 + 600)
    would queue 635 x 1448 / C - RTT = 36.9 ms, but the buffer holds only Q x 1448 / C =
    12.11 ms: that round lasts RTT + 12.11 ms (its 35 segments leave within 8.5 ms). They
    overflow it again, but node 0 answered at that instant (its loss epoch), so its third
    round grows CUBIC's way from 35 towards W_max, with K = (15 / 0.4)^(1/3) s: to
    50 + 0.4 (t + RTT - K)^3 at t = RTT + 12.11 ms into the epoch (36.20 segments; W_est,
    35.53, is below), and node 0 has lost once."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(100)
    conns = [in_avoidance(world, src, 2, w) for src, w in ((0, 50), (1, 600))]
    world.network.transfer(0, 2, 5e6)
    world.network.transfer(1, 2, 5e6)
    world.env.run(until=0.1)
    full_s = 100 * SEG / C  # the buffer's delay
    mine = [(t, w, d) for t, src, w, d in rounds if src == 0][:3]
    k = (15 / 0.4) ** (1 / 3)
    assert mine == [(0.0, pytest.approx(50), 0.0),
                    (pytest.approx(RTT), pytest.approx(35), pytest.approx(full_s, rel=1e-9)),
                    (pytest.approx(2 * RTT + full_s, rel=1e-9),
                     pytest.approx(50 + 0.4 * (RTT + full_s + RTT - k) ** 3, rel=1e-9),
                     pytest.approx(full_s, rel=1e-9))]
    cubic = conns[0].cubic
    assert cubic is not None
    assert (cubic.losses, cubic.w_max_bytes) == (1, pytest.approx(50 * SEG))


def test_hystart_delay_test_sees_the_standing_queue(monkeypatch):
    """A connection in congestion avoidance keeps 500 segments in flight, 169.75 beyond the
    pipe: a standing queue of about 20 ms. A cold connection with HyStart's delay exit starts
    beside it; its second round (20 segments >= 16) reads that queue, above eta = 40 ms / 8
    = 5 ms, so slow start ends when the round closes at 20 + 8 samples = 28 segments (its
    own bursts alone queue 10 segments, 1.2 ms). Without the buffer no queue stands and the
    window doubles on (40, 80, ...)."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(1000, hystart_delay_exit=True)
    in_avoidance(world, 1, 2, 500)
    world.network.transfer(1, 2, 20e6)
    world.network.transfer(0, 2, 5e6)
    world.env.run(until=0.2)
    mine = [w for _, src, w, _ in rounds if src == 0][:3]
    assert mine == [pytest.approx(10), pytest.approx(20), pytest.approx(28)]
    conn = world.network._connections[(0, 2)]
    assert not conn.slow_start and conn.ca_origin == pytest.approx(28 * SEG)


def test_bytes_are_conserved_when_a_message_is_cut():
    """Sent = received + cut with the buffer on (a sender fails mid-transfer)."""
    world = world_with(100)
    events = [world.network.transfer(0, 2, 3e6), world.network.transfer(1, 2, 3e6)]
    for ev in events:
        ev.callbacks.append(lambda e: setattr(e, "defused", True))

    def killer():
        yield world.env.timeout(0.3)
        world.nodes[0].fail("test")

    world.env.process(killer())
    world.env.run()
    rec = world.recorder
    assert isinstance(events[0].value, TransferCut)
    assert not isinstance(events[1].value, TransferCut)
    assert rec.bytes_sent[0] + rec.bytes_sent[1] == rec.bytes_received[2] + rec.bytes_cut[0]
    assert rec.bytes_cut[0] == 3e6 and rec.bytes_received[2] == 3e6
    assert world.network.active_flows == 0
    assert not world.network._queues[world.network.route(1, 2)[0][-1]].conns


# -- the option as a whole ----------------------------------------------------------------------

def test_off_by_default_and_deterministic():
    """Off: the option changes nothing; on: the same run twice gives the same times."""
    case = fan_in(4)
    assert TcpConfig().bottleneck_queue_bytes == 0
    assert predict(case, tcp=TcpConfig(bottleneck_queue_bytes=0.0)) == predict(case)
    queued = with_bottleneck_queue(case, TcpConfig(hystart_delay_exit=True))
    assert queued.bottleneck_queue_bytes == 0  # fan_in's case has no queue_pkts: max() of none
    on = TcpConfig(hystart_delay_exit=True, bottleneck_queue_bytes=333 * 1514)
    first = predict(case, tcp=on)
    assert first == predict(case, tcp=on)
    assert first != predict(case, tcp=TcpConfig(hystart_delay_exit=True))


def test_a_lone_flow_fills_its_pipe_as_before():
    """One connection alone: the buffer only stretches its round trip once its window exceeds
    the pipe, where the link is busy anyway: 10 MB ends as without the buffer (1e-9)."""
    case = fan_in(1)
    plain = predict(case)
    assert predict(case, tcp=TcpConfig(bottleneck_queue_bytes=333 * 1514)) == pytest.approx(
        plain, rel=1e-9)


def test_a_lone_slow_start_that_doubles_past_pipe_and_buffer_loses(monkeypatch):
    """Alone, with a buffer of 100 segments (B + Q = 430.25): slow start's rounds of 10, 20,
    ..., 320 segments each leave within the RTT (320 < B = 330.25: the pipe is not full), so
    the window doubles to 640, which overflows the buffer the instant its round opens at
    6 RTT. The round lasts 640 x 1448 / C (the link sends all of it: drops cost no capacity)
    and the next opens answering the loss: 0.7 x 640 = 448 segments, W_max 640, slow start
    over."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(100)
    world.network.transfer(0, 2, 20e6)
    world.env.run(until=0.4)
    opened = [(t, w) for t, _, w, _ in rounds][:8]
    assert opened == [(pytest.approx(i * RTT), pytest.approx(10 * 2 ** i)) for i in range(7)] + [
        (pytest.approx(6 * RTT + 640 * SEG / C, rel=1e-9), pytest.approx(448))]
    conn = world.network._connections[(0, 2)]
    assert conn.cubic is not None
    assert (conn.cubic.losses, conn.cubic.w_max_bytes) == (1, pytest.approx(640 * SEG))
    assert not conn.slow_start


def test_ideal_ignores_the_buffer():
    """``ideal`` shares no link, so no queue forms (docs/scenario-format.md: "`ideal` ignores
    it"): the same times with and without the option."""
    case = fan_in(4)
    on = TcpConfig(hystart_delay_exit=True, bottleneck_queue_bytes=333 * 1514)
    assert predict(case, model="ideal", tcp=on) == predict(
        case, model="ideal", tcp=TcpConfig(hystart_delay_exit=True))


def test_bad_buffer_names_the_field():
    with pytest.raises(FieldError, match="bottleneck_queue_bytes"):
        TcpConfig(bottleneck_queue_bytes=-1.0)
    with pytest.raises(FieldError, match="bottleneck_queue_bytes"):
        TcpConfig(bottleneck_queue_bytes=float("inf"))


def test_bad_buffer_time_names_the_field():
    with pytest.raises(FieldError, match="bottleneck_queue_s"):
        TcpConfig(bottleneck_queue_s=-0.04)
    with pytest.raises(FieldError, match="not both"):
        TcpConfig(bottleneck_queue_s=0.04, bottleneck_queue_bytes=500e3)


def test_scenario_key(tmp_path):
    """``[network.tcp] bottleneck_queue`` reaches the TcpConfig: a size as bytes, a time as
    seconds (the other field stays 0)."""
    from sim.scenario import load
    from tests.product.test_field_errors import _scenario

    path = _scenario(tmp_path, tail="[network.tcp]\nbottleneck_queue = \"500KB\"\n")
    tcp = load(path).network.tcp
    assert (tcp.bottleneck_queue_bytes, tcp.bottleneck_queue_s) == (500e3, 0.0)
    path = _scenario(tmp_path, tail="[network.tcp]\nbottleneck_queue = \"40ms\"\n")
    tcp = load(path).network.tcp
    assert (tcp.bottleneck_queue_bytes, tcp.bottleneck_queue_s) == (0.0, 0.04)


# -- the buffer given as a time (bottleneck_queue_s) --------------------------------------------

def test_a_buffer_in_time_is_each_links_rate_times_it():
    """40 ms of buffer: 100 Mbit/s (12.5e6 B/s) x 0.04 s = 500,000 wire bytes, 1 Gbit/s
    5,000,000, 10 Mbit/s 50,000; each queue holds them as payload (x 1448 / 1514). In a world
    whose two receivers' downlinks are 100 Mbit/s and 1 Gbit/s each bottleneck gets its own."""
    tcp = TcpConfig(bottleneck_queue_s=0.04)
    assert tcp.models_bottleneck_buffer and not TcpConfig().models_bottleneck_buffer
    assert [tcp.bottleneck_buffer_bytes(r) for r in (12.5e6, 1.25e8, 1.25e6)] == [
        500_000.0, 5_000_000.0, 50_000.0]
    assert TcpConfig(bottleneck_queue_bytes=7e5).bottleneck_buffer_bytes(1.25e8) == 7e5
    world = make_world(4, latency_s=RTT / 2, downlink=(None, None, 12.5e6, 1.25e8),
                       transport="tcp", tcp=tcp)
    world.network.transfer(0, 2, 1e6)
    world.network.transfer(1, 3, 1e6)
    world.env.run(until=0.01)
    buffers = {world.network.capacity_Bps[q.link]: q.buffer_bytes
               for q in world.network._queues.values()}
    assert buffers == {12.5e6: pytest.approx(500_000 * 1448 / 1514, rel=1e-15),
                       1.25e8: pytest.approx(5_000_000 * 1448 / 1514, rel=1e-15)}


def test_a_buffer_in_time_runs_as_the_same_bytes():
    """Four flows into 100 Mbit/s with the delay exit: "40 ms" of buffer gives the times of
    500,000 bytes given as a size, to the bit, and not those of no buffer or of 40 ms at
    another rate (1 Gbit/s: 5 MB)."""
    case = fan_in(4)
    timed = predict(case, tcp=TcpConfig(hystart_delay_exit=True, bottleneck_queue_s=0.04))
    assert timed == predict(case, tcp=TcpConfig(hystart_delay_exit=True,
                                                bottleneck_queue_bytes=500_000.0))
    assert timed != predict(case, tcp=TcpConfig(hystart_delay_exit=True))
    assert timed != predict(case, tcp=TcpConfig(hystart_delay_exit=True,
                                                bottleneck_queue_bytes=5_000_000.0))


def test_a_scenario_with_a_buffer_in_time_runs_as_with_the_bytes(tmp_path):
    """A whole run (4 nodes, DDP's ring over 100 Mbit/s access links, 20 ms each way, maxmin):
    ``bottleneck_queue = "40ms"`` and ``"500000B"`` give the same summary (events included)
    and the same trace hash, and differ from the run without a buffer."""
    def summary(queue: str) -> tuple[dict, str]:
        return ring_run_summary(
            tmp_path, f'hystart_delay_exit = true\nbottleneck_queue = "{queue}"\n')

    timed = summary("40ms")
    assert timed == summary("500000B")
    assert timed != summary("0B")


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 4), delays_ms=st.lists(st.integers(0, 60), min_size=4, max_size=4),
       sizes_kb=st.lists(st.integers(1, 3000), min_size=4, max_size=4),
       starts_ms=st.lists(st.integers(0, 300), min_size=4, max_size=4),
       queue_segments=st.integers(1, 600), delay_exit=st.booleans())
def test_any_fan_in_delivers_every_byte_the_same_way_twice(k, delays_ms, sizes_kb, starts_ms,
                                                           queue_segments, delay_exit):
    """Random fan-ins (unequal RTTs: the bisection; staggered starts; tiny and large buffers):
    every message is delivered, after its start plus its one-way latency, and a second run
    gives the same times to the bit (determinism)."""
    case = Case(name="random", kind="shared", rate_bps=(1e9,) * k + (1e8,),
                delay_s=tuple(d / 1000 for d in delays_ms[:k]) + (0.02,),
                queue_pkts=(queue_segments,) * (k + 1),
                messages=tuple(Message(src=i, dst=k, nbytes=sizes_kb[i] * 1e3,
                                       start_s=starts_ms[i] / 1000) for i in range(k)))
    tcp = with_bottleneck_queue(case, TcpConfig(hystart_delay_exit=delay_exit))
    first = predict(case, tcp=tcp)
    assert first == predict(case, tcp=tcp)
    for m, end in zip(case.messages, first, strict=True):
        floor = m.start_s + case.delay_s[m.src] + 0.02 + m.nbytes / (12.5e6 * 1448 / 1514)
        assert end >= floor * (1 - 1e-9), (m, end, floor)


def test_a_loss_left_pending_is_answered_before_an_idle_restart(monkeypatch):
    """A connection whose message ended with a loss event not yet answered (window 200
    segments, last byte sent at 0), idle 0.3 s > RTO = 40 ms + 200 ms: Linux recovered
    before the gap (cwnd 0.7 x 200 = 140, W_max 200), so the restart halves 140 once to 70
    and slow start runs from it: rounds of 70 then 140 segments. Answering the loss after
    the restart instead would end slow start one round in, at 0.7 x 100 = 70."""
    rounds = spy_rounds(monkeypatch)
    world = world_with(100)
    conn = in_avoidance(world, 0, 2, 200)
    conn.used = True
    conn.round_start_s, conn.round_window, conn.round_sent = -0.04, 200 * SEG, 200 * SEG
    conn.last_sent_s = 0.0
    assert conn.cubic is not None
    conn.cubic.loss_pending = True

    def later():
        yield world.env.timeout(0.3)
        world.network.transfer(0, 2, 2e6)

    world.env.process(later())
    world.env.run(until=0.3 + 2.5 * RTT)
    assert [(t, w) for t, _, w, _ in rounds[:2]] == [
        (pytest.approx(0.3), pytest.approx(70)), (pytest.approx(0.3 + RTT), pytest.approx(140))]
    assert conn.slow_start
    assert conn.cubic.w_max_bytes == pytest.approx(200 * SEG)
    assert (conn.cubic.losses, conn.cubic.loss_s, conn.cubic.loss_pending) == (1, 0.0, False)


def test_an_infinite_buffer_is_refused_as_not_finite():
    """A unit large enough to overflow (``"1e308h"``) reaches the config as inf: refused, and
    the message says finite (not ">= 0", which inf is)."""
    with pytest.raises(FieldError, match="finite time"):
        TcpConfig(bottleneck_queue_s=float("inf"))
    with pytest.raises(FieldError, match="finite size"):
        TcpConfig(bottleneck_queue_bytes=float("inf"))
