"""Validation cases: a star of hosts and a set of messages, predicted by dtsim.

A :class:`Case` is what the packet-level reference (``benchmarks/validate_network/
ns3_reference.py``) and the real-network reference (``netns_reference.py``) run: every host joins
one switch by a link of ``rate_bps`` both ways and one-way delay ``delay_s``, and message ``m``
is sent from ``src`` to ``dst`` once the time is ``start_s`` and every message in ``deps`` has
been delivered. :func:`predict` runs the same case in dtsim (access links ``up:i`` and ``down:i``
of ``rate_bps / 8`` bytes/s, access latency ``delay_s``) and returns each message's delivery
time, so the test suite can compare dtsim with the shipped reference tables without ns-3.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from sim.config import NetworkConfig
from sim.network.tcp import TcpConfig
from sim.world import World
from topologies import uniform

NS3_TCP = TcpConfig(frame_bytes=1502, slow_start_after_idle=False, hystart_short_rtt_exit=True,
                    ack_frame_bytes=54, segments_per_ack=2)
"""The tcp transport as the ns-3 reference runs TCP: point-to-point links (PPP framing: 1448 +
32 TCP + 20 IP + 2 PPP = 1502 wire bytes per segment, 54 per ACK with timestamps), ns-3's
delayed ACKs (every 2 segments), no restart after idle, HyStart's ACK train of Linux < 5.7."""

ACK_EVERY_SEGMENT = "[ack every segment]"
"""Marks the reference cases that ns-3 ran with ``DelAckCount = 1``."""


def ns3_tcp(case: Case) -> TcpConfig:
    """:data:`NS3_TCP` for ``case``, with one ACK per segment where the reference had that."""
    return replace(NS3_TCP, segments_per_ack=1) if ACK_EVERY_SEGMENT in case.name else NS3_TCP


@dataclass(frozen=True, kw_only=True)
class Message:
    """One message: ``nbytes`` from host ``src`` to ``dst``, no earlier than ``start_s``."""

    src: int
    dst: int
    nbytes: float
    start_s: float = 0.0
    deps: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Case:
    """A validation case: hosts on a star and the messages between them.

    rate_bps, delay_s:
        Per host: link rate, bits/s (both directions), and one-way delay to the switch, s.
    queue_pkts:
        Per host: drop-tail queue of each end of its link, packets (packet references only).
    """

    name: str
    kind: str
    rate_bps: tuple[float, ...]
    delay_s: tuple[float, ...]
    queue_pkts: tuple[int, ...] = ()
    down_bps: tuple[float, ...] = ()
    """Per host: downlink rate, bits/s, where it differs from ``rate_bps`` (asymmetric)."""
    messages: tuple[Message, ...] = ()
    params: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """The case as one JSON string (a CSV cell)."""
        return json.dumps({"rate_bps": self.rate_bps, "delay_s": self.delay_s,
                           "queue_pkts": self.queue_pkts, "down_bps": self.down_bps,
                           "messages": [[m.src, m.dst, m.nbytes, m.start_s, list(m.deps)]
                                        for m in self.messages]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, kind: str, text: str) -> Case:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        messages = tuple(Message(src=s, dst=t, nbytes=b, start_s=a, deps=tuple(p))
                         for s, t, b, a, p in d["messages"])
        return cls(name=name, kind=kind, rate_bps=tuple(d["rate_bps"]),
                   delay_s=tuple(d["delay_s"]), queue_pkts=tuple(d["queue_pkts"]),
                   down_bps=tuple(d.get("down_bps", ())), messages=messages)

    def makespan_s(self, delivered_s: list[float]) -> float:
        """Last delivery minus first start."""
        return max(delivered_s) - min(m.start_s for m in self.messages)

    def completion_s(self, delivered_s: list[float]) -> float:
        """The figure a case is judged by.

        The makespan; for ``spaced`` messages (sent with idle gaps between them) the sum of
        their durations.
        """
        if self.kind == "spaced":
            return sum(self.durations_s(delivered_s))
        return self.makespan_s(delivered_s)

    def durations_s(self, delivered_s: list[float]) -> list[float]:
        """Each message's delivery minus its own start time."""
        return [d - m.start_s for d, m in zip(delivered_s, self.messages)]


def with_bottleneck_queue(case: Case, tcp: TcpConfig) -> TcpConfig:
    """``tcp`` with the case's drop-tail queue as every link's buffer (``bottleneck_queue_bytes``).

    A reference's queue is counted in full packets (ns-3's device queue of ``queue_pkts``
    packets; the Linux lab's ``tc tbf limit`` of ``queue_pkts`` full packets' bytes), so the
    buffer is ``queue_pkts x frame_bytes`` wire bytes, ``queue_pkts`` segments of payload.
    Every case of the grid gives all its hosts one queue size; the largest is taken (none: 0,
    no buffer modelled).
    """
    return replace(tcp, bottleneck_queue_bytes=float(max(case.queue_pkts, default=0)
                                                     * tcp.frame_bytes))


def predict(case: Case, *, transport: str = "tcp", model: str = "maxmin",
            tcp: TcpConfig | None = None) -> list[float]:
    """Delivery time of every message of ``case`` in dtsim (s)."""
    n = len(case.rate_bps)
    topo = uniform(n)
    up = tuple(r / 8 for r in case.rate_bps)
    down = tuple(r / 8 for r in case.down_bps) if case.down_bps else up
    topo = replace(topo, uplink_Bps=up, downlink_Bps=down, access_latency_s=tuple(case.delay_s))
    world = World(topo, network=NetworkConfig(model=model, transport=transport,
                                              tcp=tcp if transport == "tcp" else None))
    messages = case.messages
    delivered = [-1.0] * len(messages)
    launched = [False] * len(messages)
    env, net = world.env, world.network

    def launch_ready() -> None:
        for m, msg in enumerate(messages):
            if launched[m] or env.now < msg.start_s - 1e-12:
                continue
            if any(delivered[d] < 0 for d in msg.deps):
                continue
            launched[m] = True
            ev = net.transfer(msg.src, msg.dst, msg.nbytes)
            ev.callbacks.append(functools.partial(on_delivery, m))

    def on_delivery(m: int, ev) -> None:
        delivered[m] = ev.value.end_s
        launch_ready()

    for t in sorted({msg.start_s for msg in messages}):
        env.timeout(t).callbacks.append(lambda _e: launch_ready())
    env.run()
    return delivered


def schedule_messages(schedule: list[list[tuple[int, int, float]]], *, start_s: float = 0.0,
                      window: int = 1, fences: tuple[int, ...] = (),
                      notice_bytes: float | None = None) -> tuple[Message, ...]:
    """A collective's schedule as messages with dtsim's executor's dependencies.

    A node sends its messages of a round once its sends and receives of its earlier rounds
    are delivered, as :func:`sim.collectives.run_schedule` does; with a ``window`` of ``w`` only
    those of its rounds up to ``w`` back, except at ``fences``. With ``notice_bytes`` (a
    rendezvous) each message is preceded by its receiver's notice, sent from receiver to sender
    once the receiver's own earlier rounds allow it to open the round, and the message waits
    for it too.
    """
    messages: list[Message] = []
    rounds_of: dict[int, list[list[int]]] = {}  # node -> message ids of each of its rounds

    def opened(node: int, r: int) -> tuple[int, ...]:
        """The messages ``node`` must have had delivered before it opens round ``r``."""
        mine = rounds_of.get(node, [])
        cut = len(mine) if r in fences else len(mine) - window + 1
        if window > 1 or fences:
            return tuple(m for ids in mine[:max(0, cut)] for m in ids)
        return tuple(mine[-1]) if mine else ()

    for r, rnd in enumerate(schedule):
        this: dict[int, list[int]] = {}
        for src, dst, nbytes in rnd:
            deps = opened(src, r)
            if notice_bytes is not None:
                messages.append(Message(src=dst, dst=src, nbytes=notice_bytes, start_s=start_s,
                                        deps=opened(dst, r)))
                deps = (*deps, len(messages) - 1)
            messages.append(Message(src=src, dst=dst, nbytes=nbytes, start_s=start_s,
                                    deps=deps))
            this.setdefault(src, []).append(len(messages) - 1)
            this.setdefault(dst, []).append(len(messages) - 1)
        for node, ids in this.items():
            rounds_of.setdefault(node, []).append(ids)
    return tuple(messages)


def read_reference(path: str | Path) -> list[tuple[Case, list[float]]]:
    """The cases of a reference CSV and the delivery times measured for each message."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            case = Case.from_json(row["case"], row["kind"], row["spec"])
            rows.append((case, json.loads(row["delivered_s"])))
    return rows


def write_reference(path: str | Path, results: list[tuple[Case, list[float]]]) -> None:
    """Write cases and their measured delivery times (``read_reference`` reads it back)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "kind", "spec", "delivered_s"])
        for case, delivered in results:
            writer.writerow([case.name, case.kind, case.to_json(),
                             json.dumps([round(x, 9) for x in delivered])])
