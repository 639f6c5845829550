"""A bottleneck's drop-tail buffer for the ``tcp`` transport (``TcpConfig.bottleneck_queue_bytes``).

Without it the transport gives a connection that has filled its pipe the fluid model's max-min
share, whatever its window. A real bottleneck has a buffer (a router's drop-tail queue: Linux's
``tc tbf limit``, ns-3's device queue), and while the connections' windows together exceed the
pipe the excess stands in that buffer and the ACK clock sets the rates (Jacobson 1988; the
fluid TCP models of Misra, Gong and Towsley 2000). With ``n`` connections of windows ``W_i``
(bytes in flight) and round-trip times ``RTT_i`` through one bottleneck of usable capacity
``C``, the queue holds ``C d`` bytes, where the queueing delay ``d`` solves

    sum_i W_i / (RTT_i + d) = C      (d = 0 when sum_i W_i / RTT_i <= C),

so each connection moves ``W_i / (RTT_i + d)`` (its window per round trip, the round trip
grown by the queue). With equal RTTs ``d = sum_i W_i / C - RTT``: the windows beyond the
bandwidth-delay product ``B = C RTT`` stand in the queue. When they exceed ``B + Q`` (``Q`` the
buffer) the buffer overflows: drop-tail drops what arrives, from every connection sending then,
so every connection of the bottleneck has a loss event, at most one per round trip (a loss
epoch: CUBIC reduces once per window of data), and its congestion control answers (CUBIC's
multiplicative decrease and its window growth after it, in :mod:`sim.network.tcp`).

This module holds the queue's state and its pure functions; :class:`sim.network.tcp.TcpTransport`
decides when a round opens and what it sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.network.tcp import Connection

NEWTON_STEPS = 100
"""At most this many Newton steps for ``d`` when the RTTs differ (it stops when ``d`` stops
growing, after a few: quadratic convergence from a tight lower bound)."""


def queueing_delay_s(windows_bytes: list[float], rtts_s: list[float],
                     capacity_Bps: float) -> float:
    """The queueing delay ``d`` (s) at which the windows, ACK-clocked, fill the bottleneck.

    Solves ``f(d) = sum_i W_i / (RTT_i + d) - C = 0`` for ``d >= 0`` (module docstring); 0
    when the windows do not fill the pipe. Equal RTTs have the closed form
    ``sum W / C - RTT``. Unequal ones lie between the closed forms of the largest and the
    smallest RTT, ``sum W / C - max RTT <= d <= sum W / C - min RTT`` (each term is bounded by
    the one with that RTT), and are solved by Newton's method from the lower bound (or 0):
    ``f`` falls and is convex, so each step lands on the root's left, nearer to it, and the
    steps stop when ``d`` stops growing (to the last bits of a double; deterministic).
    Every RTT must be > 0 and ``capacity_Bps`` > 0.
    """
    pairs = list(zip(windows_bytes, rtts_s, strict=True))
    if sum(w / r for w, r in pairs) <= capacity_Bps:
        return 0.0
    first = rtts_s[0]
    if all(r == first for r in rtts_s):
        return max(0.0, sum(windows_bytes) / capacity_Bps - first)
    delay = max(0.0, sum(windows_bytes) / capacity_Bps - max(rtts_s))
    for _ in range(NEWTON_STEPS):
        excess = -capacity_Bps  # f(d)
        slope = 0.0             # -f'(d)
        for w, r in pairs:
            rate = w / (r + delay)
            excess += rate
            slope += rate / (r + delay)
        step = delay + excess / slope
        if not step > delay:
            break
        delay = step
    return delay


class DropTail:
    """One bottleneck link's buffer and the connections whose head message crosses it there.

    ``link`` is the link's id, ``buffer_bytes`` the buffer in payload bytes; ``conns`` the
    connections sending across it with it as their bottleneck, in the order they joined (a
    dict used as an ordered set: iteration is deterministic).
    """

    __slots__ = ("link", "buffer_bytes", "conns", "overflows")

    def __init__(self, link: int, buffer_bytes: float) -> None:
        self.link = link
        self.buffer_bytes = buffer_bytes
        self.conns: dict[Connection, None] = {}
        self.overflows = 0  # instants the buffer overflowed (loss events were set)


class CubicState:
    """A connection's state for the buffer: its bottleneck, the round's queueing delay, CUBIC.

    ``delay_s`` is the queueing delay of the round that is open (its round trip is RTT +
    ``delay_s``); ``w_max_bytes`` CUBIC's W_max (0 until the first loss: the 5% floor of
    growth applies then); ``loss_pending`` a loss event the connection will answer when its
    next round opens (the drop is seen about one round trip after it); ``loss_s`` when it last
    answered one (a loss epoch: no new loss event within one of its round trips after it);
    ``losses`` how many it answered; ``acked_windows`` the windows ACKed since CUBIC's epoch
    began (what its Reno-friendly estimate W_est grows with).
    """

    __slots__ = ("queue", "delay_s", "w_max_bytes", "loss_pending", "loss_s", "losses",
                 "acked_windows")

    def __init__(self) -> None:
        self.queue: DropTail | None = None
        self.delay_s = 0.0
        self.w_max_bytes = 0.0
        self.loss_pending = False
        self.loss_s = -float("inf")
        self.losses = 0
        self.acked_windows = 0.0


def reduced_window_bytes(cwnd_bytes: float, w_max_bytes: float, beta: float,
                         floor_bytes: float) -> tuple[float, float]:
    """CUBIC's answer to a loss event: ``(new cwnd, new W_max)``, bytes.

    RFC 8312 with Linux's fast convergence (``bictcp_recalc_ssthresh``): W_max is the window at
    the loss, or ``(1 + beta) / 2`` of it when the window is below the last W_max (another
    connection took the bandwidth: give it up faster); the window becomes ``beta`` times the
    window at the loss, at least ``floor_bytes`` (Linux: 2 segments).
    """
    w_max = cwnd_bytes * (1 + beta) / 2 if cwnd_bytes < w_max_bytes else cwnd_bytes
    return max(floor_bytes, beta * cwnd_bytes), w_max
