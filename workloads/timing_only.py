"""A learner with the real learner's interface and no math, for large timing-only sweeps.

Losses are ``None``; flat vectors are empty (zero-length) tensors, so averaging code runs
unchanged at no cost; the step counter and schedule advance as in a real learner. The sizes a
policy needs for messages come from the workload's :class:`~workloads.timing.TimingModel`.
"""

from __future__ import annotations

import torch

from workloads.config import WorkloadConfig
from workloads.schedule import lr_at


class TimingOnlyLearner:
    """Counts steps; computes nothing."""

    def __init__(self, cfg: WorkloadConfig, *, num_params: int, num_stages: int = 1) -> None:
        self.cfg = cfg
        self.num_params = num_params
        """Parameter count of the model being timed (from the timing model)."""
        self.num_stages = num_stages
        self.step = 0
        self.lr_scale = 1.0
        self.path: list[int] = list(range(num_stages))

    @property
    def lr(self) -> float:
        """Scheduled rate for the next step, times ``lr_scale``."""
        cfg = self.cfg
        return self.lr_scale * lr_at(
            self.step,
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            total_steps=cfg.total_steps,
            min_lr_ratio=cfg.min_lr_ratio,
        )

    def compute_grad(self, path: list[int] | None = None, *, accumulate: bool = False) -> None:
        """No work; returns ``None`` (no loss)."""
        return None

    def set_schedule_step(self, step: int) -> None:
        """Move the schedule (the step counter) to ``step``."""
        if step < 0:
            raise ValueError(f"step: schedule position must be >= 0, got {step}")
        self.step = int(step)

    def optimizer_step(self, stages: list[int] | None = None) -> None:
        """Advance the step counter."""
        self.step += 1

    def train_step(self, path: list[int] | None = None) -> None:
        """Advance the step counter; returns ``None``."""
        self.optimizer_step()
        return None

    def eval_loss(self, num_batches: int | None = None, path: list[int] | None = None) -> None:
        """No held-out loss in timing-only mode."""
        return None

    def grad_norm(self) -> float:
        """Return 0.0 (no gradient is kept)."""
        return 0.0

    def stage_grad_norm(self, stage: int) -> float:
        """Return 0.0 (no gradient is kept)."""
        return 0.0

    def get_flat(self) -> torch.Tensor:
        """Return an empty vector (no weights are kept)."""
        return torch.empty(0)

    def set_flat(self, flat: torch.Tensor) -> None:
        """Accept and ignore a vector."""

    get_flat_grad = get_flat
    set_flat_grad = set_flat

    def get_stage_flat(self, stage: int) -> torch.Tensor:
        """Return an empty vector (no weights are kept)."""
        return torch.empty(0)

    def set_stage_flat(self, stage: int, flat: torch.Tensor) -> None:
        """Accept and ignore a vector."""

    get_stage_flat_grad = get_stage_flat
    set_stage_flat_grad = set_stage_flat

    def get_stage_state(self, stage: int) -> dict:
        """Return an empty state."""
        return {}

    def set_stage_state(self, stage: int, state: dict) -> None:
        """Accept and ignore a state."""

    def set_stage_lr_scale(self, stage: int, scale: float) -> None:
        """Record the learning-rate scale."""
        self.lr_scale = scale

    def reset_optimizer(self, stage: int | None = None) -> None:
        """Nothing to reset."""

    def snapshot(self) -> dict:
        """Return the step counter and learning-rate scale."""
        return {"step": self.step, "lr_scale": self.lr_scale}

    def restore(self, state: dict) -> None:
        """Return to a :meth:`snapshot`."""
        self.step = state["step"]
        self.lr_scale = state["lr_scale"]
