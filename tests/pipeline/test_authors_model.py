"""SkipPipe's execution model as the authors' emulator and trainer have it.

Their ``create_schedule.py`` gives each stage-0 node ``3 // paths_in_coarsened`` agents (paths)
and their trainer sends microbatch ``j`` of a node along path ``j mod m``; the microbatches of a
path are released on a timetable and flow along it together, every node holding at most
``m = 3`` in flight. dtsim: ``paths_per_data_node`` (default ``m``; 1 = the coarsened variant,
one pipelined path per stage-0 node) and ``pipelined`` (default true).
"""

from __future__ import annotations

import pytest

from policies.pipeline.timeline import simulate_iteration
from sim.policy import get_policy
from sim.runner import run
from tests.pipeline.test_methods import scenario


def plan(**params):
    policy = get_policy("skippipe")(**{"stage_sizes": (2, 2, 2, 2, 2, 2), "allreduce": False,
                                       "iterations": 1, **params})
    run(scenario("skippipe", **params), policy)
    return policy


def by_data_node(microbatches):
    out: dict[int, list] = {}
    for mb in microbatches:
        out.setdefault(mb.nodes[0], []).append(mb)
    return out


def in_flight_intervals(policy):
    """Per node, the [first forward start, backward end] of every microbatch that visits it."""
    mbs = policy.microbatches
    timeline = simulate_iteration(policy.node_costs, [mb.nodes for mb in mbs], memory=3,
                                  chains=[mb.chain for mb in mbs])
    spans: dict[tuple[int, int], list[float]] = {}
    for task in timeline.tasks:
        span = spans.setdefault((task.node, task.microbatch), [task.start_s, task.end_s])
        if task.kind == "F":
            span[0] = min(span[0], task.start_s)
        if task.kind == "B":
            span[1] = max(span[1], task.end_s)
    per_node: dict[int, list[tuple[float, float]]] = {}
    for (node, _), (start, end) in spans.items():
        per_node.setdefault(node, []).append((start, end))
    return per_node


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = best = 0
    for _, step in events:
        level += step
        best = max(best, level)
    return best


def test_one_pipelined_path_per_stage0_node_when_coarsened():
    policy = plan(paths_per_data_node=1)
    nodes = by_data_node(policy.microbatches)
    assert len(nodes) == 2
    for mbs in nodes.values():
        assert len(mbs) == 6 and len({mb.nodes for mb in mbs}) == 1    # one path, all 6
        assert all(mb.chain is None for mb in mbs)                      # pipelined
    per_node = in_flight_intervals(policy)
    assert max(max_overlap(v) for v in per_node.values()) == 3          # m reached, never more
    for data_node in nodes:
        assert max_overlap(per_node[data_node]) == 3


def test_microbatch_j_takes_path_j_mod_m_by_default():
    policy = plan()
    for data_node, mbs in by_data_node(policy.microbatches).items():
        agents = sorted((p for p in policy.schedule.plans if p.agent.source == data_node),
                        key=lambda p: p.agent.id)
        assert len(agents) == 3                                         # m paths per node
        assert [mb.nodes for mb in mbs] == [agents[j % 3].nodes for j in range(6)]
        assert all(mb.chain is None for mb in mbs)
    per_node = in_flight_intervals(policy)
    assert all(max_overlap(v) <= 3 for v in per_node.values())


def test_chained_ablation_runs_a_paths_microbatches_one_after_another():
    # One path per data node: pipelined, 3 of its microbatches are in flight at once; chained,
    # one at a time, and the iteration takes longer.
    pipelined, chained = plan(paths_per_data_node=1), plan(paths_per_data_node=1, pipelined=False)
    assert all(mb.chain is not None for mb in chained.microbatches)
    for data_node in by_data_node(chained.microbatches):
        assert max_overlap(in_flight_intervals(chained)[data_node]) == 1
        assert max_overlap(in_flight_intervals(pipelined)[data_node]) == 3
    flow = {}
    for name, policy in (("pipelined", pipelined), ("chained", chained)):
        mbs = policy.microbatches
        flow[name] = simulate_iteration(policy.node_costs, [mb.nodes for mb in mbs], memory=3,
                                        chains=[mb.chain for mb in mbs]).makespan_s
    assert flow["pipelined"] < 0.6 * flow["chained"]


def test_paths_per_data_node_is_checked():
    with pytest.raises(ValueError, match="paths_per_data_node"):
        get_policy("skippipe")(paths_per_data_node=0)
