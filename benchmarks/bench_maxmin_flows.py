"""Flow events per second of the ``maxmin`` network: local re-rating versus global recompute.

Workload (the same for both variants, one seeded stream per sender so both see the same
transfers): every node runs ``--flows-per-node`` senders; each sends a message of log-normal size
(median ``--median-bytes``) to a random other node, and sends the next one as soon as it is
delivered. So about ``nodes * flows_per_node`` flows are always in flight, and every flow end
starts a new flow. A *flow event* is a flow start or a flow end.

Topologies:

- ``residential``: home machines on 20 Mbit/s up / 200 Mbit/s down access links (log-normal
  spread, sigma 0.5) around one internet core; every flow crosses its sender's uplink and its
  receiver's downlink, so all flows are joined into one component through shared links.
- ``datacenters``: 8 data centres (10 Gbit/s node links) joined pairwise by 1 Gbit/s WAN links
  that every flow between two data centres shares.

The naive variant re-rates *every* sending flow at every flow event with the same progressive
filling (:class:`GlobalRecomputeNetwork`, the pure-Python one). Both variants run side by side
in one process and their completion times are compared on the flows both finished.

    python benchmarks/bench_maxmin_flows.py                 # 16, 64, 256 nodes, both topologies
    python benchmarks/bench_maxmin_flows.py --nodes 256 --topology residential
    python benchmarks/bench_maxmin_flows.py --gc-gen0 50000     # fewer garbage-collector walks
"""

from __future__ import annotations

import argparse
import gc
import math
import time

import numpy as np
from machine import describe  # benchmarks/machine.py, beside this script

from sim.config import NetworkConfig
from sim.network.base import Flow
from sim.network.maxmin import MaxMinNetwork
from sim.usage import OneLineParser, at_least, known, positive, refusing
from sim.world import World
from topologies import clusters_of_clusters, residential

TOPOLOGIES = ("residential", "datacenters")
"""The benchmark's topologies (see the module docstring)."""


class GlobalRecomputeNetwork(MaxMinNetwork):
    """The naive variant: every flow start or end re-rates all sending flows from scratch.

    With the plain progressive filling (the heap of :meth:`MaxMinNetwork._fill`), never the
    numpy one meant for a large region of few bottleneck levels (a tree all-reduce's round on
    WAN links). Here every sending flow at once has about one level per node (log-normal
    access links: 64 levels for 188 flows, 256 for 757), one numpy pass over the region each,
    and that made this reference 5-7x slower on ``residential`` at 64 and 256 nodes
    (docs/performance.md, end of session 6).
    """

    model_name = "maxmin-global"
    vector_min_flows = math.inf

    def _reallocate(self, seed_links: tuple[int, ...] | list[int]) -> None:
        region: dict[int, Flow] = {}
        for flows in self._on_link:
            region.update(flows)
        if region:
            self.reallocations += 1
            rates, bottleneck, _ = self._fill(region)
            self._apply(region, rates, bottleneck)


def make_topology(name: str, num_nodes: int, seed: int):
    """The benchmark's topologies (see the module docstring)."""
    if name == "residential":
        return residential(num_nodes, bandwidth_sigma=0.5, seed=seed)
    if name == "datacenters":
        return clusters_of_clusters(num_nodes, num_clusters=min(8, num_nodes),
                                    intra_latency_s=0.5e-3, intra_bandwidth_Bps=10e9 / 8,
                                    wan_latency_s=30e-3, wan_bandwidth_Bps=1e9 / 8)
    raise ValueError(f"--topology: unknown {name!r}; allowed: {', '.join(TOPOLOGIES)}")


def run_workload(topology, *, naive: bool, flow_events: int, flows_per_node: int,
                 median_bytes: float, seed: int) -> dict:
    """Time ``flow_events`` flow events after a warm-up; wall time and counters.

    The warm-up runs until as many messages were delivered as there are senders, so the timed
    window sees the steady state (about ``nodes * flows_per_node`` flows in flight), not the
    start-up burst.
    """
    world = World(topology, network=NetworkConfig(model="maxmin", transport="fluid"),
                  seed=seed)  # the fluid solver
    if naive:
        world.network = GlobalRecomputeNetwork(world, topology)
    net = world.network
    n = world.num_nodes
    finished: dict[tuple[int, int, int], float] = {}

    def sender(node: int, slot: int):
        rng = np.random.default_rng([seed, node, slot])
        for count in range(10**9):
            peer = int(rng.integers(n - 1))
            peer += peer >= node  # any node but this one
            nbytes = float(median_bytes * rng.lognormal(0.0, 1.0))
            delivery = yield net.transfer(node, peer, nbytes)
            finished[(node, slot, count)] = delivery.end_s

    for node in range(n):
        for slot in range(flows_per_node):
            world.env.process(sender(node, slot))
    # warm up: every sender has had a message delivered, so flows are in their steady state
    while net.flows_finished < n * flows_per_node:
        world.env.step()
    first = net.flows_started + net.flows_finished
    reallocations, rerated = net.reallocations, net.flows_rerated
    repairs = getattr(net, "repair_rounds", 0)
    active = 0
    samples = 0
    start = time.process_time()
    while net.flows_started + net.flows_finished - first < flow_events:
        world.env.step()
        if world.env.events_processed % 64 == 0:
            active += net.active_flows
            samples += 1
    wall_s = time.process_time() - start
    events = net.flows_started + net.flows_finished - first
    reallocations = max(net.reallocations - reallocations, 1)
    return {"wall_s": wall_s, "events": events, "events_per_s": events / wall_s,
            "mean_active": active / max(samples, 1), "finished": finished,
            "rerated_per_event": (net.flows_rerated - rerated) / reallocations,
            "repairs_per_event": (getattr(net, "repair_rounds", 0) - repairs) / reallocations,
            "sim_s": world.now}


def max_relative_difference(a: dict, b: dict) -> tuple[float, int]:
    """Largest relative difference of completion times over the flows both runs finished."""
    common = [key for key in a if key in b]
    worst = max((abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in common), default=0.0)
    return worst, len(common)


def check_workload(args: argparse.Namespace) -> None:
    """Refuse a workload option that cannot run (shared with ``bench_transport_flows.py``).

    At least two nodes (a sender's peer is another node), a known topology, at least one flow
    per node, positive message sizes, at least one timed flow event, a seed >= 0.
    """
    for nodes in args.nodes:
        at_least("--nodes", nodes, 2)
    known("--topology", args.topology, TOPOLOGIES, "topology")
    at_least("--flows-per-node", args.flows_per_node, 1)
    positive("--median-bytes", args.median_bytes, "bytes")
    at_least("--events", args.events, 1)
    at_least("--seed", args.seed, 0)


PROG = "benchmarks/bench_maxmin_flows.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--topology", nargs="+", default=list(TOPOLOGIES))
    parser.add_argument("--flows-per-node", type=int, default=3)
    parser.add_argument("--median-bytes", type=float, default=1e6)
    parser.add_argument("--events", type=int, default=20000,
                        help="flow events timed for the incremental variant")
    parser.add_argument("--naive-events", type=int, default=2000,
                        help="flow events timed for the naive variant (it is slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gc-gen0", type=int, default=None,
                        help="first-generation threshold of Python's garbage collector for the "
                             "whole run (default: Python's, 700)")
    args = parser.parse_args(argv)
    check_workload(args)
    at_least("--naive-events", args.naive_events, 1)
    if args.gc_gen0 is not None:
        at_least("--gc-gen0", args.gc_gen0, 0)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Time both variants per topology and size (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    if args.gc_gen0 is not None:
        gc.set_threshold(args.gc_gen0, 20, 100)
    print(describe())
    print(f"{'topology':<12} {'nodes':>5} {'active':>7} {'incremental/s':>14} {'naive/s':>9} "
          f"{'speedup':>8} {'rerated':>8} {'repairs':>8} {'max rel diff':>13}")
    for name in args.topology:
        for n in args.nodes:
            topology = make_topology(name, n, args.seed)
            common = dict(flows_per_node=args.flows_per_node, median_bytes=args.median_bytes,
                          seed=args.seed)
            fast = run_workload(topology, naive=False, flow_events=args.events, **common)
            slow = run_workload(topology, naive=True,
                                flow_events=min(args.naive_events, args.events), **common)
            diff, compared = max_relative_difference(fast["finished"], slow["finished"])
            print(f"{name:<12} {n:>5} {fast['mean_active']:>7.0f} {fast['events_per_s']:>14,.0f} "
                  f"{slow['events_per_s']:>9,.0f} "
                  f"{fast['events_per_s'] / slow['events_per_s']:>7.1f}x "
                  f"{fast['rerated_per_event']:>8.1f} {fast['repairs_per_event']:>8.2f} "
                  f"{diff:>9.1e} ({compared} flows)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
