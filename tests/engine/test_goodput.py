"""Goodput: useful compute over up time, on a hand-worked two-node story."""

from __future__ import annotations

import pytest

from sim.errors import NodeFailure

from .conftest import make_world


def test_goodput_of_a_hand_worked_story():
    w = make_world(2)
    rec = w.recorder
    n0, n1 = w.nodes

    def node0():
        yield n0.compute(seconds=1.0)          # 0-1 s, committed at 1 s: useful
        rec.commit_work(0, 1.0)
        yield n0.compute(seconds=1.0)          # 1-2 s: lost below
        yield w.env.timeout(1.0)               # 2-3 s idle
        yield n0.compute(seconds=1.0)          # 3-4 s: lost below
        rec.discard_uncommitted(0, "dropped")  # loses 1-2 and 3-4 (busy parts only)
        yield n0.compute(seconds=1.0)          # 4-5 s: not committed, counts at the run's end

    def node1():
        try:
            yield n1.compute(seconds=2.0)      # 0-2 s, cut at 1 s by the failure: 0-1 lost
        except NodeFailure:
            pass
        yield n1.recovered_event()
        yield n1.compute(seconds=1.5)          # 3-4.5 s: useful

    def faults():
        yield w.env.timeout(1.0)
        n1.fail("crash")
        yield w.env.timeout(2.0)
        n1.recover()

    for gen in (node0(), node1(), faults()):
        w.env.process(gen)
    w.env.run(until=6.0)
    rec.finish(6.0)
    g = rec.goodput_breakdown().set_index("node")
    assert g.loc[0, "busy_s"] == pytest.approx(4.0)
    assert g.loc[0, "useful_s"] == pytest.approx(2.0)
    assert g.loc[0, "discarded_s"] == pytest.approx(2.0)
    assert g.loc[1, "busy_s"] == pytest.approx(2.5)       # 0-1 and 3-4.5
    assert g.loc[1, "useful_s"] == pytest.approx(1.5)
    # up time: 6 s (node 0) + 4 s (node 1 down 1-3 s); useful 2 + 1.5
    assert rec.goodput() == pytest.approx(3.5 / 10.0)
    assert rec.summary()["goodput"] == pytest.approx(0.35)


def test_goodput_is_at_most_busy_and_idle_plus_goodput_at_most_one():
    w = make_world(3, bandwidth_Bps=1e6)
    rec = w.recorder

    def story(i):
        for _ in range(3):
            yield w.nodes[i].compute(seconds=0.5 + i)
            yield w.network.transfer(i, (i + 1) % 3, 1e5)

    for i in range(3):
        w.env.process(story(i))
    w.env.run()
    rec.finish(w.now)
    b = rec.node_time_breakdown()
    up = float((b.busy_s + b.comm_s + b.idle_s).sum())
    assert rec.goodput() == pytest.approx(float(b.busy_s.sum()) / up)   # nothing lost
    assert rec.goodput() + rec.idle_fraction() <= 1.0 + 1e-12


def test_a_failed_diloco_worker_loses_its_steps_since_its_last_round(tmp_path):
    from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

    fail_s = 0.2
    scen = tiny_scenario("diloco", nodes=4, steps=60, inner_steps=4, timing_only=True,
                         failures=crash_trace(tmp_path, [(fail_s, 2, 0.4)]))
    result, pol = run_policy(scen)
    h = result.history
    syncs = h[(h.metric == "sync_s") & (h.node == 2) & (h.time_s < fail_s)]
    resumed_s = float(syncs.time_s.max())      # its last completed round
    # lost: the steps it computed since (at most one block of H = 4), not the waiting after
    lost_s = min(fail_s - resumed_s, 4 * pol.step_s)
    assert fail_s - resumed_s > 4 * pol.step_s  # here: a whole block, then waiting (comm)
    g = result.recorder.goodput_breakdown().set_index("node")
    assert g.loc[2, "discarded_s"] == pytest.approx(lost_s)
    assert g.loc[[0, 1, 3], "discarded_s"].tolist() == [0.0, 0.0, 0.0]
