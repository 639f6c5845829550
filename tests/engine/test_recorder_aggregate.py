"""``run.record = "aggregate"``: per-node totals equal the sums of the full record.

The oracle is the full recorder itself: the same run recorded both ways must give the same
per-node time breakdown and goodput (to 1e-9 relative: the aggregate adds a span in pieces),
the same bytes and events, and per-step sums of per-node metrics equal to the sums of the full
history's rows. The default level is unchanged, and the bucketed event queue of
``sim.world.Environment`` processes events in exactly SimPy's order (same trace hash as a world
run on SimPy's own heap).
"""

from __future__ import annotations

import heapq
import random

import numpy as np
import pandas as pd
import pytest
import simpy

from sim.config import RunConfig
from sim.errors import ScenarioError
from sim.recorder import AggregateRecorder, Recorder
from sim.runner import run
from sim.scenario import scenario_from_dict
from sim.world import Environment
from tests.data_parallel.helpers import tiny_scenario

REL = 1e-9


def crashes(rate_per_s: float = 0.5, downtime_s: float = 0.2) -> list[dict]:
    return [{"model": "poisson", "rate_per_s": rate_per_s, "downtime_s": downtime_s}]


CASES = {
    # a synchronous group: commits every round, a crash discards the work since the commit
    "diloco-crashes": dict(policy="diloco", nodes=6, steps=40, failures=crashes(),
                           inner_steps=4),
    "ddp-ideal": dict(policy="ddp", nodes=4, steps=15, network={"model": "ideal"}),
    # a gossip method (no commits): a crash discards the cut task only
    "noloco-crashes": dict(policy="noloco", nodes=6, steps=30, failures=crashes(),
                           inner_steps=3),
    # compression time is charged on the node and discarded as it ends
    "compressed": dict(policy="compressed_diloco", nodes=4, steps=24, inner_steps=4,
                       compress_bits=4),
}


def run_both(case: str):
    kw = dict(CASES[case])
    policy = kw.pop("policy")
    out = []
    for level in ("full", "aggregate"):
        scen = tiny_scenario(policy, timing_only=True, run_extra={"record": level}, **kw)
        out.append(run(scen))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_aggregates_equal_the_sums_of_the_full_record(case):
    full, agg = run_both(case)
    assert isinstance(full.recorder, Recorder) and full.recorder.level == "full"
    assert isinstance(agg.recorder, AggregateRecorder)
    assert agg.sim_time_s == full.sim_time_s and agg.steps == full.steps
    # time per node
    cols = ["busy_s", "comm_s", "idle_s", "down_s"]
    fb, ab = full.recorder.node_time_breakdown(), agg.recorder.node_time_breakdown()
    np.testing.assert_allclose(ab[cols].to_numpy(), fb[cols].to_numpy(), rtol=REL,
                               atol=REL * full.sim_time_s)
    fg, ag = full.recorder.goodput_breakdown(), agg.recorder.goodput_breakdown()
    gcols = ["busy_s", "useful_s", "discarded_s"]
    np.testing.assert_allclose(ag[gcols].to_numpy(), fg[gcols].to_numpy(), rtol=REL,
                               atol=REL * full.sim_time_s)
    assert agg.recorder.goodput() == pytest.approx(full.recorder.goodput(), rel=REL)
    if "crashes" in case:  # the cases are not trivial
        assert (fb.down_s > 0).any()
    if case in ("diloco-crashes", "compressed"):
        assert (fg.discarded_s > 0).any()
    # bytes, events, node-less metrics: identical
    pd.testing.assert_frame_equal(agg.recorder.bytes_by_node(), full.recorder.bytes_by_node())
    pd.testing.assert_frame_equal(agg.recorder.bytes_by_link(), full.recorder.bytes_by_link())
    pd.testing.assert_frame_equal(agg.recorder.events(), full.recorder.events())
    fh = full.recorder.history()
    pd.testing.assert_frame_equal(agg.recorder.history(),
                                  fh[fh.node.isna()].reset_index(drop=True))
    # per-node metrics: per (metric, step) count, sum, min, max of the full rows
    per_node = fh[fh.node.notna()]
    assert len(per_node) > 0 or case == "ddp-ideal"  # DDP records no per-node metric
    expect = (per_node.groupby(["metric", "step"]).value.agg(["count", "sum", "min", "max"])
              .reset_index().sort_values(["metric", "step"]).reset_index(drop=True))
    got = (agg.recorder.metric_aggregates().sort_values(["metric", "step"])
           .reset_index(drop=True))
    assert got[["metric", "step", "count"]].astype(str).equals(
        expect[["metric", "step", "count"]].astype(str))
    np.testing.assert_allclose(got[["sum", "min", "max"]].to_numpy(float),
                               expect[["sum", "min", "max"]].to_numpy(float), rtol=REL)
    # the summary differs by rounding only
    fs, as_ = full.recorder.summary(), agg.recorder.summary()
    assert as_.keys() == fs.keys()
    for key, value in fs.items():
        assert as_[key] == pytest.approx(value, rel=REL, abs=1e-12), key


def test_aggregate_keeps_no_intervals_and_says_so():
    _, agg = run_both("ddp-ideal")
    rec = agg.recorder
    assert not rec.intervals_kept and sum(rec.interval_counts.values()) > 0
    assert not [e for e in rec.chrome_trace()["traceEvents"] if e["ph"] == "X"]
    with pytest.raises(ValueError, match='run.record = "aggregate"'):
        rec.intervals()
    with pytest.raises(ValueError, match="timeline"):
        rec.state_spans()
    # memory: the per-node tables hold only the intervals not yet accounted
    assert max(len(live) for live in rec._live) <= 8


class _Clock:
    now = 0.0


@pytest.mark.parametrize("seed", range(25))
def test_random_interval_streams_account_like_the_full_record(seed):
    """Random intervals under the engine's contract (start >= now, cut at now) and discards."""
    rng = random.Random(seed)
    n = 3
    clock = _Clock()
    full, agg = Recorder(clock, ["a", "b", "c"]), AggregateRecorder(clock, ["a", "b", "c"])
    open_: list[tuple[int, int, int, float]] = []  # (full index, agg handle, node, start)
    last_task: dict[int, float] = {}
    for _ in range(300):
        clock.now += rng.choice([0.0, 0.0, rng.random()])
        op = rng.random()
        node = rng.randrange(n)
        if op < 0.45:  # a new interval, maybe with a known end, maybe starting later (queued)
            kind = rng.choice(["busy", "busy", "comm", "comm", "down"])
            start = clock.now + (rng.random() if kind == "busy" and rng.random() < 0.3 else 0)
            end = float("inf") if rng.random() < 0.4 else start + rng.random() * 2
            i, h = (r.interval(node, kind, start, end) for r in (full, agg))
            open_.append((i, h, node, start))
            if kind == "busy":
                last_task[node] = max(last_task.get(node, 0.0), start)
        elif op < 0.8 and open_:  # cut one now
            i, h, node, start = open_.pop(rng.randrange(len(open_)))
            full.close_interval(i, clock.now)
            agg.close_interval(h, clock.now)
        elif op < 0.9 and node in last_task and last_task[node] <= clock.now:
            for r in (full, agg):  # the latest task of the node is lost (e.g. compression)
                r.discard_work(node, last_task[node], clock.now, "lost")
        elif op < 0.95:
            for r in (full, agg):
                r.commit_work(node, clock.now)
        else:
            for r in (full, agg):
                r.discard_uncommitted(node, "failure")
    clock.now += 1.0
    full.finish(clock.now)
    agg.finish(clock.now)
    for a, b in ((agg.node_time_breakdown(), full.node_time_breakdown()),
                 (agg.goodput_breakdown(), full.goodput_breakdown())):
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=REL, atol=1e-9)


def test_a_discard_before_what_was_kept_is_refused():
    clock = _Clock()
    agg = AggregateRecorder(clock, ["a"])
    for t in range(20):  # 20 one-second tasks back to back, committed as they end
        clock.now = float(t)
        agg.close_interval(agg.interval(0, "busy", clock.now, clock.now + 1.0), clock.now + 1.0)
        agg.commit_work(0, clock.now)
    clock.now = 20.0
    agg.commit_work(0, clock.now)
    agg.finish(20.0)
    with pytest.raises(RuntimeError, match="before the busy time it kept"):
        agg.discard_work(0, 0.0, 20.0)


def test_the_level_is_read_from_the_scenario_and_checked():
    base = {"cluster": {"nodes": 2}, "network": {"model": "ideal"},
            "workload": {"learner": "tiny-llama"}, "policy": {"name": "ddp"},
            "run": {"steps": 1}}
    assert scenario_from_dict(base).run.record == "full"
    agg = scenario_from_dict({**base, "run": {"steps": 1, "record": "aggregate"}})
    assert agg.run.record == "aggregate"
    with pytest.raises(ScenarioError, match="run.record"):
        scenario_from_dict({**base, "run": {"steps": 1, "record": "some"}})
    with pytest.raises(ValueError, match="run.record"):
        RunConfig(record="some")


class _SimPyQueue(Environment):
    """The engine's environment on SimPy's own heap of (time, priority, id, event)."""

    def schedule(self, event, priority=simpy.core.NORMAL, delay=0):
        heapq.heappush(self._queue, (self._now + delay, priority, next(self._eid), event))

    def peek(self):
        return self._queue[0][0] if self._queue else float("inf")

    def step(self):
        self.events_processed += 1
        simpy.Environment.step(self)


@pytest.mark.parametrize("case", ["diloco-crashes", "noloco-crashes"])
def test_the_bucketed_queue_runs_events_in_simpys_order(case, monkeypatch):
    kw = dict(CASES[case])
    policy = kw.pop("policy")
    scen = tiny_scenario(policy, timing_only=True, **kw)
    ours = run(scen)
    monkeypatch.setattr("sim.world.Environment", _SimPyQueue)
    theirs = run(scen)
    assert type(theirs.world.env) is _SimPyQueue
    assert theirs.world.env.events_processed == ours.world.env.events_processed
    assert theirs.trace_hash() == ours.trace_hash()
