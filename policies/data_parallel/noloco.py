"""NoLoCo (Gensyn 2025): no all-reduce; each outer step averages inside a random pair.

Every worker i keeps fast weights θ_i (its learner), slow weights φ_i and an outer momentum δ_i.
Outer round r, after H inner steps:

1. Pairing: every worker draws the same permutation of the k workers from a seed shared by all
   and r (:func:`~policies.data_parallel.mixing.shared_seed_pairing`); no coordination message.
2. Exchange inside the pair {root, other} (only with the partner, never with everyone). Each
   contributes φ and θ − φ (2 values per parameter); both end with the pair means. ``exchange``:

   - ``"reduce_to_root"`` (default; what the reference code does): for each parameter tensor in
     turn, with blocking sends, the other sends its φ_t and (θ − φ)_t to the root (one transfer
     of 2·n_t values), then the root sends the two means back (another 2·n_t values). Every
     transfer waits for the one before, so one exchange costs, on an uncontended path of
     latency α and bandwidth β, Σ_t 2·(α + 2·n_t·b/β) = 2·T·α + 4·|θ|·b/β for T tensors
     (:meth:`~workloads.timing.TimingModel.tensor_params`).
   - ``"swap"``: both send their 2·``param_bytes`` message at once, in one round: α + 2·|θ|·b/β.
     Cheaper than the reference; kept to measure what the reference's protocol costs.
3. δ_i ← β·δ_i + γ·mean(θ − φ) + γ·(mean(φ) − φ_i) over the pair; φ_i ← φ_i + δ_i; θ_i ← φ_i
   (:func:`~policies.data_parallel.rules.noloco_outer_step`). Optimizer state is never averaged.

Failures: a partner that is down (or whose message or exchange is cut) drops out of that round's
pairing and the worker takes the outer step alone (group of one). A rejoining worker downloads φ
from a random live peer (``param_bytes``), takes it as both φ and θ with δ = 0 and a fresh inner
optimizer, and resumes at that peer's round.
Goodput: a worker's compute up to a completed exchange is in its partner's weights too and
survives; what it computed since then is lost if it fails (it rejoins with a peer's φ).
Evaluated model: each live worker's own weights θ_i (mean, best, worst); the mean of the slow
weights φ_i is reported beside them as the averaged model.

Over pipelines (``pipeline_stages`` > 1, the paper's setting with ``routing = "random"``,
:mod:`~policies.data_parallel.pipelines`): every worker is one stage replica and pairs form
among the replicas of the same stage, exchanging that stage's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import simpy
import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    fetch_model,
    inner_step,
    recover,
    wait_or_fail,
)
from policies.data_parallel.mailbox import Mailbox
from policies.data_parallel.mixing import shared_seed_pairs
from policies.data_parallel.pipelines import OverPipelines
from policies.data_parallel.rules import average, noloco_outer_step
from sim.errors import FieldError, NodeFailure, SimFailure
from sim.policy import RunContext, register_policy

EXCHANGES = ("reduce_to_root", "swap")


def reduce_to_root_cost_s(tensor_message_nbytes: list[float], latency_s: float,
                          bandwidth_Bps: float) -> float:
    """Closed form of one reference exchange on an uncontended path (alpha-beta model).

    Per tensor t one message of m_t bytes to the root and one back, each α + m_t/β, one after
    the other: Σ_t 2·(α + m_t/β) = 2·T·α + 2·Σ_t m_t/β, with m_t = 2·n_t·b (φ and θ − φ).
    """
    return sum(2.0 * (latency_s + m / bandwidth_Bps) for m in tensor_message_nbytes)


@dataclass(eq=False)
class _PairExchange:
    """One pair's reduce-to-root exchange in one round.

    ``messages``: what each member brought; ``started`` fires when both have (the transfer
    chain runs); ``done`` fires with True when the chain completed, False when it was cut.
    ``closed``: a member gave up waiting (its partner dropped out); nobody starts it any more.
    """

    root: int
    other: int
    started: simpy.Event
    done: simpy.Event
    messages: dict[int, Any] = field(default_factory=dict)
    closed: bool = False


@dataclass(frozen=True, kw_only=True)
class NoLoCoConfig(OverPipelines):
    """Parameters of NoLoCo (defaults: the paper's); over pipelines: see :class:`OverPipelines`.

    The paper's setting is ``pipeline_stages`` > 1 with ``routing = "random"``.
    """

    inner_steps: int = 50
    """H, inner steps between outer steps."""
    beta: float = 0.5
    """β, outer momentum."""
    gamma: float = 0.7
    """γ, outer step size."""
    exchange: str = "reduce_to_root"
    """How a pair exchanges: 'reduce_to_root' (the reference code: per parameter tensor, the
    other sends to the root, which sends the means back; blocking sends) or 'swap' (both send
    at once, one round)."""

    def __post_init__(self) -> None:
        if self.exchange not in EXCHANGES:
            raise FieldError("exchange", f"got {self.exchange!r}; allowed: {', '.join(EXCHANGES)}")
        if self.inner_steps < 1:
            raise FieldError("inner_steps", f"H must be >= 1, got {self.inner_steps}")
        if not 0.0 <= self.beta < 1.0:
            raise FieldError("beta", f"must be in [0, 1), got {self.beta}")
        if self.gamma <= 0:
            raise FieldError("gamma", f"must be > 0, got {self.gamma}")
        self.check_pipelines()


@register_policy("noloco")
class NoLoCo(DataParallelPolicy):
    """Gossip-style outer steps in shared-seed random pairs, with a modified Nesterov momentum."""

    Config = NoLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        super().setup(ctx)
        k = self.num_workers
        self.phi = [self.learners[i].get_flat() for i in range(k)]       # φ_i
        self.delta = [torch.zeros_like(phi) for phi in self.phi]          # δ_i
        # pairs form inside a sync group: all workers, or (over pipelines) one stage's replicas
        self.members = self.sync_groups()
        self.group_of = {i: g for g, group in enumerate(self.members) for i in group}
        self.mail = Mailbox(ctx.world)          # .round_of[i]: the outer round worker i is in
        self.pairing_seed = int(ctx.world.policy_rng("noloco", "pairing").integers(2**31))
        self._pairings: dict[int, list[int]] = {}
        self._roots: dict[int, set[int]] = {}
        # φ_i and θ_i − φ_i, per sync group (the whole model, or one stage)
        self.group_message_nbytes = [2 * self.group_nbytes(g) for g in range(len(self.members))]
        self.message_nbytes = self.group_message_nbytes[0]
        b = self.timing.bytes_per_param
        # reduce_to_root: one transfer each way per parameter tensor, 2 values per parameter
        tensors = ([self.timing.tensor_params()] if self.pipeline is None else
                   self.timing.stage_tensor_params(self.pipeline.num_stages, head_stage="last"))
        self.group_tensor_nbytes = [[2 * n * b for n in group] for group in tensors]
        self.tensor_message_nbytes = self.group_tensor_nbytes[0]
        self._exchanges: dict[tuple[int, int], _PairExchange] = {}   # (round, root) -> exchange

    # -- the worker ------------------------------------------------------------------------

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        H = self.config.inner_steps
        while True:
            try:
                r = self.mail.round_of[node.id]
                for h in range(H):
                    loss = yield from inner_step(self, node, step=r * H + h)
                    ctx.report(r * H + h + 1, loss, node=node.id)
                yield from self.outer_round(ctx, node, r)
                self.mail.enter_round(node.id, r + 1)
            except NodeFailure:
                # its work since its last completed exchange lived only in its own weights
                ctx.world.recorder.discard_uncommitted(node.id, reason="noloco_failure")
                yield from self.rejoin(node)

    def partner_of(self, i: int, r: int) -> int:
        """Worker i's partner in round r (i itself when unpaired); the same on every worker."""
        if r not in self._pairings:
            if len(self._pairings) > 8:                       # workers are a few rounds apart
                oldest = min(self._pairings)
                del self._pairings[oldest], self._roots[oldest]
            partner, roots = list(range(self.num_workers)), set()
            for members in self.members:        # the same draw in every group (per stage)
                for a, b in shared_seed_pairs(self.pairing_seed, r, len(members)):
                    partner[members[a]], partner[members[b]] = members[b], members[a]
                    roots.add(members[a])
            self._pairings[r] = partner
            self._roots[r] = roots
        return self._pairings[r][i]

    def is_root(self, i: int, r: int) -> bool:
        """Whether worker i is its pair's root in round r (the one the other reduces to)."""
        self.partner_of(i, r)
        return i in self._roots[r]

    def outer_round(self, ctx: RunContext, node, r: int):  # noqa: ANN001
        """Exchange with this round's partner, then take the modified Nesterov step."""
        i, env = node.id, ctx.env
        start = env.now
        j = self.partner_of(i, r)
        theta = None if self.timing_only else self.learners[i].get_flat()
        message = None if self.timing_only else (self.phi[i], theta)
        paired, received = False, {}
        if j != i and self.config.exchange == "swap":
            self.mail.send(i, j, r, message, self.group_message_nbytes[self.group_of[i]],
                           label="noloco_pair")
            received = yield from self.mail.receive(node, [j], r)
            paired = j in received
        elif j != i:
            paired, received = yield from self.reduce_to_root(node, j, r, message)
        if not self.timing_only:
            thetas, phis = [theta], [self.phi[i]]
            if paired:
                phis.append(received[j][0])
                thetas.append(received[j][1])
            self.phi[i], self.delta[i] = noloco_outer_step(
                self.phi[i], self.delta[i], group_thetas=thetas, group_phis=phis,
                beta=self.config.beta, gamma=self.config.gamma)
            self.learners[i].set_flat(self.phi[i])              # θ_i ← φ_i
        ctx.world.recorder.metric("sync_s", env.now - start, node=i, step=r)
        if paired:                      # its work so far is in the partner's weights too
            ctx.world.recorder.commit_work(i, start)
        if j != i and not paired:
            ctx.world.recorder.event("partner_missing", node=i, partner=j, round=r)

    def reduce_to_root(self, node, j: int, r: int, message):  # noqa: ANN001
        """The reference exchange with partner j; returns ``(paired, {j: j's message})``.

        A generator. Waits until both have arrived (or j has dropped out of round r: down, or
        already past it), then both wait for the chain of per-tensor transfers
        (:meth:`_transfer_chain`); a cut chain leaves each to step alone.
        """
        i, world = node.id, self.ctx.world
        root = i if self.is_root(i, r) else j
        key = (r, root)
        ex = self._exchanges.get(key)
        if ex is None:
            if self._dropped_out(j, r):
                return False, {}
            ex = self._exchanges[key] = _PairExchange(
                root=root, other=j if root == i else i,
                started=simpy.Event(world.env), done=simpy.Event(world.env))
        if ex.closed:
            return False, {}
        ex.messages[i] = message
        if len(ex.messages) == 2:
            ex.started.succeed()
            world.env.process(self._transfer_chain(ex, key))
        while not ex.started.triggered:
            if self._dropped_out(j, r):
                ex.closed = True
                self._exchanges.pop(key, None)
                return False, {}
            yield world.env.any_of([ex.started, node.failed_event(),
                                    world.nodes[j].failed_event(), self.mail.moved_event(j)])
            if not node.is_up:
                ex.messages.pop(i, None)
                raise NodeFailure(i, world.now)
        ok = yield from wait_or_fail(node, ex.done)
        return (True, {j: ex.messages[j]}) if ok else (False, {})

    def _dropped_out(self, j: int, r: int) -> bool:
        """Whether worker j will not come to round r's exchange (down, or already past r)."""
        return not self.ctx.world.nodes[j].is_up or self.mail.round_of[j] > r

    def _transfer_chain(self, ex: _PairExchange, key: tuple[int, int]):
        """Per tensor t: other → root (φ_t, (θ − φ)_t), then root → other (the two means)."""
        network = self.ctx.world.network
        try:
            for nbytes in self.group_tensor_nbytes[self.group_of[ex.root]]:
                yield network.transfer(ex.other, ex.root, nbytes, label="noloco_reduce")
                yield network.transfer(ex.root, ex.other, nbytes, label="noloco_return")
            ok = True
        except SimFailure:
            ok = False
        del self._exchanges[key]
        ex.done.succeed(ok)

    # -- failure and rejoin ----------------------------------------------------------------

    def rejoin(self, node):  # noqa: ANN001
        """Recover, download φ from a live peer, resume at the peer's round."""
        i = node.id
        while True:
            try:
                yield from recover(node)
                group = self.group_of[i]
                peers = [p for p in self.members[group] if p != i]
                peer = yield from fetch_model(self, node, peers, self.group_nbytes(group))
                break
            except NodeFailure:
                continue
        if peer is not None:
            self.phi[i] = self.phi[peer].clone()
            self.delta[i] = torch.zeros_like(self.phi[i])
            self.learners[i].set_flat(self.phi[i])
            self.learners[i].reset_optimizer()
            self.mail.enter_round(i, self.mail.round_of[peer])
        self.ctx.world.recorder.event("rejoin", node=i, peer=peer, round=self.mail.round_of[i])

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The mean of the live workers' slow weights φ_i (no worker holds it).

        Over pipelines: each stage's mean, in stage order.
        """
        up = set(live)
        means = [average([self.phi[i] for i in members if i in up] or
                         [self.phi[i] for i in members]) for members in self.members]
        return means[0] if len(means) == 1 else torch.cat(means)
