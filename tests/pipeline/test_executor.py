"""The executor on the real engine: the pure timeline is its oracle under the ideal network."""

import numpy as np
import pytest

from policies.pipeline.costs import NodeCosts, hop_cost_matrix, hop_costs, network_matrices
from policies.pipeline.executor import (
    ExecutorConfig,
    Microbatch,
    MicrobatchCosts,
    PipelineExecutor,
    PipelineHooks,
    Route,
    StagePlacement,
)
from policies.pipeline.timeline import simulate_iteration
from sim import collectives
from sim.config import NetworkConfig
from sim.network.forecast import MessageForecast
from sim.world import World
from topologies import gcp_regions

ACT = 32 * 2**20
PLACEMENT = [[0, 1, 2], [3, 4], [5, 6], [7, 8]]
STAGE_OF = {n: s for s, nodes in enumerate(PLACEMENT) for n in nodes}


def make(network="ideal", memory=2, overhead=0.35, allreduce=False, hooks=None, n=10,
         transport="fluid"):
    # fluid transfers: the pure timeline and the ring closed form are the emulator's
    world = World(gcp_regions(n), network=NetworkConfig(model=network, transport=transport),
                  flops_per_s=1e12)
    costs = MicrobatchCosts.uniform(num_stages=4, forward_s=1.76, activation_nbytes=ACT,
                                    grad_nbytes=1e8)
    ex = PipelineExecutor(world, StagePlacement(PLACEMENT), costs,
                          ExecutorConfig(memory_microbatches=memory, hop_overhead_s=overhead,
                                         allreduce=allreduce), hooks)
    return world, ex


def random_routes(rng, count):
    routes = []
    for _ in range(count):
        stages = [0] + sorted(rng.choice([1, 2, 3], size=int(rng.integers(1, 4)), replace=False))
        if len(stages) > 2 and rng.random() < 0.3:
            stages[1], stages[2] = stages[2], stages[1]       # a swap
        routes.append(tuple(int(rng.choice(PLACEMENT[s])) for s in stages))
    return routes


def run_iteration(world, ex, routes, chains):
    mbs = [Microbatch(index=i, route=Route(stages=tuple(STAGE_OF[n] for n in r), nodes=r),
                      chain=c) for i, (r, c) in enumerate(zip(routes, chains))]
    proc = ex.run_iteration(0, mbs)
    world.env.run(proc)
    return proc.value


@pytest.mark.parametrize("seed", range(4))
def test_executor_matches_the_pure_timeline_under_ideal_network(seed):
    rng = np.random.default_rng(seed)
    routes = [r for r in random_routes(rng, 8)]
    # chains keep the memory waits deadlock free: at most one chain per data node slot
    chains = [i % 3 for i in range(len(routes))]
    routes = [(c,) + r[1:] for r, c in zip(routes, chains)]
    world, ex = make(memory=2)
    stats = run_iteration(world, ex, routes, chains)
    hop = hop_cost_matrix(*network_matrices(world.network, world.num_nodes), ACT, 0.35)
    costs = NodeCosts(hop_s=hop, forward_s=np.full(world.num_nodes, 1.76))
    timeline = simulate_iteration(costs, routes, memory=2, chains=chains)
    assert stats.completed == len(routes)
    assert [r.end_s for r in stats.results] == pytest.approx(timeline.finish_s)
    assert stats.pipeline_s == pytest.approx(timeline.makespan_s)


@pytest.mark.parametrize("seed", range(4))
def test_executor_matches_the_tcp_aware_timeline_under_tcp(seed):
    """Under ``tcp`` the timeline follows every connection (cold, warm, restarted after an
    idle RTO, queued): it reproduces the executor exactly. The cold-hop matrix (A*'s price)
    is at least the fluid price, and slow start makes some hops much dearer."""
    rng = np.random.default_rng(seed)
    routes = [r for r in random_routes(rng, 8)]
    chains = [i % 3 for i in range(len(routes))]
    routes = [(c,) + r[1:] for r, c in zip(routes, chains)]
    world, ex = make(memory=2, transport="tcp")
    stats = run_iteration(world, ex, routes, chains)
    hop, transport = hop_costs(MessageForecast.of_network(world.network, world.num_nodes),
                               ACT, 0.35)
    costs = NodeCosts(hop_s=hop, forward_s=np.full(world.num_nodes, 1.76), transport=transport)
    timeline = simulate_iteration(costs, routes, memory=2, chains=chains)
    assert transport is not None and stats.completed == len(routes)
    assert [r.end_s for r in stats.results] == pytest.approx(timeline.finish_s, rel=1e-12)
    assert stats.pipeline_s == pytest.approx(timeline.makespan_s, rel=1e-12)
    fluid = hop_cost_matrix(*network_matrices(world.network, world.num_nodes), ACT, 0.35)
    assert np.all(hop >= fluid - 1e-12) and np.any(hop > fluid + 0.5)  # slow start costs


def test_fluid_hop_costs_carry_no_connection_state():
    world, _ = make()
    forecast = MessageForecast.of_network(world.network, world.num_nodes)
    hop, transport = hop_costs(forecast, ACT, 0.35)
    assert transport is None
    assert np.array_equal(hop, hop_cost_matrix(*network_matrices(world.network, 10), ACT, 0.35))
    tcp_world, _ = make(transport="tcp")
    tcp = MessageForecast.of_network(tcp_world.network, 10)
    authors, none = hop_costs(tcp, ACT, 0.35, model="fluid")   # the authors' planner under tcp
    assert none is None
    assert np.array_equal(authors, hop_cost_matrix(*network_matrices(tcp_world.network, 10),
                                                   ACT, 0.35))


def test_one_task_at_a_time_and_at_most_m_in_flight():
    rng = np.random.default_rng(9)
    routes = [(i % 3,) + r[1:] for i, r in enumerate(random_routes(rng, 12))]
    world, ex = make(memory=2)
    run_iteration(world, ex, routes, [i % 3 for i in range(12)])
    iv = world.recorder.intervals()
    busy = iv[iv.kind == "busy"].sort_values(["node", "start_s"])
    for _, tasks in busy.groupby("node"):
        starts, ends = tasks.start_s.to_numpy(), tasks.end_s.to_numpy()
        assert np.all(starts[1:] >= ends[:-1] - 1e-9)
    # in flight on a node: from its forward task's start to its backward task's end
    for node, tasks in busy.groupby("node"):
        spans = {}
        for label, s, e in zip(tasks.label, tasks.start_s, tasks.end_s):
            kind, mb = label.split()
            if kind.startswith("F"):
                spans.setdefault(mb, [s, None])
            elif kind.startswith("B"):
                spans[mb][1] = e
        events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
        level = peak = 0
        for _, d in events:
            level += d
            peak = max(peak, level)
        assert peak <= 2, (node, peak)


def test_allreduce_time_is_the_ring_closed_form():
    # Stage 0's three replicas sit in regions 0, 1, 2; with one replica elsewhere only stage 0
    # all-reduces. Ideal network: the ring costs 2(k-1)(alpha + m / (k beta)) on its slowest hop.
    world, ex = make(allreduce=True)
    run_iteration(world, ex, [(0, 3, 5, 7)], [None])
    ex.placement.replicas[1:] = [[3], [5], [7]]
    t0 = world.now
    world.env.run(ex.allreduce_stages())
    nbytes = 1e8
    lat, bw = network_matrices(world.network, world.num_nodes)
    ring = [(0, 1), (1, 2), (2, 0)]
    expected = 2 * 2 * max(lat[a, b] + nbytes / 3 / bw[a, b] for a, b in ring)
    closed = collectives.ring_allreduce_cost(3, nbytes, max(lat[a, b] for a, b in ring),
                                             min(bw[a, b] for a, b in ring))
    assert world.now - t0 == pytest.approx(expected, rel=1e-6)
    assert world.now - t0 <= closed + 1e-9


def test_extra_forward_seconds_hook_adds_exactly():
    class Redundant(PipelineHooks):
        def extra_forward_s(self, ex, mb, position):
            return 0.5

    route = [(0, 3, 5, 7)]
    _, ex0 = make()
    base = run_iteration(ex0.world, ex0, route, [None]).pipeline_s
    _, ex1 = make(hooks=Redundant())
    slower = run_iteration(ex1.world, ex1, route, [None]).pipeline_s
    assert slower - base == pytest.approx(4 * 0.5)


def test_failed_stage_drops_its_microbatches_and_hooks_see_it():
    seen = []

    class Watch(PipelineHooks):
        def microbatch_done(self, ex, mb, result):
            seen.append((mb.index, result.ok))

    world, ex = make(hooks=Watch())
    ex.fail_stage(2)
    stats = run_iteration(world, ex, [(0, 3, 5, 7), (1, 4, 8)], [None, None])
    assert sorted(seen) == [(0, False), (1, True)]
    assert stats.completed == 1 and stats.failed == 1
    assert all(ex.memory(n).count == 0 for n in range(10))      # slots released
    ex.restore_stage(2, nodes=[9, 6])
    assert ex.placement.replicas[2] == [9, 6] and ex.placement.stage_of(9) == 2


def test_node_failure_mid_iteration_loses_only_its_microbatches():
    world, ex = make()

    def crash():
        yield world.env.timeout(2.0)
        world.nodes[3].fail()

    world.env.process(crash())
    stats = run_iteration(world, ex, [(0, 3, 5), (1, 4, 6)], [None, None])
    assert [r.ok for r in stats.results] == [False, True]
    assert all(ex.memory(n).count == 0 for n in range(10))


def test_routes_must_match_the_placement():
    world, ex = make()
    bad = Microbatch(index=0, route=Route(stages=(0, 1), nodes=(0, 5)))
    with pytest.raises(ValueError, match="node 5 serves stage 1"):
        ex.run_iteration(0, [bad])
    with pytest.raises(ValueError, match="stage 0"):
        Route(stages=(1, 0), nodes=(3, 0))
    with pytest.raises(ValueError, match="memory_microbatches"):
        ExecutorConfig(memory_microbatches=0)
