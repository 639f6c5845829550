"""A*: optimal against brute-force enumeration; constraints and windows by hand."""

import itertools

import pytest

from policies.pipeline.astar import Agent, AgentConstraints, place_task, plan_path
from policies.pipeline.paths import PathRules, valid_paths
from tests.pipeline.helpers import random_costs, uniform_costs

# 9 nodes: stage 0 on {0, 1}, stages 1..3 on two replicas each, node 8 holds none.
STAGE_OF = [0, 0, 1, 1, 2, 2, 3, 3, -1]


def brute_force(agent, costs, rules, constraints=AgentConstraints()):
    """The cheapest (finish, stages, nodes) over every valid path and replica choice."""
    best = None
    for stages in valid_paths(rules):
        if set(stages) & constraints.forbidden_stages:
            continue
        choices = [[n for n, s in enumerate(STAGE_OF) if s == st
                    and n not in constraints.forbidden_nodes] for st in stages[1:]]
        for picks in itertools.product(*choices):
            nodes = (agent.source, *picks)
            finish = agent.start_s + costs.route_s(nodes)
            if best is None or finish < best[0] - 1e-12:
                best = (finish, stages, nodes)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("length", [2, 3, 4])
def test_astar_matches_brute_force(seed, length):
    costs = random_costs(9, seed)
    rules = PathRules(num_stages=4, length=length)
    agent = Agent(id=0, source=seed % 2, start_s=0.5 * seed)
    plan = plan_path(agent, costs, STAGE_OF, rules)
    finish, _, _ = brute_force(agent, costs, rules)
    assert plan.finish_s == pytest.approx(finish)
    assert plan.finish_s == pytest.approx(agent.start_s + costs.route_s(plan.nodes))
    assert [STAGE_OF[n] for n in plan.nodes] == list(plan.stages)


def test_forbidden_stages_and_nodes_are_avoided_and_still_optimal():
    costs = random_costs(9, 11)
    rules = PathRules(num_stages=4, length=3)
    agent = Agent(id=0, source=0)
    free = plan_path(agent, costs, STAGE_OF, rules)
    banned = AgentConstraints(forbidden_stages=frozenset({free.stages[1]}),
                              forbidden_nodes=frozenset({free.nodes[2]}))
    plan = plan_path(agent, costs, STAGE_OF, rules, banned)
    assert free.stages[1] not in plan.stages and free.nodes[2] not in plan.nodes
    assert plan.finish_s == pytest.approx(brute_force(agent, costs, rules, banned)[0])
    assert plan.finish_s >= free.finish_s


def test_no_path_returns_none():
    costs = random_costs(9, 0)
    rules = PathRules(num_stages=4, length=4)
    assert plan_path(Agent(id=0, source=0), costs, STAGE_OF, rules,
                     AgentConstraints(forbidden_stages=frozenset({2}))) is None


def test_window_makes_the_agent_wait_when_there_is_no_other_way():
    # One replica per stage: 0 -> 1 -> 0, hops 1 s, w = 1 s.
    costs = uniform_costs(2, hop_s=1.0, forward_s=1.0)
    rules = PathRules(num_stages=2, length=2)
    agent = Agent(id=0, source=0)
    alone = plan_path(agent, costs, [0, 1], rules)
    assert alone.finish_s == pytest.approx(costs.route_s((0, 1)))   # 9.25
    # Node 1 is busy during [1.5, 4): the forward there (arrives at 2) waits until 4.
    blocked = plan_path(agent, costs, [0, 1], rules,
                        AgentConstraints(windows=((1, 1.5, 4.0),)))
    assert blocked.visits[1].start_s == pytest.approx(4.0)
    assert blocked.finish_s == pytest.approx(alone.finish_s + 2.0)


def test_window_makes_the_agent_take_another_replica_when_cheaper():
    # Stage 1 on nodes 1 and 2, node 2 slightly slower to reach.
    costs = uniform_costs(3, hop_s=1.0, forward_s=1.0)
    costs.hop_s[0, 2] = costs.hop_s[2, 0] = 1.1
    rules = PathRules(num_stages=2, length=2)
    agent = Agent(id=0, source=0)
    assert plan_path(agent, costs, [0, 1, 1], rules).nodes == (0, 1)
    plan = plan_path(agent, costs, [0, 1, 1], rules,
                     AgentConstraints(windows=((1, 0.0, 100.0),)))
    assert plan.nodes == (0, 2)
    assert plan.finish_s == pytest.approx(costs.route_s((0, 2)))


def test_place_task_skips_every_overlapping_window():
    assert place_task(0.0, 1.0, [(0.5, 2.0), (2.5, 3.0)]) == 3.0
    assert place_task(0.0, 0.5, [(0.5, 2.0)]) == 0.0
    assert place_task(1.0, 1.0, []) == 1.0


def test_source_must_hold_stage_zero():
    with pytest.raises(ValueError, match="source"):
        plan_path(Agent(id=0, source=2), random_costs(9, 0), STAGE_OF,
                  PathRules(num_stages=4, length=2))
