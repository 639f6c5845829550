"""The ``maxmin`` network: flow-level max-min fair sharing.

Every flow in the sending state gets a rate such that no flow can go faster without slowing a flow
that is already as slow or slower (max-min fairness). Rates come from progressive filling: raise
all unfrozen flows together until some link is full, freeze the flows through it, repeat.

The max-min allocation is the only feasible one in which every flow has a *bottleneck*: a full
link on which no flow is faster than it. That test is local, which makes the recompute local
too. When flows start or end, a region of flows is re-rated by progressive filling while every
flow outside it keeps its rate (and its share of the links); the region starts as the new flows
and the flows whose bottleneck is a link that gained or lost a flow. Then the bottleneck test is
run on the region and on the flows outside it whose bottleneck link changed; a flow that fails
it joins the region (for a region flow: the faster flow that beat it) and the region is filled
again. When nobody fails, the allocation is the max-min one, exactly as if every flow had been
re-rated; in practice the region stays a handful of flows even when every flow is connected to
every other through shared links (see docs/performance.md). After a few rounds the region
becomes the whole connected component of the "flow crosses link" graph, which is always right.

Flow starts and ends are *coalesced*: a start or end takes the flow on or off its links at
once, but the re-rating waits until every other event of the same simulated instant has run (one
late-priority SimPy event per instant), and then re-rates the union of what changed in one pass.
The collectives' messages of one round mostly start at the same instant, so where ``k`` flows
join a shared link together this costs one re-rating instead of ``k`` (each of which re-rated
every flow on the link). No simulated time passes between the changes and the re-rating, so no
byte moves at a rate that was never max-min: the rates after the instant are the max-min rates of
the flows then sending, the same allocation as re-rating after each change, up to rounding (see
docs/performance.md for the measured difference). A flow that starts alone on its links is still
rated at once (nobody else can change).

**Large regions are filled with numpy** (``vector_min_flows``, 64 flows by default): a tree
all-reduce's round on a few shared WAN links re-rates hundreds of flows at once, and the
pure-Python filling costs a few dictionary operations per flow-link incidence. The numpy
filling raises one water level per pass over the region's incidences as arrays; it computes the
same rates up to the order of subtractions (tests: 1e-9 against the oracle and against the
Python filling; on the clusters-of-clusters benchmark the rates come out bit-identical).
Smaller regions, most of them, keep the Python filling unchanged. A large region also takes in
at once the flows outside it, on its seed links, that run faster than it leaves room for there
(:meth:`MaxMinNetwork._faster_outside`): the bottleneck test would add them and fill the region
again (on the clusters-of-clusters benchmark, a third of the large re-ratings' filling).

**ACK demand** (``ack_fraction`` a > 0, set by the ``tcp`` transport when its ACK bytes are on,
``TcpConfig.ack_frame_bytes > 0``; off by default, and 0 for ``fluid``). A flow
sending at rate r puts a r of acknowledgements on the links of its reverse path. ACKs are not
flows that share fairly: a TCP sender backs off when its data queue overflows, its receiver's
ACKs do not, so on a link they are served first and the data flows share what they leave:
the rates are the fixed point ``r = maxmin(C - a A r)``, where ``(A r)_l`` sums the rates of
the flows ACKed across link ``l``. (Weighted max-min over ``sum r + a sum r_acked <= C`` would
instead hold a fast flow to the rate of the slow flow whose link its ACKs cross: two opposite
flows on uplinks of 100 and 200 at a = 5% would both get 95; TCP gives them about 90 and
195.) The
re-rating reaches the fixed point in passes: when new rates move the ACK demand on links that
carry data, those links' flows are re-rated again at the new capacities; each pass moves rates
about a (1%) times the last. Chasing that to ``SAME_RATE`` is exact (``ack_slack = 0``, what the
oracle tests check) but re-rates most of a busy network, so by default a link's reservation
moves only by steps above ``ACK_SLACK`` (0.3%) of its capacity. Flows whose ACKs cross only
links without data, or links that are not full, cost bookkeeping and no pass (on the flow
benchmark's random traffic, every link carries data: 0.45-0.65x the events per second). Left
out: a link whose ACKs alone would fill it (they then clock their senders); the reservation is
capped at ``MAX_ACK_SHARE`` of the link, a regime that needs a bandwidth asymmetry of
``1 / (2 a)`` (40x at the tcp transport's default).

**Links that can never fill are left out.** A site with one node and one neighbour (every node of
``clusters-of-clusters`` and ``uniform`` sits at one, behind its data centre's core or the
switch) is left only by that node's messages, all of which cross its uplink, and entered only by
messages to it, all of which cross its downlink. When the edge is faster than that access link,
no allocation fills it, so no flow is ever frozen there nor held by it: each flow is rated on
``Flow.rated_links``, its links less such edges (:meth:`MaxMinNetwork._links_never_full`), with
the same rates and bottlenecks (a message across data centres: 3 links instead of 5 in every
pass of a re-rating). Not under ACK demand, which moves capacities.

Completion times live in one heap with a version per flow (a re-rated flow pushes a new entry,
the old one goes stale) and one timer (a lean :class:`sim.timer.Timer`, as is the coalesced
re-rating's event) waits for the earliest of them, so re-rating costs heap pushes, not SimPy
events. A flow whose rate did not change keeps its heap entry; when stale
entries outnumber live ones the heap is rebuilt from the live ones (same order). A flow that ends
alone on its links leaves nobody to re-rate and schedules nothing (docs/performance.md, "The
network hot path").
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Container, Iterable
from itertools import chain, islice

import numpy as np

from sim.network.base import Flow
from sim.network.tcp import TcpTransport
from sim.timer import Timer

TOLERANCE = 1e-9
"""Relative slack of the bottleneck test ("full" and "no faster flow"), for rounding errors."""

SAME_RATE = 1e-12
"""A new rate this close (relative) to the old one is rounding noise; the flow keeps its rate."""

FILL_TIE = 1 + 1e-12
"""Progressive filling: a link's share at most this factor (plus 1e-300) above the level it was
filed at is that level (a tie of rounding), not a stale entry.

One constant for every filling (:meth:`MaxMinNetwork._fill`, ``_fill_one_link``,
``_fill_arrays``): the one-link pass replays the heap's steps to the bit only with its slack."""

MAX_REPAIR_ROUNDS = 4
"""Rounds of growing the region before re-rating the flow's whole connected component."""

LATE = 2
"""SimPy priority of the coalesced re-rating: after every URGENT (0) and NORMAL (1) event."""

COMPACT_STALE = 4
"""Rebuild the finish-time heap when it holds this many entries per rated flow (most stale)."""

COMPACT_SLACK = 64
"""Entries allowed on top of that, so that a network of few flows never rebuilds its heap."""

MAX_ACK_SHARE = 0.5
"""Largest share of a link's capacity the ACKs crossing it reserve (see the module docstring)."""

ACK_SLACK = 3e-3
"""A link's ACK reservation is re-applied (and its flows re-rated) only when it has moved by
more than this fraction of the link's capacity. Chasing every ACK change to ``SAME_RATE``
re-rates most of a busy network (it reaches flows further away ``ack_fraction`` times smaller
per hop): 70x fewer events per second on the flow benchmark, about 2x at this slack. A flow's
start or end at full rate moves its ACK links by ``ack_fraction`` (1.25%) of their capacity,
so it is applied; what lags is a quarter of that at most, and the rates are max-min over
capacities within 0.3% of the exact ones. ``ack_slack = 0`` is exact (tests: 1e-9)."""

CANCELLATION = 1e3
"""An ACK change this many times the link's new ACK total re-sums it (see ``_shift_acks``)."""

MAX_ACK_PASSES = 64
"""Passes of re-rating for moved ACK demand before stopping (each moves rates ~100x less)."""

NEVER_FULL_MARGIN = 1e-6
"""A link faster than the access link its flows all cross by this much (relative) never fills."""

CAP_FILL_MAX_FLOWS = 16
"""A rising cap that fills one link re-rates that link's flows on the spot
(:meth:`MaxMinNetwork._cap_fills_link`) only when the link carries at most this many flows.

On a long WAN link the flows of a collective's round raise their caps together at the round's
end: one coalesced re-rating of them all costs less than one local re-rating per flow."""

VECTOR_MIN_FLOWS = 64
"""Regions of at least this many flows are filled with numpy (:meth:`MaxMinNetwork._fill_arrays`).

Below it the pure-Python filling is faster (its cost is a few dictionary operations per
flow-link incidence; numpy's is a fixed ~50 us of array set-up plus a little per incidence)."""


class MaxMinNetwork(TcpTransport):
    """Max-min fair bandwidth sharing with local, verified re-rating."""

    model_name = "maxmin"

    coalesce = True
    """Re-rate once per simulated instant (True) or at every flow start and end (False)."""

    ack_slack = ACK_SLACK
    """ACK demand a link's capacity may lag behind, as a fraction of the capacity (0: exact)."""

    vector_min_flows: float = VECTOR_MIN_FLOWS
    """Fill regions of at least this many flows with numpy (``math.inf``: never; 1: always)."""

    def _init_model(self) -> None:
        self._on_link: list[dict[int, Flow]] = [dict() for _ in self.link_names]
        self._usable = [c * self.efficiency for c in self.capacity_Bps]  # bytes/s of payload
        self._capacity = list(self._usable)  # usable minus the ACK demand on it, bytes/s
        self._capacity_array = np.array(self._capacity)  # the same, for _fill_arrays to index
        self._ack_rate = [0.0 for _ in self.link_names]  # rates of the flows ACKed across it
        self._reserved = [0.0 for _ in self.link_names]  # ACK bytes/s taken off its capacity
        self._ack_users: list[dict[int, Flow]] = [dict() for _ in self.link_names]  # ACKed across
        self._moved: dict[int, float] = {}  # link with data whose ACKs moved -> old capacity
        self._load = [0.0 for _ in self.link_names]  # sum of the rates on each link, bytes/s
        self._bottleneck: dict[int, int] = {}  # flow id -> a link that is its bottleneck
        self._finish_heap: list[tuple[float, int, int, Flow]] = []  # (time_s, flow id, version)
        self._timer_at = math.inf
        self._timer: Timer | None = None  # the finish timer armed last (earlier ones are stale)
        self._pending: dict[int, None] = {}  # links whose flows changed this instant, in order
        self._pending_event: Timer | None = None  # the coalesced re-rating, while queued
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None  # see _link_scratch
        self._never_full: frozenset[int] | None = None  # see _links_never_full (made once)
        self._rated_paths: dict[tuple[int, ...], tuple[int, ...]] = {}  # links -> rated links
        self._caps: dict[int, float] = {}  # flow id -> its rate cap, bytes/s (see _set_cap)
        self.reallocations = 0
        self.flows_rerated = 0
        self.repair_rounds = 0
        self.array_fills = 0  # regions filled by _fill_arrays
        self.heap_compactions = 0
        self.caps_filled = 0  # rising caps re-rated on the spot (see _cap_fills_link)
        self.ack_passes = 0

    # -- flow life -------------------------------------------------------------------------

    def _start(self, flow: Flow) -> None:
        if flow.nbytes == 0 or not flow.links:
            self._transmitted(flow)
            return
        links = flow.rated_links or self._rate_on(flow)
        alone = True  # the flow is the only one on each of its links
        on_link, fid = self._on_link, flow.id
        for link in links:
            flows = on_link[link]
            flows[fid] = flow
            if len(flows) > 1:
                alone = False
        if self.ack_fraction:
            alone = self._add_acks(flow) and alone
        if alone:
            self._start_alone(flow)
        elif not (self._caps and fid in self._caps and self._takes_cap(flow, self._caps[fid])):
            self._changed(links)

    def _rate_on(self, flow: Flow) -> tuple[int, ...]:
        """Set ``flow.rated_links``: its links less those that can never fill (once per flow).

        Kept per path where the topology has such links (one entry per path that carried a
        flow, as many as the node pairs that send); elsewhere the flow's own links.
        """
        links = flow.links
        never = self._never_full
        if never is None:
            never = self._never_full = self._links_never_full()
        if not never:
            flow.rated_links = links
            return links
        rated = self._rated_paths.get(links)
        if rated is None:
            rated = self._rated_paths[links] = tuple([x for x in links if x not in never])
        flow.rated_links = rated
        return rated

    def _links_never_full(self) -> frozenset[int]:
        """Links no allocation can fill: every flow on one also crosses a slower link.

        The edge of a site with one node and one neighbour carries exactly its node's access
        link's messages (:meth:`Network._leaf_access_edges`). When that edge is faster than the
        access link, the flows on it never sum to its capacity (at most to the access link's),
        so no allocation fills it: progressive filling never freezes a flow there and the
        bottleneck test never finds it full. Rating flows without it gives the same rates and
        bottlenecks with 3 links per message instead of 5 on such paths (a chunk of a tree
        all-reduce across data centres: ~40% less work per flow in every pass of a re-rating).

        "Faster" with a margin (:data:`NEVER_FULL_MARGIN`) far above the filling's tie slack
        and the bottleneck test's :data:`TOLERANCE`. None under ACK demand, which moves
        capacities (the edge and the access link lose the same ACK rate, but by steps of
        different size: kept exact the simple way).

        Made once, on the first flow: capacities are fixed for a run. Anything that changes a
        link's capacity at run time must reset ``_never_full`` to None, clear
        ``_rated_paths`` and re-rate the flows in flight.
        """
        if self.ack_fraction:
            return frozenset()
        capacity = self.capacity_Bps
        return frozenset(edge for access, edge in self._leaf_access_edges()
                         if capacity[edge] > capacity[access] * (1 + NEVER_FULL_MARGIN))

    def _start_alone(self, flow: Flow) -> None:
        """Rate a new flow that shares none of its links: what :meth:`_reallocate` would do.

        Nobody else can gain or lose, so progressive filling ends at once: the flow gets the
        smallest usable capacity on its path, and the link that has it (the lowest index among
        equals, as the filling heap would pop it) is its bottleneck. This is the common case of
        collectives on a switched network (each message has its own uplink and downlink), and
        it skips the region search and the bottleneck test.
        """
        usable, links = self._capacity, flow.rated_links
        link = links[0]
        rate = usable[link]
        for other in links:  # (min(links, key=lambda x: (usable[x], x)), without the calls)
            if usable[other] < rate or (usable[other] == rate and other < link):
                link, rate = other, usable[other]
        if self._caps:
            cap = self._caps.get(flow.id, math.inf)
            if cap < rate:
                rate, link = cap, ~flow.id  # held by its cap (see _set_cap)
        self.reallocations += 1
        self.flows_rerated += 1
        self._bottleneck[flow.id] = link
        load = self._load
        for other in flow.rated_links:  # (a new flow: rate 0, nothing sent yet)
            load[other] += rate
        flow.rate = rate
        if flow.ack_links:  # (links no data crosses: nobody to re-rate)
            self._shift_acks(flow, rate)
        flow.version += 1
        self._push_finish(flow, self.env.now + flow.remaining / rate)
        self._arm_timer()

    def _set_cap(self, flow: Flow, cap_Bps: float) -> None:
        """Hold ``flow`` at most at ``cap_Bps`` (bytes/s; ``math.inf``: no cap), now and on.

        Max-min fairness with per-flow caps is water-filling in which a flow also freezes when
        the water reaches its cap: the same as a private link of capacity ``cap_Bps`` that only
        it crosses. The filling (:meth:`_fill`, :meth:`_fill_arrays`, :meth:`_start_alone`)
        adds such a link for each capped flow of the region, numbered ``~flow.id`` (negative:
        never a real link, so never a seed, never shared, never in the bottleneck test: nobody
        else is on it, so a flow held there is never beaten on it). Flows without a cap cost
        nothing more: the caps live in one dict, empty under ``fluid``. The ``tcp`` transport
        paces its rounds this way (``TcpConfig.rounds = "paced"``).

        A flow already rated is re-rated (coalesced, as a start would be) only when the new cap
        is below its rate or its old cap held it; a flow held by a link keeps its rate when its
        cap rises (the allocation stays max-min), and a flow held by its cap takes a higher cap
        at once when no link of its path fills (:meth:`_takes_cap`).
        """
        caps, fid = self._caps, flow.id
        if cap_Bps == caps.get(fid, math.inf):
            return
        if cap_Bps < math.inf:
            caps[fid] = cap_Bps
        else:
            del caps[fid]
        held = self._bottleneck.get(fid)
        if held is None:
            return  # not rated yet (this instant's re-rating or _start reads the cap)
        if held < 0 and cap_Bps > flow.rate and self._takes_cap(flow, cap_Bps):
            return
        if cap_Bps < flow.rate or held < 0:
            self._bottleneck[fid] = flow.rated_links[0]  # (joins the re-rating's region)
            self._changed(flow.rated_links)

    def _takes_cap(self, flow: Flow, cap_Bps: float) -> bool:
        """Rate ``flow`` at its cap now, without re-rating, if no link of its path fills.

        Exact: every other flow keeps a full bottleneck link on which nobody is faster (a link
        that is not full after the change was not full before, so it was nobody's bottleneck),
        and the flow's own bottleneck is its cap. A link "fills" within :data:`TOLERANCE` of its
        capacity, the bottleneck test's slack. For a new flow (rate 0) and for a flow held by
        its cap whose cap rises; the caller has recorded the cap. Not under ACK demand (the
        flow's ACKs move other links' capacities). When exactly one link fills, that link's
        flows may be re-rated on the spot instead (:meth:`_cap_fills_link`). False: nothing
        changed.
        """
        if self.ack_fraction:
            return False
        load, usable = self._load, self._capacity
        old = flow.rate
        delta = cap_Bps - old
        links = flow.rated_links
        full = 1 - TOLERANCE
        fills = -1  # the link that fills (-1: none; link numbers are >= 0)
        for link in links:
            if load[link] + delta > usable[link] * full:
                if fills >= 0:
                    return False
                fills = link
        if fills >= 0:
            return self._cap_fills_link(flow, cap_Bps, fills)
        now = self.env.now
        if old > 0:
            remaining = flow.remaining - old * (now - flow.last_s)
            flow.remaining = remaining if remaining > 0.0 else 0.0
        flow.last_s = now
        for link in links:
            load[link] += delta
        flow.rate = cap_Bps
        self._bottleneck[flow.id] = ~flow.id
        self.flows_rerated += 1
        flow.version += 1
        finish = now + flow.remaining / cap_Bps
        self._push_finish(flow, finish)
        if finish < self._timer_at and self._pending_event is None:
            self._arm_timer()  # (else the timer or the coalesced re-rating comes first)
        return True

    def _cap_fills_link(self, flow: Flow, cap_Bps: float, link: int) -> bool:
        """Re-rate on the spot for ``flow``'s new cap, which fills ``link`` and no other link.

        The flow rises towards ``cap_Bps`` and takes capacity from the flows held at ``link``
        (whose bottleneck it is): water-filling of that one link, with the rates of the flows
        held elsewhere that cross it fixed. The flow's level there is what the link leaves
        over it and the held flows (bytes/s); if its cap is lower it stops at its cap and the
        held flows share the rest. Every other flow keeps its rate. That is the max-min
        allocation, what the coalesced re-rating would give, when the bottleneck test holds
        for every flow, which needs, besides the filling:

        - nobody faster than the level on ``link`` among the flows held elsewhere (else they
          would have to slow down too);
        - the held flows slow down (or keep their rates: they always do unless the link had
          room within the test's slack), and nobody is held at their other links, where they
          leave capacity free (else someone there would speed up);
        - nobody is held at the flow's other links, which do not fill (the caller's test: a
          link that is not full was nobody's bottleneck).

        (A held flow whose cap equals the new level is held both by its cap and by the link;
        the link is recorded.)

        Every recorded bottleneck must hold for the test to be read from them, so only while
        no re-rating is pending this instant, and on a link of at most
        :data:`CAP_FILL_MAX_FLOWS` flows. In the tcp transport's paced rounds this is the
        common case: a connection in slow start on an uplink with two other senders doubles
        its cap every round trip, and they share what it leaves (docs/performance.md).
        False, with nothing changed, when a condition fails: the caller re-rates the region
        at the instant's end.
        """
        flows = self._on_link[link]
        if self._pending_event is not None or len(flows) > CAP_FILL_MAX_FLOWS:
            return False
        held_by, on_link = self._bottleneck, self._on_link
        fid = flow.id
        held: list[Flow] = []  # the flows held at the link
        used = flow.rate  # bytes/s the flow and the held flows take of the link
        faster = 0.0  # the fastest flow held elsewhere that crosses it
        for other_id, other in flows.items():
            if other_id == fid:
                continue
            if held_by.get(other_id) == link:
                held.append(other)
                used += other.rate
            elif other.rate > faster:
                faster = other.rate
        left = self._capacity[link] - (self._load[link] - used)
        level = left / (len(held) + 1)
        own = link  # the flow's bottleneck
        if cap_Bps <= level:
            own, level = ~fid, (left - cap_Bps) / len(held) if held else cap_Bps
        if (held or own == link) and faster * (1 - TOLERANCE) > level:
            return False
        for other in held:
            if level > other.rate:
                return False
            for beyond in other.rated_links:
                if beyond != link:
                    for gid in on_link[beyond]:
                        if held_by.get(gid) == beyond:
                            return False
        region = {fid: flow}
        rates = {fid: cap_Bps if own < 0 else level}
        bottleneck = {fid: own}
        for other in held:
            region[other.id] = other
            rates[other.id] = level
            bottleneck[other.id] = link
        self._snap(region, rates)
        self.reallocations += 1
        self.caps_filled += 1
        self._apply(region, rates, bottleneck)
        self._arm_timer()
        return True

    def _lone_rate(self, flow: Flow) -> float | None:
        """What :meth:`_start_alone` would give ``flow`` now; None when a link carries a flow."""
        on_link, usable = self._on_link, self._capacity
        rate = math.inf
        for link in flow.rated_links or self._rate_on(flow):
            if on_link[link]:
                return None
            if usable[link] < rate:
                rate = usable[link]
        return rate

    def _stop(self, flow: Flow) -> None:
        self._detach([flow])

    def _detach(self, flows: list[Flow]) -> None:
        """Take sending flows off their links and re-rate the flows they shared links with.

        A link left with no flow needs no re-rating (nobody is there to gain), so a flow that
        ends alone on its links costs no re-rating and no SimPy event.
        """
        now = self.env.now
        on_link, load, bottleneck, caps = self._on_link, self._load, self._bottleneck, self._caps
        touched: list[int] = []
        for flow in flows:
            rate, fid = flow.rate, flow.id
            if caps:
                caps.pop(fid, None)
            left = flow.remaining - rate * (now - flow.last_s)
            flow.remaining = left if left > 0.0 else 0.0
            flow.last_s = now
            flow.version += 1
            bottleneck.pop(fid, None)
            for link in flow.rated_links:
                others = on_link[link]
                del others[fid]
                if others:
                    load[link] -= rate
                    touched.append(link)
                else:
                    load[link] = 0.0
            if flow.ack_links:
                self._remove_acks(flow)
        if self._moved:
            touched.extend(self._full_moved())
        touched = [link for link in touched if on_link[link]]
        if touched:
            self._changed(touched)

    def _changed(self, links: tuple[int, ...] | list[int]) -> None:
        """Flows on ``links`` changed: re-rate now, or once at the end of this instant."""
        if not self.coalesce:
            self._reallocate(links)
            self._arm_timer()
            return
        pending = self._pending
        for link in links:
            pending[link] = None
        if self._pending_event is None:  # (queued as a triggered simpy.Event at LATE would be)
            self._pending_event = Timer(self.env, 0.0, None, self._rerate_pending, LATE)

    def _rerate_pending(self, _timer: Timer) -> None:
        """The coalesced re-rating: every link that changed during this instant, in one pass."""
        links, self._pending, self._pending_event = self._pending, {}, None
        self._reallocate(links)
        self._arm_timer()

    # -- the allocation --------------------------------------------------------------------

    def _reallocate(self, seed_links: tuple[int, ...] | list[int] | dict[int, None]) -> None:
        """Re-rate the flows on ``seed_links`` and every flow that must change with them.

        Then, while new rates moved the ACK demand on links that carry data, re-rate those links
        too (the fixed point of the module docstring; each pass moves rates ``ack_fraction``
        times less than the one before, and a change below ``SAME_RATE`` ends it).
        """
        self._rerate_region(seed_links)
        passes = 0
        while self._moved and passes < MAX_ACK_PASSES:
            moved = self._full_moved()
            if not moved:
                break
            passes += 1
            self.ack_passes += 1
            self._rerate_region(moved)
        self._moved = {}

    def _full_moved(self) -> dict[int, None]:
        """The links whose ACK demand moved and that were or are now full; clears the rest.

        A link that is not full (nor was, at its old capacity) holds no flow back, so a change
        of its capacity changes no rate: the allocation stays max-min without re-rating it.
        """
        moved, self._moved = self._moved, {}
        load, capacity = self._load, self._capacity
        return {link: None for link, old in moved.items()
                if load[link] >= min(old, capacity[link]) * (1 - TOLERANCE)}

    def _rerate_region(self, seed_links: tuple[int, ...] | list[int] | dict[int, None]) -> None:
        """One pass of :meth:`_reallocate` at fixed capacities.

        The first region is the new flows and the flows whose bottleneck is a seed link (every
        flow on a seed link whose ACK demand pushed it over its capacity); a flow held back
        elsewhere keeps its rate unless the bottleneck test says otherwise. The seed links on
        which a flow stays out of it (``loose``, in seed order) are the only seed links where
        :meth:`_faster_outside` and :meth:`_failures` can find a flow outside the region: most
        seed links carry one new flow and nothing else (a chunk's access links).
        """
        seeds = seed_links if isinstance(seed_links, dict) else dict.fromkeys(seed_links)
        region: dict[int, Flow] = {}
        loose: dict[int, None] = {}
        on_link, held_by = self._on_link, self._bottleneck.get
        load, usable, over = self._load, self._capacity, 1 + TOLERANCE
        for link in seeds:  # (kept lean: it runs once per seed link, most carry one new flow)
            flows = on_link[link]
            for fid in flows:
                if fid in region:
                    continue
                if held_by(fid, link) in seeds:
                    region[fid] = flows[fid]
                elif load[link] > usable[link] * over:  # over capacity (ACK demand): all join
                    region.update(flows)
                    break
                else:
                    loose[link] = None
        if not region:
            return
        if len(region) >= self.vector_min_flows:
            region.update(self._faster_outside(region, loose))
        self.reallocations += 1
        rounds = 0
        while True:
            rates, bottleneck, shared = self._fill(region)
            self._snap(region, rates)
            if not loose and not shared:
                break  # a closed region: nobody fails the bottleneck test (see _failures)
            failed = self._failures(region, rates, bottleneck, seeds, loose, shared)
            if not failed:
                break
            rounds += 1
            self.repair_rounds += 1
            if rounds >= MAX_REPAIR_ROUNDS:
                region = self._component(seeds)
                rates, bottleneck, _ = self._fill(region)
                break
            region.update(failed)
        self._apply(region, rates, bottleneck)

    @staticmethod
    def _snap(region: dict[int, Flow], rates: dict[int, float]) -> None:
        """Rounding noise is no change: a new rate within ``SAME_RATE`` keeps the old one.

        The flow then keeps its finish time and heap entry (:meth:`_apply` skips it).
        """
        same = SAME_RATE
        for fid, flow in region.items():
            old = flow.rate
            if abs(rates[fid] - old) <= same * old:
                rates[fid] = old

    def _faster_outside(self, region: dict[int, Flow], loose: dict[int, None],
                        ) -> dict[int, Flow]:
        """Flows outside a large region, on its seed links, faster than it leaves room for.

        ``loose``: the seed links that carry a flow outside the region (see
        :meth:`_rerate_region`), in seed order.

        A flow held back elsewhere (say by its own access link) that crosses a seed link where
        new flows arrive keeps its rate while the region is filled; if that rate is above the
        most the region's flows can get there (the link's capacity less what the outside flows
        use, over the region's flows on it), the link fills with the faster flow on it and the
        bottleneck test adds it to the region, which is filled again: in a tree all-reduce
        over WAN links, a long message of the last level meeting the next level's chunks, a
        third of the large re-ratings' work. Taking such flows in at once saves that round.
        Any region is right (the bottleneck test decides what joins it); only large regions
        do this, where one round more costs most.
        """
        on_link, usable = self._on_link, self._capacity
        found: dict[int, Flow] = {}
        for link in loose:
            flows = on_link[link]
            if len(flows) < 2:
                continue
            inside, used = 0, 0.0
            outside: list[Flow] = []
            for fid, flow in flows.items():
                if fid in region:
                    inside += 1
                else:
                    used += flow.rate
                    outside.append(flow)
            if not inside or not outside:
                continue
            most = (usable[link] - used) / inside * (1 + TOLERANCE)
            for flow in outside:
                if flow.rate > most:
                    found[flow.id] = flow
        return found

    def _apply(self, region: dict[int, Flow], rates: dict[int, float],
               bottleneck: dict[int, int]) -> None:
        """Give the region's flows their new rates and finish times (the caller arms the timer)."""
        self.flows_rerated += len(region)
        self._bottleneck.update(bottleneck)
        now = self.env.now
        load, heap, push = self._load, self._finish_heap, heapq.heappush
        crowded = COMPACT_STALE * (len(self._bottleneck) + COMPACT_SLACK)  # see _push_finish
        for fid, flow in region.items():
            rate = rates[fid]
            old = flow.rate
            if rate == old:
                continue  # same rate, same finish time: its heap entry stays valid
            remaining = flow.remaining - old * (now - flow.last_s)
            flow.remaining = remaining = remaining if remaining > 0.0 else 0.0
            flow.last_s = now
            delta = rate - old
            for link in flow.rated_links:
                load[link] += delta
            flow.rate = rate
            if flow.ack_links:
                self._shift_acks(flow, rate - old)
            flow.version = version = flow.version + 1
            if rate > 0:  # (_push_finish, inline: the heap's bound does not move in this loop)
                push(heap, (now + remaining / rate, fid, version, flow))
                if len(heap) > crowded:
                    self._compact_finishes()


    def _fill(self, region: dict[int, Flow],
              ) -> tuple[dict[int, float], dict[int, int], set[int]]:
        """Progressive filling of the flows in ``region``; every other flow keeps its rate.

        Returns each region flow's new rate (bytes/s), the link that froze it, and the region's
        links that also carry a flow outside it (the filling counts them anyway): the only
        links, besides the seed links, where :meth:`_failures` can find such a flow.
        """
        if len(region) >= self.vector_min_flows:
            return self._fill_arrays(region)
        members: dict[int, list[Flow]] = {}  # link -> region flows on it
        for flow in region.values():
            for link in flow.rated_links:
                if link in members:
                    members[link].append(flow)
                else:
                    members[link] = [flow]
        # Every unfrozen flow has the same rate at each moment, so the next link to fill is the
        # one with the smallest fair share: (capacity left) / (unfrozen flows on it). Shares only
        # grow as flows freeze, so stale heap entries are smaller than the truth.
        capacity: dict[int, float] = {}
        unfrozen: dict[int, int] = {}
        heap: list[tuple[float, int]] = []
        shared: set[int] = set()  # links with a flow outside the region
        on_link, load, usable = self._on_link, self._load, self._capacity
        for link, flows in members.items():
            count = len(flows)
            if count == len(on_link[link]):
                left = usable[link]  # the whole link is being re-rated
            else:  # minus what the flows outside the region use
                left = usable[link] - (load[link] - sum([f.rate for f in flows]))
                shared.add(link)
            capacity[link] = left
            unfrozen[link] = count
            heap.append((left / count if left > 0 else 0.0, link))
        capped: list[tuple[float, int]] = []  # (cap, private link) of the capped flows
        caps = self._caps
        if caps:  # (see _set_cap; the order their private links would pop from the heap)
            for fid in region:
                if fid in caps:
                    capped.append((caps[fid], ~fid))
            capped.sort()
        rates: dict[int, float] = {}
        bottleneck: dict[int, int] = {}
        first_share, first = min(heap)  # the real link that fills first
        if len(members[first]) == len(region):
            # Every flow crosses it, e.g. flows sharing one WAN link or one uplink
            if not capped:  # all freeze there at one share (the heap's first pop below)
                for fid in region:
                    rates[fid] = first_share
                    bottleneck[fid] = first
                return rates, bottleneck, shared
            if self._fill_one_link(region, first, first_share, capacity[first], capped, heap,
                                   rates, bottleneck):
                return rates, bottleneck, shared
        for cap, private in capped:  # a capped flow's private link, after its real ones
            members[private] = [region[~private]]
            capacity[private] = cap
            unfrozen[private] = 1
            heap.append((cap, private))
        heapq.heapify(heap)
        pop, push, tie = heapq.heappop, heapq.heappush, FILL_TIE
        todo = len(region)
        while todo:  # (once every flow is frozen, every link left in the heap has none unfrozen)
            share, link = pop(heap)
            count = unfrozen[link]
            if count == 0:
                continue
            left = capacity[link]
            actual = left / count if left > 0 else 0.0
            if actual > share * tie + 1e-300:
                push(heap, (actual, link))
                continue
            for flow in members[link]:
                fid = flow.id
                if fid in rates:
                    continue
                rates[fid] = actual
                bottleneck[fid] = link
                todo -= 1
                for other in flow.rated_links:
                    capacity[other] -= actual
                    unfrozen[other] -= 1
        return rates, bottleneck, shared

    @staticmethod
    def _fill_one_link(region: dict[int, Flow], link: int, share: float, left: float,
                       capped: list[tuple[float, int]], entries: list[tuple[float, int]],
                       rates: dict[int, float], bottleneck: dict[int, int]) -> bool:
        """:meth:`_fill` when every flow of ``region`` crosses ``link``, the first to fill.

        Water-filling on one link with per-flow caps: the flows whose cap is below the level
        freeze at their caps, lowest first, and the rest share what they leave, all in one
        pass over the caps instead of the heap's pops. ``share`` is the link's entry in the
        heap (``left`` bytes/s over the region's flows), ``capped`` the (cap, private link)
        entries of the capped flows in the heap's order, ``entries`` every real link's entry.
        The steps are the heap's, in its order and with its arithmetic (a cap pops before the
        link's entry when it is not above it: a private link's number is negative; a stale
        entry is pushed again at the share left), so the rates and bottlenecks are the same to
        the bit. The tcp transport's paced rounds make this the common region: a connection's
        cap rise takes capacity from the others on its uplink (docs/performance.md).

        Fills ``rates`` and ``bottleneck`` (bytes/s and the link that froze each flow) and
        returns True; False, with both untouched, when another link's entry would pop before
        ``link``'s last one (its level rose past it as capped flows froze below it): then the
        heap decides.
        """
        count = len(region)
        entry = share  # the link's entry in the heap
        frozen: list[tuple[float, int]] = []  # the caps that pop before the link's last entry
        actual = 0.0
        for cap, private in capped:
            if cap > entry:  # the link's entry pops first
                actual = left / count if left > 0 else 0.0
                if actual <= entry * FILL_TIE + 1e-300:
                    break  # the flows left freeze there
                entry = actual  # stale: pushed again at its share now
                if cap > entry:
                    break  # (and popped again: they freeze there)
            frozen.append((cap, private))  # the cap pops first: its flow freezes at it
            left -= cap
            count -= 1
        else:
            if count:  # (else every flow froze at its cap)
                actual = left / count if left > 0 else 0.0
                if actual > entry * FILL_TIE + 1e-300:
                    entry = actual  # (pushed again, then popped at the same share)
        if entry != share:  # (else: no other link's entry is below the first one's)
            for other_share, other in entries:
                if other != link and (other_share, other) < (entry, link):
                    return False
        for cap, private in frozen:
            rates[~private] = cap
            bottleneck[~private] = private
        for fid in region:
            if fid not in rates:
                rates[fid] = actual
                bottleneck[fid] = link
        return True

    def _fill_arrays(self, region: dict[int, Flow],
                     ) -> tuple[dict[int, float], dict[int, int], set[int]]:
        """:meth:`_fill` with numpy: the same allocation, one water level per pass.

        The region is a sparse flow x link incidence (``inc_flow[i]`` crosses ``inc_link[i]``,
        the region's links renumbered 0..L-1 in increasing order in ``links``). Each pass
        computes every link's fair share (capacity left / unfrozen flows on it) at once, takes
        the lowest as the water level and freezes every unfrozen flow that crosses a link at
        that level (within the heap's 1e-12 tie slack). A flow crossing several such links takes
        the share of the one with the smallest (share, link index), the link :meth:`_fill`'s
        heap would pop first, and that link is its bottleneck. The capacity the frozen flows
        take is then subtracted from their links. Passes = distinct bottleneck levels (a handful
        for the collectives' regions), each O(incidences left) in numpy.

        The arithmetic is :meth:`_fill`'s up to the order of subtractions (a link loses the
        rates of the flows frozen in one pass as one sum, not one by one), so rates agree to
        rounding (tests: completion times within 1e-9 of the oracle's and of :meth:`_fill`'s).
        """
        self.array_fills += 1
        flows = list(region.values())
        n = len(flows)
        per_flow = [flow.rated_links for flow in flows]
        lengths = np.fromiter(map(len, per_flow), dtype=np.intp, count=n)
        flat = np.fromiter(chain.from_iterable(per_flow), dtype=np.intp)
        # the region's links in increasing order, and each incidence's slot among them, without
        # sorting: mark them in a scratch array the size of the network (cleared at once)
        seen, slot = self._link_scratch()
        seen[flat] = True
        links = np.flatnonzero(seen)
        seen[links] = False
        count = len(links)
        slot[links] = np.arange(count)
        inc_link = slot[flat]
        inc_flow = np.repeat(np.arange(n), lengths)
        crossing = np.bincount(inc_link, minlength=count)  # region flows on each link
        left = self._capacity_array[links]  # (a copy)
        flows_on = map(self._on_link.__getitem__, links.tolist())
        whole = crossing == np.fromiter(map(len, flows_on), dtype=np.intp, count=count)
        partial = np.flatnonzero(~whole)
        if partial.size:  # minus what the flows outside the region use
            old = np.fromiter([flow.rate for flow in flows], dtype=float, count=n)
            inside = np.bincount(inc_link, weights=old[inc_flow], minlength=count)
            load = self._load
            outside = np.array([load[i] for i in links[partial].tolist()]) - inside[partial]
            left[partial] -= outside
        if self._caps:  # a capped flow's private link (see _set_cap), as one more slot
            caps = self._caps
            capped = [i for i, flow in enumerate(flows) if flow.id in caps]
            if capped:
                k = len(capped)
                inc_link = np.concatenate([inc_link, np.arange(count, count + k)])
                inc_flow = np.concatenate([inc_flow, np.array(capped, dtype=np.intp)])
                order = np.argsort(inc_flow, kind="stable")  # (a flow's incidences adjacent)
                inc_link, inc_flow = inc_link[order], inc_flow[order]
                left = np.concatenate([left, [caps[flows[i].id] for i in capped]])
                crossing = np.concatenate([crossing, np.ones(k, dtype=crossing.dtype)])
                links = np.concatenate([links, [~flows[i].id for i in capped]])
                count += k
        unfrozen = crossing.astype(float)
        rate = np.empty(n)
        held = np.empty(n, dtype=np.intp)  # slot of each flow's bottleneck link
        frozen = np.zeros(n, dtype=bool)
        share = np.empty(count)
        while inc_flow.size:
            share.fill(np.inf)  # (a link with no unfrozen flow never fills)
            np.divide(np.maximum(left, 0.0), unfrozen, out=share, where=unfrozen > 0)
            level = share.min()
            hit = share[inc_link] <= level * FILL_TIE + 1e-300
            new, at = inc_flow[hit], inc_link[hit]  # (flows in order: repeats are adjacent)
            if new.size > 1 and (new[1:] == new[:-1]).any():
                # a flow on several full links: the smallest (share, link) freezes it
                order = np.lexsort((at, share[at], new))
                new, at = new[order], at[order]
                first = np.ones(new.size, dtype=bool)
                np.not_equal(new[1:], new[:-1], out=first[1:])
                new, at = new[first], at[first]
            rate[new] = share[at]
            held[new] = at
            frozen[new] = True
            done = frozen[inc_flow]  # the incidences of the flows frozen in this pass
            taken = inc_link[done]
            left -= np.bincount(taken, weights=rate[inc_flow[done]], minlength=count)
            unfrozen -= np.bincount(taken, minlength=count)
            keep = ~done
            inc_flow, inc_link = inc_flow[keep], inc_link[keep]
        fids = list(region)
        return (dict(zip(fids, rate.tolist())), dict(zip(fids, links[held].tolist())),
                set(links[partial].tolist()))

    def _link_scratch(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-link scratch arrays of :meth:`_fill_arrays` (a mark, all False, and a slot)."""
        if self._scratch is None:
            links = len(self._on_link)
            self._scratch = (np.zeros(links, dtype=bool), np.zeros(links, dtype=np.intp))
        return self._scratch

    def _failures(self, region: dict[int, Flow], rates: dict[int, float],
                  bottleneck: dict[int, int], seed_links: dict[int, None],
                  loose: Iterable[int], shared: Container[int],
                  ) -> dict[int, Flow]:
        """Flows to add to ``region`` because someone fails the bottleneck test.

        A region flow fails when a flow outside is faster on the link that froze it; that faster
        flow joins the region. A flow outside the region fails when no link of its own is full
        with nobody faster on it (the region took capacity from it, or left some unused); it
        joins the region. Only links whose set of flows or whose rates changed can make a flow
        outside fail, and only if its recorded bottleneck is one of them. Flows outside the
        region are searched for on ``loose`` (the seed links that carry one, in order) and on
        the other changed links in ``shared`` (the region's links that carry one): the changed
        links, in order, less those whose flows are all in the region.

        A region flow can fail only where a flow outside the region shares its bottleneck link
        (a link in ``shared``): filling freezes all the flows still unfrozen on a link at once,
        at that link's share, after every flow frozen there earlier at a lower level (up to the
        1e-12 tie slack; the rounding snap moves rates by 1e-12 at most), so the link is full
        and no region flow on it is faster: the test's 1e-9 slack holds. So a *closed* region
        (no flow outside it on its links or on the seed links: ``loose`` and ``shared`` empty)
        needs no test at all, and :meth:`_rerate_region` skips it: no flow outside is on a
        changed link either. About 40% of the large re-ratings on clusters-of-clusters are closed:
        a tree round's chunks alone on their WAN link.
        """
        on_link, usable, held_by = self._on_link, self._capacity, self._bottleneck
        floors: dict[int, float] = {}  # link -> slowest rate it is a bottleneck for (inf: none)

        def floor(link: int) -> float:
            """The slowest rate for which ``link`` is a bottleneck (full, nobody faster)."""
            flow_rates = [rates.get(fid, f.rate) for fid, f in on_link[link].items()]
            if sum(flow_rates) >= usable[link] * (1 - TOLERANCE):
                floors[link] = least = max(flow_rates) * (1 - TOLERANCE)
            else:
                floors[link] = least = math.inf
            return least

        failed: dict[int, Flow] = {}
        changed = seed_links.copy()  # then the links of every region flow whose rate moved
        for fid, flow in region.items():  # (in order, each once: dict.fromkeys of their chain)
            if rates[fid] != flow.rate:
                for link in flow.rated_links:
                    changed[link] = None
        outside: dict[int, list[Flow]] = {}  # link -> its flows outside the region
        for fid in region:
            own = bottleneck[fid]
            if own not in shared:
                continue  # no flow outside the region there: none faster than it (see below)
            if own not in changed and own == held_by.get(fid):
                continue  # same rate, same bottleneck, and nothing changed there
            least = floors.get(own)
            if least is None:
                least = floor(own)
            if rates[fid] < least:
                # ``own`` is full (filling froze the flow there), so someone outside is faster
                limit = rates[fid] * (1 + TOLERANCE)
                if own not in outside:
                    outside[own] = [f for gid, f in on_link[own].items() if gid not in region]
                for other in outside[own]:
                    if other.rate > limit:
                        failed[other.id] = other
        moved = islice(changed, len(seed_links), None)  # (changed lists the seed links first)
        for link in chain(loose, [link for link in moved if link in shared]):
            flows = on_link[link]
            for fid in flows:
                if fid in region or fid in failed or held_by[fid] not in changed:
                    continue
                flow = flows[fid]
                rate = flow.rate
                for candidate in flow.rated_links:
                    least = floors.get(candidate)
                    if rate >= (floor(candidate) if least is None else least):
                        bottleneck[fid] = candidate
                        break
                else:
                    failed[fid] = flow
        return failed

    def _component(self, seed_links: dict[int, None]) -> dict[int, Flow]:
        """Flows reachable from ``seed_links`` through shared links."""
        seen_links = set(seed_links)
        stack = list(dict.fromkeys(seed_links))
        flows: dict[int, Flow] = {}
        while stack:
            link = stack.pop()
            for fid, flow in self._on_link[link].items():
                if fid in flows:
                    continue
                flows[fid] = flow
                for other in flow.rated_links:
                    if other not in seen_links:
                        seen_links.add(other)
                        stack.append(other)
        return flows

    # -- ACK demand ------------------------------------------------------------------------

    def _add_acks(self, flow: Flow) -> bool:
        """Put a new flow's ACKs on its reverse path; True when no data crosses those links."""
        back = self.route_back(flow)
        flow.ack_links = links = back[0] if back is not None else ()
        quiet = True
        users, on_link = self._ack_users, self._on_link
        for link in links:
            users[link][flow.id] = flow
            if on_link[link]:
                quiet = False
        return quiet

    def _remove_acks(self, flow: Flow) -> None:
        """Take a stopping flow's ACKs off its reverse path (its rate still counts there)."""
        users = self._ack_users
        for link in flow.ack_links:
            del users[link][flow.id]
        self._shift_acks(flow, -flow.rate)

    def _shift_acks(self, flow: Flow, delta_Bps: float) -> None:
        """The rate of ``flow`` moved by ``delta_Bps``: so does the ACK demand on its way back.

        ``flow.rate`` is already the new rate (or the flow has left the ACK users). Links that
        carry data lose (or gain) ``ack_fraction * delta_Bps`` of capacity and are remembered in
        ``_moved`` for the next pass of :meth:`_reallocate`. A change much larger than what is
        left (a fast flow's ACKs leaving a slow link) would leave rounding residue of the fast
        flow's size, so the sum is then taken again from the remaining users.
        """
        if not delta_Bps:
            return
        ack_rate, reserved, usable, on_link = (self._ack_rate, self._reserved, self._usable,
                                               self._on_link)
        fraction, slack = self.ack_fraction, self.ack_slack
        size = abs(delta_Bps)
        for link in flow.ack_links:
            total = ack_rate[link] + delta_Bps
            if size > CANCELLATION * abs(total):
                total = sum([f.rate for f in self._ack_users[link].values()])
            ack_rate[link] = total
            capacity = usable[link]
            want = fraction * total
            if want > MAX_ACK_SHARE * capacity:
                want = MAX_ACK_SHARE * capacity
            if on_link[link]:
                if abs(want - reserved[link]) <= slack * capacity:
                    continue  # too small to re-rate the link's flows for (see ack_slack)
                self._moved.setdefault(link, self._capacity[link])
            reserved[link] = want
            self._capacity[link] = self._capacity_array[link] = capacity - want

    # -- completions -----------------------------------------------------------------------

    def _push_finish(self, flow: Flow, finish_s: float) -> None:
        """Enter a (re-)rated flow's finish time; its older entries go stale.

        Stale entries are dropped when they reach the top; when they outnumber the live ones
        ``COMPACT_STALE`` to one, the heap is rebuilt from the live ones (the same order, since
        entries never tie: (time, flow id, version) is unique), so pops stay O(log live flows).
        """
        heap = self._finish_heap
        heapq.heappush(heap, (finish_s, flow.id, flow.version, flow))
        if len(heap) > COMPACT_STALE * (len(self._bottleneck) + COMPACT_SLACK):
            self._compact_finishes()

    def _compact_finishes(self) -> None:
        """Rebuild the finish-time heap from its live entries (see :meth:`_push_finish`)."""
        heap = self._finish_heap
        heap[:] = [e for e in heap if e[2] == e[3].version and e[3].state == "sending"]
        heapq.heapify(heap)
        self.heap_compactions += 1

    def _arm_timer(self) -> None:
        """Set the finish timer for the earliest live entry, unless one is set at or before it.

        A :class:`~sim.timer.Timer` (queued where the ``simpy.Timeout`` it replaces was, so the
        run is event for event the same); one set earlier and overtaken goes stale (it fires
        and does nothing).
        """
        heap = self._finish_heap
        while heap:
            _, _, version, flow = heap[0]
            if version == flow.version and flow.state == "sending":
                break
            heapq.heappop(heap)  # stale
        if not heap or heap[0][0] >= self._timer_at:
            return
        self._timer_at = at = heap[0][0]
        delay = at - self.env.now
        self._timer = Timer(self.env, delay if delay > 0.0 else 0.0, None, self._on_timer)

    def _on_timer(self, timer: Timer) -> None:
        if timer is not self._timer:
            return  # overtaken by a timer set later for an earlier finish
        self._timer, self._timer_at = None, math.inf
        now = self.env.now
        heap = self._finish_heap
        done: list[Flow] = []
        # the timer may land a rounding error early (max(1.0, now) without the builtin's call)
        horizon = now + 1e-12 * (now if now > 1.0 else 1.0)
        while heap and heap[0][0] <= horizon:
            _, _, version, flow = heapq.heappop(heap)
            if flow.state == "sending" and version == flow.version:
                more = self._next_chunk(flow, now) if flow.left > 0 else 0.0
                if more > 0:  # the transport sends on at once: same links, same rate
                    flow.remaining, flow.last_s = more, now
                    flow.version += 1
                    self._push_finish(flow, now + more / flow.rate)
                else:
                    done.append(flow)
        if done:
            self._detach(done)  # re-rates the survivors that shared links with them
            for flow in done:
                self._transmitted(flow)
        if self._pending_event is None:  # else the coalesced re-rating arms it
            self._arm_timer()
