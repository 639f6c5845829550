"""The pipeline policies: ``full_pipeline``, ``random_skip`` (DT-FM-skip) and ``skippipe``.

All three share the setup (:class:`PipelinePolicy`): stage costs from the workload's timing model
and the nodes' device, hop costs from the world's network, a node-to-stage allocation found by
:func:`~policies.pipeline.allocation.search_allocation`, and a
:class:`~policies.pipeline.executor.PipelineExecutor` that runs the iterations. They differ only
in how an iteration's microbatches are routed (:meth:`PipelinePolicy.plan_iteration`):

- ``full_pipeline``: every microbatch through all stages of a fixed pipeline;
- ``random_skip``: random paths with the skip ratio that keep SkipPipe's caps and memory,
  redrawn every iteration;
- ``skippipe``: paths from SkipPipe's CBS over A*, planned once before training starts
  (``collision_aware`` switches the time-collision part on or off).

With ``run.timing_only`` no math runs; otherwise each finished microbatch trains a stage-split
decoder through its path (:mod:`~policies.pipeline.training`) and :meth:`evaluate` reports the
held-out loss through all stages (and records ``eval_loss_half``: through :func:`half_path`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.pipeline.allocation import Allocation, genetic_allocation, search_allocation
from policies.pipeline.cbs import CBSConfig, Schedule
from policies.pipeline.costs import HOP_COSTS, NodeCosts, hop_costs
from policies.pipeline.executor import (
    ExecutorConfig,
    Microbatch,
    MicrobatchCosts,
    PipelineExecutor,
    PipelineHooks,
    Route,
    StagePlacement,
)
from policies.pipeline.paths import PathRules
from policies.pipeline.schedules import (
    RoutedMicrobatch,
    agent_microbatches,
    full_pipeline_microbatches,
    make_agents,
    predict_makespan,
    random_skip_routes,
    skippipe_routes,
    stage_of_nodes,
)
from policies.pipeline.training import TrainingHooks, half_path
from sim.errors import FieldError, ScenarioError
from sim.network.forecast import MessageForecast
from sim.policy import Policy, RunContext, register_policy
from workloads.llama import stage_layer_ranges

ALLOCATION_SEARCHES = ("hill_climbing", "genetic", "best_of_both")
"""How the node-to-stage allocation is searched (``PipelineConfig.allocation_search``)."""


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Parameters every pipeline method shares.

    stage_sizes:
        Nodes per stage; stage 0's nodes are the data nodes. Their sum must not exceed the
        cluster's nodes (the rest stay idle, e.g. as spares). Reference: (5, 3, 3, 3, 3, 3).
    microbatches_per_data_node:
        Microbatches each data node sends per iteration (each of ``workload.batch`` samples).
    memory_microbatches:
        ``m``: microbatches whose activations a node holds at once.
    hop_overhead_s:
        Fixed seconds per activation hop on top of the network (SkipPipe's emulator: 0.35 s for
        host <-> device copies); also charged by the schedulers' hop cost.
    allreduce:
        Average each stage's gradient among its replicas after every iteration (reported
        separately as ``allreduce_time_s``; published iteration times exclude it).
    iterations:
        Iterations to run (``None``: until the run's stop condition).
    allocation_restarts:
        Random restarts of the allocation search.
    allocation_search:
        ``"hill_climbing"`` (random-restart pairwise swaps), ``"genetic"`` (DT-FM's genetic
        search with SkipPipe's settings: population 200, 8000 trials) or ``"best_of_both"``
        (both; the cheaper wins). On the 20-node reference hill climbing is 3.3% cheaper on
        the mean of 5 seeds but not at every seed (``benchmarks/bench_allocation_search.py``).
    dp_weight:
        Weight of the data-parallel term in the allocation cost (DT-FM's cost: pipeline loop +
        weight x stage rings, both priced with the per-microbatch hop matrix). ``None``: the
        authors' factor, one stage's gradient bytes / (activation bytes x microbatches per
        data node): 268 MB / (32 MiB x 6) = 1.33 in the authors' reference, 1.005 with
        dtsim's llama-350m timing (202 MB per 4-layer stage). 0: pipeline cost only.
    """

    stage_sizes: tuple[int, ...] = (5, 3, 3, 3, 3, 3)
    microbatches_per_data_node: int = 6
    memory_microbatches: int = 3
    hop_overhead_s: float = 0.35
    allreduce: bool = True
    iterations: int | None = None
    allocation_restarts: int = 8
    allocation_search: str = "hill_climbing"
    dp_weight: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_sizes", tuple(int(s) for s in self.stage_sizes))
        if len(self.stage_sizes) < 1 or min(self.stage_sizes) < 1:
            raise FieldError("stage_sizes", f"every stage needs >= 1 node, got {self.stage_sizes}")
        for name in ("microbatches_per_data_node", "memory_microbatches", "allocation_restarts"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.hop_overhead_s < 0:
            raise FieldError("hop_overhead_s", f"must be >= 0, got {self.hop_overhead_s}")
        if self.dp_weight is not None and not self.dp_weight >= 0:
            raise FieldError("dp_weight", f"must be >= 0 or None, got {self.dp_weight}")
        if self.iterations is not None and self.iterations < 1:
            raise FieldError("iterations", f"must be >= 1 or None, got {self.iterations}")
        if self.allocation_search not in ALLOCATION_SEARCHES:
            raise FieldError("allocation_search", f"{self.allocation_search!r}; allowed "
                             f"{list(ALLOCATION_SEARCHES)}")


@dataclass(frozen=True, kw_only=True)
class SkipConfig(PipelineConfig):
    """Pipeline parameters plus SkipPipe's path rules.

    skip_ratio:
        Fraction of stages a path skips: paths visit ``round(S (1 - skip_ratio))`` stages.
    max_swaps, max_swap_distance, max_jump_skip:
        Path rules (see :class:`~policies.pipeline.paths.PathRules`).
    paths_per_data_node:
        Paths (agents) per data node; microbatch ``j`` of a node takes path ``j mod A``.
        ``None``: ``m`` (the authors' default); 1: their coarsened variant.
    pipelined:
        A path's microbatches flow along it together, at most ``m`` in flight per node (the
        authors' emulator and trainer). False: one after another (an ablation).
    """

    skip_ratio: float = 1 / 3
    max_swaps: int = 2
    max_swap_distance: int = 2
    max_jump_skip: int = 4
    paths_per_data_node: int | None = None
    pipelined: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rules()  # validates the rule fields
        if self.paths_per_data_node is not None and self.paths_per_data_node < 1:
            raise FieldError("paths_per_data_node", f"must be >= 1 or None, "
                             f"got {self.paths_per_data_node}")

    @property
    def paths(self) -> int:
        """Paths per data node: ``paths_per_data_node``, or ``m``."""
        return self.paths_per_data_node or self.memory_microbatches

    def rules(self) -> PathRules:
        """The path rules these parameters describe."""
        return PathRules.for_skip_ratio(
            len(self.stage_sizes), self.skip_ratio, max_swaps=self.max_swaps,
            max_swap_distance=self.max_swap_distance, max_jump_skip=self.max_jump_skip)


@dataclass(frozen=True, kw_only=True)
class RandomSkipConfig(SkipConfig):
    """DT-FM-skip: ``resample`` draws new random paths every iteration (else once)."""

    resample: bool = True


@dataclass(frozen=True, kw_only=True)
class SkipPipeConfig(SkipConfig):
    """SkipPipe: CBS knobs (see :class:`~policies.pipeline.cbs.CBSConfig`).

    collision_aware:
        Resolve time collisions and choose by predicted iteration time.
    max_expansions, branching, max_candidates:
        Limits of the conflict search.
    hop_costs:
        How the path planner (A*, CBS and the timeline that ranks its candidates) prices a
        hop. ``"transport"`` (default): with the transport the scenario runs; under ``fluid``
        that is SkipPipe's own price (latency + bytes / bandwidth + overhead), under ``tcp``
        the tcp transport's closed forms (slow start on cold connections, warm and
        idle-restarted connections, the window cap; :mod:`sim.network.forecast`), and the
        collision-aware planner also weighs the authors' plan by that prediction.
        ``"fluid"``: SkipPipe's price whatever the transport (the authors' planner; under
        ``tcp`` an ablation). The node-to-stage allocation keeps DT-FM's fluid price in both.
    """

    collision_aware: bool = True
    max_expansions: int = 300
    branching: int = 3
    max_candidates: int = 24
    hop_costs: str = "transport"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hop_costs not in HOP_COSTS:
            raise FieldError("hop_costs", f"{self.hop_costs!r}; allowed {list(HOP_COSTS)}")
        self.cbs()

    def cbs(self) -> CBSConfig:
        """The CBS configuration."""
        return CBSConfig(collision_aware=self.collision_aware,
                         max_expansions=self.max_expansions, branching=self.branching,
                         max_candidates=self.max_candidates)


def check_decoder(workload: Any) -> None:
    """A pipeline splits a decoder into stages: refuse a classifier learner before any run.

    Raises :class:`ScenarioError` naming ``workload.learner`` (the workload builds only decoder
    learners for pipelines, :meth:`workloads.Workload.make_pipeline_learner`).
    """
    if not workload.is_decoder:
        raise ScenarioError("workload.learner", "pipeline methods need a decoder learner "
                            "('tiny-llama', 'llama' or a LLaMA preset), not the classifier "
                            f"{workload.learner!r}")


def workload_costs(workload: Any, device: Any, num_stages: int,
                   head_stage: str = "first", *, embedding_stage: bool = False) -> MicrobatchCosts:
    """Per-stage seconds and message sizes of one microbatch of ``workload`` on ``device``.

    The timing model prices each stage's blocks; the head (de-embedding + loss) is the loss task
    on the stage ``head_stage`` names, whose gradient bytes include it. ``embedding_stage``:
    stage 0 holds no block (its forward and backward take no time).
    """
    timing, wcfg = workload.timing, workload.config
    layers = stage_layer_ranges(timing.n_layers, num_stages, embedding_stage=embedding_stage)
    fwd = tuple(timing.stage_seconds(device, wcfg.batch, wcfg.seq, num_layers=len(r), phase="fwd")
                for r in layers)
    bwd = tuple(timing.stage_seconds(device, wcfg.batch, wcfg.seq, num_layers=len(r), phase="bwd")
                for r in layers)
    return MicrobatchCosts(
        forward_s=fwd,
        backward_s=bwd,
        loss_s=timing.head_seconds(device, wcfg.batch, wcfg.seq, "fwd_bwd"),
        activation_nbytes=float(timing.activation_bytes(wcfg.batch, wcfg.seq)),
        grad_nbytes=tuple(float(b) for b in
                          timing.stage_param_bytes(num_stages, head_stage=head_stage,
                                                   embedding_stage=embedding_stage)),
    )


class PipelinePolicy(Policy):
    """Shared setup and iteration loop; subclasses route the microbatches."""

    Config = PipelineConfig

    # set by setup()
    allocation: Allocation
    executor: PipelineExecutor
    node_costs: NodeCosts
    learner: Any = None
    hooks: PipelineHooks

    @property
    def path_hop_costs(self) -> str:
        """How :attr:`node_costs` prices hops for path planning (``HOP_COSTS``)."""
        return "fluid"

    def make_hooks(self, learner: Any, streams: dict[int, Any] | None = None) -> PipelineHooks:
        """The executor's hooks: real training when a learner is given (override to extend)."""
        return TrainingHooks(learner, streams) if learner is not None else PipelineHooks()

    def check(self, scenario: Any) -> None:
        """The learner is a decoder and the stages fit on the cluster (before any world)."""
        check_decoder(scenario.workload)
        self._check_shape(scenario.cluster.num_nodes)

    def _check_shape(self, num_nodes: int) -> None:
        sizes = list(self.config.stage_sizes)
        if sum(sizes) > num_nodes:
            raise FieldError("stage_sizes", f"{sizes} needs {sum(sizes)} nodes; "
                             f"the cluster has {num_nodes}")

    def setup(self, ctx: RunContext) -> None:
        """Costs, allocation, learner and executor; then the method's own planning."""
        cfg, world = self.config, ctx.world
        num_stages = len(cfg.stage_sizes)
        self._check_shape(world.num_nodes)
        costs = workload_costs(ctx.workload, world.nodes[0].device, num_stages)
        forecast = MessageForecast.of_network(world.network, world.num_nodes)
        # DT-FM's allocation cost prices hops as the authors do under every transport: its
        # data-parallel term scales the per-microbatch hop by their FACTOR, calibrated on it
        hop_s, _ = hop_costs(forecast, costs.activation_nbytes, cfg.hop_overhead_s,
                             model="fluid")
        self.authors_hop_s = hop_s
        dp_weight = cfg.dp_weight
        if dp_weight is None:   # the authors' FACTOR (create_schedule.py)
            dp_weight = max(costs.grad_nbytes[1:], default=costs.grad_nbytes[0]) / (
                costs.activation_nbytes * cfg.microbatches_per_data_node)
        rng = world.policy_rng("pipeline", "allocation")
        found = []
        if cfg.allocation_search in ("hill_climbing", "best_of_both"):
            found.append(search_allocation(hop_s, cfg.stage_sizes, rng,
                                           restarts=cfg.allocation_restarts, dp_weight=dp_weight))
        if cfg.allocation_search in ("genetic", "best_of_both"):
            found.append(genetic_allocation(hop_s, cfg.stage_sizes, rng, dp_weight=dp_weight))
        self.allocation = min(found, key=lambda a: a.cost_s)
        self.dp_weight = dp_weight
        stage_of = stage_of_nodes(self.allocation.replicas, world.num_nodes)
        forward_s = np.array([costs.forward_s[max(s, 0)] / node.speed
                              for s, node in zip(stage_of, world.nodes)])
        path_hop_s, transport = hop_costs(forecast, costs.activation_nbytes,
                                          cfg.hop_overhead_s, model=self.path_hop_costs)
        self.node_costs = NodeCosts(
            hop_s=path_hop_s, forward_s=forward_s,
            backward_factor=costs.backward_s[0] / costs.forward_s[0] if costs.forward_s[0] else 1.5,
            loss_factor=costs.loss_s / costs.forward_s[0] if costs.forward_s[0] else 0.25,
            transport=transport)
        self.stage_of = stage_of
        self.learner, streams = None, None
        if not ctx.run.timing_only:
            self.learner = ctx.workload.make_pipeline_learner(num_stages, head_stage="first")
            streams = {d: ctx.workload.make_stream(d) for d in self.allocation.replicas[0]}
        self.hooks = self.make_hooks(self.learner, streams)
        self.executor = PipelineExecutor(
            world, StagePlacement(self.allocation.replicas), costs,
            ExecutorConfig(memory_microbatches=cfg.memory_microbatches,
                           hop_overhead_s=cfg.hop_overhead_s, allreduce=cfg.allreduce),
            self.hooks)
        self.prepare(ctx)

    def prepare(self, ctx: RunContext) -> None:
        """Method-specific planning before simulated time starts."""

    def plan_iteration(self, ctx: RunContext, iteration: int) -> list[RoutedMicrobatch]:
        """The microbatches of ``iteration`` and their routes."""
        raise NotImplementedError

    def coordinator(self, ctx: RunContext) -> Generator:
        """Run iterations one after another until the run stops."""
        iterations = self.config.iterations
        iteration = 0
        while not ctx.should_stop and (iterations is None or iteration < iterations):
            microbatches = [
                Microbatch(index=mb.index, route=Route(stages=mb.stages, nodes=mb.nodes),
                           chain=mb.chain)
                for mb in self.plan_iteration(ctx, iteration)
            ]
            stats = yield self.executor.run_iteration(iteration, microbatches)
            iteration += 1
            loss = getattr(self.hooks, "mean_loss", None)
            ctx.report(iteration, loss=loss, microbatches_lost=stats.failed)

    def evaluate(self, ctx: RunContext) -> float | None:
        """Held-out loss through all stages; also records ``eval_loss_half``."""
        if self.learner is None:
            return None
        batches = ctx.run.eval_batches
        half = self.learner.eval_loss(batches, path=list(half_path(self.learner.num_stages)))
        ctx.world.recorder.metric("eval_loss_half", half, step=ctx.steps)
        return self.learner.eval_loss(batches)


@register_policy("full_pipeline")
class FullPipeline(PipelinePolicy):
    """DT-FM-style baseline: every microbatch through every stage of a fixed pipeline."""

    Config = PipelineConfig

    def prepare(self, ctx: RunContext) -> None:
        """Route every microbatch along its fixed pipeline."""
        self.microbatches = full_pipeline_microbatches(
            self.allocation, self.config.microbatches_per_data_node)

    def plan_iteration(self, ctx: RunContext, iteration: int) -> list[RoutedMicrobatch]:
        """The same routes every iteration."""
        return self.microbatches


class _AgentPolicy(PipelinePolicy):
    """Skip methods: paths (agents) per data node, each carrying its microbatches down a path."""

    def prepare(self, ctx: RunContext) -> None:
        """Path rules and the agents of every data node."""
        cfg = self.config
        self.rules = cfg.rules()
        self.agents, self.loads = make_agents(
            self.allocation.replicas[0], cfg.microbatches_per_data_node,
            cfg.paths, self.node_costs.forward_s)


@register_policy("random_skip")
class RandomSkip(_AgentPolicy):
    """DT-FM-skip: random partial paths with the skip ratio, keeping caps and memory."""

    Config = RandomSkipConfig

    def prepare(self, ctx: RunContext) -> None:
        """Draw the first random paths."""
        super().prepare(ctx)
        self.rng = ctx.world.policy_rng("pipeline", "random_skip")
        self.microbatches = self._draw()

    def _draw(self) -> list[RoutedMicrobatch]:
        routes = random_skip_routes(self.agents, self.allocation.replicas, self.rules,
                                    self.config.memory_microbatches, self.rng)
        return agent_microbatches(routes, self.loads, pipelined=self.config.pipelined)

    def plan_iteration(self, ctx: RunContext, iteration: int) -> list[RoutedMicrobatch]:
        """New random paths every iteration (with ``resample``)."""
        if iteration > 0 and self.config.resample:
            self.microbatches = self._draw()
        return self.microbatches


@register_policy("skippipe")
class SkipPipe(_AgentPolicy):
    """SkipPipe: partial, reordered paths scheduled by CBS over A* (makespan objective)."""

    Config = SkipPipeConfig
    schedule: Schedule

    @property
    def path_hop_costs(self) -> str:
        """``hop_costs`` of the config: the scenario's transport, or the authors' fluid price."""
        return self.config.hop_costs

    def prepare(self, ctx: RunContext) -> None:
        """Plan the paths once with CBS over A*.

        Collision-aware under a stateful transport (``tcp``), the authors' plan (CBS over the
        fluid hop price) is one more candidate: both are judged by the timeline priced with
        the transport, and the faster prediction wins, so planning with the transport never
        predicts a slower iteration than the authors' planner.
        """
        super().prepare(ctx)
        cfg, memory = self.config, self.config.memory_microbatches
        wall = time.perf_counter()
        self.microbatches, self.schedule = skippipe_routes(
            self.agents, self.loads, self.node_costs, self.stage_of, self.rules, memory,
            cfg.cbs(), pipelined=cfg.pipelined)
        source = cfg.hop_costs if self.node_costs.transport is not None else "fluid"
        if cfg.collision_aware and self.node_costs.transport is not None:
            mine = predict_makespan(self.node_costs, self.microbatches, memory)
            authors_costs = dataclasses.replace(self.node_costs, hop_s=self.authors_hop_s,
                                                transport=None)
            theirs, schedule = skippipe_routes(
                self.agents, self.loads, authors_costs, self.stage_of, self.rules, memory,
                cfg.cbs(), pipelined=cfg.pipelined)
            predicted = predict_makespan(self.node_costs, theirs, memory)
            self.schedule.predicted_s = mine
            if predicted < mine:
                self.microbatches, self.schedule, source = theirs, schedule, "fluid"
                self.schedule.predicted_s = predicted
        self.schedule_wall_s = time.perf_counter() - wall
        self.planned_with = source
        extra = {"planned_with": source} if self.node_costs.transport is not None else {}
        ctx.world.recorder.event(
            "skippipe_schedule", predicted_s=self.schedule.predicted_s,
            makespan_s=self.schedule.makespan_s, expansions=self.schedule.expansions,
            candidates=self.schedule.candidates, feasible=self.schedule.feasible, **extra)

    def plan_iteration(self, ctx: RunContext, iteration: int) -> list[RoutedMicrobatch]:
        """The same routes every iteration."""
        return self.microbatches
