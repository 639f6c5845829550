"""One pipeline run with stage failures and a pluggable recovery strategy.

:class:`RecoveringPipeline` drives ``policies.pipeline.executor.PipelineExecutor`` (the timing:
compute tasks, activation hops, stage all-reduces) and a ``workloads.PipelineLearner`` (the
math: one stage-split model whose stage ``s`` stands for all replicas of stage ``s``, which hold
identical weights because they average gradients every iteration). It is the executor's hooks
object. The story of one
iteration (``within_iteration=True``, the authors' model):

1. The executor runs the microbatches; each finished one runs its real forward and backward
   along its route's stage order (``microbatch_done``), accumulating gradients and counting,
   per stage, the microbatches that reached it.
2. A failure strikes at its scheduled simulated time (a separate process): the stage is marked
   down in the executor and its weights are wiped (the replacement really starts empty), and
   the gradient it had accumulated is gone with its replicas. At once a recovery process waits
   for the replacement to join (``rejoin_delay_s``) and lets the strategy rebuild the stage
   (network transfers, then new weights; checkpointing rolls the whole model back). Meanwhile
   microbatches that reach the stage wait for it, and those that had work on it start again
   (``ExecutorConfig.wait_for_lost_stages``): the iteration continues, nothing else is lost.
3. ``iteration_finished`` (after the stage all-reduces): each stage's gradient is averaged over
   the microbatches that reached it, each stage's clipped gradient norm is kept (CheckFree
   weighs neighbours by it), every stage with a gradient steps, and the strategy may start
   background uploads. Only a rollback (checkpointing restoring an older step) discards the
   iteration: the method itself lost that work.

Goodput (docs/engine.md): the executor declares a lost microbatch attempt's compute and the
redundant forward (never read by the model) discarded; this class declares discarded the lost
stage's nodes' compute since the last step (the gradient that died with its replicas; the
stage's earlier training is not: it shaped the neighbours a rebuild starts from, and its loss
shows in the loss curve), every stage node's compute since the restored step's time at a
rollback, and an iteration's compute when the iteration is discarded (``iteration_lost``).

``within_iteration=False`` is dtsim's earlier model, kept as an ablation: the iteration a
failure hits is discarded, microbatches reaching the lost stage fail, and rebuilding waits for
the next iteration's start.

The strategy is any object with the methods of
:class:`policies.recovery.strategies.RecoveryStrategy`.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any

import torch

from policies.pipeline.executor import (
    ExecutorConfig,
    IterationStats,
    Microbatch,
    MicrobatchCosts,
    MicrobatchResult,
    PipelineExecutor,
    PipelineHooks,
    Route,
    StagePlacement,
)
from policies.pipeline.methods import workload_costs
from policies.recovery.config import PipelineRecoveryConfig
from policies.recovery.failures import FailureFeed
from policies.recovery.swaps import microbatch_path
from sim.errors import SimFailure
from sim.faults.stages import StageFailure, StageFailureSchedule
from workloads.llama import stage_layer_ranges

HEAD_STAGE = "first"
"""Stage 0 holds the embedding and the head: a microbatch returns to its data node for the loss
(the executor's model, and the CheckFree reference where stage 0 never fails)."""

ADAM_STATE_FACTOR = 2
"""Adam keeps two moments per parameter: optimizer state = 2x the parameter bytes."""


def microbatch_costs(workload: Any, config: PipelineRecoveryConfig, device: Any) -> MicrobatchCosts:
    """Per-stage forward/backward seconds, loss seconds and message sizes of one microbatch.

    With ``config.forward_s`` every stage's forward takes that long (backward 1.5x, loss 0.25x:
    the emulators' rule; with ``embedding_stage`` stage 0 holds no block and takes no time).
    Otherwise the workload's timing model prices each stage's blocks on ``device`` (the head's
    time is the loss task on the data node).
    """
    timing, wl = workload.timing, workload.config
    S = config.num_stages
    grad_nbytes = tuple(float(b) for b in timing.stage_param_bytes(
        S, head_stage=HEAD_STAGE, embedding_stage=config.embedding_stage))
    act_nbytes = float(timing.activation_bytes(wl.batch, wl.seq))
    if config.forward_s is not None:
        forward = [config.forward_s] * S
        if config.embedding_stage:
            forward[0] = 0.0
        return MicrobatchCosts(
            forward_s=tuple(forward),
            backward_s=tuple(1.5 * f for f in forward),
            loss_s=0.25 * config.forward_s,
            activation_nbytes=act_nbytes,
            grad_nbytes=grad_nbytes,
        )
    return workload_costs(workload, device, S, head_stage=HEAD_STAGE,
                          embedding_stage=config.embedding_stage)


class RecoveringPipeline(PipelineHooks):
    """A pipeline that loses whole stages and recovers them with ``strategy``.

    Parameters
    ----------
    ctx:
        The run context (world, workload, run limits).
    config:
        The pipeline's shape.
    strategy:
        The recovery strategy.
    failures:
        The run's stage failures, drawn by the world from the scenario's ``[faults]``
        (``world.stage_failures``); ``None``: no stage ever fails.
    """

    def __init__(self, ctx: Any, config: PipelineRecoveryConfig, strategy: Any,
                 failures: StageFailureSchedule | None) -> None:
        world = ctx.world
        self.ctx = ctx
        self.world = world
        self.env = world.env
        self.config = config
        self.strategy = strategy
        S = config.num_stages
        self.num_stages = S
        self.placement = StagePlacement(config.stage_nodes(world.num_nodes))
        self.store_node: int | None = (
            config.num_pipeline_nodes if world.num_nodes > config.num_pipeline_nodes else None)
        """The checkpoint store (the first node outside the pipeline), if the cluster has one."""

        wl = ctx.workload
        self.learner = wl.make_pipeline_learner(S, rank=0, head_stage=HEAD_STAGE,
                                                embedding_stage=config.embedding_stage,
                                                timing_only=ctx.run.timing_only)
        self.timing_only = bool(ctx.run.timing_only)
        self.costs = microbatch_costs(wl, config, world.nodes[0].device)
        timing = wl.timing
        self.param_nbytes = [float(b) for b in timing.stage_param_bytes(
            S, head_stage=HEAD_STAGE, embedding_stage=config.embedding_stage)]
        """Bytes of each stage's weights (the timing model's, which may be larger than the
        learner's)."""
        self.embed_nbytes = float(timing.embed_params * timing.bytes_per_param)
        self.head_nbytes = float(timing.head_params * timing.bytes_per_param)
        memory = strategy.memory_microbatches(config.memory_microbatches)
        self.executor = PipelineExecutor(
            world, self.placement, self.costs,
            ExecutorConfig(memory_microbatches=memory, hop_overhead_s=config.hop_overhead_s,
                           allreduce=config.allreduce,
                           wait_for_lost_stages=config.within_iteration),
            hooks=self)
        self.swap_pairs = strategy.swap_pairs(S)

        self.step = 0
        """Optimizer steps the model has taken (rolls back with a checkpoint restore)."""
        self.grad_norms = [1.0] * S
        """Each stage's clipped gradient norm of the last step (the reference starts at 1)."""
        self.lost: dict[int, StageFailure] = {}
        """Stages whose replicas are all gone, with the failure that took them."""
        self.strikes = 0
        """Failures that took a stage (a failure of a stage already lost changes nothing)."""
        self.recoveries = 0
        self._struck_this_iteration = False
        self._losses: list[float] = []
        self._reached = [0] * S
        """Microbatches of this iteration whose gradient each stage holds."""
        self._iteration_step = 0
        """``step`` when the iteration started (a rollback moves ``step`` below it)."""
        self._recovering = False
        self._step_time_s = {0: self.env.now}
        """When the model reached each step (a rollback to step k loses the work since then)."""
        self._gradient_since_s = self.env.now
        """Start of the compute whose gradient is accumulating (not yet stepped)."""

        self.schedule: list[StageFailure] = list(failures.failures) if failures else []
        """Every stage failure of the run, drawn by the world before it starts."""
        self.config_exempt = failures.exempt if failures is not None else tuple(range(S))
        """Stages that never fail."""
        strategy.setup(self)

    # -- processes ------------------------------------------------------------------------

    def training(self) -> Generator:
        """Run iterations until the run stops (the coordinator process)."""
        self.env.process(self._failures(FailureFeed(self.schedule)))
        while not self.ctx.should_stop:
            yield self.executor.run_iteration(self.step, self.microbatches())

    def _failures(self, feed: FailureFeed) -> Generator:
        for failure in feed.until(math.inf):
            if failure.time_s > self.env.now:
                yield self.env.timeout(failure.time_s - self.env.now)
            self.strike(failure)

    def strike(self, failure: StageFailure) -> None:
        """Every replica of ``failure.stage`` is gone now; its replacement will join empty."""
        s = failure.stage
        if s in self.lost:
            return
        self.strategy.before_loss(self, s)
        self.strikes += 1
        self.lost[s] = failure
        self._struck_this_iteration = True
        self.executor.fail_stage(s)
        self.world.recorder.event("failure", stage=s, nodes=list(self.placement.replicas[s]))
        self._reached[s] = 0  # the gradient the stage accumulated died with its replicas
        self.executor.discard_since(self._gradient_since_s, "stage_lost",
                                    self.placement.replicas[s])
        if not self.timing_only:
            with torch.no_grad():
                for p in self.learner.model.stages[s].parameters():
                    p.fill_(math.nan)  # the replacement holds no weights
                    if p.grad is not None:
                        p.grad.zero_()
        if self.config.within_iteration and not self._recovering:
            self.env.process(self._recovery())

    def _recovery(self) -> Generator:
        """Rebuild lost stages as soon as their replacements join (within the iteration)."""
        self._recovering = True
        try:
            while self.lost and not self.ctx.should_stop:
                yield from self._recover()
        finally:
            self._recovering = False

    # -- the microbatches of one iteration -------------------------------------------------

    def microbatches(self) -> list[Microbatch]:
        """``R x microbatches_per_replica`` microbatches; pipeline ``r`` carries data node ``r``'s.

        Microbatch ``j`` of data node ``r`` has index ``i = r M + j`` and visits the stages in the
        order :func:`~policies.recovery.swaps.microbatch_path` gives for ``i`` (CheckFree+ swaps
        the odd ones, so half of every iteration's microbatches run swapped even when each data
        node sends one).
        """
        R, M = self.config.replicas_per_stage, self.config.microbatches_per_replica
        out = []
        for r in range(R):
            for j in range(M):
                index = r * M + j
                stages = microbatch_path(self.num_stages, index, self.swap_pairs)
                nodes = tuple(self.placement.replicas[s][r] for s in stages)
                out.append(Microbatch(index=index, route=Route(stages=tuple(stages), nodes=nodes)))
        return out

    # -- executor hooks -------------------------------------------------------------------

    def iteration_started(self, ex: PipelineExecutor, iteration: int) -> Generator:
        """Reset the accumulators (``within_iteration=False``: first rebuild lost stages)."""
        while self.lost and not self.config.within_iteration:
            yield from self._recover()
        self._struck_this_iteration = False
        self._losses = []
        self._reached = [0] * self.num_stages
        self._iteration_step = self.step
        self._gradient_since_s = self.env.now
        if not self.timing_only:
            self.learner.zero_grad()

    def _recover(self) -> Generator:
        lost = dict(self.lost)
        rejoin_s = max(f.rejoin_s for f in lost.values())
        if rejoin_s > self.env.now:
            yield self.env.timeout(rejoin_s - self.env.now)  # replacements join, empty
        for s in sorted(lost):
            self.world.recorder.event("replacement_joined", stage=s)
        started, step = self.env.now, self.step
        recovered = yield from self.strategy.recover(self, sorted(lost))
        if self.step < step:  # a rollback: every step since the restored one is lost work
            self.executor.discard_since(self._step_time_s[self.step], "rollback")
            self._step_time_s = {k: t for k, t in self._step_time_s.items() if k <= self.step}
        for s in sorted(lost) if recovered is None else recovered:
            if self.lost.get(s) is lost[s]:
                del self.lost[s]
                self.executor.restore_stage(s)
                self.recoveries += 1
                self.world.recorder.event("recovery", stage=s,
                                          downtime_s=self.env.now - lost[s].time_s,
                                          transfer_s=self.env.now - started)

    def extra_forward_s(self, ex: PipelineExecutor, mb: Microbatch, position: int) -> float:
        """Whatever extra forward work the strategy charges (redundant computation)."""
        return self.strategy.extra_forward_s(self, mb.route.stages[position])

    def microbatch_done(self, ex: PipelineExecutor, mb: Microbatch,
                        result: MicrobatchResult) -> None:
        """Real forward and backward of a finished microbatch along its route."""
        if not result.ok or (self._struck_this_iteration and not self.config.within_iteration):
            return
        for s in mb.route.stages:
            self._reached[s] += 1
        loss = self.learner.compute_grad(list(mb.route.stages), accumulate=True)
        if loss is not None:
            self._losses.append(loss)

    def iteration_finished(self, ex: PipelineExecutor, stats: IterationStats) -> Generator:
        """Step the iteration's gradients (or discard them, see the module docstring)."""
        rec = self.world.recorder
        lost_work = (self._struck_this_iteration if not self.config.within_iteration
                     else self.step != self._iteration_step)  # a rollback
        stepped = [s for s in range(self.num_stages) if self._reached[s] > 0 and s not in self.lost]
        if lost_work or not stepped:
            rec.event("iteration_lost", iteration=stats.iteration)
            ex.discard_since(stats.start_s, "iteration_lost")
            return
        if not self.timing_only:
            with torch.no_grad():
                for s in stepped:  # mean over the microbatches that reached it = DP average
                    for p in self.learner.groups[s].params:
                        p.grad.div_(self._reached[s])
            for s in stepped:
                self.grad_norms[s] = self.clipped_grad_norm(s)
        if len(stepped) < self.num_stages:
            rec.event("stages_not_stepped", iteration=stats.iteration,
                      stages=[s for s in range(self.num_stages) if s not in stepped])
        self.learner.optimizer_step(stepped)
        self.step += 1
        self._step_time_s[self.step] = self._gradient_since_s = self.env.now
        loss = sum(self._losses) / len(self._losses) if self._losses else None
        self.ctx.report(self.step, loss, iteration_s=stats.iteration_s)
        yield from self.strategy.after_step(self)

    # -- helpers for strategies -------------------------------------------------------------

    def clipped_grad_norm(self, stage: int) -> float:
        """L2 norm of a stage's gradient after clipping at ``workload.grad_clip`` (as torch)."""
        norm = self.learner.stage_grad_norm(stage)
        clip = self.ctx.workload.config.grad_clip
        if clip is None:
            return norm
        return norm * min(1.0, clip / (norm + 1e-6))

    def stage_weights(self, stage: int) -> dict[str, torch.Tensor]:
        """Return a copy of one stage's weights, by stage-relative name."""
        return self.learner.get_stage_state(stage)

    def stage_state(self, stage: int) -> dict[str, Any]:
        """Return a copy of one stage's weights and optimizer state (schedule position included)."""
        if self.timing_only:
            return {}
        return {"weights": self.learner.get_stage_state(stage),
                "optimizer": self.learner.get_stage_optimizer_state(stage)}

    def load_stage_state(self, stage: int, state: dict[str, Any]) -> None:
        """Restore one stage exactly from :meth:`stage_state`."""
        if self.timing_only:
            return
        self.learner.set_stage_state(stage, state["weights"])
        self.learner.set_stage_optimizer_state(stage, state["optimizer"])

    def install_rebuilt(self, stage: int, weights: dict[str, torch.Tensor], lr_bump: float) -> None:
        """Install a rebuilt stage: new weights, a fresh optimizer state, a learning-rate bump."""
        if self.timing_only:
            return
        full = self.learner.get_stage_state(stage)
        missing = sorted(set(full) - set(weights))
        if missing:
            raise ValueError(f"rebuilt stage {stage}: no weights for {missing}")
        self.learner.set_stage_state(stage, weights)
        self.learner.reset_optimizer(stage)
        self.learner.set_stage_lr_scale(stage, lr_bump)

    def learner_layer_ranges(self) -> list[range]:
        """Block indices of each stage (from the timing model's layer count)."""
        n_layers = (self.learner.model.cfg.n_layers if not self.timing_only
                    else self.ctx.workload.timing.n_layers)
        return stage_layer_ranges(n_layers, self.num_stages,
                                  embedding_stage=self.config.embedding_stage)

    def data_state(self) -> Any:
        """Position of the training data stream (a checkpoint restores it too)."""
        return None if self.timing_only else self.learner.stream.state()

    def restore_data_state(self, state: Any) -> None:
        """Return the data stream to :meth:`data_state`."""
        if state is not None:
            self.learner.stream.set_state(state)

    def optimizer_nbytes(self, stage: int) -> float:
        """Bytes of one stage's optimizer state (Adam: two moments per parameter)."""
        return ADAM_STATE_FACTOR * self.param_nbytes[stage]

    def transfers(self, moves: Sequence[tuple[int, int, float, str]]) -> Generator:
        """Run ``(src, dst, nbytes, label)`` transfers at once and wait for all of them.

        A transfer cut by a node or link failure (the ``[faults]`` section) is sent again once
        both ends are up and a path exists: recovery needs the bytes, so it waits for them.
        Returns ``False`` if the run stopped before every transfer arrived.
        """
        sends = [self.env.process(self._send_until_delivered(src, dst, nbytes, label))
                 for src, dst, nbytes, label in moves if src != dst]
        if not sends:
            return True
        yield self.env.all_of(sends)
        return all(send.value for send in sends)

    def _send_until_delivered(self, src: int, dst: int, nbytes: float, label: str
                              ) -> Generator:
        network, nodes = self.world.network, self.world.nodes
        while not self.ctx.should_stop:
            try:
                yield network.transfer(src, dst, nbytes, label=label)
                return True
            except SimFailure as cut:
                self.world.recorder.event("transfer_cut", src=src, dst=dst, label=label,
                                          reason=str(cut))
            while not self.ctx.should_stop:  # wait until the transfer could go through
                down = [nodes[i].recovered_event() for i in (src, dst) if not nodes[i].is_up]
                if down:
                    yield self.env.any_of([*down, self.ctx.stopped])
                elif network.route(src, dst) is None:
                    yield self.env.any_of([network.link_change_event(), self.ctx.stopped])
                else:
                    break
        return False

    def background(self, moves: Sequence[tuple[int, int, float, str]], on_done: Any = None
                   ) -> None:
        """Start transfers without waiting; call ``on_done()`` when all have arrived."""
        def run() -> Generator:
            arrived = yield from self.transfers(moves)
            if arrived and on_done is not None:
                on_done()

        self.env.process(run())

    def evaluate(self) -> float | None:
        """Held-out loss through every stage in order; ``None`` while a stage is lost."""
        if self.lost or self.timing_only:
            return None
        return self.learner.eval_loss(self.ctx.run.eval_batches)
