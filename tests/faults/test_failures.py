"""Failure schedules against their rates and rules.

Counts of a Poisson process with mean m have standard deviation sqrt(m); we allow 4 of them
(a correct sampler fails that with probability ~6e-5; seeds are fixed, so runs are stable).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.faults.failure_configs import make_failure_model
from sim.faults.failures import (
    SECONDS_PER_MONTH,
    CombinedFailures,
    Downtime,
    FailureEvent,
    NoFailures,
    PoissonCrashes,
    SpotPreemption,
    TraceFailures,
)
from sim.faults.group_failures import GroupFailures, draw_stage_failures, p_iter
from sim.faults.link_failures import LinkDown, Partition, partition_cut_links
from sim.faults.traces import read_failure_trace, write_failure_trace


def rng(seed=0):
    return np.random.default_rng(seed)


def test_poisson_crash_count_matches_rate_horizon_nodes():
    rate_per_s, horizon_s, nodes = 1 / 3600, 200 * 3600.0, 50
    events = PoissonCrashes(rate_per_s, downtime=0.0).schedule(
        num_nodes=nodes, horizon_s=horizon_s, rng=rng()
    )
    expected = rate_per_s * horizon_s * nodes  # 10,000
    assert abs(len(events) - expected) < 4 * math.sqrt(expected)
    assert all(e.kind == "crash" and len(e.nodes) == 1 and e.duration_s == 0.0 for e in events)
    assert all(0 <= e.time_s < horizon_s for e in events)


def test_downtime_pauses_the_failure_clock():
    # With constant downtime d, a node alternates Exp(rate) up and d down: the renewal theorem
    # gives H / (1/rate + d) crashes per node in the long run (+ at most one for the edge).
    rate_per_s, d, horizon_s, nodes = 1 / 100.0, 100.0, 100_000.0, 20
    events = PoissonCrashes(rate_per_s, downtime=d).schedule(
        num_nodes=nodes, horizon_s=horizon_s, rng=rng(1)
    )
    expected = nodes * horizon_s / (1 / rate_per_s + d)  # 10,000: half the no-downtime count
    # renewal counts are less variable than Poisson (variance ~ m * cv^2 of the cycle <= m)
    assert abs(len(events) - expected) < 4 * math.sqrt(expected) + nodes
    for node in range(nodes):
        mine = [e for e in events if e.nodes == (node,)]
        for first, second in zip(mine, mine[1:]):
            assert second.time_s >= first.time_s + first.duration_s  # never crashes while down


def test_no_rejoin_means_one_crash_per_node_and_never_back():
    rate_per_s, horizon_s, nodes = 1e-3, 1000.0, 4000
    events = PoissonCrashes(rate_per_s, rejoin=False).schedule(
        num_nodes=nodes, horizon_s=horizon_s, rng=rng(2)
    )
    assert len({e.nodes for e in events}) == len(events)
    assert all(e.duration_s is None for e in events)
    p = 1 - math.exp(-rate_per_s * horizon_s)
    assert abs(len(events) - nodes * p) < 4 * math.sqrt(nodes * p * (1 - p))


def test_exempt_nodes_never_fail_and_downtime_distributions():
    events = PoissonCrashes(1e-2, downtime={"dist": "exponential", "mean_s": 50.0}, exempt=[0, 2])
    schedule = events.schedule(num_nodes=4, horizon_s=10_000.0, rng=rng())
    assert {e.nodes[0] for e in schedule} == {1, 3}
    downs = np.array([e.duration_s for e in schedule])
    assert abs(downs.mean() - 50.0) < 4 * 50.0 / math.sqrt(downs.size)
    lognormal = Downtime.from_spec({"dist": "lognormal", "median_s": 60.0, "sigma": 0.5})
    stream = rng(3)
    draws = np.array([lognormal.sample(stream) for _ in range(20_000)])
    assert abs(np.mean(draws <= 60.0) - 0.5) < 4 * math.sqrt(0.25 / draws.size)
    assert lognormal.mean() == pytest.approx(60.0 * math.exp(0.125))
    assert Downtime.from_spec(None).sample(rng()) is None
    uniform = Downtime.from_spec({"dist": "uniform", "low_s": 1.0, "high_s": 3.0})
    assert 1.0 <= uniform.sample(rng()) <= 3.0 and uniform.mean() == 2.0
    with pytest.raises(ValueError, match="downtime.dist"):
        Downtime.from_spec({"dist": "weibull"})


def test_spot_notice_precedes_kill_by_exactly_notice_s():
    model = SpotPreemption(1 / 600, notice_s=120.0, downtime=300.0)
    events = model.schedule(num_nodes=10, horizon_s=36_000.0, rng=rng(4))
    assert events and all(e.kind == "preempt" and e.notice_s == 120.0 for e in events)
    for node in range(10):
        mine = [e for e in events if e.nodes == (node,)]
        for first, second in zip(mine, mine[1:]):
            # the next notice comes only after the node is back
            assert second.time_s - second.notice_s >= first.time_s + first.duration_s
    # notices are a Poisson process of rate 1/600 over the up time: ~ H / (600 + 120 + 300)
    expected = 10 * 36_000.0 / (600 + 120 + 300)
    assert abs(len(events) - expected) < 4 * math.sqrt(expected) + 10
    gcp = SpotPreemption(1 / 600, notice_s=30.0).schedule(num_nodes=2, horizon_s=1e4, rng=rng())
    assert all(e.notice_s == 30.0 for e in gcp)


def test_spot_rate_from_monthly_fraction_and_bucket():
    rate = SpotPreemption.rate_from_monthly(0.10)
    assert 1 - math.exp(-rate * SECONDS_PER_MONTH) == pytest.approx(0.10)
    assert SpotPreemption.rate_from_monthly("5-10%") == pytest.approx(
        SpotPreemption.rate_from_monthly(0.075)
    )
    assert SpotPreemption.rate_from_monthly("<5%") < SpotPreemption.rate_from_monthly(">20%")
    with pytest.raises(ValueError, match="monthly bucket"):
        SpotPreemption.rate_from_monthly("30%")


def test_p_iter_compounds_back_to_p_hour():
    for p_hour, iteration_s in [(0.05, 1.0), (0.16, 12.5), (0.33, 3600.0), (0.1, 7200.0)]:
        p = p_iter(p_hour, iteration_s)
        assert (1 - p) ** (3600.0 / iteration_s) == pytest.approx(1 - p_hour)
    assert p_iter(0.1, 3600.0) == pytest.approx(0.1)
    assert p_iter(0.0, 5.0) == 0.0 and p_iter(1.0, 5.0) == 1.0
    with pytest.raises(ValueError, match="p_hour"):
        p_iter(1.2, 5.0)


def test_draw_stage_failures_exempt_does_not_shift_stream():
    a = draw_stage_failures(6, 0.5, rng(9), exempt=())
    b = draw_stage_failures(6, 0.5, rng(9), exempt=(0,))
    assert b == [s for s in a if s != 0]
    assert draw_stage_failures(6, 1.0, rng(), exempt=(0, 5)) == [1, 2, 3, 4]
    assert draw_stage_failures(6, 0.0, rng()) == []


def test_group_failures_take_down_whole_stages_at_the_expected_rate():
    stages = [[0, 1], [2, 3], [4, 5], [6, 7]]  # 2 replicas per stage
    iteration_s, p_hour, hours = 10.0, 0.33, 100
    model = GroupFailures(stages, p_hour, iteration_s, rejoin_delay_s=0.0)
    events = model.schedule(num_nodes=8, horizon_s=hours * 3600.0, rng=rng(5))
    assert all(e.kind == "group" and list(e.nodes) in stages[1:] for e in events)  # 0 exempt
    # 3 stages x 36,000 iterations x p_iter; equivalently 3 x hours x (-ln(1 - p_hour))
    n_iter = hours * 3600 / iteration_s
    expected = 3 * n_iter * model.p_iter
    sd = math.sqrt(3 * n_iter * model.p_iter * (1 - model.p_iter))
    assert abs(len(events) - expected) < 4 * sd
    # per stage: n_iter * p_iter = hours * (-ln(1 - p_hour)) to first order (40 here)
    per_stage = n_iter * model.p_iter
    assert per_stage == pytest.approx(hours * -math.log(1 - p_hour), rel=1e-3)
    for stage in range(1, 4):
        count = sum(e.nodes == tuple(stages[stage]) for e in events)
        assert abs(count - per_stage) < 4 * math.sqrt(per_stage)
    # failure times fall inside iterations, uniformly
    offsets = np.array([e.time_s / iteration_s % 1 for e in events])
    assert abs(offsets.mean() - 0.5) < 4 * math.sqrt(1 / 12 / offsets.size)


def test_group_failures_rejoin_delay_blocks_refailure_and_exempt():
    # one-hour iterations with p_hour = 0.9: a stage fails in most iterations unless it is down
    hour = 3600.0
    model = GroupFailures([[0], [1]], 0.9, hour, rejoin_delay_s=3 * hour, exempt=())
    events = model.schedule(num_nodes=2, horizon_s=100 * hour, rng=rng())
    for stage in (0, 1):
        times = [e.time_s for e in events if e.nodes == (stage,)]
        assert len(times) > 10
        assert all(b - a >= 3 * hour for a, b in zip(times, times[1:]))
    never = GroupFailures([[0], [1]], 0.9, hour, rejoin_delay_s=None, exempt=(1,))
    events = never.schedule(num_nodes=2, horizon_s=100 * hour, rng=rng())
    assert len(events) == 1 and events[0].nodes == (0,) and events[0].duration_s is None
    with pytest.raises(ValueError, match="node id 5"):
        GroupFailures([[5]], 0.1, 1.0).schedule(num_nodes=2, horizon_s=10.0, rng=rng())


def test_link_down_and_partition_schedules():
    event = LinkDown([("a", "b")], start_s=50.0, duration_s=20.0).schedule(
        num_nodes=0, horizon_s=100.0, rng=rng()
    )
    assert event == [
        FailureEvent(time_s=50.0, kind="link_down", links=(("a", "b"),), duration_s=20.0)
    ]
    assert (
        LinkDown([("a", "b")], start_s=150.0).schedule(num_nodes=0, horizon_s=100.0, rng=rng())
        == []
    )
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e", "a")]
    # groups {a, b} | {c}; unlisted d, e form a third group
    assert partition_cut_links(edges, [["a", "b"], ["c"]]) == (
        ("a", "d"),
        ("b", "c"),
        ("c", "d"),
        ("e", "a"),
    )
    assert partition_cut_links(edges, [["a", "b", "c", "d", "e"]]) == ()
    with pytest.raises(ValueError, match="more than one group"):
        partition_cut_links(edges, [["a"], ["a", "b"]])
    part = Partition([["a", "b"], ["c", "d", "e"]], 10.0, 5.0, edges=edges)
    (event,) = part.schedule(num_nodes=0, horizon_s=100.0, rng=rng())
    assert event.kind == "partition" and event.links == (("a", "d"), ("b", "c"), ("e", "a"))
    (lazy,) = Partition([["a", "b"]], 10.0).schedule(num_nodes=0, horizon_s=100.0, rng=rng())
    assert lazy.links == () and lazy.groups == (("a", "b"),) and lazy.duration_s is None


def test_schedules_are_sorted_and_deterministic():
    models = [
        PoissonCrashes(1e-3, downtime={"dist": "exponential", "mean_s": 30.0}),
        SpotPreemption(1e-3, notice_s=120.0, downtime=60.0),
        GroupFailures([[0, 1], [2, 3], [4, 5]], 0.2, 5.0),
        CombinedFailures([PoissonCrashes(1e-3), GroupFailures([[0], [1]], 0.2, 5.0)]),
    ]
    for model in models:
        a = model.schedule(num_nodes=6, horizon_s=20_000.0, rng=rng(11))
        b = model.schedule(num_nodes=6, horizon_s=20_000.0, rng=rng(11))
        c = model.schedule(num_nodes=6, horizon_s=20_000.0, rng=rng(12))
        assert a == b and a != c and len(a) > 0
        assert a == sorted(a, key=lambda e: (e.time_s, e.nodes, e.kind, e.links, e.groups))
    assert NoFailures().schedule(num_nodes=6, horizon_s=1e9, rng=rng()) == []


def test_combined_children_streams_are_independent_of_siblings():
    crash = PoissonCrashes(1e-3)
    alone = CombinedFailures([crash]).schedule(num_nodes=4, horizon_s=1e4, rng=rng(3))
    with_group = CombinedFailures([crash, GroupFailures([[0], [1]], 0.3, 5.0)]).schedule(
        num_nodes=4, horizon_s=1e4, rng=rng(3)
    )
    assert [e for e in with_group if e.kind == "crash"] == alone


def test_failure_event_validation():
    with pytest.raises(ValueError, match="kind"):
        FailureEvent(time_s=1.0, kind="meteor", nodes=(0,))
    with pytest.raises(ValueError, match="notice_s"):
        FailureEvent(time_s=10.0, kind="preempt", nodes=(0,), notice_s=20.0)
    with pytest.raises(ValueError, match="needs nodes"):
        FailureEvent(time_s=1.0, kind="crash")
    with pytest.raises(ValueError, match="duration_s"):
        FailureEvent(time_s=1.0, kind="crash", nodes=(0,), duration_s=-1.0)


def test_failure_trace_round_trip(tmp_path):
    events = [
        FailureEvent(time_s=3600.0, kind="crash", nodes=(3,), duration_s=600.0),
        FailureEvent(time_s=7200.0, kind="preempt", nodes=(5,), notice_s=120.0),
        FailureEvent(time_s=100.0, kind="group", nodes=(2, 3), duration_s=0.0),
        FailureEvent(
            time_s=9000.0, kind="link_down", links=(("us-east1", "eu-west4"),), duration_s=300.0
        ),
        FailureEvent(time_s=50.0, kind="partition", groups=(("a", "b"), ("c",)), duration_s=9.5),
    ]
    path = tmp_path / "failures.csv"
    write_failure_trace(events, path)
    assert read_failure_trace(path) == sorted(events, key=lambda e: e.time_s)
    model = TraceFailures.from_csv(str(path))
    # an event belongs to the horizon if it begins before it: the preemption at 7200 s is
    # announced at 7080 s, so it is kept; the link failure at 9000 s is not
    kept = model.schedule(num_nodes=6, horizon_s=7200.0, rng=rng())
    assert [e.time_s for e in kept] == [50.0, 100.0, 3600.0, 7200.0]
    kept = model.schedule(num_nodes=6, horizon_s=7080.0, rng=rng())
    assert [e.time_s for e in kept] == [50.0, 100.0, 3600.0]
    hand = tmp_path / "hand.csv"
    hand.write_text("time_s,kind,nodes,duration_s\n5,crash,1,\n")
    assert read_failure_trace(hand) == [FailureEvent(time_s=5.0, kind="crash", nodes=(1,))]
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,kind,when\n5,crash,1\n")
    with pytest.raises(ValueError, match="unknown \\['when'\\]"):
        read_failure_trace(bad)
    with pytest.raises(ValueError, match="node id 5"):
        TraceFailures.from_csv(str(path)).schedule(num_nodes=4, horizon_s=1e5, rng=rng())


def test_make_failure_model_builds_each_model():
    m = make_failure_model({"model": "poisson", "rate_per_s": 1e-4, "downtime_s": 600.0})
    assert isinstance(m, PoissonCrashes) and m.downtime.value_s == 600.0
    m = make_failure_model(
        {"model": "poisson", "rate_per_s": 1e-4, "downtime": {"dist": "exponential", "mean_s": 5}}
    )
    assert m.downtime.mean() == 5.0
    m = make_failure_model({"model": "spot", "monthly_bucket": "10-15%", "notice_s": 30.0})
    assert m.notice_s == 30.0 and m.rate_per_s == SpotPreemption.rate_from_monthly(0.125)
    assert make_failure_model({"model": "spot", "rate_per_s": 1e-5}).notice_s == 120.0
    m = make_failure_model(
        {"model": "group", "groups": [[0], [1]], "p_hour": 0.1, "iteration_s": 36}
    )
    assert m.p_iter == pytest.approx(p_iter(0.1, 36.0)) and m.exempt == (0,)
    m = make_failure_model({"model": "link_down", "links": [["a", "b"]], "start_s": 5})
    assert m.links == (("a", "b"),)
    m = make_failure_model({"model": "partition", "groups": [["a"], ["b"]], "start_s": 5})
    assert m.groups == (("a",), ("b",))
    assert isinstance(make_failure_model([]), NoFailures)
    assert isinstance(make_failure_model({"model": "none"}), NoFailures)
    combined = make_failure_model([{"model": "none"}, {"model": "spot", "rate_per_s": 1e-5}])
    assert isinstance(combined, CombinedFailures) and len(combined.models) == 2


def test_make_failure_model_errors_name_the_field():
    with pytest.raises(ValueError, match=r"faults\.failures\.model.*poisson.*spot"):
        make_failure_model({"model": "meteor"})
    with pytest.raises(ValueError, match=r"faults\.failures\.rate_per_s"):
        make_failure_model({"model": "poisson"})
    with pytest.raises(ValueError, match=r"faults\.failures\.rate\b"):
        make_failure_model({"model": "poisson", "rate_per_s": 1e-4, "rate": "0.1/h"})
    with pytest.raises(ValueError, match="exactly one of"):
        make_failure_model({"model": "spot", "rate_per_s": 1e-5, "monthly_fraction": 0.1})
    with pytest.raises(ValueError, match=r"faults\.failures\.rate_per_s: must be"):
        make_failure_model({"model": "poisson", "rate_per_s": -1.0})


def test_make_failure_model_trace_and_combined_streams(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("time_s,kind,nodes,duration_s\n5,crash,1,2\n1,group,0;1,\n")
    model = make_failure_model({"model": "trace", "path": str(path)})
    events = model.schedule(num_nodes=2, horizon_s=10.0, rng=rng())
    assert [(e.time_s, e.kind, e.nodes, e.duration_s) for e in events] == [
        (1.0, "group", (0, 1), None),
        (5.0, "crash", (1,), 2.0),
    ]
