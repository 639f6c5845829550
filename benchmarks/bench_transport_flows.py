"""Flow events per second of the ``tcp`` transport versus ``fluid``, on the same workload.

The workload of ``bench_maxmin_flows.py``: every node runs ``--flows-per-node`` senders; each
sends a message of log-normal size (median ``--median-bytes``) to a random other node and the
next one as soon as it is delivered. A *flow event* is a message's start or end; the tcp
transport's extra work (slow-start rounds, window-capped rounds, in-order queues) is cost, not
events. Both transports run side by side in one process on the ``maxmin`` model, and tcp a
second time with every round on the clock (``per-round``: no closed-form ramps for connections
alone on their links). Target: tcp at least half of fluid's events per second on 256 nodes.
``--hystart-delay-exit`` and ``--bottleneck-queue SIZE_OR_TIME`` run both tcp columns with
those options (``TcpConfig``; docs/network-model.md); the last columns give SimPy events per
flow event, fluid's and tcp's, where their cost shows.

    python benchmarks/bench_transport_flows.py                  # 64 and 256 nodes
    python benchmarks/bench_transport_flows.py --nodes 256 --topology residential
    python benchmarks/bench_transport_flows.py --hystart-delay-exit --bottleneck-queue 40ms
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_maxmin_flows import make_topology  # the same two topologies, one definition

from sim import units
from sim.config import NetworkConfig
from sim.network.tcp import TcpConfig
from sim.world import World


def run_workload(topology, *, transport: str, flow_events: int, flows_per_node: int,
                 median_bytes: float, seed: int, lone_ramps: bool = True,
                 tcp: TcpConfig | None = None) -> dict:
    """CPU time of ``flow_events`` message starts and ends after a warm-up.

    ``lone_ramps=False`` runs every tcp round on the clock (no closed-form ramps); ``tcp`` the
    transport's parameters (its defaults if None).
    """
    network = NetworkConfig(model="maxmin", transport=transport, tcp=tcp or TcpConfig())
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
    start = time.process_time()
    simpy_start = world.env.events_processed
    while net.flows_started + net.flows_finished - first < flow_events:
        world.env.step()
    cpu_s = time.process_time() - start
    events = net.flows_started + net.flows_finished - first
    return {"events_per_s": events / cpu_s, "sim_s": world.now - sim_start,
            "rounds": getattr(net, "rounds_started", 0),
            "simpy_per_event": (world.env.events_processed - simpy_start) / events}


def buffer_arg(text: str) -> tuple[float, str]:
    """``--bottleneck-queue``: a size or a time (:func:`sim.units.parse_size_or_duration`)."""
    try:
        return units.parse_size_or_duration(text)
    except ValueError as err:  # argparse prints the line and exits with 2
        raise argparse.ArgumentTypeError(str(err)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--topology", nargs="+", default=["residential", "datacenters"])
    parser.add_argument("--flows-per-node", type=int, default=3)
    parser.add_argument("--median-bytes", type=float, default=1e6)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hystart-delay-exit", action="store_true",
                        help="tcp with HyStart's delay exit (off by default)")
    parser.add_argument("--bottleneck-queue", type=buffer_arg, default="0B",
                        help="tcp with every link's drop-tail buffer: a size (504KB) or a time "
                             "at each link's rate (40ms); default none")
    args = parser.parse_args()
    queue, unit = args.bottleneck_queue
    tcp_config = TcpConfig(hystart_delay_exit=args.hystart_delay_exit,
                           bottleneck_queue_bytes=queue if unit == "_bytes" else 0.0,
                           bottleneck_queue_s=queue if unit == "_s" else 0.0)
    print(f"{'topology':<12} {'nodes':>5} {'fluid/s':>9} {'tcp/s':>9} {'tcp/fluid':>9} "
          f"{'tcp rounds':>10} {'per-round/s':>11} {'per-round/fluid':>15} "
          f"{'SimPy/event fluid':>17} {'tcp':>5}")
    for name in args.topology:
        for n in args.nodes:
            topology = make_topology(name, n, args.seed)
            common = dict(flow_events=args.events, flows_per_node=args.flows_per_node,
                          median_bytes=args.median_bytes, seed=args.seed)
            fluid = run_workload(topology, transport="fluid", **common)
            tcp = run_workload(topology, transport="tcp", tcp=tcp_config, **common)
            old = run_workload(topology, transport="tcp", lone_ramps=False, tcp=tcp_config,
                               **common)
            print(f"{name:<12} {n:>5} {fluid['events_per_s']:>9,.0f} {tcp['events_per_s']:>9,.0f} "
                  f"{tcp['events_per_s'] / fluid['events_per_s']:>8.2f}x {tcp['rounds']:>10,} "
                  f"{old['events_per_s']:>11,.0f} "
                  f"{old['events_per_s'] / fluid['events_per_s']:>14.2f}x "
                  f"{fluid['simpy_per_event']:>17.2f} {tcp['simpy_per_event']:>5.2f}",
                  flush=True)

if __name__ == "__main__":
    main()
