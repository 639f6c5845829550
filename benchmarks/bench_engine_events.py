"""Engine events per second on compute-free scenarios, against bare SimPy timeouts.

Every scenario runs ``--processes`` generator processes that each loop on one kind of wait, for
``--operations`` waits in all; the bare-SimPy baseline runs the same number of processes looping
on ``env.timeout(d)``. An *operation* is one wait a process yields and gets back:

- ``simpy-timeout``: ``yield env.timeout(d)`` on a plain ``simpy.Environment`` (the baseline);
- ``node-compute``: ``yield node.compute(seconds=d)`` (FIFO slot, busy interval, straggler hook);
- ``transfer-ideal``: ``yield network.transfer(a, b, nbytes)`` on the ``ideal`` network
  (route lookup, byte accounting, comm intervals, send time then propagation latency);
- ``transfer-maxmin``: the same on the ``maxmin`` network, with access links so flows share
  uplinks and downlinks.

Durations are random (so events do not all land at one instant) from one seeded numpy stream per
process. Rates are operations per CPU second of this process (``time.process_time``, so other
programs on a shared machine do not count) and SimPy events per CPU second. ``op ratio`` is
baseline operations/s over the scenario's operations/s (what one wait costs, all in);
``event ratio`` is baseline events/s over the scenario's events/s (the engine's cost per SimPy
event; design target < 2). A compute is two SimPy events (the timer and the task's own event,
which can instead fail early when the node goes down), a transfer three (the task event, the
send time, the propagation latency), so ``op ratio`` is at least the events per operation.

    python benchmarks/bench_engine_events.py
    python benchmarks/bench_engine_events.py --processes 1000 --operations 200000
    python benchmarks/bench_engine_events.py --gc-gen0 50000    # fewer garbage-collector walks
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time

import numpy as np
import simpy
from machine import describe  # benchmarks/machine.py, beside this script

from sim.config import NetworkConfig
from sim.usage import OneLineParser, at_least, checked, refusing
from sim.world import World
from topologies import uniform


def bare_simpy(processes: int, per_process: int, seed: int) -> tuple[float, int]:
    """CPU seconds and events for ``processes`` loops of ``per_process`` bare timeouts."""
    env = simpy.Environment()

    def loop(rng: np.random.Generator):
        for d in rng.uniform(0.5, 1.5, per_process).tolist():
            yield env.timeout(d)

    for p in range(processes):
        env.process(loop(np.random.default_rng([seed, p])))
    start = time.process_time()
    env.run()
    # per process: its start (Initialize), its timeouts, and its own end (a Process is an event)
    return time.process_time() - start, processes * (per_process + 2)


def make_world(processes: int, model: str, shared: bool) -> World:
    """``processes`` nodes behind one switch (10 ms, 1 Gbit/s); optional 100 Mbit/s access."""
    topo = uniform(processes, latency_s=0.01, bandwidth_Bps=1e9 / 8)
    if shared:
        access = (100e6 / 8,) * processes
        topo = dataclasses.replace(topo, uplink_Bps=access, downlink_Bps=access)
    # fluid: the engine, not the tcp layer
    return World(topo, network=NetworkConfig(model=model, transport="fluid"))


def engine(scenario: str, processes: int, per_process: int, seed: int) -> tuple[float, int]:
    """CPU seconds and SimPy events of one engine scenario (see the module docstring)."""
    model = "maxmin" if scenario == "transfer-maxmin" else "ideal"
    world = make_world(processes, model, shared=scenario == "transfer-maxmin")
    net = world.network

    def computer(node, rng: np.random.Generator):
        for d in rng.uniform(0.5, 1.5, per_process).tolist():
            yield node.compute(seconds=d)

    def sender(node, rng: np.random.Generator):
        peers = rng.integers(processes - 1, size=per_process).tolist()
        sizes = rng.uniform(0.5e6, 1.5e6, per_process).tolist()
        for peer, nbytes in zip(peers, sizes):
            yield net.transfer(node, peer + (peer >= node.id), nbytes)

    body = computer if scenario == "node-compute" else sender
    for node in world.nodes:
        world.env.process(body(node, np.random.default_rng([seed, node.id])))
    start = time.process_time()
    world.env.run()
    return time.process_time() - start, world.env.events_processed


PROG = "benchmarks/bench_engine_events.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=200)
    parser.add_argument("--operations", type=int, default=100_000,
                        help="waits in all, per scenario")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gc-gen0", type=int, default=None,
                        help="first-generation threshold of Python's garbage collector for the "
                             "whole run (default: Python's, 700); the engine keeps every "
                             "interval it records, and the collector's walks over them cost "
                             "a quarter of a compute")
    args = parser.parse_args(argv)
    at_least("--processes", args.processes, 2)  # (a transfer goes to another process's node)
    checked("--operations", args.operations, lambda n: n >= args.processes,
            f"an integer >= --processes ({args.processes})")
    at_least("--repeats", args.repeats, 1)
    at_least("--seed", args.seed, 0)
    if args.gc_gen0 is not None:
        at_least("--gc-gen0", args.gc_gen0, 0)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Time every scenario and print the table (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    if args.gc_gen0 is not None:
        gc.set_threshold(args.gc_gen0, 20, 100)
    per_process = args.operations // args.processes
    operations = per_process * args.processes
    scenarios = ["simpy-timeout", "node-compute", "transfer-ideal", "transfer-maxmin"]
    print(describe())
    print(f"{args.processes} processes, {operations:,} operations each scenario, best of "
          f"{args.repeats}, gc thresholds {gc.get_threshold()}")
    print(f"{'scenario':<16} {'operations/s':>13} {'events/s':>11} {'events/op':>9} "
          f"{'op ratio':>9} {'event ratio':>11}")
    baseline = baseline_events = None
    for scenario in scenarios:
        runs = []
        for _ in range(args.repeats):
            if scenario == "simpy-timeout":
                runs.append(bare_simpy(args.processes, per_process, args.seed))
            else:
                runs.append(engine(scenario, args.processes, per_process, args.seed))
        cpu_s, events = min(runs)
        ops_per_s = operations / cpu_s
        if baseline is None:
            baseline, baseline_events = ops_per_s, events / cpu_s
        print(f"{scenario:<16} {ops_per_s:>13,.0f} {events / cpu_s:>11,.0f} "
              f"{events / operations:>9.2f} {baseline / ops_per_s:>8.2f}x "
              f"{baseline_events / (events / cpu_s):>10.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
