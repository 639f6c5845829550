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
# docs/network-model.md): 86% within 10% (44 of 51), worst -43.4% (a ring all-reduce of 4
# nodes, 10 MB). Every miss was traced in ns-3 (ns3_reference.py --trace) to a retransmission
# timeout or a recovery at a message's tail: after slow start overshoots a one-BDP buffer (ns-3's
# HyStart does not stop it there) or after a warm window's burst overflows the sender's own
# device queue (ring all-reduce); the transport models no losses. These bounds keep what is
# reached from regressing; they are not the target.
TCP_WITHIN_10 = 0.86
TCP_WORST = 0.45


@pytest.fixture(scope="module")
def errors():
    rows = read_reference(CSV)
    assert len(rows) >= 50  # the grid of the issue, not a handful of easy cases
    out = []
    for case, measured in rows:
        ref = case.completion_s(measured)
        tcp = case.completion_s(predict(case, tcp=ns3_tcp(case))) / ref - 1
        fluid = case.completion_s(predict(case, transport="fluid")) / ref - 1
        out.append((case.name, case.kind, tcp, fluid))
    return out


def test_reference_covers_every_kind_of_case(errors):
    assert {kind for _, kind, _, _ in errors} >= {"single", "shared", "sequence", "spaced",
                                                  "collective"}


def test_tcp_transport_against_ns3(errors):
    within10 = sum(abs(tcp) <= 0.10 for _, _, tcp, _ in errors) / len(errors)
    worst = max(abs(tcp) for _, _, tcp, _ in errors)
    print(f"tcp: {within10:.0%} within 10%, worst {worst:.1%}", file=sys.stderr)
    assert within10 >= TCP_WITHIN_10
    assert worst <= TCP_WORST


def test_the_bottleneck_buffer_costs_no_case(errors):
    """With each case's drop-tail queue as the links' buffer (``bottleneck_queue_bytes``) and
    HyStart's delay exit at ns-3's threshold (what ns-3's CUBIC runs), no case moves away from
    ns-3 by more than 0.5 points; measured: 50 cases unchanged, 8 flows together -8.8% ->
    -7.4% (``compare.py --hystart-delay-exit ns3 --bottleneck-queue``)."""
    by_name = {name: tcp for name, _, tcp, _ in errors}
    for case, measured in read_reference(CSV):
        config = replace(ns3_tcp(case), hystart_delay_exit=True, hystart_delay_rtt_fraction=1.0,
                         hystart_delay_max_s=1.0)
        err = case.completion_s(predict(case, tcp=with_bottleneck_queue(case, config))) \
            / case.completion_s(measured) - 1
        assert abs(err) <= abs(by_name[case.name]) + 0.005, (case.name, err, by_name[case.name])


def test_tcp_is_closer_to_ns3_than_fluid_on_most_cases(errors):
    closer = sum(abs(tcp) <= abs(fluid) + 1e-3 for _, _, tcp, fluid in errors)
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
