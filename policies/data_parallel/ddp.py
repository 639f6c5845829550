"""DDP: every step, all-reduce the gradients and take the same optimizer step everywhere.

Per step of every worker i: compute g_i on its own batch; all-reduce (mean) g = (1/k)·Σ_i g_i over
the network (``ring``: 2(k−1) messages of |θ|/k per worker, ``tree``: 2·log2(k) rounds); every
worker applies g with its own (identical) optimizer. The all-reduce starts when the *last* worker
has its gradient, so a straggler delays everyone.

Failures (``on_failure``): ``drop`` goes on with the survivors (the mean is over them);
``wait`` holds the step until the failed worker is back. A rejoining worker downloads the
current weights and optimizer state from a live peer (``param_bytes`` × (1 + optimizer moments)).
Evaluated: each live worker's own weights (identical replicas: evaluated once); no averaged model.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica; each stage's replicas all-reduce that stage's gradient every step (one
group per stage, ``stage_param_bytes``), i.e. GPipe-style pipelines with data parallelism per
stage, but each worker waits only for its pipeline neighbours and its stage group.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.data_parallel.common import (
    DataParallelPolicy,
    compute_gradient,
    rejoin_group,
    wait_or_fail,
)
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.pipelines import OverPipelines
from sim.errors import NodeFailure
from sim.policy import RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class DDPConfig(OverPipelines):
    """Parameters of DDP; over pipelines: see :class:`OverPipelines`."""

    allreduce: str = "ring"
    """All-reduce schedule: 'ring', 'tree' or 'halving_doubling'."""
    on_failure: str = "drop"
    """'drop': go on without a failed worker; 'wait': hold the step until it is back."""
    collective_timeout_s: float = 0.0
    """Seconds the all-reduce waits for a peer that failed during it before it aborts (gloo's
    and NCCL's ``timeout``; torch's defaults 1800 and 600). 0: the failure is seen at once."""

    def __post_init__(self) -> None:
        check_sync_options(self.allreduce, self.on_failure, self.collective_timeout_s)
        self.check_pipelines()


def optimizer_moments(workload) -> int:  # noqa: ANN001
    """Tensors of optimizer state per parameter: 2 for AdamW (m, v), 1 for SGD momentum."""
    cfg = workload.config
    if cfg.optimizer == "adamw":
        return 2
    return 1 if cfg.momentum else 0


@register_policy("ddp")
class DDP(DataParallelPolicy):
    """Synchronous data parallelism with a gradient all-reduce every step."""

    Config = DDPConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts."""
        super().setup(ctx)
        members = self.sync_groups()          # every worker, or each stage's replicas
        self.group_of = {i: k for k, group in enumerate(members) for i in group}
        self.groups = [SyncGroup(ctx.world, group, nbytes=self.group_nbytes(k),
                                 algorithm=self.config.allreduce,
                                 on_failure=self.config.on_failure, label="ddp_allreduce",
                                 timeout_s=self.config.collective_timeout_s)
                       for k, group in enumerate(members)]
        self.group = self.groups[0]
        moments = optimizer_moments(ctx.workload)
        self.rejoin_nbytes = [self.group_nbytes(k) * (1 + moments) for k in range(len(members))]

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        learner = self.learners[node.id]
        k = self.group_of[node.id]
        group = self.groups[k]
        step = 0                                       # the group round == the global step
        while True:
            try:
                loss = yield from compute_gradient(self, node, step=step)
                # over pipelines a replica no microbatch reached (failures) has no gradient:
                # it takes part but is left out of the mean, as an undelivered payload
                grad = learner.get_flat_grad() if getattr(learner, "has_grad", True) else None
                done = group.arrive(node.id, step, grad)
                mean_grad = yield from wait_or_fail(node, done)
                if mean_grad is not None:
                    learner.set_flat_grad(mean_grad)
                learner.optimizer_step()
                step += 1
                self.steps_done[node.id] = step
                ctx.report(step, loss, node=node.id)
            except NodeFailure:
                step, peer = yield from rejoin_group(self, node, group, self.rejoin_nbytes[k])
                if peer is not None:
                    copy_replica(self.learners[peer], learner)
                self.steps_done[node.id] = step


def copy_replica(src, dst) -> None:  # noqa: ANN001
    """Make ``dst`` a replica of ``src``: weights, optimizer state and schedule, not the data."""
    state = src.snapshot()
    own = dst.snapshot()
    if "data" in own:
        state["data"] = own["data"]
    dst.restore(state)
