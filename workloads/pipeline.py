"""A stage-split learner for pipeline methods (full pipeline, SkipPipe, CheckFree, CheckFree+).

The model is a :class:`~workloads.llama.StagedModel`: S stages of consecutive blocks, the
embedding on stage 0, the head on stage 0 or S-1. A microbatch's *path* lists the stages it
visits in order, always starting at 0; skipped stages are left out and swapped stages appear
swapped (``[0, 2, 1, 3]``). ``compute_grad(path)`` runs the forward along the path and the
backward retraces it (autograd), so only visited stages receive gradient.

Each stage has its own optimizer, schedule position, learning-rate scale and gradient clip,
because in a real pipeline each stage lives on different nodes.
"""

from __future__ import annotations

from typing import cast

import torch

from workloads.config import WorkloadConfig
from workloads.learner import Learner, _flatten, _unflatten_into
from workloads.llama import Stage, StagedModel
from workloads.streams import BatchStream


class PipelineLearner(Learner):
    """A :class:`Learner` whose model is cut into stages that run in any order."""

    model: StagedModel

    def __init__(
        self, model: StagedModel, stream: BatchStream, cfg: WorkloadConfig, *, device: torch.device
    ) -> None:
        groups = [list(stage.parameters()) for stage in model.stages]
        super().__init__(model, stream, cfg, device=device, groups=groups)
        self.path: list[int] = list(range(model.num_stages))
        """The path ``forward`` uses when none is given (default: every stage in order)."""

    @property
    def num_stages(self) -> int:
        """Number of stages S."""
        return self.model.num_stages

    @property
    def stage_layers(self) -> list[range]:
        """Block indices each stage holds."""
        return self.model.layer_ranges

    @property
    def head_stage(self) -> int:
        """Index of the stage that holds the final norm and head."""
        return self.model.head_index

    def stage_num_params(self, stage: int) -> int:
        """Parameters of one stage."""
        return sum(p.numel() for p in self.groups[stage].params)

    # ---- forward / backward along a path ---------------------------------------------------

    def forward(self, x: torch.Tensor, path: list[int] | None = None) -> torch.Tensor:
        """Logits (B, T, V) of tokens (B, T) through ``path`` (default ``self.path``)."""
        return self.model.forward_path(x, self.path if path is None else path)

    def compute_grad(self, path: list[int] | None = None, *, accumulate: bool = False) -> float:
        """Forward along ``path`` on the next batch, backward retracing it. Returns the loss."""
        if not accumulate:
            self.zero_grad()
        x, y = self.next_batch()
        self.model.train()
        loss = self.loss_fn(self.forward(x, path), y)
        loss.backward()
        return float(loss.detach())

    def train_step(self, path: list[int] | None = None) -> float:
        """``compute_grad(path)`` then a step of every stage's optimizer."""
        loss = self.compute_grad(path)
        self.optimizer_step()
        return loss

    @torch.no_grad()
    def eval_loss(self, num_batches: int | None = None, path: list[int] | None = None) -> float:
        """Held-out loss through ``path`` (default: every stage in order)."""
        saved, self.path = self.path, (self.path if path is None else list(path))
        try:
            return super().eval_loss(num_batches)
        finally:
            self.path = saved

    # ---- per-stage control -----------------------------------------------------------------

    def optimizer_step(self, stages: list[int] | None = None) -> None:
        """Step the optimizers of ``stages`` (default all) with their current gradients."""
        for s in range(self.num_stages) if stages is None else stages:
            self.groups[s].step()

    def stage_grad_norm(self, stage: int) -> float:
        """L2 norm of one stage's current gradient (CheckFree weights neighbours by it)."""
        return float(self.get_stage_flat_grad(stage).norm())

    def reset_optimizer(self, stage: int | None = None) -> None:
        """Fresh optimizer state for one stage (or all); the schedule position is kept."""
        for s in range(self.num_stages) if stage is None else [stage]:
            self.groups[s].reset()

    def set_stage_lr_scale(self, stage: int, scale: float) -> None:
        """Multiply one stage's scheduled learning rate by ``scale``."""
        self.groups[stage].lr_scale = scale

    def get_stage_optimizer_state(self, stage: int) -> dict:
        """A copy of stage ``stage``'s optimizer state (moments, step, lr scale)."""
        return self.groups[stage].state()

    def set_stage_optimizer_state(self, stage: int, state: dict) -> None:
        """Restore stage ``stage``'s optimizer state from :meth:`get_stage_optimizer_state`."""
        self.groups[stage].set_state(state)

    def stage_lr(self, stage: int) -> float:
        """Return the rate one stage's next step will use."""
        return self.groups[stage].lr

    def get_stage_state(self, stage: int) -> dict[str, torch.Tensor]:
        """Return a copy of one stage's weights (its ``state_dict``)."""
        return {k: v.detach().clone() for k, v in self.model.stages[stage].state_dict().items()}

    def set_stage_state(self, stage: int, state: dict[str, torch.Tensor]) -> None:
        """Overwrite one stage's weights from :meth:`get_stage_state` of a same-shaped stage."""
        self.model.stages[stage].load_state_dict(state)

    def get_stage_flat(self, stage: int) -> torch.Tensor:
        """One stage's parameters as a float32 1-D vector."""
        return _flatten(self.groups[stage].params)

    def set_stage_flat(self, stage: int, flat: torch.Tensor) -> None:
        """Overwrite one stage's parameters from a 1-D vector."""
        _unflatten_into(self.groups[stage].params, flat, f"set_stage_flat({stage})")

    def get_stage_flat_grad(self, stage: int) -> torch.Tensor:
        """One stage's gradient as a float32 1-D vector (zeros where none)."""
        params = self.groups[stage].params
        return _flatten([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])

    def set_stage_flat_grad(self, stage: int, flat: torch.Tensor) -> None:
        """Overwrite one stage's gradient (e.g. the stage replicas' average)."""
        params = self.groups[stage].params
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]  # every .grad was filled just above
        _unflatten_into(grads, flat, f"set_stage_flat_grad({stage})")  # type: ignore[arg-type]


def compute_grad_across(owners: list[PipelineLearner], batch: tuple | None = None) -> float:
    """Forward one batch through stage s of ``owners[s]`` for every s; backward retraces it.

    DP x PP with per-replica weights: a microbatch's route visits replica ``r_s`` of stage ``s``,
    whose weights are stage ``s`` of learner ``owners[s]``. The batch is drawn from
    ``owners[0]``'s stream (the data replica's shard); the embedding is ``owners[0]``'s and the
    head that of the learner owning the head stage. Autograd records exactly these modules, so
    ``loss.backward()`` adds gradient into those replicas' stages only (accumulating: call
    ``zero_grad`` first). ``batch``: the (inputs, targets) to use instead of the stream's next
    (a caller that must not depend on the order microbatches are computed in draws them ahead).
    Returns the batch loss in nats.
    """
    first = owners[0]
    if len(owners) != first.num_stages:
        raise ValueError(f"owners: one learner per stage ({first.num_stages}), got {len(owners)}")
    x, y = first.next_batch() if batch is None else batch
    stages = [cast(Stage, owner.model.stages[s]) for s, owner in enumerate(owners)]
    h = stages[0].embed_tokens(x)  # (B, T, C)
    for owner, stage in zip(owners, stages):
        if not owner.model.training:
            owner.model.train()
        h = stage(h)  # (B, T, C)
    loss = first.loss_fn(stages[first.head_stage].logits(h), y)
    loss.backward()
    return float(loss.detach())
