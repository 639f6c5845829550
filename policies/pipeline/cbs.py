"""The high level of SkipPipe's scheduler: Conflict-Based Search over the agents' paths.

Every agent first gets its cheapest path alone (:func:`~policies.pipeline.astar.plan_path`).
Those paths usually clash; a search node holds one path per agent plus the constraints that
produced them, and its *first conflict* is split into children, each adding one constraint to
one agent and re-planning that agent only:

1. **stage cap** - stage ``s`` is on more than ``cap[s]`` paths (``cap = replicas x m``, so
   every stage is visited about equally often): a child forbids ``s`` to one of its visitors;
2. **node memory** - a node is on more than ``m`` paths: a child forbids the node to one of them;
3. **time collision** (only with ``collision_aware``) - two agents' tasks overlap on one node and
   at least one is a forward: one child makes the first agent wait for the second's task (a time
   window), the other the reverse; A* delays the agent or, when cheaper, re-routes it around the
   window to another replica.

Search: best-first over nodes keyed by (capacity excess, depth while infeasible, makespan,
sum of finish times), so it dives greedily towards a schedule that keeps the caps and memory and
then prefers short ones. Makespan, the objective, is the latest finish time of any agent.
Children per capacity conflict are limited to the ``branching`` with the lowest keys, and each
phase stops after ``max_expansions`` nodes, so the cost is bounded and deterministic.

Two phases. Phase 1 ignores collisions and keeps, of the first ``max_candidates`` feasible
schedules it meets, the one with the smallest makespan: the schedule *without* collision
awareness. With ``collision_aware``, phase 2 restarts from it, also splits time collisions, and
orders its nodes by the iteration time the contention model of
:mod:`~policies.pipeline.timeline` predicts (one task at a time per node, ``m`` memory slots);
the candidate with the shortest prediction wins, phase 1's schedule included, so collision
awareness never predicts a slower iteration than its absence.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from policies.pipeline.astar import Agent, AgentConstraints, AgentPlan, plan_path
from policies.pipeline.costs import NodeCosts
from policies.pipeline.paths import PathRules
from sim.errors import FieldError


@dataclass(frozen=True, kw_only=True)
class CBSConfig:
    """Knobs of the conflict search.

    collision_aware:
        Also resolve time collisions and pick the candidate with the best predicted time.
    max_expansions:
        Search nodes expanded at most, per phase (bounds the run time; deterministic).
    branching:
        Children kept per capacity conflict (the ones with the lowest keys).
    max_candidates:
        Feasible schedules the collision-blind phase collects before it stops.
    """

    collision_aware: bool = True
    max_expansions: int = 300
    branching: int = 3
    max_candidates: int = 24

    def __post_init__(self) -> None:
        for name in ("max_expansions", "branching", "max_candidates"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class Conflict:
    """The first problem of a search node: ``kind`` is "stage", "node" or "collision"."""

    kind: str
    where: int
    agents: tuple[int, ...]
    windows: tuple[tuple[int, float, float], ...] = ()  # collision: window for each agent


@dataclass(kw_only=True)
class Schedule:
    """The result: one plan per agent and how the search went."""

    plans: list[AgentPlan]
    makespan_s: float
    predicted_s: float | None = None
    expansions: int = 0
    candidates: int = 0
    feasible: bool = True
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(order=True)
class _Node:
    key: tuple
    seq: int
    plans: list[AgentPlan] = field(compare=False)
    constraints: list[AgentConstraints] = field(compare=False)
    depth: int = field(default=0, compare=False)


def stage_caps(replicas_per_stage: Sequence[int], memory: int) -> list[int]:
    """``cap[s] = replicas x m`` for stages 1.. (stage 0 is unlimited: every path has it)."""
    return [10**9] + [r * memory for r in replicas_per_stage[1:]]


def find_conflict(plans: Sequence[AgentPlan], stage_of: Sequence[int], caps: Sequence[int],
                  memory: int, collision_aware: bool) -> Conflict | None:
    """The first conflict of a set of plans (stage caps, then memory, then collisions)."""
    visitors: dict[int, list[int]] = {}
    users: dict[int, list[int]] = {}
    for plan in plans:
        for stage, node in zip(plan.stages[1:], plan.nodes[1:]):
            visitors.setdefault(stage, []).append(plan.agent.id)
            users.setdefault(node, []).append(plan.agent.id)
    worst = max(visitors, key=lambda s: (len(visitors[s]) - caps[s], -s), default=None)
    if worst is not None and len(visitors[worst]) > caps[worst]:
        return Conflict(kind="stage", where=worst, agents=tuple(visitors[worst]))
    worst = max(users, key=lambda n: (len(users[n]), -n), default=None)
    if worst is not None and len(users[worst]) > memory:
        return Conflict(kind="node", where=worst, agents=tuple(users[worst]))
    if not collision_aware:
        return None
    by_node: dict[int, list[tuple[float, float, bool, int]]] = {}
    for plan in plans:
        for v in plan.visits:
            by_node.setdefault(v.node, []).append((v.start_s, v.end_s, v.forward, plan.agent.id))
    first: tuple | None = None
    for node in sorted(by_node):
        tasks = sorted(by_node[node])
        for (s1, e1, f1, a1), (s2, e2, f2, a2) in itertools.combinations(tasks, 2):
            if s2 >= e1:
                continue
            if a1 == a2 or not (f1 or f2):
                continue
            if first is None or s2 < first[0]:
                first = (s2, node, a1, a2, (s1, e1), (s2, e2))
            break
    if first is None:
        return None
    _, node, a1, a2, (s1, e1), (s2, e2) = first
    return Conflict(kind="collision", where=node, agents=(a1, a2),
                    windows=((node, s2, e2), (node, s1, e1)))


def capacity_excess(plans: Sequence[AgentPlan], caps: Sequence[int], memory: int) -> int:
    """Visits above the stage caps plus paths above the node memory, summed."""
    stage_count: dict[int, int] = {}
    node_count: dict[int, int] = {}
    for plan in plans:
        for stage, node in zip(plan.stages[1:], plan.nodes[1:]):
            stage_count[stage] = stage_count.get(stage, 0) + 1
            node_count[node] = node_count.get(node, 0) + 1
    return (sum(max(0, c - caps[s]) for s, c in stage_count.items())
            + sum(max(0, c - memory) for c in node_count.values()))


def schedule_paths(agents: Sequence[Agent], costs: NodeCosts, stage_of: Sequence[int],
                   rules: PathRules, *, memory: int, config: CBSConfig = CBSConfig(),
                   predict: Callable[[list[AgentPlan]], float] | None = None) -> Schedule:
    """Plan every agent's path with CBS (see the module docstring).

    Two phases. The first resolves stage caps and node memory only and keeps, of the feasible
    schedules it meets, the one with the smallest makespan: that is the schedule *without*
    collision awareness. With ``config.collision_aware`` a second search starts from it, also
    resolving time collisions, and the candidate (the first phase's result included) with the
    smallest ``predict`` wins.

    Parameters
    ----------
    agents:
        The agents, ``agents[i].id == i``.
    costs:
        Hop and compute seconds.
    stage_of:
        Stage of each node (-1: holds none).
    rules:
        Path rules (length, swaps, jumps).
    memory:
        ``m``: agents a node may hold (and the per-replica share of a stage cap).
    config:
        Search limits and collision awareness.
    predict:
        Predicted iteration time of a set of plans (collision-aware selection); default: the
        makespan of the plans.

    Raises
    ------
    ValueError
        If the caps cannot hold every path (too many agents for the stages and memory).
    """
    for i, agent in enumerate(agents):
        if agent.id != i:
            raise ValueError(f"agents[{i}].id: must equal its index, got {agent.id}")
    replicas = [sum(1 for s in stage_of if s == k) for k in range(rules.num_stages)]
    if min(replicas) < 1:
        raise ValueError(f"stage_of: every stage needs a node, counts {replicas}")
    caps = stage_caps(replicas, memory)
    need = len(agents) * (rules.length - 1)
    room = sum(caps[1:])
    if need > room:
        raise ValueError(
            f"agents: {len(agents)} paths of {rules.length - 1} non-data stages need {need} "
            f"visits; the stages hold {room} (replicas x memory {memory})")
    predict = predict or (lambda plans: max(p.finish_s for p in plans))
    search = _Search(agents, costs, stage_of, rules, caps, memory, config)
    plans = []
    for agent in agents:
        plan = plan_path(agent, costs, stage_of, rules)
        if plan is None:
            raise ValueError(f"agent {agent.id}: no path keeps the rules {rules}")
        plans.append(plan)
    root = search.make_node(plans, [AgentConstraints() for _ in agents], depth=0)
    found, best_infeasible = search.run(root, collision_aware=False)
    if not found:
        plans = best_infeasible.plans
        return Schedule(plans=plans, makespan_s=max(p.finish_s for p in plans),
                        expansions=search.expansions, candidates=0, feasible=False)
    blind = min(found, key=lambda n: (n.key[3:], n.seq))
    if not config.collision_aware:
        return Schedule(plans=blind.plans, makespan_s=max(p.finish_s for p in blind.plans),
                        predicted_s=predict(blind.plans), expansions=search.expansions,
                        candidates=len(found))
    search.score = predict  # the aware search heads for the shortest predicted iteration
    start = search.make_node(blind.plans, blind.constraints, depth=0)
    aware, _ = search.run(start, collision_aware=True)
    scored = [(predict(n.plans), n.seq, n) for n in [blind, *aware]]
    predicted, _, best = min(scored, key=lambda c: (c[0], c[1]))
    return Schedule(plans=best.plans, makespan_s=max(p.finish_s for p in best.plans),
                    predicted_s=predicted, expansions=search.expansions,
                    candidates=len(scored))


def _forbid(kind: str, where: int, constraints: AgentConstraints) -> AgentConstraints:
    """Forbid a stage (``kind == "stage"``) or a node to one agent."""
    return constraints.add(stage=where) if kind == "stage" else constraints.add(node=where)


class _Search:
    """One best-first conflict search (keys: capacity excess, then depth while infeasible)."""

    def __init__(self, agents: Sequence[Agent], costs: NodeCosts, stage_of: Sequence[int],
                 rules: PathRules, caps: Sequence[int], memory: int, config: CBSConfig) -> None:
        self.agents, self.costs, self.stage_of, self.rules = agents, costs, stage_of, rules
        self.caps, self.memory, self.config = caps, memory, config
        self.counter = itertools.count()
        self.expansions = 0
        self.score: Callable[[list[AgentPlan]], float] | None = None

    def make_node(self, plans: list[AgentPlan], constraints: list[AgentConstraints], *,
                  depth: int) -> _Node:
        """A search node; infeasible nodes are ordered deepest first (a greedy dive).

        Feasible nodes are ordered by makespan, or by ``score`` when one is set (the
        collision-aware phase orders them by predicted iteration time).
        """
        excess = capacity_excess(plans, self.caps, self.memory)
        makespan = max(p.finish_s for p in plans)
        total = sum(p.finish_s for p in plans)
        seq = next(self.counter)
        first = self.score(plans) if self.score is not None and not excess else makespan
        key = (excess, -depth if excess else 0, round(first, 9), round(makespan, 9),
               round(total, 9), seq)
        return _Node(key=key, seq=seq, plans=plans, constraints=constraints, depth=depth)

    def run(self, root: _Node, *, collision_aware: bool) -> tuple[list[_Node], _Node]:
        """Expand from ``root``; returns the feasible nodes met and the best infeasible one.

        The collision-blind phase stops after ``max_candidates`` feasible nodes; the aware
        phase uses its whole ``max_expansions`` budget.
        """
        config = self.config
        limit = math.inf if collision_aware else config.max_candidates
        open_list = [root]
        seen: set[tuple] = set()
        found: list[_Node] = []
        best_infeasible = root
        budget = self.expansions + config.max_expansions
        while open_list and self.expansions < budget and len(found) < limit:
            node = heapq.heappop(open_list)
            signature = tuple((p.nodes, round(p.finish_s, 9)) for p in node.plans)
            if signature in seen:
                continue
            seen.add(signature)
            self.expansions += 1
            conflict = find_conflict(node.plans, self.stage_of, self.caps, self.memory,
                                     collision_aware)
            if conflict is None or conflict.kind == "collision":
                found.append(node)
                if conflict is None:
                    continue
            elif node.key < best_infeasible.key:
                best_infeasible = node
            for child in self.children(node, conflict):
                heapq.heappush(open_list, child)
        return found, best_infeasible

    def children(self, node: _Node, conflict: Conflict) -> list[_Node]:
        """One child per way of resolving ``conflict`` (the best ``branching`` for capacity)."""
        children = []
        if conflict.kind == "collision":
            for agent_id, window in zip(conflict.agents, conflict.windows):
                child = self.replan(node, agent_id, lambda c, w=window: c.add(window=w))
                if child is not None:
                    children.append(child)
            return children
        for agent_id in dict.fromkeys(conflict.agents):
            child = self.replan(node, agent_id, partial(_forbid, conflict.kind, conflict.where))
            if child is not None:
                children.append(child)
        return sorted(children)[:self.config.branching]

    def replan(self, node: _Node, agent_id: int,
               add: Callable[[AgentConstraints], AgentConstraints]) -> _Node | None:
        """A child of ``node`` with one more constraint on ``agent_id``, that agent re-planned."""
        constraints = list(node.constraints)
        constraints[agent_id] = add(constraints[agent_id])
        plan = plan_path(self.agents[agent_id], self.costs, self.stage_of, self.rules,
                         constraints[agent_id])
        if plan is None:
            return None
        plans = list(node.plans)
        plans[agent_id] = plan
        return self.make_node(plans, constraints, depth=node.depth + 1)


