"""DiLoCo whose outer all-reduce overlaps the next round: CO2 and eager (delayed) DiLoCo.

One mechanism, three registered configurations:

- ``eager_diloco`` (one-step-delayed outer update, "eager" DiLoCo): the all-reduce of round t's
  outer gradients runs while every worker computes round t + 1's inner steps;
- ``co2`` (Sun et al., ICLR 2024): the same one-block-stale schedule with τ local steps per
  block, plus a staleness-gap penalty and outer momentum clipping;
- ``compressed_diloco``: the synchronous schedule (``delay_rounds = 0``, plain DiLoCo timing)
  with the compression layer (:mod:`.compress`) on the outer gradients.

Block t of worker i (H = τ inner steps, φ the global weights, all workers hold the same φ):

1. θ_i ← φ (the latest φ this worker has received); s_i ← θ_i, the block's start;
2. H inner steps of the workload's optimizer;
3. outer gradient Δ_i^t = s_i − θ_i, compressed (with error feedback when configured), is
   handed to round t of the group, whose all-reduce starts when every member has arrived;
4. ``delay_rounds = 1``: the worker waits only for round t − 1 (launched one block ago) and
   goes on with block t + 1 from the φ it produced; ``delay_rounds = 0``: it waits for round t.

When round t completes, the outer step runs once: φ ← Nesterov(φ, Δ̄^t / Λ_t), with Δ̄^t the
mean of the delivered outer gradients. With one round of delay, Δ̄^t was computed from blocks
that started at the φ before the previous update: it is one outer step stale.

Staleness-gap penalty (CO2; ``staleness_penalty`` = λ ≥ 0, 0 = off): the stale update is
shrunk by Λ_t = 1 + λ·‖Δ̄^t − Δ̄^{t−1}‖ / ‖Δ̄^{t−1}‖, the relative change of the averaged outer
gradient between consecutive rounds (large when the trajectory turns, i.e. when applying an
update one round late hurts most). It is a scalar every worker computes from the same two
averages, so all workers keep the same φ. The paper's penalty is element-wise; its exact form
could not be checked from the sources available when this was written (docs/methods/
async-compressed.md says so). Outer momentum clipping (``momentum_clip_norm`` = c): the
Nesterov buffer v is scaled down to norm c whenever it is longer.

Time: per block, a worker computes H steps and waits for the previous round's all-reduce only
if it has not ended. Once warm, a block takes max(H·T_step, T_allreduce): the all-reduce is
hidden when it takes at most H step times (tests/data_parallel/test_delayed.py). The outer
step's arithmetic is charged no time; compression and decompression are (:mod:`.compress`) and
are not goodput.

Failures: as DiLoCo (``drop`` or ``wait``, :func:`~policies.data_parallel.common.rejoin_group`):
a rejoining worker downloads φ (``param_bytes``), resets its optimizer, its error-feedback
residual and its stale round, and adopts its peer's schedule position.
Evaluated model: each worker's own θ_i (the one definition of ``common.py``); φ beside it.

Over pipelines (``pipeline_stages`` > 1, :mod:`~policies.data_parallel.pipelines`): every worker
is one stage replica and each stage group (that stage's replicas) has its own φ, Nesterov buffer,
staleness-gap history and collective, on that stage's weights; compression acts on the stage's
outer gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from policies.data_parallel.common import (
    DataParallelPolicy,
    inner_step,
    rejoin_group,
    schedule_step,
    set_schedule_step,
    wait_or_fail,
)
from policies.data_parallel.compress import CompressionConfig, Compressor
from policies.data_parallel.group import SyncGroup, check_sync_options
from policies.data_parallel.outer import OuterNesterovConfig
from policies.data_parallel.pipelines import OverPipelines
from sim import collectives
from sim.errors import FieldError, NodeFailure
from sim.policy import RunContext, register_policy


def staleness_gap(delta: torch.Tensor, previous: torch.Tensor | None, *,
                  penalty: float) -> float:
    """Λ = 1 + λ·‖Δ̄^t − Δ̄^{t−1}‖ / ‖Δ̄^{t−1}‖ (1 when λ = 0 or there is no previous round)."""
    if penalty == 0.0 or previous is None:
        return 1.0
    norm = float(previous.norm())
    if norm == 0.0:
        return 1.0
    return 1.0 + penalty * float((delta - previous).norm()) / norm


def clip_norm(v: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """``v`` scaled down to norm ``max_norm`` if it is longer (None: unchanged)."""
    if max_norm is None:
        return v
    norm = float(v.norm())
    return v * (max_norm / norm) if norm > max_norm else v


@dataclass(frozen=True, kw_only=True)
class DelayedDiLoCoConfig(OverPipelines):
    """Parameters of the delayed outer step (defaults: eager DiLoCo, DiLoCo's outer optimizer).

    Over pipelines: see :class:`OverPipelines`.
    """

    inner_steps: int = 500
    """H (τ in CO2), inner steps per block."""
    outer_lr: float = 0.7
    """lr_out, outer Nesterov learning rate."""
    outer_momentum: float = 0.9
    """μ, outer Nesterov momentum."""
    delay_rounds: int = 1
    """0: wait for the block's own all-reduce (DiLoCo); 1: apply it one block later (overlap)."""
    staleness_penalty: float = 0.0
    """λ >= 0 of the staleness-gap penalty Λ (0: off)."""
    momentum_clip_norm: float | None = None
    """c > 0: clip the outer momentum to this L2 norm; None: no clipping."""
    allreduce: str = "ring"
    """All-reduce schedule of dense messages: 'ring', 'tree' or 'halving_doubling'."""
    on_failure: str = "drop"
    """'drop': average the survivors; 'wait': hold the round until the failed worker is back."""
    collective_timeout_s: float = 0.0
    """Seconds the collective waits for a peer that failed during it before it aborts."""
    compress_bits: int = 32
    """b, bits per value sent (32: no quantisation); see :mod:`.compress`."""
    compress_topk_fraction: float = 1.0
    """f, share of the values sent (1: all)."""
    compress_format: str = "uniform"
    """Quantiser: 'uniform' or 'e3m0'."""
    error_feedback: bool = True
    """Keep what compression dropped on the worker and send it later."""

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise FieldError("inner_steps", f"H must be >= 1, got {self.inner_steps}")
        if self.delay_rounds not in (0, 1):
            raise FieldError("delay_rounds", f"must be 0 or 1, got {self.delay_rounds}")
        if self.staleness_penalty < 0:
            raise FieldError("staleness_penalty", f"must be >= 0, got {self.staleness_penalty}")
        if self.momentum_clip_norm is not None and self.momentum_clip_norm <= 0:
            raise FieldError("momentum_clip_norm", f"must be > 0 or None, got "
                             f"{self.momentum_clip_norm}")
        OuterNesterovConfig(lr=self.outer_lr, momentum=self.outer_momentum)
        check_sync_options(self.allreduce, self.on_failure, self.collective_timeout_s)
        self.compression  # noqa: B018  (validates the compression fields)
        self.check_pipelines()

    @property
    def compression(self) -> CompressionConfig:
        """The compression fields as a :class:`~.compress.CompressionConfig`."""
        try:
            return CompressionConfig(bits=self.compress_bits,
                                     topk_fraction=self.compress_topk_fraction,
                                     error_feedback=self.error_feedback,
                                     format=self.compress_format)
        except FieldError as exc:  # CompressionConfig's ``bits`` is this Config's ``compress_bits``
            raise FieldError(f"compress_{exc.field}", exc.message) from None


@dataclass(frozen=True, kw_only=True)
class CO2Config(DelayedDiLoCoConfig):
    """CO2's defaults: one block of delay, staleness-gap penalty and momentum clipping on."""

    inner_steps: int = 12
    """τ, local steps per block (the paper tunes τ per cluster; tens of steps)."""
    staleness_penalty: float = 1.0
    """λ of the staleness-gap penalty."""
    momentum_clip_norm: float | None = 1.0
    """Clip of the outer momentum's L2 norm."""


@dataclass(frozen=True, kw_only=True)
class CompressedDiLoCoConfig(DelayedDiLoCoConfig):
    """Synchronous DiLoCo with top-k outer gradients and error feedback (SparseLoCo-like)."""

    delay_rounds: int = 0
    """0: every block waits for its own all-reduce."""
    compress_topk_fraction: float = 0.01
    """f: 1% of the outer gradient's values are sent."""


@dataclass(eq=False)
class _OuterState:
    """One sync group's outer model: φ, the Nesterov buffer v and the last round's Δ̄."""

    phi: torch.Tensor
    velocity: torch.Tensor
    previous_mean: torch.Tensor | None = None
    gaps: list[float] = field(default_factory=list)


class GatherGroup(SyncGroup):
    """A :class:`SyncGroup` whose round is an all-gather of every member's payload.

    Sparse payloads cannot be summed in flight: each member receives the other members'
    ``nbytes`` payloads (ring all-gather of ``participants · nbytes``) and averages locally.
    """

    def collective(self, participants: list[int]):  # noqa: ANN201
        """Ring all-gather of one ``nbytes`` payload per participant."""
        return collectives.all_gather(self.world, participants, self.nbytes * len(participants),
                                      timeout_s=self.timeout_s)


@register_policy("eager_diloco")
class DelayedDiLoCo(DataParallelPolicy):
    """DiLoCo with the outer all-reduce of round t overlapping round t + 1's inner steps."""

    Config = DelayedDiLoCoConfig

    def setup(self, ctx: RunContext) -> None:
        """Build the learners, the group, φ and the compressors before simulated time starts.

        One outer state and one collective per sync group (every worker, or each stage).
        """
        super().setup(ctx)
        cfg = self.config
        members = self.sync_groups()
        self.group_of = {i: k for k, group in enumerate(members) for i in group}
        self.states = [_OuterState(phi=phi, velocity=torch.zeros_like(phi))
                       for phi in (self.learners[group[0]].get_flat().detach()
                                   .to(torch.float32).clone() for group in members)]
        compression = cfg.compression
        b = self.timing.bytes_per_param
        values = [int(self.group_nbytes(k) // b) for k in range(len(members))]
        self.compressors = [Compressor(compression, num_values=values[self.group_of[i]])
                            for i in range(self.num_workers)]
        self.groups = []
        for k, group in enumerate(members):
            compressor = self.compressors[group[0]]
            dense_ratio = compressor.nbytes / (4 * values[k])
            nbytes = self.group_nbytes(k) * dense_ratio if not compressor.needs_gather \
                else compressor.nbytes
            group_type = GatherGroup if compressor.needs_gather else SyncGroup
            self.groups.append(group_type(ctx.world, group, nbytes=nbytes,
                                          algorithm=cfg.allreduce, on_failure=cfg.on_failure,
                                          combine=self._outer_step, label=f"{self.name}_sync",
                                          timeout_s=cfg.collective_timeout_s))
        self.group = self.groups[0]
        self.round_start_step = [0] * self.num_workers

    # group 0's outer state under the names of plain (one-group) data parallelism
    phi = property(lambda self: self.states[0].phi,
                   lambda self, v: setattr(self.states[0], "phi", v))
    velocity = property(lambda self: self.states[0].velocity,
                        lambda self, v: setattr(self.states[0], "velocity", v))
    previous_mean = property(lambda self: self.states[0].previous_mean,
                             lambda self, v: setattr(self.states[0], "previous_mean", v))

    @property
    def gaps(self) -> list[float]:
        """Λ_t of every completed round of group 0 (the only group without pipelines)."""
        return self.states[0].gaps

    def _outer_step(self, mean_delta, participants, r):  # noqa: ANN001
        """Once per round: φ ← Nesterov(φ, Δ̄/Λ) with momentum clipping; returns φ (a copy)."""
        if self.timing_only:
            return None
        state = self.states[self.group_of[participants[0]]]
        if mean_delta is None:
            return state.phi.clone()
        cfg = self.config
        gap = staleness_gap(mean_delta, state.previous_mean, penalty=cfg.staleness_penalty)
        state.gaps.append(gap)
        state.previous_mean = mean_delta.clone()
        delta = mean_delta / gap
        # rules.nesterov_outer_step with the new momentum clipped before it is used
        state.velocity = clip_norm(cfg.outer_momentum * state.velocity + delta,
                                   cfg.momentum_clip_norm)
        state.phi = state.phi - cfg.outer_lr * (delta + cfg.outer_momentum * state.velocity)
        return state.phi.clone()

    def _send(self, node, start, learner):  # noqa: ANN001
        """Compress Δ_i = s_i − θ_i on the node (charged, not goodput); return the payload."""
        compressor = self.compressors[node.id]
        seconds = compressor.compress_seconds(node)
        if seconds > 0:
            t0 = self.ctx.now
            yield node.compute(seconds=seconds, label="compress")
            self.ctx.world.recorder.discard_work(node.id, t0, self.ctx.now, "compress")
        if self.timing_only:
            return None
        return compressor.roundtrip(start - learner.get_flat().to(torch.float32))

    def _receive(self, node, r: int, done):  # noqa: ANN001
        """Wait for round ``r`` (its ``done`` event); decompress the payloads; return φ."""
        phi = yield from wait_or_fail(node, done)
        group = self.groups[self.group_of[node.id]]
        messages = len(group.expected(r)) - 1 if self.compressors[node.id].needs_gather else 1
        seconds = self.compressors[node.id].decompress_seconds(node, messages)
        if seconds > 0:
            t0 = self.ctx.now
            yield node.compute(seconds=seconds, label="decompress")
            self.ctx.world.recorder.discard_work(node.id, t0, self.ctx.now, "decompress")
        return phi

    def worker(self, ctx: RunContext, node):  # noqa: ANN001
        """Node ``node``'s process: blocks of H steps, each handing its round to the group."""
        learner = self.learners[node.id]
        H, delay = self.config.inner_steps, self.config.delay_rounds
        k = self.group_of[node.id]
        group, state = self.groups[k], self.states[k]
        r = 0
        pending: tuple | None = None   # (round, its done event) this worker waits for next
        while True:
            try:
                start = None if self.timing_only else learner.get_flat().to(torch.float32)
                block_start_s = ctx.now
                for h in range(H):
                    loss = yield from inner_step(self, node, step=r * H + h)
                    ctx.report(r * H + h + 1, loss, node=node.id)
                payload = yield from self._send(node, start, learner)
                done = group.arrive(node.id, r, payload)
                waited_for = (r, done) if delay == 0 else pending
                pending = (r, done)
                if waited_for is not None:
                    arrived_s = ctx.now
                    phi = yield from self._receive(node, *waited_for)
                    ctx.world.recorder.metric("sync_s", ctx.now - arrived_s, node=node.id,
                                              step=waited_for[0])
                    if phi is not None:
                        learner.set_flat(phi)                  # θ_i ← φ
                    self.round_start_step[node.id] = schedule_step(learner)
                ctx.world.recorder.metric("block_s", ctx.now - block_start_s, node=node.id,
                                          step=r)
                r += 1
            except NodeFailure:
                r, peer = yield from rejoin_group(self, node, group, self.group_nbytes(k))
                pending = None
                self.compressors[node.id].reset()
                if not self.timing_only:
                    learner.set_flat(state.phi)                # the downloaded φ
                learner.reset_optimizer()
                if peer is not None:
                    set_schedule_step(learner, self.round_start_step[peer])
                self.round_start_step[node.id] = schedule_step(learner)

    def averaged_flat(self, live: list[int]) -> torch.Tensor | None:
        """φ, the outer model, scored as a labelled extra as for DiLoCo.

        ``eval_loss`` is the mean over the workers' own models, the one definition every
        data-parallel method uses (``common.py``). Over pipelines: every stage's φ, in order.
        """
        return torch.cat([state.phi for state in self.states])


@register_policy("co2")
class CO2(DelayedDiLoCo):
    """CO2: one-block-stale outer updates with staleness-gap penalty and momentum clipping."""

    Config = CO2Config


@register_policy("compressed_diloco")
class CompressedDiLoCo(DelayedDiLoCo):
    """Synchronous DiLoCo with compressed outer gradients (top-k 1% + error feedback)."""

    Config = CompressedDiLoCoConfig
