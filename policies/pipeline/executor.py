"""Pipeline-parallel execution in simulated time: the mechanism every pipeline method shares.

The model (a "swarm of pipelines", SkipPipe and CheckFree's setting)
--------------------------------------------------------------------
``S`` stages of consecutive layers; stage ``s`` is held by one or more *replicas* (nodes),
``placement.replicas[s]``. Stage 0 also holds the embedding, the head and the data: its nodes
are the *data nodes*, where every microbatch starts and ends. A microbatch follows a
:class:`Route`: the stages it visits in order, ``(0, s_1, ..., s_k)``, and the node serving
each. Its life, with ``w_s`` the forward time of stage ``s`` on a speed-1 node::

    forward   data node: F(0) --act--> n_1: F(s_1) --act--> ... n_k: F(s_k) --act--> data node
    loss      data node: L                                   (loss + head backward, w_loss)
    backward  data node --grad--> n_k: B(s_k) --grad--> ... n_1: B(s_1) --grad--> data node: B(0)

Every arrow is one ``world.network.transfer`` of ``activation_nbytes`` (activations forward,
their gradients backward) followed by a fixed ``hop_overhead_s`` (host <-> device copies; the
SkipPipe emulator charges 0.35 s). Every ``F``, ``L``, ``B`` is one ``node.compute`` task, so a
node runs one task at a time, first come first served, at its own speed and straggler factor.

Memory: a node keeps a microbatch's activations from its forward until its backward there, and
holds at most ``memory_microbatches`` (``m``) of them. A microbatch that arrives at a full node
waits (in FIFO order) for a slot; the data node takes its slot before ``F(0)`` and frees it after
``B(0)``. Microbatches that share a ``chain`` run one after another (the second starts when the
first has finished its backward): SkipPipe's agents carry several microbatches down one path.

Deadlock: waiting for memory while holding memory elsewhere can deadlock for arbitrary routes
(two microbatches each waiting for the other's node). It cannot when every node receives at most
``m`` microbatches in flight (what SkipPipe's scheduler guarantees), or when every route visits
nodes in one global order (e.g. increasing stage, as in a full pipeline or DT-FM-skip). If it
happens anyway, :meth:`PipelineExecutor.run_iteration` never finishes and the run ends early.

Lost stages (``fail_stage``): by default a microbatch that reaches a lost stage fails and the
iteration goes on without it. With ``ExecutorConfig.wait_for_lost_stages`` (CheckFree's model:
a replacement fetches the stage's weights and training continues within the iteration) a
microbatch whose forward reaches a lost stage waits there until ``restore_stage``; one that lost
work on a stage while in flight (its activations or gradient lived on the lost replicas: the
stage failed after the microbatch's forward there) starts again from its data node once every
stage of its route is back. ``microbatch_done`` then sees only the attempt that finished.

Lost work (goodput, docs/engine.md): the compute of a microbatch attempt that does not finish
(it failed, or restarts because a stage it had worked on was lost) never reaches a gradient, so
every task of that attempt is declared discarded (``Recorder.discard_work``, reason
``microbatch_lost``). The hooks' extra forward / backward seconds are work beside the
microbatch's own gradient (redundant computation of another stage's forward): the model never
reads it, so that tail of each task is discarded too (reason ``redundant``). Discarding whole
iterations (a rollback, an ablation) is the owner's business: see ``discard_since``.

At the end of an iteration, when every microbatch is done (the *pipeline time*), the replicas of
each stage average their gradients: one ``ring_allreduce`` of ``grad_nbytes[s]`` per stage, all
stages at once. That part is optional (``ExecutorConfig.allreduce``) and reported separately
(the *all-reduce time*), because published pipeline iteration times exclude it.

API (what a policy, or another method built on this one, uses)
--------------------------------------------------------------
``StagePlacement(replicas)``                        which nodes hold which stage (mutable)
``Route(stages=..., nodes=...)``, ``Microbatch(index=..., route=..., chain=...)``
``MicrobatchCosts(forward_s=, backward_s=, loss_s=, activation_nbytes=, grad_nbytes=)``
``ExecutorConfig(memory_microbatches=3, hop_overhead_s=0.0, allreduce=True)``
``ex = PipelineExecutor(world, placement, costs, config, hooks=PipelineHooks())``
``stats = yield ex.run_iteration(iteration, microbatches)``   a SimPy process -> IterationStats
``ex.fail_stage(s)`` / ``ex.restore_stage(s, nodes=None)``    a stage's replicas are lost / back
``ex.placement.replace_node(old, new)``                      a replacement node takes a slot

Hooks (subclass :class:`PipelineHooks`; generators may spend simulated time)::

    iteration_started(ex, iteration)        before the first microbatch starts      (generator)
    node_ready(ex, mb, position)            before a forward task: wait or fail     (generator)
    task_done(ex, mb, position, phase)      after each forward / backward task
    extra_forward_s(ex, mb, position)       extra seconds on each forward task     (redundancy,
    extra_backward_s(ex, mb, position)      extra seconds on each backward task     not goodput)
    microbatch_done(ex, mb, result)         when a microbatch ends (ok or failed): real math here
    pipeline_drained(ex, stats)             all microbatches done, before the all-reduce (generator)
    iteration_finished(ex, stats)           after the all-reduce: optimizer step, failures (gen.)
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim import collectives
from sim.errors import FieldError, SimFailure


@dataclass(frozen=True, kw_only=True)
class Route:
    """The stages one microbatch visits, in order, and the node serving each.

    stages:
        Visited stages, ``stages[0] == 0`` (the data node's stage); no stage twice. The return
        to the data node for the loss is implicit.
    nodes:
        ``nodes[i]`` serves ``stages[i]``; ``nodes[0]`` is the data node.
    """

    stages: tuple[int, ...]
    nodes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.stages) != len(self.nodes) or not self.stages:
            raise ValueError(
                f"Route: stages {self.stages} and nodes {self.nodes} must be non-empty and of "
                "equal length"
            )
        if self.stages[0] != 0:
            raise ValueError(f"Route.stages: must start at stage 0, got {self.stages}")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"Route.stages: a stage is visited twice in {self.stages}")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"Route.nodes: a node is visited twice in {self.nodes}")

    @property
    def source(self) -> int:
        """The data node, where the microbatch starts and ends."""
        return self.nodes[0]


@dataclass(frozen=True, kw_only=True)
class Microbatch:
    """One microbatch of an iteration.

    index:
        Its number within the iteration (unique).
    route:
        Where it goes.
    chain:
        Microbatches with the same chain run one after another, in index order; ``None``
        means a chain of its own.
    """

    index: int
    route: Route
    chain: int | None = None


@dataclass(frozen=True, kw_only=True)
class MicrobatchCosts:
    """What one microbatch costs, per stage, on a speed-1 node.

    forward_s, backward_s:
        Seconds of one forward / backward task of each stage (tuples of length S).
    loss_s:
        Seconds of the loss task on the data node (head forward + backward).
    activation_nbytes:
        Bytes sent on each hop (activations forward, their gradients backward).
    grad_nbytes:
        Bytes of one replica's gradient, per stage (what the stage all-reduce averages).
    """

    forward_s: tuple[float, ...]
    backward_s: tuple[float, ...]
    loss_s: float
    activation_nbytes: float
    grad_nbytes: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.forward_s)
        for name in ("backward_s", "grad_nbytes"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"MicrobatchCosts.{name}: needs {n} entries (one per stage)")
        values = (*self.forward_s, *self.backward_s, self.loss_s, self.activation_nbytes,
                  *self.grad_nbytes)
        if min(values) < 0:
            raise ValueError("MicrobatchCosts: times and sizes must be >= 0")

    @property
    def num_stages(self) -> int:
        """Number of stages S."""
        return len(self.forward_s)

    @classmethod
    def uniform(cls, *, num_stages: int, forward_s: float, backward_factor: float = 1.5,
                loss_factor: float = 0.25, activation_nbytes: float,
                grad_nbytes: float) -> MicrobatchCosts:
        """Equal stages: forward ``w``, backward ``backward_factor w``, loss ``loss_factor w``."""
        return cls(
            forward_s=(forward_s,) * num_stages,
            backward_s=(backward_factor * forward_s,) * num_stages,
            loss_s=loss_factor * forward_s,
            activation_nbytes=activation_nbytes,
            grad_nbytes=(grad_nbytes,) * num_stages,
        )


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    """How the executor runs an iteration.

    memory_microbatches:
        ``m``: microbatches whose activations one node holds at once (>= 1).
    hop_overhead_s:
        Fixed seconds added after every activation / gradient transfer (host <-> device copy).
    allreduce:
        Average each stage's gradients among its replicas at the end of every iteration.
    wait_for_lost_stages:
        A microbatch meeting a lost stage waits for its restoration (and restarts if it lost
        work there) instead of failing: recovery within the iteration (module docstring).
    loss_on_last_stage:
        The loss runs on the route's last node (the head lives on the last stage, as in a
        classic pipeline or NoLoCo's): no hop back to the data node before it, and the backward
        starts there. False: the microbatch returns to its data node for the loss (SkipPipe).
    """

    memory_microbatches: int = 3
    hop_overhead_s: float = 0.0
    allreduce: bool = True
    wait_for_lost_stages: bool = False
    loss_on_last_stage: bool = False

    def __post_init__(self) -> None:
        if self.memory_microbatches < 1:
            raise FieldError(
                "memory_microbatches", f"must be >= 1, got {self.memory_microbatches}")
        if self.hop_overhead_s < 0:
            raise FieldError("hop_overhead_s", f"must be >= 0, got {self.hop_overhead_s}")


class StagePlacement:
    """Which nodes hold which stage: ``replicas[s]`` is the list of node ids of stage ``s``.

    Mutable on purpose: a recovery method replaces nodes between iterations.
    """

    def __init__(self, replicas: Sequence[Sequence[int]]) -> None:
        self.replicas: list[list[int]] = [list(r) for r in replicas]
        seen: dict[int, int] = {}
        for s, nodes in enumerate(self.replicas):
            if not nodes:
                raise ValueError(f"placement: stage {s} has no replica")
            for node in nodes:
                if node in seen:
                    raise ValueError(
                        f"placement: node {node} holds stages {seen[node]} and {s}; one each")
                seen[node] = s
        self._stage_of = seen

    @property
    def num_stages(self) -> int:
        """Number of stages S."""
        return len(self.replicas)

    @property
    def data_nodes(self) -> list[int]:
        """The replicas of stage 0."""
        return list(self.replicas[0])

    def stage_of(self, node: int) -> int | None:
        """The stage a node holds (``None``: none)."""
        return self._stage_of.get(node)

    def nodes(self) -> list[int]:
        """Every node holding a stage, stage by stage."""
        return [n for nodes in self.replicas for n in nodes]

    def replace_node(self, old: int, new: int) -> None:
        """Give ``old``'s stage slot to ``new`` (which must hold no stage)."""
        if old not in self._stage_of:
            raise ValueError(f"replace_node: node {old} holds no stage")
        if new in self._stage_of:
            raise ValueError(f"replace_node: node {new} already holds stage {self._stage_of[new]}")
        s = self._stage_of.pop(old)
        self.replicas[s][self.replicas[s].index(old)] = new
        self._stage_of[new] = s

    def check_route(self, route: Route) -> None:
        """Raise ValueError unless every node of ``route`` holds the stage it serves there."""
        for stage, node in zip(route.stages, route.nodes):
            if not 0 <= stage < self.num_stages:
                raise ValueError(
                    f"route {route.stages}: stage {stage} not in 0..{self.num_stages - 1}")
            if self._stage_of.get(node) != stage:
                raise ValueError(
                    f"route: node {node} serves stage {stage} but holds stage "
                    f"{self._stage_of.get(node)}")


@dataclass(frozen=True, kw_only=True)
class MicrobatchResult:
    """How one microbatch went: ``ok`` (finished its backward) or ``error`` (why not).

    ``lost_stage``: the lost stage that ended it, if that was the reason.
    """

    microbatch: Microbatch
    ok: bool
    start_s: float
    end_s: float
    error: str | None = None
    lost_stage: int | None = None


@dataclass(kw_only=True)
class IterationStats:
    """Timing of one iteration (seconds of simulated time).

    pipeline_s:
        From the start until every microbatch is done (what SkipPipe reports as iteration time).
    allreduce_s:
        The stage all-reduces after that (0 when disabled).
    """

    iteration: int
    start_s: float
    pipeline_s: float = 0.0
    allreduce_s: float = 0.0
    results: list[MicrobatchResult] = field(default_factory=list)

    @property
    def completed(self) -> int:
        """Microbatches that finished."""
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        """Microbatches lost to a failure."""
        return sum(not r.ok for r in self.results)

    @property
    def iteration_s(self) -> float:
        """Pipeline plus all-reduce."""
        return self.pipeline_s + self.allreduce_s


class PipelineHooks:
    """Extension points of :class:`PipelineExecutor`; every default does nothing.

    Methods documented "generator" may return a generator that yields SimPy events (they then
    take simulated time) or ``None``.
    """

    def iteration_started(self, ex: PipelineExecutor, iteration: int) -> Generator | None:
        """Before the first microbatch of ``iteration`` starts (generator)."""
        return None

    def node_ready(self, ex: PipelineExecutor, mb: Microbatch, position: int) -> Generator | None:
        """Before ``mb``'s forward at ``mb.route.nodes[position]`` (generator).

        A generator may wait until that node is ready for the microbatch, or raise a
        :class:`~sim.errors.SimFailure` to fail it (e.g. the node is not taking part).
        """
        return None

    def task_done(self, ex: PipelineExecutor, mb: Microbatch, position: int, phase: str) -> None:
        """After ``mb``'s ``phase`` task ('forward' or 'backward') at route index ``position``."""
        return None

    def extra_forward_s(self, ex: PipelineExecutor, mb: Microbatch, position: int) -> float:
        """Extra nominal seconds on the forward task at ``mb.route.nodes[position]``."""
        return 0.0

    def extra_backward_s(self, ex: PipelineExecutor, mb: Microbatch, position: int) -> float:
        """Extra nominal seconds on the backward task at ``mb.route.nodes[position]``."""
        return 0.0

    def microbatch_done(self, ex: PipelineExecutor, mb: Microbatch,
                        result: MicrobatchResult) -> None:
        """A microbatch ended (no simulated time passes here): do its real math."""

    def pipeline_drained(self, ex: PipelineExecutor, stats: IterationStats) -> Generator | None:
        """Every microbatch is done; the all-reduce has not started (generator)."""
        return None

    def iteration_finished(self, ex: PipelineExecutor, stats: IterationStats) -> Generator | None:
        """After the all-reduce: optimizer step, failure draws, recovery (generator)."""
        return None


class PipelineExecutor:
    """Runs iterations of microbatches over stage replicas, in simulated time.

    Parameters
    ----------
    world:
        The engine's World (nodes, network, recorder).
    placement:
        Which nodes hold which stage.
    costs:
        Compute seconds and message sizes per microbatch.
    config:
        Memory limit, per-hop overhead, whether to all-reduce.
    hooks:
        Extension points (see :class:`PipelineHooks`).
    """

    def __init__(self, world: Any, placement: StagePlacement, costs: MicrobatchCosts,
                 config: ExecutorConfig | None = None, hooks: PipelineHooks | None = None) -> None:
        if costs.num_stages != placement.num_stages:
            raise ValueError(
                f"costs: {costs.num_stages} stages but the placement has {placement.num_stages}")
        self.world = world
        self.env: simpy.Environment = world.env
        self.placement = placement
        self.costs = costs
        self.config = config or ExecutorConfig()
        self.hooks = hooks or PipelineHooks()
        self.failed_stages: set[int] = set()
        self._memory: dict[int, simpy.Resource] = {}
        self._generation = [0] * placement.num_stages
        """Times each stage was lost: work done on an older generation is gone."""
        self._restored: dict[int, simpy.Event] = {}
        """For each lost stage, the event its restoration triggers."""

    # -- stage state -----------------------------------------------------------------------

    def fail_stage(self, stage: int) -> None:
        """Every replica of ``stage`` is lost: microbatches that reach it fail until restored."""
        if stage not in self.failed_stages:
            self._generation[stage] += 1
            self._restored[stage] = self.env.event()
        self.failed_stages.add(stage)
        self.world.recorder.event("stage_failed", stage=stage)

    def restore_stage(self, stage: int, nodes: Sequence[int] | None = None) -> None:
        """The stage is back, optionally on new nodes (same count as before)."""
        if nodes is not None:
            old = list(self.placement.replicas[stage])
            if len(nodes) != len(old):
                raise ValueError(f"restore_stage: {len(old)} nodes expected, got {len(nodes)}")
            for a, b in zip(old, nodes):
                if a != b:
                    self.placement.replace_node(a, b)
        self.failed_stages.discard(stage)
        restored = self._restored.pop(stage, None)
        if restored is not None:
            restored.succeed()
        self.world.recorder.event("stage_restored", stage=stage)

    def stage_restored(self, stage: int) -> simpy.Event:
        """An event that triggers when ``stage`` is up (at once if it is up now)."""
        if stage in self._restored:
            return self._restored[stage]
        event = self.env.event()
        event.succeed()
        return event

    def memory(self, node: int) -> simpy.Resource:
        """The activation-memory slots of ``node`` (capacity ``m``)."""
        if node not in self._memory:
            self._memory[node] = simpy.Resource(self.env, capacity=self.config.memory_microbatches)
        return self._memory[node]

    # -- one iteration ---------------------------------------------------------------------

    def run_iteration(self, iteration: int, microbatches: Sequence[Microbatch]) -> simpy.Process:
        """Start one iteration; the process's value is its :class:`IterationStats`."""
        indices = [mb.index for mb in microbatches]
        if len(set(indices)) != len(indices):
            raise ValueError(f"run_iteration: microbatch indices repeat: {indices}")
        for mb in microbatches:
            self.placement.check_route(mb.route)
        return self.env.process(self._iteration(iteration, list(microbatches)))

    def _iteration(self, iteration: int, microbatches: list[Microbatch]) -> Generator:
        yield from self._maybe(self.hooks.iteration_started(self, iteration))
        stats = IterationStats(iteration=iteration, start_s=self.env.now)
        chains: dict[Any, list[Microbatch]] = {}
        for mb in sorted(microbatches, key=lambda m: m.index):
            key = ("chain", mb.chain) if mb.chain is not None else ("own", mb.index)
            chains.setdefault(key, []).append(mb)
        procs = [self.env.process(self._chain(chain, stats)) for chain in chains.values()]
        yield self.env.all_of(procs)
        if stats.results and not any(r.ok for r in stats.results):
            yield from self._wait_for_a_change(microbatches)
        stats.results.sort(key=lambda r: r.microbatch.index)
        stats.pipeline_s = self.env.now - stats.start_s
        rec = self.world.recorder
        rec.metric("pipeline_time_s", stats.pipeline_s, step=iteration)
        yield from self._maybe(self.hooks.pipeline_drained(self, stats))
        if self.config.allreduce:
            t0 = self.env.now
            yield self.allreduce_stages()
            stats.allreduce_s = self.env.now - t0
            rec.metric("allreduce_time_s", stats.allreduce_s, step=iteration)
        yield from self._maybe(self.hooks.iteration_finished(self, stats))
        return stats

    def _chain(self, chain: list[Microbatch], stats: IterationStats) -> Generator:
        for mb in chain:
            while True:
                result = yield self.env.process(self._microbatch(mb))
                if result.ok or result.lost_stage is None or not self.config.wait_for_lost_stages:
                    break
                self.world.recorder.event("microbatch_restarted", microbatch=mb.index,
                                          stage=result.lost_stage)
                for stage in mb.route.stages:  # start again once the whole route is up
                    yield self.stage_restored(stage)
            stats.results.append(result)
            self.hooks.microbatch_done(self, mb, result)

    def _microbatch(self, mb: Microbatch) -> Generator:
        """One microbatch's forward, loss and backward; value: a MicrobatchResult."""
        costs, route = self.costs, mb.route
        stages, nodes = route.stages, route.nodes
        held: list[tuple[simpy.Resource, Any]] = []
        start = self.env.now
        generation: dict[int, int] = {}  # stage -> its generation when this microbatch got there
        spans: list[tuple[int, float, float]] = []  # (node, start_s, end_s) of finished tasks
        try:
            # Forward: F(stage) at each node, activations hop to the next one.
            for pos, (stage, node_id) in enumerate(zip(stages, nodes)):
                if pos > 0:
                    yield from self._hop(nodes[pos - 1], node_id, f"act mb{mb.index}")
                yield from self._maybe(self.hooks.node_ready(self, mb, pos))
                if self.config.wait_for_lost_stages and stage in self.failed_stages:
                    yield self.stage_restored(stage)  # a replacement is rebuilding it
                self._check_stage(stage)
                generation[stage] = self._generation[stage]
                request = self.memory(node_id).request()
                held.append((self.memory(node_id), request))
                yield request
                yield from self._compute(node_id, costs.forward_s[stage],
                                         self.hooks.extra_forward_s(self, mb, pos),
                                         f"F{stage} mb{mb.index}", spans)
                self._check_generation(stage, generation)
                self.hooks.task_done(self, mb, pos, "forward")
            # Loss on the data node (or where the route ends, with loss_on_last_stage).
            loss_node = nodes[-1] if self.config.loss_on_last_stage else route.source
            yield from self._hop(nodes[-1], loss_node, f"act mb{mb.index}")
            yield from self._compute(loss_node, costs.loss_s, 0.0, f"L mb{mb.index}", spans)
            # Backward: B(stage) in reverse order, gradients hop back; each frees its slot.
            prev = loss_node
            for pos in range(len(stages) - 1, -1, -1):
                stage, node_id = stages[pos], nodes[pos]
                yield from self._hop(prev, node_id, f"grad mb{mb.index}")
                self._check_generation(stage, generation)
                yield from self._compute(node_id, costs.backward_s[stage],
                                         self.hooks.extra_backward_s(self, mb, pos),
                                         f"B{stage} mb{mb.index}", spans)
                resource, request = held.pop()
                resource.release(request)
                self.hooks.task_done(self, mb, pos, "backward")
                prev = node_id
            for stage in stages:  # a stage's share of this microbatch's gradient lived there
                self._check_generation(stage, generation)
        except SimFailure as exc:
            rec = self.world.recorder
            rec.event("microbatch_failed", microbatch=mb.index, reason=str(exc))
            for node_id, t0, t1 in spans:  # this attempt's work reaches no gradient
                rec.discard_work(node_id, t0, t1, "microbatch_lost")
            return MicrobatchResult(microbatch=mb, ok=False, start_s=start, end_s=self.env.now,
                                    error=str(exc),
                                    lost_stage=exc.stage if isinstance(exc, StageDown) else None)
        finally:
            for resource, request in held:
                if request.triggered:
                    resource.release(request)
                else:
                    request.cancel()
        return MicrobatchResult(microbatch=mb, ok=True, start_s=start, end_s=self.env.now)

    def _compute(self, node_id: int, seconds: float, extra_s: float, label: str,
                 spans: list[tuple[int, float, float]]) -> Generator:
        """One task of ``seconds + extra_s`` nominal seconds; its span is added to ``spans``.

        The ``extra_s`` part (redundant work, module docstring) is discarded at once: the task's
        last ``extra_s / (seconds + extra_s)`` of its duration.
        """
        total = seconds + extra_s
        duration = yield self.world.nodes[node_id].compute(seconds=total, label=label)
        end = self.env.now
        spans.append((node_id, end - duration, end))
        if extra_s > 0:
            self.world.recorder.discard_work(node_id, end - duration * extra_s / total, end,
                                             "redundant")

    def discard_since(self, start_s: float, reason: str,
                      nodes: Sequence[int] | None = None) -> None:
        """Declare the compute of ``nodes`` (every stage node) since ``start_s`` lost.

        For an owner that throws work away: a rollback to an older step, an iteration
        discarded because a failure hit it, a lost stage's accumulated gradient.
        """
        for node_id in self.placement.nodes() if nodes is None else nodes:
            self.world.recorder.discard_work(node_id, start_s, self.env.now, reason)

    def _wait_for_a_change(self, microbatches: list[Microbatch]) -> Generator:
        """No microbatch got through: wait until a node of a route is back or a link changes.

        Without this, an iteration whose every route crosses a crashed node (``[faults]``) or a
        partition fails at once, and the next one starts at the same instant: simulated time
        would stop. A lost stage (``fail_stage``) is its owner's to rebuild: no wait then,
        unless microbatches wait for lost stages (then its restoration is one of the changes).
        """
        if self.failed_stages and not self.config.wait_for_lost_stages:
            return
        down = sorted({n for mb in microbatches for n in mb.route.nodes
                       if not self.world.nodes[n].is_up})
        events = [self.world.nodes[n].recovered_event() for n in down]
        events += [self.stage_restored(s) for s in sorted(self.failed_stages)]
        link_change = getattr(self.world.network, "link_change_event", None)
        if link_change is not None:
            events.append(link_change())
        if events:
            self.world.recorder.event("pipeline_blocked", nodes_down=down)
            yield self.env.any_of(events)

    def _hop(self, src: int, dst: int, label: str) -> Generator:
        """One activation (or gradient) transfer plus the fixed per-hop overhead."""
        if src == dst:
            return
        yield self.world.network.transfer(src, dst, self.costs.activation_nbytes, label=label)
        if self.config.hop_overhead_s > 0:
            yield self.env.timeout(self.config.hop_overhead_s)

    def _check_stage(self, stage: int) -> None:
        if stage in self.failed_stages:
            raise StageDown(stage)

    def _check_generation(self, stage: int, generation: dict[int, int]) -> None:
        """Raise StageDown if ``stage`` is down or was lost since the microbatch's forward."""
        self._check_stage(stage)
        if generation[stage] != self._generation[stage]:
            raise StageDown(stage)

    # -- gradient averaging ----------------------------------------------------------------

    def allreduce_stages(self, stages: Sequence[int] | None = None) -> simpy.Process:
        """Ring all-reduce of each stage's gradient among its replicas, all stages at once.

        Stages with one replica, or marked failed, are skipped. A collective that aborts (a
        replica failed) is recorded as an ``allreduce_aborted`` event, not raised.
        """
        stages = range(self.placement.num_stages) if stages is None else stages
        return self.env.process(self._allreduce(list(stages)))

    def _allreduce(self, stages: list[int]) -> Generator:
        procs = []
        for s in stages:
            nodes = self.placement.replicas[s]
            if len(nodes) < 2 or s in self.failed_stages:
                continue
            procs.append(self.env.process(
                self._guarded(collectives.ring_allreduce(self.world, list(nodes),
                                                         self.costs.grad_nbytes[s]), s)))
        if procs:
            yield self.env.all_of(procs)

    def _guarded(self, collective: Any, stage: int) -> Generator:
        try:
            yield collective
        except SimFailure as exc:
            self.world.recorder.event("allreduce_aborted", stage=stage, reason=str(exc))

    @staticmethod
    def _maybe(gen: Generator | None) -> Generator:
        if gen is not None:
            result = yield from gen
            return result
        return None


class StageDown(SimFailure):
    """A microbatch reached a stage whose replicas are all lost (see ``fail_stage``)."""

    def __init__(self, stage: int) -> None:
        super().__init__(f"stage {stage} is down")
        self.stage = stage
