"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def lr_at(
    step: int, *, lr: float, warmup_steps: int, total_steps: int | None, min_lr_ratio: float
) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Warm-up: ``lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps. Then a
    cosine from ``lr`` down to ``min_lr_ratio * lr`` at ``total_steps``, flat afterwards. With
    ``total_steps=None`` the rate stays at ``lr`` after warm-up.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if total_steps is None:
        return lr
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    floor = min_lr_ratio * lr
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))
