"""Quorum DiLoCo: the outer step goes ahead without the slowest workers.

DiLoCo's outer step waits for every worker, so the slowest sets the pace. Asynchronous DiLoCo
variants instead take the outer step once enough workers have contributed, weight each
contribution by the work behind it, and let the late workers catch up from the newest outer
model. dtsim's rule, round r of the outer model φ (k workers, H inner steps per block):

1. Worker i runs inner steps from its block's start s_i (the latest φ it holds).
2. After H steps it *arrives*: it hands the group n_i·(s_i − θ_i), its outer gradient scaled by
   n_i, the tokens it processed in the block, and waits for the round's result.
3. The round's all-reduce starts as soon as q workers have arrived with a full block
   (q = ceil(``quorum_fraction``·k), at most the workers that are up), or ``grace_window_s``
   after the first full arrival, whichever is first. It runs among every worker that has
   handed something in.
4. Outer step, once: Δ̄ = Σ_i n_i Δ_i / Σ_i n_i over the participants, then
   φ ← Nesterov(φ, Δ̄) (DiLoCo's lr_out, μ). Participants set θ_i ← φ and start a new block.
5. A worker that was not in the round is *late*: it sees the new φ at the end of the inner step
   it is in. It hands its partial block (n_i tokens, fewer than H steps' worth) to the next
   round without waiting for it, downloads φ (``param_bytes``) from a live peer and starts a
   new block from it. It catches up instead of falling further behind, and its work still
   reaches the model, weighted by what it did. A partial block started from the φ before the
   latest outer step: that contribution is one round stale.

Only full blocks count toward the quorum (a straggler's crumbs cannot fill it). With q = k and
no grace window nobody is ever late and every n_i is the same: the method is DiLoCo, step for
step (tests/data_parallel/test_quorum.py checks it).

Failures: the quorum counts live workers, so the round never waits for a dead one; a failed
worker's uncommitted work is lost (goodput); on recovery it downloads φ, restarts its inner
optimizer state, adopts a peer's schedule position and starts a new block. A failure inside
the all-reduce blocks the others for ``collective_timeout_s`` (:mod:`sim.collectives`), then
the round re-runs among the survivors.
Evaluated: each live worker's own θ_i; φ is reported beside them as the averaged model.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica; each stage group (that stage's R replicas) has its own φ, outer version
and quorum group, on that stage's weights, with q = ceil(``quorum_fraction``·R). A late worker
cuts its block short as above; its pipeline iterations go on uninterrupted (its step count, the
iteration it takes part in, keeps running). A rejoining worker takes its peer's step count, so
that it enters the iteration its pipeline neighbours are in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import simpy
import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    fetch_model,
    inner_step,
    recover,
    schedule_step,
    set_schedule_step,
    wait_or_fail,
)
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.outer import OuterNesterov, OuterNesterovConfig
from policies.data_parallel.pipelines import OverPipelines
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class QuorumDiLoCoConfig(OverPipelines):
    """Parameters of quorum DiLoCo (outer optimizer defaults: DiLoCo's).

    Over pipelines: see :class:`OverPipelines`.
    """

    inner_steps: int = 500
    """H, inner steps of a full block."""
    outer_lr: float = 0.7
    """lr_out, outer Nesterov learning rate."""
    outer_momentum: float = 0.9
    """μ, outer Nesterov momentum."""
    quorum_fraction: float = 0.75
    """Share of the k workers whose full blocks start a round: q = ceil(fraction·k), in (0, 1].
    1 with no grace window: synchronous DiLoCo. 0.75 is dtsim's default, not a paper's."""
    grace_window_s: float | None = None
    """Seconds after a round's first full block at which it starts whatever the quorum;
    None: no grace window (only the quorum starts a round)."""
    allreduce: str = "ring"
    """All-reduce schedule of the scaled outer gradients: 'ring', 'tree' or 'halving_doubling'."""
    collective_timeout_s: float = 0.0
    """Seconds the all-reduce waits for a peer that failed during it before it aborts."""

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise FieldError("inner_steps", f"H must be >= 1, got {self.inner_steps}")
        if not 0.0 < self.quorum_fraction <= 1.0:
            raise FieldError("quorum_fraction", f"must be in (0, 1], got {self.quorum_fraction}")
        if self.grace_window_s is not None and not 0.0 <= self.grace_window_s < math.inf:
            raise FieldError("grace_window_s", f"seconds >= 0 or None, got {self.grace_window_s}")
        OuterNesterovConfig(lr=self.outer_lr, momentum=self.outer_momentum)
        check_sync_options(self.allreduce, "drop", self.collective_timeout_s)
        self.check_pipelines()


class QuorumGroup(SyncGroup):
    """A :class:`SyncGroup` whose round starts at a quorum of full blocks or a grace window.

    Members hand in contributions with :meth:`contribute` (a payload, the tokens behind it,
    whether it is a full block); a contribution made while a round's all-reduce is running goes
    to the next round. Failed members are dropped from the open round (``on_failure='drop'``).
    """

    def __init__(self, world: Any, members: list[int], *, quorum: int,
                 grace_window_s: float | None, **kwargs: Any) -> None:
        super().__init__(world, members, on_failure="drop", **kwargs)
        self.quorum = quorum
        self.grace_window_s = grace_window_s
        self.tokens: dict[int, dict[int, float]] = {}   # round -> member -> tokens handed in
        self.full: dict[int, dict[int, bool]] = {}      # round -> members with a full block
        self._grace_over: dict[int, bool] = {}          # rounds whose grace window expired
        self._grace_timer: dict[int, simpy.Event] = {}  # the grace timer armed for a round

    def gathering_round(self) -> int:
        """The round a contribution made now goes to (the open one unless it is running)."""
        r = self.open_round
        rnd = self._rounds.get(r)
        return r + 1 if rnd is not None and rnd.running else r

    def contribute(self, node_id: int, payload: torch.Tensor | None, tokens: float, *,
                   full: bool) -> simpy.Event:
        """Hand in ``payload`` (tokens·Δ) for the gathering round; return its done event.

        A second contribution of the same member to the same round is added to the first.
        """
        r = self.gathering_round()
        rnd = self._round(r)
        round_tokens = self.tokens.setdefault(r, {})
        if node_id in rnd.arrivals:
            earlier = rnd.arrivals[node_id]
            if earlier is not None and payload is not None:
                payload = earlier + payload
            tokens += round_tokens[node_id]
        round_tokens[node_id] = tokens
        if full:
            round_full = self.full.setdefault(r, {})
            if not round_full and self.grace_window_s is not None:
                timer = self.env.timeout(self.grace_window_s)
                self._grace_timer[r] = timer
                timer.callbacks.append(lambda ev, r=r: self._grace_expired(r, ev))
            round_full[node_id] = True
        return self.arrive(node_id, r, payload)

    def round_tokens(self, r: int, participants: list[int]) -> float:
        """Σ n_i over the participants of round ``r``."""
        return sum(self.tokens[r][m] for m in participants)

    def forget(self, r: int) -> None:
        """Drop the bookkeeping of a completed round."""
        for table in (self.tokens, self.full, self._grace_over, self._grace_timer):
            table.pop(r, None)

    def _grace_expired(self, r: int, timer: simpy.Event) -> None:
        if r > self.completed and self._grace_timer.get(r) is timer:
            self._grace_over[r] = True
            self._try_start()

    def _pull_forward(self, r: int, rnd: Any) -> None:
        """Move round r + 1's contributions into round ``r``, which is gathering again.

        Contributions made while round r's all-reduce ran went to round r + 1; if that
        all-reduce aborted (a member failed in it), they belong to r, whose quorum may need
        them. Their senders wait on r + 1's event, which now fires with round r's result.
        """
        nxt = self._rounds.pop(r + 1, None)
        if nxt is None:
            return
        tokens = self.tokens.setdefault(r, {})
        full = self.full.setdefault(r, {})
        for m, payload in nxt.arrivals.items():
            if m in rnd.arrivals:
                earlier = rnd.arrivals[m]
                payload = earlier + payload if earlier is not None and payload is not None \
                    else payload
                tokens[m] += self.tokens[r + 1][m]
            else:
                tokens[m] = self.tokens[r + 1][m]
            rnd.arrivals[m] = payload
            rnd.arrived_s[m] = nxt.arrived_s[m]
            if self.full.get(r + 1, {}).get(m):
                full[m] = True
        for table in (self.tokens, self.full, self._grace_over, self._grace_timer):
            table.pop(r + 1, None)          # (a grace timer of round r + 1 no longer counts)
        rnd.done.callbacks.append(lambda ev, later=nxt.done: later.succeed(ev.value))

    def _try_start(self) -> None:
        r = self.open_round
        rnd = self._rounds.get(r)
        if rnd is None or rnd.running:
            return
        self._pull_forward(r, rnd)
        full = sum(1 for m in self.full.get(r, {}) if m in rnd.arrivals)
        live = sum(1 for m in self.members if self.world.nodes[m].is_up)
        needed = max(1, min(self.quorum, live))
        if full >= needed or (full > 0 and self._grace_over.get(r, False)):
            rnd.running = True
            self.env.process(self._run(rnd))


@register_policy("quorum_diloco")
class QuorumDiLoCo(DataParallelPolicy):
    """DiLoCo whose outer step needs only a quorum of full blocks, weighted by tokens."""

    Config = QuorumDiLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, the group and φ before simulated time starts."""
        super().setup(ctx)
        cfg = self.config
        members = self.sync_groups()           # every worker, or each stage's replicas
        self.group_of = {i: k for k, group in enumerate(members) for i in group}
        self.outers = [OuterNesterov(self.learners[group[0]].get_flat(),
                                     config=OuterNesterovConfig(lr=cfg.outer_lr,
                                                                momentum=cfg.outer_momentum))
                       for group in members]
        self.quorum = math.ceil(cfg.quorum_fraction * len(members[0]) - 1e-9)
        self.groups = [QuorumGroup(ctx.world, group, quorum=self.quorum,
                                   grace_window_s=cfg.grace_window_s,
                                   nbytes=self.group_nbytes(k), algorithm=cfg.allreduce,
                                   combine=self._outer_step, label="quorum_diloco_allreduce",
                                   timeout_s=cfg.collective_timeout_s)
                       for k, group in enumerate(members)]
        self.outer, self.group = self.outers[0], self.groups[0]   # plain DP's only ones
        self.tokens_per_step = float(ctx.workload.config.batch * ctx.workload.config.seq)
        self.versions = [0] * len(members)     # outer steps each group has taken so far
        self.round_start_step = [0] * self.num_workers
        self.weights: list[dict[int, float]] = []   # n_i / Σ n of each completed round

    @property
    def version(self) -> int:
        """Outer steps taken so far (group 0's: the only group without pipelines)."""
        return self.versions[0]

    def _outer_step(self, mean, participants, r):  # noqa: ANN001
        """Once per round: Δ̄ = Σ n_i Δ_i / Σ n_i, φ ← Nesterov(φ, Δ̄); returns φ (a copy)."""
        k = self.group_of[participants[0]]
        group, outer = self.groups[k], self.outers[k]
        total = group.round_tokens(r, participants)
        self.weights.append({m: group.tokens[r][m] / total for m in participants})
        group.forget(r)
        self.versions[k] += 1
        if mean is None:
            return None if self.timing_only else outer.phi.clone()
        # ``mean`` is (1/|P|) Σ n_i Δ_i (the all-reduce averages what it is given)
        return outer.step(mean * (len(participants) / total))

    def _payload(self, start: torch.Tensor | None, learner, tokens: float):  # noqa: ANN001
        """n_i·(s_i − θ_i), or None in timing-only mode."""
        if start is None:
            return None
        return tokens * (start - learner.get_flat().to(torch.float32))

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: blocks of up to H steps, as the module says."""
        learner = self.learners[node.id]
        H = self.config.inner_steps
        k = self.group_of[node.id]
        group, outer = self.groups[k], self.outers[k]
        while True:
            try:
                version = self.versions[k]
                start = None if self.timing_only else learner.get_flat().to(torch.float32)
                steps = 0
                while steps < H:
                    loss = yield from inner_step(self, node, step=self.steps_done[node.id])
                    steps += 1
                    ctx.report(self.steps_done[node.id], loss, node=node.id)
                    if self.versions[k] > version and steps < H:
                        break                               # late: φ moved on without us
                tokens = steps * self.tokens_per_step
                payload = self._payload(start, learner, tokens)
                if steps == H:
                    arrived_s = ctx.now
                    done = group.contribute(node.id, payload, tokens, full=True)
                    phi = yield from wait_or_fail(node, done)
                    ctx.world.recorder.metric("sync_s", ctx.now - arrived_s, node=node.id,
                                              step=self.versions[k])
                    if phi is not None:
                        learner.set_flat(phi)               # θ_i ← φ
                    self.round_start_step[node.id] = schedule_step(learner)
                else:
                    group.contribute(node.id, payload, tokens, full=False)
                    ctx.world.recorder.event("late_block", node=node.id, steps=steps,
                                             round=self.versions[k])
                    yield from fetch_model(self, node, group.live_peers(node.id),
                                           self.group_nbytes(k), label="catch_up")
                    if not self.timing_only:
                        learner.set_flat(outer.phi)         # the downloaded φ
                    self.round_start_step[node.id] = schedule_step(learner)
            except NodeFailure:
                yield from self._rejoin(node, learner)

    def _rejoin(self, node, learner):  # noqa: ANN001
        """After a failure: recover, download φ, fresh optimizer, a peer's schedule position.

        Over pipelines it also takes the peer's step count (the iteration to enter).
        """
        k = self.group_of[node.id]
        group = self.groups[k]
        while True:
            try:
                yield from recover(node)
                group.join(node.id, group.open_round)
                ctx = self.ctx
                ctx.world.recorder.event("rejoin", node=node.id, round=self.versions[k])
                peer = yield from fetch_model(self, node, group.live_peers(node.id),
                                              self.group_nbytes(k))
                break
            except NodeFailure:
                continue
        if not self.timing_only:
            learner.set_flat(self.outers[k].phi)
        learner.reset_optimizer()
        if peer is not None:
            set_schedule_step(learner, self.round_start_step[peer])
            if self.pipeline is not None:
                self.steps_done[node.id] = self.steps_done[peer]
        self.round_start_step[node.id] = schedule_step(learner)

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The global weights φ (over pipelines: every stage's, in order)."""
        return torch.cat([outer.phi for outer in self.outers])
