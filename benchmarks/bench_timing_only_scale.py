"""Timing-only DiLoCo at scale: how long do 1,000 nodes x 1,000 outer steps take to simulate?

The design's target: a timing-only run of 1,000 nodes and 1,000 DiLoCo outer steps in under
60 s on 2 cores. Running all of it takes minutes when the engine is slow, so this script runs a
few outer steps and extrapolates:

    time for S outer steps ~= first step + (S - 1) x (mean of the later steps)

The first outer step is timed apart because it pays one-off costs (building the world, routing
every pair of nodes the collective uses); the later ones are the steady state. Each outer step is
H inner steps on every node (a simulated compute task) and one all-reduce of the simulated
model's outer gradient over the network (``tree`` by default: 2 log2(k) rounds, 2(k - 1)
messages). The ``ideal`` and ``maxmin`` network models run the same scenario side by side.

Times are wall clock (``time.perf_counter``) and CPU time of this process
(``time.process_time``); on a shared machine the CPU time is the fairer figure.

Run from the repository root::

    .venv/bin/python benchmarks/bench_timing_only_scale.py                 # 1000 nodes, uniform
    .venv/bin/python benchmarks/bench_timing_only_scale.py --topology clusters-of-clusters
    .venv/bin/python benchmarks/bench_timing_only_scale.py --steps 1000    # the real thing
    .venv/bin/python benchmarks/bench_timing_only_scale.py --profile 20    # top 20 of cProfile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import pstats
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# after the installed packages: in a virtual environment with the compiled engine (``DTSIM_COMPILE=1
# pip install .``), that engine runs; with the checkout's editable install, the checkout's
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe  # noqa: E402
from policies.data_parallel.diloco import DiLoCo  # noqa: E402
from sim.config import (  # noqa: E402
    ClusterConfig,
    NetworkConfig,
    PolicyConfig,
    RunConfig,
    Scenario,
)
from sim.network import COMPILED  # noqa: E402
from sim.network.maxmin import VECTOR_MIN_FLOWS, MaxMinNetwork  # noqa: E402
from sim.network.tcp import TcpConfig, TcpTransport  # noqa: E402
from sim.runner import run  # noqa: E402
from sim.usage import (  # noqa: E402
    OneLineParser,
    UsageError,
    at_least,
    checked,
    positive,
    positive_seconds,
    refusing,
)
from workloads import WorkloadConfig  # noqa: E402

TARGET_S = 60.0
"""The design's target: wall-clock seconds for 1,000 nodes x 1,000 outer steps."""

TARGET_STEPS = 1000
"""Outer steps of the target run."""


class TimedDiLoCo(DiLoCo):
    """DiLoCo that notes the clock (wall and CPU) each time an outer step completes."""

    def setup(self, ctx):  # noqa: ANN001
        self.wall_marks: list[float] = []
        self.cpu_marks: list[float] = []
        super().setup(ctx)

    def _outer_step(self, mean_delta, participants, r):  # noqa: ANN001
        self.wall_marks.append(time.perf_counter())
        self.cpu_marks.append(time.process_time())
        return super()._outer_step(mean_delta, participants, r)


@dataclass
class Measurement:
    """What one run of the scenario took."""

    network: str
    outer_steps: int
    events: int
    flows: int
    first_wall_s: float        # run() start to the end of the first outer step (wall)
    first_cpu_s: float
    later_wall_s: float        # mean wall seconds per later outer step
    later_cpu_s: float
    total_wall_s: float
    total_cpu_s: float
    peak_rss_MiB: float        # peak resident memory of the process so far

    def extrapolate(self, steps: int, cpu: bool = False) -> float:
        first, later = (self.first_cpu_s, self.later_cpu_s) if cpu else \
            (self.first_wall_s, self.later_wall_s)
        return first + (steps - 1) * later


def scenario(args: argparse.Namespace, network: str) -> Scenario:
    """The benchmark scenario: ``args.nodes`` timing-only DiLoCo workers, H inner steps."""
    if args.topology == "uniform":
        topo_params = {"latency_s": args.latency_s}
    else:
        topo_params = {"num_clusters": args.clusters, "intra_latency_s": 1e-3,
                       "intra_bandwidth_Bps": 1.25e9, "wan_latency_s": args.latency_s,
                       "wan_bandwidth_Bps": 1.25e9}
    return Scenario(
        name=f"timing-only-scale-{args.nodes}",
        seed=args.seed,
        cluster=ClusterConfig(num_nodes=args.nodes, device="h100"),
        network=NetworkConfig(model=network, topology=args.topology, topology_params=topo_params,
                              uplink_Bps=args.bandwidth_Bps, downlink_Bps=args.bandwidth_Bps,
                              **({"transport": args.transport} if getattr(args, "transport", None)
                                 else {}),
                              tcp=TcpConfig(rounds=getattr(args, "rounds", None))),
        workload=WorkloadConfig(learner="tiny-llama", timing="llama-125m", batch=8, seq=128),
        policy=PolicyConfig(name="diloco", params={}),
        # a node reports inner step H*S + 1 right after outer step S completes: S outer steps
        run=RunConfig(max_steps=args.inner_steps * args.steps + 1, timing_only=True),
    )


def measure(args: argparse.Namespace, network: str) -> Measurement:
    """Run the scenario on ``network`` and time its outer steps.

    ``maxmin-per-change`` is ``maxmin`` re-rating at every flow start and end instead of once per
    simulated instant (``MaxMinNetwork.coalesce = False``), the engine before coalescing.
    ``ideal-per-round`` and ``maxmin-per-round`` run the ``tcp`` transport's every round on the
    clock (``TcpTransport.lone_ramps = False``), the engine before closed-form ramps;
    ``ideal-own-ramps`` and ``maxmin-own-ramps`` run every lone ramp's own rounds, also where an
    equal ramp started at the same instant (``TcpTransport.shared_ramps = False``).
    ``maxmin-python`` fills every region in pure Python (``MaxMinNetwork.vector_min_flows =
    inf``), the solver before numpy filled the large ones. ``ideal-burst`` and ``maxmin-burst``
    run the ``tcp`` transport with burst rounds (``TcpConfig.rounds = "burst"``; the default,
    paced rounds, since session 9), ``*-paced`` with paced rounds.
    """
    for rounds in ("burst", "paced"):
        if not network.endswith(f"-{rounds}"):
            continue
        found = measure(argparse.Namespace(**{**vars(args), "rounds": rounds}),
                        network.removesuffix(f"-{rounds}"))
        found.network = network
        return found
    if network == "maxmin-python":
        MaxMinNetwork.vector_min_flows = math.inf
        try:
            found = measure(args, "maxmin")
        finally:
            MaxMinNetwork.vector_min_flows = VECTOR_MIN_FLOWS
        found.network = network
        return found
    if network == "maxmin-per-change":
        MaxMinNetwork.coalesce = False
        try:
            return measure(args, "maxmin")
        finally:
            MaxMinNetwork.coalesce = True
    for suffix, switch in (("-per-round", "lone_ramps"), ("-own-ramps", "shared_ramps")):
        if network.endswith(suffix):
            setattr(TcpTransport, switch, False)
            try:
                found = measure(args, network.removesuffix(suffix))
            finally:
                setattr(TcpTransport, switch, True)
            found.network = network
            return found
    policy = TimedDiLoCo(inner_steps=args.inner_steps, allreduce=args.allreduce)
    gc.collect()  # free the previous run's world first, so that runs do not pay for each other
    wall0, cpu0 = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = run(scenario(args, network), policy)
    if profiler:
        profiler.disable()
    wall1, cpu1 = time.perf_counter(), time.process_time()
    walls, cpus = policy.wall_marks, policy.cpu_marks
    if len(walls) < 2:
        raise SystemExit("need at least 2 completed outer steps: raise --steps")
    if profiler:
        print(f"\n--- cProfile, {network} ---")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    return Measurement(
        network=network if MaxMinNetwork.coalesce or network != "maxmin" else
        "maxmin-per-change", outer_steps=len(walls), events=result.world.env.events_processed,
        flows=result.world.network.flows_started,
        first_wall_s=walls[0] - wall0, first_cpu_s=cpus[0] - cpu0,
        later_wall_s=(walls[-1] - walls[0]) / (len(walls) - 1),
        later_cpu_s=(cpus[-1] - cpus[0]) / (len(cpus) - 1),
        total_wall_s=wall1 - wall0, total_cpu_s=cpu1 - cpu0,
        peak_rss_MiB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


PROG = "benchmarks/bench_timing_only_scale.py"


def add_scenario_options(parser: argparse.ArgumentParser, steps: int) -> None:
    """The options of :func:`scenario` (``--steps`` defaults to ``steps``)."""
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=steps, help="outer steps to run")
    parser.add_argument("--inner-steps", type=int, default=1, help="H, inner steps per outer step")
    parser.add_argument("--allreduce", default="tree", choices=["tree", "ring",
                                                                 "halving_doubling"])
    parser.add_argument("--topology", default="uniform",
                        choices=["uniform", "clusters-of-clusters"])
    parser.add_argument("--clusters", type=int, default=8, help="data centres (clusters topology)")
    parser.add_argument("--latency-s", type=float, default=0.01,
                        help="one-way node-node latency (WAN latency on clusters), s")
    parser.add_argument("--bandwidth-Bps", type=float, default=1.25e8, help="access links, bytes/s")
    parser.add_argument("--seed", type=int, default=0)


def check_scenario_options(args: argparse.Namespace, least_steps: int) -> None:
    """Refuse a scenario option out of range (a :class:`UsageError` naming it)."""
    at_least("--nodes", args.nodes, 2)  # (DiLoCo averages over at least two nodes)
    at_least("--steps", args.steps, least_steps)
    at_least("--inner-steps", args.inner_steps, 1)
    if args.topology == "clusters-of-clusters":
        checked("--clusters", args.clusters, lambda k: 1 <= k <= args.nodes,
                f"an integer from 1 to --nodes ({args.nodes})")
    positive_seconds("--latency-s", args.latency_s)
    positive("--bandwidth-Bps", args.bandwidth_Bps, "bytes per second")
    at_least("--seed", args.seed, 0)


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_scenario_options(parser, steps=30)
    parser.add_argument("--networks", nargs="+", default=["ideal", "maxmin"],
                        choices=["ideal", "maxmin", "maxmin-per-change", "ideal-per-round",
                                 "maxmin-per-round", "maxmin-python", "ideal-own-ramps",
                                 "maxmin-own-ramps", "ideal-paced", "maxmin-paced",
                                 "ideal-burst", "maxmin-burst"],
                        help="maxmin-per-change: re-rate at every flow start/end (no "
                             "coalescing); *-per-round: tcp without closed-form ramps; "
                             "maxmin-python: no numpy filling of large regions; *-own-ramps: "
                             "tcp, no sharing of equal ramps' rounds; *-paced / *-burst: tcp "
                             "with paced (the default) / burst rounds")
    parser.add_argument("--transport", choices=["fluid", "tcp"], default=None,
                        help="network.transport (default: the scenario default, tcp)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the top N functions of a cProfile of each run")
    args = parser.parse_args(argv)
    check_scenario_options(args, least_steps=2)  # (the later steps' mean needs a second one)
    at_least("--profile", args.profile, 0)
    switched = [n for n in args.networks if n not in ("ideal", "maxmin")
                and not n.endswith(("-paced", "-burst"))]
    if COMPILED and switched:
        # (they set attributes of the engine's classes, which compiled classes do not allow)
        raise UsageError(f"--networks {switched[0]}: switches a mechanism of the engine's "
                         "classes, which only the plain-Python engine allows; this process "
                         "imported the compiled one (run it from the checkout's environment)")
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Measure each network and print the table (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)

    transport = args.transport or NetworkConfig().transport
    print(f"timing-only DiLoCo: {args.nodes} nodes, H={args.inner_steps}, {args.allreduce} "
          f"all-reduce, {args.topology} topology, {transport} transport, {args.steps} outer "
          f"steps per run")
    print(describe())
    rows = [measure(args, network) for network in args.networks]
    header = ("network", "outer steps", "events", "flows", "first step s (cpu)",
              "later steps ms (cpu)", "whole run s (wall / cpu)", "events/s (cpu)",
              "peak RSS MiB", f"{TARGET_STEPS} steps s (cpu, extrapolated)")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for m in rows:
        print(f"| {m.network} | {m.outer_steps} | {m.events:,} | {m.flows:,} | "
              f"{m.first_cpu_s:.2f} | {m.later_cpu_s * 1e3:.1f} | "
              f"{m.total_wall_s:.1f} / {m.total_cpu_s:.1f} | {m.events / m.total_cpu_s:,.0f} | "
              f"{m.peak_rss_MiB:,.0f} | {m.extrapolate(TARGET_STEPS, cpu=True):.1f} |")
    print(f"\ntarget: {TARGET_STEPS} outer steps x 1000 nodes in under {TARGET_S:.0f} s")
    for m in rows:
        if m.outer_steps >= TARGET_STEPS:
            measured, how = m.total_cpu_s, f"measured: {m.outer_steps} outer steps, whole run"
        else:
            measured = m.extrapolate(TARGET_STEPS, cpu=True)
            how = f"extrapolated from {m.outer_steps} outer steps"
        verdict = "meets" if measured < TARGET_S else "misses"
        print(f"  {m.network}: {measured:.1f} s of CPU ({how}; {args.nodes} nodes) -> "
              f"{verdict} the target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
