"""The timing-only benchmark's scenario on several checkouts, side by side in one session.

Which commit made a run slower? Figures taken on different days are not comparable on a shared
machine (other jobs, another host), so this runs the scenario of ``bench_timing_only_scale.py``
(``uniform`` topology or ``--topology clusters-of-clusters``, DiLoCo H = 1, ``tree`` all-reduce,
timing-only) from each checkout in a fresh process, the checkouts interleaved (A, B, B, A, ...)
so that a change of load falls on all alike, and prints per checkout the median CPU milliseconds
per later outer step, the events and the simulated time (equal when the results are).
Checkouts from before the ``tcp`` transport existed run ``fluid``.

``--instructions`` counts instead the machine instructions of the later outer steps under
valgrind's callgrind (collection switched on at the end of the first outer step and off at the
last, through callgrind's client requests from a tiny C helper built with ``cc``): a count that
the machine's load does not change, at about 50x the run time. It leaves out what caches and
memory add.

``--cache-misses`` (with ``--instructions``) also simulates the data caches, with a last-level
cache of 2 MiB (16-way, 64-byte lines), and reports the last-level misses per node-step of the
later outer steps: what the per-node and per-message structures cost once the world no longer
fits in the caches. 3,000 nodes (about 30 MB of world) in 2 MiB stand for 100,000 nodes (about
1 GB) in this machine's 32 MiB L3, at a fraction of the run time; the count is as independent
of load as the instructions (callgrind has no TLB, so it leaves out the page walks).

    git archive 04ed65a | tar -x -C /tmp/old        # a checkout of the old commit
    nice .venv/bin/python benchmarks/compare_commits.py /tmp/old . --steps 100 --repeat 3
    nice .venv/bin/python benchmarks/compare_commits.py /tmp/old . --steps 4 --instructions
    nice .venv/bin/python benchmarks/compare_commits.py /tmp/old . --nodes 3000 --steps 3 \
        --transport tcp --instructions --cache-misses
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROG = "benchmarks/compare_commits.py"

TOGGLE_C = r"""
#include <valgrind/callgrind.h>
void cg_start(void) {
    CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT;
}
void cg_stop(void) {
    CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION;
}
"""


def child(args: argparse.Namespace) -> None:
    """Run the scenario from ``args.child`` (a checkout) and print one JSON line."""
    sys.path.insert(0, str(Path(args.child).resolve()))
    import dataclasses

    from policies.data_parallel.diloco import DiLoCo
    from sim.config import ClusterConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
    from sim.runner import run
    from workloads import WorkloadConfig

    toggle = ctypes.CDLL(args.toggle) if args.toggle else None
    steps = args.steps
    marks: list[float] = []

    class TimedDiLoCo(DiLoCo):
        def _outer_step(self, mean_delta, participants, r):  # noqa: ANN001
            marks.append(time.process_time())
            if toggle is not None and len(marks) == 1:
                toggle.cg_start()
            if toggle is not None and len(marks) == steps:
                toggle.cg_stop()
            return super()._outer_step(mean_delta, participants, r)

    fields = {f.name for f in dataclasses.fields(NetworkConfig)}
    transport = {"transport": args.transport} if "transport" in fields else {}
    if args.topology == "uniform":
        params: dict = {"latency_s": 0.01}
    else:  # bench_timing_only_scale.py's clusters-of-clusters
        params = {"num_clusters": 8, "intra_latency_s": 1e-3, "intra_bandwidth_Bps": 1.25e9,
                  "wan_latency_s": 0.01, "wan_bandwidth_Bps": 1.25e9}
    scenario = Scenario(
        name="compare-commits", seed=0, cluster=ClusterConfig(num_nodes=args.nodes,
                                                              device="h100"),
        network=NetworkConfig(model=args.network, topology=args.topology,
                              topology_params=params, uplink_Bps=1.25e8,
                              downlink_Bps=1.25e8, **transport),
        workload=WorkloadConfig(learner="tiny-llama", timing="llama-125m", batch=8, seq=128),
        policy=PolicyConfig(name="diloco", params={}),
        run=RunConfig(max_steps=steps + 1, timing_only=True))
    result = run(scenario, TimedDiLoCo(inner_steps=1, allreduce="tree"))
    print(json.dumps({"later_ms": (marks[-1] - marks[0]) / (len(marks) - 1) * 1e3,
                      "events": result.world.env.events_processed,
                      "sim_s": float(result.world.env.now),
                      "transport": transport.get("transport", "fluid")}))


CACHE_SIM = ["--cache-sim=yes", "--LL=2097152,16,64", "--D1=32768,8,64", "--I1=32768,8,64"]
"""callgrind's cache simulation for ``--cache-misses``: 32 KiB L1s and a 2 MiB last level."""


def run_child(args: argparse.Namespace, checkout: str, toggle: str | None) -> dict:
    """One fresh process on ``checkout``; its JSON line (plus ``instructions`` if counted)."""
    cmd = [sys.executable, __file__, "--child", str(Path(checkout).resolve()),  # (run in /tmp)
           "--nodes", str(args.nodes), "--steps", str(args.steps), "--network", args.network,
           "--transport", args.transport, "--topology", args.topology]
    env = dict(os.environ, PYTHONHASHSEED="0")
    out_file = None
    if toggle:
        handle, out_file = tempfile.mkstemp(prefix="callgrind.")  # (mktemp's name could be taken)
        os.close(handle)
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
               f"--callgrind-out-file={out_file}"] + (CACHE_SIM if args.cache_misses else []) \
            + cmd + ["--toggle", toggle]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
                          timeout=args.timeout_s)
    if done.returncode:
        raise SystemExit(f"{checkout}: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if toggle:
        lines = [line for line in done.stderr.splitlines() if "Collected :" in line]
        counts = [int(x) for x in lines[-1].split(":")[-1].split()]
        found["instructions"] = counts[0]
        if args.cache_misses:  # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
            node_steps = args.nodes * (args.steps - 1)
            found["ll_misses_per_node_step"] = (counts[7] + counts[8]) / node_steps
        for path in Path(out_file).parent.glob(Path(out_file).name + "*"):  # type: ignore[arg-type]
            path.unlink()
    return found


def build_toggle(where: str) -> str:
    """Compile the callgrind toggle helper into ``where``; its path."""
    if shutil.which("valgrind") is None or shutil.which("cc") is None:
        raise SystemExit("--instructions needs valgrind (with its headers) and a C compiler")
    source = Path(where) / "toggle.c"
    source.write_text(TOGGLE_C)
    library = Path(where) / "libtoggle.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True)
    return str(library)


def command_line_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The options of the command and of its child runs (``--child``, ``--toggle``)."""
    parser = parser_class(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", help="checkout directories (the first is the "
                        "base of the ratios)")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="outer steps per run")
    parser.add_argument("--network", default="ideal", choices=["ideal", "maxmin"])
    parser.add_argument("--transport", default="fluid", choices=["fluid", "tcp"])
    parser.add_argument("--topology", default="uniform",
                        choices=["uniform", "clusters-of-clusters"],
                        help="bench_timing_only_scale.py's topologies (clusters: 8 data centres)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per checkout")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind (one run per checkout)")
    parser.add_argument("--cache-misses", action="store_true",
                        help="with --instructions: also count last-level cache misses (2 MiB)")
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--toggle", help=argparse.SUPPRESS)
    return parser


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """The command's options; a bad value is a :class:`UsageError` naming it."""
    from sim.usage import (  # noqa: PLC0415 (see main)
        OneLineParser,
        UsageError,
        at_least,
        checked,
        positive_seconds,
    )

    args = command_line_parser(OneLineParser).parse_args(argv)
    if not args.checkouts:
        raise UsageError("checkouts: give at least one checkout")
    for checkout in args.checkouts:
        checked("checkouts", checkout, lambda c: (Path(c) / "sim").is_dir(),
                "a checkout of dtsim (a folder with sim/)")
    if args.cache_misses and not args.instructions:
        raise UsageError("--cache-misses: counts under callgrind: give --instructions too")
    at_least("--nodes", args.nodes, 2)
    at_least("--steps", args.steps, 2)  # (a later step's time needs two outer steps)
    at_least("--repeat", args.repeat, 1)
    positive_seconds("--timeout-s", args.timeout_s)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every checkout, interleaved, and print the table (exit code 2 if refused).

    ``--child CHECKOUT`` is one run, started by this script: it imports the engine of that
    checkout, so it parses with plain argparse and nothing of this checkout's engine is
    imported before it (the command line's checks are imported only on the parent's path).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(command_line_parser(argparse.ArgumentParser).parse_args(argv))
        return 0
    sys.path.insert(0, str(ROOT))
    from sim.usage import UsageError, refused  # noqa: PLC0415

    try:
        args = parse_command_line(argv)
    except UsageError as exc:
        return refused(PROG, exc)
    from benchmarks.machine import describe  # noqa: PLC0415 (the parent's header only)

    print(describe())
    print(f"{args.nodes} nodes, {args.topology}, {args.steps} outer steps, {args.network}, "
          f"{args.transport} (where the checkout has it)")
    with tempfile.TemporaryDirectory() as scratch:
        toggle = build_toggle(scratch) if args.instructions else None
        repeat = 1 if toggle else args.repeat
        runs: dict[str, list[dict]] = {c: [] for c in args.checkouts}
        for r in range(repeat):
            for checkout in (args.checkouts if r % 2 == 0 else args.checkouts[::-1]):
                found = run_child(args, checkout, toggle)
                runs[checkout].append(found)
                print(f"  {checkout}: {found}", flush=True)
    key = "instructions" if toggle else "later_ms"
    base = statistics.median(x[key] for x in runs[args.checkouts[0]])
    unit = "instructions of the later steps" if toggle else "CPU ms per later outer step"
    misses = "ll_misses_per_node_step" in runs[args.checkouts[0]][0]
    print(f"\n| checkout | {unit} (median) | range | ratio | events | simulated s |"
          + (" LL misses per node-step | ratio |" if misses else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if misses else ""))
    base_misses = runs[args.checkouts[0]][0].get("ll_misses_per_node_step", 0.0)
    digits = 0 if toggle else 1
    for checkout, found in runs.items():
        values = [x[key] for x in found]
        median = statistics.median(values)
        print(f"| {checkout} | {median:,.{digits}f} | {min(values):,.{digits}f}-"
              f"{max(values):,.{digits}f} | {median / base:.3f}x | {found[0]['events']:,} | "
              f"{found[0]['sim_s']!r} |" + (
                  f" {found[0]['ll_misses_per_node_step']:.1f} | "
                  f"{found[0]['ll_misses_per_node_step'] / base_misses:.3f}x |" if misses else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
