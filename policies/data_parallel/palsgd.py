"""PALSGD (pseudo-asynchronous local SGD, 2025): DiLoCo with probabilistic pulls instead of steps.

1. Warm start: K0 steps of plain DDP (gradient all-reduce every step).
2. Then each local step of worker i, with probability p it skips its forward/backward and pulls
   towards its copy x̄ of the last global model, x ← x − (γ/p)·η·(x − x̄) (no communication, no
   compute time charged); otherwise it takes a normal inner step with rate γ/(1 − p), where γ is
   the workload's scheduled rate (:func:`~policies.data_parallel.rules.palsgd_pull`).
3. Every H local steps, DiLoCo's outer step (shared :class:`OuterNesterov`): Δ = mean(x̄ − x_i),
   Nesterov update of x̄, x_i ← x̄.

What the reference code (Hiroki11x/Pseudo-Asynchronous-LocalSGD, ``postadaptive_localsgd
_decoupled.py``) does beyond that, and dtsim charges or reproduces:

- its warm-up all-reduces the optimizer state (AdamW's m and v) after the gradients at every
  DDP step (``average_optimizer_state``), so a warm-up step moves ``grad_bytes`` plus one
  ``param_bytes`` per optimizer moment (one collective here; the math is a no-op, the replicas'
  states are identical);
- its example run (``is_intended_impl False``, ``grad_accu_step`` 16) tests "time to
  average?" on every micro-batch call of the step that ends a round, so it all-reduces and
  steps the outer optimizer 16 times per synchronisation: once with Δ, then 15 times with the
  outer gradient x̄ − x_i = 0 (x_i was just set to x̄), i.e. momentum-only Nesterov steps,
  which multiply the first round's step from 0.19·Δ to 0.83·Δ at lr_out 0.1, μ 0.9.
  ``outer_steps_per_sync`` = R repeats exactly that: R all-reduces, each followed by x_i ← x̄.
  R = 1 is the paper's Algorithm 1 (the reference's default ``is_intended_impl True``).

Its wall-clock gain over DDP in a compute-bound setting comes from the skipped fraction p of
forward/backward passes and the H-fold rarer communication.
Failures (``on_failure``, as DiLoCo): ``drop`` goes on without the failed worker, which rejoins
at the next outer-round boundary (downloading x̄, ``param_bytes``); ``wait`` holds the current
all-reduce (DDP step in the warm start, outer round after it) until it is back.
Evaluated: each live worker's own weights x_i (mean, best, worst); after the warm start the
global model x̄ is reported beside them as the averaged model.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.data_parallel.common import (
    DataParallelPolicy,
    inner_step,
    rejoin_group,
    wait_or_fail,
)
from policies.data_parallel.ddp import copy_replica, optimizer_moments
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.outer import OuterNesterov, OuterNesterovConfig
from policies.data_parallel.pipelines import NotOverPipelines
from policies.data_parallel.rules import outer_gradient, palsgd_inner_lr, palsgd_pull
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy

PIPELINES_REFUSAL = ("PALSGD skips a worker's forward/backward on that worker's own draw, but a "
                     "stage replica that skips its part of a pipeline iteration drops every "
                     "microbatch routed through it")


@dataclass(frozen=True, kw_only=True)
class PALSGDConfig(NotOverPipelines):
    """Parameters of PALSGD (defaults: the reference's config).

    Its example run uses H = 32, η = 1, K0 = 32 with AdamW lr 0.01 on 4 workers, as
    ``scenarios/dp-palsgd.toml`` does.
    """

    inner_steps: int = 100
    """H, local steps between outer steps."""
    skip_probability: float = 0.2
    """p, probability that a local step is a pull instead of a gradient step."""
    eta: float = 0.5
    """η, strength of the pull towards x̄."""
    warmup_ddp_steps: int = 32
    """K0, plain DDP steps before the local phase."""
    outer_lr: float = 0.1
    """lr_out of the outer Nesterov step (the reference's 0.1; DiLoCo's default is 0.7)."""
    outer_momentum: float = 0.9
    """μ of the outer Nesterov step."""
    outer_steps_per_sync: int = 1
    """R, outer Nesterov steps (each one all-reduce) per synchronisation: the first on Δ, the
    others on the then-zero x̄ − x_i (momentum only). 1: the paper's Algorithm 1; the reference's
    example run takes one per micro-batch of its 16-step gradient accumulation: 16."""
    allreduce: str = "ring"
    """All-reduce schedule: 'ring', 'tree' or 'halving_doubling'."""
    on_failure: str = "drop"
    """'drop' or 'wait', as DiLoCo."""
    collective_timeout_s: float = 0.0
    """Seconds an all-reduce waits for a peer that failed during it before it aborts."""

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise FieldError("inner_steps", f"H must be >= 1, got {self.inner_steps}")
        if not 0.0 < self.skip_probability < 1.0:
            raise FieldError("skip_probability",
                             f"p must be in (0, 1), got {self.skip_probability}")
        if self.eta <= 0:
            raise FieldError("eta", f"must be > 0, got {self.eta}")
        if self.warmup_ddp_steps < 0:
            raise FieldError("warmup_ddp_steps", f"K0 must be >= 0, got {self.warmup_ddp_steps}")
        if self.outer_steps_per_sync < 1:
            raise FieldError("outer_steps_per_sync",
                             f"R must be >= 1, got {self.outer_steps_per_sync}")
        OuterNesterovConfig(lr=self.outer_lr, momentum=self.outer_momentum)
        check_sync_options(self.allreduce, self.on_failure, self.collective_timeout_s)
        self.refuse_pipelines(PIPELINES_REFUSAL)


@register_policy("palsgd")
class PALSGD(DataParallelPolicy):
    """DDP warm start, then local steps with random pulls and periodic outer Nesterov steps."""

    Config = PALSGDConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        super().setup(ctx)
        cfg = self.config
        members = list(range(self.num_workers))
        self.ddp_nbytes = self.timing.param_bytes * (1 + optimizer_moments(ctx.workload))
        warmup_nbytes = (self.timing.grad_bytes
                         + self.timing.param_bytes * optimizer_moments(ctx.workload))
        self.ddp_group = SyncGroup(ctx.world, members, nbytes=warmup_nbytes,
                                   algorithm=cfg.allreduce, on_failure=cfg.on_failure,
                                   label="palsgd_ddp_allreduce",
                                   timeout_s=cfg.collective_timeout_s)
        self.outer = OuterNesterov(self.learners[0].get_flat(), config=OuterNesterovConfig(
            lr=cfg.outer_lr, momentum=cfg.outer_momentum))
        self.outer_group = SyncGroup(ctx.world, members, nbytes=self.timing.grad_bytes,
                                     algorithm=cfg.allreduce, on_failure=cfg.on_failure,
                                     combine=self._outer_step, label="palsgd_outer_allreduce",
                                     timeout_s=cfg.collective_timeout_s)
        self.local_phase = cfg.warmup_ddp_steps == 0
        self.rngs = [ctx.world.policy_rng("palsgd", "skip", i) for i in members]
        self.pulls = [0] * self.num_workers

    def _outer_step(self, mean_delta, participants, r):  # noqa: ANN001
        return None if mean_delta is None else self.outer.step(mean_delta)

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        cfg, i = self.config, node.id
        learner = self.learners[i]
        step, r = 0, 0                   # local steps done; outer all-reduces done
        while True:
            try:
                while step < cfg.warmup_ddp_steps:            # 1. DDP warm start
                    yield node.compute(seconds=self.step_s, label="fwd_bwd")
                    loss = learner.compute_grad()
                    mean = yield from wait_or_fail(
                        node, self.ddp_group.arrive(i, step, learner.get_flat_grad()))
                    if mean is not None:
                        learner.set_flat_grad(mean)
                    learner.optimizer_step()
                    step += 1
                    ctx.report(step, loss, node=i)
                if not self.local_phase:                      # replicas are identical here
                    self.local_phase = True
                    self.outer.phi = learner.get_flat()
                while r % cfg.outer_steps_per_sync:           # a rejoiner ends its sync
                    yield from self._outer_allreduce(node, r)
                    r += 1
                learner.lr_scale = palsgd_inner_lr(1.0, cfg.skip_probability)  # γ/(1−p)
                for _ in range(cfg.inner_steps):               # 2. local steps
                    if self.rngs[i].random() < cfg.skip_probability:
                        self._pull(learner)
                        self.pulls[i] += 1
                        loss = None
                    else:
                        loss = yield from inner_step(self, node)
                    step += 1
                    ctx.report(step, loss, node=i)
                for _ in range(cfg.outer_steps_per_sync):      # 3. outer step(s)
                    yield from self._outer_allreduce(node, r)
                    r += 1
            except NodeFailure:
                step, r = yield from self.rejoin(node, step)

    def _outer_allreduce(self, node, r: int):  # noqa: ANN001
        """Outer all-reduce number ``r``: send x̄ − x_i, get the new x̄, set x_i ← x̄."""
        learner = self.learners[node.id]
        delta = None if self.timing_only else outer_gradient(self.outer.phi, learner.get_flat())
        phi = yield from wait_or_fail(node, self.outer_group.arrive(node.id, r, delta))
        if phi is not None:
            learner.set_flat(phi)

    def _pull(self, learner) -> None:  # noqa: ANN001
        """Pull: x ← x − (γ/p)·η·(x − x̄), with γ the scheduled inner rate."""
        if self.timing_only:
            return
        cfg = self.config
        gamma = learner.lr / learner.lr_scale
        learner.set_flat(palsgd_pull(learner.get_flat(), self.outer.phi, gamma=gamma,
                                     p=cfg.skip_probability, eta=cfg.eta))

    def rejoin(self, node, step: int):  # noqa: ANN001
        """Back in the DDP warm start (``wait`` only) or at an outer-round boundary."""
        cfg, learner = self.config, self.learners[node.id]
        in_warmup = self.ddp_group.open_round < cfg.warmup_ddp_steps
        if in_warmup and cfg.on_failure == "wait":
            s, peer = yield from rejoin_group(self, node, self.ddp_group, self.ddp_nbytes)
            if peer is not None:
                copy_replica(self.learners[peer], learner)
            return s, 0
        r, _peer = yield from rejoin_group(self, node, self.outer_group, self.timing.param_bytes)
        syncs = -(-r // cfg.outer_steps_per_sync)     # entered mid-sync: its local steps are done
        learner.set_flat(self.outer.phi)
        learner.reset_optimizer()
        return max(step, cfg.warmup_ddp_steps + syncs * cfg.inner_steps), r

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The global model x̄ after the warm start (none before: replicas are identical)."""
        return self.outer.phi if self.local_phase else None
