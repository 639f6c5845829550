"""What every data-parallel policy shares: learners, the cost of a step, waiting, rejoining.

A data-parallel worker is a loop of local steps and synchronisations. The pieces here keep the
policies short:

- :class:`DataParallelPolicy` builds one learner per node (real or timing-only) from the same
  initial weights, and knows what an inner step costs in simulated seconds;
- :func:`inner_step` charges that time on the node, then runs the real step for its loss;
- :func:`wait_or_fail` waits for an event unless the node fails first (from :mod:`.waiting`);
- :func:`fetch_model` is a rejoining node's download of the current model from a live peer;
- :func:`schedule_step` / :func:`set_schedule_step` read and move a learner's learning-rate
  schedule position (a rejoining worker adopts its peer's);
- :meth:`DataParallelPolicy.evaluate` scores what a deployment could reproduce: the held-out
  loss of every live worker's *own* model (the weights it holds now), reported as the mean
  (``eval_loss``, what ``time_to_target`` and comparisons use, for every method alike), best
  (``eval_loss_best``) and worst (``eval_loss_worst``); a method with an averaged model no worker
  holds (DiLoCo's φ, NoLoCo's mean of the φ_i, the gossip mean) reports it apart as
  ``eval_loss_averaged``. This is how the NoLoCo reference scores a run: every data-parallel
  rank evaluates its own model and the losses are averaged.

Message sizes always come from the *timing* model (the simulated model), never from the proxy
learner's tensors: ``grad_bytes`` for gradients and outer gradients, ``param_bytes`` for weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from policies.data_parallel.mixing import gossip_neighbours
from policies.data_parallel.pipelines import PipelinedWorkers
from policies.data_parallel.rules import average
from policies.data_parallel.waiting import wait_or_fail
from sim.errors import NodeFailure, ScenarioError, SimFailure
from sim.policy import Policy, RunContext


def reserve_model_memory(world: Any, timing: Any) -> None:
    """Reserve a full replica's training state on every node, or refuse the scenario.

    Every data-parallel worker holds the whole simulated model: weights, gradients and two Adam
    moments (4 x ``param_bytes``; activations are not counted). A node whose memory
    (``cluster.memory``, default: the device's) cannot hold it cannot run the method.
    """
    need = 4 * timing.param_bytes
    for node in world.nodes:
        if not node.allocate(need):
            raise ScenarioError("cluster.memory", f"a node has {node.memory_bytes:.4g} B but a "
                                f"data-parallel replica needs {need:.4g} B (weights, "
                                f"gradients and Adam moments of {timing.num_params:,} "
                                f"parameters)")


class DataParallelPolicy(Policy):
    """Base of DDP, DiLoCo, Streaming DiLoCo, PALSGD, NoLoCo and gossip.

    After :meth:`setup`: ``self.learners[i]`` is node i's learner, ``self.step_s`` the nominal
    seconds of one forward+backward on a speed-1 node, ``self.timing_only`` whether learners do
    math, and ``self.steps_done[i]`` the local steps node i has completed.
    """

    def check(self, scenario: Any) -> None:
        """At least two replicas, before any world is built."""
        self._check_nodes(scenario.cluster.num_nodes)

    def _check_nodes(self, num_nodes: int) -> None:
        if num_nodes < 2:
            raise ScenarioError("cluster.nodes", f"{self.name} is data-parallel and needs at "
                                                 f"least 2 nodes (replicas), got {num_nodes}")

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        self.ctx = ctx
        world, wl = ctx.world, ctx.workload
        self._check_nodes(world.num_nodes)
        self.timing_only = bool(ctx.run.timing_only)
        self.num_workers = len(world.nodes)
        self.timing = wl.timing
        self.pipeline: Any = None
        if getattr(self.config, "pipeline_stages", 1) > 1:      # DP x PP (pipelines.py)
            self.pipeline = PipelinedWorkers(ctx, self.config, self.name)
            self.learners = [self.pipeline.learner(i) for i in range(self.num_workers)]
        else:
            self.learners = [wl.make_learner(i, timing_only=self.timing_only)
                             for i in range(self.num_workers)]
            reserve_model_memory(world, wl.timing)
        self.step_s = step_seconds(wl, world.nodes[0])
        self.steps_done = [0] * self.num_workers
        self._peer_rngs: dict[int, Any] = {}

    # -- helpers for subclasses ------------------------------------------------------------

    def peer_rng(self, node_id: int):
        """Node ``node_id``'s stream for choosing peers (policy half of the seed tree)."""
        if node_id not in self._peer_rngs:
            self._peer_rngs[node_id] = self.ctx.world.policy_rng("peers", node_id)
        return self._peer_rngs[node_id]

    def sync_groups(self) -> list[list[int]]:
        """The groups an outer step acts on: every worker, or each pipeline stage's replicas."""
        if self.pipeline is not None:
            return self.pipeline.stage_groups()
        return [list(range(self.num_workers))]

    def group_nbytes(self, group: int) -> float:
        """Bytes of one member's weights in sync group ``group`` (the simulated model's)."""
        if self.pipeline is not None:
            return self.pipeline.stage_nbytes(group)
        return float(self.timing.grad_bytes)

    def node_nbytes(self, node_id: int) -> float:
        """Bytes of worker ``node_id``'s weights (its stage's over pipelines; the model's else)."""
        if self.pipeline is not None:
            return self.pipeline.stage_nbytes(self.pipeline.stage_of(node_id))
        return float(self.timing.param_bytes)

    def group_neighbours(self, graph: str) -> list[list[int]]:
        """Adjacency lists (node ids) of the gossip graph ``graph`` inside each sync group.

        Plain data parallelism: one graph over every worker; over pipelines: one graph over
        each stage's replicas (no edge between stages: their weights are different tensors).
        """
        neighbours: list[list[int]] = [[] for _ in range(self.num_workers)]
        for members in self.sync_groups():
            for a, nbrs in enumerate(gossip_neighbours(graph, len(members))):
                neighbours[members[a]] = sorted(members[b] for b in nbrs)
        return neighbours

    def group_means(self, live: list[int], flat_of: Any) -> torch.Tensor:
        """Mean of ``flat_of(i)`` over the live members of each sync group, groups in order.

        A group with no live member uses all its members.
        """
        up = set(live)
        means = [average([flat_of(i) for i in members if i in up] or
                         [flat_of(i) for i in members]) for members in self.sync_groups()]
        return means[0] if len(means) == 1 else torch.cat(means)

    # -- evaluation ----------------------------------------------------------------------------

    def worker_flat(self, i: int) -> torch.Tensor:
        """The weights worker i holds now, as a deployment would take them (its learner's)."""
        return self.learners[i].get_flat()

    def averaged_flat(self, live: list[int]) -> torch.Tensor | None:
        """The method's averaged model, if it has one no single worker holds (else None)."""
        return None

    def evaluate_workers(self, ctx: RunContext) -> WorkerLosses | None:
        """Held-out losses of the live workers' own models (all workers if none is up).

        None in timing-only mode. Workers holding identical weights (DDP replicas, DiLoCo
        workers right after an outer step) are evaluated once.
        """
        if self.timing_only:
            return None
        live = [n.id for n in ctx.world.nodes if n.is_up] or list(range(self.num_workers))
        if self.pipeline is not None:
            return self._evaluate_pipelines(live)
        seen: list[tuple[torch.Tensor, float]] = []
        losses: dict[int, float] = {}
        for i in live:
            flat = self.worker_flat(i)
            loss = next((lo for f, lo in seen if torch.equal(f, flat)), None)
            if loss is None:
                loss = self.evaluate_flat(flat)
                seen.append((flat, loss))
            losses[i] = loss
        averaged = self.averaged_flat(live)
        values = list(losses.values())
        return WorkerLosses(mean=sum(values) / len(values), best=min(values), worst=max(values),
                            per_worker=losses,
                            averaged=None if averaged is None else self.evaluate_flat(averaged))

    def _evaluate_pipelines(self, live: list[int]) -> WorkerLosses:
        """DP x PP: model r is replica r of every stage (fixed routes, as the reference does)."""
        pipeline = self.pipeline
        losses = pipeline.column_losses(self.ctx.run.eval_batches)
        averaged = self.averaged_flat(live)
        avg_loss = None
        if averaged is not None:
            sizes = [pipeline.columns[0].get_stage_flat(s).numel()
                     for s in range(pipeline.num_stages)]
            avg_loss = pipeline.evaluate_stage_flats(list(torch.split(averaged, sizes)),
                                                     self.ctx.run.eval_batches)
        values = list(losses.values())
        return WorkerLosses(mean=sum(values) / len(values), best=min(values), worst=max(values),
                            per_worker=losses, averaged=avg_loss)

    def evaluate(self, ctx: RunContext) -> float | None:
        """Mean held-out loss of the live workers' own models; records best, worst, averaged.

        The same definition for every data-parallel method (see the module docstring).
        """
        losses = self.evaluate_workers(ctx)
        if losses is None:
            return None
        rec = ctx.world.recorder
        rec.metric("eval_loss_best", losses.best, step=ctx.steps)
        rec.metric("eval_loss_worst", losses.worst, step=ctx.steps)
        if losses.averaged is not None:
            rec.metric("eval_loss_averaged", losses.averaged, step=ctx.steps)
        return losses.mean

    def evaluate_flat(self, flat) -> float | None:  # noqa: ANN001
        """Held-out loss of the weights ``flat`` (a 1-D tensor), or None in timing-only mode.

        Borrows learner 0's model: its weights are swapped in and back, so no state changes.
        """
        if self.timing_only or flat is None:
            return None
        learner = self.learners[0]
        saved = learner.get_flat()
        learner.set_flat(flat)
        loss = learner.eval_loss(self.ctx.run.eval_batches)
        learner.set_flat(saved)
        return loss


@dataclass(frozen=True, kw_only=True)
class WorkerLosses:
    """Held-out losses (nats per token) of the workers' own models at one evaluation."""

    mean: float
    """Mean over the evaluated workers: the method's ``eval_loss``."""
    best: float
    """Lowest worker loss."""
    worst: float
    """Highest worker loss."""
    per_worker: dict[int, float]
    """Loss of each evaluated worker (node id -> loss)."""
    averaged: float | None = None
    """Loss of the method's averaged model (no worker holds it), where it has one."""


def step_seconds(workload: Any, node: Any) -> float:
    """Nominal seconds of one forward+backward of the *timed* model on ``node``'s device.

    Uses the device profile when the node has one (``timing.step_seconds``), else the node's
    FLOP/s (``timing.step_flops / node.flops_per_s``).
    """
    cfg, timing = workload.config, workload.timing
    device = getattr(node, "device", None)
    if device is not None:
        return float(timing.step_seconds(device, cfg.batch, cfg.seq))
    flops_per_s = node.flops_per_s
    if not flops_per_s or math.isnan(flops_per_s):
        raise ScenarioError("cluster.device",
                            "the node has neither a device profile nor a FLOP/s rate")
    return float(timing.step_flops(cfg.batch, cfg.seq)) / flops_per_s


def inner_step(policy: DataParallelPolicy, node: Any, *, label: str = "inner",
               step: int | None = None):
    """One local training step on ``node``: simulated time first, then the real math.

    A generator (use ``loss = yield from inner_step(...)``): :func:`compute_gradient`, then the
    learner's optimizer step. Raises :class:`NodeFailure` if the node fails during the step, in
    which case no math is done. Returns the batch loss (None in timing-only mode). ``step``: the
    worker's step number in its method's count (over pipelines, the iteration it takes part in).
    """
    if policy.pipeline is not None:      # DP x PP: the step is the worker's pipeline iteration
        loss = yield from compute_gradient(policy, node, label=label, step=step)
        policy.learners[node.id].optimizer_step()
    else:
        yield node.compute(seconds=policy.step_s, label=label)
        loss = policy.learners[node.id].train_step()
    policy.steps_done[node.id] += 1
    return loss


def compute_gradient(policy: DataParallelPolicy, node: Any, *, label: str = "fwd_bwd",
                     step: int | None = None):
    """A forward and backward on ``node`` without the optimizer step; returns the loss.

    A generator. Afterwards ``policy.learners[node.id]`` holds the gradient, for methods that
    do something with it before stepping (DDP's all-reduce, D-PSGD's mix). Plain data
    parallelism: one compute task of the step time, then the learner's ``compute_grad``. Over
    pipelines: the worker's part of pipeline iteration ``step`` (its stage's gradient, see
    :meth:`~policies.data_parallel.pipelines.PipelinedWorkers.gradient`).
    """
    if policy.pipeline is not None:
        loss = yield from policy.pipeline.gradient(node, step)
        return loss
    yield node.compute(seconds=policy.step_s, label=label)
    return policy.learners[node.id].compute_grad()


def fetch_model(policy: DataParallelPolicy, node: Any, peers: list[int], nbytes: float,
                *, label: str = "rejoin"):
    """Download ``nbytes`` of model state from a random live peer in ``peers``.

    A generator; returns the peer's id, or None when no live peer is left (the caller then
    keeps the state it has). A transfer cut by the peer's failure is retried with another peer;
    one cut by this node's own failure raises :class:`NodeFailure`.
    """
    world = policy.ctx.world
    rng = policy.peer_rng(node.id)
    candidates = [p for p in peers if p != node.id]
    while True:
        live = [p for p in candidates if world.nodes[p].is_up]
        if not live:
            return None
        peer = live[int(rng.integers(len(live)))]
        try:
            yield world.network.transfer(peer, node.id, nbytes, label=label)
            world.recorder.event("rejoin_fetch", node=node.id, peer=peer, nbytes=float(nbytes))
            return peer
        except SimFailure:
            if not node.is_up:
                raise NodeFailure(node.id, world.now) from None
            candidates.remove(peer)


def schedule_step(learner: Any) -> int:
    """The learner's learning-rate schedule position: optimizer steps it has taken."""
    return int(learner.step)


def set_schedule_step(learner: Any, step: int) -> None:
    """Move the learner's schedule to position ``step`` (weights and moments untouched).

    A rejoining worker takes the position of the peer it downloads from, so that it does not
    warm up again or run a higher rate than its peers.
    """
    learner.set_schedule_step(step)


def recover(node: Any):
    """Wait until ``node`` is up again (returns at once if it is up)."""
    if not node.is_up:
        yield node.recovered_event()


def rejoin_group(policy: DataParallelPolicy, node: Any, group: Any, nbytes: float):
    """Bring a failed member of a :class:`~policies.data_parallel.group.SyncGroup` back.

    A generator returning ``(round, peer)``: the round the node takes part in next, and the
    peer it downloaded ``nbytes`` of model state from (None if no peer was live).

    - ``drop``: the group went on without the node. It waits for the open round to complete
      (so the model it fetches is fresh), joins from the round after it, then fetches; the
      group waits for it in that round, so a slow download delays everyone once.
    - ``wait``: the group is still waiting in the open round; the node fetches the model the
      others started that round from and redoes its part of the round.
    """
    while True:
        try:
            yield from recover(node)
            if group.on_failure == "drop":
                r = group.open_round
                if any(m != node.id for m in group.expected(r)):
                    yield from wait_or_fail(node, group.round_event(r))
                r = group.open_round
                group.join(node.id, r)
            else:
                r = group.open_round
            policy.ctx.world.recorder.event("rejoin", node=node.id, round=r)
            peer = yield from fetch_model(policy, node, group.live_peers(node.id), nbytes)
            return r, peer
        except NodeFailure:
            continue
