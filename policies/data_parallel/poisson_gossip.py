"""Poisson-clock gossip: gradient steps and pairwise averagings on independent random clocks.

DADAO (Nabli & Oyallon, ICML 2023) decouples computation from communication: every worker's
gradient steps fire on its own Poisson clock, and every edge (i, j) of the gossip graph has its
own Poisson clock at which i and j average. Nobody waits for anybody. dtsim's ``poisson_gossip``
takes that event structure with the plain (non-accelerated) updates:

- worker i's gradient clock rings at rate λ_g (a Poisson process, ``grad_rate_per_step_time``
  = λ_g·T_step, T_step the nominal step time). Each ring asks for one step; the node runs the
  requested steps one after another (a ring during a step waits in the node's queue: the busy
  periods follow Lindley's recursion start_k = max(ring_k, end_{k−1})). The step's gradient is
  taken at x_i and applied with the workload's optimizer when the step ends;
- edge (i, j)'s clock rings at rate λ_c (``gossip_rate_per_step_time`` = λ_c·T_step, per edge).
  At a ring, if both ends are up and the edge is not already exchanging, i and j send each other
  their model (``param_bytes`` each way, concurrently with any compute); when both copies have
  landed, x_i = x_j = (x_i + x_j)/2 at once (AD-PSGD's atomic average, the values they hold
  then). A ring while the edge is busy is skipped (recorded as ``edge_busy``).

What is *not* DADAO: its accelerated dual variables and momentum mixing between events (for
L-smooth, μ-strongly convex objectives) are left out; this is the continuized randomized-gossip
baseline with DADAO's decoupled clocks. Clocks draw from the policy's seed streams
``("poisson_gossip", "grad", i)`` and ``("poisson_gossip", "edge", i, j)``.

Goodput: a worker's compute up to the start of its latest completed exchange has reached a
neighbour's model and survives; on a failure the rest (since that exchange) is lost. A failed
worker downloads a live neighbour's model, restarts its optimizer state and rejoins; its clocks
keep running but its rings are ignored while it is down or downloading.
Evaluated: each live worker's own x_i; the mean of the live workers' models beside it.

Not over pipelines (``pipeline_stages`` must be 1): its gradient steps fire on each worker's own
clock, independently of every other worker, while a stage replica can only step inside a pipeline
iteration shared with its neighbours (it needs the previous stage's activations and the next
stage's gradients). A shared clock per pipeline would be another method.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.data_parallel.common import inner_step
from policies.data_parallel.gossip import Gossip
from policies.data_parallel.mixing import gossip_neighbours
from policies.data_parallel.pipelines import NotOverPipelines
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy

PIPELINES_REFUSAL = ("poisson_gossip's gradient steps fire on each worker's own clock, but a "
                     "stage replica can only step inside a pipeline iteration shared with its "
                     "neighbours")


@dataclass(frozen=True, kw_only=True)
class PoissonGossipConfig(NotOverPipelines):
    """Parameters of Poisson-clock gossip (rates relative to the nominal step time T_step)."""

    graph: str = "ring"
    """Gossip graph: 'ring', 'complete' or 'hypercube'."""
    grad_rate_per_step_time: float = 0.9
    """λ_g·T_step in [0, 1): gradient-clock rings per step time, i.e. the node's compute
    utilisation (0: no gradient steps, pure consensus; >= 1: the step queue would grow
    without bound)."""
    gossip_rate_per_step_time: float = 0.5
    """λ_c·T_step > 0: rings of each edge's clock per step time."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.grad_rate_per_step_time < 1.0:
            raise FieldError("grad_rate_per_step_time", f"must be in [0, 1), got "
                             f"{self.grad_rate_per_step_time}")
        if not self.gossip_rate_per_step_time > 0.0:
            raise FieldError("gossip_rate_per_step_time", f"must be > 0, got "
                             f"{self.gossip_rate_per_step_time}")
        gossip_neighbours(self.graph, 2)          # raises on an unknown graph name
        self.refuse_pipelines(PIPELINES_REFUSAL)


@register_policy("poisson_gossip")
class PoissonGossip(Gossip):
    """Gossip whose gradient steps and edge averagings fire on independent Poisson clocks."""

    Config = PoissonGossipConfig

    def setup(self, ctx: RunContext) -> None:
        """The graph, its edges (i < j) and one clock stream per node and per edge."""
        super().setup(ctx)
        cfg = self.config
        n = self.num_workers
        self.edges = [(i, j) for i in range(n) for j in self.neighbours[i] if i < j]
        self.grad_rate_per_s = cfg.grad_rate_per_step_time / self.step_s
        self.gossip_rate_per_s = cfg.gossip_rate_per_step_time / self.step_s
        world = ctx.world
        self.grad_clocks = [world.policy_rng("poisson_gossip", "grad", i) for i in range(n)]
        self.edge_clocks = {e: world.policy_rng("poisson_gossip", "edge", *e)
                            for e in self.edges}
        self.edge_busy = dict.fromkeys(self.edges, False)
        self.rejoining = [False] * n
        for edge in self.edges:
            ctx.env.process(self._edge_clock(edge))

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s gradient clock: each ring queues one step; failures lead to a rejoin."""
        if self.grad_rate_per_s > 0:
            ctx.env.process(self._grad_clock(ctx, node))
        while True:
            yield node.failed_event()
            self.rejoining[node.id] = True
            self.ctx.world.recorder.discard_uncommitted(node.id, reason="poisson_gossip_failure")
            yield from self.rejoin(node)
            self.rejoining[node.id] = False

    def _grad_clock(self, ctx: RunContext, node):  # noqa: ANN001
        rng = self.grad_clocks[node.id]
        while True:
            yield ctx.env.timeout(float(rng.exponential(1.0 / self.grad_rate_per_s)))
            if node.is_up and not self.rejoining[node.id]:
                ctx.world.recorder.event("grad_clock", node=node.id)
                ctx.env.process(self._step(ctx, node))

    def _step(self, ctx: RunContext, node):  # noqa: ANN001
        """One requested step: queued behind the node's earlier steps, then the real math."""
        try:
            loss = yield from inner_step(self, node, label="fwd_bwd")
        except NodeFailure:
            return                                 # cut by a failure: its work is lost
        ctx.report(self.steps_done[node.id], loss, node=node.id)

    def _edge_clock(self, edge: tuple[int, int]):  # noqa: ANN202
        env, world = self.ctx.env, self.ctx.world
        rng = self.edge_clocks[edge]
        i, j = edge
        while True:
            yield env.timeout(float(rng.exponential(1.0 / self.gossip_rate_per_s)))
            nodes = world.nodes
            if not (nodes[i].is_up and nodes[j].is_up) or self.rejoining[i] \
                    or self.rejoining[j]:
                continue
            if self.edge_busy[edge]:
                world.recorder.event("edge_busy", node=i, peer=j)
                continue
            env.process(self._exchange_on(edge))

    def _exchange_on(self, edge: tuple[int, int]):  # noqa: ANN202
        """Swap models over ``edge`` and average them if both copies landed."""
        i, j = edge
        world = self.ctx.world
        self.edge_busy[edge] = True
        start = world.now
        delivered = yield self._exchange(i, j)
        self.edge_busy[edge] = False
        if not (delivered and world.nodes[i].is_up and world.nodes[j].is_up):
            return
        if self.rejoining[i] or self.rejoining[j]:
            return
        self._average(i, j)                         # (counts self.averagings)
        rec = world.recorder
        rec.metric("exchange_s", world.now - start, node=i)
        for m in edge:                              # what each had computed by then is shared
            rec.commit_work(m, start)
