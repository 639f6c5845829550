"""dtsim's tcp transport against the shipped packet-level (ns-3) reference.

``benchmarks/validate_network/ns3_reference.csv`` was written by ``ns3_reference.py`` (ns-3,
CUBIC, IW 10, MSS 1448, drop-tail queues of about one BDP); no ns-3 is needed here. The figure
judged is the completion time of a case (the makespan; for messages sent with idle gaps, the sum
of their durations). Per-message errors are printed by ``compare.py``, not judged.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sim.network.validation import ns3_tcp, predict, read_reference, with_bottleneck_queue

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "benchmarks" / "validate_network" / "ns3_reference.csv"

# The target is 90% of the cases within 10% and every case within 20%. Measured (see
# docs/network-model.md) on the 51 cases with equal RTTs: 86% within 10% (44 of 51), worst -43.4%
# (a ring all-reduce of 4 nodes, 10 MB). Every miss was traced in ns-3 (ns3_reference.py
# --trace) to a retransmission timeout or a recovery at a message's tail: after slow start
# overshoots a one-BDP buffer (ns-3's HyStart does not stop it there) or after a warm window's
# burst overflows the sender's own device queue (ring all-reduce); the transport models no
# losses. With the six unequal-RTT fan-ins (session 6) the grid has 57 cases: 46 within 10%
# (81%), 51 within 20%, worst -71.9% (2 flows of 10 and 80 ms RTT staggered by 1 s: the late,
# long-RTT flow loses at a 95-segment window and CUBIC takes 11 s to deliver its 20 MB).
# These bounds keep what is reached from regressing; they are not the target.
TCP_WITHIN_10 = 0.80
TCP_WORST = 0.72
EQUAL_RTT_WITHIN_10 = 0.86
EQUAL_RTT_WORST = 0.45


def unequal_rtts(case) -> bool:
    """A fan-in whose senders reach the receiver over different latencies (session 6 rows)."""
    return case.kind == "shared" and len({case.delay_s[m.src] for m in case.messages}) > 1


@pytest.fixture(scope="module")
def errors():
    rows = read_reference(CSV)
    assert len(rows) >= 57  # the grid of the issue, not a handful of easy cases
    out = []
    for case, measured in rows:
        ref = case.completion_s(measured)
        tcp = case.completion_s(predict(case, tcp=ns3_tcp(case))) / ref - 1
        fluid = case.completion_s(predict(case, transport="fluid")) / ref - 1
        out.append((case.name, case.kind, tcp, fluid, unequal_rtts(case)))
    return out


@pytest.fixture(scope="module")
def unequal_rows():
    rows = [(case, measured) for case, measured in read_reference(CSV) if unequal_rtts(case)]
    assert len(rows) == 6
    return rows


def test_reference_covers_every_kind_of_case(errors):
    assert {kind for _, kind, _, _, _ in errors} >= {"single", "shared", "sequence", "spaced",
                                                  "collective"}


def test_tcp_transport_against_ns3(errors):
    within10 = sum(abs(tcp) <= 0.10 for _, _, tcp, _, _ in errors) / len(errors)
    worst = max(abs(tcp) for _, _, tcp, _, _ in errors)
    print(f"tcp: {within10:.0%} within 10%, worst {worst:.1%}", file=sys.stderr)
    assert within10 >= TCP_WITHIN_10
    assert worst <= TCP_WORST


def test_tcp_transport_against_ns3_on_equal_rtts(errors):
    """The 51 cases of sessions 1-5 keep their bounds (44 of 51 within 10%, worst -43.4%)."""
    equal = [tcp for _, _, tcp, _, unequal in errors if not unequal]
    assert len(equal) == 51
    assert sum(abs(tcp) <= 0.10 for tcp in equal) / len(equal) >= EQUAL_RTT_WITHIN_10
    assert max(abs(tcp) for tcp in equal) <= EQUAL_RTT_WORST


def buffered_ns3_tcp(case):
    """ns-3's TCP with the case's drop-tail queue as the links' buffer and HyStart's delay exit
    at ns-3's threshold (``compare.py --hystart-delay-exit ns3 --bottleneck-queue``)."""
    config = replace(ns3_tcp(case), hystart_delay_exit=True, hystart_delay_rtt_fraction=1.0,
                     hystart_delay_max_s=1.0)
    return with_bottleneck_queue(case, config)


def test_the_bottleneck_buffer_costs_no_equal_rtt_case(errors):
    """With each case's drop-tail queue as the links' buffer (``bottleneck_queue_bytes``) and
    HyStart's delay exit at ns-3's threshold (what ns-3's CUBIC runs), no case of equal RTTs
    moves away from ns-3 by more than 0.5 points; measured: 50 cases unchanged, 8 flows
    together -8.8% -> -7.4%. (The unequal-RTT rows: next tests.)"""
    by_name = {name: tcp for name, _, tcp, _, _ in errors}
    for case, measured in read_reference(CSV):
        if unequal_rtts(case):
            continue
        err = case.completion_s(predict(case, tcp=buffered_ns3_tcp(case))) \
            / case.completion_s(measured) - 1
        assert abs(err) <= abs(by_name[case.name]) + 0.005, (case.name, err, by_name[case.name])


# docs/network-model.md, "Unequal RTTs sharing a bottleneck": each unequal-RTT row's makespan
# error against ns-3, default tcp and with the buffer (ns-3's HyStart threshold), in points.
UNEQUAL_RTT_ERRORS = {
    "shared 2 flows 100Mbit/s 5/40ms 20MB together": (+1.0, +5.2),
    "shared 2 flows 100Mbit/s 5/40ms 20MB staggered 1s": (-71.9, +2.7),
    "shared 2 flows 100Mbit/s 5/40ms 20MB together queue BDP/4": (-40.7, +112.5),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB together": (-11.0, -9.5),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB staggered 1s": (-11.9, +1.9),
    "shared 2 flows 1000Mbit/s 5/40ms 50MB together": (-5.5, -1.4),
}


def test_unequal_rtt_rows_as_documented(unequal_rows):
    """The docs' table of the unequal-RTT rows is what the transport gives (0.05 points): the
    buffer turns the staggered 2-flow miss (-71.9%) into +2.7%, and overshoots the quarter-BDP
    buffer (+112.5%: every connection loses at every overflow; ns-3's long-RTT flow lost once)."""
    assert sorted(case.name for case, _ in unequal_rows) == sorted(UNEQUAL_RTT_ERRORS)
    for case, measured in unequal_rows:
        ref = case.completion_s(measured)
        default = 100 * (case.completion_s(predict(case, tcp=ns3_tcp(case))) / ref - 1)
        buffered = 100 * (case.completion_s(predict(case, tcp=buffered_ns3_tcp(case))) / ref - 1)
        assert (default, buffered) == pytest.approx(UNEQUAL_RTT_ERRORS[case.name], abs=0.05)


LINUX_HYSTART_CSV = ROOT / "benchmarks" / "validate_network" / "ns3_reference_linux_hystart.csv"

# The same six rows in ns-3 run with Linux's HyStart delay threshold (``ns3_reference.py
# --hystart-delay linux``): makespan errors of default tcp and of tcp with Linux's delay exit and
# the buffer, in points (docs/network-model.md, "Unequal RTTs sharing a bottleneck").
UNEQUAL_RTT_LINUX_HYSTART_ERRORS = {
    "shared 2 flows 100Mbit/s 5/40ms 20MB together": (-74.0, +1.1),
    "shared 2 flows 100Mbit/s 5/40ms 20MB staggered 1s": (-74.6, +1.1),
    "shared 2 flows 100Mbit/s 5/40ms 20MB together queue BDP/4": (-37.1, +126.7),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB together": (-49.0, +0.5),
    "shared 4 flows 100Mbit/s 5/10/20/40ms 20MB staggered 1s": (-57.0, -42.4),
    "shared 2 flows 1000Mbit/s 5/40ms 50MB together": (-76.4, -19.5),
}


def test_unequal_rtts_against_ns3_with_linux_hystart():
    """With Linux's HyStart threshold ns-3's 80 ms flows leave slow start at 37 segments behind
    the 10 ms flow's queue and take ~13 s: default tcp is -74% there; Linux's delay exit with
    the buffer follows three of the six rows within 1.1% (the docs' table, to 0.05 points)."""
    rows = [(c, m) for c, m in read_reference(LINUX_HYSTART_CSV) if unequal_rtts(c)]
    assert sorted(c.name for c, _ in rows) == sorted(UNEQUAL_RTT_LINUX_HYSTART_ERRORS)
    for case, measured in rows:
        ref = case.completion_s(measured)
        linux = with_bottleneck_queue(case, replace(ns3_tcp(case), hystart_delay_exit=True))
        default = 100 * (case.completion_s(predict(case, tcp=ns3_tcp(case))) / ref - 1)
        buffered = 100 * (case.completion_s(predict(case, tcp=linux)) / ref - 1)
        assert (default, buffered) == pytest.approx(UNEQUAL_RTT_LINUX_HYSTART_ERRORS[case.name],
                                                    abs=0.05)


def test_ns3_shows_no_steady_rtt_order_with_a_one_bdp_buffer(unequal_rows):
    """What the reference says about TCP's RTT bias (the docs' claim): with a buffer of one BDP
    of the longest RTT, the shortest-RTT flow of the flows started together is *not* the first
    to finish (2 flows: 3.347 s against 3.166 s for the 80 ms one; 4 flows: the 80 ms flow
    first, at 4.586 s), while with a quarter of that buffer it is (2.139 s against 5.697 s)."""
    ends = {case.name: case.durations_s(measured) for case, measured in unequal_rows}
    two = ends["shared 2 flows 100Mbit/s 5/40ms 20MB together"]
    four = ends["shared 4 flows 100Mbit/s 5/10/20/40ms 20MB together"]
    small = ends["shared 2 flows 100Mbit/s 5/40ms 20MB together queue BDP/4"]
    assert two[0] > two[1] and min(four) == four[3]
    assert small[0] < 0.5 * small[1]


def test_rtt_weighted_shares_what_if():
    """``rtt_bias_whatif.py``: with k = 0 (no weights), an efficiency of 1 and no window cap its
    fan-in is dtsim's ``fluid`` exactly on every shared row; weighting cannot move a makespan
    where the flows overlap to the end (work-conserving), so the worst stays -72.1%; the
    summary is the docs' (per-message mean abs error 36.4% max-min, 30.3% with k = 1)."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "validate_network"))
    from rtt_bias_whatif import fan_in, is_unequal_rtt_fan_in, weighted_fill

    # hand-worked weighted water-filling: 10 units, weights 1 and 3 -> 2.5 and 7.5; the second
    # capped at 5 -> 5 and 5; three flows, weights 1/1/2, first capped at 1 -> 1, 3, 6
    assert weighted_fill(10.0, [1.0, 3.0], [float("inf")] * 2) == pytest.approx([2.5, 7.5])
    assert weighted_fill(10.0, [1.0, 3.0], [float("inf"), 5.0]) == pytest.approx([5.0, 5.0])
    assert weighted_fill(10.0, [1.0, 1.0, 2.0], [1.0, 9.0, 9.0]) == pytest.approx([1.0, 3.0, 6.0])
    rows = [(c, m) for c, m in read_reference(CSV) if c.kind == "shared"]
    for case, _ in rows:
        assert fan_in(case, 0.0, with_queue=False, efficiency=1.0, cap=False) == pytest.approx(
            predict(case, transport="fluid"), rel=1e-9, abs=1e-9)
    mean_abs = {}
    for k in (0.0, 1.0):
        errs = [p / m - 1 for case, measured in rows if is_unequal_rtt_fan_in(case)
                for p, m in zip(case.durations_s(fan_in(case, k, with_queue=False)),
                                case.durations_s(measured))]
        mean_abs[k] = sum(map(abs, errs)) / len(errs)
    assert mean_abs == pytest.approx({0.0: 0.364, 1.0: 0.303}, abs=5e-4)


def test_tcp_is_closer_to_ns3_than_fluid_on_most_cases(errors):
    closer = sum(abs(tcp) <= abs(fluid) + 1e-3 for _, _, tcp, fluid, _ in errors)
    assert closer >= 0.9 * len(errors)


@pytest.mark.parametrize("transport", ["fluid", "tcp"])
def test_a_schedule_as_messages_runs_like_the_executor(transport):
    """The message DAG of the references (``schedule_messages``) against ``run_schedule``:
    gloo's ring (window 2, a fence) over 4 nodes, 10 MB, 5 ms access latency each."""
    from dataclasses import replace

    from sim import collectives as C
    from sim.config import NetworkConfig
    from sim.network.validation import Case, schedule_messages
    from sim.world import World
    from topologies import uniform

    k, m = 4, 10e6
    schedule, fence = C.gloo_ring_allreduce_schedule(list(range(k)), m)
    case = Case(name="gloo", kind="collective", rate_bps=(100e6,) * k, delay_s=(0.005,) * k,
                messages=schedule_messages(schedule, window=C.GLOO_WINDOW, fences=(fence,),
                                          notice_bytes=C.GLOO_NOTICE_BYTES))
    topo = replace(uniform(k), uplink_Bps=(12.5e6,) * k, downlink_Bps=(12.5e6,) * k,
                   access_latency_s=(0.005,) * k)
    world = World(topo, network=NetworkConfig(model="maxmin", transport=transport))
    proc = C.gloo_ring_allreduce(world, list(range(k)), m)
    world.env.run()
    # under tcp, same-instant messages start in another order here than in the executor, and
    # the ACK reservation may lag within ``ack_slack`` differently: 5e-6 measured
    rel = 1e-12 if transport == "fluid" else 1e-4
    assert case.makespan_s(predict(case, transport=transport)) == pytest.approx(proc.value,
                                                                                rel=rel)
