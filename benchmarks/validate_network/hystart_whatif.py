"""What-if, not the transport: flows started together with window-set rates and loss epochs.

    python benchmarks/validate_network/hystart_whatif.py

The delay-line lab's "together" rows (docs/network-model.md, "HyStart's delay exit for flows
started together") take 14-30% longer on Linux than dtsim's ``tcp`` predicts, with or without
``hystart_delay_exit``: the exits agree with the kernel's, the completion times do not. This
script asks whether the two pieces the transport leaves out explain the rest. It is a
per-round-trip fluid sketch of k connections into one bottleneck, nothing else:

- **slow start with HyStart's delay exit** as ``TcpConfig.hystart_delay_exit`` models it: each
  round doubles the window; the j-th connection's round waits behind half the windows of the
  rounds ahead of it; past eta it leaves one round later at its window + 8 segments;
- **rates set by the windows behind one drop-tail queue** (what the transport does not do: it
  gives max-min shares): in a round trip every connection sends its window; the round trip is
  the path's RTT plus the queue, the windows' sum beyond the pipe B;
- **loss epochs at a full buffer** (the transport models no loss and its links no buffer):
  when the windows' sum exceeds B + Q every connection loses (drop-tail overflows hit them
  all), and CUBIC answers (RFC 8312 with Linux's choices): W_max = the window (with fast
  convergence, (1 + beta) / 2 of it below the last W_max), the window times beta = 0.7, and from
  then on ``max(W_max + C (t - K)^3, W_est)`` with K = (W_max (1 - beta) / C)^(1/3), C = 0.4,
  the Reno-friendly W_est growing 3 (1 - beta) / (1 + beta) segments per RTT, approached by at
  most 50% per RTT; before the first loss, the floor of 5% per RTT while W_max is unknown.

Constants are the protocol's and the lab's (100 Mbit/s x 1448 / 1514, min RTT 40.4 ms, the
tbf queue of 333 packets, eta 5 ms); nothing is fitted. It prints each case's completion times
against Linux's median (the shipped runs). A step is one round trip, so it is a sketch: it
says which mechanisms matter, not what a model of them in the transport would predict.
That model is now in the transport, as an option (``TcpConfig.bottleneck_queue_bytes`` with
``hystart_delay_exit``; docs/network-model.md, "A bottleneck buffer": -14.4 / -4.0 / -7.4% of
Linux on these cases, the delay-line table's ``tcp + delay exit + queue`` column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.network.tcp import (
    CUBIC_ACKS_PER_SEGMENT,
    CUBIC_BETA,
    CUBIC_C,
    HYSTART_LOW_WINDOW_SEGMENTS,
    HYSTART_MIN_SAMPLES,
    RENO_FRIENDLY_SEGMENTS_PER_RTT,
)
from sim.usage import OneLineParser, checked, refusing

PROG = "benchmarks/validate_network/hystart_whatif.py"

MSS = 1448
C, BETA = CUBIC_C, CUBIC_BETA
"""CUBIC's constants, the transport's (0.4 segments / s^3, 0.7)."""
LINUX_MEDIAN_S = {2: 2.406, 4: 4.897, 8: 7.830}
"""Linux's median completion of 2, 4, 8 flows of 10 MB together (delayline_runs.json)."""


@dataclass
class Sender:
    """One connection's window (segments) and CUBIC's state."""

    left: float
    cwnd: float = 10.0
    slow_start: bool = True
    fired: bool = False       # HyStart's delay test fires on this round's ACKs
    w_max: float = 0.0        # 0: no loss yet (Linux's 5% floor applies)
    epoch_s: float = 0.0
    origin: float = 0.0
    k_s: float = 0.0
    w_est: float = 0.0
    done_s: float | None = None

    def start_epoch(self, now: float, origin: float) -> None:
        self.epoch_s, self.origin, self.w_est = now, origin, self.cwnd
        self.k_s = (self.w_max * (1 - BETA) / C) ** (1 / 3) if self.w_max else 0.0



def completion_times(k: int, *, rate_Bps: float = 12.5e6 * 1448 / 1514, rtt_s: float = 0.0404,
                     queue_pkts: float = 333, nbytes: float = 10e6,
                     eta_s: float = 0.005) -> list[float]:
    """Each of ``k`` connections' completion time (s), in the order they finish."""
    pipe = rate_Bps * rtt_s / MSS
    eta = eta_s * rate_Bps / MSS
    senders = [Sender(left=nbytes) for _ in range(k)]
    now = 0.0
    while any(s.done_s is None for s in senders):
        active = [s for s in senders if s.done_s is None]
        total = sum(s.cwnd for s in active)
        rtt = rtt_s + max(0.0, total - pipe) * MSS / rate_Bps
        for s in active:
            sent = s.cwnd * MSS
            if sent >= s.left:
                s.done_s = now + rtt * s.left / sent
            s.left -= sent
        now += rtt
        active = [s for s in active if s.done_s is None]
        if total > pipe + queue_pkts:  # the buffer overflowed: every connection loses
            for s in active:
                s.w_max = s.cwnd * (1 + BETA) / 2 if s.cwnd < s.w_max else s.cwnd
                s.cwnd = max(2.0, BETA * s.cwnd)
                s.slow_start = s.fired = False
                s.start_epoch(now, s.w_max)
            continue
        ahead = 0.0  # half the windows of the slow-start rounds ahead, segments
        for s in active:
            if s.slow_start:
                if s.fired:
                    s.cwnd += HYSTART_MIN_SAMPLES
                    s.slow_start = False
                    s.start_epoch(now, s.cwnd)
                    continue
                s.fired = 2 * s.cwnd >= HYSTART_LOW_WINDOW_SEGMENTS and ahead > eta
                ahead += s.cwnd
                s.cwnd *= 2
                continue
            s.w_est += RENO_FRIENDLY_SEGMENTS_PER_RTT
            target = max(s.origin + C * (now - s.epoch_s + rtt - s.k_s) ** 3, s.w_est)
            floor = 1 / CUBIC_ACKS_PER_SEGMENT if not s.w_max else 0.0
            s.cwnd *= 1 + max(floor, min(0.5, (target - s.cwnd) / s.cwnd))
    return sorted(s.done_s for s in senders if s.done_s is not None)


@refusing(PROG)
def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--queue-pkts", type=float, default=333,
                        help="the bottleneck's drop-tail queue, packets (the lab's: 333)")
    args = parser.parse_args(argv)
    checked("--queue-pkts", args.queue_pkts, lambda q: 0 <= q < math.inf,
            "a number of packets >= 0")
    print("| flows | what-if s | Linux median s | error | each connection ends (s) |")
    print("|---|---|---|---|---|")
    for k, linux in LINUX_MEDIAN_S.items():
        ends = completion_times(k, queue_pkts=args.queue_pkts)
        print(f"| {k} | {ends[-1]:.3f} | {linux:.3f} | {ends[-1] / linux - 1:+.1%} | "
              + ", ".join(f"{e:.2f}" for e in ends) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
