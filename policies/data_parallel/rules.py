"""Update rules of the data-parallel family, as pure functions on flat tensors.

Every function here takes tensors and numbers and returns new tensors; none touches the
simulator, a learner or a random stream. The policies (``ddp.py``, ``diloco.py``, ...) are thin
SimPy processes that decide *when* these rules run and *on which* workers' tensors; the rules say
*what* happens. Each is tested against hand-computed values in ``tests/data_parallel``.

Notation of the method card: k workers, θ_i fast (local) weights of worker i, φ slow (global)
weights, Δ outer gradient, μ/β momentum, γ/η mixing rates, α merge factor, p skip probability.
Flat tensors are 1-D views of all parameters, shape (|θ|,); arithmetic is done in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def average(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of equally shaped tensors, accumulated in float32.

    This is what an all-reduce with the ``mean`` operator leaves on every member.
    """
    if not tensors:
        raise ValueError("tensors: need at least one tensor to average, got none")
    total = torch.zeros_like(tensors[0], dtype=torch.float32)
    for t in tensors:
        total += t.to(torch.float32)
    return total / len(tensors)


def average_kept(payloads: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """Mean of the payloads that were delivered; ``None`` marks one that was dropped.

    A masked all-reduce: every member sends, a dropped member's values count as zeros in the
    sum, and the sum is divided by the number kept (a count that travels with the payload).
    Returns None when every payload was dropped (or there are none): there is nothing to average.
    """
    kept = [p for p in payloads if p is not None]
    return average(kept) if kept else None


def outer_gradient(phi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """One worker's outer gradient φ − θ_i: global minus local (DiLoCo, PALSGD).

    The sign matters: the outer optimizer *descends* along Δ = mean_i(φ − θ_i), which moves φ
    towards the workers' average θ. The reverse sign (θ − φ) is a known bug that climbs the loss.
    """
    return phi.to(torch.float32) - theta.to(torch.float32)


def nesterov_outer_step(
    phi: torch.Tensor, delta: torch.Tensor, velocity: torch.Tensor, *, lr: float, momentum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DiLoCo's outer step: Nesterov SGD on the outer gradient Δ.

    ``v ← μ·v + Δ`` then ``φ ← φ − lr_out·(Δ + μ·v)`` (PyTorch's SGD with ``nesterov=True`` and
    no dampening). Returns ``(φ_new, v_new)``; the inputs are not modified.

    Parameters
    ----------
    phi : φ, the global weights, shape (n,).
    delta : Δ, the averaged outer gradient mean_i(φ − θ_i), shape (n,).
    velocity : v, the momentum buffer, shape (n,) (zeros before the first step).
    lr : lr_out, outer learning rate (DiLoCo default 0.7).
    momentum : μ, outer Nesterov momentum (DiLoCo default 0.9).
    """
    v_new = momentum * velocity + delta
    phi_new = phi - lr * (delta + momentum * v_new)
    return phi_new, v_new


def noloco_outer_step(
    phi_i: torch.Tensor,
    delta_i: torch.Tensor,
    *,
    group_thetas: Sequence[torch.Tensor],
    group_phis: Sequence[torch.Tensor],
    beta: float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NoLoCo's modified Nesterov step of worker i inside its group (a pair, or itself alone).

    ``δ_i ← β·δ_i + γ·mean_j(θ_j − φ_j) + γ·(mean_j(φ_j) − φ_i)`` then ``φ_i ← φ_i + δ_i``; the
    caller sets ``θ_i ← φ_i`` afterwards. The means run over the group, worker i included. The
    first γ-term carries the group's local progress; the second pulls the slow weights of the
    group together, which is what replaces DiLoCo's global all-reduce. Returns ``(φ_new, δ_new)``.

    Parameters
    ----------
    phi_i : φ_i, worker i's slow weights, shape (n,).
    delta_i : δ_i, worker i's outer momentum, shape (n,).
    group_thetas, group_phis : θ_j and φ_j of every member j of the group (i included).
    beta : β, outer momentum (NoLoCo default 0.5).
    gamma : γ, outer step size (NoLoCo default 0.7).
    """
    if len(group_thetas) != len(group_phis) or not group_thetas:
        raise ValueError(
            f"group_thetas/group_phis: need the same non-zero number of tensors, got "
            f"{len(group_thetas)} and {len(group_phis)}"
        )
    progress = average([t.to(torch.float32) - f.to(torch.float32)
                        for t, f in zip(group_thetas, group_phis, strict=True)])
    consensus = average(group_phis) - phi_i
    delta_new = beta * delta_i + gamma * progress + gamma * consensus
    return phi_i + delta_new, delta_new


def alpha_merge(theta_local: torch.Tensor, phi_global: torch.Tensor, *,
                alpha: float) -> torch.Tensor:
    """Streaming DiLoCo's overlapped merge: ``θ ← α·θ_local + (1 − α)·φ_global``.

    ``α = 0`` overwrites the fragment with the new global value (plain DiLoCo); ``α = 1`` ignores
    it. With overlap τ > 0, ``θ_local`` has moved on for τ inner steps since the outer gradient
    was sent, and the merge keeps a share α of that progress.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha}")
    return alpha * theta_local + (1.0 - alpha) * phi_global


def palsgd_pull(x: torch.Tensor, x_bar: torch.Tensor, *, gamma: float, p: float,
                eta: float) -> torch.Tensor:
    """PALSGD's probabilistic pull towards the stored global model (no communication).

    ``x ← x − (γ/p)·η·(x − x̄)``: taken instead of a gradient step with probability p. Dividing by
    p keeps the *expected* pull per step at γ·η·(x − x̄) whatever p is.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: skip probability must be in (0, 1), got {p}")
    return x - (gamma / p) * eta * (x - x_bar)


def palsgd_inner_lr(gamma: float, p: float) -> float:
    """PALSGD's inner learning rate γ/(1 − p): gradient steps are rarer, so each is larger."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p: skip probability must be in [0, 1), got {p}")
    return gamma / (1.0 - p)


def mix(weights: Sequence[float], tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Gossip mixing Σ_j W_ij·x_j of worker i's row of the mixing matrix (D-PSGD).

    ``weights`` and ``tensors`` list the same neighbours j (i itself included) in the same order.
    """
    if len(weights) != len(tensors) or not tensors:
        raise ValueError(
            f"weights/tensors: need the same non-zero length, got {len(weights)} and {len(tensors)}"
        )
    total = torch.zeros_like(tensors[0], dtype=torch.float32)
    for w, x in zip(weights, tensors, strict=True):
        total += float(w) * x.to(torch.float32)
    return total


def dpsgd_step(mixed: torch.Tensor, grad: torch.Tensor, *, lr: float) -> torch.Tensor:
    """D-PSGD: ``x_i ← Σ_j W_ij·x_j − γ·∇F_i(x_i)``; ``mixed`` is the first term (see :func:`mix`).

    The gradient is taken at the worker's *own* pre-mixing x_i, so computing it and exchanging
    models can overlap.
    """
    return mixed - lr * grad


def pairwise_average(x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """AD-PSGD's atomic pairwise averaging: both ends get ``(x_i + x_j)/2``."""
    return 0.5 * (x_i.to(torch.float32) + x_j.to(torch.float32))
