"""Allocation search: closed-form cost, brute-force optimum on a small case, beats random."""

import itertools

import numpy as np
import pytest

from policies.pipeline.allocation import (
    Allocation,
    allocation_cost,
    full_pipeline_routes,
    genetic_allocation,
    random_allocation,
    search_allocation,
)


def line_costs(n: int) -> np.ndarray:
    """Nodes on a line: a hop costs the distance between positions (symmetric)."""
    pos = np.arange(n, dtype=float)
    return np.abs(pos[:, None] - pos[None, :])


def test_cost_is_the_slowest_loop_by_hand():
    hop = line_costs(6)
    # Two pipelines: 0 -> 2 -> 4 -> 0 (2 + 2 + 4 = 8) and 1 -> 3 -> 5 -> 1 (8): cost 8.
    assert allocation_cost(hop, [(0, 1), (2, 3), (4, 5)]) == pytest.approx(8.0)
    # 0 -> 1 -> 2 -> 0 (4) and 3 -> 4 -> 5 -> 3 (4): cost 4.
    assert allocation_cost(hop, [(0, 3), (1, 4), (2, 5)]) == pytest.approx(4.0)


def test_extra_data_node_loops_count():
    hop = line_costs(7)
    replicas = [(0, 6), (1,), (2,)]     # one pipeline; data node 6 feeds it too
    # loops 0-1-2-0 = 4 and 6-1-2-6 = 5 + 1 + 4 = 10
    assert allocation_cost(hop, replicas) == pytest.approx(10.0)


def test_search_finds_the_brute_force_optimum():
    rng = np.random.default_rng(3)
    hop = rng.uniform(0.1, 5.0, size=(7, 7))
    np.fill_diagonal(hop, 0.0)
    sizes = [2, 2, 2]
    best = min(
        allocation_cost(hop, [p[0:2], p[2:4], p[4:6]])
        for p in itertools.permutations(range(7), 6)
    )
    found = search_allocation(hop, sizes, np.random.default_rng(0), restarts=8)
    assert found.cost_s == pytest.approx(best)
    assert found.cost_s == pytest.approx(allocation_cost(hop, found.replicas))
    used = [n for r in found.replicas for n in r]
    assert len(set(used)) == 6 and [len(r) for r in found.replicas] == sizes


@pytest.mark.parametrize("dp_weight", [0.0, 0.5])
def test_genetic_search_finds_the_brute_force_optimum(dp_weight):
    # DT-FM's genetic search (SkipPipe's allocation), the comparison for the hill climbing
    rng = np.random.default_rng(3)
    hop = rng.uniform(0.1, 5.0, size=(7, 7))
    np.fill_diagonal(hop, 0.0)
    best = min(
        allocation_cost(hop, [p[0:2], p[2:4], p[4:6]], dp_weight)
        for p in itertools.permutations(range(7), 6)
    )
    found = genetic_allocation(hop, [2, 2, 2], np.random.default_rng(0), dp_weight=dp_weight)
    assert found.cost_s == pytest.approx(best)
    assert found.cost_s == pytest.approx(allocation_cost(hop, found.replicas, dp_weight))
    assert found == genetic_allocation(hop, [2, 2, 2], np.random.default_rng(0),
                                       dp_weight=dp_weight)  # deterministic
    hill = search_allocation(hop, [2, 2, 2], np.random.default_rng(0), restarts=8,
                             dp_weight=dp_weight)
    assert hill.cost_s == pytest.approx(best)


def test_search_beats_many_random_allocations_on_gcp():
    from policies.pipeline.costs import hop_cost_matrix, network_matrices
    from sim.world import World
    from topologies import gcp_regions

    world = World(gcp_regions(20), network="ideal", flops_per_s=1e12)
    hop = hop_cost_matrix(*network_matrices(world.network, 20), 32 * 2**20, 0.35)
    sizes = [5, 3, 3, 3, 3, 3]
    found = search_allocation(hop, sizes, np.random.default_rng(0), restarts=4)
    rng = np.random.default_rng(1)
    randoms = [random_allocation(hop, sizes, rng).cost_s for _ in range(300)]
    assert found.cost_s < min(randoms)
    assert found.cost_s < 0.7 * float(np.mean(randoms))


def test_search_is_deterministic_for_a_seed():
    hop = line_costs(9)[::-1]
    a = search_allocation(hop, [3, 2, 2], np.random.default_rng(5), restarts=3)
    b = search_allocation(hop, [3, 2, 2], np.random.default_rng(5), restarts=3)
    assert a == b


def test_full_pipeline_routes_balance_the_pipelines():
    alloc = Allocation(replicas=((0, 1, 2), (3, 4), (5, 6)), cost_s=0.0)
    routes = full_pipeline_routes(alloc, 4)
    assert len(routes) == 12
    assert routes[:4] == [(0, 3, 5)] * 4 and routes[4:8] == [(1, 4, 6)] * 4
    # data node 2 alternates between the pipelines
    assert routes[8:] == [(2, 3, 5), (2, 4, 6), (2, 3, 5), (2, 4, 6)]


@pytest.mark.parametrize("sizes, field", [([2, 0, 1], "stage_sizes"), ([], "stage_sizes"),
                                          ([4, 4, 4], "stage_sizes")])
def test_bad_sizes_raise(sizes, field):
    with pytest.raises(ValueError, match=field):
        search_allocation(line_costs(8), sizes, np.random.default_rng(0))
