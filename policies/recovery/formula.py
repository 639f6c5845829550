"""The CheckFree recovery rule: rebuild a lost stage from its two neighbours.

When every replica of an interior stage ``i`` is lost, CheckFree (Gensyn, 2025) initialises the
replacement as the average of the neighbouring stages' weights, each weighted by the *other*
side's importance as measured by the last gradient norm::

    a = ||g_{i+1}|| + eps          b = ||g_{i-1}|| + eps
    W_i  <-  (a * W_{i+1} + b * W_{i-1}) / (a + b)

``g`` are the neighbours' gradients of the previous iteration, after the data-parallel average
and the per-stage clipping at 1.0, so each norm is at most 1. One description of the method uses
squared norms; ``squared=True`` selects that variant (``a = ||g_{i+1}||^2 + eps``).

Weights are dictionaries from parameter name to tensor, named *relative to the stage* (for the
LLaMA stages of ``workloads.llama``: ``"blocks.0.attn.wq.weight"``, ...), so stages with the
same number of blocks share their names. The rebuilt stage takes exactly the names it owns from
each neighbour; a neighbour may hold extra tensors (stage 0 also holds the embedding), which
are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

StageWeights = Mapping[str, torch.Tensor]

DEFAULT_EPS = 1e-4
"""The constant added to each gradient norm in the reference implementation."""


def neighbour_coefficients(
    grad_norm_prev: float,
    grad_norm_next: float,
    *,
    eps: float = DEFAULT_EPS,
    squared: bool = False,
) -> tuple[float, float]:
    """Return the weights ``(a, b)`` of ``W_{i+1}`` and ``W_{i-1}`` in the CheckFree average.

    Parameters
    ----------
    grad_norm_prev, grad_norm_next:
        L2 norms of the gradients of stages ``i-1`` and ``i+1`` (dimensionless, >= 0).
    eps:
        Added to each (possibly squared) norm so that two zero gradients give the plain mean.
    squared:
        Use squared norms instead of norms.

    Returns
    -------
    (a, b):
        ``a`` multiplies ``W_{i+1}``, ``b`` multiplies ``W_{i-1}``.
    """
    for name, value in (("grad_norm_prev", grad_norm_prev), ("grad_norm_next", grad_norm_next)):
        if not value >= 0.0:  # also rejects NaN
            raise ValueError(f"{name}={value}: must be a finite number >= 0")
    if not eps >= 0.0:
        raise ValueError(f"eps={eps}: must be >= 0")
    power = 2 if squared else 1
    a = float(grad_norm_next) ** power + eps
    b = float(grad_norm_prev) ** power + eps
    if a + b <= 0.0:
        raise ValueError("eps=0 with both gradient norms 0: the average is undefined; use eps > 0")
    return a, b


def checkfree_average(
    weights_prev: StageWeights,
    weights_next: StageWeights,
    *,
    grad_norm_prev: float,
    grad_norm_next: float,
    names: Iterable[str] | None = None,
    eps: float = DEFAULT_EPS,
    squared: bool = False,
) -> dict[str, torch.Tensor]:
    """Weights of a lost stage ``i`` rebuilt from stages ``i-1`` (prev) and ``i+1`` (next).

    Parameters
    ----------
    weights_prev, weights_next:
        Parameter name -> tensor of stages ``i-1`` and ``i+1``.
    grad_norm_prev, grad_norm_next:
        Their gradient norms of the previous iteration (see :func:`neighbour_coefficients`).
    names:
        The parameter names of stage ``i`` (default: the names of ``weights_next``).
    eps, squared:
        See :func:`neighbour_coefficients`.

    Returns
    -------
    dict
        Name -> new tensor ``(a * W_next + b * W_prev) / (a + b)``, computed in the tensors'
        dtype in exactly that order of operations.
    """
    a, b = neighbour_coefficients(grad_norm_prev, grad_norm_next, eps=eps, squared=squared)
    names = list(weights_next) if names is None else list(names)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in names:
            w_prev = _lookup(weights_prev, name, "weights_prev")
            w_next = _lookup(weights_next, name, "weights_next")
            if w_prev.shape != w_next.shape:
                raise ValueError(
                    f"parameter {name!r}: neighbour shapes differ ({tuple(w_prev.shape)} vs "
                    f"{tuple(w_next.shape)}); CheckFree needs stages of equal shape"
                )
            out[name] = (a * w_next + b * w_prev) / (a + b)
    return out


def copy_weights(source: StageWeights,
                 names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Detached copies of ``source``'s tensors (all, or those in ``names``).

    This is how CheckFree+ rebuilds a first or last stage: from its swap partner, which was
    trained to stand in for it.
    """
    names = list(source) if names is None else list(names)
    return {name: _lookup(source, name, "source").detach().clone() for name in names}


def _lookup(weights: StageWeights, name: str, which: str) -> torch.Tensor:
    try:
        return weights[name]
    except KeyError:
        raise ValueError(
            f"{which}: has no parameter {name!r}; CheckFree needs neighbours with the same "
            "parameter names (same number of blocks per stage)"
        ) from None
