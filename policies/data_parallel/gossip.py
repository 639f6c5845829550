"""Gossip SGD on a graph: D-PSGD (synchronous mixing) and AD-PSGD (asynchronous pairs).

The logical graph over workers is ``graph`` (ring, complete or hypercube) with the
Metropolis–Hastings mixing matrix W (:mod:`~policies.data_parallel.mixing`).

D-PSGD (Lian et al. 2017, Algorithm 1), every step k of worker i: send x_{k,i} to each
neighbour (deg(i)·``param_bytes``) *while* computing the gradient g_i at x_{k,i} (the two are
independent, so the paper runs them concurrently: a step costs max(compute, gossip), not their
sum); wait for the neighbours' step-k models (only them, no global barrier);
x_{k+1,i} ← Σ_j W_ij·x_{k,j} − γ·g_i (the γ·g step is the workload's optimizer step). A neighbour
that is down or whose message is cut drops out of that step's mix: its weight W_ij goes to
W_ii. ``overlap = false`` sends after the gradient instead (compute, then gossip).

AD-PSGD (Lian et al. 2018), every step of worker i, without waiting for anyone's step: read x_i
and compute g_i; pick a random live neighbour j and exchange models (``param_bytes`` each way)
*during* the computation (``overlap``; else after it); atomically set x_i = x_j = (x_i + x_j)/2
(j's current value: j is never blocked); then apply g_i to x_i. If j fails during the exchange,
the step goes on without averaging.

Goodput (both): a worker's compute up to the model it sent in a completed exchange has reached
a neighbour and survives; what it computed since is lost if it fails.

Rejoin (both): download the model of a random live neighbour (``param_bytes``), restart the
optimizer state, resume at that neighbour's step.
Evaluated: each live worker's own model x_i (mean, best, worst); the mean of the live
workers' models is reported beside them as the averaged model.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica and the graph is drawn over each stage's replicas (one ``graph`` per stage,
no edge between stages); a step's gradient is the worker's part of a pipeline iteration, and
messages carry that stage's weights. Both variants keep their rules: D-PSGD sends x_k at the
iteration's start and mixes before its optimizer step; AD-PSGD exchanges during the iteration
and averages before applying the gradient (computed during the iteration, at the weights it held
when each microbatch went through).
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from policies.data_parallel.common import (
    DataParallelPolicy,
    compute_gradient,
    fetch_model,
    recover,
    wait_or_fail,
)
from policies.data_parallel.mailbox import Mailbox
from policies.data_parallel.mixing import gossip_neighbours, metropolis_hastings_weights
from policies.data_parallel.pipelines import OverPipelines
from policies.data_parallel.rules import mix, pairwise_average
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy

VARIANTS = ("dpsgd", "adpsgd")


@dataclass(frozen=True, kw_only=True)
class GossipConfig(OverPipelines):
    """Parameters of gossip SGD; over pipelines: see :class:`OverPipelines`."""

    variant: str = "dpsgd"
    """'dpsgd' (synchronous mixing with every neighbour) or 'adpsgd' (asynchronous pairs)."""
    graph: str = "ring"
    """Logical communication graph: 'ring', 'complete' or 'hypercube'."""
    overlap: bool = True
    """D-PSGD: gossip x_k while computing the gradient at x_k (as published); False: compute,
    then gossip. AD-PSGD always overlaps (it never waits for a neighbour's step)."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise FieldError("variant", f"got {self.variant!r}; allowed: {', '.join(VARIANTS)}")
        gossip_neighbours(self.graph, 2)          # raises on an unknown graph name
        self.check_pipelines()


@register_policy("gossip")
class Gossip(DataParallelPolicy):
    """Decentralised SGD: D-PSGD or AD-PSGD (``variant``) on a Metropolis–Hastings graph."""

    Config = GossipConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, the graph, W and the variant's state."""
        super().setup(ctx)
        self.neighbours = self.group_neighbours(self.config.graph)
        self.weights = metropolis_hastings_weights(self.neighbours)
        self.mail = Mailbox(ctx.world)            # D-PSGD: .round_of[i] is i's step
        self.rngs = [ctx.world.policy_rng("adpsgd", i) for i in range(self.num_workers)]
        self.averagings = 0                       # AD-PSGD: pairwise averagings done

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: the variant's loop."""
        if self.config.variant == "dpsgd":
            return self.dpsgd_worker(ctx, node)
        return self.adpsgd_worker(ctx, node)

    def rejoin(self, node):  # noqa: ANN001
        """Recover, download a live neighbour's model; returns the neighbour (or None)."""
        while True:
            try:
                yield from recover(node)
                peer = yield from fetch_model(self, node, self.neighbours[node.id],
                                              self.node_nbytes(node.id))
                break
            except NodeFailure:
                continue
        learner = self.learners[node.id]
        if peer is not None:
            learner.set_flat(self.learners[peer].get_flat())
        learner.reset_optimizer()
        self.ctx.world.recorder.event("rejoin", node=node.id, peer=peer)
        return peer

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The mean of the live workers' models (no worker holds it); per stage over pipelines."""
        return self.group_means(live, lambda i: self.learners[i].get_flat())


    def dpsgd_worker(self, ctx: RunContext, node):  # noqa: ANN001
        """D-PSGD: gradient at x_i, mix with the neighbours' step-s models, apply the gradient."""
        i = node.id
        learner = self.learners[i]
        nbrs = self.neighbours[i]
        while True:
            try:
                s = self.mail.round_of[i]
                x = None if self.timing_only else learner.get_flat()        # x_{k,i}
                sent_s = ctx.now
                if self.config.overlap:                  # gossip runs during the computation
                    self._gossip(i, s, x)
                loss = yield from compute_gradient(self, node, step=s)
                if not self.config.overlap:
                    sent_s = ctx.now
                    self._gossip(i, s, x)
                received = yield from self.mail.receive(node, nbrs, s)
                if received:                              # x_{k,i} reached the neighbours too
                    ctx.world.recorder.commit_work(i, sent_s)
                if not self.timing_only:
                    grad = learner.get_flat_grad()
                    row = [self.weights[i, j] for j in received]
                    self_weight = 1.0 - sum(row)          # W_ii plus the missing neighbours'
                    learner.set_flat(mix([self_weight, *row], [x, *received.values()]))
                    learner.set_flat_grad(grad)
                learner.optimizer_step()
                self.steps_done[i] = s + 1
                ctx.report(s + 1, loss, node=i)
                self.mail.enter_round(i, s + 1)
            except NodeFailure:
                ctx.world.recorder.discard_uncommitted(i, reason="gossip_failure")
                peer = yield from self.rejoin(node)
                if peer is not None:
                    self.mail.enter_round(i, self.mail.round_of[peer])

    def _gossip(self, i: int, s: int, x) -> None:  # noqa: ANN001
        """Send x_{s,i} to every neighbour of i, tagged with step s."""
        for j in self.neighbours[i]:
            self.mail.send(i, j, s, x, self.node_nbytes(i), label="dpsgd_gossip")

    def adpsgd_worker(self, ctx: RunContext, node):  # noqa: ANN001
        """AD-PSGD: gradient, then an atomic average with one random live neighbour."""
        i = node.id
        learner = self.learners[i]
        over_pipelines = self.pipeline is not None
        while True:
            try:
                loss = grad = None
                if not over_pipelines:
                    loss = learner.compute_grad()             # g_i at the x_i read now
                    grad = None if self.timing_only else learner.get_flat_grad()
                j = exchange = None
                exchange_s = ctx.now
                if self.config.overlap:                       # exchange during the computation
                    j = self._pick_neighbour(i)
                    exchange = None if j is None else self._exchange(i, j)
                if over_pipelines:                            # the pipeline iteration
                    loss = yield from compute_gradient(self, node, step=self.steps_done[i])
                    grad = None if self.timing_only else learner.get_flat_grad()
                else:
                    yield node.compute(seconds=self.step_s, label="fwd_bwd")
                if not self.config.overlap:
                    exchange_s = ctx.now
                    j = self._pick_neighbour(i)
                    exchange = None if j is None else self._exchange(i, j)
                if exchange is not None:
                    delivered = yield from wait_or_fail(node, exchange)
                    if delivered:
                        self._average(i, j)
                        for m in (i, j):              # work applied by then is in both models
                            ctx.world.recorder.commit_work(m, exchange_s)
                if grad is not None:
                    learner.set_flat_grad(grad)
                learner.optimizer_step()
                self.steps_done[i] += 1
                ctx.report(self.steps_done[i], loss, node=i)
            except NodeFailure:
                ctx.world.recorder.discard_uncommitted(i, reason="gossip_failure")
                peer = yield from self.rejoin(node)
                if peer is not None:
                    self.steps_done[i] = max(self.steps_done[i], self.steps_done[peer])

    def _pick_neighbour(self, i: int) -> int | None:
        """A random live neighbour of i (None if none is up)."""
        live = [j for j in self.neighbours[i] if self.ctx.world.nodes[j].is_up]
        return live[int(self.rngs[i].integers(len(live)))] if live else None

    def _exchange(self, i: int, j: int) -> simpy.Event:
        """Swap models with j (``param_bytes`` each way); fires with whether both arrived."""
        network, nbytes = self.ctx.world.network, self.node_nbytes(i)
        transfers = [network.transfer(i, j, nbytes, label="adpsgd_pair"),
                     network.transfer(j, i, nbytes, label="adpsgd_pair")]
        done = simpy.Event(self.ctx.env)

        def landed(ev: simpy.Event) -> None:
            if not ev.ok:
                ev.defused = True
                if not done.triggered:
                    done.succeed(False)
            elif not done.triggered and all(t.processed or t is ev for t in transfers):
                done.succeed(all(t.ok for t in transfers))

        for t in transfers:
            if t.callbacks is None:
                landed(t)
            else:
                t.callbacks.append(landed)
        return done

    def _average(self, i: int, j: int) -> None:
        """x_i = x_j = (x_i + x_j)/2, atomically (nothing else runs at this simulated instant)."""
        self.averagings += 1
        if self.timing_only:
            return
        avg = pairwise_average(self.learners[i].get_flat(), self.learners[j].get_flat())
        self.learners[i].set_flat(avg)
        self.learners[j].set_flat(avg)
