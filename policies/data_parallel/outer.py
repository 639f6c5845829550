"""The outer optimizer shared by DiLoCo, Streaming DiLoCo and PALSGD: Nesterov SGD on φ.

One object holds the global weights φ of every fragment and one momentum buffer per fragment
(Streaming DiLoCo syncs P fragments at different times, each with its own state; DiLoCo and
PALSGD are the case of a single fragment 0). The arithmetic is
:func:`policies.data_parallel.rules.nesterov_outer_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.data_parallel.rules import nesterov_outer_step
from sim.errors import FieldError


@dataclass(frozen=True, kw_only=True)
class OuterNesterovConfig:
    """Parameters of the outer Nesterov step."""

    lr: float = 0.7
    """lr_out, outer learning rate (DiLoCo: 0.7). 1.0 with momentum 0 is plain model averaging."""
    momentum: float = 0.9
    """μ, outer Nesterov momentum in [0, 1) (DiLoCo: 0.9)."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise FieldError("outer_lr", f"must be > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise FieldError("outer_momentum", f"must be in [0, 1), got {self.momentum}")


class OuterNesterov:
    """Global weights φ with a Nesterov momentum buffer v per fragment.

    Parameters
    ----------
    phi : the initial global weights, a flat tensor (|θ|,); copied.
    fragments : index tensors, one per fragment, that partition ``range(|θ|)``;
        ``None`` means one fragment holding every parameter.
    config : lr_out and μ.
    """

    def __init__(self, phi: torch.Tensor, *, config: OuterNesterovConfig,
                 fragments: list[torch.Tensor] | None = None) -> None:
        self.config = config
        self.phi = phi.detach().to(torch.float32).clone()
        if fragments is None:
            fragments = [torch.arange(self.phi.numel())]
        self.fragments = fragments
        self.velocity = [torch.zeros(len(idx), dtype=torch.float32) for idx in fragments]
        self.steps = [0] * len(fragments)

    def fragment(self, p: int) -> torch.Tensor:
        """φ restricted to fragment p (a copy), shape (|fragment p|,)."""
        return self.phi[self.fragments[p]].clone()

    def step(self, delta: torch.Tensor, p: int = 0) -> torch.Tensor:
        """Apply the averaged outer gradient Δ of fragment p; return the new φ of that fragment.

        ``delta`` has the fragment's shape: mean over workers of (φ_p − θ_{i,p}).
        """
        idx = self.fragments[p]
        phi_new, v_new = nesterov_outer_step(
            self.phi[idx], delta.to(torch.float32), self.velocity[p],
            lr=self.config.lr, momentum=self.config.momentum,
        )
        self.phi[idx] = phi_new
        self.velocity[p] = v_new
        self.steps[p] += 1
        return phi_new.clone()
