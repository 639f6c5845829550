"""Real training through the paths (CI size): loss falls; skip-trained models lose less when
stages are omitted at evaluation than full-pipeline-trained ones."""

import pytest
import torch

from policies.pipeline.methods import FullPipeline, SkipPipe
from policies.pipeline.training import half_path, perplexity
from sim.config import ClusterConfig, NetworkConfig, RunConfig, Scenario
from sim.runner import run
from workloads import WorkloadConfig

ITERATIONS = 24


def train(policy):
    scenario = Scenario(
        name="ci-skippipe-training", seed=0,
        cluster=ClusterConfig(num_nodes=12, device="emulator"),
        network=NetworkConfig(model="ideal", topology="gcp-12-regions"),
        workload=WorkloadConfig(learner="tiny-llama", batch=8, seq=32, lr=1e-2, warmup_steps=5),
        run=RunConfig(eval_batches=8))
    result = run(scenario, policy)
    h = result.history
    losses = h[h.metric == "loss"].value.to_numpy()
    learner = policy.learner
    full = learner.eval_loss(8)
    half = learner.eval_loss(8, path=list(half_path(learner.num_stages)))
    return losses, full, half, result


@pytest.fixture(scope="module")
def trained():
    # dp_weight=0: the pipeline-only allocation. With the authors' DP + PP cost (the default)
    # this tiny 12-node, 20-iteration run picks other paths and the half-path gap of the
    # skip-trained model is 0.0296 against the full pipeline's 0.0200 (measured): the property
    # is fragile at this size (docs/methods/pipeline-skippipe.md).
    common = dict(stage_sizes=(2, 2, 2, 2, 2, 2), microbatches_per_data_node=3, dp_weight=0.0,
                  iterations=ITERATIONS, allreduce=False)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core machine: far faster on one thread
    try:
        full = train(FullPipeline(**common))
        skip = train(SkipPipe(**common, collision_aware=False, max_expansions=60))
    finally:
        torch.set_num_threads(saved)
    return full, skip


def test_loss_falls_under_skippipe_paths(trained):
    _, (losses, full_loss, _, result) = trained
    assert len(losses) == ITERATIONS
    assert losses[-3:].mean() < losses[:3].mean() - 1.0
    assert full_loss < 0.6 * losses[0]
    # the runner's final evaluation is the all-stage loss; the half-path one is recorded too
    h = result.history
    assert h[h.metric == "eval_loss_half"].shape[0] >= 1


def test_skip_trained_model_loses_less_without_half_its_stages(trained):
    (_, full_all, full_half, _), (_, skip_all, skip_half, _) = trained
    full_gap = full_half - full_all
    skip_gap = skip_half - skip_all
    assert full_gap > 0.01
    assert skip_gap < full_gap - 0.01
    skip_ratio = perplexity(skip_half) / perplexity(skip_all)
    assert skip_ratio < perplexity(full_half) / perplexity(full_all)


def test_half_path():
    assert half_path(6) == (0, 2, 4)
    assert half_path(4) == (0, 2)


def test_each_microbatch_reads_its_data_nodes_stream_and_stages_average_over_visits():
    from policies.pipeline.executor import Microbatch, MicrobatchResult, Route
    from policies.pipeline.training import TrainingHooks

    class FakeLearner:
        num_stages = 3

        def __init__(self):
            self.stream, self.used, self.grads, self.stepped = "own", [], [2.0, 4.0, 6.0], None

        def zero_grad(self):
            pass

        def compute_grad(self, path, accumulate):
            self.used.append((self.stream, tuple(path)))
            return 1.0

        def get_stage_flat_grad(self, s):
            return self.grads[s]

        def set_stage_flat_grad(self, s, value):
            self.grads[s] = value

        def optimizer_step(self, stages):
            self.stepped = stages

    learner = FakeLearner()
    hooks = TrainingHooks(learner, {10: "shard10", 11: "shard11"})
    hooks.iteration_started(None, 0)
    for i, (stages, nodes) in enumerate([((0, 1), (10, 12)), ((0, 1), (11, 12)),
                                         ((0,), (10,))]):
        mb = Microbatch(index=i, route=Route(stages=stages, nodes=nodes))
        hooks.microbatch_done(None, mb, MicrobatchResult(microbatch=mb, ok=True, start_s=0,
                                                         end_s=1))
    lost = Microbatch(index=3, route=Route(stages=(0, 2), nodes=(10, 13)))
    hooks.microbatch_done(None, lost, MicrobatchResult(microbatch=lost, ok=False, start_s=0,
                                                       end_s=1))
    hooks.iteration_finished(None, None)
    assert learner.used == [("shard10", (0, 1)), ("shard11", (0, 1)), ("shard10", (0,))]
    assert learner.stream == "own"
    assert learner.grads == [2.0 / 3, 4.0 / 2, 6.0] and learner.stepped == [0, 1]
    assert hooks.mean_loss == 1.0
