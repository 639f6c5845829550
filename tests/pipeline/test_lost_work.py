"""Goodput of the pipeline family: the executor declares the compute that never reaches a model.

Hand-worked on the executor tests' 4-stage pipeline (forward ``w`` = 1.76 s per stage, backward
1.5 w, loss 0.25 w on the data node): what is lost is exactly the busy time of the tasks thrown
away, whatever the hops cost.
"""

from __future__ import annotations

import pytest

from policies.pipeline.executor import (
    ExecutorConfig,
    PipelineExecutor,
    PipelineHooks,
    StagePlacement,
)

from .test_executor import PLACEMENT, make, run_iteration

W = 1.76


def discarded_s(world) -> float:
    world.recorder.finish(world.env.now)
    return float(world.recorder.goodput_breakdown().discarded_s.sum())


def test_no_failure_loses_nothing():
    world, ex = make()
    run_iteration(world, ex, [(0, 3, 5, 7), (1, 4, 6, 8)], [None, None])
    assert discarded_s(world) == 0.0


def test_a_microbatch_dropped_at_a_lost_stage_loses_its_forwards():
    world, ex = make()
    ex.fail_stage(2)  # mb0 computes F0 on node 0 and F1 on node 3, then meets the lost stage
    stats = run_iteration(world, ex, [(0, 3, 5, 7), (1, 4, 8)], [None, None])
    assert [r.ok for r in stats.results] == [False, True]
    g = world.recorder.goodput_breakdown().set_index("node")
    assert discarded_s(world) == pytest.approx(2 * W)
    assert g.loc[0, "discarded_s"] == pytest.approx(W) and g.loc[3, "discarded_s"] == \
        pytest.approx(W)


def test_a_restarted_microbatch_loses_its_first_attempt_exactly():
    """Stage 1 is lost after mb0's F1 (t = 8 s); the attempt runs on until B1 finds it gone.

    Lost: F0..F3 (4 w), the loss (0.25 w), B3 and B2 (2 x 1.5 w) = 7.25 w = 12.76 s; the second
    attempt (after the stage is back at t = 30 s) survives.
    """
    world, plain = make()
    ex = PipelineExecutor(world, StagePlacement(PLACEMENT), plain.costs,
                          ExecutorConfig(memory_microbatches=2, hop_overhead_s=0.35,
                                         allreduce=False, wait_for_lost_stages=True))

    def script():
        yield world.env.timeout(8.0)
        ex.fail_stage(1)
        yield world.env.timeout(22.0)
        ex.restore_stage(1)

    world.env.process(script())
    stats = run_iteration(world, ex, [(0, 3, 5, 7)], [None])
    assert stats.completed == 1
    ev = world.recorder.events()
    assert (ev.kind == "microbatch_restarted").sum() == 1
    iv = world.recorder.intervals()
    f1 = iv[(iv.label == "F1 mb0")].sort_values("start_s")
    b1 = iv[(iv.label == "B1 mb0")]
    assert f1.end_s.iloc[0] < 8.0 and len(b1) == 1 and b1.start_s.iloc[0] > 30.0  # the story
    assert discarded_s(world) == pytest.approx(7.25 * W)
    busy = float(iv[iv.kind == "busy"].pipe(lambda d: (d.end_s - d.start_s).sum()))
    assert busy == pytest.approx(2 * 7.25 * W + 2 * 1.5 * W)  # both attempts, B1 and B0 once


def test_redundant_extra_forward_is_not_goodput():
    class Redundant(PipelineHooks):
        def extra_forward_s(self, ex, mb, position):
            return 0.5

    world, ex = make(hooks=Redundant())
    run_iteration(world, ex, [(0, 3, 5, 7)], [None])
    assert discarded_s(world) == pytest.approx(4 * 0.5)  # one extra per forward task
