"""The five registered methods of the recovery family: one pipeline, five strategies.

========================  ==========================  =======================================
name                      config                      strategy
========================  ==========================  =======================================
``checkfree``             :class:`CheckFreeConfig`      :class:`~.strategies.CheckFree`
``checkfree_plus``        :class:`CheckFreePlusConfig`  :class:`~.strategies.CheckFreePlus`
``checkpointing``         :class:`CheckpointingConfig`  :class:`~.strategies.Checkpointing`
``redundant``             :class:`RedundantConfig`      :class:`~.strategies.Redundant`
``no_failure``            :class:`NoFailureConfig`      :class:`~.strategies.NoRecovery`
========================  ==========================  =======================================

Each is :class:`PipelineRecoveryPolicy` with a different ``Config`` and ``Strategy``: the
policy builds a :class:`~.pipeline_run.RecoveringPipeline` in ``setup`` and runs its
``training`` process as the coordinator.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

from policies.pipeline.methods import check_decoder
from policies.recovery.config import (
    CheckFreeConfig,
    CheckFreePlusConfig,
    CheckpointingConfig,
    NoFailureConfig,
    RedundantConfig,
)
from policies.recovery.pipeline_run import RecoveringPipeline
from policies.recovery.strategies import (
    CheckFree,
    CheckFreePlus,
    Checkpointing,
    NoRecovery,
    Redundant,
)
from sim.policy import Policy, RunContext, register_policy
from workloads.config import WorkloadConfig
from workloads.timing import preset_config, preset_names
from workloads.workload import DEFAULT_LLAMA, TINY_LLAMA


def model_blocks(workload: WorkloadConfig, *, timing_only: bool) -> tuple[int, ...]:
    """Blocks of the models a run would split into stages, from the configuration alone.

    The timing model's ``n_layers`` (it prices every stage) and, unless ``timing_only``, the
    decoder learner's (its stages hold real blocks); the same numbers
    :class:`~workloads.workload.Workload` builds, without building data or weights. A learner
    that is not a decoder is refused when the run sets up.
    """
    learner = workload.n_layers
    if learner is None:
        if workload.learner in preset_names():
            learner = preset_config(workload.learner).n_layers
        elif workload.is_decoder:
            learner = int((TINY_LLAMA if workload.learner == "tiny-llama" else DEFAULT_LLAMA)
                          ["n_layers"])
    timing = (preset_config(workload.timing).n_layers if workload.timing in preset_names()
              else learner)
    counts = (timing,) if timing_only else (timing, learner)
    return tuple(dict.fromkeys(n for n in counts if n is not None))


RECOVERY_POLICIES = ("checkfree", "checkfree_plus", "checkpointing", "redundant", "no_failure")
"""The registered names of the family, in the order figures list them."""


class PipelineRecoveryPolicy(Policy):
    """A pipeline with stage failures, recovered by ``Strategy``."""

    Strategy: ClassVar[type] = NoRecovery

    def failure_groups(self, num_nodes: int) -> list[list[int]]:
        """Stage ``s`` is nodes ``s R .. s R + R - 1``: a ``stage`` failure takes them all."""
        return self.config.stage_nodes(num_nodes)

    def check(self, scenario: Any) -> None:
        """A decoder learner; the pipeline fits the cluster and the model (before any world)."""
        check_decoder(scenario.workload)
        self._check_shape(scenario.cluster.num_nodes,
                          model_blocks(scenario.workload, timing_only=scenario.run.timing_only))

    def _check_shape(self, num_nodes: int, blocks: tuple[int, ...]) -> None:
        """One rule for :meth:`check` and :meth:`setup`: nodes, store node, blocks per stage.

        ``blocks``: the block counts the stages split (the timing model's, and the learner's
        when it does math).
        """
        self.config.stage_nodes(num_nodes)
        if self.Strategy.store_for is not None:
            self.config.check_store_node(num_nodes, self.Strategy.store_for)
        for n_layers in blocks:
            self.config.check_blocks(n_layers, equal=self.Strategy.equal_stages)

    def setup(self, ctx: RunContext) -> None:
        """Build the pipeline and the learner; the stage failures are the world's."""
        wl = ctx.workload
        learner = () if ctx.run.timing_only or not wl.is_language_model else (
            wl.llama_config().n_layers,)
        self._check_shape(ctx.world.num_nodes, (wl.timing.n_layers, *learner))
        self.strategy = self.Strategy(self.config)
        self.pipe = RecoveringPipeline(ctx, self.config, self.strategy,
                                       ctx.world.stage_failures)

    def coordinator(self, ctx: RunContext) -> Generator:
        """Run iterations until the run stops."""
        return self.pipe.training()

    def evaluate(self, ctx: RunContext) -> float | None:
        """Held-out loss of the whole model (``None`` while a stage is lost)."""
        return self.pipe.evaluate()

    def summary(self) -> dict[str, Any]:
        """Count the run's failures, recoveries and rollbacks."""
        pipe = self.pipe
        out = {"stage_failures": pipe.strikes, "recoveries": pipe.recoveries}
        if isinstance(self.strategy, Checkpointing):
            out["rollback_steps"] = sum(r["from_step"] - r["to_step"]
                                        for r in self.strategy.rollbacks)
            out["stale_restore_steps"] = sum(r["age_steps"]
                                             for r in self.strategy.stale_restores)
        return out


@register_policy("no_failure")
class NoFailurePipeline(PipelineRecoveryPolicy):
    """The upper bound: the same pipeline with no failures."""

    Config = NoFailureConfig
    Strategy = NoRecovery

    def failure_groups(self, num_nodes: int) -> list[list[int]]:
        """None of its stages fails: the scenario's stage failures are switched off."""
        self.config.stage_nodes(num_nodes)  # the same check of the cluster size
        return []


@register_policy("checkfree")
class CheckFreePipeline(PipelineRecoveryPolicy):
    """CheckFree: a lost stage becomes the gradient-norm-weighted average of its neighbours."""

    Config = CheckFreeConfig
    Strategy = CheckFree


@register_policy("checkfree_plus")
class CheckFreePlusPipeline(PipelineRecoveryPolicy):
    """CheckFree+: CheckFree, plus swapped edge pairs so edge stages can be copied."""

    Config = CheckFreePlusConfig
    Strategy = CheckFreePlus


@register_policy("checkpointing")
class CheckpointingPipeline(PipelineRecoveryPolicy):
    """Checkpoint to a store every ``checkpoint_every`` steps; roll back on failure."""

    Config = CheckpointingConfig
    Strategy = Checkpointing


@register_policy("redundant")
class RedundantPipeline(PipelineRecoveryPolicy):
    """Bamboo-style redundant computation: every stage backs up its successor."""

    Config = RedundantConfig
    Strategy = Redundant
