"""Memory a planner's route lookups leave behind: all N^2 routes of a world, asked once.

A pipeline planner (``policies/pipeline/methods.py``: SkipPipe, DT-FM's allocation, the
baselines) prices every ordered node pair before the run:
:meth:`sim.network.forecast.MessageForecast.of_network` asks the network for each pair's
latency and bottleneck (two route lookups per pair, N (N - 1) pairs). Asking must not leave a
record per pair behind: at 1,000 nodes that is a million of them (under ``tcp`` a connection
each, ~230 bytes, plus the route). This runs that call on a world of N nodes under ``tcp`` in a
fresh process per (checkout, topology) and prints its CPU time, the rise of the process's peak
resident memory during the call (the two (N, N) matrices of float64 it returns are 2 x 8 N^2
bytes of it: 15 MiB at 1,000 nodes), the per-pair records and per-site-pair routes the network
holds afterwards, and a checksum of the matrices (equal across checkouts when the routes are).

Topologies: ``uniform`` (each node its own site behind one switch: as many site pairs as node
pairs) and ``gcp`` (the 12 GCP regions, nodes placed round-robin: 144 site pairs).

    .venv/bin/python benchmarks/bench_planner_routes.py --nodes 1000
    git archive 00d320a | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_planner_routes.py --nodes 1000 --baseline /tmp/old
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROG = "benchmarks/bench_planner_routes.py"


def child(root: Path, nodes: int, topology: str) -> dict:
    """Build the world from the checkout at ``root``, ask every route once; the figures."""
    sys.path.insert(0, str(root))
    from sim.config import NetworkConfig  # noqa: PLC0415
    from sim.network.forecast import MessageForecast  # noqa: PLC0415
    from sim.world import World  # noqa: PLC0415
    from topologies import gcp_regions, uniform  # noqa: PLC0415

    if topology == "uniform":
        topo = uniform(nodes, latency_s=0.01, bandwidth_Bps=1.25e8)
    else:
        topo = gcp_regions(nodes)
    world = World(topo, network=NetworkConfig(model="ideal", transport="tcp"))
    net = world.network
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    forecast = MessageForecast.of_network(net, nodes)
    cpu1 = time.process_time()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finite = forecast.bandwidth_Bps[forecast.bandwidth_Bps < float("inf")]
    return {"cpu_s": cpu1 - cpu0, "peak_rise_MiB": rss1 - rss0,
            "pair_records": len(getattr(net, "_pairs", getattr(net, "_node_routes", {}))),
            "site_routes": len(net._routes),
            "checksum": f"{forecast.latency_s.sum():.9e} {finite.sum():.9e}"}


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """Nodes, topologies, baselines; a bad value is a :class:`UsageError` naming it."""
    from sim.usage import OneLineParser, at_least, checked  # noqa: PLC0415 (see main)

    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--topologies", nargs="+", default=["uniform", "gcp"],
                        choices=["uniform", "gcp"])
    parser.add_argument("--baseline", type=Path, nargs="+", default=[], metavar="DIR",
                        help="other checkouts (e.g. older commits) to run alongside")
    args = parser.parse_args(argv)
    at_least("--nodes", args.nodes, 2)
    for other in args.baseline:
        checked("--baseline", other, lambda root: (root / "sim").is_dir(),
                "a checkout of dtsim (a folder with sim/)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run each (checkout, topology) in its own process and print the table (exit 2 if refused).

    ``--child ROOT NODES TOPOLOGY`` is one such run, started by this script: it imports the
    engine of the checkout at ROOT, so nothing of this checkout's engine may be imported
    before it (the command line's checks are imported only on the parent's path).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        root, nodes, topology = argv[1:]
        print(json.dumps(child(Path(root), int(nodes), topology)))
        return 0
    sys.path.insert(0, str(ROOT))
    from sim.usage import UsageError, refused  # noqa: PLC0415

    try:
        args = parse_command_line(argv)
    except UsageError as exc:
        return refused(PROG, exc)
    codes = {"this": ROOT, **{str(other): other.resolve() for other in args.baseline}}
    print(f"MessageForecast.of_network on {args.nodes:,} nodes, tcp over ideal; each run in "
          "its own process")
    header = ("code", "topology", "CPU s", "peak rise MiB", "pair records", "site routes",
              "checksum")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for topology in args.topologies:
        for code, root in codes.items():
            out = subprocess.run([sys.executable, __file__, "--child", str(root),
                                  str(args.nodes), topology],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {code} | {topology} | {r['cpu_s']:.2f} | {r['peak_rise_MiB']:,.0f} | "
                  f"{r['pair_records']:,} | {r['site_routes']:,} | {r['checksum']} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
