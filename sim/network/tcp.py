"""The ``tcp`` transport: what TCP does to a message on top of a fluid sharing model.

A fluid model (``ideal`` or ``maxmin``) says how fast the bytes of competing flows move once the
pipe is full. On a wide-area path a TCP connection is often *not* full: it starts with a small
congestion window that doubles every round trip (slow start), it can never have more than its
socket buffer in flight (rate <= window / RTT), and every payload byte carries header bytes. This
layer models those mechanisms per connection and leaves the sharing of full pipes to the model.

Mechanisms (each one a field of :class:`TcpConfig`):

- **Protocol efficiency** ``mss_bytes / frame_bytes`` (1448 / 1514: Ethernet framing, IPv4, TCP
  with timestamps) scales every link's usable capacity.
- **One connection per ordered node pair**, kept warm between messages. Messages between the
  same pair are sent in order on it, one after the other (the socket's byte stream), not as
  competing flows.
- **Slow start.** A new connection's window ``cwnd`` starts at ``initial_window_segments *
  mss_bytes`` (IW, RFC 6928: 10 segments). The connection sends in *rounds* of one RTT: in a
  round it may send ``cwnd`` bytes, paced over the round at ``cwnd / RTT`` or less (the
  default, paced rounds, below), or at the rate the fluid model gives it and then waiting for
  the round to end (the ACKs of the first bytes to come back: burst rounds). Every byte
  acknowledged in slow start grows ``cwnd`` by one byte, so full rounds double it. Slow start
  ends when a round's window takes a whole RTT to send at the flow's fair share: the pipe is
  full, ``cwnd`` stays at that window, and from then on the connection sends at its share
  (the fluid model alone decides).
- **Window cap.** In flight never exceeds ``max_window_bytes`` (4 MiB: Linux's autotuning
  maximum ``net.ipv4.tcp_wmem``), so rate <= max_window_bytes / RTT. On paths where the cap can
  bind (usable bottleneck > cap / RTT) the connection keeps sending in rounds of the capped window.
- **Restart after idle** (``slow_start_after_idle``, Linux's ``net.ipv4.tcp_slow_start_after_idle
  = 1``, the kernel default that deployments keep): when a connection has sent nothing for longer
  than its retransmission timeout, ``cwnd`` is halved once per RTO of idleness, down to IW
  (Linux ``tcp_cwnd_restart``), and slow start resumes. RTO = RTT + ``min_rto_s`` (Linux:
  srtt + max(4 rttvar, 200 ms) on a path of steady RTT).
- **HyStart's exit on short-RTT paths** (``hystart_short_rtt_exit``; off by default, on for the
  ns-3 comparison). CUBIC's HyStart leaves slow start when a round's ACK train, ACKs no more than
  2 ms apart, lasts longer than the minimum RTT. In ns-3 (and Linux before 5.7, which has since
  scaled the ACK spacing to the rate) a path whose RTT minus the round's sending time is at most
  2 ms never breaks the train, so slow start ends at the first round whose window reaches
  ``HYSTART_LOW_WINDOW_SEGMENTS`` (16) segments, long before the pipe is full. With no loss yet
  CUBIC knows no W_max: the window grows towards CUBIC's target as after the delay exit (next
  item), by at least one segment per ``CUBIC_ACKS_PER_SEGMENT`` (20) segments acknowledged (5%
  per RTT, the floor that sets the growth on such short paths), until a round fills the pipe;
  then the share rules.
- **HyStart's delay exit for connections that start together** (``hystart_delay_exit``; off
  by default). HyStart's delay test ends slow start when the minimum RTT of a round's first 8
  ACKs exceeds the path's minimum by eta = clamp(min RTT / 8, 4 ms, 16 ms). A connection alone
  never meets it before its pipe is full, but connections in slow start on one bottleneck do:
  a slow-start round reaches the bottleneck at twice the rate the last one left it (two
  segments sent per segment ACKed), so half of each window queues there, and a connection's
  first segments wait behind the bursts of the rounds opened before its own
  (:meth:`TcpTransport._queued_behind_bursts`). Past eta, slow start ends one RTT later at the
  round's window plus the 8 samples' segments, and CUBIC's congestion avoidance follows from
  that window (K = 0, no W_max: ``max(W_cubic(t + RTT), W_est(t))``, at least 5% per RTT,
  :func:`cubic_window_segments`) until a round fills the pipe; then the share rules. Measured
  against Linux (docs/network-model.md): the exit windows agree with the kernel's; the
  completion times do not move, since the share rules refill the link (the rates of windows
  behind a shared queue, and CUBIC's losses, are the next option's).
- **A bottleneck buffer** (``bottleneck_queue_bytes``, or ``bottleneck_queue_s``: a time at
  each link's rate; 0, none, by default; only under a model that shares links). Every link
  has a drop-tail buffer of that many wire bytes (or its capacity times that time), and a
  connection's window, not its share, sets its rate for good: slow start ends as before (or
  by HyStart), then CUBIC's congestion avoidance runs on (no share once the pipe is full).
  While the windows of the connections whose bottleneck (first link of least capacity) is a
  link exceed its pipe, the excess stands in its buffer: a round opening there lasts RTT + d,
  d the queueing delay at which the windows ACK-clocked through it fill it
  (:func:`sim.network.droptail.queueing_delay_s`; sum W / C - RTT for equal RTTs), at most the
  buffer's; HyStart's delay test sees it too. When the windows exceed pipe + buffer every
  connection there has a loss event, at most one per round trip, answered when its next round
  opens: the window times beta = 0.7, W_max with fast convergence, and CUBIC's growth towards
  ``max(W_cubic, W_est)`` with K = ((W_max - W) / C)^(1/3) (the same
  :meth:`TcpTransport._avoidance_growth` as after HyStart's exit; no 5% floor once W_max is
  known). Rates change at a few instants per round (a chunk's start and end, the round's end),
  as in slow start; such connections never take closed-form ramps. Left out with it: the
  dropped segments' retransmission (they cost no capacity), recovery's own timing (PRR, RTOs),
  buffers set link by link (one size, or one time at each link's rate, for all), a queue at
  any link but a connection's bottleneck, and the ACK clock's pacing inside a round (chunks
  move at the model's max-min rate).
- **ACK bytes on the reverse path** (``ack_frame_bytes``, ``segments_per_ack``; **off by
  default**, ``ack_frame_bytes = 0``; on with ``[network.tcp] ack_frame = 66``): a connection
  sending at rate r puts ``ack_fraction * r`` of ACKs on the links of its reverse path, where
  ``ack_fraction = ack_frame_bytes / (segments_per_ack * frame_bytes)``. The ``maxmin`` model
  serves them before the data crossing those links (see :mod:`sim.network.maxmin`), so a link
  that carries data both ways (a ring) gives each direction ``C / (1 + ack_fraction)``; one-way
  traffic is not slowed. ``segments_per_ack`` is what Linux achieves, not its delayed-ACK rule
  (2): with GRO a receiver acknowledges what arrived together, and the namespace lab's link byte
  counters show 0.6-1.7% more bytes than the data on links carrying data both ways (median 1.2%,
  66 / (3.5 x 1514)). The ``ideal`` model has no sharing and ignores them. Off by default
  because of what they cost against what they buy: on the namespace lab's two-way cases they
  move the prediction 1.2 points toward Linux (the quiet runs are within 5% without them, worst
  -4.8%), but every start or end of a flow re-rates the network in extra passes (on the flow
  benchmark 49% more re-ratings; its tcp/fluid speed measured 0.27x -> 0.17x on residential and
  0.74x -> 0.32x on datacenters, figures that vary between runs: docs/performance.md).
- **Paced rounds** (``rounds = "paced"``, the default since session 9 wherever neither HyStart's
  delay exit nor a bottleneck buffer is on; ``"burst"`` otherwise). In the burst model a round
  that waits for its ACKs puts its window on the links at the model's rate and takes it off when
  sent: two rate changes per round for every flow sharing its links. Paced, such a round (one
  that does not hold the message's last bytes) keeps the connection on its links for the whole
  round at a rate cap of window / RTT (a per-flow cap in the model:
  :meth:`sim.network.maxmin.MaxMinNetwork._set_cap`), so it moves min(window, share x RTT)
  bytes, the burst round's bytes while the share is steady; at the round's end the window grows
  by the same rules (a round that moved less than its window was full), and the cap changes: one
  rate change per round, none while the window does not (window-capped rounds past slow start
  wake once for all the rounds before the one that can hold the last bytes). The round that
  holds the last bytes is a burst, so a connection alone ends its message at the burst model's
  instant (tests: 1e-9). What differs is what the other flows see inside a round: a steady W /
  RTT instead of the share for W / share, then nothing. Not with HyStart's delay exit nor the
  bottleneck buffer (their rounds are bursts: refused).
- **Parallel streams** (``parallel_streams = n``): a transfer split over n connections, as
  WAN tools (GridFTP, bbcp) do. Modelled as one connection with n times the initial and the
  maximum window; the share on a contended bottleneck is *not* multiplied (left out).
- **Handshake** (``handshake``): a cold connection first spends one RTT on SYN / SYN-ACK. Off by
  default: training libraries (gloo, NCCL) connect at start-up, before the clock that matters.

RTT is the path's one-way latency there plus back. Left out (without the bottleneck buffer):
queueing delay (RTT inflation at a full bottleneck), losses and loss recovery (slow start's
overshoot, CUBIC's sawtooth), RTT
unfairness between flows of different RTTs, ACKs' effect on timing (only their bytes are in),
and the growth of CUBIC's window when a
connection's share grows after slow start (it gets the new share at once). docs/network-model.md
shows how far this is from packet-level TCP (ns-3) and from Linux.

Every re-rating is still the fluid model's; this layer only starts and stops a flow's chunks and
sets per-flow rate caps (paced rounds). A connection that shares a link with another costs one
re-rating per RTT for its ``log2(BDP / IW)`` slow-start rounds with paced rounds (the default;
a window-capped connection past slow start wakes once for many rounds), two re-ratings and two
SimPy events per RTT with burst rounds (and per window-capped round that waits for its round's
end); less where rounds run in step (connections waking at one instant share a timer);
a bandwidth-limited one none beyond the fluid model's. A chunk whose end opens the next one at
once (the rest after the round that filled the pipe; a window-capped round that the share
holds below its cap) stays on its links with its rate (:meth:`TcpTransport._next_chunk`):
equal to leaving and joining again within 1e-9 relative, without their two re-ratings.
A connection alone on every link of its path there and back (under ``ideal``, every
connection) costs one SimPy event per message however many rounds it takes (under ``maxmin``,
from its second step, and not with ``hystart_delay_exit``, whose burst queue must see its
rounds on the clock, nor with a bottleneck buffer): the model's rate for it cannot change while
it is alone, so its rounds are run at once on a virtual clock (:class:`LoneRamp`), by the same
round logic, and handed to the per-round mechanism at the instant another connection's chunk
starts on one of those links or the message is cut. Results equal the per-round mechanism's
within 1e-9 relative (``tests/engine/test_tcp_ramp.py``; docs/performance.md, "Closed-form
ramps").
"""

from __future__ import annotations

import math
from collections import deque
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

from sim.network.base import INF, Flow, Network, Pair
from sim.network.droptail import CubicState, DropTail, queueing_delay_s, reduced_window_bytes
from sim.network.tcp_config import TcpConfig
from sim.timer import Timer

if TYPE_CHECKING:
    from sim.world import World

FULL_ROUND = 1 - 1e-9
"""A round whose chunks kept the model busy this fraction of an RTT had a full pipe."""

ROUND_END_SLACK = 1e-9
"""A chunk that ends within this fraction of an RTT before its round's end ends the round.

Whether the rest of a message opens a new window or finishes the old one is a step in the
model; at a tie (a message that ends as its round does) the last bits of the chunk's end time
decide it, and an incremental solver and the oracle differ in those bits. Found by
``test_tcp_chunks_on_maxmin_equal_the_oracle``: 0.0329 s against 0.0332 s."""

LAST_ROUND_SLACK = 1e-12
"""A paced round's end leaving at most a window and this fraction more holds the last bytes.

A paced round held at its cap moves its window up to rounding (rate x RTT), so a message of a
whole number of windows leaves exactly one window at a round's end, and the last bits decide
whether it goes as the last round's burst or as one more paced round (a round trip later).
Found by ``test_paced_tcp_rounds_on_maxmin_equal_the_oracle``: 0.0211 s against 0.0220 s.
Rounding, not more: a rest above the window by more than this is a window and a round later,
as the burst model and the closed form send it (at 1e-9 a message of 14,480 + 28,960 x
(1 + 5e-10) bytes ended a round trip early, found by review)."""

HYSTART_LOW_WINDOW_SEGMENTS = 16
"""HyStart acts only on windows of at least this many segments (Linux and ns-3)."""

HYSTART_ACK_DELTA_S = 0.002
"""ACKs at most this far apart form one train (Linux before 5.7 and ns-3: 2 ms)."""

CUBIC_ACKS_PER_SEGMENT = 20
"""CUBIC with no known W_max grows the window one segment per this many ACKed (5% per RTT)."""

CUBIC_C = 0.4
"""CUBIC's scaling constant C, segments / s^3 (RFC 8312; Linux ``bic_scale`` 41 / 1024 x 10)."""

CUBIC_BETA = 0.7
"""CUBIC's multiplicative decrease beta (Linux ``beta`` 717 / 1024)."""

RENO_FRIENDLY_SEGMENTS_PER_RTT = 3 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA)
"""Growth of CUBIC's Reno-friendly estimate W_est, segments per RTT: 3(1-beta)/(1+beta)."""

HYSTART_MIN_SAMPLES = 8
"""HyStart's delay test takes the minimum RTT of a round's first 8 ACKs (then tests it)."""

class Connection(Pair):
    """The state of one ordered node pair's connection: the network's record of the pair.

    The pair's route is kept here too (:class:`sim.network.base.Pair`), so a message finds
    its route and its connection with one dict probe.

    ``cwnd`` is the congestion window (bytes); a round started at ``round_start_s`` may send
    ``round_window`` bytes, of which ``round_sent`` are handed to the model, which spent
    ``round_busy_s`` sending them. ``head`` is the message being sent, ``queue`` the ones
    waiting behind it, made when one first waits (``None`` before): most connections carry one
    message at a time, and an empty ``deque`` costs about 600 bytes, the largest part of a
    world of 100,000 nodes before. ``ramp`` is set while the head's rounds run in closed form
    (see :class:`LoneRamp`); ``links`` are the finite links of the head's path there and back
    whose senders are counted (:meth:`TcpTransport._count_head`; without the edges of one-node
    leaf sites, :meth:`TcpTransport._leaf_edges`), and ``rtt_s`` its round trip: both made
    from the head's forward links ``path_links`` and one-way latency ``path_latency_s`` and
    the way back (:attr:`Pair.back`) of the ``routes_epoch`` in ``path_epoch``, and kept while
    those hold (a warm connection's messages take one route: its path is made once, not per
    message). ``cubic`` is the state the
    bottleneck buffer needs (``TcpConfig.models_bottleneck_buffer``), None without it.
    """

    __slots__ = ("cwnd", "slow_start", "probing", "queued", "ca_start_s", "ca_origin",
                 "round_start_s", "round_window", "round_sent", "round_busy_s", "chunk_start_s",
                 "last_sent_s", "ready_s", "head", "queue", "rtt_s", "token", "used", "ramp",
                 "links", "cubic", "paced", "paced_from", "path_links", "path_latency_s",
                 "path_epoch")

    def __init__(self, cwnd: float) -> None:
        super().__init__()
        self.cwnd = cwnd
        self.slow_start = True
        self.probing = False      # after HyStart's early exit: CUBIC's growth until the pipe fills
        self.queued = False       # this round's first segments wait past HyStart's delay threshold
        self.ca_start_s = 0.0     # CUBIC's epoch: when congestion avoidance began
        self.ca_origin = 0.0      # ... and the window then, bytes (W_origin, with K = 0)
        self.round_start_s = -INF
        self.round_window = 0.0
        self.round_sent = 0.0
        self.round_busy_s = 0.0   # time the model spent sending this round's chunks
        self.chunk_start_s = 0.0
        self.last_sent_s = -INF   # when the last byte of the last chunk left
        self.ready_s = -INF       # end of the handshake
        self.head: Flow | None = None
        self.queue: deque[Flow] | None = None
        self.rtt_s = 0.0
        self.token = 0            # invalidates a pending round timer
        self.used = False
        self.ramp: LoneRamp | None = None
        self.links: tuple[int, ...] = ()  # the head's counted links there and back (``maxmin``)
        self.cubic: CubicState | None = None
        self.paced = False        # the head is on its links for a paced round (rounds = "paced")
        self.paced_from = 0.0     # ... and had this many bytes unsent when the round opened
        self.path_links: tuple[int, ...] | None = None  # ``links`` and ``rtt_s`` were made ...
        self.path_latency_s = 0.0  # ... from a head with these links and latency (None: never)
        self.path_epoch = -1      # ... and the way back of this ``routes_epoch``


ROUND_STATE = ("cwnd", "slow_start", "probing", "queued", "ca_start_s", "ca_origin",
               "round_start_s", "round_window", "round_sent", "round_busy_s", "chunk_start_s",
               "last_sent_s", "paced", "paced_from")
"""The fields of :class:`Connection` that the round logic changes."""

_round_state = attrgetter(*ROUND_STATE)


class LoneRamp:
    """A connection's rounds run ahead in closed form while it is alone on its links.

    ``conn`` is the connection, ``start_s`` when the ramp began, ``state`` the connection's
    round state then (the fields :data:`ROUND_STATE`), ``left`` the head message's unsent bytes
    then, ``rate_Bps`` the rate the model gives the connection's chunks (alone, it never
    changes), ``rounds`` the rounds the ramp runs to the message's end.
    """

    __slots__ = ("conn", "start_s", "state", "left", "rate_Bps", "rounds")

    def __init__(self, conn: Connection, start_s: float, state: tuple, left: float,
                 rate_Bps: float) -> None:
        self.conn = conn
        self.start_s = start_s
        self.state = state
        self.left = left
        self.rate_Bps = rate_Bps
        self.rounds = 0


_SEND, _WAIT, _DONE, _PACED = 0, 1, 2, 3
"""What the round logic does next on a lone connection's virtual clock."""


class TcpTransport(Network):
    """Connections, slow start, window cap and idle restart over a fluid model's rates.

    The transport layer of every network, between :class:`Network` and the model below it:
    ``Network -> TcpTransport -> IdealNetwork | MaxMinNetwork``. Built with ``tcp`` (a
    :class:`TcpConfig`) it is the ``tcp`` transport; without, ``fluid``: its hooks
    (:meth:`_send_message`, :meth:`_stop_message`, :meth:`_transmitted`, :meth:`_new_pair`)
    hand each message to the model whole, as :class:`Network`'s do. One line of classes, not a
    mixin over each model, because the compiled build (docs/performance.md, "A compiled
    engine") compiles only single inheritance. The model's half of a chunk is reached through
    its own methods (``self._start``, ``self._stop``, ``self._set_cap``), which the models
    define below this class.

    A message's :class:`Flow` is
    handed to the model in *chunks* (``flow.remaining`` set to the chunk's bytes); the bytes of
    the message after the current chunk are ``flow.left``. ``flow.transport`` is the flow's
    connection.

    The round logic (:meth:`_step`, :meth:`_new_round`, :meth:`_chunk_ended`) reads the clock
    only through its ``now`` argument, so it runs the same on the simulator's clock (one chunk
    and one timer per round) and on a virtual one (:meth:`_run_lone`): a connection whose
    chunks would be alone on every link of their path gets one rate from the model for as long
    as that holds, so its rounds up to the message's end are known at once, and one SimPy event
    at that end replaces two per round. When a chunk of another connection starts on one of its
    links, or the message is stopped, the rounds are run again from the ramp's start up to now
    and the state they reach (a chunk partly sent, or a wait for the next round) is handed to
    the per-round mechanism (:meth:`_materialise`).
    """

    transport_name: str
    """``"tcp"`` or ``"fluid"`` (set by :meth:`__init__`; ``is_tcp`` is the same, as a bool)."""

    lone_ramps = True
    """Run a lone connection's rounds in closed form (False: every round on the clock)."""

    shared_ramps = True
    """Lone ramps that start at one instant from equal inputs share one run of their rounds
    (False: every ramp runs its own; see :meth:`_start_ramp`)."""

    shared_wakes = True
    """Connections waking at one instant share a timer (False: one timer per wake)."""

    continued_chunks = True
    """A chunk followed at once by the head's next one stays on its links (False: it leaves
    them and the next joins afresh; see :meth:`_next_chunk`)."""

    counts_leaf_edges = False
    """Count the senders on the edges of one-node leaf sites too (False: on their access links
    only, which always carry the same messages; see :meth:`_leaf_edges`)."""

    def __init__(self, world: World, topology: Any, *, uplink_Bps: float | None = None,
                 downlink_Bps: float | None = None, access_latency_s: float = 0.0,
                 tcp_efficiency: float = 1.0, tcp: TcpConfig | None = None) -> None:
        self.is_tcp = tcp is not None
        self.transport_name = "tcp" if tcp is not None else "fluid"
        self.tcp = tcp if tcp is not None else TcpConfig()  # (read only with is_tcp)
        if tcp is not None:
            if tcp_efficiency != 1.0:
                raise ValueError("network.tcp_efficiency: only for transport = 'fluid'; the tcp "
                                 "transport takes its efficiency from network.tcp.mss_bytes / "
                                 "frame_bytes")
            tcp_efficiency = tcp.efficiency
        super().__init__(world, topology, uplink_Bps=uplink_Bps, downlink_Bps=downlink_Bps,
                         access_latency_s=access_latency_s, tcp_efficiency=tcp_efficiency)
        if tcp is None:
            return  # fluid: every hook below hands the message to the model as it is
        self.ack_fraction = self.tcp.ack_fraction  # the model reserves it on reverse paths
        self._ramp_on: dict[int, Connection] = {}  # link -> the connection ramping alone on it
        self._senders = [0 for _ in self.link_names]  # link -> messages being sent across it
        self._uncounted = frozenset() if self.counts_leaf_edges else self._leaf_edges()
        # the last timer of waking connections (its value: (connection, its token when it
        # asked), in the order they asked) and the instant it is filed under
        self._wakes: Timer | None = None
        self._wakes_at_s = math.nan
        # the environment's last event at an instant (sim.world.Environment), for _wake_at
        self._last_scheduled = getattr(self.env, "last_scheduled", None)
        self.rounds_started = 0
        self.rounds_paced = 0  # rounds that opened paced (TcpConfig.rounds = "paced")
        self.ramps_started = 0
        self.ramps_interrupted = 0
        self.ramps_shared = 0  # ramps that took the rounds of an equal one at their instant
        self._ramps_at: dict[tuple, tuple] = {}  # inputs -> what the rounds reached, at ...
        self._ramps_at_s = -INF                  # ... this instant only
        # HyStart's delay exit: link -> (when, payload bytes queued by slow-start bursts then)
        self._burst_queue: dict[int, tuple[float, float]] = {}
        self._burst_exits = self.tcp.hystart_delay_exit and self.shares_links
        # the bottleneck buffer: link -> its queue (TcpConfig.bottleneck_buffer_bytes)
        self._drop_tail = self.tcp.models_bottleneck_buffer and self.shares_links
        self._queues: dict[int, DropTail] = {}
        self._paced = self.tcp.round_model == "paced"
        self._window_cap_bytes = self.tcp.window_cap_bytes  # (read every round: no property call)
        # read at every message's start (no property call, no lookup in the config)
        self._initial_window_bytes = self.tcp.initial_window_bytes
        self._restarts_after_idle = self.tcp.slow_start_after_idle
        self._min_rto_s = self.tcp.min_rto_s
        # HyStart's short-RTT exit needs at least this window, bytes (read every round)
        self._hystart_low_window_bytes = (HYSTART_LOW_WINDOW_SEGMENTS * self.tcp.mss_bytes
                                          * self.tcp.parallel_streams)

    # -- the model's interface -----------------------------------------------------------------

    def _new_pair(self) -> Pair:
        """A node pair's record is its connection (cold: nothing sent yet)."""
        if not self.is_tcp:
            return Pair()
        conn = Connection(self.tcp.initial_window_bytes)
        if self._drop_tail:
            conn.cubic = CubicState()
        return conn

    @property
    def _connections(self) -> dict[tuple[int, int], Connection]:
        """The connections that carried a message, by node pair (for tests and diagnostics).

        A pair's record is made when its route is first asked for, so some never carry one.
        """
        pairs = cast(dict[tuple[int, int], Connection], self._pairs)
        return {key: conn for key, conn in pairs.items() if conn.used}

    def _send_message(self, flow: Flow) -> None:
        if not self.is_tcp:
            self._start(flow)
            return
        conn: Connection = flow.transport  # (the pair's record: see _new_pair)
        flow.left = flow.nbytes
        if conn.head is None:  # (nothing waits behind an idle connection)
            self._next_message(conn, flow)
        elif conn.queue is None:
            conn.queue = deque((flow,))
        else:
            conn.queue.append(flow)

    def _stop_message(self, flow: Flow) -> None:
        if not self.is_tcp:
            self._stop(flow)
            return
        conn: Connection = flow.transport
        unsent = None  # bytes of the chunk being sent that have not left
        if conn.head is flow and conn.ramp is not None:
            unsent = self._materialise(conn, attach=False)
        left, attached = flow.left, flow.attached
        if conn.head is not flow:
            assert conn.queue is not None  # a message that is not the head waits in the queue
            conn.queue.remove(flow)
            flow.remaining = flow.nbytes
            return
        was_paced = conn.paced
        if was_paced:  # (the round's bytes as one chunk from its start: see below)
            conn.paced = False
            # the capped rounds this wake passed over (_paced_round), a window each, as alone;
            # those it counted ahead and never reached are not counted (none when the cut
            # falls at the instant the round opened)
            passed = max(0, math.ceil((self.env.now - conn.round_start_s) / conn.rtt_s) - 1)
            ahead = round(conn.round_sent / conn.round_window)
            self.rounds_started -= ahead - 1 - passed
            if passed > 0:
                conn.round_start_s += passed * conn.rtt_s
                conn.paced_from -= passed * conn.round_window
            conn.round_sent, conn.chunk_start_s = conn.paced_from, conn.round_start_s
        if attached:
            self._stop(flow)  # (the model's) brings flow.remaining up to date
            unsent = flow.remaining
        if unsent is not None:
            conn.round_sent -= unsent  # the unsent part of the chunk was never sent
            if was_paced and conn.round_sent < 0.0:
                # the rounds passed over were counted as a window each; held below their cap
                # by the share they moved less, so what is unsent can exceed this round's
                # count: the round has sent nothing of its own (never a negative count, which
                # would let the next message take more than a window in its first round)
                conn.round_sent = 0.0
            conn.round_busy_s += self.env.now - conn.chunk_start_s
            conn.last_sent_s = self.env.now
        flow.remaining = (unsent or 0.0) + left
        self._count_head(conn, -1)
        if conn.cubic is not None:
            self._leave_queue(conn)
        conn.head = None
        conn.token += 1
        if conn.queue:
            self._next_message(conn, conn.queue.popleft())

    def _next_chunk(self, flow: Flow, now: float) -> float:
        """The bytes of the head's next chunk when it starts at ``now``, as this one ends.

        The chunk keeps its place and its rate on its links (:meth:`sim.network.base.
        Network._next_chunk`): the round logic runs as at any chunk end, and when it
        sends at once (the rest after a round that filled the pipe, or a window-capped round
        that the share holds below its cap) the connection's rate cannot change, so leaving
        its links and joining them again, two re-ratings of the model that give the same
        rates up to rounding, is skipped (:attr:`continued_chunks`). 0 when the head waits
        (the window is out until its round ends), when :meth:`_pump` would start a
        closed-form ramp, or with an option whose rounds read the other connections' at the
        same instant (HyStart's delay exit, the bottleneck buffer): then the chunk ends.
        """
        conn: Connection = flow.transport
        if (flow.left <= 0 or not self.continued_chunks
                or (conn.round_sent >= conn.round_window
                    and now < conn.round_start_s + conn.rtt_s)
                or self._burst_exits or self._drop_tail):
            # (the wait of _step: a chunk that leaves bytes of its message was a window's,
            # not the unlimited rest, and no round state changes while it is sent; without a
            # buffer the round lasts the RTT)
            return 0.0
        if self.lone_ramps and self._alone(conn):
            return 0.0  # (_pump runs the rest in closed form)
        self._chunk_ended(conn, now)
        send, nbytes = self._step(conn, flow, now)
        assert send and nbytes > 0
        if self._paced:
            rest = self._paced_round(conn, flow, nbytes, now)
            if rest is not None:
                return rest
        return nbytes

    def _transmitted(self, flow: Flow) -> None:
        if not self.is_tcp:
            super()._transmitted(flow)
            return
        conn: Connection = flow.transport
        flow.attached = False
        if conn.paced:  # the last bytes left within a paced round (by rounding): it ends here
            conn.paced = False
            conn.token += 1  # (its round's wake is stale)
            conn.round_sent, conn.chunk_start_s = conn.paced_from, conn.round_start_s
        now = self.env.now
        self._chunk_ended(conn, now)
        if flow.left > 0:
            self._pump(conn, now)
            return
        self._message_sent(conn, flow)

    def _message_sent(self, conn: Connection, flow: Flow) -> None:
        """The head's last byte left: it propagates, and the next message starts."""
        self._count_head(conn, -1)
        if conn.cubic is not None:
            self._leave_queue(conn)
        conn.head = None
        super()._transmitted(flow)
        if conn.queue:
            self._next_message(conn, conn.queue.popleft())

    # -- connections -------------------------------------------------------------------------

    def _next_message(self, conn: Connection, flow: Flow) -> None:
        """Make ``flow`` the head: idle restart, handshake, then send."""
        conn.head = flow
        now = self.env.now
        if (flow.links is not conn.path_links or flow.latency_s != conn.path_latency_s
                or conn.path_epoch != self.routes_epoch):
            self._make_path(conn, flow)
        if self.shares_links:
            self._count_head(conn, 1)
            if conn.cubic is not None:
                self._join_queue(conn, flow)
        if not conn.used:
            conn.used = True
            if self.tcp.handshake:
                conn.ready_s = now + conn.rtt_s
        elif self._restarts_after_idle and conn.rtt_s > 0:
            rto = conn.rtt_s + self._min_rto_s
            idle = now - conn.last_sent_s
            if idle > rto:
                if conn.cubic is not None and conn.cubic.loss_pending:
                    # a drop in the last message's rounds: recovered before the gap
                    self._answer_loss(conn, conn.cubic, conn.last_sent_s)
                conn.cwnd = idle_restart_window_bytes(conn.cwnd, idle, rto,
                                                      self._initial_window_bytes)
                conn.slow_start = True
                conn.probing = conn.queued = False
                conn.round_start_s = -INF  # a new round starts with the message
                conn.round_window = conn.round_sent = 0.0
        self._pump(conn, now, first=True)

    def _make_path(self, conn: Connection, flow: Flow) -> None:
        """Make the head's round trip ``rtt_s`` and its ``links`` there and back.

        Per connection, not per message: kept until a head comes with other forward links or
        latency (:attr:`Connection.path_links`, compared by identity: a route's links are
        made once per route) or a link change makes the way back stale (the network's
        ``routes_epoch``, kept as ``path_epoch``: not the pair's ``back_epoch``, which the
        model's ACK links also renew, so a message queued on an older route would keep the old
        way back's RTT). The way back is the network's route, kept on the pair (one dict probe
        less per message).
        """
        if conn.back_epoch == self.routes_epoch:
            back = conn.back
        else:
            back = conn.back = self.route(flow.dst, flow.src)
            conn.back_epoch = self.routes_epoch
        conn.rtt_s = flow.latency_s + (back[1] if back is not None else flow.latency_s)
        if self.shares_links:
            links = flow.links + back[0] if back is not None else flow.links
            uncounted = self._uncounted
            conn.links = tuple([x for x in links if x not in uncounted]) if uncounted else links
        conn.path_links, conn.path_latency_s = flow.links, flow.latency_s
        conn.path_epoch = self.routes_epoch

    def _unlimited(self, conn: Connection, flow: Flow) -> bool:
        """True when the window cannot limit this message: send it as one fluid flow."""
        if conn.rtt_s <= 0:
            return True
        if conn.slow_start or conn.probing:
            return False
        return flow.bottleneck_Bps * self.efficiency * conn.rtt_s <= self._window_cap_bytes

    def _pump(self, conn: Connection, now: float, first: bool = False) -> None:
        """Hand the head message's next chunk to the model at ``now``, or wait for its round.

        ``now`` is the simulator's time, which the caller has read already.

        A message alone on its links runs its rounds in closed form (:meth:`_start_ramp`);
        where links are shared, only from its second step on (``first``: its start), so that
        messages starting together (a pair exchanging both ways) do not start ramps that the
        next one takes over at once. Not with HyStart's delay exit under a model that shares
        links: every slow-start round feeds its bottleneck's burst queue at its start
        (:meth:`_queued_behind_bursts`), which a newcomer reads before it takes a ramp over, so
        a lone connection's rounds must run on the clock for the newcomer to find them there.
        Nor with the bottleneck buffer: a round's queueing delay reads the window every other
        connection there has in flight at that instant.
        """
        flow = conn.head
        assert flow is not None
        if (self.lone_ramps and not (first and self.shares_links) and not self._burst_exits
                and not self._drop_tail
                and flow.left > 0 and flow.links and self._alone(conn)):
            rate = self._lone_rate(flow)
            if rate is not None:
                self._start_ramp(conn, flow, rate, now)
                return
        send, value = self._step(conn, flow, now)
        if not send:
            self._wake_at(conn, value, now)
            return
        if self._paced:
            rest = self._paced_round(conn, flow, value, now)
            if rest is not None:
                value = rest
        self._attach(conn, flow, value, now)

    # -- paced rounds (TcpConfig.rounds = "paced") ---------------------------------------------

    def _paces(self, conn: Connection, flow: Flow, nbytes: float, now: float) -> bool:
        """Whether the chunk of ``nbytes`` the round logic just took opens a paced round.

        It does when paced rounds are on, the round opened now with this chunk as its window,
        and bytes of the message follow it (``flow.left``): not the rest of a round a message
        joined, not the round that holds the message's last bytes, not the rest sent at the
        share when the window no longer limits it (those are bursts, as in the burst model).
        The same test on the simulator's clock and on a lone ramp's virtual one.
        """
        return (self._paced and flow.left > 0 and conn.round_start_s == now
                and conn.round_sent == nbytes and bool(flow.links))

    def _paced_round(self, conn: Connection, flow: Flow, nbytes: float,
                     now: float) -> float | None:
        """Pace the round that opened now, if :meth:`_paces`; the bytes handed to the model.

        The head then stays on its links with every byte of its message not yet sent
        (``flow.left`` becomes 0) and a rate cap of window / RTT from the model
        (:meth:`sim.network.maxmin.MaxMinNetwork._set_cap`), so it moves min(window, share x
        RTT) bytes in the round; the round's end (:meth:`_paced_round_end`) is a wake, as a
        burst round's. Past slow start the window no longer changes, and the round that holds
        the last bytes cannot open before ``ceil(rest / window) - 1`` rounds (a round moves at
        most a window), so the connection wakes then, with no event between (the rounds are
        counted). None when the round is not paced.
        """
        if not self._paces(conn, flow, nbytes, now):
            return None
        rest = nbytes + flow.left
        flow.left = 0.0
        self._open_paced(conn, flow, rest, now)
        return rest

    def _open_paced(self, conn: Connection, flow: Flow, rest: float, now: float) -> None:
        """The round that opened ``now`` is paced, with ``rest`` bytes of the message unsent."""
        self.rounds_paced += 1
        window, rtt = conn.round_window, conn.rtt_s
        ahead = 1
        if not (conn.slow_start or conn.probing):
            ahead = max(1, math.ceil(rest / (window * (1 + LAST_ROUND_SLACK))) - 1)
            self.rounds_started += ahead - 1
        conn.paced, conn.paced_from, conn.round_sent = True, rest, ahead * window
        self._set_cap(flow, window / rtt)
        self._wake_at(conn, conn.round_start_s + ahead * rtt, now)

    def _close_paced_round(self, conn: Connection, flow: Flow, unsent: float,
                           now: float) -> None:
        """A paced round ends at ``now`` with ``unsent`` bytes of the message not yet sent.

        The bytes the round moved stand for the window a burst round would have sent (exactly
        its windows when its cap held it all along: rate x time moves them up to rounding, and
        a message of whole windows must end as in the burst model, not a round later). The
        round was full (the share held it below its cap: slow start ends, as when a burst
        round took the whole RTT) when it moved less, or when its window would take the RTT at
        the path's rate alone. Its sending time, which HyStart's short-RTT exit reads, is the
        window at the path's rate (exact for a connection alone, whose share is that rate; for
        one that shares its path, the time it would take alone). Then the window grows by the
        burst model's rules (:meth:`_new_round`) and a round opens now with nothing taken yet:
        ``flow.left`` is what is unsent (a window when within :data:`LAST_ROUND_SLACK` of it).
        """
        allowed = conn.round_sent  # (in a paced round: what its cap lets through, a window a round)
        moved = conn.paced_from - unsent
        if moved >= FULL_ROUND * allowed:  # held at its cap all along: its windows, exactly
            moved, unsent = allowed, conn.paced_from - allowed
        window, rtt = conn.round_window, conn.rtt_s
        burst_s = window / (flow.bottleneck_Bps * self.efficiency)
        full = moved < allowed or burst_s >= FULL_ROUND * rtt
        conn.round_sent = moved if full else window
        conn.round_busy_s = rtt if full else burst_s
        conn.paced = False
        self._new_round(conn, now)
        window = conn.round_window
        flow.left = window if window < unsent <= window * (1 + LAST_ROUND_SLACK) else unsent

    def _paced_round_end(self, conn: Connection, now: float) -> None:
        """A paced round's wake: close it and go on from the round that opens now.

        On the head's links: a paced round again (one rate change when its cap moved, none
        when it did not), or the round that holds the last bytes, or the rest at the share
        (the window no longer limits it): a burst, as in the burst model (the cap goes, one
        rate change). Alone on its links (and the closed forms on), the head leaves them and
        its rounds run in closed form from here (:meth:`_start_ramp`).
        """
        flow = conn.head
        assert flow is not None
        unsent = flow.remaining - flow.rate * (now - flow.last_s)
        self._close_paced_round(conn, flow, unsent if unsent > 0.0 else 0.0, now)
        if self.lone_ramps and self._alone(conn):
            self._stop(flow)  # (the model's; alone: nobody to re-rate)
            flow.attached = False
            conn.last_sent_s = now
            self._pump(conn, now)
            return
        # what _step and _paced_round do with the round that opened now (nothing taken yet)
        left = flow.left
        flow.left = 0.0  # (the model has the bytes)
        conn.chunk_start_s = now
        # (a paced round had a cap window / RTT, so RTT > 0: in slow start or probing the
        # window limits the message, as _unlimited says, without the call)
        if left > conn.round_window and (conn.slow_start or conn.probing
                                         or not self._unlimited(conn, flow)):
            self._open_paced(conn, flow, left, now)
        else:
            conn.round_sent = left
            self._set_cap(flow, INF)

    # -- the round logic (on any clock) --------------------------------------------------------

    def _step(self, conn: Connection, flow: Flow, now: float) -> tuple[bool, float]:
        """What the head message does at ``now``.

        Returns (True, the bytes of its next chunk, counted as starting now) or (False, when to
        look again: the end of the handshake or of the round).
        """
        if now < conn.ready_s:
            return False, conn.ready_s
        left = flow.left
        if left <= 0 or self._unlimited(conn, flow):
            return True, self._take(conn, flow, left, now)
        next_round_s = conn.round_start_s + conn.rtt_s
        if conn.cubic is not None:
            next_round_s += conn.cubic.delay_s  # the round trip grows by the queue
        if now < next_round_s and conn.round_sent >= conn.round_window:
            return False, next_round_s  # the window is out: wait for its ACKs
        if now >= next_round_s - ROUND_END_SLACK * conn.rtt_s:
            self._new_round(conn, now)
            if self._unlimited(conn, flow):
                return True, self._take(conn, flow, left, now)
        room = conn.round_window - conn.round_sent
        return True, self._take(conn, flow, room if room < left else left, now)  # (min, no call)

    def _new_round(self, conn: Connection, now: float) -> None:
        """Close the last round (grow cwnd or leave slow start) and open one now."""
        tcp = self.tcp
        cap = self._window_cap_bytes
        cubic = conn.cubic  # (None without the bottleneck buffer)
        if cubic is not None and cubic.loss_pending and conn.round_window > 0:
            self._answer_loss(conn, cubic, now)
        elif conn.round_window > 0 and (conn.slow_start or conn.probing):
            if (conn.round_busy_s >= FULL_ROUND * conn.rtt_s
                    and not (cubic is not None and conn.probing)):
                if cubic is None:
                    conn.slow_start = conn.probing = False  # the window filled the pipe
                else:  # with a buffer the window keeps ruling: CUBIC from this one
                    self._leave_slow_start(conn, now)
            elif conn.probing:
                conn.cwnd = min(conn.cwnd + self._avoidance_growth(conn, now), cap)
                conn.probing = conn.cwnd < cap or cubic is not None
            elif conn.queued:  # HyStart's delay test fires on the round's first ACKs
                samples = HYSTART_MIN_SAMPLES * tcp.mss_bytes * tcp.parallel_streams
                conn.cwnd = min(conn.round_window + samples, cap)
                self._leave_slow_start(conn, now)
            else:
                cwnd = conn.cwnd + conn.round_sent  # +1 byte per byte ACKed, up to the cap
                conn.cwnd = cwnd = cap if cap < cwnd else cwnd  # (min(cwnd, cap), no call)
                if cwnd >= cap and cubic is not None:
                    self._leave_slow_start(conn, now)  # the window keeps ruling, at the cap
                elif cwnd >= cap:
                    conn.slow_start = False
                elif (tcp.hystart_short_rtt_exit and conn.round_sent >= conn.round_window
                      and cwnd >= self._hystart_low_window_bytes
                      and conn.rtt_s - conn.round_busy_s <= HYSTART_ACK_DELTA_S):
                    self._leave_slow_start(conn, now)  # the ACK train never broke
        conn.round_start_s = now
        # past slow start and probing the connection sends at its share; only the cap limits
        conn.round_window = conn.cwnd if conn.slow_start or conn.probing else cap
        conn.round_sent = 0.0
        conn.round_busy_s = 0.0
        if cubic is not None:
            self._queue_round(conn, cubic, now)
        conn.queued = (conn.slow_start and self._burst_exits
                       and self._queued_behind_bursts(conn, now))
        self.rounds_started += 1

    @staticmethod
    def _leave_slow_start(conn: Connection, now: float) -> None:
        """Slow start ended: CUBIC's epoch starts at the window now.

        By HyStart, below the pipe; with the bottleneck buffer, by any exit, and after every
        loss (:meth:`_answer_loss`).
        """
        conn.slow_start, conn.probing, conn.queued = False, True, False
        conn.ca_start_s, conn.ca_origin = now, conn.cwnd
        if conn.cubic is not None:
            conn.cubic.acked_windows = 0.0

    def _avoidance_growth(self, conn: Connection, now: float) -> float:
        """Bytes CUBIC adds to the window for the round that ends now (RFC 8312, Linux).

        Without the bottleneck buffer no loss is modelled, so CUBIC knows no W_max: its epoch
        starts at HyStart's exit with K = 0 and W_origin the window then. Per ACK Linux grows
        the window towards ``max(W_cubic(t + RTT), W_est)`` (:func:`cubic_window_segments`), by
        at least one segment per 20 ACKed (the 5% per RTT it allows while W_max is unknown)
        and at most one per 2 (1.5x per RTT); a round that acknowledged ``round_sent`` bytes
        grows it by that share of the round's gap to the target. W_est counts round trips of
        the path's RTT (a round lasts that long without a queue). With the buffer a round
        lasts RTT + the queueing delay, so W_est counts what Linux counts, windows ACKed
        (``tcp_cubic.c``: ``ack_cnt``, one segment per ``cwnd / 0.529`` ACKed); after a loss
        W_max is known, the 5% floor ends, and the window does not grow while above its target
        (Linux's ``cnt = 100 cwnd``).
        """
        tcp = self.tcp
        segment = tcp.mss_bytes * tcp.parallel_streams
        t = now - conn.ca_start_s
        cubic = conn.cubic
        if cubic is None:
            target = segment * cubic_window_segments(t, conn.ca_origin / segment, conn.rtt_s)
            gain = (target - conn.cwnd) / conn.cwnd
            return conn.round_sent * max(1 / CUBIC_ACKS_PER_SEGMENT, min(0.5, gain))
        cubic.acked_windows += conn.round_sent / conn.cwnd
        w_max = cubic.w_max_bytes / segment
        target = segment * cubic_window_segments(t, conn.ca_origin / segment, conn.rtt_s,
                                                 w_max, acked_windows=cubic.acked_windows)
        gain = (target - conn.cwnd) / conn.cwnd
        floor = 0.0 if w_max else 1 / CUBIC_ACKS_PER_SEGMENT
        return conn.round_sent * max(floor, min(0.5, gain))

    # -- the bottleneck buffer (TcpConfig.bottleneck_buffer_bytes) -----------------------------

    def _join_queue(self, conn: Connection, flow: Flow) -> None:
        """The head starts: its connection's windows stand in its bottleneck's buffer.

        The bottleneck is the first link of least capacity on the forward path (as for
        HyStart's delay test). A connection with no RTT sends as a fluid flow and joins none.
        """
        cubic = conn.cubic
        assert cubic is not None
        if not flow.links or conn.rtt_s <= 0:
            cubic.queue = None
            return
        link = self._bottleneck_link(flow)
        queue = self._queues.get(link)
        if queue is None:
            buffer_bytes = self.tcp.bottleneck_buffer_bytes(self.capacity_Bps[link])
            queue = self._queues[link] = DropTail(link, buffer_bytes * self.efficiency)
        queue.conns[conn] = None
        cubic.queue = queue

    def _bottleneck_link(self, flow: Flow) -> int:
        """The first link of least capacity on ``flow``'s path: where its windows queue."""
        return min(flow.links, key=self.capacity_Bps.__getitem__)

    @staticmethod
    def _leave_queue(conn: Connection) -> None:
        """The head ends or is stopped: its window leaves its bottleneck's buffer."""
        cubic = conn.cubic
        if cubic is not None and cubic.queue is not None:
            del cubic.queue.conns[conn]
            cubic.queue = None

    def _in_flight(self, conn: Connection) -> float:
        """Bytes ``conn`` has or will have in flight in its open round.

        Its window, or what is left of its message if less.
        """
        flow = conn.head
        assert flow is not None
        return min(conn.round_window, conn.round_sent + flow.left)

    def _queue_round(self, conn: Connection, cubic: CubicState, now: float) -> None:
        """Set the round trip of the round opening now: RTT + the bottleneck's queueing delay.

        The delay is what the windows of every connection there, this round's included, make
        stand in the buffer (:func:`sim.network.droptail.queueing_delay_s`), at most the
        buffer's; beyond it the buffer overflows and every connection there has a loss event
        (:meth:`_overflow`).
        """
        queue = cubic.queue
        if queue is None:
            cubic.delay_s = 0.0
            return
        capacity = self.capacity_Bps[queue.link] * self.efficiency
        if capacity <= 0:
            cubic.delay_s = 0.0
            return
        conns = queue.conns
        delay = queueing_delay_s([self._in_flight(c) for c in conns],
                                 [c.rtt_s for c in conns], capacity)
        if delay * capacity > queue.buffer_bytes:
            delay = queue.buffer_bytes / capacity
            self._overflow(queue, now)
        cubic.delay_s = delay

    @staticmethod
    def _overflow(queue: DropTail, now: float) -> None:
        """The buffer overflowed at ``now``: drop-tail drops what every connection there sends.

        Each connection has a loss event, answered when its next round opens, unless it is
        still in the round trip after it answered its last one (a loss epoch: CUBIC reduces
        once per window of data).
        """
        queue.overflows += 1
        for c in queue.conns:
            cubic = c.cubic
            assert cubic is not None
            if not cubic.loss_pending and now - cubic.loss_s >= c.rtt_s + cubic.delay_s:
                cubic.loss_pending = True

    def _answer_loss(self, conn: Connection, cubic: CubicState, now: float) -> None:
        """CUBIC's answer to the loss event seen now: beta x the window, W_max, a new epoch.

        The window at the loss is the last round's (:func:`~sim.network.droptail.
        reduced_window_bytes`: fast convergence, at least 2 segments); slow start ends, and
        the growth of :meth:`_avoidance_growth` starts from the reduced window towards W_max.
        """
        tcp = self.tcp
        segment = tcp.mss_bytes * tcp.parallel_streams
        conn.cwnd, cubic.w_max_bytes = reduced_window_bytes(conn.cwnd, cubic.w_max_bytes,
                                                            CUBIC_BETA, 2 * segment)
        cubic.loss_pending = False
        cubic.loss_s = now
        cubic.losses += 1
        self._leave_slow_start(conn, now)  # (or congestion avoidance: a new epoch either way)

    def _queued_behind_bursts(self, conn: Connection, now: float) -> bool:
        """Whether HyStart's delay test fires on the ACKs of the round that opens now.

        The connection's bottleneck is the first link of least capacity on its path. In slow
        start a sender sends two segments per segment ACKed, so a round's window reaches the
        bottleneck at twice the rate its previous round left it: half of it queues there (its
        excess), and the queue drains at the link's usable rate. ``_burst_queue`` keeps that
        queue per link, fed by every slow-start round on it. The round's first segments wait
        behind the queue the rounds opened before it left (connections that open rounds at the
        same instant queue in the order they open them, as the ACK clock keeps the order of
        their first windows); the minimum RTT of the first ACKs (:data:`HYSTART_MIN_SAMPLES`)
        is the min RTT plus that wait, and the test fires when it exceeds eta
        (:meth:`TcpConfig.hystart_delay_threshold_s`), for windows of at least
        :data:`HYSTART_LOW_WINDOW_SEGMENTS`. A connection alone on its bottleneck never
        queues behind its own last round (the pipe was not full: it drained in under an RTT).
        """
        tcp = self.tcp
        flow = conn.head
        if flow is None or not flow.links or conn.rtt_s <= 0:
            return False
        link = self._bottleneck_link(flow)
        usable = self.capacity_Bps[link] * self.efficiency
        since, queue = self._burst_queue.get(link, (now, 0.0))
        queue = max(0.0, queue - usable * (now - since))
        self._burst_queue[link] = (now, queue + conn.round_window / 2)
        if conn.cubic is not None:
            queue += conn.cubic.delay_s * usable  # the queue the windows keep standing there
        low = HYSTART_LOW_WINDOW_SEGMENTS * tcp.mss_bytes * tcp.parallel_streams
        return (conn.round_window >= low
                and queue > tcp.hystart_delay_threshold_s(conn.rtt_s) * usable)

    def _take(self, conn: Connection, flow: Flow, nbytes: float, now: float) -> float:
        """Count ``nbytes`` of the head as a chunk starting now; returns ``nbytes``."""
        flow.left -= nbytes
        conn.round_sent += nbytes
        conn.chunk_start_s = now
        return nbytes

    @staticmethod
    def _chunk_ended(conn: Connection, now: float) -> None:
        """The chunk's last byte left at ``now``."""
        conn.last_sent_s = now
        conn.round_busy_s += now - conn.chunk_start_s

    # -- on the simulator's clock --------------------------------------------------------------

    def _attach(self, conn: Connection, flow: Flow, nbytes: float, now: float) -> None:
        """Hand ``nbytes`` of the head to the model at ``now`` (the chunk's bookkeeping is done).

        ``now`` is the simulator's time, which the caller has read already.
        """
        if self._ramp_on:
            for link in conn.links:  # a ramp there is no longer alone
                other = self._ramp_on.get(link)
                if other is not None:
                    self._materialise(other)
        flow.remaining = nbytes
        flow.last_s = now
        flow.rate = 0.0  # a chunk joins its links as a new flow (the model rates it afresh)
        flow.attached = True
        self._start(flow)  # (the model's)

    def _wake_at(self, conn: Connection, when_s: float, now: float) -> None:
        """Pump ``conn`` again at ``when_s`` (its round's or its handshake's end).

        ``now`` is the simulator's time, which the caller has read already.

        Connections that wake at the same instant share one SimPy timer, as long as nothing
        else was scheduled at that instant after it: the simulator would have processed their
        own timers one after the other, in the order they were set, with nothing in between
        (a wake schedules nothing at its own instant ahead of the next wake: no process, no
        interrupt), so pumping them from one callback in that order is the same run with
        fewer events. In the tree all-reduce of clusters-of-clusters the ~113 connections of
        a WAN link wake together every round: 28,000 timers become about 500
        (``test_wakes_at_one_instant_share_a_timer_and_change_nothing``). The test asks the
        engine which event it filed last at that instant
        (:meth:`sim.world.Environment.last_scheduled`); on another environment every wake
        has its own timer.
        """
        conn.token += 1
        env = self.env
        delay = when_s - now
        if delay < 0.0:
            delay = 0.0
        at = now + delay  # the instant the queue files the timer under
        wakes = self._wakes
        if (wakes is not None and self._wakes_at_s == at and self._last_scheduled is not None
                and self.shared_wakes and self._last_scheduled(at) is wakes):
            wakes.value.append((conn, conn.token))
            return
        self._wakes = Timer(env, delay, [(conn, conn.token)], self._on_wakes)
        self._wakes_at_s = at

    def _on_wakes(self, timer: Timer) -> None:
        """Pump the timer's batch of connections in the order they asked for their wakes.

        A wake is stale when the connection's token moved since (it set a later wake, its
        message was stopped or took a ramp) or it has no message: those are skipped.
        """
        if self._wakes is timer:
            self._wakes = None  # later wakes at this instant take a new timer
        now = self.env.now
        conns: list[tuple[Connection, int]] = timer.value
        for conn, token in conns:
            if token == conn.token and conn.head is not None:
                if conn.paced:
                    self._paced_round_end(conn, now)
                else:
                    self._pump(conn, now)

    # -- on a virtual clock: a connection alone on its links -------------------------------

    def _leaf_edges(self) -> frozenset[int]:
        """Edges that carry the same messages as an access link: their senders are not counted.

        The edge of a site with one node and one neighbour carries exactly its node's access
        link's messages (:meth:`Network._leaf_access_edges`), so a path there and back crosses
        the edge exactly when it crosses the access link: the two links' sender counts are
        always equal, and :meth:`_alone` and the ramps' link table
        (:meth:`_attach`, :meth:`_start_ramp`) find the same connections on the access link
        alone. Only where the access link is finite (a path holds its finite links only). A
        message across data centres then counts 6 links there and back instead of 10, and
        so does every test of its being alone (at each paced round's end).
        """
        capacity = self.capacity_Bps
        return frozenset(edge for access, edge in self._leaf_access_edges()
                         if capacity[access] < INF)

    def _count_head(self, conn: Connection, delta: int) -> None:
        """The head starts (+1) or stops (-1) being sent across its links there and back."""
        if self.shares_links:
            senders = self._senders
            for link in conn.links:
                senders[link] += delta

    def _alone(self, conn: Connection) -> bool:
        """No other message is being sent across the links of the head's path there and back.

        Stricter than the model's test (no other chunk on the path now): a connection between
        two rounds would take a ramp over at its next round, so a ramp is not worth starting.
        The way back counts too: a model may load it (ACKs), so a flow there could change
        this one's rate or this one its. A path whose two ways share a link counts twice on
        it, so it never ramps (its own ACKs could slow it). The edges of one-node leaf sites
        are tested through their access links, which carry the same messages
        (:meth:`_leaf_edges`).
        """
        if not self.shares_links:
            return True
        senders = self._senders
        for link in conn.links:
            if senders[link] != 1:
                return False
        return True

    def _run_lone(self, conn: Connection, flow: Flow, rate_Bps: float, now: float,
                  until_s: float) -> tuple[int, float, float]:
        """Run the round logic from ``now`` with every chunk sent at ``rate_Bps``.

        Chunk ends and round timers fall where the clock would put them (``t + nbytes / rate``
        and ``t + max(0, when - t)``, as the model's and :meth:`_wake_at`'s timers do). Stops
        at the first of them at or after ``until_s``, or when the message's last byte left
        (only with ``until_s`` infinite). Returns (``_SEND``, the chunk's start, its bytes),
        (``_WAIT``, the timer's start, when it fires), (``_PACED``, the paced round's start,
        the message's bytes unsent then: every byte sent at ``min(rate_Bps, window / RTT)``)
        or (``_DONE``, the end, 0). A paced round runs one round at a time here (its end is a
        step of this loop); its state is the one :meth:`_paced_round` sets.
        """
        step, ended = self._step, self._chunk_ended
        t = now
        while True:
            if conn.paced:  # a paced round opened at t: its end, as _wake_at's timer falls
                end_s = t + max(0.0, conn.round_start_s + conn.rtt_s - t)
                if end_s >= until_s:
                    return _PACED, t, conn.paced_from
                cap = conn.round_window / conn.rtt_s
                unsent = conn.paced_from - min(rate_Bps, cap) * (end_s - t)
                self._close_paced_round(conn, flow, unsent if unsent > 0.0 else 0.0, end_s)
                t = end_s
                continue
            send, value = step(conn, flow, t)
            if send and self._paces(conn, flow, value, t):  # (as _paced_round, on this clock)
                conn.paced, conn.paced_from = True, value + flow.left
                flow.left = 0.0
                continue
            if send:
                end_s = t + value / rate_Bps
                if end_s >= until_s or (flow.left <= 0 and until_s < INF):
                    return _SEND, t, value
                ended(conn, end_s)
                if flow.left <= 0:
                    return _DONE, end_s, 0.0
                t = end_s
            else:
                wake_s = t + max(0.0, value - t)
                if wake_s >= until_s:
                    return _WAIT, t, value
                t = wake_s

    def _start_ramp(self, conn: Connection, flow: Flow, rate_Bps: float, now: float) -> None:
        """Run the head's rounds to its end now, and wait for that end with one timer.

        Ramps that start at one instant from equal inputs share one run of the rounds
        (:attr:`shared_ramps`): the round logic on the virtual clock is a function of the
        connection's round state (:data:`ROUND_STATE`), its RTT and handshake end, the bytes
        left, the rate, the path's bottleneck capacity and the start instant (no ramp runs
        where HyStart's delay exit reads the burst queue), so a second ramp with the same
        inputs reaches the same state, bit for bit: it takes the first one's. In a synchronous
        all-reduce of equal nodes every message of a tree round is such a ramp.
        """
        state = _round_state(conn)
        left = flow.left
        ramp = LoneRamp(conn, now, state, left, rate_Bps)
        if self._ramps_at_s != now:
            self._ramps_at.clear()  # inputs of earlier instants never come again
            self._ramps_at_s = now
        key = (state, left, rate_Bps, conn.rtt_s, conn.ready_s, flow.bottleneck_Bps)
        found = self._ramps_at.get(key) if self.shared_ramps else None
        if found is None:
            rounds = self.rounds_started
            _, end_s, _ = self._run_lone(conn, flow, rate_Bps, now, INF)
            ramp.rounds, self.rounds_started = self.rounds_started - rounds, rounds
            self._ramps_at[key] = (end_s, _round_state(conn), flow.left, ramp.rounds)
        else:
            end_s, reached, flow.left, ramp.rounds = found
            for name, value in zip(ROUND_STATE, reached, strict=True):
                setattr(conn, name, value)
            self.ramps_shared += 1
        conn.ramp = ramp
        conn.token += 1
        self.ramps_started += 1
        if self.shares_links:
            ramp_on = self._ramp_on
            for link in conn.links:
                ramp_on[link] = conn
        Timer(self.env, max(0.0, end_s - now), ramp, self._on_ramp_end)

    def _end_ramp(self, conn: Connection) -> LoneRamp:
        ramp = conn.ramp
        assert ramp is not None and conn.head is not None
        conn.ramp = None
        if self.shares_links:
            ramp_on = self._ramp_on
            for link in conn.links:
                del ramp_on[link]
        return ramp

    def _on_ramp_end(self, timer: Timer) -> None:
        ramp = cast(LoneRamp, timer.value)
        conn = ramp.conn
        if conn.ramp is not ramp:
            return  # materialised or stopped before its end
        self._end_ramp(conn)
        self.rounds_started += ramp.rounds
        flow = conn.head
        assert flow is not None
        self._message_sent(conn, flow)

    def _materialise(self, conn: Connection, attach: bool = True) -> float | None:
        """Hand a ramp's state at now to the per-round mechanism.

        The rounds are run again from the ramp's start up to now; what they reach is made
        real (with ``attach``): the chunk being sent goes to the model with the bytes it has
        left (its start and the round's bookkeeping are the virtual ones), or the timer of the
        next round is set. Returns the chunk's bytes left, or None between chunks.
        """
        ramp = self._end_ramp(conn)
        flow = conn.head
        assert flow is not None
        self.ramps_interrupted += 1
        for name, value in zip(ROUND_STATE, ramp.state, strict=True):
            setattr(conn, name, value)
        flow.left = ramp.left
        now = self.env.now
        what, t, value = self._run_lone(conn, flow, ramp.rate_Bps, ramp.start_s, now)
        if what == _PACED:  # in a paced round: on the links with its cap until the round's end
            cap = conn.round_window / conn.rtt_s
            unsent = max(0.0, value - min(ramp.rate_Bps, cap) * (now - t))
            if attach:
                self.rounds_paced += 1
                self._set_cap(flow, cap)
                self._attach(conn, flow, unsent, now)
                self._wake_at(conn, conn.round_start_s + conn.rtt_s, now)
            return unsent
        if what == _SEND:
            unsent = max(0.0, value - ramp.rate_Bps * (now - t))
            if attach:
                self._attach(conn, flow, unsent, now)
            return unsent
        if attach:
            self._wake_at(conn, value, now)
        return None


def slow_start_send_time_s(nbytes: float, rtt_s: float, rate_Bps: float,
                           initial_window_bytes: float = 14480.0,
                           max_window_bytes: float = INF) -> float:
    """Closed form: time from a cold connection's first byte to its last byte leaving.

    Rounds of one RTT; round i may send ``w_i = min(IW 2^i, max_window)`` bytes at
    ``rate_Bps``. While ``w_i / rate < RTT`` the round ends with the window sent and the sender
    waits for the next round; the first round with ``w_i / rate >= RTT`` fills the pipe and the
    rest goes at ``rate_Bps`` (or at ``max_window / RTT`` if the cap binds). Add the one-way
    latency for the delivery time. This is what :class:`TcpTransport` does for a lone flow.
    """
    if nbytes <= 0:
        return 0.0
    t, left, window = 0.0, float(nbytes), float(initial_window_bytes)
    while True:
        window = min(window, max_window_bytes)
        if window / rate_Bps >= FULL_ROUND * rtt_s:
            return t + left / rate_Bps
        if left <= window:
            return t + left / rate_Bps
        if window >= max_window_bytes:  # capped: a window per RTT from now on
            rounds = math.ceil(left / window) - 1
            return t + rounds * rtt_s + (left - rounds * window) / rate_Bps
        left -= window
        t += rtt_s
        window *= 2


def cubic_window_segments(t_s: float, origin_segments: float, rtt_s: float,
                          w_max_segments: float = 0.0,
                          acked_windows: float | None = None) -> float:
    """CUBIC's target window ``t_s`` into an epoch that started at ``origin_segments``.

    ``max(W_cubic(t + RTT), W_est(t))``, RFC 8312 with Linux's choices (``bictcp_update`` aims
    at where the curve will be one RTT later): the cubic curve ``W_cubic(t) = C (t - K)^3 +
    W_top`` with C = :data:`CUBIC_C`. After a loss (``w_max_segments`` above the epoch's
    window) ``W_top`` = W_max and ``K = ((W_max - W_origin) / C)^(1/3)``, the time the curve
    takes back to W_max (``(W_max (1 - beta) / C)^(1/3)`` after a reduction by beta); with no
    W_max known (0, before any loss, e.g. after HyStart's exit) or one below the window,
    K = 0 and ``W_top`` = W_origin. The Reno-friendly estimate ``W_est = W_origin + 3 (1 -
    beta) / (1 + beta) n`` (beta = :data:`CUBIC_BETA`) starts at the epoch's window and grows
    with n, the windows ACKed since (Linux counts ACKs): ``acked_windows``, or ``t / RTT``
    when every round trip lasts the RTT (None).
    """
    if w_max_segments > origin_segments:
        k_s = ((w_max_segments - origin_segments) / CUBIC_C) ** (1 / 3)
        cubic = w_max_segments + CUBIC_C * (t_s + rtt_s - k_s) ** 3
    else:
        cubic = origin_segments + CUBIC_C * (t_s + rtt_s) ** 3
    if acked_windows is not None:
        reno = origin_segments + RENO_FRIENDLY_SEGMENTS_PER_RTT * acked_windows
    else:
        reno = (origin_segments + RENO_FRIENDLY_SEGMENTS_PER_RTT * t_s / rtt_s if rtt_s > 0
                else 0.0)
    return max(cubic, reno)


def idle_restart_window_bytes(cwnd_bytes: float, idle_s: float, rto_s: float,
                              initial_window_bytes: float) -> float:
    """The window a connection restarts slow start with after ``idle_s`` of silence.

    Linux ``tcp_cwnd_restart``: once the connection has been idle longer than its RTO the window
    is halved once per RTO of idleness, but not below the restart window ``min(IW, cwnd)``.
    ``idle_s <= rto_s`` leaves the window as it is (and slow start is not restarted).

    The halvings stop at the restart window after h = ceil(log2(cwnd / restart)) of them, and
    H = log2(cwnd / restart) + 2 bounds h from above (a rounded log2 is far within 1 of its
    value). An idle time of more than 2 (H + 1) RTOs (a message after a training step) gives
    the restart window without the loop, exactly: h halvings take h RTOs off the idle time,
    and the loop's float subtractions lose at most a 2^-53 part of it each, far less than the
    margin, so the loop would reach the restart window as well.
    """
    if idle_s <= rto_s:
        return cwnd_bytes
    restart = min(initial_window_bytes, cwnd_bytes)
    if idle_s > 2 * (math.log2(cwnd_bytes / restart) + 3) * rto_s:
        return restart  # (the loop below, which would end at the restart window)
    cwnd = cwnd_bytes
    while idle_s > rto_s and cwnd > restart:
        cwnd /= 2
        idle_s -= rto_s
    return max(cwnd, restart)


def slow_start_window_after(nbytes: float, rtt_s: float, rate_Bps: float,
                            initial_window_bytes: float = 14480.0,
                            max_window_bytes: float = INF) -> tuple[float, bool]:
    """``(cwnd, still in slow start)`` of a lone connection after sending ``nbytes``.

    The rounds of :func:`slow_start_send_time_s`: the window doubles from
    ``initial_window_bytes`` each round. :class:`TcpTransport` ends slow start when the next
    round opens after a round that took a whole RTT to send (the pipe was full: ``cwnd`` stays
    that round's window) or when the window reaches ``max_window_bytes``; a message that ends
    before then leaves the connection in slow start with the window of its last round.
    """
    sent, window = 0.0, min(float(initial_window_bytes), max_window_bytes)
    while True:
        full = window / rate_Bps >= FULL_ROUND * rtt_s
        if sent + window >= nbytes:             # the message ends in this round
            return window, True
        sent += window
        if full:
            return window, False                # the next round finds the pipe was full
        grown = min(2 * window, max_window_bytes)
        if grown >= max_window_bytes:
            return grown, False                 # the next round opens at the cap
        window = grown
