"""The vmap replica group computes what a loop of learners computes."""

import pytest
import torch

from tests.workloads.conftest import FAST_LM
from workloads import ReplicaGroup, WorkloadConfig, build_workload


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3},
        {"weight_decay": 0.1, "grad_clip": 0.05},
    ],
)
def test_vmap_group_matches_loop_of_learners(overrides):
    wl = build_workload(WorkloadConfig(**(FAST_LM | overrides)), num_replicas=3, seed=0)
    group = ReplicaGroup(wl, [0, 1, 2])
    learners = [wl.make_learner(r) for r in range(3)]
    for _ in range(4):
        group_losses = group.train_step()
        loop_losses = torch.tensor([lrn.train_step() for lrn in learners])
        torch.testing.assert_close(group_losses, loop_losses, rtol=1e-5, atol=1e-5)
    for r, lrn in enumerate(learners):
        torch.testing.assert_close(group.get_flat(r), lrn.get_flat(), rtol=1e-4, atol=1e-5)


def test_average_params_makes_replicas_equal():
    wl = build_workload(WorkloadConfig(**FAST_LM), num_replicas=2, seed=0)
    group = ReplicaGroup(wl, [0, 1])
    group.train_step()
    assert not torch.equal(group.get_flat(0), group.get_flat(1))
    expected = (group.get_flat(0) + group.get_flat(1)) / 2
    group.average_params()
    torch.testing.assert_close(group.get_flat(0), expected)
    assert torch.equal(group.get_flat(0), group.get_flat(1))
