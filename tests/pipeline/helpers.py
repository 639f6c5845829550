"""Small hand-made cost models shared by the pipeline tests."""

import numpy as np

from policies.pipeline.costs import NodeCosts


def random_costs(n: int, seed: int, *, forward_s: float = 1.0) -> NodeCosts:
    """Random asymmetric hop costs in [0.1, 3) s and slightly uneven forward times."""
    rng = np.random.default_rng(seed)
    hop = rng.uniform(0.1, 3.0, size=(n, n))
    np.fill_diagonal(hop, 0.0)
    fwd = forward_s * rng.uniform(0.8, 1.2, size=n)
    return NodeCosts(hop_s=hop, forward_s=fwd)


def uniform_costs(n: int, *, hop_s: float, forward_s: float) -> NodeCosts:
    """Every hop ``hop_s``, every forward ``forward_s`` (backward 1.5x, loss 0.25x)."""
    hop = np.full((n, n), hop_s)
    np.fill_diagonal(hop, 0.0)
    return NodeCosts(hop_s=hop, forward_s=np.full(n, forward_s))
