"""The real-Linux-TCP lab with latency (``benchmarks/validate_network/delayline_reference.py``).

Its measured runs (CUBIC between network namespaces, a TUN delay line for the latency, tbf for
the bottleneck; docs/network-model.md) are shipped as
``benchmarks/validate_network/delayline_runs.json`` and checked here without root: the lab's own
consistency (RTT = 2 x the one-way delay, packets conserved by the delay line, no packet lost
or merged by the lab, a backlogged bottleneck delivering exactly its rate x 1448/1514) and
dtsim's predictions re-made with the current code. The lab itself needs root, ``ip``, ``tc``,
``gcc``, ``chrt`` and ``/dev/net/tun``; where any is missing the end-to-end test skips and says
which.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from sim.network.validation import Case, Message, predict
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "validate_network" / "delayline_reference.py"
RUNS = ROOT / "benchmarks" / "validate_network" / "delayline_runs.json"
# the unequal-RTT fan-ins added to the grid in session 6 (5 and 40 ms, 5/10/20/40 ms senders)
RTT_RUNS = ROOT / "benchmarks" / "validate_network" / "delayline_runs_rtt.json"
# a targeted re-run that also read the kernel's HyStart counters in every namespace
HYSTART_RUNS = ROOT / "benchmarks" / "validate_network" / "delayline_runs_hystart.json"
# the 100 Mbit/s, 100 and 300 ms RTT flows again with a 6 MiB receive buffer from the start
RMEM_RUNS = ROOT / "benchmarks" / "validate_network" / "delayline_runs_rmem.json"
# 20 MB over 100 Mbit/s, 300 ms RTT, with the kernel's 4 MiB send buffer and with 8 MiB
WINDOW_RUNS = [ROOT / "benchmarks" / "validate_network" / name
               for name in ("delayline_runs_window.json", "delayline_runs_window_8m.json")]
# the 4 MiB case again (main e06df98), with SO_MEMINFO and the pacing rate at the peak in flight
WINDOW_RUNS_MEMINFO = (ROOT / "benchmarks" / "validate_network"
                       / "delayline_runs_window_meminfo.json")
# the same case with gloo's writer (write until EAGAIN) and an 8 MiB receive buffer (main 22e6c24)
WINDOW_RUNS_EAGAIN = (ROOT / "benchmarks" / "validate_network"
                      / "delayline_runs_window_eagain.json")

# dtsim tcp (defaults) against the shipped Linux runs: achieved, NOT a target (see
# test_tcp_transport_against_linux)
WITHIN_10 = 25   # of 30 cases
WORST = 0.30     # measured -29.5%: 4 flows started together


lab = load_script(SCRIPT)


@pytest.fixture(scope="module")
def shipped():
    measured, meta = lab.load_runs(RUNS)
    return measured, meta


@pytest.fixture(scope="module")
def rows(shipped):
    measured, _ = shipped
    ns3 = lab.ns3_rows()
    return {case.name: lab.row(case, runs, ns3) for case, runs, _ in measured}


def test_shipped_runs_cover_the_lab_cases_and_say_how_they_were_taken(shipped):
    """The grid's runs and, for the unequal-RTT cases added later, their own file."""
    measured, meta = shipped
    later, later_meta = lab.load_runs(RTT_RUNS)
    assert [case.name for case, _, _ in measured + later] == [c.name for c in lab.lab_cases()]
    for key in ("date", "kernel", "host", "load_before", "load_after", "command"):
        assert meta[key], key
        assert later_meta[key], key
    for case, runs, _ in measured + later:
        assert len(runs) >= 3, case.name  # a median of at least three
        for run in runs:
            assert len(run["delivered_s"]) == len(case.messages)
            assert all(m.start_s - 1e-3 <= b for m, b in zip(case.messages, run["begins_s"]))


@pytest.mark.parametrize("path", [RUNS, RTT_RUNS, HYSTART_RUNS, RMEM_RUNS, *WINDOW_RUNS,
                                  WINDOW_RUNS_MEMINFO, WINDOW_RUNS_EAGAIN],
                         ids=lambda p: p.stem)
def test_the_lab_is_what_it_claims(path):
    """Independent checks of the lab, case by case (bounds: what every case achieved)."""
    measured, _ = lab.load_runs(path)
    for case, runs, rtt in measured:
        checks = lab.lab_checks(case, runs, rtt)
        # echo RTT = 2 x one-way delay, plus the hosts' own fraction of a millisecond
        assert 0.0 <= checks["rtt_excess_ms"] <= 1.0, (case.name, checks)
        # the kernel's min RTT adds one data packet's serialization at the bottleneck
        assert 0.0 <= checks["tcp_min_rtt_excess_ms"] <= 2.0, (case.name, checks)
        assert checks["unbalanced"] == 0, case.name          # read = written + dropped + held
        assert checks["delayline_dropped"] == 0, case.name   # losses are the bottleneck's only
        assert checks["tun_dropped"] == 0, case.name
        assert checks["max_packet"] == 1500, case.name       # no GSO super-packets
        assert checks["cc"] == ["cubic"], case.name           # not this host's BBR default
        # the delay line's writes more than 4 ms late (stalls of the loaded VM): at most 0.5%
        # of its packets in any case (achieved: 0.33%)
        assert checks["late_over_4ms"] <= 0.005 * checks["packets"], (case.name, checks)


def test_backlogged_bottleneck_delivers_rate_times_1448_over_1514(shipped):
    """The deep-queue check cases: tbf's rate and the Ethernet framing, to 0.5%."""
    measured, _ = shipped
    checked = 0
    for case, runs, rtt in measured:
        if case.name.startswith("lab check"):
            checks = lab.lab_checks(case, runs, rtt)
            assert abs(checks["goodput_error"]) <= 0.005, (case.name, checks["goodput_error"])
            assert all(r["bottleneck_drops"] == 0 for r in runs), case.name
            checked += 1
    assert checked == 2


def test_tcp_transport_against_linux(rows):
    """dtsim's ``tcp`` (defaults) against Linux: bounds are what was achieved, NOT a target.

    Measured (docs/network-model.md): within 10% on 25 of the 30 cases; the misses are flows
    started together (Linux's HyStart leaves slow start early for some of them), a 10 Mbit/s,
    100 ms RTT flow whose slow start overshoots the buffer, and the receive window's growth on
    the 100 and 300 ms RTT paths at 100 Mbit/s.
    """
    errors = {name: r["tcp_error"] for name, r in rows.items()}
    within10 = sum(abs(e) <= 0.10 for e in errors.values())
    assert within10 >= WITHIN_10, errors
    assert max(abs(e) for e in errors.values()) <= WORST, errors


def test_tcp_closer_to_linux_than_fluid(rows):
    for name, r in rows.items():
        assert abs(r["tcp_error"]) < abs(r["fluid_error"]), name


def test_single_flow_ns3_misses_on_linux(rows):
    """The single flows where dtsim misses ns-3 by more than 10% (ns-3's loss recovery, see
    docs): Linux is closer to dtsim than to ns-3 on every one."""
    misses = [n for n, r in rows.items() if n.startswith("single") and r["ns3_s"]
              and abs(r["tcp_s"] / r["ns3_s"] - 1) > 0.1]
    assert len(misses) == 3, misses  # 10 Mbit/s 50 ms 1 MB and 150 ms 10 MB, 100 Mbit/s 10 ms
    for name in misses:
        r = rows[name]
        assert abs(r["tcp_error"]) < abs(r["ns3_error"]), (name, r["tcp_error"], r["ns3_error"])


def test_flows_started_together_are_slower_on_linux_than_both_models(rows):
    """2 and 4 flows started together: Linux's HyStart ends some flows' slow start early (the
    others' bursts queue), so Linux is slower than ns-3, which is slower than dtsim: a
    direction, with a 5% margin each."""
    for k in (2, 4):
        r = rows[f"shared {k} flows 100Mbit/s 20ms 10MB together"]
        assert r["ns3_s"] <= 0.95 * r["median_s"], r
        assert r["tcp_s"] <= 0.95 * r["ns3_s"], r
        # some flow left slow start below half its share of pipe + buffer (B = 330, Q = 333)
        assert r["exit_cwnd"][0] < 0.5 * (330 + 333) / k, r


def _delay_exits(case: Case, monkeypatch) -> list[float]:
    """dtsim's HyStart delay exits (windows in segments, ascending) for ``case``."""
    from sim.network.tcp import TcpTransport
    exits: list[float] = []
    leave = TcpTransport._leave_slow_start

    def spy(conn, now):
        exits.append(conn.cwnd / 1448)
        leave(conn, now)

    with monkeypatch.context() as patch:
        patch.setattr(TcpTransport, "_leave_slow_start", staticmethod(spy))
        predict(case, tcp=lab.HYSTART_DELAY)
    return sorted(exits)


def test_hystart_delay_exit_windows_against_the_kernels(monkeypatch):
    """``hystart_delay_exit`` on the flows started together, against every shipped run (the
    grid's 5 and the counters run's 3): dtsim's exits by the delay test, lowest first, against
    the median over runs of Linux's exits of the same rank: within 15% each (measured: 28, 28,
    28, 48, 48 against 28, 28, 28, 49, 56 for 8 flows; 48, 88 against 52.5, 89 for 4; 168
    against 147 for 2; worst +-14.3%). The connections dtsim has leave slow start by the delay
    test, k - 1, k - 2 and k - 3 of them, are Linux's lowest; Linux's others leave later (by
    the delay test, or the ACK train for the leader of 2 flows), once the queue, which dtsim
    does not model, has inflated the RTT."""
    linux: dict[str, list[list[int]]] = {}
    cases: dict[str, Case] = {}
    for path in (RUNS, HYSTART_RUNS):
        measured, _ = lab.load_runs(path)
        for case, runs, _ in measured:
            if case.name.endswith("together"):
                cases[case.name] = case
                linux.setdefault(case.name, []).extend(
                    sorted(c["ss_exit_cwnd"] for c in run["conns"].values()) for run in runs)
    assert len(cases) == 3 and all(len(runs) == 8 for runs in linux.values())
    for name, case in cases.items():
        ours = _delay_exits(case, monkeypatch)
        k = len(case.messages)
        assert len(ours) == {2: 1, 4: 2, 8: 5}[k], (name, ours)
        for rank, window in enumerate(ours):
            theirs = statistics.median(run[rank] for run in linux[name])
            assert window == pytest.approx(theirs, rel=0.15), (name, rank, ours, theirs)


def test_hystart_delay_exit_does_not_explain_the_makespans(rows):
    """The option ends slow start where Linux does, but the makespans stay where the default
    puts them (within 1%), 14-30% short of Linux's: after the exits the transport gives every
    connection that fills its pipe its max-min share, so the link stays full until the last
    flow ends; on Linux the windows, not the shares, set the rates (the queue shared by all)
    and losses at the full buffer hold the low windows down for seconds (docs)."""
    for k in (2, 4, 8):
        r = rows[f"shared {k} flows 100Mbit/s 20ms 10MB together"]
        assert r["delay_s"] == pytest.approx(r["tcp_s"], rel=0.01), r
        assert r["delay_s"] <= 0.9 * r["median_s"], r
    others = [r for name, r in rows.items() if not name.endswith("together")]
    # lone and staggered flows: unchanged, to the closed-form ramps' 1e-9 (with the option a
    # lone connection's rounds run on the clock: test_tcp_ramp.RAMP_REL)
    assert all(r["delay_s"] == pytest.approx(r["tcp_s"], rel=1e-9) for r in others)


def test_bottleneck_buffer_closes_most_of_the_together_gap(rows):
    """``bottleneck_queue_bytes`` (the lab's 333-packet tbf queue) with ``hystart_delay_exit``:
    rates from windows while a queue stands and CUBIC's loss epochs, in the transport. The
    "together" rows move from -24.5 / -29.5 / -13.6% to -14.4 / -4.0 / -7.4% of Linux (the
    makespans the docs give, to the ms: W_est counted per round trip of the path's RTT instead
    of per window ACKed gives 4.509 and 7.154 s);
    no other row moves away from Linux by more than 0.5 points (measured: singles and the
    messages on one connection unchanged, staggered rows 0.2-0.6 points closer)."""
    documented = {2: 2.060, 4: 4.700, 8: 7.247}  # docs/network-model.md, the queue column
    for k in (2, 4, 8):
        r = rows[f"shared {k} flows 100Mbit/s 20ms 10MB together"]
        assert r["queue_s"] == pytest.approx(documented[k], abs=5e-4), r
        assert abs(r["queue_error"]) <= 0.15, r
        assert abs(r["queue_error"]) < abs(r["tcp_error"]) - 0.04, r
    for name, r in rows.items():
        assert abs(r["queue_error"]) <= abs(r["tcp_error"]) + 0.005, (name, r)
    errors = [r["queue_error"] for r in rows.values()]
    assert sum(abs(e) <= 0.10 for e in errors) >= 27 and max(map(abs, errors)) <= 0.15


# docs/network-model.md, "Unequal RTTs sharing a bottleneck": Linux's median makespan and the
# errors of dtsim tcp (defaults) and of tcp + HyStart's delay exit + the case's buffer, points
UNEQUAL_RTTS_ON_LINUX = {
    "shared 2 flows 100Mbit/s 5/40ms 20MB together": (13.315, -74.4, -0.8),
    "shared 2 flows 100Mbit/s 5/40ms 20MB staggered 1s": (13.560, -74.9, -0.6),
    "shared 2 flows 100Mbit/s 5/40ms 20MB together queue BDP/4": (12.397, -72.5, -1.1),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB together": (13.228, -49.0, -0.2),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB staggered 1s": (12.050, -44.0, -25.4),
}


def test_unequal_rtts_on_linux():
    """Fan-ins of mixed RTTs on real Linux (``delayline_runs_rtt.json``): the 80 ms flows leave
    slow start by HyStart behind the short flows' queue and take 12-13.6 s, where the default
    tcp says 3.4-6.8 s; with the delay exit and the buffer four of five are within 1.1%."""
    measured, _ = lab.load_runs(RTT_RUNS)
    ns3 = lab.ns3_rows()
    got = {case.name: lab.row(case, runs, ns3) for case, runs, _ in measured}
    assert sorted(got) == sorted(UNEQUAL_RTTS_ON_LINUX)
    for name, (median_s, tcp, queue) in UNEQUAL_RTTS_ON_LINUX.items():
        r = got[name]
        assert r["median_s"] == pytest.approx(median_s, abs=5e-4), name
        assert 100 * r["tcp_error"] == pytest.approx(tcp, abs=0.05), name
        assert 100 * r["queue_error"] == pytest.approx(queue, abs=0.05), name
        # slow starts ended by HyStart (the table's "slow start ended by" column)
        assert "hystart" in r["exits"], name


def test_whatif_with_window_rates_and_loss_epochs(rows):
    """``hystart_whatif.py`` (a sketch outside the transport: the delay exits, rates set by the
    windows behind one drop-tail queue of the lab's 333 packets, loss epochs at a full buffer
    and CUBIC's answer) puts the three "together" cases within 12% of Linux (measured +1.4%,
    +11.5%, -10.5%; the transport says -24.5%, -29.5%, -13.6%). Its Linux medians are the
    shipped runs'; its figures are the docs'."""
    whatif = load_script(SCRIPT.parent / "hystart_whatif.py")
    documented = {2: 2.440, 4: 5.460, 8: 7.005}
    for k, linux in whatif.LINUX_MEDIAN_S.items():
        r = rows[f"shared {k} flows 100Mbit/s 20ms 10MB together"]
        assert linux == pytest.approx(r["median_s"], abs=5e-4)
        makespan = whatif.completion_times(k)[-1]
        assert makespan == pytest.approx(documented[k], abs=5e-4)
        assert makespan == pytest.approx(linux, rel=0.12)
        assert abs(makespan / linux - 1) < abs(r["tcp_error"])


def test_slow_start_exits_agree_with_the_kernels_hystart_counters():
    """The exits read from TCP_INFO (ssthresh set with no retransmission) against the kernel's
    own TCPHystart* counters of the same runs: same count, same cwnd to 1% (TCP_INFO is
    sampled every 2 ms, so it may see a segment more)."""
    measured, _ = lab.load_runs(HYSTART_RUNS)
    seen = 0
    for case, runs, _ in measured:
        for run in runs:
            kernel = run["checks"]["hystart"]
            exits = [c["ss_exit_cwnd"] for c in run["conns"].values() if c["ss_exit"] == "hystart"]
            assert len(exits) == kernel["TCPHystartTrainDetect"] + \
                kernel["TCPHystartDelayDetect"], case.name
            assert sum(exits) == pytest.approx(kernel["TCPHystartTrainCwnd"]
                                               + kernel["TCPHystartDelayCwnd"], rel=0.01)
            seen += len(exits)
    assert seen >= 30


def test_which_hystart_test_ends_slow_start_on_linux():
    """At 10 Mbit/s the ACK train never fires (delayed ACKs 2.4 ms apart) and the delay test
    fires past B + Q; at 100 Mbit/s, 20 ms RTT the ACK train fires below B + Q = 333."""
    measured, _ = lab.load_runs(HYSTART_RUNS)
    by_name = {case.name: runs for case, runs, _ in measured}
    for name, b_plus_q in (("single 10Mbit/s 50ms 1MB", 166), ("single 10Mbit/s 150ms 10MB", 500)):
        for run in by_name[name]:
            kernel = run["checks"]["hystart"]
            assert kernel["TCPHystartTrainDetect"] == 0 and kernel["TCPHystartDelayDetect"] == 1
            assert kernel["TCPHystartDelayCwnd"] > b_plus_q
    for run in by_name["single 100Mbit/s 10ms 1MB"]:
        kernel = run["checks"]["hystart"]
        assert kernel["TCPHystartTrainDetect"] == 1 and kernel["TCPHystartTrainCwnd"] < 333


def test_receive_window_growth_is_the_extra_round_trip():
    """1 MB at 100 Mbit/s over 100 and 300 ms RTT: with the kernel's 128 KiB initial receive
    buffer some runs are limited by the receive window and take a round trip more; with 6 MiB
    from the start none is: the median is within 0.5% of dtsim (achieved 0.3%), every run
    within 1.5% (achieved 1.1%)."""
    default, _ = lab.load_runs(RUNS)
    large, meta = lab.load_runs(RMEM_RUNS)
    assert meta["tcp_rmem"].split()[1] == "6291456"
    for name, rtt_s in (("single 100Mbit/s 50ms 1MB", 0.1), ("single 100Mbit/s 150ms 1MB", 0.3)):
        slow = [r for case, runs, _ in default if case.name == name for r in runs
                if r["conns"]["0->1"]["rwnd_limited_ms"] > 0.5e3 * rtt_s]
        assert slow, name
        for case, runs, _ in large:
            if case.name == name:
                tcp = case.completion_s(predict(case))
                took = [case.completion_s(run["delivered_s"]) for run in runs]
                assert all(run["conns"]["0->1"]["rwnd_limited_ms"] == 0 for run in runs), name
                assert abs(statistics.median(took) / tcp - 1) <= 0.005, (name, took)
                assert all(abs(t / tcp - 1) <= 0.015 for t in took), (name, took)


def test_send_buffer_keeps_less_than_4_mib_in_flight():
    """tcp_wmem's 4 MiB maximum: when slow start ended (cwnd 3786-3834) Linux had 1848-1912
    segments in flight (64-66% of 4 MiB of payload), and the second half of 20 MB came at
    7.9-8.0 MB/s, two thirds of the link (about 2.4 MB per 300 ms round trip), where
    dtsim's 4 MiB window does not bind (docs: a model change this supports). With 8 MiB the
    sender kept over 2500 in flight (then the 6 MiB receive buffer's window limits)."""
    in_flight, rates = {}, {}
    for path in WINDOW_RUNS:
        measured, meta = lab.load_runs(path)
        ((case, runs, _),) = measured
        wmem = int(meta["tcp_wmem"].split()[2])
        msg = case.messages[0]
        in_flight[wmem] = [max(e["unacked"] for e in r["conns"]["0->1"]["events"])
                           for r in runs]
        rates[wmem] = [(msg.nbytes - msg.nbytes // 2) / (r["delivered_s"][0] - r["mid_s"][0])
                       for r in runs]
        assert all(r["conns"]["0->1"]["rwnd_limited_ms"] == 0 for r in runs) or wmem > 4 << 20
    link = 100e6 / 8 * 1448 / 1514
    assert all(n * 1448 <= 0.7 * (4 << 20) for n in in_flight[4 << 20]), in_flight
    assert all(r <= 0.7 * link for r in rates[4 << 20]), rates
    assert all(n > 2500 for n in in_flight[8 << 20]), in_flight
    assert min(rates[8 << 20]) > max(rates[4 << 20]), rates


# The lab kernel's sizes (6.18.44: /sys/kernel/slab/*/object_size, /proc/config.gz), in bytes;
# SKB_TRUESIZE(head) = head + SK_BUFF + SHARED_INFO (include/linux/skbuff.h).
SK_BUFF = 256          # struct sk_buff, cache-aligned
SHARED_INFO = 320      # struct skb_shared_info with MAX_SKB_FRAGS = 17
RX_HEAD = 2048 - SHARED_INFO  # TUN: 64 B headroom + 1500 B packet, kmalloc'd to 2048 with info
TX_HEAD = 576 - SHARED_INFO   # tcp_stream_alloc_skb: MAX_TCP_HEADER from the 576 B small-head cache
WSCALE_UNIT = 128      # window scale 7 = ilog2(6 MiB) - 15


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def test_receive_window_is_the_buffer_times_the_kernels_scaling_ratio():
    """tcp_win_from_space: window = space x scaling_ratio / 256, scaling_ratio =
    floor(256 x len / truesize) of the received segments (128 before the first), rounded up to
    the window scale's unit. With the TUN's 2304-byte skbs and tcp_rmem[2] = 6 MiB (one skb
    still queued) that is 3930752 bytes, the snd_wnd every shipped window run recorded, and the
    8 MiB runs stopped there (docs: "The buffers as the kernel counts them")."""
    truesize = RX_HEAD + SK_BUFF + SHARED_INFO
    ratio = 256 * 1448 // truesize
    assert (truesize, ratio) == (2304, 160)
    rmem = 6 * 2**20
    full = _round_up((rmem - truesize) * ratio // 256, WSCALE_UNIT)
    first = _round_up(rmem * 128 // 256 // 1448 * 1448, WSCALE_UNIT)
    assert (full, first) == (3930752, 3145088)
    for path in WINDOW_RUNS:
        measured, meta = lab.load_runs(path)
        ((_, runs, _),) = measured
        assert int(meta["tcp_rmem"].split()[2]) == rmem
        for r in runs:
            events = r["conns"]["0->1"]["events"]
            assert events[0]["snd_wnd"] == first and events[-1]["snd_wnd"] == full
            assert max(e["unacked"] for e in events) * 1448 <= full
        if int(meta["tcp_wmem"].split()[2]) > 4 << 20:  # there the receive window binds
            peak = max(e["unacked"] for r in runs for e in r["conns"]["0->1"]["events"])
            assert full // 1448 - 10 <= peak <= full // 1448, peak


def test_send_buffer_accounting_bounds_the_4_mib_cap():
    """sk_wmem_queued counts each unacknowledged skb's payload plus an 832-byte head, against
    sk_sndbuf <= tcp_wmem[2]. Skbs of at least tcp_min_tso_segs = 2 segments (TSO autosizing)
    allow 2250 segments in 4 MiB and 1-segment skbs 1839; Linux peaked at 1893-1917 (cwnd / 2:
    slow start grows cwnd only below twice the most in flight), between the two. The peak
    itself is explained by the writer (test_send_buffer_peak_is_the_writers_wake_threshold)."""
    per_skb = TX_HEAD + SK_BUFF + SHARED_INFO
    assert per_skb == 832
    wmem = 4 << 20
    bound = {k: int(wmem // (1448 + per_skb / k)) for k in (1, 2)}
    assert bound == {1: 1839, 2: 2250}
    measured, meta = lab.load_runs(WINDOW_RUNS[0])
    ((_, runs, _),) = measured
    assert int(meta["tcp_wmem"].split()[2]) == wmem
    peaks = [r["conns"]["0->1"]["ss_exit_cwnd"] / 2 for r in runs]
    assert all(bound[1] < peak < bound[2] - 300 for peak in peaks), (peaks, bound)


# the kernel's constants behind the send buffer's peak (include/net/sock.h, net/ipv4/tcp_output.c)
PACING_SHIFT = 10    # sk_pacing_shift: TSO autosizing builds skbs of ~1 ms at the pacing rate
MIN_TSO_SEGS = 2     # tcp_min_tso_segs
AGENT_WRITE = 1 << 16  # delayline_agent.py: one send() of 64 KiB, each after poll() (timeout)


def _tso_autosize_segs(pacing_rate_Bps: int, mss: int = 1448) -> int:
    """tcp_tso_autosize: segments per skb = max(pacing_rate >> sk_pacing_shift // mss,
    tcp_min_tso_segs); the min-RTT bonus (gso_max_size >> (min_rtt_us >> 9)) is nothing at
    a 300 ms RTT."""
    return max((pacing_rate_Bps >> PACING_SHIFT) // mss, MIN_TSO_SEGS)


def test_send_buffer_peak_is_the_writers_wake_threshold():
    """The shipped SO_MEMINFO re-run (delayline_runs_window_meminfo.json) against the kernel's
    rules, nothing fitted: (1) poll() reports a TCP socket writable only while sndbuf -
    wmem_queued >= wmem_queued / 2 (__sk_stream_is_writeable), and the agent's socket has a
    timeout, so CPython polls before every 64 KiB send(): the buffer peaks at 2/3 x sndbuf plus
    at most one write; (2) each skb is tcp_tso_autosize's k segments (9 at the peak's pacing
    rate) plus 832 bytes, so the buffer holds 1 + 832 / (1448 k) bytes per payload byte, to 5%
    of the 832 / k overhead per segment; (3) so the most in flight is (2/3 x sndbuf / that +
    64 KiB) / 1448 segments, 1860 here, to 0.5%, closer than any other k."""
    measured, meta = lab.load_runs(WINDOW_RUNS_MEMINFO)
    ((_, runs, _),) = measured
    assert int(meta["tcp_wmem"].split()[2]) == 4 << 20
    per_skb = TX_HEAD + SK_BUFF + SHARED_INFO
    for r in runs:
        peak = r["conns"]["0->1"]["peak"]
        sndbuf, queued = peak["sndbuf"], peak["wmem_queued"]
        assert sndbuf == 4 << 20, peak
        payload = peak["unacked"] * 1448 + peak["notsent_bytes"]
        k = _tso_autosize_segs(peak["pacing_rate"])
        assert k == 9, peak
        # (1) the writer's wake threshold, plus one write with its skb heads (smallest skbs)
        assert 0 < queued - 2 * sndbuf / 3 <= AGENT_WRITE * (1 + per_skb / (MIN_TSO_SEGS * 1448))
        # (2) the buffer's overhead per segment is an 832-byte head per k segments
        overhead_per_segment = (queued - payload) / (payload / 1448)
        assert abs(overhead_per_segment / (per_skb / k) - 1) <= 0.05, (overhead_per_segment, k)
        # (3) the most in flight, predicted from the constants alone: the autosized k is the
        # closest of all skb sizes, within 0.5% (measured: 0.03-0.18%)
        def in_flight(segs: int) -> float:
            return (2 * sndbuf / 3 / (1 + per_skb / (segs * 1448)) + AGENT_WRITE) / 1448

        error = {segs: abs(payload / 1448 / in_flight(segs) - 1) for segs in range(1, 45)}
        assert min(error, key=error.get) == k and error[k] <= 0.005, (payload / 1448, error)
        # everything written was sent: the window (cwnd) did not bind, the writer did
        assert peak["cwnd"] > peak["unacked"] and peak["notsent_bytes"] < 2 * 1448, peak


def test_a_writer_that_fills_the_buffer_keeps_all_of_it_in_flight():
    """The same case with gloo's writer pattern (``--writer until-eagain``: write until the
    kernel refuses, wait for writability only then) and a receive buffer that does not bind,
    predicted before it was run from the same rules: the buffer fills to sndbuf (not 2/3 of
    it), and the most in flight is sndbuf / (1 + 832 / (1448 k)) with tcp_tso_autosize's k =
    9-10, i.e. 2723-2740 segments (measured 2712-2719); the buffer was
    full for a measurable time (tcpi_sndbuf_limited > 0) and the receive window never bound."""
    measured, meta = lab.load_runs(WINDOW_RUNS_EAGAIN)
    ((_, runs, _),) = measured
    assert meta["writer"] == "until-eagain" and int(meta["tcp_wmem"].split()[2]) == 4 << 20
    per_skb = TX_HEAD + SK_BUFF + SHARED_INFO
    for r in runs:
        conn = r["conns"]["0->1"]
        peak = conn["peak"]
        sndbuf, queued = peak["sndbuf"], peak["wmem_queued"]
        # ~1 ms of data at the pacing rate: 9 or 10 segments per skb (14.7-15.3 MB/s)
        assert _tso_autosize_segs(peak["pacing_rate"]) in (9, 10), peak
        # the buffer filled to within two of the largest skbs (64 KiB each with its head)
        assert sndbuf - 2 * (64 << 10) <= queued <= sndbuf, peak

        def most(segs: int) -> float:  # segments in flight with the buffer full of skbs of segs
            return sndbuf / (1 + per_skb / (segs * 1448)) / 1448

        # 2722.8 at k = 9, 2739.5 at k = 10: within 1% of the first, never above the second
        assert 0.99 * most(9) <= peak["unacked"] <= most(10), (peak["unacked"], most(9))
        assert conn["sndbuf_limited_ms"] > 0 and conn["rwnd_limited_ms"] == 0, conn


def test_a_writer_that_polls_first_keeps_the_buffer_at_two_thirds():
    """The rule behind the lab's peak, on this machine's kernel over loopback (no root), with
    the agent's own two writers: poll() says a TCP socket is writable only while sndbuf -
    wmem_queued >= wmem_queued / 2, and CPython polls before every send() on a socket with a
    timeout (the agent's default writer, "poll-first"), so it stops at 2/3 of the send buffer
    plus at most one 64 KiB write. The "until-eagain" writer (gloo's pair.cc pattern: write all
    that is left, wait only after a short write) fills all of it. The receiver does not read,
    so the bytes stay in the sender's buffer."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import delayline_agent as agent
    finally:
        sys.path.remove(str(SCRIPT.parent))
    import socket
    import time
    wmem_max = Path("/proc/sys/net/core/wmem_max")
    # SO_SNDBUF is capped at net.core.wmem_max: 212992 on a stock kernel (4 MiB on the lab's),
    # where the 64 KiB writes are too coarse for the rule (the filling writer stopped at 72%)
    if not wmem_max.is_file() or int(wmem_max.read_text()) < 1 << 20:
        pytest.skip("needs Linux with net.core.wmem_max >= 1 MiB (a 2 MiB send buffer)")
    requested = 1 << 20
    held = {}
    for writer in agent.WRITERS:
        with socket.create_server(("127.0.0.1", 0)) as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            with socket.socket() as tx:
                tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, requested)  # doubled, fixed
                tx.connect(srv.getsockname())
                tx.settimeout(30)  # as the agent's sockets: a timeout
                rx, _ = srv.accept()
                with rx:
                    sender = agent.Sender(1, tx, writer)
                    sender.jobs.put({"id": 1, "nbytes": 8 << 20, "at": time.time()})
                    assert sender.busy.wait(5)
                    for _ in range(50):  # bounded: the buffer fills within milliseconds
                        time.sleep(0.02)
                        mem = agent.meminfo(tx)
                        if mem["wmem_queued"] > 0.6 * mem["sndbuf"]:
                            break
                    time.sleep(0.2)  # what the writer does next, once the buffer is that full
                    held[writer] = agent.meminfo(tx)
                    sender.jobs.put(None)  # ends the sender once its job is written:
                    rx.settimeout(5)
                    left = 8 << 20
                    while left > 0:  # bounded by the timeout
                        chunk = rx.recv(1 << 20)
                        if not chunk:
                            break
                        left -= len(chunk)
                    time.sleep(0.05)
    for mem in held.values():
        assert mem["sndbuf"] == 2 * requested, held
    polls, fills = held["poll-first"], held["until-eagain"]
    assert 0 < polls["wmem_queued"] - 2 * polls["sndbuf"] / 3 <= 1.3 * AGENT_WRITE, held
    assert fills["wmem_queued"] >= 0.95 * fills["sndbuf"], held
    with socket.socket() as sock, pytest.raises(ValueError, match="writer"):
        agent.Sender(1, sock, "blocking")


def test_agent_reads_the_send_buffer_counters():
    """The agent records, at the sample with the most segments in flight, what the send buffer
    holds (SO_MEMINFO) beside TCP_INFO, so a lab run gives the buffer's bytes per segment. Here
    on loopback (no root): a writer stopped by a receiver that does not read has its bytes
    unsent in the buffer, and the kernel charges them at least their payload."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import delayline_agent as agent
    finally:
        sys.path.remove(str(SCRIPT.parent))
    import socket
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with socket.create_connection(srv.getsockname(), timeout=5) as tx:
            rx, _ = srv.accept()
            with rx:
                tx.setblocking(False)
                for _ in range(10_000):  # bounded: the buffers fill within a few MB
                    try:
                        tx.send(b"\0" * 65536)
                    except BlockingIOError:
                        break
                info, mem = agent.tcp_info(tx), agent.meminfo(tx)
    assert set(mem) == {"wmem_alloc", "sndbuf", "wmem_queued"}, mem
    assert info["notsent_bytes"] > 0 and info["pacing_rate"] >= 0
    assert mem["sndbuf"] > 0
    assert mem["wmem_queued"] >= info["notsent_bytes"], (mem, info)
    # the agent's sender keeps the sample with the most in flight, with the counters then
    import threading
    import time
    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(srv.getsockname(), timeout=5) as tx:
            rx, _ = srv.accept()
            with rx:
                rx.settimeout(5)
                def drain(left: int = 4 << 20) -> None:
                    try:
                        while left > 0:
                            chunk = rx.recv(1 << 16)
                            if not chunk:
                                return
                            left -= len(chunk)
                    except OSError:  # timed out: the assertions below say what is missing
                        return

                reader = threading.Thread(target=drain)
                reader.start()
                sender = agent.Sender(1, tx)
                sender.jobs.put({"id": 1, "nbytes": 4 << 20, "at": time.time()})
                assert sender.busy.wait(5)
                deadline = time.monotonic() + 5  # the sampler runs every 2 ms once busy; on a
                while not sender.peak and time.monotonic() < deadline:  # loaded CI box later
                    time.sleep(0.01)
                peak = sender.info()["peak"]
                sender.jobs.put(None)
                reader.join(10)
    assert {"unacked", "cwnd", "wmem_queued", "sndbuf", "notsent_bytes"} <= set(peak), peak

def test_bad_input_exits_2():
    for argv in (["--repeats", "0"], ["--only", "no such case"], ["--rmem-default", "1"],
                 ["--wmem-max", "1"], ["--rmem-max", "1"], ["--writer", "blocking"],
                 ["--rmem-max", "1048576", "--rmem-default", "6291456"]):
        done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, argv
        assert "delayline_reference" in done.stderr and argv[0] in done.stderr, done.stderr


def test_says_why_it_cannot_run(monkeypatch):
    monkeypatch.setattr(lab.sys, "platform", "linux")
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    assert lab.why_not() == "needs root (network namespaces, TUN devices, tc)"
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab.shutil, "which", lambda tool: None if tool == "gcc" else "/x")
    assert lab.why_not() == "needs the 'gcc' command"


def _leftovers(prefix: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=30)
    return [line for line in names.stdout.splitlines() if line.startswith(prefix)] + \
        [line for line in procs.stdout.splitlines() if prefix in line]


def _lab_state(case: Case, run: dict) -> str:
    """How undisturbed a lab run was: its sender's start lateness and the delay line's late
    writes (a busy machine -- the test suite's other worker -- delays both)."""
    late_start = max(b - m.start_s for m, b in zip(case.messages, run["begins_s"], strict=True))
    directions = run["checks"]["delayline"]
    return (f"sender began {late_start * 1e3:.1f} ms late, "
            f"{sum(d.get('late_over_4ms', 0) for d in directions)} of "
            f"{sum(d['out'] for d in directions)} packets written > 4 ms late")


def test_one_case_end_to_end_on_real_tcp(tmp_path):
    """As root: 4 MB over 100 Mbit/s with 10 ms each way (a queue too deep to overflow).

    The model's completion is within 10% of Linux's faster of two runs. A machine busy with
    other work makes the userspace delay line write packets late: the RTT grows, HyStart ends
    slow start early and the run is slower (measured on an idle machine, 60 runs: 0.408-0.43 s
    with no write over 4 ms late, 0.45-0.57 s with 114-166 such writes; in one full test run
    0.661 s against the model's 0.407 s). Lateness never makes a run faster, so the faster run
    of a round is the less disturbed one; a round that misses is measured again, at most three
    rounds, and the failure lists every round with the lab's own account of how late its
    packets and sender were."""
    reason = lab.why_not()
    if reason:
        pytest.skip(f"delay-line lab cannot run here: {reason}")
    case = Case(name="e2e", kind="single", rate_bps=(1e9, 100e6), delay_s=(0.0, 0.01),
                queue_pkts=(3000, 3000),
                messages=(Message(src=0, dst=1, nbytes=4e6, start_s=1.0),))
    binary = lab.compile_delayline(str(tmp_path))
    tcp = case.completion_s(predict(case))
    rounds = []
    for _ in range(3):
        runs, rtt = lab.measure(case, binary, repeats=2)
        saved = [lab.run_to_json(r) for r in runs]
        assert not _leftovers(f"dtsim-dl-{lab.os.getpid()}-")  # no namespace, no delay line
        checks = lab.lab_checks(case, saved, rtt)
        assert 0.0 <= checks["rtt_excess_ms"] <= 2.0, checks
        assert checks["unbalanced"] == 0 and checks["delayline_dropped"] == 0, checks
        assert checks["max_packet"] == 1500 and checks["cc"] == ["cubic"], checks
        measured = min(case.completion_s(r["delivered_s"]) for r in saved)
        rounds.append(f"Linux {measured:.4f} s ({'; '.join(_lab_state(case, r) for r in saved)})")
        if abs(tcp / measured - 1) <= 0.10:
            return
    pytest.fail(f"model {tcp:.4f} s, not within 10% of Linux in any round: " + " | ".join(rounds))


def test_lab_removes_everything_when_terminated():
    """As root: SIGTERM mid-run leaves no namespace, TUN device or process of the lab."""
    import signal
    import time

    reason = lab.why_not()
    if reason:
        pytest.skip(f"delay-line lab cannot run here: {reason}")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--repeats", "1", "--only",
                             "single 10Mbit/s 150ms 10MB"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    prefix = f"dtsim-dl-{proc.pid}-"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("delayline" in line
                                                  for line in _leftovers(prefix)):
        time.sleep(0.2)
    assert any("delayline" in line for line in _leftovers(prefix)), "the lab was never built"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not _leftovers(prefix)
