"""Goodput of the recovery family: lost stages, rollbacks and redundancy are not goodput.

The oracle is the run's own busy intervals: a rollback to step k loses every busy second of the
pipeline nodes from the instant step k was taken until the discarded iteration ends.
"""

from __future__ import annotations

import pytest

from policies.recovery.policies import RECOVERY_POLICIES
from tests.recovery.helpers import run_policy

FAIL_AT_S = 45.0


def busy_in(intervals, node: int, start_s: float, end_s: float) -> float:
    """Busy seconds of ``node`` within [start_s, end_s) (a node runs one task at a time)."""
    iv = intervals[(intervals.node == node) & (intervals.kind == "busy")]
    return float((iv.end_s.clip(upper=end_s) - iv.start_s.clip(lower=start_s)).clip(lower=0).sum())


def test_a_rollback_loses_every_busy_second_since_the_restored_step():
    result, policy = run_policy("checkpointing", until_s=60.0, failures=[(FAIL_AT_S, 2)],
                                checkpoint_every=3)
    (rb,) = policy.strategy.rollbacks
    rec = result.recorder
    h = rec.history()
    steps = h[h.metric == "iteration_s"].set_index("step").time_s
    restored_at = float(steps.loc[rb["to_step"]]) if rb["to_step"] > 0 else 0.0
    ev = rec.events()
    (lost_end,) = ev[ev.kind == "iteration_lost"].time_s  # the iteration the rollback hit
    intervals = rec.intervals()
    g = rec.goodput_breakdown().set_index("node")
    for node in policy.pipe.placement.nodes():
        assert g.loc[node, "discarded_s"] == pytest.approx(
            busy_in(intervals, node, restored_at, float(lost_end)), abs=1e-9)
        assert g.loc[node, "discarded_s"] > 0


def test_the_discarded_iteration_ablation_loses_the_iteration_it_hits():
    result, policy = run_policy("checkfree", until_s=40.0, failures=[(20.0, 2)],
                                within_iteration=False)
    rec = result.recorder
    ev = rec.events()
    (lost_end,) = ev[ev.kind == "iteration_lost"].time_s
    iteration_s = rec.history().query("metric == 'pipeline_time_s'")
    started = float(iteration_s[iteration_s.time_s <= lost_end].time_s.iloc[-2])  # previous end
    intervals = rec.intervals()
    g = rec.goodput_breakdown().set_index("node")
    for node in policy.pipe.placement.nodes():
        assert g.loc[node, "discarded_s"] == pytest.approx(
            busy_in(intervals, node, started, float(lost_end)), abs=1e-9)


@pytest.mark.parametrize("name", RECOVERY_POLICIES)
def test_goodput_is_at_most_the_busy_fraction(name):
    failures = None if name == "no_failure" else [(20.0, 2)]
    result, _ = run_policy(name, until_s=40.0, failures=failures)
    s = result.recorder.summary()
    t = result.recorder.node_time_breakdown()
    busy_fraction = float(t.busy_s.sum() / (t.busy_s + t.comm_s + t.idle_s).sum())
    assert 0 < s["goodput"] <= busy_fraction + 1e-12
    lost = float(result.recorder.goodput_breakdown().discarded_s.sum())
    if name == "no_failure":
        assert lost == 0.0
    else:
        assert lost > 0  # a lost stage's in-flight work, or the redundant forwards


def test_a_lost_stage_loses_the_gradient_it_accumulated_since_the_last_step():
    """Stage 2 fails at 20 s, during step 3's stage all-reduce: no microbatch is in flight, and
    what is lost is exactly stage 2's nodes' compute since step 2 (its accumulated gradient)."""
    result, policy = run_policy("checkfree", until_s=40.0, failures=[(20.0, 2)])
    rec = result.recorder
    h = rec.history()
    steps = h[h.metric == "iteration_s"].set_index("step").time_s
    since = float(steps[steps < 20.0].iloc[-1])
    assert (rec.events().kind == "microbatch_restarted").sum() == 0
    intervals = rec.intervals()
    g = rec.goodput_breakdown().set_index("node")
    stage2 = policy.pipe.placement.replicas[2]
    for node in policy.pipe.placement.nodes():
        expected = busy_in(intervals, node, since, 20.0) if node in stage2 else 0.0
        assert g.loc[node, "discarded_s"] == pytest.approx(expected, abs=1e-9)
    assert g.loc[stage2, "discarded_s"].min() > 0
