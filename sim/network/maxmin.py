"""The ``maxmin`` network: flow-level max-min fair sharing.

Every flow in the sending state gets a rate such that no flow can go faster without slowing a flow
that is already as slow or slower (max-min fairness). Rates come from progressive filling: raise
all unfrozen flows together until some link is full, freeze the flows through it, repeat.

The allocation splits over connected components of the "flow crosses link" graph, so when a flow
starts or ends only the flows of its component are re-rated; everything else keeps its rate and
its completion time. Completion times live in one heap with a version per flow (a re-rated flow
pushes a new entry, the old one goes stale) and one SimPy timer waits for the earliest of them,
so re-rating a component costs heap pushes, not SimPy events.
"""

from __future__ import annotations

import heapq
import math

from sim.network.base import Flow, Network


class MaxMinNetwork(Network):
    """Max-min fair bandwidth sharing with incremental, per-component re-rating."""

    model_name = "maxmin"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._on_link: list[dict[int, Flow]] = [dict() for _ in self.link_names]
        self._finish_heap: list[tuple[float, int, int, Flow]] = []  # (time_s, flow id, version)
        self._timer_at = math.inf
        self._timer_token = 0
        self.reallocations = 0
        self.flows_rerated = 0

    # -- flow life -------------------------------------------------------------------------

    def _start(self, flow: Flow) -> None:
        if flow.nbytes == 0 or not flow.links:
            self._transmitted(flow)
            return
        for link in flow.links:
            self._on_link[link][flow.id] = flow
        self._reallocate(flow.links)

    def _stop(self, flow: Flow) -> None:
        self._detach([flow])

    def _detach(self, flows: list[Flow]) -> None:
        """Take sending flows off their links and re-rate the flows they shared links with."""
        now = self.env.now
        touched: list[int] = []
        for flow in flows:
            flow.remaining = max(0.0, flow.remaining - flow.rate * (now - flow.last_s))
            flow.last_s = now
            flow.version += 1
            for link in flow.links:
                del self._on_link[link][flow.id]
                touched.append(link)
        self._reallocate(touched)

    # -- the allocation --------------------------------------------------------------------

    def _component(self, seed_links: tuple[int, ...] | list[int]) -> tuple[list[int], list[Flow]]:
        """Links and flows reachable from ``seed_links`` through shared links."""
        seen_links = set(seed_links)
        stack = list(dict.fromkeys(seed_links))
        links: list[int] = []
        flows: dict[int, Flow] = {}
        while stack:
            link = stack.pop()
            links.append(link)
            for fid, flow in self._on_link[link].items():
                if fid in flows:
                    continue
                flows[fid] = flow
                for other in flow.links:
                    if other not in seen_links:
                        seen_links.add(other)
                        stack.append(other)
        return links, list(flows.values())

    def _reallocate(self, seed_links: tuple[int, ...] | list[int]) -> None:
        links, flows = self._component(seed_links)
        if not flows:
            return
        now = self.env.now
        self.reallocations += 1
        self.flows_rerated += len(flows)
        for flow in flows:  # bring progress up to now at the old rates
            flow.remaining = max(0.0, flow.remaining - flow.rate * (now - flow.last_s))
            flow.last_s = now
        # Progressive filling. Every unfrozen flow has the same rate at each moment, so the next
        # link to fill is the one with the smallest fair share cap / (unfrozen flows on it).
        # Shares only grow as flows freeze, so stale heap entries are smaller than the truth.
        capacity = {link: self.capacity_Bps[link] * self.efficiency for link in links}
        unfrozen = {link: len(self._on_link[link]) for link in links}
        heap = [(capacity[link] / unfrozen[link], link) for link in links if unfrozen[link]]
        heapq.heapify(heap)
        frozen: set[int] = set()
        while heap:
            share, link = heapq.heappop(heap)
            count = unfrozen[link]
            if count == 0:
                continue
            actual = max(capacity[link], 0.0) / count
            if actual > share * (1 + 1e-12) + 1e-300:
                heapq.heappush(heap, (actual, link))
                continue
            for fid, flow in self._on_link[link].items():
                if fid in frozen:
                    continue
                frozen.add(fid)
                flow.rate = actual
                for other in flow.links:
                    capacity[other] -= actual
                    unfrozen[other] -= 1
        for flow in flows:
            flow.version += 1
            if flow.rate > 0:
                finish = now + flow.remaining / flow.rate
                heapq.heappush(self._finish_heap, (finish, flow.id, flow.version, flow))
        self._arm_timer()

    # -- completions -----------------------------------------------------------------------

    def _arm_timer(self) -> None:
        heap = self._finish_heap
        while heap and (heap[0][3].state != "sending" or heap[0][2] != heap[0][3].version):
            heapq.heappop(heap)  # stale
        if not heap or heap[0][0] >= self._timer_at:
            return
        self._timer_at = heap[0][0]
        self._timer_token += 1
        token = self._timer_token
        timer = self.env.timeout(max(0.0, heap[0][0] - self.env.now))
        timer.callbacks.append(lambda _ev: self._on_timer(token))

    def _on_timer(self, token: int) -> None:
        if token != self._timer_token:
            return
        self._timer_at = math.inf
        now = self.env.now
        heap = self._finish_heap
        done: list[Flow] = []
        horizon = now + 1e-12 * max(1.0, now)  # the timer may land a rounding error early
        while heap and heap[0][0] <= horizon:
            _, _, version, flow = heapq.heappop(heap)
            if flow.state == "sending" and version == flow.version:
                done.append(flow)
        if done:
            self._detach(done)  # re-rates the survivors of their components
            for flow in done:
                self._transmitted(flow)
        self._arm_timer()
