"""The authors' recovery model (CheckFree's code), pinned on a one-replica pipeline by hand.

Pipeline: stage 0 (embedding and head, no block: 0 s) and four transformer stages of 0.5 s
forward, 0.75 s backward, a 0.125 s loss; one replica per stage, so no all-reduce; every hop
sends 196608 bytes (4 x 16 tokens x 768 x fp32, LLaMA-125M priced) over 1 Gbit/s access links
with 10 ms at each end: h = 0.02 + 196608 / 125e6 s. A failure-free iteration is

    T = 4 x 0.5 + 0.125 + 4 x 0.75 + 10 h            (5 hops forward, 5 back)

A replacement joins ``REJOIN_S`` after the failure and fetches both neighbours' weights (two
flows of one stage's bytes into its downlink): ``2 x nbytes / 125e6 + 0.02`` s.
"""

import pytest

from policies.recovery.pipeline_run import RecoveringPipeline
from tests.recovery.helpers import BANDWIDTH_BPS, run_policy

ONE_REPLICA = dict(replicas_per_stage=1, num_nodes=5)
HOP_S = 2 * 0.01 + 196608 / BANDWIDTH_BPS
ITERATION_S = 4 * 0.5 + 0.125 + 4 * 0.75 + 10 * HOP_S
REJOIN_S = 2.0


def pipeline_times(result):
    """(end time, pipeline seconds) of every iteration."""
    curve = result.loss_curve("pipeline_time_s")
    return list(zip(curve.time_s, curve.value))


def test_failure_free_iteration_time_is_the_hand_computed_one():
    result, _ = run_policy("no_failure", until_s=12.0, **ONE_REPLICA)
    (end0, t0), (end1, t1) = pipeline_times(result)
    assert t0 == pytest.approx(ITERATION_S, abs=1e-9) and t1 == pytest.approx(ITERATION_S, abs=1e-9)
    assert end1 == pytest.approx(2 * ITERATION_S, abs=1e-9)


def test_a_recovered_stage_is_available_within_the_iteration_of_the_failure():
    # Stage 3 fails 0.16 s into the second iteration, while the microbatch is in stage 1. The
    # microbatch goes on through stages 1 and 2, waits at stage 3 for the replacement (joins
    # after REJOIN_S, then fetches stages 2 and 4), and the same iteration finishes and steps.
    start = ITERATION_S
    fail_s = start + 0.16
    result, policy = run_policy("checkfree", until_s=2 * ITERATION_S + 6.0,
                                failures=[(fail_s, 3)], rejoin_s=REJOIN_S, **ONE_REPLICA)
    nbytes = policy.pipe.param_nbytes[3]
    restored_s = fail_s + REJOIN_S + 2 * nbytes / BANDWIDTH_BPS + 0.02
    ev = result.recorder.events()
    (rebuilt_s,) = ev[ev.kind == "rebuilt"].time_s
    assert rebuilt_s == pytest.approx(restored_s, abs=1e-9)
    # after the wait: F3, F4, loss, four backwards and 7 hops (3->4->0->4->3->2->1->0)
    end_s = restored_s + 2 * 0.5 + 0.125 + 4 * 0.75 + 7 * HOP_S
    times = pipeline_times(result)
    assert times[1][0] == pytest.approx(end_s, abs=1e-9)
    assert times[1][1] == pytest.approx(end_s - start, abs=1e-9)
    assert (ev.kind == "iteration_lost").sum() == 0  # the iteration was not thrown away
    assert (ev.kind == "microbatch_restarted").sum() == 0  # it had no work on stage 3 yet
    steps = result.loss_curve("loss")
    assert len(steps) >= 2 and steps.time_s.iloc[1] == pytest.approx(end_s, abs=1e-9)
    # the recovery's bytes went over the network: stage 3's node received both neighbours'
    received = result.recorder.bytes_by_node().received[3]
    assert received >= 2 * nbytes


def test_a_microbatch_that_lost_work_on_the_stage_starts_again_once_it_is_back():
    # Stage 3 fails during the microbatch's F3 (forward at stage 3 runs from
    # start + 3h + 1.0 to start + 3h + 1.5): that work is gone, so the microbatch restarts from
    # its data node when the stage is back and takes a whole iteration from there.
    start = ITERATION_S
    fail_s = start + 3 * HOP_S + 1.2
    result, policy = run_policy("checkfree", until_s=2 * ITERATION_S + 9.0,
                                failures=[(fail_s, 3)], rejoin_s=REJOIN_S, **ONE_REPLICA)
    restored_s = fail_s + REJOIN_S + 2 * policy.pipe.param_nbytes[3] / BANDWIDTH_BPS + 0.02
    ev = result.recorder.events()
    (restart_s,) = ev[ev.kind == "microbatch_restarted"].time_s
    assert restart_s == pytest.approx(start + 3 * HOP_S + 1.5, abs=1e-9)  # end of F3
    assert pipeline_times(result)[1][0] == pytest.approx(restored_s + ITERATION_S, abs=1e-9)
    assert (ev.kind == "iteration_lost").sum() == 0


def test_the_earlier_model_discards_the_iteration_and_waits_for_the_next():
    fail_s = ITERATION_S + 0.16
    result, _ = run_policy("checkfree", until_s=2 * ITERATION_S + 6.0, failures=[(fail_s, 3)],
                           rejoin_s=REJOIN_S, within_iteration=False, **ONE_REPLICA)
    ev = result.recorder.events()
    assert (ev.kind == "iteration_lost").sum() == 1
    (rebuilt_s,) = ev[ev.kind == "rebuilt"].time_s
    assert rebuilt_s > pipeline_times(result)[1][0]  # after the lost iteration ended


def test_checkpointing_every_iteration_rolls_back_to_the_newest_complete_checkpoint():
    # The authors' convergence baseline checkpoints weights + Adam state every iteration. Here
    # the uploads really cross the network: all five stages' states (3 x weights each) enter
    # the store's 1 Gbit/s downlink, so the step-1 checkpoint (started at the end of the first
    # iteration) lands no earlier than T + total / bandwidth, after the failure at 3T + 0.16 s;
    # the uploads due meanwhile are skipped (one checkpoint in flight at a time). The
    # replacement joins 2 s later and downloads stage 2's state (3 x its bytes); by then the
    # step-1 checkpoint is complete, so the model rolls back from step 3 to step 1 and the
    # iteration of the failure is lost: the method's own loss.
    fail_s = 3 * ITERATION_S + 0.16
    result, policy = run_policy("checkpointing", until_s=5 * ITERATION_S + 4.0,
                                failures=[(fail_s, 2)], rejoin_s=REJOIN_S, checkpoint_every=1,
                                replicas_per_stage=1, num_nodes=6)
    pipe, s = policy.pipe, policy.strategy
    total = sum(3 * b for b in pipe.param_nbytes)
    ev = result.recorder.events()
    first_stored_s = ev[ev.kind == "checkpoint_stored"].time_s.iloc[0]
    assert first_stored_s >= ITERATION_S + total / BANDWIDTH_BPS - 1e-9
    assert first_stored_s > fail_s + REJOIN_S
    assert s.uploads.uploads_skipped >= 2
    (rollback,) = s.rollbacks
    assert (rollback["from_step"], rollback["to_step"]) == (3, 1)
    download_s = 3 * pipe.param_nbytes[2] / BANDWIDTH_BPS + 0.02
    (recovery,) = ev[ev.kind == "recovery"].itertuples()
    assert recovery.time_s >= fail_s + REJOIN_S + download_s - 1e-9
    assert (ev.kind == "iteration_lost").sum() == 1


def test_the_papers_checkpointing_restores_only_the_lost_stage_with_its_stale_state():
    # The paper's checkpointing (its Figure 1a; the authors' throughput code): every C = 100
    # iterations, and a replacement "receives stale weights from the storage and continues
    # training". With C = 100 only the free step-0 checkpoint exists here, so stage 2's
    # replacement downloads its initial state (3 x its bytes: weights + Adam), 3 steps old,
    # while the other stages keep theirs: no rollback, no lost iteration, and the failure's
    # iteration ends at restore + the rest of the pipeline, as CheckFree's does.
    start = 3 * ITERATION_S
    fail_s = start + 0.16
    result, policy = run_policy("checkpointing", until_s=5 * ITERATION_S + 4.0,
                                failures=[(fail_s, 2)], rejoin_s=REJOIN_S, checkpoint_every=100,
                                restore="stale_stage", replicas_per_stage=1, num_nodes=6)
    pipe, s = policy.pipe, policy.strategy
    restored_s = fail_s + REJOIN_S + 3 * pipe.param_nbytes[2] / BANDWIDTH_BPS + 0.02
    ev = result.recorder.events()
    (stale,) = ev[ev.kind == "stale_restore"].itertuples()
    assert stale.time_s == pytest.approx(restored_s, abs=1e-9)
    assert (stale.stage, stale.stored_step, stale.age_steps) == (2, 0, 3)
    assert s.rollbacks == [] and (ev.kind == "iteration_lost").sum() == 0
    # the microbatch was at stage 1 (no work on stage 2 yet): it waits, then F2..F4, loss,
    # four backwards and 8 hops (1->2->3->4->0->4->3->2->1->0 minus the one already made)
    end_s = restored_s + 3 * 0.5 + 0.125 + 4 * 0.75 + 8 * HOP_S
    assert pipeline_times(result)[3][0] == pytest.approx(end_s, abs=1e-9)
    assert policy.summary()["stale_restore_steps"] == 3
    # the step counter went on (a rollback would have set it back to 0)
    assert result.steps == len(pipeline_times(result)) >= 4


def test_checkpointing_refuses_an_unknown_restore():
    from policies.recovery.config import CheckpointingConfig
    from sim.errors import FieldError

    with pytest.raises(FieldError, match="restore"):
        CheckpointingConfig(restore="rewind")


def test_the_stage_layout_is_the_authors():
    # stage 0: embedding + head, no block; stages 1..S-1: equal blocks; stage 0 never fails
    _, policy = run_policy("checkfree", until_s=1.0)
    pipe: RecoveringPipeline = policy.pipe
    assert [len(r) for r in pipe.learner_layer_ranges()] == [0, 1, 1, 1, 1]
    assert [len(s.blocks) for s in pipe.learner.model.stages] == [0, 1, 1, 1, 1]
    stage0 = set(pipe.stage_weights(0))
    assert stage0 == {"embed.weight", "norm.weight", "head.weight"}
    assert pipe.param_nbytes[0] == pipe.embed_nbytes + pipe.head_nbytes
    assert len(set(pipe.param_nbytes[1:])) == 1
    assert pipe.config_exempt == (0,)
    assert [policy.strategy.rule(s, 5).kind for s in range(1, 5)] == [
        "fallback", "average", "average", "fallback"]  # edges copy their one neighbour
