"""DiLoCo (Douillard et al. 2023): H local AdamW steps, then one outer Nesterov step.

Outer round t, every worker i:

1. θ_i ← φ (the global weights);
2. H inner steps of the workload's optimizer on its own data (its optimizer state is its own);
3. outer gradient Δ = (1/k)·Σ_i (φ − θ_i), one all-reduce of ``grad_bytes`` over the network;
4. φ ← Nesterov(φ, Δ) with lr_out and μ (:class:`~policies.data_parallel.outer.OuterNesterov`).

Traffic: one all-reduce every H steps, exactly H times less than DDP for the same steps.
The outer step itself is charged no simulated time (a few vector operations).
Failures (``on_failure``): ``drop`` averages the survivors' outer gradients; ``wait`` holds the
round until the failed worker is back and has redone its H steps. A rejoining worker downloads
φ (``param_bytes``) from a live peer, restarts its inner optimizer state and adopts the peer's
learning-rate schedule position (the position the peer had when it last set θ ← φ), so it
neither warms up again nor runs ahead of the others on the schedule.

Dropped outer gradients (``drop_outer_gradient_p`` = p, the paper's robustness experiment):
each round, each worker's outer gradient is lost in delivery with probability p, independently
(one draw each time worker i sends, from the policy's stream ``("diloco", "drop_outer", i)``;
a round redone under ``wait`` draws again). The
worker still takes part in the all-reduce (the bytes were sent, the collective takes the same
time), but its values do not reach the mean: Δ is the mean of the delivered outer gradients.
If none was delivered, φ and the outer momentum stay as they are. Every worker, a dropped one
included, receives φ and sets θ_i ← φ. Each drop is recorded as event ``outer_gradient_dropped``.
Evaluated: each live worker's own weights θ_i (mean, best, worst); the global weights φ are
reported beside them as the averaged model.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica; each stage has its own φ and all-reduce group of its replicas, on that
stage's weights (``stage_param_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    inner_step,
    rejoin_group,
    schedule_step,
    set_schedule_step,
    wait_or_fail,
)
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.outer import OuterNesterov, OuterNesterovConfig
from policies.data_parallel.pipelines import OverPipelines
from policies.data_parallel.rules import outer_gradient
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class DiLoCoConfig(OverPipelines):
    """Parameters of DiLoCo (defaults: the paper's); over pipelines: see :class:`OverPipelines`."""

    inner_steps: int = 500
    """H, inner steps between synchronisations."""
    outer_lr: float = 0.7
    """lr_out, outer Nesterov learning rate."""
    outer_momentum: float = 0.9
    """μ, outer Nesterov momentum."""
    allreduce: str = "ring"
    """All-reduce schedule of the outer gradients: 'ring', 'tree' or 'halving_doubling'."""
    on_failure: str = "drop"
    """'drop': average the survivors; 'wait': hold the round until the failed worker is back."""
    collective_timeout_s: float = 0.0
    """Seconds the all-reduce waits for a peer that failed during it before it aborts (gloo's
    and NCCL's ``timeout``; torch's defaults 1800 and 600). 0: the failure is seen at once."""
    drop_outer_gradient_p: float = 0.0
    """p in [0, 1], probability that one worker's outer gradient of one round is lost in
    delivery (left out of the mean; its bytes are still sent). 0: none is dropped."""

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise FieldError("inner_steps", f"H must be >= 1, got {self.inner_steps}")
        if not 0.0 <= self.drop_outer_gradient_p <= 1.0:
            raise FieldError("drop_outer_gradient_p", f"must be in [0, 1], got "
                             f"{self.drop_outer_gradient_p}")
        OuterNesterovConfig(lr=self.outer_lr, momentum=self.outer_momentum)
        self.check_pipelines()
        check_sync_options(self.allreduce, self.on_failure, self.collective_timeout_s)


@register_policy("diloco")
class DiLoCo(DataParallelPolicy):
    """Local AdamW steps with a periodic outer Nesterov step on the averaged outer gradient."""

    Config = DiLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        super().setup(ctx)
        cfg = self.config
        # one φ and one all-reduce group per sync group: all workers, or (over pipelines)
        # each stage's replicas on that stage's weights
        members = self.sync_groups()
        self.group_of = {i: k for k, group in enumerate(members) for i in group}
        self.outers = [OuterNesterov(self.learners[group[0]].get_flat(),
                                     config=OuterNesterovConfig(lr=cfg.outer_lr,
                                                                momentum=cfg.outer_momentum))
                       for group in members]
        self.groups = [SyncGroup(ctx.world, group, nbytes=self.group_nbytes(k),
                                 algorithm=cfg.allreduce, on_failure=cfg.on_failure,
                                 combine=self._outer_step, label="diloco_allreduce",
                                 timeout_s=cfg.collective_timeout_s)
                       for k, group in enumerate(members)]
        self.outer, self.group = self.outers[0], self.groups[0]   # plain DiLoCo's only ones
        self.drop_rngs = [ctx.world.policy_rng("diloco", "drop_outer", i)
                          for i in range(self.num_workers)] \
            if cfg.drop_outer_gradient_p > 0 else []  # (1 KiB a node, drawn from only if p > 0)
        # schedule position of each worker when it last set θ ← φ (what a rejoiner adopts)
        self.round_start_step = [0] * self.num_workers

    def _outer_step(self, mean_delta, participants, r):  # noqa: ANN001
        """Run once per round: φ ← Nesterov(φ, Δ); every participant receives the new φ.

        ``mean_delta`` is None in timing-only mode, or when every outer gradient was dropped:
        then φ (and the momentum) stay as they are.
        """
        if self.timing_only:
            return None
        outer = self.outers[self.group_of[participants[0]]]
        if mean_delta is None:
            return outer.phi.clone()
        return outer.step(mean_delta)

    def outer_payload(self, node_id: int, r: int, learner):  # noqa: ANN001
        """What worker ``node_id`` delivers to round ``r``: φ − θ_i, or None if dropped."""
        p = self.config.drop_outer_gradient_p
        if p > 0.0 and self.drop_rngs[node_id].random() < p:
            self.ctx.world.recorder.event("outer_gradient_dropped", node=node_id, round=r)
            return None
        if self.timing_only:
            return None
        return outer_gradient(self.outers[self.group_of[node_id]].phi, learner.get_flat())

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        learner = self.learners[node.id]
        H = self.config.inner_steps
        k = self.group_of[node.id]
        group, outer = self.groups[k], self.outers[k]
        r = 0
        while True:
            try:
                for h in range(H):
                    loss = yield from inner_step(self, node, step=r * H + h)
                    ctx.report(r * H + h + 1, loss, node=node.id)
                delta = self.outer_payload(node.id, r, learner)
                arrived_s = ctx.now
                phi = yield from wait_or_fail(node, group.arrive(node.id, r, delta))
                ctx.world.recorder.metric("sync_s", ctx.now - arrived_s, node=node.id, step=r)
                if phi is not None:
                    learner.set_flat(phi)                      # θ_i ← φ
                self.round_start_step[node.id] = schedule_step(learner)
                r += 1
            except NodeFailure:
                r, peer = yield from rejoin_group(self, node, group, self.group_nbytes(k))
                learner.set_flat(outer.phi)               # the downloaded φ
                learner.reset_optimizer()
                if peer is not None:                           # and the peer's schedule
                    set_schedule_step(learner, self.round_start_step[peer])
                self.round_start_step[node.id] = schedule_step(learner)

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The global weights φ (no worker holds them between outer steps).

        Over pipelines: every stage's φ, in stage order.
        """
        return torch.cat([outer.phi for outer in self.outers])
