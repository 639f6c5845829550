"""The low level of SkipPipe's scheduler: A* finds one agent's cheapest path under the rules.

An *agent* is a microbatch (or a group of microbatches that share a path) leaving its data node
at ``start_s``. Its path visits ``rules.length`` stages (one node each), returns to the data node
for the loss, and retraces the path backward. Alone on the network it finishes at::

    finish = start_s + sum over the loop of (hop_s[a, b] + hop_s[b, a])
             + sum over its nodes of (1 + 1.5) * w  +  0.25 * w_data

(:meth:`NodeCosts.route_s`). The scheduler above (:mod:`~policies.pipeline.cbs`) adds
*constraints*: stages and nodes an agent may not use, and time windows ``(node, t0, t1)`` in
which the agent may not run a task on that node (it waits until ``t1`` instead, or goes
elsewhere). A task at ``node`` that would overlap a window is pushed to the window's end.

Search: states are path prefixes (the data node first) with the time their last forward task
ends; the priority is that time plus an admissible lower bound of what remains (every remaining
hop at the cheapest hop, every remaining task at the cheapest node), and a complete path is
re-queued with its exact finish time, so the first complete path popped is optimal.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.pipeline.costs import NodeCosts
from policies.pipeline.paths import PathRules, StepState, step


@dataclass(frozen=True, kw_only=True)
class Agent:
    """One path to plan.

    id:
        Index among the agents of one schedule.
    source:
        Its data node (a stage-0 node).
    start_s:
        When it may start its first forward task, seconds.
    """

    id: int
    source: int
    start_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AgentConstraints:
    """What the conflict search forbids one agent.

    forbidden_stages, forbidden_nodes:
        Stages / nodes its path may not visit.
    windows:
        ``(node, start_s, end_s)``: it may not run a task on ``node`` during ``[start_s, end_s)``.
    """

    forbidden_stages: frozenset[int] = frozenset()
    forbidden_nodes: frozenset[int] = frozenset()
    windows: tuple[tuple[int, float, float], ...] = ()

    def add(self, *, stage: int | None = None, node: int | None = None,
            window: tuple[int, float, float] | None = None) -> AgentConstraints:
        """A copy with one more constraint."""
        return AgentConstraints(
            forbidden_stages=self.forbidden_stages | ({stage} if stage is not None else set()),
            forbidden_nodes=self.forbidden_nodes | ({node} if node is not None else set()),
            windows=self.windows + ((window,) if window is not None else ()),
        )


@dataclass(frozen=True)
class Visit:
    """A task of a plan: on ``node`` from ``start_s`` to ``end_s``; ``forward`` or not."""

    node: int
    start_s: float
    end_s: float
    forward: bool


@dataclass(frozen=True, kw_only=True)
class AgentPlan:
    """An agent's path and its timeline when alone (apart from its windows)."""

    agent: Agent
    stages: tuple[int, ...]
    nodes: tuple[int, ...]
    visits: tuple[Visit, ...] = field(repr=False)
    finish_s: float


def place_task(arrival_s: float, duration_s: float, windows: Sequence[tuple[float, float]]
               ) -> float:
    """Earliest start >= ``arrival_s`` at which a task of ``duration_s`` overlaps no window."""
    start = arrival_s
    moved = True
    while moved:
        moved = False
        for w0, w1 in windows:
            if start < w1 and start + duration_s > w0 and w1 > start:
                start, moved = w1, True
    return start


def plan_timeline(agent: Agent, nodes: Sequence[int], costs: NodeCosts,
                  constraints: AgentConstraints = AgentConstraints()
                  ) -> tuple[tuple[Visit, ...], float]:
    """The visits and the finish time of ``agent`` on ``nodes`` (data node first)."""
    windows = _windows_by_node(constraints)
    visits, t = [], agent.start_s
    prev = None
    for node in nodes:
        if prev is not None:
            t += float(costs.hop_s[prev, node])
        t = _task(visits, node, t, float(costs.forward_s[node]), True, windows)
        prev = node
    return _close(agent, list(nodes), visits, t, costs, windows)


def _windows_by_node(constraints: AgentConstraints) -> dict[int, list[tuple[float, float]]]:
    by_node: dict[int, list[tuple[float, float]]] = {}
    for node, t0, t1 in constraints.windows:
        by_node.setdefault(node, []).append((t0, t1))
    return by_node


def _task(visits: list[Visit], node: int, arrival: float, duration: float, forward: bool,
          windows: dict[int, list[tuple[float, float]]]) -> float:
    start = place_task(arrival, duration, windows.get(node, ()))
    visits.append(Visit(node, start, start + duration, forward))
    return start + duration


def _close(agent: Agent, nodes: list[int], visits: list[Visit], t: float, costs: NodeCosts,
           windows: dict[int, list[tuple[float, float]]]) -> tuple[tuple[Visit, ...], float]:
    """From the end of the last forward task: hop home, loss, backward along the path."""
    source = agent.source
    if nodes[-1] != source:
        t += float(costs.hop_s[nodes[-1], source])
    t = _task(visits, source, t, costs.loss_s(source), True, windows)
    prev = source
    for node in reversed(nodes):
        if node != prev:
            t += float(costs.hop_s[prev, node])
        t = _task(visits, node, t, costs.backward_s(node), False, windows)
        prev = node
    return tuple(visits), t


def plan_path(agent: Agent, costs: NodeCosts, stage_of: Sequence[int], rules: PathRules,
              constraints: AgentConstraints = AgentConstraints()) -> AgentPlan | None:
    """A* for the earliest-finishing valid path of ``agent``; ``None`` if none exists.

    ``stage_of[node]`` is the stage a node holds (-1: none). Ties are broken by insertion
    order, so the result is deterministic.
    """
    if stage_of[agent.source] != 0:
        raise ValueError(f"agent {agent.id}: source node {agent.source} does not hold stage 0")
    windows = _windows_by_node(constraints)
    by_stage: dict[int, list[int]] = {}
    for node, s in enumerate(stage_of):
        allowed = s not in constraints.forbidden_stages and node not in constraints.forbidden_nodes
        if s > 0 and allowed:
            by_stage.setdefault(s, []).append(node)
    candidates = [n for nodes in by_stage.values() for n in nodes]
    pool = candidates + [agent.source]
    if len(pool) > 1:
        sub = costs.hop_s[np.ix_(pool, pool)]
        min_hop = float(np.min(sub[~np.eye(len(pool), dtype=bool)]))
    else:
        min_hop = 0.0
    fwd = np.asarray(costs.forward_s, dtype=float)
    min_fwd = float(min((fwd[n] for n in candidates), default=0.0))
    bf = costs.backward_factor
    counter = itertools.count()

    def bound(prefix: tuple[int, ...], end_s: float) -> float:
        """Lower bound of the finish time of any completion of ``prefix``."""
        remaining = rules.length - len(prefix)
        back_hops = sum(float(costs.hop_s[b, a]) for a, b in zip(prefix, prefix[1:]))
        back_compute = sum(bf * fwd[n] for n in prefix)
        hops_left = 0.0
        if len(prefix) + remaining > 1:
            hops_left = (2 * remaining + 2) * min_hop
        return (end_s + hops_left + remaining * (1 + bf) * min_fwd + back_hops + back_compute
                + costs.loss_s(agent.source))

    # heap items: (priority, tie, kind, prefix, stages, step state, end of last forward task)
    visits0: list[Visit] = []
    t0 = _task(visits0, agent.source, agent.start_s, float(fwd[agent.source]), True, windows)
    heap = [(bound((agent.source,), t0), next(counter), "open", (agent.source,), (0,),
             StepState(), t0)]
    while heap:
        priority, _, kind, prefix, stages, state, end_s = heapq.heappop(heap)
        if kind == "done":
            visits, finish = plan_timeline(agent, prefix, costs, constraints)
            return AgentPlan(agent=agent, stages=stages, nodes=prefix, visits=visits,
                             finish_s=finish)
        if len(stages) == rules.length:
            _, finish = _close(agent, list(prefix), [], end_s, costs, windows)
            heapq.heappush(heap, (finish, next(counter), "done", prefix, stages, state, end_s))
            continue
        for s in sorted(by_stage):
            nxt = step(rules, state, stages, s)
            if nxt is None:
                continue
            for node in by_stage[s]:
                arrival = end_s + float(costs.hop_s[prefix[-1], node])
                scratch: list[Visit] = []
                end = _task(scratch, node, arrival, float(fwd[node]), True, windows)
                new_prefix = prefix + (node,)
                heapq.heappush(heap, (bound(new_prefix, end), next(counter), "open", new_prefix,
                                      stages + (s,), nxt, end))
    return None
