"""What-if, not the transport: would shares biased by RTT predict ns-3's unequal-RTT fan-ins?

    python benchmarks/validate_network/rtt_bias_whatif.py [--csv PATH_TO_REFERENCE_CSV]

Issue 12 asks for "per-flow shares: today's max-min, plus an option for the RTT bias TCP is
known for, if the reference shows it helps". TCP's known bias: under synchronised losses Reno's
windows grow one segment per RTT, so a connection's rate goes as RTT^-2 (Lakshman and Madhow,
1997); CUBIC's window is a function of the time since the last loss, not of the RTT, so equal
windows and rates as RTT^-1 (Ha, Rhee and Xu, 2008: "linearly proportional to the inverse of
the RTT ratio"); with independent losses of one rate CUBIC's response function gives rates as
RTT^-1/4 (RFC 8312, section 5.2). A standing queue adds its delay d to every RTT, which
weakens the bias: rates as (RTT + d)^-k.

This script answers the issue's "if" on the reference's unequal-RTT cases (``cases.py``,
``unequal_rtts``) with the smallest model that can show the effect: a fluid fan-in, every flow
sharing the receiver's link (the bottleneck of these cases) by *weighted* max-min (weights
``(RTT + d)^-k``, k from the protocol's rules above, nothing fitted: 0 is max-min), each capped
at ``max_window / RTT``, ``mss / frame`` of the link's rate usable, delivered one one-way
latency after its last byte leaves. No slow start and no loss in any variant, so the columns
differ only by the shares: they say whether weighting helps, not what a transport with it would
predict. With k = 0, an efficiency of 1 and no cap it is dtsim's ``fluid`` transport exactly
(``tests/engine/test_network_validation.py`` checks that).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sim.network.validation import Case, read_reference  # noqa: E402
from sim.usage import OneLineParser, existing_file, refusing  # noqa: E402

PROG = "benchmarks/validate_network/rtt_bias_whatif.py"

MSS, FRAME = 1448, 1502  # the reference's PPP framing
MAX_WINDOW_BYTES = 4 * 1024 * 1024
VARIANTS = (("max-min (k = 0)", 0.0, False), ("CUBIC, independent losses (k = 1/4)", 0.25, False),
            ("CUBIC, synchronised losses (k = 1)", 1.0, False),
            ("k = 1, RTT + a full buffer", 1.0, True), ("Reno, synchronised (k = 2)", 2.0, False))
"""(label, k, whether each RTT includes the delay of a full bottleneck buffer)."""


def weighted_fill(capacity: float, weights: list[float], caps: list[float]) -> list[float]:
    """Weighted max-min on one link: rate_i = min(cap_i, lam w_i), lam the largest that fits.

    Water-filling: flows whose cap is below ``lam w_i`` are fixed at their cap, in order of
    ``cap_i / w_i``, and the rest share what is left in proportion to their weights.
    """
    order = sorted(range(len(weights)), key=lambda i: caps[i] / weights[i])
    rates = [0.0] * len(weights)
    left, wsum = capacity, sum(weights)
    for n, i in enumerate(order):
        lam = left / wsum
        if caps[i] <= lam * weights[i]:
            rates[i] = caps[i]
            left -= caps[i]
            wsum -= weights[i]
        else:
            for j in order[n:]:
                rates[j] = lam * weights[j]
            break
    return rates


def fan_in(case: Case, k: float, *, with_queue: bool, efficiency: float = MSS / FRAME,
           cap: bool = True) -> list[float]:
    """Each message's delivery time (s) with shares ``(RTT + d)^-k`` on the receiver's link.

    Only for fan-ins: every message from a different sender to one receiver, no dependencies.
    """
    dst = case.messages[0].dst
    assert all(m.dst == dst and not m.deps for m in case.messages)
    capacity = case.rate_bps[dst] / 8 * efficiency
    queue_s = (max(case.queue_pkts) * FRAME * 8 / case.rate_bps[dst]) if with_queue else 0.0
    one_way = [case.delay_s[m.src] + case.delay_s[dst] for m in case.messages]
    weights = [(2 * lat + queue_s) ** -k for lat in one_way]
    caps = [MAX_WINDOW_BYTES / (2 * lat) if cap else float("inf") for lat in one_way]
    left = [m.nbytes for m in case.messages]
    done = [-1.0] * len(left)
    now = min(m.start_s for m in case.messages)
    while min(done) < 0:
        active = [i for i, m in enumerate(case.messages) if m.start_s <= now and done[i] < 0]
        rates = dict(zip(active, weighted_fill(capacity, [weights[i] for i in active],
                                               [caps[i] for i in active])))
        starts = [m.start_s for i, m in enumerate(case.messages) if m.start_s > now]
        step = min([left[i] / rates[i] for i in active] + [s - now for s in starts])
        for i in active:
            left[i] -= rates[i] * step
            if left[i] <= 1e-6 * case.messages[i].nbytes:
                done[i] = now + step
        now += step
    return [d + lat for d, lat in zip(done, one_way)]


def is_unequal_rtt_fan_in(case: Case) -> bool:
    """A reference case whose senders reach one receiver over different latencies."""
    srcs = [m.src for m in case.messages]
    return case.kind == "shared" and len({case.delay_s[s] for s in srcs}) > 1


@refusing(PROG)
def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(HERE / "ns3_reference.csv"))
    args = parser.parse_args(argv)
    existing_file("--csv", args.csv)
    rows = [(c, d) for c, d in read_reference(args.csv) if is_unequal_rtt_fan_in(c)]
    print("| case | message (RTT) | ns-3 s | " + " | ".join(v[0] for v in VARIANTS) + " |")
    print("|---|---|---|" + "---|" * len(VARIANTS))
    errors: dict[str, list[float]] = {v[0]: [] for v in VARIANTS}
    spans: dict[str, list[float]] = {v[0]: [] for v in VARIANTS}
    for case, measured in rows:
        ref = case.durations_s(measured)
        delivered = {label: fan_in(case, k, with_queue=q) for label, k, q in VARIANTS}
        for label, got in delivered.items():
            spans[label].append(case.makespan_s(got) / case.makespan_s(measured) - 1)
        for m, (msg, r) in enumerate(zip(case.messages, ref)):
            rtt_ms = 2000 * (case.delay_s[msg.src] + case.delay_s[msg.dst])
            cells = []
            for label, got in delivered.items():
                took = got[m] - msg.start_s
                errors[label].append(took / r - 1)
                cells.append(f"{took:.3f} ({took / r - 1:+.0%})")
            print(f"| {case.name} | {m} ({rtt_ms:g} ms) | {r:.3f} | " + " | ".join(cells) + " |")
    print()
    print("| shares | per-message error: mean abs | worst | makespan error: mean abs | worst |")
    print("|---|---|---|---|---|")
    for label, _, _ in VARIANTS:
        e, s = errors[label], spans[label]
        print(f"| {label} | {sum(map(abs, e)) / len(e):.1%} | {max(e, key=abs):+.1%} | "
              f"{sum(map(abs, s)) / len(s):.1%} | {max(s, key=abs):+.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
