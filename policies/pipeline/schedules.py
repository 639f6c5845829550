"""The three ways of routing an iteration's microbatches, as plain data (no engine).

Every method sends ``microbatches_per_data_node`` microbatches from each data node (stage-0
node) per iteration, so all three train on the same samples per iteration:

- **full pipeline** (DT-FM): every microbatch visits all stages along a fixed pipeline of the
  allocation (:func:`full_pipeline_routes`);
- **random skip** (DT-FM-skip): each *agent* takes a random subset of the stages with the skip
  ratio, in increasing order, on random replicas, such that stage caps and node memory are kept
  (:func:`random_skip_routes`): SkipPipe's constraints without its cost-aware path choice;
- **SkipPipe**: agents' paths from CBS over A* (:func:`skippipe_routes`).

Agents (SkipPipe's term) are paths: each data node has ``A`` of them (the authors' default
``A = m``: their ``create_schedule.py`` makes ``3 // paths_in_coarsened`` agents per data node
and their trainer sends microbatch ``j`` of a node along path ``j mod m``; ``A = 1`` is their
coarsened variant, one path per data node). Agent ``k`` of a data node starts after ``k``
forward tasks there and carries every ``A``-th microbatch of its node. As in the authors'
emulator and trainer, a path's microbatches are *pipelined*: they are released together, the
data node runs their forwards one after another, and every node holds at most ``m`` in flight
(the executor's memory slots). ``pipelined=False`` instead runs an agent's microbatches one
after another (a *chain*; the second starts when the first has finished its backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.pipeline.allocation import Allocation, full_pipeline_routes
from policies.pipeline.astar import Agent, AgentPlan
from policies.pipeline.cbs import CBSConfig, Schedule, schedule_paths, stage_caps
from policies.pipeline.costs import NodeCosts
from policies.pipeline.paths import PathRules, is_valid_path
from policies.pipeline.timeline import simulate_iteration


@dataclass(frozen=True, kw_only=True)
class RoutedMicrobatch:
    """One microbatch of an iteration: its stages, nodes (data node first) and chain."""

    index: int
    stages: tuple[int, ...]
    nodes: tuple[int, ...]
    chain: int | None = None


def stage_of_nodes(replicas: Sequence[Sequence[int]], num_nodes: int) -> list[int]:
    """``stage_of[node]``: the stage a node holds, -1 for none."""
    stage_of = [-1] * num_nodes
    for s, nodes in enumerate(replicas):
        for n in nodes:
            stage_of[n] = s
    return stage_of


def make_agents(data_nodes: Sequence[int], microbatches_per_data_node: int, paths: int,
                forward_s: np.ndarray) -> tuple[list[Agent], list[int]]:
    """The agents (``min(paths, microbatches)`` per data node) and their microbatch counts.

    Agent ``k`` of a data node starts at ``k * forward_s[data node]`` (after the forward tasks
    of the agents before it on that node) and carries microbatches ``k, k + A, ...``.
    """
    if microbatches_per_data_node < 1:
        raise ValueError(
            f"microbatches_per_data_node: must be >= 1, got {microbatches_per_data_node}")
    if paths < 1:
        raise ValueError(f"paths_per_data_node: must be >= 1, got {paths}")
    per_node = min(paths, microbatches_per_data_node)
    agents, loads = [], []
    for d in data_nodes:
        for k in range(per_node):
            agents.append(Agent(id=len(agents), source=int(d),
                                start_s=k * float(forward_s[d])))
            loads.append(len(range(k, microbatches_per_data_node, per_node)))
    return agents, loads


def agent_microbatches(plans: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
                       loads: Sequence[int], *, pipelined: bool = True
                       ) -> list[RoutedMicrobatch]:
    """Microbatches of agents with paths ``plans[i] = (stages, nodes)``, round by round.

    Round ``r`` holds the ``r``-th microbatch of every agent that has one, so a data node
    starts its agents' first microbatches before their second ones (the authors' timetable).
    ``pipelined``: every microbatch is its own chain (they flow along the path together, at
    most ``m`` in flight per node); otherwise the chain is the agent's id.
    """
    out = []
    for r in range(max(loads, default=0)):
        for agent_id, ((stages, nodes), load) in enumerate(zip(plans, loads)):
            if r < load:
                out.append(RoutedMicrobatch(index=len(out), stages=stages, nodes=nodes,
                                            chain=None if pipelined else agent_id))
    return out


def full_pipeline_microbatches(allocation: Allocation, microbatches_per_data_node: int
                               ) -> list[RoutedMicrobatch]:
    """Every microbatch along a whole pipeline (each its own chain)."""
    num_stages = len(allocation.replicas)
    routes = full_pipeline_routes(allocation, microbatches_per_data_node)
    return [RoutedMicrobatch(index=i, stages=tuple(range(num_stages)), nodes=nodes)
            for i, nodes in enumerate(routes)]


def random_skip_routes(agents: Sequence[Agent], replicas: Sequence[Sequence[int]],
                       rules: PathRules, memory: int, rng: np.random.Generator
                       ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Random increasing stage subsets and replicas that keep the stage caps and node memory.

    Stages: each agent takes the ``L - 1`` non-data stages with the most room left (ties broken
    at random), then random pairwise exchanges between agents (which keep every stage's count)
    shuffle the subsets. Nodes: each stage's visitors are dealt at random to its replicas, at
    most ``m`` per replica.
    """
    num_stages = len(replicas)
    caps = stage_caps([len(r) for r in replicas], memory)
    k = rules.length - 1
    room = {s: caps[s] for s in range(1, num_stages)}
    subsets: list[set[int]] = []
    for _ in agents:
        order = sorted(room, key=lambda s: (-room[s], float(rng.random())))
        chosen = set(order[:k])
        if any(room[s] <= 0 for s in chosen):
            raise ValueError(f"random_skip: stage caps {caps} cannot hold {len(agents)} paths")
        for s in chosen:
            room[s] -= 1
        subsets.append(chosen)
    for _ in range(20 * len(agents) * max(k, 1)):
        a, b = (int(x) for x in rng.integers(len(agents), size=2))
        only_a = sorted(subsets[a] - subsets[b])
        only_b = sorted(subsets[b] - subsets[a])
        if a == b or not only_a or not only_b:
            continue
        sa = only_a[int(rng.integers(len(only_a)))]
        sb = only_b[int(rng.integers(len(only_b)))]
        new_a = tuple(sorted((subsets[a] - {sa}) | {sb}))
        new_b = tuple(sorted((subsets[b] - {sb}) | {sa}))
        if is_valid_path((0, *new_a), rules) and is_valid_path((0, *new_b), rules):
            subsets[a] = set(new_a)
            subsets[b] = set(new_b)
    node_of: dict[tuple[int, int], int] = {}
    for s in range(1, num_stages):
        visitors = [i for i, sub in enumerate(subsets) if s in sub]
        slots = [n for n in replicas[s] for _ in range(memory)]
        picks = rng.permutation(len(slots))[:len(visitors)]
        for agent_id, pick in zip(visitors, picks):
            node_of[(agent_id, s)] = int(slots[int(pick)])
    routes = []
    for agent, sub in zip(agents, subsets):
        stages = (0, *sorted(sub))
        if not is_valid_path(stages, rules):
            raise ValueError(f"random_skip: drew an invalid path {stages} for rules {rules}")
        nodes = (agent.source, *(node_of[(agent.id, s)] for s in stages[1:]))
        routes.append((stages, nodes))
    return routes


def predict_makespan(costs: NodeCosts, microbatches: Sequence[RoutedMicrobatch], memory: int,
                     start_s: Sequence[float] | None = None) -> float:
    """Predicted iteration time of ``microbatches`` under the contention model (seconds)."""
    timeline = simulate_iteration(costs, [mb.nodes for mb in microbatches], memory=memory,
                                  chains=[mb.chain for mb in microbatches], start_s=start_s)
    return timeline.makespan_s


def skippipe_routes(agents: Sequence[Agent], loads: Sequence[int], costs: NodeCosts,
                    stage_of: Sequence[int], rules: PathRules, memory: int,
                    config: CBSConfig, *, pipelined: bool = True
                    ) -> tuple[list[RoutedMicrobatch], Schedule]:
    """SkipPipe's schedule: CBS over A*; candidates judged by the whole iteration's prediction."""

    def predict(plans: list[AgentPlan]) -> float:
        mbs = agent_microbatches([(p.stages, p.nodes) for p in plans], loads,
                                 pipelined=pipelined)
        return predict_makespan(costs, mbs, memory)

    schedule = schedule_paths(agents, costs, stage_of, rules, memory=memory, config=config,
                              predict=predict)
    mbs = agent_microbatches([(p.stages, p.nodes) for p in schedule.plans], loads,
                             pipelined=pipelined)
    return mbs, schedule
