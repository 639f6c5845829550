"""dtsim (tcp and fluid transports) against the shipped ns-3 reference: a markdown table.

    python benchmarks/validate_network/compare.py [--csv PATH_TO_REFERENCE_CSV]

Per case: ns-3's completion time (the makespan; for ``spaced`` messages the sum of their
durations), dtsim's with the ``tcp`` transport and with ``fluid``, the relative errors, and the
largest per-message error of the tcp prediction (reported, not judged). The reference runs on
point-to-point links with PPP framing, so dtsim is given ``frame_bytes = 1502`` (1448 + 32 TCP
+ 20 IP + 2 PPP) instead of Ethernet's 1514 and 54-byte ACKs, one per 2 segments as ns-3's
delayed ACKs (one per segment in the rows marked so; ``sim.network.validation.ns3_tcp``), and
ns-3's TCP does not restart slow start after
idle (Linux does), so dtsim runs without it here; ns-3's CUBIC has HyStart's ACK-train exit of
Linux before 5.7 (early on RTTs below ~4 ms), so dtsim runs with ``hystart_short_rtt_exit``.

``--hystart-delay-exit linux`` or ``ns3`` adds ``hystart_delay_exit`` with Linux's threshold
(min RTT / 8 clamped to 4-16 ms) or ns-3's (the min RTT clamped to 4 ms - 1 s).
``--bottleneck-queue`` adds the case's drop-tail queue as the links' buffer
(``bottleneck_queue_bytes`` = the case's ``queue_pkts`` x 1502 bytes, ns-3's device queue:
``sim.network.validation.with_bottleneck_queue``).
``--rounds burst`` or ``paced`` chooses the tcp transport's round model (``TcpConfig.rounds``);
by default the transport's own: paced (a round that waits for its ACKs is a rate cap of window
/ RTT), or burst with either option above (paced rounds refuse them).
``--per-message TEXT`` prints, for the cases whose name contains TEXT, every message's duration
(its delivery minus its own start) in ns-3 and in dtsim (the chosen tcp flags, and fluid).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from dataclasses import replace  # noqa: E402

from sim.network.validation import (  # noqa: E402
    ns3_tcp,
    predict,
    read_reference,
    with_bottleneck_queue,
)
from sim.usage import OneLineParser, existing_file, refusing  # noqa: E402

PROG = "benchmarks/validate_network/compare.py"

DELAY_EXITS = {"off": {}, "linux": {"hystart_delay_exit": True},
               "ns3": {"hystart_delay_exit": True, "hystart_delay_rtt_fraction": 1.0,
                       "hystart_delay_max_s": 1.0}}
"""``--hystart-delay-exit``: the TcpConfig fields each choice sets."""


def rows(csv_path: Path, delay_exit: str = "off", queue: bool = False,
         rounds: str | None = None) -> list[dict]:
    """One dict per case: reference, predictions and errors."""
    out = []
    for case, measured in read_reference(csv_path):
        config = replace(ns3_tcp(case), rounds=rounds, **DELAY_EXITS[delay_exit])
        tcp = predict(case, tcp=with_bottleneck_queue(case, config) if queue else config)
        fluid = predict(case, transport="fluid", tcp=None)
        ref = case.completion_s(measured)
        per_flow = [p / m - 1 for p, m in zip(case.durations_s(tcp), case.durations_s(measured))]
        out.append({"case": case.name, "kind": case.kind, "ref_s": ref,
                    "tcp_s": case.completion_s(tcp), "fluid_s": case.completion_s(fluid),
                    "tcp_err": case.completion_s(tcp) / ref - 1,
                    "fluid_err": case.completion_s(fluid) / ref - 1,
                    "worst_flow_err": max(per_flow, key=abs),
                    "ref_each_s": case.durations_s(measured), "tcp_each_s": case.durations_s(tcp),
                    "fluid_each_s": case.durations_s(fluid)})
    return out


def print_per_message(table: list[dict]) -> None:
    """Each message's duration (s) in ns-3, dtsim tcp and fluid, with the errors."""
    print("| case | message | ns-3 s | dtsim tcp s | error | dtsim fluid s | error |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        for m, (ref, tcp, fluid) in enumerate(zip(r["ref_each_s"], r["tcp_each_s"],
                                                   r["fluid_each_s"])):
            print(f"| {r['case']} | {m} | {ref:.3f} | {tcp:.3f} | {tcp / ref - 1:+.1%} | "
                  f"{fluid:.3f} | {fluid / ref - 1:+.1%} |")
    print()


@refusing(PROG)
def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(HERE / "ns3_reference.csv"))
    parser.add_argument("--hystart-delay-exit", choices=sorted(DELAY_EXITS), default="off",
                        help="also HyStart's delay exit, with Linux's or ns-3's threshold")
    parser.add_argument("--bottleneck-queue", action="store_true",
                        help="also the case's drop-tail queue as the links' buffer")
    parser.add_argument("--rounds", choices=["burst", "paced"], default=None,
                        help="the tcp transport's round model (TcpConfig.rounds; default: the "
                             "transport's, paced, or burst with the options above)")
    parser.add_argument("--per-message", default="", metavar="TEXT",
                        help="also each message's duration, for cases whose name has TEXT")
    args = parser.parse_args(argv)
    existing_file("--csv", args.csv)
    table = rows(Path(args.csv), args.hystart_delay_exit, args.bottleneck_queue, args.rounds)
    if args.per_message:
        print_per_message([r for r in table if args.per_message in r["case"]])
    print("| case | ns-3 s | dtsim tcp s | error | worst message (tcp) | dtsim fluid s | error |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['case']} | {r['ref_s']:.3f} | {r['tcp_s']:.3f} | {r['tcp_err']:+.1%} | "
              f"{r['worst_flow_err']:+.1%} | {r['fluid_s']:.3f} | {r['fluid_err']:+.1%} |")
    n = len(table)
    for key in ("tcp_err", "fluid_err"):
        within10 = sum(abs(r[key]) <= 0.10 for r in table)
        within20 = sum(abs(r[key]) <= 0.20 for r in table)
        worst = max(table, key=lambda r: abs(r[key]))
        print(f"\n{key[:-4]}: {within10}/{n} within 10%, {within20}/{n} within 20%, worst "
              f"{worst[key]:+.1%} ({worst['case']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
