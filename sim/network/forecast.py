"""What the transport will charge a message, in closed form, for planners that run no engine.

A scheduler (SkipPipe's conflict search, a node-to-stage allocation) prices thousands of
candidate routes before simulated time starts, so it cannot send trial messages through the
engine. This module answers for it with the transport's own rules, for a message whose
connection has its path to itself (no other flow on its links: what the ``ideal`` model does
with every flow; a lower bound under ``maxmin``):

- ``fluid``: a message sent at ``t`` arrives at ``t + latency_s + nbytes / bandwidth_Bps``
  (the papers' simulators; SkipPipe's emulator prices a hop this way);
- ``tcp`` (:mod:`sim.network.tcp`): one connection per ordered node pair, whose state decides.
  A new connection, or one idle for longer than its RTO (RTT + ``min_rto_s``; its window cut by
  :func:`~sim.network.tcp.idle_restart_window_bytes`), ramps up in slow start
  (:func:`~sim.network.tcp.slow_start_send_time_s`, state after it from
  :func:`~sim.network.tcp.slow_start_window_after`); a warm one sends at the path's rate; the
  window cap ``max_window_bytes / RTT`` bounds both; messages on one connection leave one after
  the other. The message arrives one latency after its last byte left.

:meth:`MessageForecast.cold_s` is the static price of one message on a connection that starts
from the initial window (its first message, or one after an idle gap of many RTOs):
:class:`Connections` follows every connection's state through messages sent in time order.

Approximations (tcp): a warm connection that the window cap limits starts a fresh round with
each message (the transport keeps the previous message's round phase), and a message that ends
inside slow start leaves the window of its last round (the transport also grows it by that
round's bytes when the next message follows within the RTO). Neither arises for messages longer
than the slow-start ramp on paths the cap does not bind. HyStart's early exits
(``hystart_short_rtt_exit``, ``hystart_delay_exit``; both off by default) are not modelled,
nor is the bottleneck buffer (``bottleneck_queue_bytes``, off by default: queueing delay and
CUBIC's loss epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.network.base import Network
from sim.network.tcp import (
    TcpConfig,
    TcpTransport,
    idle_restart_window_bytes,
    slow_start_send_time_s,
    slow_start_window_after,
)


def path_matrices(network: Any, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latency_s, bandwidth_Bps)`` between every ordered pair of nodes, ``(N, N)`` each.

    The unloaded path of ``network``: ``path_latency_s(i, j)`` (one way) and
    ``path_bandwidth_Bps(i, j)`` (the bottleneck's usable capacity, after header overhead).
    The diagonal is 0 s and infinite bandwidth.

    An engine :class:`~sim.network.base.Network` (whose two methods are the base class's) is
    asked each pair's route once and both figures are read from it, as the two methods read
    them: a pair that has not sent keeps no route, so asking the methods one after the other
    would find every route twice (N (N - 1) lookups of ~3 us at 1,000 nodes: seconds).
    """
    latency = np.zeros((num_nodes, num_nodes))
    bandwidth = np.full((num_nodes, num_nodes), np.inf)
    kind = type(network)
    if (issubclass(kind, Network) and kind.path_latency_s is Network.path_latency_s
            and kind.path_bandwidth_Bps is Network.path_bandwidth_Bps):
        route, efficiency = network.route, network.efficiency
        for i in range(num_nodes):
            lat_row, bw_row = latency[i], bandwidth[i]
            for j in range(num_nodes):
                if i != j:
                    found = route(i, j)
                    if found is None:  # (unreachable: as the two methods answer)
                        lat_row[j], bw_row[j] = math.inf, 0.0
                    else:
                        lat_row[j], bw_row[j] = found[1], found[2] * efficiency
        return latency, bandwidth
    for i in range(num_nodes):
        for j in range(num_nodes):
            if i != j:
                latency[i, j] = network.path_latency_s(i, j)
                bandwidth[i, j] = network.path_bandwidth_Bps(i, j)
    return latency, bandwidth


class MessageForecast:
    """Delivery times of messages between ``N`` nodes under one transport.

    Parameters
    ----------
    latency_s:
        ``(N, N)`` one-way latency, seconds; the round trip of ``i -> j`` is
        ``latency_s[i, j] + latency_s[j, i]``.
    bandwidth_Bps:
        ``(N, N)`` usable rate of a lone flow, bytes per second.
    tcp:
        The ``tcp`` transport's parameters; ``None``: the ``fluid`` transport.
    """

    def __init__(self, latency_s: np.ndarray, bandwidth_Bps: np.ndarray,
                 tcp: TcpConfig | None = None) -> None:
        self.latency_s = np.asarray(latency_s, dtype=float)
        self.bandwidth_Bps = np.asarray(bandwidth_Bps, dtype=float)
        if self.latency_s.shape != self.bandwidth_Bps.shape or self.latency_s.ndim != 2:
            raise ValueError("latency_s and bandwidth_Bps: must be two (N, N) arrays of one shape")
        self.rtt_s = self.latency_s + self.latency_s.T
        self.tcp = tcp

    @classmethod
    def of_network(cls, network: Any, num_nodes: int) -> MessageForecast:
        """The forecast for an engine network: its paths and, for ``tcp``, its TCP settings."""
        tcp = network.tcp if isinstance(network, TcpTransport) and network.is_tcp else None
        return cls(*path_matrices(network, num_nodes), tcp=tcp)

    @property
    def transport(self) -> str:
        """``"tcp"`` or ``"fluid"``."""
        return "fluid" if self.tcp is None else "tcp"

    @property
    def num_nodes(self) -> int:
        """N."""
        return len(self.latency_s)

    def cold_s(self, nbytes: float) -> np.ndarray:
        """``(N, N)`` seconds from sending ``nbytes`` to its arrival, on a cold connection.

        ``fluid``: ``latency_s + nbytes / bandwidth_Bps``. ``tcp``: the first message of a
        connection (with the handshake's RTT when ``handshake``), which is also what a message
        pays after an idle gap long enough to bring the window back to IW. Zero on the diagonal.
        """
        n = self.num_nodes
        if self.tcp is None:
            with np.errstate(divide="ignore"):
                cost = self.latency_s + nbytes / self.bandwidth_Bps
        else:
            cost = np.zeros((n, n))
            for i in range(n):
                for j in range(n):
                    if i != j:
                        cost[i, j] = Connections(self).send(i, j, nbytes, 0.0)
        np.fill_diagonal(cost, 0.0)
        return cost

    def connections(self) -> Connections:
        """A fresh set of connections (all cold) to send messages on in time order."""
        return Connections(self)


@dataclass
class _ConnectionState:
    cwnd_bytes: float
    slow_start: bool
    free_s: float      # when its last byte left (the next message may start)


class Connections:
    """Every ordered pair's connection state, followed through messages sent in time order.

    ``fluid`` keeps no state: messages between one pair do not wait for each other.
    """

    def __init__(self, forecast: MessageForecast) -> None:
        self.forecast = forecast
        self._state: dict[tuple[int, int], _ConnectionState] = {}

    def send(self, src: int, dst: int, nbytes: float, ready_s: float) -> float:
        """Send ``nbytes`` from ``src`` to ``dst`` at ``ready_s``; return its arrival time.

        Calls must come in non-decreasing ``ready_s`` (the order the transport sees them).
        """
        f = self.forecast
        latency = float(f.latency_s[src, dst])
        rate = float(f.bandwidth_Bps[src, dst])
        tcp = f.tcp
        if src == dst:
            return ready_s
        if tcp is None:
            return ready_s + latency + nbytes / rate
        rtt = float(f.rtt_s[src, dst])
        conn = self._state.get((src, dst))
        if conn is None:
            conn = self._state[(src, dst)] = _ConnectionState(
                cwnd_bytes=tcp.initial_window_bytes, slow_start=True, free_s=ready_s)
            start = ready_s + (rtt if tcp.handshake else 0.0)
        else:
            start = max(ready_s, conn.free_s)
            rto = rtt + tcp.min_rto_s
            if tcp.slow_start_after_idle and rtt > 0 and start - conn.free_s > rto:
                conn.cwnd_bytes = idle_restart_window_bytes(
                    conn.cwnd_bytes, start - conn.free_s, rto, tcp.initial_window_bytes)
                conn.slow_start = True
        cap = tcp.window_cap_bytes
        if rtt <= 0 or rate == np.inf:
            send = nbytes / rate
        elif conn.slow_start:
            send = slow_start_send_time_s(nbytes, rtt, rate, conn.cwnd_bytes, cap)
            conn.cwnd_bytes, conn.slow_start = slow_start_window_after(
                nbytes, rtt, rate, conn.cwnd_bytes, cap)
        elif rate * rtt <= cap:
            send = nbytes / rate          # past slow start, the window does not bind
        else:
            send = slow_start_send_time_s(nbytes, rtt, rate, cap, cap)  # a capped window per RTT
        conn.free_s = start + send
        return conn.free_s + latency
