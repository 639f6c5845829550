"""A learner: one node's model, optimizer, learning-rate schedule and data stream.

Policies drive learners through a small interface: ``train_step`` (a whole local step), or
``compute_grad`` then (after averaging gradients with peers) ``optimizer_step``; flat parameter
and gradient vectors for averaging and gossip; ``snapshot``/``restore`` for checkpoints.

Parameters are split into *groups*, each with its own optimizer, schedule position and clip. A
plain learner has one group (global-norm clipping); a pipeline learner has one per stage, so a
stage can be stepped, reset or re-scaled on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads.config import WorkloadConfig
from workloads.schedule import lr_at
from workloads.streams import Batch, BatchStream


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats: logits (..., V), integer targets (...)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class GroupOptimizer:
    """Optimizer, clip and schedule for one group of parameters."""

    def __init__(self, params: list[nn.Parameter], cfg: WorkloadConfig) -> None:
        self.params = params
        self.cfg = cfg
        self.step_count = 0
        """Optimizer steps taken (drives the schedule)."""
        self.lr_scale = 1.0
        """Multiplier on the scheduled rate (CheckFree bumps a recovered stage's rate)."""
        self.optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """AdamW or SGD in torch's fastest form for these tensors: fused, else foreach.

        A fused optimizer updates every parameter of the group in one kernel instead of a
        Python loop over tensors (the loop was most of a small model's step). Its arithmetic is
        the same update in a different order, so results differ from the per-tensor loop by
        rounding only (tests/workloads/test_learner_lean.py states and checks the tolerance).
        """
        cfg = self.cfg
        cls: type[torch.optim.Optimizer]
        kwargs: dict[str, Any]
        if cfg.optimizer == "adamw":
            cls, kwargs = torch.optim.AdamW, {"betas": (cfg.adam_beta1, cfg.adam_beta2)}
        else:
            cls, kwargs = torch.optim.SGD, {"momentum": cfg.momentum}
        kwargs.update(lr=cfg.lr, weight_decay=cfg.weight_decay)
        if _supports_fused(self.params):
            return cls(self.params, fused=True, **kwargs)
        return cls(self.params, foreach=True, **kwargs)

    @property
    def lr(self) -> float:
        """The rate the next step will use: schedule(step) x lr_scale."""
        cfg = self.cfg
        scheduled = lr_at(
            self.step_count,
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            total_steps=cfg.total_steps,
            min_lr_ratio=cfg.min_lr_ratio,
        )
        return scheduled * self.lr_scale

    def step(self) -> None:
        """Clip the group's gradient norm, set the scheduled rate, take one optimizer step."""
        if self.cfg.grad_clip is not None:  # one norm over all tensors, one scaling kernel
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.step()
        self.step_count += 1

    def reset(self) -> None:
        """Forget the optimizer's moments (a fresh Adam state); the schedule position stays."""
        self.optimizer = self._new_optimizer()

    def state(self) -> dict:
        """A copy of the optimizer state, the schedule's step count and the lr scale."""
        return {
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "step_count": self.step_count,
            "lr_scale": self.lr_scale,
        }

    def set_state(self, state: dict) -> None:
        """Resume at a position returned by :meth:`state`."""
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.step_count = state["step_count"]
        self.lr_scale = state["lr_scale"]


def _supports_fused(params: list[nn.Parameter]) -> bool:
    """Whether torch has fused AdamW/SGD kernels for these parameters (float, CPU or CUDA)."""
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )


def _flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float().cpu() for t in tensors])


def _unflatten_into(tensors: Sequence[torch.Tensor], flat: torch.Tensor, what: str) -> None:
    total = sum(t.numel() for t in tensors)
    if flat.dim() != 1 or flat.numel() != total:
        raise ValueError(
            f"{what}: expected a 1-D vector of {total} values, got {tuple(flat.shape)}"
        )
    offset = 0
    with torch.no_grad():
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t).to(t.dtype))
            offset += n


class Learner:
    """A real learner: torch model + optimizer(s) + data stream, on one device."""

    def __init__(
        self,
        model: nn.Module,
        stream: BatchStream,
        cfg: WorkloadConfig,
        *,
        device: torch.device,
        groups: list[list[nn.Parameter]] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
    ) -> None:
        self.model = model.to(device)
        self.stream = stream
        self.cfg = cfg
        self.device = device
        self.loss_fn = loss_fn
        self.params = list(self.model.parameters())
        groups = groups if groups is not None else [self.params]
        self.groups = [GroupOptimizer(g, cfg) for g in groups]
        self.last_batch: Batch | None = None

    # ---- sizes and rates -------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.params)

    @property
    def step(self) -> int:
        """Optimizer steps taken (of the first group)."""
        return self.groups[0].step_count

    def set_schedule_step(self, step: int) -> None:
        """Move every group's learning-rate schedule to ``step``; weights and moments stay.

        A worker that rejoins after a failure takes its peer's position, so it neither warms up
        again nor runs at a different rate than its peers.
        """
        if step < 0:
            raise ValueError(f"step: schedule position must be >= 0, got {step}")
        for group in self.groups:
            group.step_count = int(step)

    @property
    def lr(self) -> float:
        """Learning rate the next step uses (first group)."""
        return self.groups[0].lr

    @property
    def lr_scale(self) -> float:
        """Multiplier on the scheduled learning rate (all groups)."""
        return self.groups[0].lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        for g in self.groups:
            g.lr_scale = value

    # ---- training --------------------------------------------------------------------------

    def next_batch(self) -> Batch:
        """Draw the next training batch of this node's shard, on the learner's device."""
        x, y = self.stream.next_batch()
        self.last_batch = (x.to(self.device), y.to(self.device))
        return self.last_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model output for inputs ``x``."""
        return self.model(x)

    def compute_grad(self, *, accumulate: bool = False) -> float:
        """Forward and backward on the next batch; gradients are left in ``.grad``.

        With ``accumulate=True`` the new gradient is added to the current one (microbatches).
        Returns the batch loss in nats.
        """
        if not accumulate:
            self.zero_grad()
        x, y = self.next_batch()
        if not self.model.training:  # only after an evaluation: no module walk every step
            self.model.train()
        loss = self.loss_fn(self.forward(x), y)
        loss.backward()
        return float(loss.detach())

    def optimizer_step(self) -> None:
        """Clip, set the scheduled rate and step every group with the current gradients."""
        for g in self.groups:
            g.step()

    def train_step(self) -> float:
        """One local step: ``compute_grad`` then ``optimizer_step``. Returns the batch loss."""
        loss = self.compute_grad()
        self.optimizer_step()
        return loss

    def zero_grad(self) -> None:
        """Set every gradient to zero (allocating it if absent), in one foreach call."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                else:
                    p.grad.zero_()
        elif grads:
            torch._foreach_zero_(grads)  # type: ignore[arg-type]  # no None: checked above

    def grad_norm(self) -> float:
        """L2 norm of the whole current gradient."""
        return float(self.get_flat_grad().norm())

    def reset_optimizer(self) -> None:
        """Fresh optimizer state for every group (moments dropped, schedule kept)."""
        for g in self.groups:
            g.reset()

    @torch.no_grad()
    def eval_loss(self, num_batches: int | None = None) -> float:
        """Mean loss on the held-out batches (the first ``num_batches``; default all)."""
        batches = self.stream.eval_batches()[: num_batches or None]
        self.model.eval()
        total, count = 0.0, 0
        for x, y in batches:
            x, y = x.to(self.device), y.to(self.device)
            n = y.numel()
            total += float(self.loss_fn(self.forward(x), y)) * n
            count += n
        return total / count

    # ---- flat vectors ----------------------------------------------------------------------

    def get_flat(self) -> torch.Tensor:
        """Return a float32 CPU copy of all parameters as one 1-D vector."""
        return _flatten(self.params)

    def set_flat(self, flat: torch.Tensor) -> None:
        """Overwrite all parameters from a 1-D vector laid out as :meth:`get_flat`."""
        _unflatten_into(self.params, flat, "set_flat")

    def get_flat_grad(self) -> torch.Tensor:
        """Return a float32 CPU copy of the gradient (zeros where none) as one 1-D vector."""
        return _flatten(
            [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        )

    def set_flat_grad(self, flat: torch.Tensor) -> None:
        """Overwrite the gradient (e.g. with the peers' average) from a 1-D vector."""
        self.zero_grad()
        grads = [p.grad for p in self.params]  # zero_grad() left a tensor in every .grad
        _unflatten_into(grads, flat, "set_flat_grad")  # type: ignore[arg-type]

    # ---- checkpoints -----------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Deep copy of weights, optimizer states, schedule positions and the data position."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "groups": [g.state() for g in self.groups],
            "data": self.stream.state(),
        }

    def restore(self, state: dict) -> None:
        """Return exactly to a :meth:`snapshot` (weights, optimizers, schedule, data)."""
        self.model.load_state_dict(state["model"])
        for g, s in zip(self.groups, state["groups"], strict=True):
            g.set_state(s)
        self.stream.set_state(state["data"])
