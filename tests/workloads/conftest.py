"""Shared small workloads for the workloads tests."""

import pytest
import torch

from workloads import WorkloadConfig, build_workload

# Tiny models run fastest on one thread; with several threads on a busy 2-core machine,
# OpenMP spinning makes a step up to 50x slower.
torch.set_num_threads(1)

# A two-layer tiny decoder: trains a few hundred steps in about a second on a CPU core.
FAST_LM = dict(learner="tiny-llama", n_layers=2, batch=16, seq=32, lr=1e-2, warmup_steps=10)


@pytest.fixture
def markov_workload():
    return build_workload(WorkloadConfig(**FAST_LM), num_replicas=4, seed=0)
