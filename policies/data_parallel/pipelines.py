"""Data parallelism over pipelines (DP x PP): every worker is one replica of one pipeline stage.

NoLoCo's setting (and DiPaCo's): the model is cut into ``S`` stages of consecutive blocks, each
stage has ``R`` replicas, and node ``s·R + r`` holds replica ``r`` of stage ``s`` (its own
weights, its own optimizer). One *inner step* of every worker is one pipeline iteration: each
data replica (the replicas of stage 0) sends ``M`` microbatches through the stages, and every
replica steps its stage with the gradient its microbatches left there. A data-parallel method's
outer step then acts per *stage group* (the R replicas of one stage, on that stage's weights):
DiLoCo all-reduces each stage's outer gradient among its replicas, NoLoCo pairs replicas of the
same stage. Nothing is ever exchanged between stages except activations and their gradients.

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

Simplification (stated): an iteration starts when every live worker has finished its previous
one and its outer step, i.e. a barrier per inner step. In the reference a replica waits only for
the replicas it receives from; under random routing those mix every replica within a few samples,
so the barrier differs from it by the pipeline's fill and drain at iteration boundaries. Outer
steps themselves wait only for the stage group's members (DiLoCo) or the pair partner (NoLoCo).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
import torch

from policies.pipeline.executor import (
    ExecutorConfig,
    IterationStats,
    Microbatch,
    MicrobatchResult,
    PipelineExecutor,
    PipelineHooks,
    Route,
    StagePlacement,
)
from sim.errors import FieldError, ScenarioError

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


class StageReplica:
    """Worker (s, r)'s learner as a data-parallel policy sees it: stage s of column r.

    ``get_flat``/``set_flat`` read and write only this stage's weights; ``reset_optimizer`` and
    the schedule position are this replica's own. Training happens in the pipeline iteration
    (:class:`PipelinedWorkers`), never by this object alone.
    """

    def __init__(self, column: Any, stage: int) -> None:
        self.column = column
        self.stage = stage

    def get_flat(self) -> torch.Tensor:
        """Return the replica's stage weights as a float32 1-D vector."""
        return self.column.get_stage_flat(self.stage)

    def set_flat(self, flat: torch.Tensor) -> None:
        """Overwrite this replica's stage weights."""
        self.column.set_stage_flat(self.stage, flat)

    def reset_optimizer(self) -> None:
        """Fresh optimizer moments for this replica's stage (schedule position kept)."""
        self.column.reset_optimizer(self.stage)

    @property
    def step(self) -> int:
        """Optimizer steps this replica's stage has taken (its schedule position)."""
        return int(self.column.groups[self.stage].step_count)

    def set_schedule_step(self, step: int) -> None:
        """Move this replica's learning-rate schedule to ``step``."""
        self.column.groups[self.stage].step_count = int(step)

    def train_step(self) -> float:
        """Not available: a stage replica trains only inside a pipeline iteration."""
        raise RuntimeError("a stage replica trains only inside its pipeline iteration")


class PipelinedWorkers(PipelineHooks):
    """The S x R workers of a data-parallel method over pipelines, and their inner steps.

    Parameters
    ----------
    ctx : the run context (world, workload, run options).
    config : an :class:`OverPipelines` config.
    policy_name : for error messages.
    """

    def __init__(self, ctx: Any, config: OverPipelines, policy_name: str) -> None:
        from policies.pipeline.methods import workload_costs

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
        self.completed = -1                     # last finished iteration
        self._arrived: dict[int, set[int]] = {}
        self._done: dict[int, simpy.Event] = {}
        self._running = False
        self.visits: dict[int, int] = {}
        self.losses: dict[int, list[float]] = {}
        self._finished: list[Microbatch] = []
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
        column = self.columns[self.replica_of(node_id)]
        return column if self.timing_only else StageReplica(column, self.stage_of(node_id))

    def stage_nbytes(self, stage: int) -> float:
        """Bytes of one replica's weights (equally, outer gradient) of ``stage``."""
        return float(self.costs.grad_nbytes[stage])

    def microbatches_of(self, iteration: int) -> list[Microbatch]:
        """Iteration ``iteration``'s microbatches: M per data replica, routed by the routing."""
        S, R, M = self.num_stages, self.replicas, self.microbatches
        out = []
        for r in range(R):
            for m in range(M):
                replicas = replica_route(self.seed, iteration * M + m, r, S, R, self.routing)
                nodes = tuple(self.node_of(s, q) for s, q in enumerate(replicas))
                out.append(Microbatch(index=r * M + m,
                                      route=Route(stages=tuple(range(S)), nodes=nodes)))
        return out

    # -- the inner step: a pipeline iteration ------------------------------------------------

    def step(self, node: Any) -> Generator:
        """Worker ``node``'s next inner step; returns the mean loss of microbatches it ended.

        A generator. The iteration starts when every live worker has asked for it; raises
        :class:`~sim.errors.NodeFailure` if the node fails while waiting.
        """
        from policies.data_parallel.common import wait_or_fail

        k = self.completed + 1
        done = self._done.setdefault(k, simpy.Event(self.world.env))
        self._arrived.setdefault(k, set()).add(node.id)
        self._try_start()
        yield from wait_or_fail(node, done)
        losses = self.losses.get(node.id)
        return sum(losses) / len(losses) if losses else None

    def _watch(self, node: Any) -> Generator:
        while True:
            yield node.failed_event()
            for arrived in self._arrived.values():
                arrived.discard(node.id)
            self._try_start()

    def _try_start(self) -> None:
        k = self.completed + 1
        if self._running or k not in self._arrived:
            return
        live = {n.id for n in self.world.nodes if n.is_up}
        if not live or not live <= self._arrived[k]:
            return
        self._running = True
        self.world.env.process(self._iteration(k))

    def _iteration(self, k: int) -> Generator:
        stats = yield self.executor.run_iteration(k, self.microbatches_of(k))
        self.completed = k
        self._running = False
        del self._arrived[k]
        self._done.pop(k).succeed(stats)
        self._try_start()

    # -- the math (executor hooks) -----------------------------------------------------------

    def iteration_started(self, ex: PipelineExecutor, iteration: int) -> Generator | None:
        """Forget the last iteration's microbatches, visits and losses."""
        self.visits, self.losses, self._finished = {}, {}, []
        return None

    def microbatch_done(self, ex: PipelineExecutor, mb: Microbatch,
                        result: MicrobatchResult) -> None:
        """Count the visits of a microbatch that got through (its math runs at the end)."""
        if not result.ok:
            return
        self._finished.append(mb)
        for node in mb.route.nodes:
            self.visits[node] = self.visits.get(node, 0) + 1

    def iteration_finished(self, ex: PipelineExecutor, stats: IterationStats
                           ) -> Generator | None:
        """The real math, in microbatch order; then every visited replica steps its stage.

        Each finished microbatch runs forward through its route's replicas and backward
        retracing it, in index order (so the math does not depend on which microbatch happened
        to finish first: the same on every network model); each visited replica then steps
        with its gradient averaged over its visits.
        """
        if self.timing_only:
            return None
        from workloads.pipeline import compute_grad_across

        for column in self.columns:
            column.zero_grad()
        for mb in sorted(self._finished, key=lambda m: m.index):
            owners = [self.columns[self.replica_of(n)] for n in mb.route.nodes]
            loss = compute_grad_across(owners)
            for node in (mb.route.nodes[0], mb.route.nodes[-1]):   # data node and loss node
                self.losses.setdefault(node, []).append(loss)
        for node, count in sorted(self.visits.items()):
            column, s = self.columns[self.replica_of(node)], self.stage_of(node)
            column.set_stage_flat_grad(s, column.get_stage_flat_grad(s) / count)
            column.optimizer_step([s])
        return None

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
