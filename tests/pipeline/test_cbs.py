"""CBS: schedules keep stage caps and node memory; collision awareness never predicts worse."""

import numpy as np
import pytest

from policies.pipeline.astar import Agent
from policies.pipeline.cbs import CBSConfig, capacity_excess, schedule_paths, stage_caps
from policies.pipeline.paths import PathRules, is_valid_path
from policies.pipeline.schedules import (
    agent_microbatches,
    make_agents,
    predict_makespan,
    skippipe_routes,
)
from tests.pipeline.helpers import random_costs, uniform_costs


def counts(plans):
    stage, node = {}, {}
    for p in plans:
        for s, n in zip(p.stages[1:], p.nodes[1:]):
            stage[s] = stage.get(s, 0) + 1
            node[n] = node.get(n, 0) + 1
    return stage, node


def test_two_agents_that_want_the_same_stage_are_split_by_the_cap():
    # Stage 1 on node 2 (cheap), stage 2 on node 3 (expensive); memory 1 -> caps of 1 each.
    costs = uniform_costs(4, hop_s=1.0, forward_s=1.0)
    costs.hop_s[:, 3] += 5.0
    stage_of = [0, 0, 1, 2]
    agents = [Agent(id=0, source=0), Agent(id=1, source=1)]
    rules = PathRules(num_stages=3, length=2)
    sched = schedule_paths(agents, costs, stage_of, rules, memory=1,
                           config=CBSConfig(collision_aware=False))
    stages = sorted(p.stages for p in sched.plans)
    assert stages == [(0, 1), (0, 2)]
    # Exactly one agent pays the detour through node 3.
    assert sched.makespan_s == pytest.approx(costs.route_s((0, 3)))


def test_too_many_agents_for_the_caps_raises():
    costs = uniform_costs(4, hop_s=1.0, forward_s=1.0)
    agents = [Agent(id=i, source=i % 2) for i in range(3)]
    with pytest.raises(ValueError, match="agents"):
        schedule_paths(agents, costs, [0, 0, 1, 2], PathRules(num_stages=3, length=2), memory=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_schedules_keep_rules_caps_and_memory(seed):
    # 12 nodes: 2 data nodes, stages 1..5 with 2 replicas each; m = 3 -> 6 agents, 18 visits
    # into caps of 6 per stage (30 in all).
    costs = random_costs(12, seed, forward_s=1.0)
    stage_of = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    rules = PathRules(num_stages=6, length=4)
    agents, loads = make_agents([0, 1], 6, 3, costs.forward_s)
    for aware in (False, True):
        mbs, sched = skippipe_routes(agents, loads, costs, stage_of, rules, 3,
                                     CBSConfig(collision_aware=aware, max_expansions=80))
        assert sched.feasible and capacity_excess(sched.plans, stage_caps([2] * 6, 3), 3) == 0
        stage, node = counts(sched.plans)
        assert max(stage.values()) <= 6 and max(node.values()) <= 3
        assert all(is_valid_path(p.stages, rules) for p in sched.plans)
        assert all(stage_of[n] == s for p in sched.plans for s, n in zip(p.stages, p.nodes))
        assert len(mbs) == 12 and sum(loads) == 12


@pytest.mark.parametrize("seed", [2, 3])
def test_collision_awareness_never_predicts_a_slower_iteration(seed):
    costs = random_costs(12, seed, forward_s=2.0)
    stage_of = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    rules = PathRules(num_stages=6, length=4)
    agents, loads = make_agents([0, 1], 6, 3, costs.forward_s)
    blind, _ = skippipe_routes(agents, loads, costs, stage_of, rules, 3,
                               CBSConfig(collision_aware=False, max_expansions=80))
    aware, sched = skippipe_routes(agents, loads, costs, stage_of, rules, 3,
                                   CBSConfig(collision_aware=True, max_expansions=80))
    assert predict_makespan(costs, aware, 3) <= predict_makespan(costs, blind, 3) + 1e-9
    assert sched.predicted_s == pytest.approx(predict_makespan(costs, aware, 3))


def test_skippipe_beats_random_paths_on_average():
    from policies.pipeline.schedules import random_skip_routes

    costs = random_costs(12, 5, forward_s=1.0)
    stage_of = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    replicas = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    rules = PathRules(num_stages=6, length=4)
    agents, loads = make_agents([0, 1], 6, 3, costs.forward_s)
    mbs, _ = skippipe_routes(agents, loads, costs, stage_of, rules, 3,
                             CBSConfig(collision_aware=True, max_expansions=80))
    rng = np.random.default_rng(0)
    randoms = [predict_makespan(costs, agent_microbatches(
        random_skip_routes(agents, replicas, rules, 3, rng), loads), 3) for _ in range(10)]
    assert predict_makespan(costs, mbs, 3) < min(randoms)


def test_random_skip_routes_keep_caps_memory_and_order():
    from policies.pipeline.schedules import random_skip_routes

    replicas = [[0, 1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]]
    rules = PathRules(num_stages=6, length=4)
    agents = [Agent(id=i, source=i // 3) for i in range(9)]
    routes = random_skip_routes(agents, replicas, rules, 3, np.random.default_rng(4))
    stage, node = {}, {}
    for stages, nodes in routes:
        assert list(stages) == sorted(stages) and len(stages) == 4 and stages[0] == 0
        for s, n in zip(stages[1:], nodes[1:]):
            assert n in replicas[s]
            stage[s] = stage.get(s, 0) + 1
            node[n] = node.get(n, 0) + 1
    assert max(stage.values()) <= 6 and max(node.values()) <= 3
    other = random_skip_routes(agents, replicas, rules, 3, np.random.default_rng(5))
    assert other != routes


@pytest.mark.parametrize("knob, small, large", [("max_candidates", 1, 24), ("branching", 1, 3)])
def test_search_width_knobs_change_the_blind_schedule(knob, small, large):
    stage_of = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    rules = PathRules(num_stages=6, length=4)
    gains = []
    for seed in (0, 2, 6):
        costs = random_costs(12, seed)
        agents, loads = make_agents([0, 1], 6, 3, costs.forward_s)
        one, many = (skippipe_routes(agents, loads, costs, stage_of, rules, 3,
                                     CBSConfig(collision_aware=False, **{knob: k}))[1]
                     for k in (small, large))
        assert many.makespan_s <= one.makespan_s
        gains.append(one.makespan_s - many.makespan_s)
    assert max(gains) > 0.1   # the parameter matters
