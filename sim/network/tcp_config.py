"""The ``tcp`` transport's parameters (:class:`TcpConfig`), apart from the transport itself.

A scenario's ``[network.tcp]`` table becomes a :class:`TcpConfig`, which travels with the
scenario to the processes of a comparison or a sweep (pickled). Kept out of
:mod:`sim.network.tcp`, which the optional compiled engine compiles (setup.py): a compiled frozen
dataclass cannot be unpickled (its state is set back through ``__setattr__``, which a frozen
dataclass refuses), and nothing here is on the hot path (the transport copies what it reads per
message or round into its own attributes when it is built).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import FieldError

ROUND_MODELS = ("burst", "paced")
"""How a round that waits for its ACKs moves its window (``TcpConfig.rounds``).

``burst``: the window at the model's rate, then off the links until the round's end (two rate
changes per round). ``paced``: on the links for the whole round at a rate cap of window / RTT
(one rate change per round, none while the window does not change); the round that holds the
message's last bytes is a burst in both."""


@dataclass(frozen=True, kw_only=True)
class TcpConfig:
    """TCP parameters of the ``tcp`` transport (defaults: Linux with its default sysctls).

    mss_bytes:
        Payload bytes per segment (1448: 1500-byte MTU, IPv4, TCP with timestamps).
    frame_bytes:
        Bytes on the wire per full segment (1514: plus the Ethernet header). Efficiency is
        ``mss_bytes / frame_bytes``.
    initial_window_segments:
        Initial congestion window, segments (10, RFC 6928 and Linux's default).
    max_window_bytes:
        Largest window a connection can have in flight, bytes (4 MiB: Linux's send-buffer
        autotuning maximum, ``net.ipv4.tcp_wmem``).
    slow_start_after_idle:
        Restart slow start after an idle gap longer than the RTO (Linux's default, 1).
    min_rto_s:
        Floor of the retransmission timeout's variance term, seconds (Linux: 200 ms).
    parallel_streams:
        Connections a transfer is split over (windows times n).
    handshake:
        A cold connection spends one RTT on the handshake before its first byte.
    hystart_short_rtt_exit:
        HyStart's ACK-train exit on paths whose idle gap between rounds is at most 2 ms (ns-3
        and Linux before 5.7; see the module docstring). Off: Linux 5.7+ (the default).
    ack_frame_bytes:
        Bytes on the wire per ACK; 0 (the default) leaves ACKs out. 66 (Ethernet, IPv4, TCP
        with timestamps) with ``segments_per_ack = 3.5`` is what the namespace lab measured.
    segments_per_ack:
        Full segments acknowledged per ACK, on average (3.5: measured on Linux with GRO in the
        namespace lab; its delayed-ACK rule alone would be 2). The ACK demand is
        ``ack_fraction`` of a flow's rate on its reverse path.
    hystart_delay_exit:
        HyStart's delay test for connections whose slow-start bursts queue behind other
        connections' at a shared bottleneck (see the module docstring): slow start ends when a
        round's first segments wait more than eta there, and CUBIC's congestion avoidance
        follows. Only under a model that shares links (``maxmin``).
    hystart_delay_rtt_fraction, hystart_delay_min_s, hystart_delay_max_s:
        The delay test's threshold eta = clamp(min RTT x fraction, min, max): Linux's
        (``tcp_cubic.c``: min RTT / 8 clamped to 4-16 ms) by default; ns-3 3.44 uses the min RTT
        itself clamped to 4 ms - 1 s.
    bottleneck_queue_bytes:
        The drop-tail buffer of every link, wire bytes (Linux ``tc tbf limit``; ns-3's device
        queue: packets x ``frame_bytes``); 0 (the default) models none, as before. Above 0,
        and only under a model that shares links (``maxmin``), a connection sends its window
        per round trip for good (no share once its pipe is full): while the windows through
        its bottleneck exceed the pipe the excess stands in the buffer and the round trip
        grows by the queueing delay; when they exceed pipe + buffer every connection there has
        a loss event, and CUBIC answers (multiplicative decrease beta, W_max, its cubic
        growth). :mod:`sim.network.droptail` and the module docstring.
    bottleneck_queue_s:
        The same buffer given as a time, seconds: each link's buffer is its capacity (wire
        bytes/s) times this, the way router buffers are sized (one RTT of the link's rate), so
        one setting means the same on a 10 Mbit/s and a 10 Gbit/s link. 0 (the default): the
        buffer is ``bottleneck_queue_bytes``; at most one of the two may be above 0.
    rounds:
        How a round that waits for its ACKs moves its window (:data:`ROUND_MODELS`): ``"paced"``
        (window / RTT for the whole round, one rate change per round) or ``"burst"`` (the
        window at the share, then a wait: two). None (the default) is ``"paced"``, or
        ``"burst"`` where ``hystart_delay_exit`` or a bottleneck buffer is on (their rounds are
        bursts); :attr:`round_model` says which. Both give a lone connection the same times
        and the same counts on the ns-3 and delay-line tables (docs/network-model.md, "Paced
        rounds"); paced costs fewer re-ratings where connections share links.
    """

    mss_bytes: int = 1448
    frame_bytes: int = 1514
    initial_window_segments: int = 10
    max_window_bytes: float = 4 * 1024 * 1024
    slow_start_after_idle: bool = True
    min_rto_s: float = 0.2
    parallel_streams: int = 1
    handshake: bool = False
    hystart_short_rtt_exit: bool = False
    ack_frame_bytes: int = 0
    segments_per_ack: float = 3.5
    hystart_delay_exit: bool = False
    hystart_delay_rtt_fraction: float = 0.125
    hystart_delay_min_s: float = 0.004
    hystart_delay_max_s: float = 0.016
    bottleneck_queue_bytes: float = 0.0
    bottleneck_queue_s: float = 0.0
    rounds: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.mss_bytes <= self.frame_bytes:
            raise FieldError("mss_bytes", f"must be in (0, {{frame_bytes}}], got {self.mss_bytes}",
                             refs={"frame_bytes": self.frame_bytes})
        if self.initial_window_segments < 1:
            raise FieldError("initial_window_segments",
                             f"must be >= 1, got {self.initial_window_segments}")
        if not self.max_window_bytes >= self.mss_bytes:
            raise FieldError("max_window_bytes",
                             f"must be >= {{mss_bytes}}, got {self.max_window_bytes}",
                             refs={"mss_bytes": self.mss_bytes})
        if self.min_rto_s < 0:
            raise FieldError("min_rto_s", f"must be >= 0 s, got {self.min_rto_s}")
        if self.parallel_streams < 1:
            raise FieldError("parallel_streams", f"must be >= 1, got {self.parallel_streams}")
        if self.ack_frame_bytes < 0:
            raise FieldError("ack_frame_bytes", f"must be >= 0, got {self.ack_frame_bytes}")
        if not self.segments_per_ack >= 1:
            raise FieldError("segments_per_ack", f"must be >= 1, got {self.segments_per_ack}")
        if not self.hystart_delay_rtt_fraction > 0:
            raise FieldError("hystart_delay_rtt_fraction",
                             f"must be > 0, got {self.hystart_delay_rtt_fraction}")
        if not 0 <= self.hystart_delay_min_s <= self.hystart_delay_max_s:
            raise FieldError("hystart_delay_min_s",
                             f"must be in [0, {{hystart_delay_max_s}}] s, got "
                             f"{self.hystart_delay_min_s}",
                             refs={"hystart_delay_max_s": self.hystart_delay_max_s})
        if not 0 <= self.bottleneck_queue_bytes < math.inf:
            raise FieldError("bottleneck_queue_bytes",
                             f"must be a finite size >= 0 bytes (0: no buffer modelled), got "
                             f"{self.bottleneck_queue_bytes}")
        if not 0 <= self.bottleneck_queue_s < math.inf:
            raise FieldError("bottleneck_queue_s",
                             f"must be a finite time >= 0 s (0: no buffer modelled), got "
                             f"{self.bottleneck_queue_s}")
        if self.bottleneck_queue_bytes > 0 and self.bottleneck_queue_s > 0:
            raise FieldError("bottleneck_queue_s",
                             f"give the buffer as a size or as a time, not both; got "
                             f"{self.bottleneck_queue_s} s and {self.bottleneck_queue_bytes} B")
        if self.rounds is not None and self.rounds not in ROUND_MODELS:
            raise FieldError("rounds", f"must be one of {', '.join(map(repr, ROUND_MODELS))}, "
                                       f"got {self.rounds!r}")
        if self.rounds == "paced" and self.hystart_delay_exit:
            raise FieldError("rounds", "'paced' cannot run with {hystart_delay_exit} (its burst "
                                       "queue is made of burst rounds): use rounds = 'burst'",
                             refs={"hystart_delay_exit": True})
        if self.rounds == "paced" and self.models_bottleneck_buffer:
            queue, size = (("bottleneck_queue_bytes", f"{self.bottleneck_queue_bytes:g} B")
                           if self.bottleneck_queue_bytes > 0 else
                           ("bottleneck_queue_s", f"{self.bottleneck_queue_s * 1e3:g} ms"))
            raise FieldError("rounds", f"'paced' cannot run with a buffer, {{{queue}}} (its "
                                       f"rounds last RTT + the queueing delay): use rounds = "
                                       f"'burst'", refs={queue: size})

    @property
    def models_bottleneck_buffer(self) -> bool:
        """Whether links have a drop-tail buffer (``bottleneck_queue_bytes`` or ``_s`` > 0)."""
        return self.bottleneck_queue_bytes > 0 or self.bottleneck_queue_s > 0

    @property
    def round_model(self) -> str:
        """The round model that runs: ``rounds``, or by default ``"paced"``.

        Burst by default where an option that needs burst rounds is on (HyStart's delay exit, a
        bottleneck buffer).
        """
        if self.rounds is not None:
            return self.rounds
        return "burst" if self.hystart_delay_exit or self.models_bottleneck_buffer else "paced"

    def bottleneck_buffer_bytes(self, capacity_Bps: float) -> float:
        """The drop-tail buffer of a link of ``capacity_Bps`` (wire bytes/s), wire bytes.

        ``bottleneck_queue_bytes`` when the buffer is a size, else the link's capacity times
        ``bottleneck_queue_s`` (100 Mbit/s = 12.5e6 B/s for 40 ms: 500,000 B).
        """
        if self.bottleneck_queue_bytes > 0:
            return self.bottleneck_queue_bytes
        return capacity_Bps * self.bottleneck_queue_s

    def hystart_delay_threshold_s(self, min_rtt_s: float) -> float:
        """HyStart's delay threshold eta for a path of ``min_rtt_s``, seconds."""
        return min(max(min_rtt_s * self.hystart_delay_rtt_fraction, self.hystart_delay_min_s),
                   self.hystart_delay_max_s)

    @property
    def efficiency(self) -> float:
        """Payload bytes per wire byte."""
        return self.mss_bytes / self.frame_bytes

    @property
    def ack_fraction(self) -> float:
        """ACK bytes on the reverse path per payload byte, in usable (payload) bytes.

        ``ack_frame_bytes / (segments_per_ack * frame_bytes)``: per ``segments_per_ack``
        segments (``frame_bytes`` each on the wire, ``mss_bytes`` of payload) one ACK of
        ``ack_frame_bytes``; capacities count payload, so both sides scale by the efficiency.
        """
        return self.ack_frame_bytes / (self.segments_per_ack * self.frame_bytes)

    @property
    def initial_window_bytes(self) -> float:
        """Initial window of a transfer's connections together, bytes."""
        return float(self.initial_window_segments * self.mss_bytes * self.parallel_streams)

    @property
    def window_cap_bytes(self) -> float:
        """Largest in-flight window of a transfer's connections together, bytes."""
        return float(self.max_window_bytes * self.parallel_streams)
