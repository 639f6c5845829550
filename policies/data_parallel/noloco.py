"""NoLoCo (Gensyn 2025): no all-reduce; each outer step averages inside a random pair.

Every worker i keeps fast weights θ_i (its learner), slow weights φ_i and an outer momentum δ_i.
Outer round r, after H inner steps:

1. Pairing: every worker draws the same permutation of the k workers from a seed shared by all
   and r (:func:`~policies.data_parallel.mixing.shared_seed_pairing`); no coordination message.
2. Exchange: i sends φ_i and θ_i − φ_i (2·``param_bytes``) to its partner j and waits for j's
   message (only for j, never for everyone).
3. δ_i ← β·δ_i + γ·mean(θ − φ) + γ·(mean(φ) − φ_i) over the pair; φ_i ← φ_i + δ_i; θ_i ← φ_i
   (:func:`~policies.data_parallel.rules.noloco_outer_step`). Optimizer state is never averaged.

Failures: a partner that is down (or whose message is cut) drops out of that round's pairing and
the worker takes the outer step alone (group of one). A rejoining worker downloads φ from a random
live peer (``param_bytes``), takes it as both φ and θ with δ = 0 and a fresh inner optimizer, and
resumes at that peer's round.
Evaluated model: the mean of the live workers' slow weights φ_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    fetch_model,
    inner_step,
    recover,
)
from policies.data_parallel.mailbox import Mailbox
from policies.data_parallel.mixing import shared_seed_pairing
from policies.data_parallel.rules import average, noloco_outer_step
from sim.errors import NodeFailure
from sim.policy import RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class NoLoCoConfig:
    """Parameters of NoLoCo (defaults: the paper's)."""

    inner_steps: int = 50
    """H, inner steps between outer steps."""
    beta: float = 0.5
    """β, outer momentum."""
    gamma: float = 0.7
    """γ, outer step size."""

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise ValueError(f"inner_steps: H must be >= 1, got {self.inner_steps}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta: must be in [0, 1), got {self.beta}")
        if self.gamma <= 0:
            raise ValueError(f"gamma: must be > 0, got {self.gamma}")


@register_policy("noloco")
class NoLoCo(DataParallelPolicy):
    """Gossip-style outer steps in shared-seed random pairs, with a modified Nesterov momentum."""

    Config = NoLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        super().setup(ctx)
        k = self.num_workers
        phi0 = self.learners[0].get_flat()
        self.phi = [phi0.clone() for _ in range(k)]              # φ_i
        self.delta = [torch.zeros_like(phi0) for _ in range(k)]  # δ_i
        self.mail = Mailbox(ctx.world)          # .round_of[i]: the outer round worker i is in
        self.pairing_seed = int(ctx.world.policy_rng("noloco", "pairing").integers(2**31))
        self._pairings: dict[int, list[int]] = {}
        self.message_nbytes = 2 * self.timing.param_bytes        # φ_i and θ_i − φ_i

    # -- the worker ------------------------------------------------------------------------

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        H = self.config.inner_steps
        while True:
            try:
                r = self.mail.round_of[node.id]
                for h in range(H):
                    loss = yield from inner_step(self, node)
                    ctx.report(r * H + h + 1, loss, node=node.id)
                yield from self.outer_round(ctx, node, r)
                self.mail.enter_round(node.id, r + 1)
            except NodeFailure:
                yield from self.rejoin(node)

    def partner_of(self, i: int, r: int) -> int:
        """Worker i's partner in round r (i itself when unpaired); the same on every worker."""
        if r not in self._pairings:
            if len(self._pairings) > 8:                       # workers are a few rounds apart
                del self._pairings[min(self._pairings)]
            self._pairings[r] = shared_seed_pairing(self.pairing_seed, r, self.num_workers)
        return self._pairings[r][i]

    def outer_round(self, ctx: RunContext, node, r: int):  # noqa: ANN001
        """Exchange with this round's partner, then take the modified Nesterov step."""
        i, env = node.id, ctx.env
        start = env.now
        j = self.partner_of(i, r)
        theta = None if self.timing_only else self.learners[i].get_flat()
        message = None if self.timing_only else (self.phi[i], theta)
        paired = False
        if j != i:
            self.mail.send(i, j, r, message, self.message_nbytes, label="noloco_pair")
            received = yield from self.mail.receive(node, [j], r)
            paired = j in received
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
        if j != i and not paired:
            ctx.world.recorder.event("partner_missing", node=i, partner=j, round=r)

    # -- failure and rejoin ----------------------------------------------------------------

    def rejoin(self, node):  # noqa: ANN001
        """Recover, download φ from a live peer, resume at the peer's round."""
        i = node.id
        while True:
            try:
                yield from recover(node)
                peers = [p for p in range(self.num_workers) if p != i]
                peer = yield from fetch_model(self, node, peers, self.timing.param_bytes)
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

    def evaluate(self, ctx: RunContext) -> float | None:
        """Held-out loss of the model this method evaluates (see the module docstring)."""
        live = [n.id for n in ctx.world.nodes if n.is_up] or list(range(self.num_workers))
        return self.evaluate_flat(average([self.phi[i] for i in live]))
