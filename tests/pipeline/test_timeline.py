"""The pure iteration model: closed forms for one microbatch, FIFO and memory by hand."""

import pytest

from policies.pipeline.timeline import simulate_iteration
from tests.pipeline.helpers import random_costs, uniform_costs


def test_one_microbatch_alone_matches_the_closed_form():
    costs = random_costs(5, seed=1)
    route = (0, 2, 4, 1)
    timeline = simulate_iteration(costs, [route], memory=3)
    assert timeline.makespan_s == pytest.approx(costs.route_s(route))
    kinds = [(t.node, t.kind) for t in timeline.tasks]
    assert kinds == [(0, "F"), (2, "F"), (4, "F"), (1, "F"), (0, "L"),
                     (1, "B"), (4, "B"), (2, "B"), (0, "B")]


def test_chain_runs_microbatches_one_after_another():
    costs = random_costs(4, seed=2)
    route = (0, 1, 2)
    alone = costs.route_s(route)
    chained = simulate_iteration(costs, [route, route], memory=3, chains=[7, 7])
    assert chained.finish_s == pytest.approx([alone, 2 * alone])


def test_two_microbatches_share_a_node_first_come_first_served():
    # w = 1, hops 1: both start on data node 0; the second waits for the first's forward.
    costs = uniform_costs(2, hop_s=1.0, forward_s=1.0)
    t = simulate_iteration(costs, [(0, 1), (0, 1)], memory=3)
    # mb0: F0 0-1, hop, F1 2-3, hop, L 4-4.25, hop, B1 5.25-6.75, hop, B0 7.75-9.25
    # mb1: F0 1-2, hop, F1 3-4, hop, L 5-5.25 (node 0 free at 4.25), hop, B1 6.75-8.25
    #      (after mb0's B1), hop, B0 9.25-10.75 (after mb0's B0)
    assert t.finish_s == pytest.approx([9.25, 10.75])


def test_memory_one_makes_the_second_microbatch_wait_for_the_first():
    costs = uniform_costs(2, hop_s=1.0, forward_s=1.0)
    t = simulate_iteration(costs, [(0, 1), (0, 1)], memory=1)
    assert t.finish_s == pytest.approx([9.25, 18.5])


def test_start_times_delay_a_microbatch():
    costs = random_costs(3, seed=4)
    t = simulate_iteration(costs, [(0, 1, 2)], memory=1, start_s=[5.0])
    assert t.makespan_s == pytest.approx(5.0 + costs.route_s((0, 1, 2)))


def test_deadlock_reports_infinity():
    # memory 1; mb0 holds node 1 and wants node 2, mb1 holds node 2 and wants node 1.
    costs = uniform_costs(4, hop_s=0.0, forward_s=1.0)
    t = simulate_iteration(costs, [(0, 1, 2), (3, 2, 1)], memory=1)
    assert t.makespan_s == float("inf")
