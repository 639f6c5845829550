"""Collective operations built on transfers, so they feel contention and failures.

Every collective is a *schedule*: a list of rounds, each a list of messages ``(src, dst, nbytes)``.
A node starts sending its messages of round ``r`` once all its sends and receives of the earlier
rounds are done (the data it forwards depends on what it received). No global barrier: a slow
node delays only the nodes that depend on it, which is how a ring really behaves. One executor
runs every schedule; the collectives differ only in the schedule they build.

A library may keep several rounds in flight: ``run_schedule(..., window=w)`` lets a node start
round ``r`` once its rounds up to ``r - w`` are done (``w = 1``: the textbook schedule), and a
*fence* round starts only when all the node's earlier rounds are done. gloo's ring all-reduce
(:func:`gloo_ring_allreduce_schedule`) is such a schedule: segments of at most 1 MiB, two in
flight, a fence between its reduce-scatter and all-gather loops.

A library may also send only into a posted receive (``run_schedule(..., notice_bytes=b)``, a
*rendezvous*): when a node opens a round it sends each of that round's senders a notice of
``b`` bytes (gloo's ``NOTIFY_RECV_READY``, ``gloo/transport/tcp/pair.cc``), and a message
leaves only once its sender has opened the round and its receiver's notice has arrived. The
notice is a message like any other: one one-way latency plus its bytes on the reverse path, in
order behind what the receiver already sends to that sender.

Each collective also has a closed-form alpha-beta cost (alpha: one-way latency of a message in s,
beta: bandwidth in bytes/s) for tests and back-of-envelope work. On uniform links the simulated
time matches the closed form.

If a member fails, or a message is cut, the collective's process fails with
:class:`CollectiveAborted` listing the members that are down. When that happens depends on the
library's *timeout* (``run_schedule(..., timeout_s=T)``): gloo and NCCL do not notice a dead
peer; a rank simply waits for data that never comes, until its wait times out (gloo's
``timeout``, NCCL's watchdog; torch's defaults are 30 and 10 minutes). With ``T > 0`` a message
that cannot be delivered stays open, so the members that depend on it block where the schedule
makes them block, the others go on sending, and the collective fails ``T`` seconds after the
first failure (or the first cut message) unless it had finished by then. ``T = 0`` (the default)
is a library that learns of the failure at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import simpy

from sim.errors import CollectiveAborted, FieldError

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


GLOO_MAX_SEGMENT_BYTES = 1024 * 1024
"""gloo's ``AllreduceOptions::kMaxSegmentSize``: the largest send or receive of its ring."""

GLOO_WINDOW = 2
"""Send/receive iterations gloo's ring keeps in flight (it waits for iteration i-2)."""

GLOO_NOTICE_BYTES = 48
"""gloo's receive-ready notice: one ``Op`` preamble of six 8-byte fields (``tcp/pair.h``)."""


def gloo_ring_allreduce_schedule(ids: Sequence[int], nbytes: float, *,
                                 element_bytes: int = 4,
                                 max_segment_bytes: int = GLOO_MAX_SEGMENT_BYTES,
                                 ) -> tuple[Schedule, int]:
    """Gloo's ring all-reduce (``gloo/allreduce.cc``, ``ring``) as rounds; and its fence.

    The vector is cut into ``S`` segments: ``S = roundup(max(ceil(m / max_segment), 2k), k)``,
    each of ``ceil(m / S)`` bytes rounded up to whole elements (so the last may be short or
    empty), ``S / k`` segments per rank. Rank ``r`` sends to rank ``r - 1`` and receives from
    ``r + 1`` (a fixed direction, the reverse of :func:`ring_allreduce_schedule`'s), one segment
    per iteration, ``S - S/k`` iterations of reduce-scatter then as many of all-gather. Run it
    with ``window=GLOO_WINDOW`` and the returned fence (the first all-gather round): gloo
    issues iteration ``i`` after iteration ``i - 2`` completed, and drains the reduce-scatter
    before the all-gather starts.
    """
    k = len(ids)
    total = int(math.ceil(nbytes))
    if k <= 1 or total <= 0:
        return [], 0
    max_seg = element_bytes * max(1, max_segment_bytes // element_bytes)
    segments = -(-max(-(-total // max_seg), 2 * k) // k) * k
    per_rank = segments // k
    seg = -(-(-(-total // segments)) // element_bytes) * element_bytes
    span = segments * seg

    def length(offset: int) -> int:
        return max(0, min(seg, total - offset))

    def phase(first: int) -> Schedule:
        rounds = []
        for i in range(segments - per_rank):
            rnd = []
            for r in range(k):
                n = length((((r + first) * per_rank + i) * seg) % span)
                if n > 0:
                    rnd.append((ids[r], ids[(r - 1) % k], float(n)))
            rounds.append(rnd)
        return rounds

    reduce_scatter = phase(1)  # rank r sends segment (r+1) S/k + i
    all_gather = phase(0)      # rank r sends its reduced segments r S/k + i onwards
    return reduce_scatter + all_gather, len(reduce_scatter)


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
                 label: str = "", window: int = 1, fences: Sequence[int] = (),
                 timeout_s: float = 0.0, notice_bytes: float | None = None) -> simpy.Process:
    """Run ``schedule`` on the network; a process whose value is the elapsed time (s).

    ``window``: rounds a node may have open at once (1: a round starts when the node's earlier
    rounds are done). ``fences``: schedule rounds that start only when all the node's earlier
    rounds are done, whatever the window. ``timeout_s``: seconds between the first failure
    (a member down, a message cut) and the collective's abort; the members wait meanwhile
    (see the module docstring). ``notice_bytes``: a rendezvous, each message waiting for its
    receiver's notice of that many bytes (``None``: messages leave when their round opens).
    """
    if window < 1:
        raise ValueError(f"run_schedule: window must be >= 1, got {window}")
    if notice_bytes is not None and not notice_bytes >= 0:
        raise ValueError(f"run_schedule: notice_bytes must be >= 0, got {notice_bytes}")
    check_timeout(timeout_s)
    return world.env.process(_execute(world, schedule, name, label or name, window,
                                      frozenset(fences), timeout_s, notice_bytes))


def check_timeout(timeout_s: float, field: str = "timeout_s") -> None:
    """Raise FieldError naming ``field`` unless ``timeout_s`` is a finite number >= 0."""
    if not (isinstance(timeout_s, (int, float)) and 0.0 <= timeout_s < math.inf):
        raise FieldError(field, f"seconds a collective waits for a failed peer, a finite "
                                f"number >= 0; got {timeout_s!r}")


def _execute(world: World, schedule: Schedule, name: str, label: str, window: int = 1,
             fences: frozenset[int] = frozenset(), timeout_s: float = 0.0,
             notice_bytes: float | None = None):
    run = _ScheduleRun(world, schedule, name, label, window, fences, timeout_s, notice_bytes)
    if not run.members:
        return 0.0
    run.start()
    return (yield run.finished)


class _Member:
    """One member's part of a schedule being run (see :class:`_ScheduleRun`).

    Kept in one record per member, so that a delivery finds everything it reads of its two
    ends with one dict probe each: a round of a 100,000-node all-reduce touches each member
    once, long after the last time, so every separate per-node table it reads is a cache miss.
    """

    __slots__ = ("id", "rounds", "sends", "open_count", "position", "issued", "fence", "recvs")

    def __init__(self, node: int, first_round: int) -> None:
        self.id = node
        self.rounds = [first_round]  # the schedule's rounds it takes part in, in order
        # per round of its own: the messages it sends, (id, dst, nbytes, i, j)
        self.sends: list[list[tuple[int, int, float, int, int]]] = [[]]
        self.open_count = [1]  # per round of its own: sends and receives still open
        self.position = 0  # the round it is working on
        self.issued = 1  # rounds sent (round 0 at start)
        self.fence: list[bool] | None = None  # per round of its own: a fence round
        self.recvs: list[list[tuple[int, int, int]]] | None = None  # with a rendezvous


class _ScheduleRun:
    """The state of one schedule being run: where each member is, and what is still open.

    Each member ``n`` has a record (``member[n]``, a :class:`_Member`) that keeps only the
    rounds it takes part in (``rounds``, in order), with, for each of them, the messages it
    sends (``sends[i]``: ``(n, dst, nbytes, i, j)`` where ``i`` and ``j`` are the round's
    position in the sender's and the receiver's lists) and how many of its sends and receives
    are still open (``open_count[i]``). ``position`` is the round it is working on; it moves
    on when that round has nothing open, sending as each round opens. With a window
    ``w > 1`` a node has sent the rounds up to ``issued - 1``, at most ``position + w - 1``;
    a fence round is sent only once it is the node's position. With a rendezvous,
    ``recvs[i]`` lists the messages node ``n`` receives in its round ``i`` as
    ``(sender, i, k)`` (the ``k``-th of the sender's ``sends[i]``), and ``armed`` counts,
    per message not yet sent, which of its two conditions (round opened at the sender, notice
    arrived from the receiver) has happened. Storage is O(messages), not O(members x rounds).

    A message in flight is found by its transfer event in ``in_flight``, which maps it to its
    tuple of ``sends`` (a notice: to ``(receiver, sender, i, k)``), and every delivery calls the
    one bound method ``_on_delivered``: no callable object is made per message (a round of
    100,000 messages would keep 100,000 of them, touched again only at their delivery).

    A failure (a member down, a message cut) aborts the run at once when ``timeout_s`` is 0;
    otherwise it arms a timer of ``timeout_s`` (the first failure only) and the undeliverable
    message simply stays open: its ends, and whoever waits for them, stop where they are.
    """

    def __init__(self, world: World, schedule: Schedule, name: str, label: str,
                 window: int = 1, fences: frozenset[int] = frozenset(),
                 timeout_s: float = 0.0, notice_bytes: float | None = None) -> None:
        self.world = world
        self.notice_bytes = notice_bytes
        self.window = window
        self.timeout_s = timeout_s
        self.timer: simpy.Event | None = None  # armed at the first failure when timeout_s > 0
        self.env = world.env
        self.name = name
        self.label = label
        self.start_s = self.env.now
        member: dict[int, _Member] = {}
        for r, rnd in enumerate(schedule):
            for src, dst, nbytes in rnd:
                for node in (src, dst):  # count the message in this round of both ends
                    m = member.get(node)
                    if m is None:
                        member[node] = _Member(node, r)
                    elif m.rounds[-1] != r:
                        m.rounds.append(r)
                        m.sends.append([])
                        m.open_count.append(1)
                    else:
                        m.open_count[-1] += 1
                sender = member[src]
                sender.sends[-1].append((src, dst, nbytes, len(sender.rounds) - 1,
                                         len(member[dst].rounds) - 1))
        self.member = member
        self.armed: dict[tuple[int, int, int], int] = {}
        if notice_bytes is not None:
            for m in member.values():
                m.recvs = [[] for _ in m.rounds]
            for src, m in member.items():
                for si, messages in enumerate(m.sends):
                    for k, (_src, dst, _nbytes, _si, di) in enumerate(messages):
                        recvs = member[dst].recvs
                        assert recvs is not None  # (made for every member just above)
                        recvs[di].append((src, si, k))
        self.remaining = sum(len(rnd) for rnd in schedule)
        self.members = sorted(member)
        if fences:
            for m in member.values():
                m.fence = [r in fences for r in m.rounds]
        self.finished = simpy.Event(self.env)
        self.aborted = False
        # (failure event, its callback) of each member; members whose failure was seen
        self._watched: list[tuple[simpy.Event, Any]] = []
        self.failed_members: set[int] = set()
        # transfer event -> its message (a notice: (receiver, sender, i, k)), until delivered
        self.in_flight: dict[simpy.Event, tuple] = {}
        # bound once, not once per message; they refer to the run, so :meth:`_unwatch` drops
        # them when it ends (no reference cycle outlives the run)
        self._on_delivered: Any = self._delivered
        self._on_noticed: Any = self._noticed

    def start(self) -> None:
        """Watch every member for failures, then send the first round of each."""
        nodes = self.world.nodes
        for n in self.members:
            if not nodes[n].is_up:
                if self.timeout_s == 0:
                    self._abort()
                    return
                self._arm_timer()  # a dead peer at the start: connecting to it times out
                continue
            failed = nodes[n].failed_event()
            watcher = partial(self._on_member_failure, n)
            failed.callbacks.append(watcher)
            self._watched.append((failed, watcher))
        member = self.member
        for n in self.members:  # members whose first round is round 0 send at once
            m = member[n]
            if m.rounds[0] == 0:
                self._send(m, 0)
                if self.window > 1:
                    self._advance_window(m)
        for n in self.members:  # the others start their first round after them
            m = member[n]
            if m.rounds[0] != 0:
                self._send(m, 0)
                if self.window > 1:
                    self._advance_window(m)

    def _send(self, m: _Member, i: int) -> None:
        """Member ``m`` opens its round ``i``: send its messages (or arm them, send notices)."""
        notice = self.notice_bytes
        if notice is None:
            for k in range(len(m.sends[i])):
                self._transfer(m, i, k)
            return
        node = m.id
        for k in range(len(m.sends[i])):
            self._arm(node, i, k)
        transfer = self.world.network.transfer
        assert m.recvs is not None  # (a rendezvous makes them: notice_bytes)
        for src, si, k in m.recvs[i]:  # "ready to receive", to each sender
            ev = transfer(node, src, notice, self.label)
            self.in_flight[ev] = (node, src, si, k)
            ev.callbacks.append(self._on_noticed)

    def _transfer(self, m: _Member, i: int, k: int) -> None:
        message = m.sends[i][k]
        ev = self.world.network.transfer(m.id, message[1], message[2], self.label)
        self.in_flight[ev] = message
        ev.callbacks.append(self._on_delivered)

    def _arm(self, node: int, i: int, k: int) -> None:
        """One of the two conditions of message ``k`` of ``node``'s round ``i`` is met."""
        key = (node, i, k)
        if self.armed.pop(key, 0):
            self._transfer(self.member[node], i, k)
        else:
            self.armed[key] = 1

    def _noticed(self, ev: simpy.Event) -> None:
        notice = self.in_flight.pop(ev, None)
        if self.aborted or notice is None:
            return
        _node, src, si, k = notice
        if not ev.ok:
            ev.defused = True
            self._on_failure()  # the message it announced stays unsent: its ends wait
            return
        self._arm(src, si, k)

    def _advance(self, m: _Member) -> None:
        """Move ``m`` past rounds with nothing left open, sending as each round opens."""
        if self.window > 1:
            self._advance_window(m)
            return
        open_count, last = m.open_count, len(m.rounds) - 1
        i = m.position
        while i <= last and open_count[i] == 0:
            i += 1
            m.position = i
            if i <= last:
                self._send(m, i)

    def _advance_window(self, m: _Member) -> None:
        open_count, last = m.open_count, len(m.rounds) - 1
        while True:
            i = m.position
            while i <= last and i < m.issued and open_count[i] == 0:
                i += 1
            m.position = i
            if not self._fill_window(m):
                return

    def _fill_window(self, m: _Member) -> bool:
        """Send the member's next rounds while fewer than ``window`` are open; True if any."""
        if self.window == 1:
            return False
        last = len(m.rounds) - 1
        fence = m.fence
        sent = False
        while True:
            j = m.issued
            if j > last or j >= m.position + self.window:
                return sent
            if fence is not None and fence[j] and j != m.position:
                return sent
            m.issued = j + 1
            self._send(m, j)
            sent = True

    def _delivered(self, ev: simpy.Event) -> None:
        message = self.in_flight.pop(ev, None)
        if self.aborted or message is None:
            return
        src, dst, _nbytes, si, di = message
        if not ev.ok:
            ev.defused = True
            self._on_failure()  # the message stays open: whoever needs it waits
            return
        member = self.member
        sender, receiver = member[src], member[dst]
        sender.open_count[si] -= 1
        receiver.open_count[di] -= 1
        self.remaining -= 1
        if self.remaining == 0:
            self._unwatch()
            self.finished.succeed(self.env.now - self.start_s)
            return
        if si == sender.position:
            self._advance(sender)
        if dst != src and di == receiver.position:
            self._advance(receiver)

    def _on_member_failure(self, node: int, _failure: simpy.Event) -> None:
        self.failed_members.add(node)  # (it may be back before the timeout expires)
        self._on_failure()

    def _on_failure(self, _failure: simpy.Event | None = None) -> None:
        """A member failed or a message was cut: abort now, or when the timeout expires."""
        if self.timeout_s == 0:
            self._abort()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self.timer is None and not self.finished.triggered:
            self.timer = self.env.timeout(self.timeout_s)
            self.timer.callbacks.append(self._abort)

    def _abort(self, _failure: simpy.Event | None = None) -> None:
        if self.finished.triggered:
            return
        self.aborted = True
        self._unwatch()
        # the messages still in flight are abandoned: cut them so they stop using bandwidth
        network = self.world.network
        for ev, message in list(self.in_flight.items()):
            if not ev.triggered:
                network.cancel(message[0], ev, f"{self.name} aborted")
        self.in_flight.clear()
        nodes = self.world.nodes
        failed = [n for n in self.members if not nodes[n].is_up or n in self.failed_members]
        self.finished.defused = True
        self.finished.fail(CollectiveAborted(failed, self.name))

    def _unwatch(self) -> None:
        """Stop listening for failures (a finished collective must not be kept alive)."""
        for event, watcher in self._watched:
            if event.callbacks is not None:  # (None once the failure has been processed)
                event.callbacks.remove(watcher)
        self._watched = []
        self._on_delivered = self._on_noticed = None  # (events still pending keep their own)


# -- the collectives -------------------------------------------------------------------------

def _ids(nodes: Sequence[Any]) -> list[int]:
    return [n if isinstance(n, int) else n.id for n in nodes]


def ring_allreduce(world: World, nodes: Sequence[Any], nbytes: float, *,
                   timeout_s: float = 0.0) -> simpy.Process:
    """All-reduce of ``nbytes`` per node around a ring (the order of ``nodes``)."""
    return run_schedule(world, ring_allreduce_schedule(_ids(nodes), nbytes),
                        name="ring_allreduce", timeout_s=timeout_s)


def gloo_ring_allreduce(world: World, nodes: Sequence[Any], nbytes: float, *,
                        max_segment_bytes: int = GLOO_MAX_SEGMENT_BYTES,
                        timeout_s: float = 0.0) -> simpy.Process:
    """All-reduce as gloo runs it (what ``torch.distributed.all_reduce`` does on CPU tensors).

    See :func:`gloo_ring_allreduce_schedule`: 1 MiB segments, two in flight, rank ``r`` sends
    to ``r - 1`` in the order of ``nodes``, each segment only after the receiver's
    receive-ready notice (``GLOO_NOTICE_BYTES``) has arrived.
    """
    schedule, fence = gloo_ring_allreduce_schedule(_ids(nodes), nbytes,
                                                   max_segment_bytes=max_segment_bytes)
    return run_schedule(world, schedule, name="gloo_ring_allreduce", window=GLOO_WINDOW,
                        fences=(fence,), timeout_s=timeout_s, notice_bytes=GLOO_NOTICE_BYTES)


def halving_doubling_allreduce(world: World, nodes: Sequence[Any], nbytes: float, *,
                               timeout_s: float = 0.0) -> simpy.Process:
    """All-reduce by recursive halving and doubling (latency-optimal for large k)."""
    return run_schedule(world, halving_doubling_schedule(_ids(nodes), nbytes),
                        name="halving_doubling_allreduce", timeout_s=timeout_s)


def tree_allreduce(world: World, nodes: Sequence[Any], nbytes: float, *,
                   timeout_s: float = 0.0) -> simpy.Process:
    """All-reduce by a binomial-tree reduce and broadcast."""
    return run_schedule(world, tree_allreduce_schedule(_ids(nodes), nbytes),
                        name="tree_allreduce", timeout_s=timeout_s)


def allreduce(world: World, nodes: Sequence[Any], nbytes: float,
              algorithm: str = "ring", *, timeout_s: float = 0.0) -> simpy.Process:
    """All-reduce with ``algorithm`` in ``ALLREDUCE_ALGORITHMS``; ``timeout_s`` as above."""
    try:
        fn = ALLREDUCE_ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"allreduce algorithm: unknown {algorithm!r}; allowed: "
                         f"{', '.join(sorted(ALLREDUCE_ALGORITHMS))}") from None
    return fn(world, nodes, nbytes, timeout_s=timeout_s)


def reduce_scatter(world: World, nodes: Sequence[Any], nbytes: float) -> simpy.Process:
    """Ring reduce-scatter: each node ends with the sum of one m/k shard."""
    return run_schedule(world, ring_reduce_scatter_schedule(_ids(nodes), nbytes),
                        name="reduce_scatter")


def all_gather(world: World, nodes: Sequence[Any], nbytes: float, *,
               timeout_s: float = 0.0) -> simpy.Process:
    """Ring all-gather: every node ends with all k shards (``nbytes`` is the full size)."""
    return run_schedule(world, ring_reduce_scatter_schedule(_ids(nodes), nbytes),
                        name="all_gather", timeout_s=timeout_s)


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
                        "tree": tree_allreduce, "gloo_ring": gloo_ring_allreduce}


# -- closed forms ----------------------------------------------------------------------------

def ring_allreduce_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float) -> float:
    """2(k-1) alpha + 2(k-1)/k * m / beta."""
    if k <= 1:
        return 0.0
    return 2 * (k - 1) * alpha_s + 2 * (k - 1) / k * nbytes / beta_Bps


def gloo_ring_allreduce_cost(k: int, nbytes: float, alpha_s: float, beta_Bps: float, *,
                             max_segment_bytes: int = GLOO_MAX_SEGMENT_BYTES,
                             notice_bytes: float | None = GLOO_NOTICE_BYTES) -> float:
    """Closed form 2 (2 ceil(n/2) alpha + n (s + b) / beta) on ``maxmin`` links (fluid transport).

    ``n = S - S/k`` iterations per phase of ``s = m / S`` bytes (``m`` a multiple of ``S``
    elements). Two iterations are issued together: each rank sends its two receive-ready
    notices of ``b = notice_bytes`` (they share its uplink: ``2 b / beta``), they arrive one
    ``alpha`` later, then the two segments share each uplink (``2 s / beta``) and arrive one
    ``alpha`` later, which opens the next two. So each pair costs ``2 alpha + 2 (s + b) / beta``:
    on a path whose latency exceeds a segment's sending time the ring is latency-bound, two
    segments per round trip. ``notice_bytes=None`` (no rendezvous): ``alpha + 2 s / beta`` per
    pair. The bandwidth term is the textbook ``2 (k-1)/k m / beta``.
    """
    if k <= 1:
        return 0.0
    max_seg = 4 * max(1, max_segment_bytes // 4)
    total = int(math.ceil(nbytes))
    segments = -(-max(-(-total // max_seg), 2 * k) // k) * k
    n = segments - segments // k
    if notice_bytes is None:
        return 2 * (math.ceil(n / 2) * alpha_s + n * (nbytes / segments) / beta_Bps)
    return 2 * (2 * math.ceil(n / 2) * alpha_s + n * (nbytes / segments + notice_bytes) / beta_Bps)


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
