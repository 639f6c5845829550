"""Real training through the paths: the math side of a pipeline iteration.

Every replica of a stage starts from the same weights and applies the same averaged gradient
each iteration, so the replicas stay identical and one :class:`~workloads.PipelineLearner`
(one copy of each stage) holds them all exactly. When a microbatch finishes in simulated time,
it reads the next batch of its data node's shard; its real forward runs stage 0, then the
visited stages in path order (skipped stages are not applied, swapped ones run swapped), and its
backward adds into those stages' gradients. At the end of the iteration each stage's gradient
is divided by the number of microbatches that visited it - the average the stage all-reduce
computes (replica sums, then divided by the total count) - and the visited stages' optimizers
step (a stage no microbatch visited does not).

``half_path(S)`` is the path used to measure how well a model runs with half its stages:
stage 0 and every second stage after it, ``(0, 2, 4)`` for ``S = 6``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

from policies.pipeline.executor import (
    IterationStats,
    Microbatch,
    MicrobatchResult,
    PipelineExecutor,
    PipelineHooks,
)


def half_path(num_stages: int) -> tuple[int, ...]:
    """Stage 0 and every second stage: about half of the model, for evaluation."""
    return tuple(range(0, num_stages, 2))


class TrainingHooks(PipelineHooks):
    """Runs the real forward/backward of each finished microbatch and steps at iteration end.

    Parameters
    ----------
    learner:
        A :class:`~workloads.PipelineLearner`.
    streams:
        Training stream of each data node (``{node id: stream}``): a microbatch reads the next
        batch of its data node's shard. ``None``: every microbatch reads the learner's stream.
    """

    def __init__(self, learner: Any, streams: dict[int, Any] | None = None) -> None:
        self.learner = learner
        self.streams = streams or {}
        self.visits = [0] * learner.num_stages
        self.losses: list[float] = []

    def iteration_started(self, ex: PipelineExecutor, iteration: int) -> Generator | None:
        """Zero the gradients and the visit counts."""
        self.learner.zero_grad()
        self.visits = [0] * self.learner.num_stages
        self.losses = []
        return None

    def microbatch_done(self, ex: PipelineExecutor, mb: Microbatch,
                        result: MicrobatchResult) -> None:
        """Forward and backward of the finished microbatch through its path."""
        if not result.ok:
            return  # a lost microbatch contributes nothing
        own, stream = self.learner.stream, self.streams.get(mb.route.source)
        if stream is not None:
            self.learner.stream = stream
        try:
            loss = self.learner.compute_grad(list(mb.route.stages), accumulate=True)
        finally:
            self.learner.stream = own
        self.losses.append(loss)
        for s in mb.route.stages:
            self.visits[s] += 1

    def iteration_finished(self, ex: PipelineExecutor, stats: IterationStats
                           ) -> Generator | None:
        """Average each visited stage's gradient over its visits, step those stages."""
        learner = self.learner
        stepped = []
        for s, count in enumerate(self.visits):
            if count > 0:
                learner.set_stage_flat_grad(s, learner.get_stage_flat_grad(s) / count)
                stepped.append(s)
        if stepped:
            learner.optimizer_step(stepped)
        return None

    @property
    def mean_loss(self) -> float | None:
        """Mean training loss of the last iteration's microbatches (None: none finished)."""
        return sum(self.losses) / len(self.losses) if self.losses else None


def perplexity(loss_nats: float) -> float:
    """exp(loss): the perplexity of a mean cross-entropy in nats."""
    return math.exp(loss_nats)
