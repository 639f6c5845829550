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
from functools import partial
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
    run = _ScheduleRun(world, schedule, name, label)
    if not run.members:
        return 0.0
    run.start()
    return (yield run.finished)


class _ScheduleRun:
    """The state of one schedule being run: where each member is, and what is still open.

    Each member keeps only the rounds it takes part in (``rounds[n]``, in order), with, for each
    of them, the messages it sends (``sends[n][i]``: ``(dst, nbytes, i, j)`` where ``i`` and
    ``j`` are the round's position in the sender's and the receiver's lists) and how many of its
    sends and receives are still open (``open_count[n][i]``). ``position[n]`` is the round it
    is working on; it moves on when that round has nothing open, sending as each round opens.
    Storage is O(messages), not O(members x rounds).
    """

    def __init__(self, world: World, schedule: Schedule, name: str, label: str) -> None:
        self.world = world
        self.env = world.env
        self.name = name
        self.label = label
        self.start_s = self.env.now
        rounds: dict[int, list[int]] = {}
        sends: dict[int, list[list[tuple[int, float, int, int]]]] = {}
        open_count: dict[int, list[int]] = {}
        for r, rnd in enumerate(schedule):
            for src, dst, nbytes in rnd:
                for node in (src, dst):  # count the message in this round of both ends
                    node_rounds = rounds.get(node)
                    if node_rounds is None:
                        rounds[node], sends[node], open_count[node] = [r], [[]], [1]
                    elif node_rounds[-1] != r:
                        node_rounds.append(r)
                        sends[node].append([])
                        open_count[node].append(1)
                    else:
                        open_count[node][-1] += 1
                sends[src][-1].append((dst, nbytes, len(rounds[src]) - 1, len(rounds[dst]) - 1))
        self.rounds, self.sends, self.open_count = rounds, sends, open_count
        self.remaining = sum(len(rnd) for rnd in schedule)
        self.members = sorted(rounds)
        self.position = dict.fromkeys(self.members, 0)
        self.finished = simpy.Event(self.env)
        self.aborted = False
        self._watched: list[simpy.Event] = []  # failure events that call :meth:`_abort`
        self.in_flight: dict[simpy.Event, int] = {}  # transfer event -> sender, until delivered

    def start(self) -> None:
        """Watch every member for failures, then send the first round of each."""
        nodes = self.world.nodes
        for n in self.members:
            if not nodes[n].is_up:
                self._abort()
                return
            failed = nodes[n].failed_event()
            failed.callbacks.append(self._abort)
            self._watched.append(failed)
        for n in self.members:  # members whose first round is round 0 send at once
            if self.rounds[n][0] == 0:
                self._send(n, 0)
        for n in self.members:  # the others start their first round after them
            if self.rounds[n][0] != 0:
                self._send(n, 0)

    def _send(self, node: int, i: int) -> None:
        transfer = self.world.network.transfer
        for dst, nbytes, si, di in self.sends[node][i]:
            ev = transfer(node, dst, nbytes, self.label)
            self.in_flight[ev] = node
            ev.callbacks.append(partial(self._delivered, node, dst, si, di))

    def _advance(self, node: int) -> None:
        """Move ``node`` past rounds with nothing left open, sending as each round opens."""
        open_count, last = self.open_count[node], len(self.rounds[node]) - 1
        i = self.position[node]
        while i <= last and open_count[i] == 0:
            i += 1
            self.position[node] = i
            if i <= last:
                self._send(node, i)

    def _delivered(self, src: int, dst: int, si: int, di: int, ev: simpy.Event) -> None:
        self.in_flight.pop(ev, None)
        if self.aborted:
            return
        if not ev.ok:
            self._abort()
            return
        self.open_count[src][si] -= 1
        self.open_count[dst][di] -= 1
        self.remaining -= 1
        if self.remaining == 0:
            self._unwatch()
            self.finished.succeed(self.env.now - self.start_s)
            return
        if si == self.position[src]:
            self._advance(src)
        if dst != src and di == self.position[dst]:
            self._advance(dst)

    def _abort(self, _failure: simpy.Event | None = None) -> None:
        if self.finished.triggered:
            return
        self.aborted = True
        self._unwatch()
        # the messages still in flight are abandoned: cut them so they stop using bandwidth
        network = self.world.network
        for ev, src in list(self.in_flight.items()):
            if not ev.triggered:
                network.cancel(src, ev, f"{self.name} aborted")
        self.in_flight.clear()
        nodes = self.world.nodes
        failed = [n for n in self.members if not nodes[n].is_up]
        self.finished.defused = True
        self.finished.fail(CollectiveAborted(failed, self.name))

    def _unwatch(self) -> None:
        """Stop listening for failures (a finished collective must not be kept alive)."""
        for event in self._watched:
            if event.callbacks is not None:  # (None once the failure has been processed)
                event.callbacks.remove(self._abort)
        self._watched = []


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
    """Closed form 2 log2(k) alpha + 2(k-1)/k * m / beta for k a power of two.

    Otherwise the power-of-two core's cost plus 2(alpha + m/beta) for the fold-in and fold-out
    rounds of the extra nodes.
    """
    if k <= 1:
        return 0.0
    p = 1 << (k.bit_length() - 1)
    cost = 2 * math.log2(p) * alpha_s + 2 * (p - 1) / p * nbytes / beta_Bps
    if k != p:
        cost += 2 * (alpha_s + nbytes / beta_Bps)
    return cost


def broadcast_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """Closed form ceil(log2 k) (alpha + m / beta)."""
    return math.ceil(math.log2(k)) * (alpha_s + nbytes / beta_Bps) if k > 1 else 0.0


def tree_allreduce_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """Closed form 2 ceil(log2 k) (alpha + m / beta)."""
    return 2 * broadcast_cost(k, nbytes, alpha_s, beta_Bps)


def pairwise_exchange_cost(nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """Closed form alpha + m / beta (full-duplex links: both directions at once)."""
    return alpha_s + nbytes / beta_Bps


def gossip_round_cost(degree: int, nbytes: float, alpha_s: float, beta_Bps: float,
                      shared_uplink: bool = True) -> float:
    """Closed form alpha + d m / beta when a node's d messages share its uplink (maxmin).

    Without sharing (``shared_uplink=False``, the ``ideal`` model): alpha + m / beta.
    """
    return alpha_s + (degree if shared_uplink else 1) * nbytes / beta_Bps
