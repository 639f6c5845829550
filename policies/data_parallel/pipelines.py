"""Data parallelism over pipelines (DP x PP): every worker is one replica of one pipeline stage.

NoLoCo's setting (and DiPaCo's): the model is cut into ``S`` stages of consecutive blocks, each
stage has ``R`` replicas, and node ``s·R + r`` holds replica ``r`` of stage ``s`` (its own
weights, its own optimizer). One *inner step* of every worker is one pipeline iteration: each
data replica (the replicas of stage 0) sends ``M`` microbatches through the stages, and every
replica ends the step holding its stage's gradient (the mean over its microbatches). The
data-parallel method's own rule then acts per *stage group* (the R replicas of one stage, on that
stage's weights; ``DataParallelPolicy.sync_groups``): DDP all-reduces the stage's gradient, the
DiLoCo family all-reduces each stage's outer gradient among its replicas, NoLoCo pairs replicas
of the same stage, gossip draws its graph over each stage's replicas. Nothing is ever exchanged
between stages except activations and their gradients. Methods whose steps cannot be a shared
pipeline iteration (PALSGD's per-worker skips, Poisson-clock gossip) refuse ``pipeline_stages``
(:class:`NotOverPipelines`).

Routing (:func:`replica_route`), per sample and stage boundary:

- ``"fixed"``: replica r of stage s sends to replica r of stage s+1 (R separate pipelines);
- ``"random"`` (NoLoCo's, as in the reference's ``dipaco_pipeline.py``): for sample number ``j``
  and boundary ``s`` (stage s -> s+1) every replica draws the same permutation ``perm`` of
  ``0..R-1`` from the shared seed, ``j`` and ``s``, and replica r sends to replica ``perm[r]``.
  For one (j, s) this is a bijection: every replica of stage s+1 receives exactly one
  microbatch of sample number j, so the load stays balanced. The backward pass retraces the
  route (the executor sends each gradient back along the nodes the activation came through, and
  autograd accumulates into exactly those replicas' stages,
  :func:`workloads.pipeline.compute_grad_across`).
  Evaluation uses fixed routes: model r is replica r of every stage.

Sample number ``j = k·M + m`` for microbatch m of inner step k (the reference counts samples
the same way; there a microbatch is one sample, here it is the workload's batch of samples).

Timing: one pipeline iteration is the :class:`~policies.pipeline.executor.PipelineExecutor` with
the loss on the last stage (where the head lives), no stage all-reduce, and ``M`` activation
slots per node. The head sits on the last stage; the embedding on stage 0.

Waiting (as the reference's ``dipaco_pipeline.py``: blocking ``recv`` from the one rank the
routing names, per sample, forward and backward; no barrier): each worker keeps its own
iteration count. Worker n *enters* iteration k when its policy asks for its next inner step
(after its previous iteration and its outer step, if one was due); a microbatch of iteration k
waits at n (before its forward there) until n has entered k. Worker n's iteration k ends when
every microbatch of k routed through n has passed its backward at n (or failed): it then holds
its stage's gradient, and its policy decides what to do with it (an optimizer step, an
all-reduce first, a mix with gossip neighbours). So a worker waits only for the replicas it
exchanges activations with and for whoever its policy's sync rule names (the stage group,
a pair partner, gossip neighbours), never for every live worker: one slow replica delays only
the workers whose microbatches go through it (under random routing, those spread it over a few
iterations). A policy passes its own step number as the iteration (``inner_step(..., step=)``),
so a worker that rejoins after a failure enters the iteration its sync group is at.

Math: a microbatch's real forward and backward run when its forward reaches the last stage
(every replica on its route has entered its iteration and none has finished it, so each holds
its iteration-k weights); the data replica draws its M batches when it enters the iteration, in
microbatch order, and a worker sums its microbatches' gradients in microbatch order, so the
math does not depend on the order microbatches happen to finish in.

Failures: a worker that fails leaves the pipeline (microbatches routed through it fail, as do
those that reach a worker already past their iteration) until its policy brings it back with
its next inner step. A microbatch cut after its backward passed a worker leaves its gradient
there if that worker's iteration had already ended (as in the reference, a worker steps once
its own backward is done); its compute is still counted lost by the executor.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
import torch

from policies.data_parallel.waiting import first_of, wait_or_fail
from policies.pipeline.executor import (
    ExecutorConfig,
    Microbatch,
    MicrobatchResult,
    PipelineExecutor,
    PipelineHooks,
    Route,
    StagePlacement,
)
from policies.pipeline.methods import workload_costs
from sim.errors import FieldError, NodeFailure, ScenarioError, SimFailure
from workloads.pipeline import compute_grad_across

ROUTINGS = ("fixed", "random")


@dataclass(frozen=True, kw_only=True)
class OverPipelines:
    """Fields a data-parallel method's config inherits to run over pipelines (DP x PP)."""

    pipeline_stages: int = 1
    """S, pipeline stages; every worker holds one stage. 1: plain data parallelism."""
    routing: str = "fixed"
    """'fixed' (replica r -> replica r) or 'random' (NoLoCo's seeded bijection per sample and
    stage boundary); used when ``pipeline_stages`` > 1."""
    pipeline_microbatches: int = 1
    """M, microbatches (each of ``workload.batch`` samples) each data replica sends per inner
    step; also the activation slots of every node."""

    def check_pipelines(self) -> None:
        """Raise ValueError naming the field if a pipeline field is not allowed."""
        if self.pipeline_stages < 1:
            raise FieldError("pipeline_stages", f"must be >= 1, got {self.pipeline_stages}")
        if self.routing not in ROUTINGS:
            raise FieldError("routing", f"got {self.routing!r}; allowed: {', '.join(ROUTINGS)}")
        if self.pipeline_microbatches < 1:
            raise FieldError("pipeline_microbatches", f"must be >= 1, got "
                             f"{self.pipeline_microbatches}")


@dataclass(frozen=True, kw_only=True)
class NotOverPipelines:
    """The ``pipeline_stages`` field of a method that cannot run over pipelines: it must be 1.

    A method refuses with the reason it is not defined there (``refuse_pipelines``), so the
    scenario error says why instead of calling the key unknown.
    """

    pipeline_stages: int = 1
    """Must be 1: this method does not run over pipelines (its docstring says why)."""

    def refuse_pipelines(self, reason: str) -> None:
        """Raise FieldError('pipeline_stages') with ``reason`` unless it is 1."""
        if self.pipeline_stages != 1:
            raise FieldError("pipeline_stages", f"must be 1 (got {self.pipeline_stages}): "
                             f"{reason}")


def boundary_permutation(seed: int, sample: int, boundary: int, replicas: int) -> np.ndarray:
    """``perm`` for sample number ``sample`` at stage boundary ``boundary`` (stage s -> s+1).

    Replica r of stage s sends to replica ``perm[r]`` of stage s+1. Every worker computes the
    same permutation from the shared ``seed``: no coordination message.
    """
    return np.random.default_rng([seed, sample, boundary]).permutation(replicas)


def replica_route(seed: int, sample: int, source: int, num_stages: int, replicas: int,
                  routing: str) -> tuple[int, ...]:
    """The replica a microbatch visits at each stage, starting at data replica ``source``.

    ``fixed``: ``(source,) * S``; ``random``: ``r_0 = source``, ``r_{s+1} = perm_{j,s}[r_s]``
    with ``perm_{j,s} = boundary_permutation(seed, sample, s, replicas)``.
    """
    if routing not in ROUTINGS:
        raise ValueError(f"routing: got {routing!r}; allowed: {', '.join(ROUTINGS)}")
    route = [source]
    for s in range(num_stages - 1):
        nxt = route[-1] if routing == "fixed" else int(
            boundary_permutation(seed, sample, s, replicas)[route[-1]])
        route.append(nxt)
    return tuple(route)


class IterationPassed(SimFailure):
    """A microbatch reached a worker that has already gone past the microbatch's iteration."""

    def __init__(self, node_id: int, iteration: int) -> None:
        super().__init__(node_id, iteration)
        self.message = f"node {node_id} is past iteration {iteration}"


class StageReplica:
    """Worker (s, r)'s learner as a data-parallel policy sees it: stage s of column r.

    ``get_flat``/``set_flat`` (and the ``_grad`` pair) read and write only this stage's weights
    (gradient); ``optimizer_step``, ``reset_optimizer`` and the schedule position are this
    replica's own. Its gradient comes from pipeline iterations (:class:`PipelinedWorkers`),
    never from this object alone.
    """

    def __init__(self, column: Any, stage: int) -> None:
        self.column = column
        self.stage = stage
        self.has_grad = False
        """Whether the stage holds a gradient to step with (no microbatch got through: no)."""

    def get_flat(self) -> torch.Tensor:
        """Return the replica's stage weights as a float32 1-D vector."""
        return self.column.get_stage_flat(self.stage)

    def set_flat(self, flat: torch.Tensor) -> None:
        """Overwrite this replica's stage weights."""
        self.column.set_stage_flat(self.stage, flat)

    def get_flat_grad(self) -> torch.Tensor:
        """Return the replica's stage gradient as a float32 1-D vector."""
        return self.column.get_stage_flat_grad(self.stage)

    def set_flat_grad(self, flat: torch.Tensor) -> None:
        """Overwrite this replica's stage gradient (it then counts as one to step with)."""
        self.column.set_stage_flat_grad(self.stage, flat)
        self.has_grad = True

    def optimizer_step(self) -> None:
        """Step this stage's optimizer with its gradient (nothing if it has none)."""
        if self.has_grad:
            self.column.optimizer_step([self.stage])
        self.has_grad = False

    def reset_optimizer(self) -> None:
        """Fresh optimizer moments for this replica's stage (schedule position kept)."""
        self.column.reset_optimizer(self.stage)

    @property
    def model(self) -> torch.nn.Module:
        """The stage's module (its parameters in ``get_flat`` order)."""
        return self.column.model.stages[self.stage]

    @property
    def step(self) -> int:
        """Optimizer steps this replica's stage has taken (its schedule position)."""
        return int(self.column.groups[self.stage].step_count)

    def set_schedule_step(self, step: int) -> None:
        """Move this replica's learning-rate schedule to ``step``."""
        self.column.groups[self.stage].step_count = int(step)

    def snapshot(self) -> dict:
        """Return the stage weights and optimizer state (what a DDP rejoiner copies)."""
        return {"flat": self.get_flat().clone(),
                "optimizer": self.column.get_stage_optimizer_state(self.stage)}

    def restore(self, state: dict) -> None:
        """Take weights and optimizer state from :meth:`snapshot`."""
        self.set_flat(state["flat"])
        self.column.set_stage_optimizer_state(self.stage, state["optimizer"])

    def compute_grad(self) -> float:
        """Not available: a stage replica's gradient comes from its pipeline iteration."""
        raise RuntimeError("a stage replica's gradient comes only from its pipeline iteration")

    train_step = compute_grad


class PipelinedWorkers(PipelineHooks):
    """The S x R workers of a data-parallel method over pipelines, and their inner steps.

    Parameters
    ----------
    ctx : the run context (world, workload, run options).
    config : an :class:`OverPipelines` config.
    policy_name : for error messages.
    """

    def __init__(self, ctx: Any, config: OverPipelines, policy_name: str) -> None:
        world, wl = ctx.world, ctx.workload
        S = config.pipeline_stages
        n = world.num_nodes
        if n % S or n // S < 2:
            raise ScenarioError("policy.pipeline_stages",
                                f"{policy_name} over {S} stages needs cluster.nodes = {S} x R "
                                f"with R >= 2 replicas per stage, got {n} nodes")
        if not wl.is_language_model:
            raise ScenarioError("workload.learner", "data parallelism over pipelines needs a "
                                "decoder (llama) workload")
        self.ctx, self.world = ctx, world
        self.num_stages, self.replicas = S, n // S
        self.routing = config.routing
        self.microbatches = config.pipeline_microbatches
        self.timing_only = bool(ctx.run.timing_only)
        R = self.replicas
        self.columns = [wl.make_pipeline_learner(S, rank=r, head_stage="last",
                                                 timing_only=self.timing_only)
                        for r in range(R)]
        self._learners = [
            wl.make_pipeline_learner(S, rank=self.replica_of(i), head_stage="last",
                                     timing_only=True) if self.timing_only
            else StageReplica(self.columns[self.replica_of(i)], self.stage_of(i))
            for i in range(n)]
        self.costs = workload_costs(wl, world.nodes[0].device, S, head_stage="last")
        self.placement = StagePlacement([[self.node_of(s, r) for r in range(R)]
                                         for s in range(S)])
        self.executor = PipelineExecutor(
            world, self.placement, self.costs,
            ExecutorConfig(memory_microbatches=self.microbatches, allreduce=False,
                           loss_on_last_stage=True),
            hooks=self)
        for node in world.nodes:        # weights, gradients, Adam moments of its stage
            need = 4 * self.stage_nbytes(self.stage_of(node.id))
            if not node.allocate(need):
                raise ScenarioError("cluster.memory", f"a node has {node.memory_bytes:.4g} B but "
                                    f"a stage replica needs {need:.4g} B")
        self.seed = int(world.policy_rng("pipelines", "routing").integers(2**31))
        # per worker: the iteration it is in (absent: not in the pipeline: not started, or
        # failed and not back), its microbatches still to pass its backward, its done event,
        # its gradient of each microbatch so far, the losses of microbatches it ended
        self.entered: dict[int, int] = {}
        self._pending: dict[int, set[int]] = {}
        self._done: dict[int, simpy.Event] = {}
        self._grads: dict[int, dict[int, torch.Tensor]] = {}
        self._losses: dict[int, list[float]] = {}
        self._entered_s: dict[int, float] = {}
        self._gates: dict[int, dict[int, simpy.Event]] = {}   # node -> iteration -> entry
        # per iteration: its microbatches (while its executor process runs), those that ended
        self._iterations: dict[int, list[Microbatch]] = {}
        self._ended: dict[int, set[int]] = {}
        self._finished: set[int] = set()
        self._batches: dict[int, Any] = {}                    # microbatch index -> its batch
        for node in world.nodes:
            world.env.process(self._watch(node))

    # -- layout ----------------------------------------------------------------------------

    def node_of(self, stage: int, replica: int) -> int:
        """Node id of replica ``replica`` of stage ``stage``."""
        return stage * self.replicas + replica

    def stage_of(self, node_id: int) -> int:
        """Stage held by ``node_id``."""
        return node_id // self.replicas

    def replica_of(self, node_id: int) -> int:
        """Replica index of ``node_id`` within its stage."""
        return node_id % self.replicas

    def stage_groups(self) -> list[list[int]]:
        """The node ids of each stage's replicas: the groups outer steps act on."""
        return [list(nodes) for nodes in self.placement.replicas]

    def learner(self, node_id: int) -> Any:
        """Worker ``node_id``'s learner view (its stage of its column)."""
        return self._learners[node_id]

    def stage_nbytes(self, stage: int) -> float:
        """Bytes of one replica's weights (equally, outer gradient) of ``stage``."""
        return float(self.costs.grad_nbytes[stage])

    def iteration_of(self, index: int) -> int:
        """The iteration of the microbatch numbered ``index`` (numbers are unique per run)."""
        return index // (self.replicas * self.microbatches)

    def microbatches_of(self, iteration: int) -> list[Microbatch]:
        """Iteration ``iteration``'s microbatches: M per data replica, routed by the routing.

        Microbatch m of data replica r is number ``(k·R + r)·M + m`` (unique in the run) and
        sample number ``j = k·M + m`` (the permutations' index).
        """
        S, R, M = self.num_stages, self.replicas, self.microbatches
        out = []
        for r in range(R):
            for m in range(M):
                replicas = replica_route(self.seed, iteration * M + m, r, S, R, self.routing)
                nodes = tuple(self.node_of(s, q) for s, q in enumerate(replicas))
                out.append(Microbatch(index=(iteration * R + r) * M + m,
                                      route=Route(stages=tuple(range(S)), nodes=nodes)))
        return out

    # -- a worker's inner step: its part of a pipeline iteration -------------------------------

    def gradient(self, node: Any, iteration: int | None = None) -> Generator:
        """Worker ``node``'s part of iteration ``iteration``; returns its microbatches' loss.

        A generator. Default iteration: the one after the worker's last. When it returns, the
        worker's learner holds its stage's gradient, the mean over the microbatches that went
        through it (``has_grad`` False if none did); the loss is the mean over the microbatches
        it started (data replica) or ended (loss on the last stage), None if none. Raises
        :class:`~sim.errors.NodeFailure` if the node fails first.
        """
        n = node.id
        if iteration is None:
            iteration = self.entered.get(n, -1) + 1
        if not node.is_up:
            raise NodeFailure(n, self.world.now)
        self._enter(n, iteration)
        yield from wait_or_fail(node, self._done[n])
        self.world.recorder.metric("stage_iteration_s", self.world.now - self._entered_s[n],
                                   node=n, step=iteration)
        losses = self._losses.pop(n, [])
        return sum(losses) / len(losses) if losses else None

    def _enter(self, n: int, k: int) -> None:
        """Worker n enters iteration k: its microbatches of k may pass it from now on."""
        self.entered[n] = k
        self._entered_s[n] = self.world.now
        self._done[n] = simpy.Event(self.world.env)
        self._grads[n], self._losses[n] = {}, []
        if k not in self._iterations and k not in self._finished:
            self._iterations[k] = self.microbatches_of(k)
            self._ended[k] = set()
            self.world.env.process(self._run(k))
        ended = self._ended.get(k, set())
        mine = [mb for mb in self._iterations.get(k, []) if n in mb.route.nodes
                and mb.index not in ended]
        self._pending[n] = {mb.index for mb in mine}
        if not self.timing_only and self.stage_of(n) == 0:   # draw the data, in index order
            column = self.columns[self.replica_of(n)]
            for mb in mine:
                self._batches[mb.index] = column.next_batch()
        for kk in sorted(self._gates.get(n, {})):
            if kk <= k:
                self._gates[n].pop(kk).succeed()
        self._check_done(n)

    def _run(self, k: int) -> Generator:
        yield self.executor.run_iteration(k, self._iterations[k])
        del self._iterations[k], self._ended[k]
        self._finished.add(k)

    def _watch(self, node: Any) -> Generator:
        """A failed worker leaves the pipeline; microbatches waiting for it fail."""
        while True:
            yield node.failed_event()
            self.entered.pop(node.id, None)
            self._pending.pop(node.id, None)
            self._grads.pop(node.id, None)
            for gate in self._gates.pop(node.id, {}).values():
                gate.succeed()

    def _check_done(self, n: int) -> None:
        """End worker n's iteration if no microbatch of it is left to pass n's backward."""
        done = self._done.get(n)
        if n not in self.entered or self._pending.get(n) or done is None or done.triggered:
            return
        grads = self._grads.pop(n, {})
        learner = self._learners[n]
        if not self.timing_only:
            if grads:
                learner.set_flat_grad(sum(grads[i] for i in sorted(grads)) / len(grads))
            else:                                   # no microbatch got through this worker
                learner.set_flat_grad(torch.zeros_like(learner.get_flat()))
                learner.has_grad = False
        done.succeed()

    def _release(self, n: int, index: int, *, keep: bool) -> None:
        """Microbatch ``index`` is done with worker n (its gradient kept there or not)."""
        if self.entered.get(n) != self.iteration_of(index):
            return
        pending = self._pending.get(n)
        if pending is None or index not in pending:
            return
        pending.discard(index)
        if not keep:
            self._grads.get(n, {}).pop(index, None)
        self._check_done(n)

    # -- executor hooks ------------------------------------------------------------------------

    def node_ready(self, ex: PipelineExecutor, mb: Microbatch, position: int) -> Generator:
        """Wait until the route's worker here has entered the microbatch's iteration.

        Fails the microbatch if that worker is down or out of the pipeline
        (:class:`~sim.errors.NodeFailure`) or already past the iteration
        (:class:`IterationPassed`).
        """
        n, k = mb.route.nodes[position], self.iteration_of(mb.index)
        node = self.world.nodes[n]
        while True:
            current = self.entered.get(n)
            if not node.is_up or (current is None and n in self._done):
                raise NodeFailure(n, self.world.now)
            if current is not None and current > k:
                raise IterationPassed(n, k)
            if current == k:
                return
            gates = self._gates.setdefault(n, {})
            gate = gates.get(k) or gates.setdefault(k, simpy.Event(self.world.env))
            yield first_of(self.world.env, gate, node.failed_event())

    def task_done(self, ex: PipelineExecutor, mb: Microbatch, position: int, phase: str) -> None:
        """Forward reached the last stage: the math; a backward: release that worker."""
        nodes = mb.route.nodes
        if phase == "forward" and position == len(nodes) - 1:
            self._math(mb)
        elif phase == "backward":
            self._release(nodes[position], mb.index, keep=True)

    def microbatch_done(self, ex: PipelineExecutor, mb: Microbatch,
                        result: MicrobatchResult) -> None:
        """A microbatch ended: no worker waits for it any more (a failed one leaves no grad)."""
        k = self.iteration_of(mb.index)
        self._ended[k].add(mb.index)
        self._batches.pop(mb.index, None)
        for n in mb.route.nodes:
            self._release(n, mb.index, keep=result.ok)

    def _math(self, mb: Microbatch) -> None:
        """Forward through the route's replicas and backward retracing it; keep each share."""
        if self.timing_only:
            return
        nodes = mb.route.nodes
        owners = [self.columns[self.replica_of(n)] for n in nodes]
        for s, column in enumerate(owners):
            column.set_stage_flat_grad(s, torch.zeros_like(column.get_stage_flat(s)))
        loss = compute_grad_across(owners, batch=self._batches.pop(mb.index))
        for s, (n, column) in enumerate(zip(nodes, owners)):
            self._grads.setdefault(n, {})[mb.index] = column.get_stage_flat_grad(s)
        for n in {nodes[0], nodes[-1]}:                      # data node and loss node
            self._losses.setdefault(n, []).append(loss)

    # -- evaluation --------------------------------------------------------------------------

    def column_losses(self, eval_batches: int | None) -> dict[int, float]:
        """Held-out loss of model r (replica r of every stage: a fixed route), by data node."""
        return {self.node_of(0, r): column.eval_loss(eval_batches)
                for r, column in enumerate(self.columns)}

    def evaluate_stage_flats(self, flats: list[torch.Tensor], eval_batches: int | None) -> float:
        """Held-out loss of the model whose stage s has weights ``flats[s]`` (column 0 borrowed)."""
        column = self.columns[0]
        saved = column.get_flat()
        column.set_flat(torch.cat(flats))
        try:
            return float(column.eval_loss(eval_batches))
        finally:
            column.set_flat(saved)
