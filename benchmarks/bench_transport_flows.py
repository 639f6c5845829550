"""Flow events per second of the ``tcp`` transport versus ``fluid``, on the same workload.

The workload of ``bench_maxmin_flows.py``: every node runs ``--flows-per-node`` senders; each
sends a message of log-normal size (median ``--median-bytes``) to a random other node and the
next one as soon as it is delivered. A *flow event* is a message's start or end; the tcp
transport's extra work (slow-start rounds, window-capped rounds, in-order queues) is cost, not
events. Both transports run side by side in one process on the ``maxmin`` model, and tcp a
second time with every round on the clock (``per-round``: no closed-form ramps for connections
alone on their links), and a third time with burst rounds (``burst``: ``TcpConfig.rounds =
"burst"``, a round's window at the share, then a wait for its ACKs; the ``tcp`` column runs the
default, paced rounds, a rate cap of window / RTT for the round, since session 9; with either
option below the default is burst, so the ``burst`` column is left out). Target: tcp at least
half of fluid's events per second on 256 nodes.
``--hystart-delay-exit`` and ``--bottleneck-queue SIZE_OR_TIME`` run both tcp columns with
those options (``TcpConfig``; docs/network-model.md); the last columns give re-ratings of the
max-min model and SimPy events per flow event, fluid's and tcp's, where their cost shows.

``--instructions`` counts, instead of CPU time, the machine instructions of each run's timed
flow events under valgrind's callgrind (each run in a fresh process, collection switched on
and off around the timed window by ``compare_commits.py``'s client-request helper): a figure
the load of a shared machine does not move (the CPU-time ratio moved 0.33x-0.60x between
consecutive runs at load 1-4), at about 50x the run time. The ratio of instructions per flow
event, fluid's over tcp's, stands for the speed ratio; it leaves out what caches add.

    python benchmarks/bench_transport_flows.py                  # 64 and 256 nodes
    python benchmarks/bench_transport_flows.py --nodes 256 --topology residential
    python benchmarks/bench_transport_flows.py --hystart-delay-exit --bottleneck-queue 40ms
    python benchmarks/bench_transport_flows.py --nodes 256 --events 3000 --instructions
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from bench_maxmin_flows import (  # the same two topologies and their checks, one definition
    TOPOLOGIES,
    check_workload,
    make_topology,
)
from compare_commits import build_toggle  # callgrind's switch around the timed window
from machine import describe  # benchmarks/machine.py, beside this script

from sim import units
from sim.config import NetworkConfig
from sim.network.tcp import TcpConfig
from sim.usage import OneLineParser, refusing
from sim.world import World


def run_workload(topology, *, transport: str, flow_events: int, flows_per_node: int,
                 median_bytes: float, seed: int, lone_ramps: bool = True,
                 tcp: TcpConfig | None = None, rounds: str | None = None,
                 toggle: str | None = None) -> dict:
    """CPU time of ``flow_events`` message starts and ends after a warm-up.

    ``lone_ramps=False`` runs every tcp round on the clock (no closed-form ramps); ``tcp`` the
    transport's parameters (its defaults if None); ``toggle`` the callgrind helper library
    (:func:`compare_commits.build_toggle`) that brackets the timed window; ``rounds`` replaces
    ``tcp``'s round model (``TcpConfig.rounds``).
    """
    tcp = tcp or TcpConfig()
    if rounds is not None:
        tcp = dataclasses.replace(tcp, rounds=rounds)
    network = NetworkConfig(model="maxmin", transport=transport, tcp=tcp)
    world = World(topology, network=network, seed=seed)
    net = world.network
    net.lone_ramps = lone_ramps
    n = world.num_nodes

    def sender(node: int, slot: int):
        rng = np.random.default_rng([seed, node, slot])
        while True:
            peer = int(rng.integers(n - 1))
            peer += peer >= node
            yield net.transfer(node, peer, float(median_bytes * rng.lognormal(0.0, 1.0)))

    for node in range(n):
        for slot in range(flows_per_node):
            world.env.process(sender(node, slot))
    while net.flows_finished < n * flows_per_node:
        world.env.step()
    first = net.flows_started + net.flows_finished
    sim_start = world.now
    switch = ctypes.CDLL(toggle) if toggle else None
    reallocations = net.reallocations
    if switch is not None:
        switch.cg_start()
    start = time.process_time()
    simpy_start = world.env.events_processed
    while net.flows_started + net.flows_finished - first < flow_events:
        world.env.step()
    cpu_s = time.process_time() - start
    if switch is not None:
        switch.cg_stop()
    events = net.flows_started + net.flows_finished - first
    return {"events_per_s": events / cpu_s, "sim_s": world.now - sim_start,
            "rounds": getattr(net, "rounds_started", 0), "events": events,
            "rerates_per_event": (net.reallocations - reallocations) / events,
            "simpy_per_event": (world.env.events_processed - simpy_start) / events}


VARIANTS = {"fluid": dict(transport="fluid"), "tcp": dict(transport="tcp"),
            "per-round": dict(transport="tcp", lone_ramps=False),
            "burst": dict(transport="tcp", rounds="burst")}
"""The runs of a row: fluid, tcp (its default rounds), tcp with every round on the clock, tcp
with burst rounds."""


def counted(args: argparse.Namespace, variant: str, topology: str, nodes: int,
            toggle: str) -> dict:
    """One run in a fresh process under callgrind; its figures plus ``instructions``."""
    handle, out_file = tempfile.mkstemp(prefix="callgrind.")
    os.close(handle)
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
           f"--callgrind-out-file={out_file}", sys.executable, __file__, "--child", variant,
           "--toggle", toggle, "--topology", topology, "--nodes", str(nodes),
           "--events", str(args.events), "--flows-per-node", str(args.flows_per_node),
           "--median-bytes", str(args.median_bytes), "--seed", str(args.seed),
           "--bottleneck-queue", args.bottleneck_queue[2]]
    if args.hystart_delay_exit:
        cmd.append("--hystart-delay-exit")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED="0"))
    finally:
        for path in os.scandir(os.path.dirname(out_file)):
            if path.name.startswith(os.path.basename(out_file)):
                os.unlink(path.path)
    if done.returncode:
        raise SystemExit(f"bench_transport_flows: {variant} under callgrind failed: "
                         f"{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    collected = [line for line in done.stderr.splitlines() if "Collected :" in line]
    found["instructions"] = int(collected[-1].split(":")[-1].split()[0])
    return found


def buffer_arg(text: str) -> tuple[float, str, str]:
    """``--bottleneck-queue``: a size or a time (:func:`sim.units.parse_size_or_duration`).

    Returns the value, its unit's field suffix and the text (for a child process).
    """
    try:
        return (*units.parse_size_or_duration(text), text)
    except ValueError as err:  # argparse prints the line and exits with 2
        raise argparse.ArgumentTypeError(str(err)) from None


PROG = "benchmarks/bench_transport_flows.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--topology", nargs="+", default=list(TOPOLOGIES))
    parser.add_argument("--flows-per-node", type=int, default=3)
    parser.add_argument("--median-bytes", type=float, default=1e6)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hystart-delay-exit", action="store_true",
                        help="tcp with HyStart's delay exit (off by default)")
    parser.add_argument("--bottleneck-queue", type=buffer_arg, default="0B",
                        help="tcp with every link's drop-tail buffer: a size (504KB) or a time "
                             "at each link's rate (40ms); default none")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of timing (rates "
                             "become instructions per flow event)")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--toggle", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_workload(args)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run every variant per topology and size (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    queue, unit, _ = args.bottleneck_queue
    tcp_config = TcpConfig(hystart_delay_exit=args.hystart_delay_exit,
                           bottleneck_queue_bytes=queue if unit == "_bytes" else 0.0,
                           bottleneck_queue_s=queue if unit == "_s" else 0.0)
    common = dict(flow_events=args.events, flows_per_node=args.flows_per_node,
                  median_bytes=args.median_bytes, seed=args.seed)
    variants = [v for v in VARIANTS  # (with these two options tcp's default is burst)
                if v != "burst" or tcp_config.round_model != "burst"]
    if args.child:  # one run, for --instructions: its figures as a JSON line
        found = run_workload(make_topology(args.topology[0], args.nodes[0], args.seed),
                             tcp=tcp_config, toggle=args.toggle, **VARIANTS[args.child],
                             **common)
        print(json.dumps(found))
        return 0
    unit = "/s"
    if args.instructions:
        scratch = tempfile.TemporaryDirectory()
        toggle = build_toggle(scratch.name)
        unit = " ins"
        print("ins: instructions per flow event (callgrind); x: fluid's over the column's")
    print(describe())
    print(f"{'topology':<12} {'nodes':>5} {'fluid' + unit:>9} {'tcp' + unit:>9} {'tcp/fluid':>9} "
          f"{'tcp rounds':>10} {'per-round' + unit:>13} {'per-round/fluid':>15} "
          f"{'burst' + unit:>9} {'burst/fluid':>11} "
          f"{'re-ratings/event fluid':>22} {'tcp':>5} {'burst':>5} "
          f"{'SimPy/event fluid':>17} {'tcp':>5} {'burst':>5}")
    for name in args.topology:
        for n in args.nodes:
            if args.instructions:
                runs = {variant: counted(args, variant, name, n, toggle) for variant in variants}
                rate = {variant: found["instructions"] / found["events"]
                        for variant, found in runs.items()}
                ratio = {variant: rate["fluid"] / rate[variant] for variant in variants}
            else:
                topology = make_topology(name, n, args.seed)
                runs = {variant: run_workload(topology, tcp=tcp_config, **VARIANTS[variant],
                                              **common)
                        for variant in variants}
                rate = {variant: found["events_per_s"] for variant, found in runs.items()}
                ratio = {variant: rate[variant] / rate["fluid"] for variant in variants}
            fluid, tcp = runs["fluid"], runs["tcp"]
            burst = runs.get("burst", {"rerates_per_event": math.nan,
                                       "simpy_per_event": math.nan})
            print(f"{name:<12} {n:>5} {rate['fluid']:>9,.0f} {rate['tcp']:>9,.0f} "
                  f"{ratio['tcp']:>8.2f}x {tcp['rounds']:>10,} {rate['per-round']:>13,.0f} "
                  f"{ratio['per-round']:>14.2f}x "
                  f"{rate.get('burst', math.nan):>9,.0f} {ratio.get('burst', math.nan):>10.2f}x "
                  f"{fluid['rerates_per_event']:>22.2f} {tcp['rerates_per_event']:>5.2f} "
                  f"{burst['rerates_per_event']:>5.2f} "
                  f"{fluid['simpy_per_event']:>17.2f} {tcp['simpy_per_event']:>5.2f} "
                  f"{burst['simpy_per_event']:>5.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
