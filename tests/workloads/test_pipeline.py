"""The stage-split learner: per-stage gradients, steps, weights, resets and learning rates."""

import pytest
import torch

from tests.workloads.conftest import FAST_LM
from workloads import PipelineLearner, WorkloadConfig, build_workload


@pytest.fixture
def pipe() -> PipelineLearner:
    wl = build_workload(WorkloadConfig(**(FAST_LM | {"n_layers": 4})), num_replicas=2, seed=0)
    return wl.make_pipeline_learner(4)


def test_full_path_matches_plain_learner_step_for_step():
    wl = build_workload(WorkloadConfig(**(FAST_LM | {"n_layers": 4})), num_replicas=2, seed=0)
    plain, piped = wl.make_learner(1), wl.make_pipeline_learner(4, rank=1, head_stage="last")
    # Identical first loss (same weights, same batch); later steps differ only by per-stage clip.
    assert plain.compute_grad() == piped.compute_grad()
    assert torch.equal(plain.get_flat_grad().sort().values, piped.get_flat_grad().sort().values)


def test_stage_grad_norms_follow_the_path(pipe):
    pipe.compute_grad([0, 2])
    norms = [pipe.stage_grad_norm(s) for s in range(4)]
    assert norms[0] > 0 and norms[2] > 0 and norms[1] == 0 and norms[3] == 0
    g = pipe.get_stage_flat_grad(2)
    assert norms[2] == pytest.approx(float(g.norm()))


def test_optimizer_step_of_one_stage_changes_only_that_stage(pipe):
    pipe.compute_grad()
    before = [pipe.get_stage_flat(s) for s in range(4)]
    pipe.optimizer_step(stages=[1])
    changed = [not torch.equal(before[s], pipe.get_stage_flat(s)) for s in range(4)]
    assert changed == [False, True, False, False]
    assert pipe.groups[1].step_count == 1 and pipe.groups[0].step_count == 0


def test_checkfree_style_recovery_with_stage_state(pipe):
    for _ in range(3):
        pipe.train_step()
    a, b = pipe.stage_grad_norm(1), pipe.stage_grad_norm(3)
    w1, w3 = pipe.get_stage_state(1), pipe.get_stage_state(3)
    merged = {k: (a * w3[k] + b * w1[k]) / (a + b) for k in w1}  # blocks have equal shapes
    pipe.set_stage_state(2, merged)
    pipe.reset_optimizer(2)
    pipe.set_stage_lr_scale(2, 1.1)
    assert torch.equal(
        pipe.get_stage_state(2)["blocks.0.attn.wq.weight"], merged["blocks.0.attn.wq.weight"]
    )
    assert not pipe.groups[2].optimizer.state and pipe.groups[1].optimizer.state
    assert pipe.stage_lr(2) == pytest.approx(1.1 * pipe.stage_lr(1))
    assert pipe.train_step([0, 1, 2, 3]) > 0


def test_stage_flat_vectors_round_trip(pipe):
    v = pipe.get_stage_flat(3)
    assert v.numel() == pipe.stage_num_params(3)
    pipe.set_stage_flat(3, torch.zeros_like(v))
    assert pipe.get_stage_flat(3).abs().sum() == 0
    pipe.set_stage_flat_grad(3, torch.ones_like(v))
    assert pipe.stage_grad_norm(3) == pytest.approx(v.numel() ** 0.5)


def test_pipeline_snapshot_restore_is_bit_exact(pipe):
    pipe.train_step([0, 2, 1, 3])
    snap = pipe.snapshot()
    a = [pipe.train_step([0, 1, 3]) for _ in range(3)]
    pipe.restore(snap)
    b = [pipe.train_step([0, 1, 3]) for _ in range(3)]
    assert a == b


def test_eval_along_a_shorter_path_differs(pipe):
    assert pipe.eval_loss(path=[0, 1]) != pipe.eval_loss()


def test_classifier_has_no_pipeline():
    wl = build_workload(WorkloadConfig(learner="mlp", data="digits"), num_replicas=1, seed=0)
    with pytest.raises(ValueError, match="pipeline"):
        wl.make_pipeline_learner(2)
