"""Collective operations built on transfers, so they feel contention and failures.

Every collective is a *schedule*: a list of rounds, each a list of messages ``(src, dst, nbytes)``.
A node starts sending its messages of round ``r`` once all its sends and receives of the earlier
rounds are done (the data it forwards depends on what it received). No global barrier: a slow
node delays only the nodes that depend on it, which is how a ring really behaves. One executor
runs every schedule; the collectives differ only in the schedule they build.

Each collective also has a closed-form alpha-beta cost (alpha: one-way latency of a message in s,
beta: bandwidth in bytes/s) for tests and back-of-envelope work. On uniform links the simulated
time matches the closed form.

If a member fails, or a message is cut, the collective's process fails with
:class:`CollectiveAborted` listing the members that are down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import simpy

from sim.errors import CollectiveAborted

if TYPE_CHECKING:
    from sim.world import World

Message = tuple[int, int, float]
Schedule = list[list[Message]]


# -- schedules -------------------------------------------------------------------------------

def ring_reduce_scatter_schedule(ids: Sequence[int], nbytes: float) -> Schedule:
    """k-1 rounds; in each, every node sends one m/k chunk to its successor."""
    k = len(ids)
    return [[(ids[i], ids[(i + 1) % k], nbytes / k) for i in range(k)] for _ in range(k - 1)]


def ring_allreduce_schedule(ids: Sequence[int], nbytes: float) -> Schedule:
    """Reduce-scatter then all-gather around the ring: 2(k-1) rounds of m/k chunks."""
    return ring_reduce_scatter_schedule(ids, nbytes) * 2


def halving_doubling_schedule(ids: Sequence[int], nbytes: float) -> Schedule:
    """Recursive halving (reduce-scatter) then doubling (all-gather): 2 log2(k) rounds.

    For k not a power of two, the r = k - 2^floor(log2 k) extra nodes first fold their whole
    vector into a partner and receive the result back at the end (two more rounds).
    """
    k = len(ids)
    p = 1 << (k.bit_length() - 1)
    extra = k - p
    core = list(ids[:p])
    rounds: Schedule = []
    if extra:
        rounds.append([(ids[p + i], ids[i], nbytes) for i in range(extra)])
    size = nbytes
    halving = []
    dist = p // 2
    while dist >= 1:
        size /= 2
        halving.append([(core[i], core[i ^ dist], size) for i in range(p)])
        dist //= 2
    doubling = []
    dist, size = 1, nbytes / p
    while dist < p:
        doubling.append([(core[i], core[i ^ dist], size) for i in range(p)])
        dist *= 2
        size *= 2
    rounds += halving + doubling
    if extra:
        rounds.append([(ids[i], ids[p + i], nbytes) for i in range(extra)])
    return rounds


def binomial_broadcast_schedule(ids: Sequence[int], nbytes: float, root: int = 0) -> Schedule:
    """ceil(log2 k) rounds; in round j every node that has the data sends it 2^j ranks on."""
    k = len(ids)
    order = list(ids[root:]) + list(ids[:root])
    rounds: Schedule = []
    have = 1
    while have < k:
        rounds.append([(order[i], order[i + have], nbytes) for i in range(min(have, k - have))])
        have *= 2
    return rounds


def binomial_reduce_schedule(ids: Sequence[int], nbytes: float, root: int = 0) -> Schedule:
    """The broadcast tree run backwards: partial sums flow to the root."""
    return [[(dst, src, m) for src, dst, m in rnd]
            for rnd in reversed(binomial_broadcast_schedule(ids, nbytes, root))]


def tree_allreduce_schedule(ids: Sequence[int], nbytes: float) -> Schedule:
    """Binomial reduce to the first node, then binomial broadcast: 2 ceil(log2 k) rounds."""
    return binomial_reduce_schedule(ids, nbytes) + binomial_broadcast_schedule(ids, nbytes)


def pairwise_schedule(pairs: Sequence[tuple[int, int]], nbytes: float) -> Schedule:
    """One round: the two nodes of each pair send each other ``nbytes``."""
    return [[m for a, b in pairs for m in ((a, b, nbytes), (b, a, nbytes))]]


def gossip_schedule(graph: Any, nbytes: float) -> Schedule:
    """One round: every node sends ``nbytes`` to each neighbour in ``graph`` (node ids)."""
    return [[(int(u), int(v), nbytes) for u in sorted(graph.nodes)
             for v in sorted(graph.neighbors(u))]]


# -- the executor ----------------------------------------------------------------------------

def run_schedule(world: World, schedule: Schedule, *, name: str = "collective",
                 label: str = "") -> simpy.Process:
    """Run ``schedule`` on the network; a process whose value is the elapsed time (s)."""
    return world.env.process(_execute(world, schedule, name, label or name))


def _execute(world: World, schedule: Schedule, name: str, label: str):
    env = world.env
    start = env.now
    members = sorted({n for rnd in schedule for m in rnd for n in m[:2]})
    if not schedule or not members:
        return 0.0
    # per node: messages (sent or received) still open in each round
    open_count: dict[int, list[int]] = {n: [0] * len(schedule) for n in members}
    sends: dict[int, list[list[Message]]] = {n: [[] for _ in schedule] for n in members}
    for r, rnd in enumerate(schedule):
        for src, dst, nbytes in rnd:
            sends[src][r].append((src, dst, nbytes))
            open_count[src][r] += 1
            open_count[dst][r] += 1
    current = {n: 0 for n in members}  # the round each node is working on
    finished = env.event()
    remaining = [sum(len(rnd) for rnd in schedule)]
    state = {"aborted": False}

    def abort() -> None:
        if not finished.triggered:
            state["aborted"] = True
            failed = [n for n in members if not world.nodes[n].is_up]
            finished.defused = True
            finished.fail(CollectiveAborted(failed, name))

    def advance(node: int) -> None:
        # move past rounds with nothing left for this node, sending as each round opens
        while current[node] < len(schedule) and open_count[node][current[node]] == 0:
            current[node] += 1
            if current[node] < len(schedule):
                start_round(node, current[node])

    def start_round(node: int, r: int) -> None:
        for src, dst, nbytes in sends[node][r]:
            ev = world.network.transfer(src, dst, nbytes, label)
            ev.callbacks.append(lambda e, src=src, dst=dst, r=r: delivered(e, src, dst, r))

    def delivered(ev: simpy.Event, src: int, dst: int, r: int) -> None:
        if state["aborted"]:
            return
        if not ev.ok:
            abort()
            return
        open_count[src][r] -= 1
        open_count[dst][r] -= 1
        remaining[0] -= 1
        if remaining[0] == 0:
            finished.succeed(env.now - start)
            return
        if r == current[src]:
            advance(src)
        if dst != src and r == current[dst]:
            advance(dst)

    for n in members:
        if not world.nodes[n].is_up:
            abort()
            break
        world.nodes[n].failed_event().callbacks.append(lambda _e: abort())
    if not state["aborted"]:
        for n in members:
            start_round(n, 0)
        for n in members:
            advance(n)
    return (yield finished)


# -- the collectives -------------------------------------------------------------------------

def _ids(nodes: Sequence[Any]) -> list[int]:
    return [n if isinstance(n, int) else n.id for n in nodes]


def ring_allreduce(world: World, nodes: Sequence[Any], nbytes: float) -> simpy.Process:
    """All-reduce of ``nbytes`` per node around a ring (the order of ``nodes``)."""
    return run_schedule(world, ring_allreduce_schedule(_ids(nodes), nbytes),
                        name="ring_allreduce")


def halving_doubling_allreduce(world: World, nodes: Sequence[Any],
                               nbytes: float) -> simpy.Process:
    """All-reduce by recursive halving and doubling (latency-optimal for large k)."""
    return run_schedule(world, halving_doubling_schedule(_ids(nodes), nbytes),
                        name="halving_doubling_allreduce")


def tree_allreduce(world: World, nodes: Sequence[Any], nbytes: float) -> simpy.Process:
    """All-reduce by a binomial-tree reduce and broadcast."""
    return run_schedule(world, tree_allreduce_schedule(_ids(nodes), nbytes),
                        name="tree_allreduce")


def allreduce(world: World, nodes: Sequence[Any], nbytes: float,
              algorithm: str = "ring") -> simpy.Process:
    """All-reduce with ``algorithm`` in ``ALLREDUCE_ALGORITHMS``."""
    try:
        fn = ALLREDUCE_ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"allreduce algorithm: unknown {algorithm!r}; allowed: "
                         f"{', '.join(sorted(ALLREDUCE_ALGORITHMS))}") from None
    return fn(world, nodes, nbytes)


def reduce_scatter(world: World, nodes: Sequence[Any], nbytes: float) -> simpy.Process:
    """Ring reduce-scatter: each node ends with the sum of one m/k shard."""
    return run_schedule(world, ring_reduce_scatter_schedule(_ids(nodes), nbytes),
                        name="reduce_scatter")


def all_gather(world: World, nodes: Sequence[Any], nbytes: float) -> simpy.Process:
    """Ring all-gather: every node ends with all k shards (``nbytes`` is the full size)."""
    return run_schedule(world, ring_reduce_scatter_schedule(_ids(nodes), nbytes),
                        name="all_gather")


def broadcast(world: World, nodes: Sequence[Any], nbytes: float, root: int = 0) -> simpy.Process:
    """Binomial-tree broadcast from ``nodes[root]``."""
    return run_schedule(world, binomial_broadcast_schedule(_ids(nodes), nbytes, root),
                        name="broadcast")


def pairwise_exchange(world: World, pairs: Sequence[tuple[Any, Any]],
                      nbytes: float) -> simpy.Process:
    """Both nodes of every pair send each other ``nbytes`` at once."""
    ids = [(_ids([a])[0], _ids([b])[0]) for a, b in pairs]
    return run_schedule(world, pairwise_schedule(ids, nbytes), name="pairwise_exchange")


def gossip_round(world: World, graph: Any, nbytes: float) -> simpy.Process:
    """Every node sends ``nbytes`` to each of its neighbours in ``graph`` (vertices = ids)."""
    return run_schedule(world, gossip_schedule(graph, nbytes), name="gossip_round")


ALLREDUCE_ALGORITHMS = {"ring": ring_allreduce, "halving_doubling": halving_doubling_allreduce,
                        "tree": tree_allreduce}


# -- closed forms ----------------------------------------------------------------------------

def ring_allreduce_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """2(k-1) alpha + 2(k-1)/k * m / beta."""
    if k <= 1:
        return 0.0
    return 2 * (k - 1) * alpha_s + 2 * (k - 1) / k * nbytes / beta_Bps


def reduce_scatter_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """(k-1) alpha + (k-1)/k * m / beta (all-gather costs the same)."""
    if k <= 1:
        return 0.0
    return (k - 1) * alpha_s + (k - 1) / k * nbytes / beta_Bps


all_gather_cost = reduce_scatter_cost


def halving_doubling_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """2 log2(k) alpha + 2(k-1)/k * m / beta for k a power of two (plus 2(alpha + m/beta)
    for the fold-in and fold-out rounds otherwise)."""
    if k <= 1:
        return 0.0
    p = 1 << (k.bit_length() - 1)
    cost = 2 * math.log2(p) * alpha_s + 2 * (p - 1) / p * nbytes / beta_Bps
    if k != p:
        cost += 2 * (alpha_s + nbytes / beta_Bps)
    return cost


def broadcast_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """ceil(log2 k) (alpha + m / beta)."""
    return math.ceil(math.log2(k)) * (alpha_s + nbytes / beta_Bps) if k > 1 else 0.0


def tree_allreduce_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """2 ceil(log2 k) (alpha + m / beta)."""
    return 2 * broadcast_cost(k, nbytes, alpha_s, beta_Bps)


def pairwise_exchange_cost(nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """alpha + m / beta (full-duplex links: both directions at once)."""
    return alpha_s + nbytes / beta_Bps


def gossip_round_cost(degree: int, nbytes: float, alpha_s: float, beta_Bps: float,
                      shared_uplink: bool = True) -> float:
    """alpha + d m / beta when a node's d messages share its uplink (maxmin), else alpha + m/beta."""
    return alpha_s + (degree if shared_uplink else 1) * nbytes / beta_Bps
