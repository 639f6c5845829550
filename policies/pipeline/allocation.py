"""Node-to-stage allocation for a swarm of pipelines (the full-pipeline baseline, DT-FM style).

``stage_sizes[s]`` nodes hold stage ``s``. An allocation lists them per stage, in order:
``replicas[s][j]``. Pipeline ``j`` is the ``j``-th node of every stage, for ``j < P`` with
``P = min(stage_sizes)``; stage 0 may have more nodes (data nodes) than ``P``, and data node
``d >= P`` feeds its microbatches to the pipelines in turn (see :func:`full_pipeline_routes`).

Cost of an allocation (what the search minimises): the slowest pipeline's loop,

    cost = max_j  sum of hop_s around (d_j, stage 1 node, ..., stage S-1 node, d_j)
           + dp_weight * sum_s ring cost of stage s's replicas

with the loops of extra data nodes counted on every pipeline they feed. DT-FM searches this
space with a genetic algorithm; we use random-restart hill climbing over pairwise swaps, which is
simple and deterministic for a seed. Its quality against random allocations is measured in
``docs/methods/pipeline-skippipe.md`` (and tested: it must beat the best of many random draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.errors import FieldError


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """Which nodes hold each stage, and what that costs.

    replicas:
        ``replicas[s]`` is the tuple of node ids of stage ``s``; pipeline ``j`` is the ``j``-th
        node of every stage.
    cost_s:
        The allocation's cost (seconds; see the module docstring).
    """

    replicas: tuple[tuple[int, ...], ...]
    cost_s: float

    @property
    def num_pipelines(self) -> int:
        """P, the number of disjoint full pipelines: the smallest stage size."""
        return min(len(r) for r in self.replicas)

    def pipeline(self, j: int) -> tuple[int, ...]:
        """The nodes of pipeline ``j`` for stages 1..S-1."""
        return tuple(r[j] for r in self.replicas[1:])


def check_stage_sizes(stage_sizes: Sequence[int], num_nodes: int) -> None:
    """Raise ValueError unless the stage sizes are positive and fit on ``num_nodes`` nodes."""
    if not stage_sizes or min(stage_sizes) < 1:
        raise FieldError("stage_sizes", f"every stage needs >= 1 node, got {list(stage_sizes)}")
    if sum(stage_sizes) > num_nodes:
        raise FieldError(
            "stage_sizes", f"{list(stage_sizes)} needs {sum(stage_sizes)} nodes; only {num_nodes}")


def feeds(num_data_nodes: int, num_pipelines: int) -> list[list[int]]:
    """Which pipelines each data node feeds: its own for ``d < P``, all of them otherwise."""
    return [[d] if d < num_pipelines else list(range(num_pipelines))
            for d in range(num_data_nodes)]


def allocation_cost(hop_s: np.ndarray, replicas: Sequence[Sequence[int]],
                    dp_weight: float = 0.0, dp_hop_s: np.ndarray | None = None) -> float:
    """Cost of an allocation, seconds (see the module docstring).

    ``dp_hop_s`` (default ``hop_s``) prices the ring all-reduce hops within each stage.
    """
    num_pipelines = min(len(r) for r in replicas)
    worst = 0.0
    for d, pipes in enumerate(feeds(len(replicas[0]), num_pipelines)):
        for j in pipes:
            loop = [replicas[0][d], *(r[j] for r in replicas[1:]), replicas[0][d]]
            worst = max(worst, float(sum(hop_s[a, b] for a, b in zip(loop, loop[1:]))))
    if dp_weight:
        dp = dp_hop_s if dp_hop_s is not None else hop_s
        ring = 0.0
        for nodes in replicas:
            if len(nodes) > 1:
                cyc = list(nodes) + [nodes[0]]
                ring += max(float(dp[a, b]) for a, b in zip(cyc, cyc[1:]))
        worst += dp_weight * ring
    return worst


def random_allocation(hop_s: np.ndarray, stage_sizes: Sequence[int],
                      rng: np.random.Generator, dp_weight: float = 0.0) -> Allocation:
    """Nodes drawn uniformly at random into the stages."""
    n = len(hop_s)
    check_stage_sizes(stage_sizes, n)
    order = [int(x) for x in rng.permutation(n)]
    replicas, start = [], 0
    for size in stage_sizes:
        replicas.append(tuple(order[start:start + size]))
        start += size
    return Allocation(replicas=tuple(replicas),
                      cost_s=allocation_cost(hop_s, replicas, dp_weight))


def search_allocation(hop_s: np.ndarray, stage_sizes: Sequence[int], rng: np.random.Generator,
                      *, restarts: int = 8, dp_weight: float = 0.0) -> Allocation:
    """Random-restart hill climbing over pairwise swaps of nodes (slots).

    Each restart starts from a random allocation (unused nodes sit in a spare pool that takes
    part in swaps) and applies the best improving swap until none improves; the best restart
    wins. Deterministic for a given ``rng`` state.
    """
    if restarts < 1:
        raise ValueError(f"restarts: must be >= 1, got {restarts}")
    n = len(hop_s)
    check_stage_sizes(stage_sizes, n)
    bounds = np.cumsum([0, *stage_sizes])

    def unpack(order: list[int]) -> list[list[int]]:
        return [order[bounds[s]:bounds[s + 1]] for s in range(len(stage_sizes))]

    best: Allocation | None = None
    for _ in range(restarts):
        order = [int(x) for x in rng.permutation(n)]  # slots then the spare pool
        cost = allocation_cost(hop_s, unpack(order), dp_weight)
        improved = True
        while improved:
            improved = False
            best_move, best_cost = None, cost
            for a in range(int(bounds[-1])):
                for b in range(a + 1, n):
                    order[a], order[b] = order[b], order[a]
                    trial = allocation_cost(hop_s, unpack(order), dp_weight)
                    order[a], order[b] = order[b], order[a]
                    if trial < best_cost - 1e-12:
                        best_move, best_cost = (a, b), trial
            if best_move is not None:
                a, b = best_move
                order[a], order[b] = order[b], order[a]
                cost, improved = best_cost, True
        if best is None or cost < best.cost_s:
            best = Allocation(replicas=tuple(tuple(r) for r in unpack(order)), cost_s=cost)
    assert best is not None
    return best


def genetic_allocation(hop_s: np.ndarray, stage_sizes: Sequence[int], rng: np.random.Generator,
                       *, population: int = 200, trials: int = 8000,
                       dp_weight: float = 0.0) -> Allocation:
    """A steady-state genetic search over node orders (DT-FM's method, SkipPipe's settings).

    An individual is a permutation of the nodes: the first ``sum(stage_sizes)`` fill the stages
    in order, the rest are spares (as in :func:`search_allocation`). ``population`` random
    individuals start; each of ``trials`` trials picks two parents uniformly, makes a child by
    order crossover (a random slice of the first parent, the other nodes in the second parent's
    order), swaps two random positions with probability 1/2, and replaces the population's
    worst when it is cheaper. Returns the cheapest individual. Deterministic for ``rng``.
    Used to check that the hill climbing finds allocations at least as cheap
    (``benchmarks/bench_allocation_search.py``).
    """
    if population < 2 or trials < 0:
        raise ValueError(f"population >= 2 and trials >= 0, got {population}, {trials}")
    n = len(hop_s)
    check_stage_sizes(stage_sizes, n)
    bounds = np.cumsum([0, *stage_sizes])

    def cost(order: list[int]) -> float:
        return allocation_cost(hop_s, [order[bounds[s]:bounds[s + 1]]
                                       for s in range(len(stage_sizes))], dp_weight)

    pool = [[int(x) for x in rng.permutation(n)] for _ in range(population)]
    costs = [cost(order) for order in pool]
    for _ in range(trials):
        i, j = (int(x) for x in rng.choice(population, size=2, replace=False))
        a, b = sorted(int(x) for x in rng.integers(0, n + 1, size=2))
        kept = pool[i][a:b]
        rest = [node for node in pool[j] if node not in kept]
        child = rest[:a] + kept + rest[a:]
        if rng.random() < 0.5:
            x, y = (int(v) for v in rng.choice(n, size=2, replace=False))
            child[x], child[y] = child[y], child[x]
        worst = int(np.argmax(costs))
        c = cost(child)
        if c < costs[worst]:
            pool[worst], costs[worst] = child, c
    best = int(np.argmin(costs))
    order = pool[best]
    return Allocation(replicas=tuple(tuple(order[bounds[s]:bounds[s + 1]])
                                     for s in range(len(stage_sizes))), cost_s=costs[best])


def full_pipeline_routes(allocation: Allocation, microbatches_per_data_node: int
                         ) -> list[tuple[int, ...]]:
    """Node routes of every microbatch of an iteration in a full pipeline, data node by data node.

    Data node ``d < P`` sends all its microbatches down pipeline ``d``; the others spread
    theirs over the pipelines in turn (so every pipeline carries about the same load).
    """
    routes = []
    num_pipelines = allocation.num_pipelines
    turn = 0
    for d, source in enumerate(allocation.replicas[0]):
        for _ in range(microbatches_per_data_node):
            if d < num_pipelines:
                j = d
            else:
                j = turn % num_pipelines
                turn += 1
            routes.append((source, *allocation.pipeline(j)))
    return routes
