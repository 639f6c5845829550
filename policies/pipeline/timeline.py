"""A small, pure discrete-event model of one pipeline iteration (no SimPy, no engine).

The schedulers use it to predict what a set of routes will cost once microbatches compete for
nodes, and the tests use it as an independent oracle for :class:`~policies.pipeline.executor.
PipelineExecutor` under the ``ideal`` network. Its rules are the executor's:

- a node runs one task at a time, in the order the tasks were asked for;
- a microbatch takes one of the node's ``memory`` slots before its forward there and frees it
  after its backward there; when none is free it waits, first come first served;
- microbatches of one chain run one after another;
- a hop from i to j takes ``hop_s[i, j]`` whatever else is in flight (ideal network, ``fluid``
  transport); with ``costs.transport`` set (``tcp``) it goes on the ordered pair's connection,
  whose state the transport's closed forms follow through the iteration
  (:class:`sim.network.forecast.Connections`: cold at the start, warm, restarted after an idle
  RTO, queued behind the pair's previous message), plus the fixed overhead.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

from policies.pipeline.costs import NodeCosts


@dataclass(frozen=True)
class Task:
    """One compute task of the predicted timeline: ``kind`` is "F", "L" or "B"."""

    node: int
    microbatch: int
    kind: str
    start_s: float
    end_s: float


@dataclass(kw_only=True)
class Timeline:
    """A predicted iteration: when each microbatch finished and what each node did."""

    finish_s: list[float]
    tasks: list[Task] = field(default_factory=list)

    @property
    def makespan_s(self) -> float:
        """When the last microbatch finished its backward (seconds; inf after a deadlock)."""
        return max(self.finish_s, default=0.0)


def simulate_iteration(costs: NodeCosts, routes: Sequence[Sequence[int]], *, memory: int,
                       chains: Sequence[int | None] | None = None,
                       start_s: Sequence[float] | None = None,
                       one_task_per_node: bool = True) -> Timeline:
    """Predict one iteration of ``routes`` (node tuples, data node first).

    Parameters
    ----------
    costs:
        Hop and compute seconds.
    routes:
        One route per microbatch, in microbatch order.
    memory:
        Slots per node (``m``).
    chains:
        Chain id per microbatch (``None``: its own chain); a chain runs in microbatch order.
    start_s:
        Earliest start of each microbatch (default 0).
    one_task_per_node:
        The executor's rule. ``False`` lets a node run any number of tasks at once (no task
        ever waits for another on its node): the same routes without time collisions, an
        upper bound of what avoiding collisions can gain (benchmarks).
    """
    if memory < 1:
        raise ValueError(f"memory: must be >= 1, got {memory}")
    n_mb = len(routes)
    chains = list(chains) if chains is not None else [None] * n_mb
    starts = list(start_s) if start_s is not None else [0.0] * n_mb
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(chains):
        groups.setdefault(("chain", c) if c is not None else ("own", i), []).append(i)

    queue: list[tuple[float, int, int]] = []  # (time, seq, process id)
    procs: list[Generator] = []
    seq = 0
    node_free = [0.0] * costs.num_nodes
    slots_used = [0] * costs.num_nodes
    waiting: list[deque[int]] = [deque() for _ in range(costs.num_nodes)]
    finish = [math.inf] * n_mb  # stays inf for a microbatch that never finishes (deadlock)
    tasks: list[Task] = []
    now = 0.0
    hops = costs.transport
    connections = hops.forecast.connections() if hops is not None else None

    def hop_s(src: int, dst: int) -> float:
        """Seconds from now until the hop ``src -> dst`` sent now is done."""
        if connections is None or hops is None:
            return float(costs.hop_s[src, dst])
        return connections.send(src, dst, hops.nbytes, now) + hops.overhead_s - now

    def schedule(t: float, pid: int) -> None:
        nonlocal seq
        heapq.heappush(queue, (t, seq, pid))
        seq += 1

    def microbatch(i: int) -> Generator:
        route = list(routes[i])
        if starts[i] > now:
            yield ("wait", starts[i] - now)
        for pos, node in enumerate(route):
            if pos > 0:
                yield ("wait", hop_s(route[pos - 1], node))
            yield ("acquire", node)
            yield ("compute", node, float(costs.forward_s[node]), i, "F")
        if len(route) > 1:
            yield ("wait", hop_s(route[-1], route[0]))
        yield ("compute", route[0], costs.loss_s(route[0]), i, "L")
        prev = route[0]
        for node in reversed(route):
            if node != prev:
                yield ("wait", hop_s(prev, node))
            yield ("compute", node, costs.backward_s(node), i, "B")
            yield ("release", node)
            prev = node
        finish[i] = now

    def chain(members: list[int]) -> Generator:
        for i in members:
            yield from microbatch(i)

    for members in groups.values():
        procs.append(chain(members))
        schedule(0.0, len(procs) - 1)

    while queue:
        now, _, pid = heapq.heappop(queue)
        proc = procs[pid]
        while True:  # run the process until it blocks
            try:
                cmd = next(proc)
            except StopIteration:
                break
            if cmd[0] == "wait":
                schedule(now + cmd[1], pid)
                break
            if cmd[0] == "compute":
                _, node, dur, i, kind = cmd
                begin = max(now, node_free[node]) if one_task_per_node else now
                node_free[node] = max(node_free[node], begin + dur)
                tasks.append(Task(node, i, kind, begin, begin + dur))
                schedule(begin + dur, pid)
                break
            if cmd[0] == "acquire":
                node = cmd[1]
                if slots_used[node] < memory:
                    slots_used[node] += 1
                    schedule(now, pid)
                else:
                    waiting[node].append(pid)
                break
            if cmd[0] == "release":
                node = cmd[1]
                if waiting[node]:
                    schedule(now, waiting[node].popleft())  # the slot passes on
                else:
                    slots_used[node] -= 1
                continue
    return Timeline(finish_s=finish, tasks=tasks)
