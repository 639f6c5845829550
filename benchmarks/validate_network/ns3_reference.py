"""Run the validation grid in ns-3 (packet-level TCP) and write the reference CSV.

Needs the optional extra: ``pip install -e ".[validate]"`` (ns-3's Python bindings, ``ns3`` on
PyPI; importing it takes ~15 s and compiles ``ns3_driver.cc`` once per run). The tests never run
this; they read the CSV it writes.

TCP as Linux configures it: CUBIC (with HyStart), initial window 10, MSS 1448 (timestamps on),
SACK, minimum RTO 200 ms, send buffer 4 MiB and receive buffer 6 MiB (Linux's
``tcp_wmem`` / ``tcp_rmem`` maxima). Links are point-to-point (PPP framing: 1502 wire bytes per
1448-byte segment) with drop-tail device queues of about one bandwidth-delay product and no
queue discipline (ns-3 installs FqCoDel when an address is assigned; the driver uninstalls it).
One departure from Linux: fast recovery is ns-3's classic (SACK) recovery, not PRR, because
ns-3's PrrRecovery stalled connections for over 20 s after slow-start losses in this grid.

Usage::

    nice python benchmarks/validate_network/ns3_reference.py \
        --out benchmarks/validate_network/ns3_reference.csv [--only single] [--limit-s 3000]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from cases import all_cases  # noqa: E402

from sim.network.validation import read_reference, write_reference  # noqa: E402
from sim.usage import (  # noqa: E402
    OneLineParser,
    check_output_file,
    positive_seconds,
    refusing,
)

PROG = "benchmarks/validate_network/ns3_reference.py"

MSS_BYTES = 1448
SNDBUF_BYTES = 4 * 1024 * 1024
RCVBUF_BYTES = 6 * 1024 * 1024


def load_ns3():
    """Import ns-3 and compile the driver; a clear message when ns-3 is missing."""
    try:
        import cppyy
        from ns import ns  # noqa: F401
    except ImportError:
        sys.exit("ns3_reference: needs ns-3's Python bindings: pip install -e '.[validate]'")
    cppyy.cppdef((HERE / "ns3_driver.cc").read_text())
    ref = cppyy.gbl.dtsimref
    ref.ConfigureTcp(MSS_BYTES, 10, SNDBUF_BYTES, RCVBUF_BYTES, 0.2)
    return cppyy, ref


def run_case(cppyy, ref, case) -> list[float]:
    std = cppyy.gbl.std
    vd, vi = std.vector["double"], std.vector["int"]
    deps = std.vector[std.vector["int"]]()
    for m in case.messages:
        deps.push_back(vi(list(m.deps)))
    last_start = max(m.start_s for m in case.messages)
    total = sum(m.nbytes for m in case.messages)
    slowest = min(case.rate_bps) / 8
    stop_s = last_start + 20 + 4 * total / slowest  # bounded: generous, never infinite
    out = ref.RunCase(vd(list(case.rate_bps)), vd(list(case.delay_s)), vi(list(case.queue_pkts)),
                      vi([m.src for m in case.messages]), vi([m.dst for m in case.messages]),
                      vd([float(m.nbytes) for m in case.messages]),
                      vd([m.start_s for m in case.messages]), deps, stop_s)
    return [float(x) for x in out]


STATES = ("open", "disorder", "cwr", "recovery", "loss (RTO)")


def print_trace(case, delivered: list[float], events) -> None:
    """What happened to each connection: slow start's end, recoveries, timeouts, full queues.

    Prints the cwnd (segments) at every congestion-state change and ssthresh change, and per
    device queue the episodes (at least 50 ms apart) in which it was full.
    """
    print(f"{case.name}: delivered {[round(d, 4) for d in delivered]}")
    cwnd: dict[int, float] = {}
    full: dict[int, list[list[float]]] = {}
    for t, kind, ident, value in ((float(r[0]), int(r[1]), int(r[2]), float(r[3]))
                                  for r in events):
        if kind == 0:
            cwnd[ident] = value
        elif kind == 1:
            print(f"{t:9.4f} s  connection {ident}: {STATES[int(value)]}, cwnd "
                  f"{cwnd.get(ident, 0) / MSS_BYTES:.0f} segments")
        elif kind == 2 and value < SNDBUF_BYTES * 1000:
            print(f"{t:9.4f} s  connection {ident}: ssthresh {value / MSS_BYTES:.0f} segments "
                  f"(cwnd {cwnd.get(ident, 0) / MSS_BYTES:.0f})")
        elif kind == 3:
            episodes = full.setdefault(ident, [])
            if not episodes or t - episodes[-1][1] > 0.05:
                episodes.append([t, t, 0])
            episodes[-1][1] = t
            episodes[-1][2] += 1
    for device, episodes in sorted(full.items()):
        host = device // 2
        where = f"host {host}'s own" if device % 2 == 0 else f"router's, to host {host}"
        spans = ", ".join(f"{a:.4f}-{b:.4f} s ({n}x)" for a, b, n in episodes)
        print(f"queue full ({where} end): {spans}")


@refusing(PROG)
def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "ns3_reference.csv"))
    parser.add_argument("--only", default="", help="run only cases whose kind is this")
    parser.add_argument("--resume", action="store_true",
                        help="keep the cases already in --out and run only the others")
    parser.add_argument("--skip", default="", help="skip cases whose name contains this")
    parser.add_argument("--rerun", default="",
                        help="with --resume: run again the cases whose name contains this and "
                             "replace their rows")
    parser.add_argument("--ack-every-segment", action="store_true",
                        help="DelAckCount 1 instead of ns-3's 2; the cases are named with the "
                             "suffix ' [ack every segment]' (with delayed ACKs, ns-3 stalled "
                             "the ring all-reduce cases and the 2.5 s-apart messages)")
    parser.add_argument("--trace", default="",
                        help="run only the case of this name, print its connections' events "
                             "(cwnd at state changes, timeouts, full queues); writes nothing")
    parser.add_argument("--hystart-delay", choices=("ns3", "linux"), default="ns3",
                        help="HyStart's delay threshold: ns-3's (the min RTT clamped to 4 ms-1 s; "
                             "the shipped CSV) or Linux's (the min RTT / 8 clamped to 4-16 ms)")
    parser.add_argument("--limit-s", type=float, default=3600.0,
                        help="stop starting new cases after this many wall seconds")
    args = parser.parse_args(argv)
    check_output_file("--out", args.out)
    positive_seconds("--limit-s", args.limit_s)
    cppyy, ref = load_ns3()
    suffix = ""
    if args.ack_every_segment:
        from ns import ns
        ns.Config.SetDefault("ns3::TcpSocket::DelAckCount", ns.UintegerValue(1))
        suffix = " [ack every segment]"
    ref.UseLinuxHystartDelay(args.hystart_delay == "linux")
    if args.trace:
        ref.EnableTrace(True)
        for case in all_cases():
            case = replace(case, name=case.name + suffix)
            if case.name == args.trace:
                print_trace(case, run_case(cppyy, ref, case), ref.TakeTrace())
                return 0
        sys.exit(f"ns3_reference: --trace: no case named {args.trace!r}")
    results = read_reference(args.out) if args.resume and Path(args.out).exists() else []
    row_of = {case.name: i for i, (case, _) in enumerate(results)}  # a re-run keeps its row
    if args.rerun:
        results = [(case, d) for case, d in results if args.rerun not in case.name]
    done = {case.name for case, _ in results}
    begin = time.monotonic()
    for case in all_cases():
        case = replace(case, name=case.name + suffix)
        if args.only and case.kind != args.only or case.name in done:
            continue
        if args.skip and args.skip in case.name:
            continue
        if time.monotonic() - begin > args.limit_s:
            print(f"time limit reached; skipped {case.name}", flush=True)
            continue
        t0 = time.monotonic()
        delivered = run_case(cppyy, ref, case)
        if min(delivered) < 0:
            print(f"{case.name}: not all delivered ({delivered}); left out", flush=True)
            continue
        results.append((case, delivered))
        results.sort(key=lambda r: row_of.get(r[0].name, len(row_of)))
        print(f"{case.name}: makespan {case.makespan_s(delivered):.4f} s "
              f"({time.monotonic() - t0:.1f} s wall)", flush=True)
        write_reference(args.out, results)  # keep what is done if interrupted
    print(f"wrote {len(results)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
