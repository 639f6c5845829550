"""Streaming DiLoCo (Douillard et al. 2025): DiLoCo's outer step, one fragment at a time.

Composition (STYLE.md #4): DiLoCo's outer optimizer (:class:`OuterNesterov`, one momentum per
fragment) + fragments + an overlapped α-merge + 4-bit outer gradients.

- Fragments: layer l of the learner goes to fragment l mod P
  (:func:`~policies.data_parallel.mixing.layer_stride_fragments`). Fragment p sends its outer
  gradient after steps t = p·H/P + q·H (q ≥ 1): every fragment syncs every H steps, offset so
  that the P syncs of one period are spread evenly. Each sync moves ``grad_bytes``/P.
- Overlap τ: the outer gradient is sent at step t; the worker keeps training and merges at
  step t + τ (0 ≤ τ < H/P): θ_p ← α·θ_p,local + (1 − α)·φ_p (α = 0 overwrites, as DiLoCo).
- Quantisation: each worker's outer gradient travels as 4-bit E3M0 codes (``grad_bytes``/P ×
  4/32 on the wire) and the mean is taken in float32 (:mod:`~policies.data_parallel.quantize`).
  Simulated collectives reduce the dequantised values; re-quantising partial sums on each hop of
  a real ring is not modelled.

With P = 1, τ = 0, α = 0 and no quantisation this is DiLoCo exactly (tests check it, with and
without a crash under ``wait``).

Failures (``on_failure``, the same :class:`SyncGroup` rule as DiLoCo, one group per fragment):

- ``drop``: a worker that fails leaves every fragment's group; it rejoins at the end of the
  next fragment-0 round: downloads φ (``param_bytes``), sets θ ← φ, restarts its inner optimizer
  and takes part from each fragment's next sync on.
- ``wait``: every fragment's group keeps expecting the worker, so the peers stop at the first
  fragment round the worker has not sent (the earliest open one, fragment p* sent after step
  s*): they train on for at most τ steps and block at its merge. Back up, the worker downloads
  φ, sets θ ← φ, restarts its inner optimizer and redoes the H steps of fragment p*'s round
  from step s* − H, as a DiLoCo worker redoes its round; sync points of rounds that completed
  while it was down are skipped, every open round gets its outer gradient.

Either way the rejoiner's learning-rate schedule moves to the step it resumes at (the peers'
position: every worker takes one optimizer step per step).
Evaluated: each live worker's own weights θ_i (mean, best, worst); the global weights φ are
reported beside them as the averaged model.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica; each stage group (that stage's replicas) has its own φ and its own P
fragments, made of that stage's layers (layer l of the stage in fragment l mod P), each synced
among the stage's replicas with ``stage_param_bytes``/P. The schedule (offsets, τ, α) is the
same in every stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    fetch_model,
    inner_step,
    recover,
    set_schedule_step,
    wait_or_fail,
)
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.mixing import layer_stride_fragments
from policies.data_parallel.outer import OuterNesterov, OuterNesterovConfig
from policies.data_parallel.pipelines import OverPipelines
from policies.data_parallel.quantize import quantized_nbytes, roundtrip_e3m0
from policies.data_parallel.rules import alpha_merge, outer_gradient
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class StreamingDiLoCoConfig(OverPipelines):
    """Parameters of Streaming DiLoCo; over pipelines: see :class:`OverPipelines`."""

    inner_steps: int = 100
    """H, inner steps between two syncs of the same fragment."""
    num_fragments: int = 3
    """P, number of fragments (layer l belongs to fragment l mod P)."""
    overlap_steps: int = 1
    """τ, inner steps between sending a fragment's outer gradient and merging the result;
    0 <= τ < H/P (0: wait for the all-reduce at once)."""
    alpha: float = 0.5
    """α, share of the local fragment kept at the merge (0: overwrite with the global value)."""
    quantize: bool = True
    """Send outer gradients as 4-bit E3M0 codes (False: float32)."""
    outer_lr: float = 0.7
    """lr_out, outer Nesterov learning rate."""
    outer_momentum: float = 0.9
    """μ, outer Nesterov momentum (one buffer per fragment)."""
    allreduce: str = "ring"
    """All-reduce schedule: 'ring', 'tree' or 'halving_doubling'."""
    on_failure: str = "drop"
    """'drop': fragments sync among the survivors; 'wait': a fragment's round waits until the
    failed worker is back and has redone its part."""
    collective_timeout_s: float = 0.0
    """Seconds an all-reduce waits for a peer that failed during it before it aborts."""

    def __post_init__(self) -> None:
        if self.num_fragments < 1:
            raise FieldError("num_fragments", f"P must be >= 1, got {self.num_fragments}")
        if self.inner_steps < self.num_fragments:
            raise FieldError("inner_steps", f"H={self.inner_steps} must be >= num_fragments="
                             f"{self.num_fragments}")
        if not 0 <= self.overlap_steps < self.inner_steps / self.num_fragments:
            raise FieldError("overlap_steps", f"τ must satisfy 0 <= τ < H/P = "
                             f"{self.inner_steps / self.num_fragments:g}, got {self.overlap_steps}")
        if not 0.0 <= self.alpha <= 1.0:
            raise FieldError("alpha", f"must be in [0, 1], got {self.alpha}")
        OuterNesterovConfig(lr=self.outer_lr, momentum=self.outer_momentum)
        check_sync_options(self.allreduce, self.on_failure, self.collective_timeout_s)
        self.check_pipelines()


def parameter_layers(model: torch.nn.Module) -> list[int]:
    """Sizes of the model's layers in ``parameters()`` order (the flat vector's layout).

    A layer is a run of parameters with the same name up to its first block index
    (``blocks.3.attn.q.weight`` -> ``blocks.3``); a parameter outside numbered blocks (embedding,
    final norm, head) is a layer of its own.
    """
    sizes: list[int] = []
    keys: list[str] = []
    for name, p in model.named_parameters():
        match = re.match(r"^(.*?\.\d+)\.", name)
        key = match.group(1) if match else name
        if keys and keys[-1] == key:
            sizes[-1] += p.numel()
        else:
            keys.append(key)
            sizes.append(p.numel())
    return sizes


@register_policy("streaming_diloco")
class StreamingDiLoCo(DataParallelPolicy):
    """DiLoCo with fragment-wise, overlapped, quantised synchronisation."""

    Config = StreamingDiLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, groups and state before simulated time starts.

        One φ (with its fragments) and P fragment groups per sync group: every worker, or each
        stage's replicas on that stage's layers.
        """
        super().setup(ctx)
        cfg = self.config
        P = cfg.num_fragments
        members = self.sync_groups()
        self.group_of = {i: k for k, group in enumerate(members) for i in group}
        self.outers, self.fragment_groups = [], []
        for k, group in enumerate(members):
            learner = self.learners[group[0]]
            if self.timing_only:
                fragments = [torch.arange(0) for _ in range(P)]
            else:
                layers = parameter_layers(learner.model)
                fragments = [torch.tensor(f, dtype=torch.long)
                             for f in layer_stride_fragments(layers, P)]
            self.outers.append(OuterNesterov(learner.get_flat(), fragments=fragments,
                                             config=OuterNesterovConfig(
                                                 lr=cfg.outer_lr, momentum=cfg.outer_momentum)))
            fragment_bytes = self.group_nbytes(k) / P
            nbytes = quantized_nbytes(fragment_bytes) if cfg.quantize else fragment_bytes
            self.fragment_groups.append([
                SyncGroup(ctx.world, group, nbytes=nbytes, algorithm=cfg.allreduce,
                          on_failure=cfg.on_failure, combine=self._outer_step(p, k),
                          label=f"fragment{p}_allreduce", timeout_s=cfg.collective_timeout_s)
                for p in range(P)])
        # group 0's under the names of plain (one-group) data parallelism
        self.outer, self.groups = self.outers[0], self.fragment_groups[0]
        self.sync_nbytes = self.groups[0].nbytes
        self.offsets = [p * cfg.inner_steps // P for p in range(P)]

    def _outer_step(self, p: int, k: int = 0):
        """The combine hook of fragment p's group in sync group k: φ_p ← Nesterov(φ_p, Δ̄_p)."""
        outer = self.outers[k]

        def combine(mean_delta, participants, r):  # noqa: ANN001
            return None if mean_delta is None else outer.step(mean_delta, p)
        return combine

    # -- schedule --------------------------------------------------------------------------

    def sync_round(self, p: int, t: int) -> int | None:
        """Return the round q of fragment p whose outer gradient is sent after step t (or None)."""
        H = self.config.inner_steps
        since = t - self.offsets[p]
        if since >= H and since % H == 0:
            return since // H - 1
        return None

    def next_round(self, p: int, t: int) -> int:
        """Index of fragment p's first round sent after a step later than t."""
        H = self.config.inner_steps
        since = t - self.offsets[p]
        return max(0, since // H)  # round q is sent at offset + (q + 1)·H

    # -- the worker ------------------------------------------------------------------------

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: local steps and synchronisations, as the module says."""
        cfg, i = self.config, node.id
        groups = self.fragment_groups[self.group_of[i]]
        t = 0
        pending: dict[int, tuple[int, object]] = {}   # fragment -> (merge step, done event)
        while True:
            try:
                loss = yield from inner_step(self, node, step=t)
                t += 1
                ctx.report(t, loss, node=i)
                for p in sorted(pending):
                    due, done = pending[p]
                    if due == t:
                        del pending[p]
                        phi_p = yield from wait_or_fail(node, done)
                        self._merge(i, p, phi_p)
                for p in range(cfg.num_fragments):
                    q = self.sync_round(p, t)
                    if q is None or q <= groups[p].completed:
                        continue          # no sync now, or one done while this worker was down
                    done = groups[p].arrive(i, q, self._payload(i, p))
                    if cfg.overlap_steps == 0:
                        phi_p = yield from wait_or_fail(node, done)
                        self._merge(i, p, phi_p)
                    else:
                        pending[p] = (t + cfg.overlap_steps, done)
            except NodeFailure:
                t = yield from self.rejoin(node)
                pending = {}

    def _payload(self, i: int, p: int):  # noqa: ANN202
        """Worker i's outer gradient of fragment p, as the receivers will see it."""
        if self.timing_only:
            return None
        outer = self.outers[self.group_of[i]]
        idx = outer.fragments[p]
        delta = outer_gradient(outer.phi[idx], self.learners[i].get_flat()[idx])
        return roundtrip_e3m0(delta) if self.config.quantize else delta

    def _merge(self, i: int, p: int, phi_p) -> None:  # noqa: ANN001
        """Worker i's θ_p ← α·θ_p + (1 − α)·φ_p."""
        if phi_p is None:
            return
        learner = self.learners[i]
        idx = self.outers[self.group_of[i]].fragments[p]
        theta = learner.get_flat()
        theta[idx] = alpha_merge(theta[idx], phi_p, alpha=self.config.alpha)
        learner.set_flat(theta)

    def rejoin(self, node):  # noqa: ANN001
        """Bring a failed worker back (see the module docstring); return the step it resumes at.

        ``drop``: wait for fragment 0's open round, join every group after it, download φ.
        ``wait``: download φ and resume H steps before the earliest open fragment round.
        """
        cfg, i = self.config, node.id
        k = self.group_of[i]
        groups = self.fragment_groups[k]
        first = groups[0]
        while True:
            try:
                yield from recover(node)
                if cfg.on_failure == "wait":
                    t = self.resume_step_after_wait(groups)
                    self.ctx.world.recorder.event("rejoin", node=i, step=t)
                    yield from fetch_model(self, node, first.live_peers(i), self.group_nbytes(k))
                    break
                q0 = first.open_round
                if any(m != i for m in first.expected(q0)):
                    yield from wait_or_fail(node, first.round_event(q0))
                # peers sent fragment 0's round q0 after step t0 and merge it at t0 + τ
                t = self.offsets[0] + (q0 + 1) * cfg.inner_steps + cfg.overlap_steps
                for p, group in enumerate(groups):
                    group.join(i, self.next_round(p, t))
                self.ctx.world.recorder.event("rejoin", node=i, step=t)
                peers = first.live_peers(i)
                yield from fetch_model(self, node, peers, self.group_nbytes(k))
                break
            except NodeFailure:
                continue
        self.learners[i].set_flat(self.outers[k].phi)
        self.learners[i].reset_optimizer()
        set_schedule_step(self.learners[i], t)
        return t

    def resume_step_after_wait(self, groups: list[SyncGroup] | None = None) -> int:
        """``wait`` mode: the step a recovered worker resumes at, s* − H.

        s* is the step after which the earliest open fragment round of ``groups`` (the worker's
        fragment groups; default group 0's) is sent (no round can have completed without the
        worker, so the groups' open rounds are where it stopped).
        """
        H = self.config.inner_steps
        s_star = min(self.offsets[p] + (group.open_round + 1) * H
                     for p, group in enumerate(groups or self.groups))
        return s_star - H

    def averaged_flat(self, live: list[int]):  # noqa: ANN201
        """The global weights φ, all fragments (over pipelines: every stage's, in order)."""
        return torch.cat([outer.phi for outer in self.outers])
