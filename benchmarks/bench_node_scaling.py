"""Timing-only DiLoCo at 1,000 / 10,000 / 100,000 nodes: is the cost per node-step flat?

The issue's target: simulating a node-step (one node's inner step plus its share of the
all-reduce) costs about as much at 100,000 nodes as at 1,000 (within 1.5x), and memory grows
with what the run was asked to keep. Each (nodes, record level, network) runs in its own Python
process, so that its peak memory is its own; the parent prints the table with each cost next
to the smallest size's:

    cost per node-step = CPU seconds of the later outer steps / (outer steps x nodes)

The first outer step is reported apart (building the world: topology, nodes, routes);
``--warmup W`` leaves the first W outer steps out of the cost (default 1). Peak
memory is the process's peak resident set minus what it held before building the world (the
imported libraries).

On a shared machine one run's CPU time moves by 10-20%, so every (nodes, level, network) runs
``--repeat`` times (default 3), the sizes interleaved (1k, 10k, 100k, 1k, 10k, ...) so that a
change of load falls on all of them alike. The table gives the median cost per node-step with
the spread (lowest-highest) of the repetitions, the ratio of the medians, and the range of the
ratio over the repetitions (repetition i of each size against repetition i of the smallest).

A small size's later steps take a fraction of a second (1,000 nodes x 2 later steps: 0.1 s of
CPU), so one burst of load moves its figure by 10-20%, and with it every ratio to it.
``--min-node-steps K`` runs each size for at least K node-steps after the warm-up
(``max(--steps, ceil(K / nodes) + W)`` outer steps: with K = 200,000, 201 at 1,000 nodes, 21 at
10,000, and ``--steps`` at 100,000), so that every size is timed over about as much work.

Run length (measured in session 7, docs/performance.md): the cost of an outer step is not flat
over a run. The second and third outer steps cost 3-8% less than the later ones at every size
(1,000, 10,000 and 100,000 nodes; the same events every step), so a ratio compares like with
like when every size is timed over the same outer steps (``--steps 3``: steps 2-3 everywhere;
``--steps 6 --warmup 3``: steps 4-6, nearer the steady state). ``--min-node-steps`` times the
small sizes over many more steps than the large one, later in their run: it lowers their noise
but raises their cost against the large size's, so it is not used for the ratio.

``--baseline DIR [DIR ...]`` runs the same children from other checkouts too (e.g. older
commits unpacked with ``git archive``; each named by its directory's name), each right after
this checkout's run of the same size and repetition, and adds their rows and the ratio
this/baseline per size: before and after measured side by side, under the same load.

Scenario: ``uniform`` topology (10 ms apart, 1 Gbit/s access links), DiLoCo with H = 1 and a
``tree`` all-reduce of llama-125m's outer gradient (2 (N - 1) messages per outer step),
timing-only learners, the scenario's default transport unless ``--transport`` says otherwise.

Run from the repository root::

    .venv/bin/python benchmarks/bench_node_scaling.py                       # 1k, 10k, 100k
    .venv/bin/python benchmarks/bench_node_scaling.py --repeat 5 --levels full
    .venv/bin/python benchmarks/bench_node_scaling.py --sizes 1000 --steps 300   # memory vs level
    .venv/bin/python benchmarks/bench_node_scaling.py --baseline /tmp/old --levels full
    .venv/bin/python benchmarks/bench_node_scaling.py --min-node-steps 200000 --levels full
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.usage import (  # noqa: E402
    OneLineParser,
    UsageError,
    at_least,
    checked,
    positive_seconds,
    refusing,
)

PROG = "benchmarks/bench_node_scaling.py"

TARGET_RATIO = 1.5
"""The issue's target: cost per node-step at the largest size within 1.5x of the smallest."""


def child(nodes: int, level: str, network: str, steps: int, transport: str | None,
          warmup: int = 1) -> dict:
    """Run one size in this process; return its figures (called in a fresh process).

    The cost per node-step is taken over the outer steps after the first ``warmup`` ones.
    """
    rss_before_MiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_timing_only_scale import TimedDiLoCo, scenario  # noqa: PLC0415

    from sim.runner import run  # noqa: PLC0415

    args = argparse.Namespace(nodes=nodes, steps=steps, inner_steps=1, topology="uniform",
                              latency_s=0.01, bandwidth_Bps=1.25e8, seed=0, clusters=8)
    scen = scenario(args, network)
    scen = dataclasses.replace(scen, run=dataclasses.replace(scen.run, record=level))
    if transport is not None:
        scen = dataclasses.replace(scen, network=dataclasses.replace(scen.network,
                                                                     transport=transport))
    rss_before_MiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    policy = TimedDiLoCo(inner_steps=1, allreduce="tree")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = run(scen, policy)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    marks = policy.cpu_marks  # CPU clock at the end of each outer step
    later = (marks[-1] - marks[warmup - 1]) / (len(marks) - warmup)
    return {"nodes": nodes, "level": level, "network": network,
            "transport": scen.network.transport, "outer_steps": len(marks),
            "events": result.world.env.events_processed,
            "first_step_s": marks[0] - cpu0, "later_step_s": later, "warmup": warmup,
            "us_per_node_step": later / nodes * 1e6, "total_cpu_s": cpu1 - cpu0,
            "total_wall_s": wall1 - wall0,
            "peak_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before_MiB}


def run_child(nodes: int, level: str, network: str, args: argparse.Namespace,
              root: Path = ROOT) -> dict | None:
    """Run one size in a fresh process of the checkout at ``root``; its figures, or ``None``."""
    steps = max(args.steps, math.ceil(args.min_node_steps / nodes) + args.warmup)
    cmd = [sys.executable, str(root / "benchmarks" / Path(__file__).name), "--child", str(nodes),
           level, network, "--steps", str(steps)]
    if args.transport:
        cmd += ["--transport", args.transport]
    if args.warmup != 1:  # (so that a baseline's older copy of this script runs the default)
        cmd += ["--warmup", str(args.warmup)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             timeout=args.timeout_s)
    except subprocess.TimeoutExpired:
        print(f"  {root} {network} {level} {nodes}: over {args.timeout_s:.0f} s, skipped")
        return None
    except subprocess.CalledProcessError as exc:
        print(f"  {root} {network} {level} {nodes}: failed\n{exc.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def is_checkout(path: Path) -> bool:
    """Whether ``path`` is a checkout of dtsim (a folder with this benchmark in it)."""
    return (path / "benchmarks" / Path(__file__).name).is_file()


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--steps", type=int, default=5, help="outer steps per run (>= 2)")
    parser.add_argument("--min-node-steps", type=int, default=0, metavar="K",
                        help="run each size for at least K node-steps after its --warmup outer "
                             "steps (more outer steps for the small sizes)")
    parser.add_argument("--warmup", type=int, default=1, metavar="W",
                        help="outer steps left out of the cost (default 1: the world's build)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median taken)")
    parser.add_argument("--levels", nargs="+", default=["full", "aggregate"],
                        choices=["full", "aggregate"], help="run.record levels")
    parser.add_argument("--networks", nargs="+", default=["ideal"], choices=["ideal", "maxmin"])
    parser.add_argument("--transport", choices=["fluid", "tcp"], default=None,
                        help="network.transport (default: the scenario default)")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per run")
    parser.add_argument("--baseline", type=Path, nargs="+", default=[], metavar="DIR",
                        help="other checkouts (e.g. older commits) to run alongside")
    parser.add_argument("--child", nargs=3, metavar=("NODES", "LEVEL", "NETWORK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for nodes in args.sizes:
        at_least("--sizes", nodes, 2)  # (DiLoCo averages over at least two nodes)
    at_least("--steps", args.steps, 2)
    at_least("--min-node-steps", args.min_node_steps, 0)
    checked("--warmup", args.warmup, lambda warmup: 1 <= warmup < args.steps,
            f"an integer >= 1 and < --steps ({args.steps})")
    at_least("--repeat", args.repeat, 1)
    positive_seconds("--timeout-s", args.timeout_s)
    for other in args.baseline:
        checked("--baseline", other, is_checkout, "a checkout of dtsim (a folder with "
                f"benchmarks/{Path(__file__).name})")
    names = [other.resolve().name for other in args.baseline]
    if len(set(names) - {"this"}) != len(names):  # (each checkout's rows are named by its folder)
        raise UsageError("--baseline: give checkouts whose folders have distinct names, other "
                         f"than 'this', got {' '.join(names)}")
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run every size in its own process and print the table (exit code 2 if refused)."""
    args = parse_command_line(argv)
    if args.child:
        nodes, level, network = args.child
        print(json.dumps(child(int(nodes), level, network, args.steps, args.transport,
                               args.warmup)))
        return 0

    least = f" (at least {args.min_node_steps:,} node-steps after the warm-up)" \
        if args.min_node_steps else ""
    print(f"timing-only DiLoCo, H = 1, tree all-reduce, uniform topology, {args.steps} outer "
          f"steps per run{least}, cost over the steps after the first {args.warmup}, "
          f"{args.repeat} runs per size (interleaved); each run in its own process; CPU time")
    from benchmarks.machine import describe  # (the parent's header; the children need none)

    print(describe())
    sizes = sorted(args.sizes)
    codes = {"this": ROOT}
    for other in args.baseline:
        codes[other.resolve().name] = other.resolve()
    if args.baseline:
        print(", ".join(f"{code} = {root}" for code, root in codes.items()))
    runs: dict[tuple[str, str, str, int], list[dict | None]] = {}
    for network in args.networks:
        for level in args.levels:
            for rep in range(args.repeat):
                for nodes in sizes:
                    for code, root in codes.items():
                        r = run_child(nodes, level, network, args, root)
                        runs.setdefault((code, network, level, nodes), []).append(r)
                        if r is not None:
                            print(f"  run {rep + 1}/{args.repeat}: {code} {network} {level} "
                                  f"{nodes:,}: {r['us_per_node_step']:.1f} µs per node-step, "
                                  f"{r['peak_MiB']:,.0f} MiB", flush=True)
    header = ("code", "network", "transport", "record", "nodes", "events", "first step s",
              "µs per node-step (median)", "spread (low-high)", "ratio to smallest (median)",
              "ratio range", "peak memory MiB", "KiB per node")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    verdicts = []
    medians: dict[tuple[str, str, str, int], float] = {}
    for code in codes:
        for network in args.networks:
            for level in args.levels:
                base = runs.get((code, network, level, sizes[0]), [])
                base_med = _median([r["us_per_node_step"] for r in base if r])
                for nodes in sizes:
                    rs = runs.get((code, network, level, nodes), [])
                    ok = [r for r in rs if r]
                    if not ok:
                        continue
                    cost = [r["us_per_node_step"] for r in ok]
                    med = medians[(code, network, level, nodes)] = _median(cost)
                    ratios = [r["us_per_node_step"] / b["us_per_node_step"]
                              for r, b in zip(rs, base) if r and b]
                    ratio = med / base_med if base_med else float("nan")
                    peak = _median([r["peak_MiB"] for r in ok])
                    print(f"| {code} | {network} | {ok[0]['transport']} | {level} | {nodes:,} | "
                          f"{ok[0]['events']:,} | "
                          f"{_median([r['first_step_s'] for r in ok]):.2f} | {med:.1f} | "
                          f"{min(cost):.1f}-{max(cost):.1f} | {ratio:.2f}x | "
                          f"{min(ratios):.2f}-{max(ratios):.2f}x | {peak:,.0f} | "
                          f"{peak / nodes * 1024:.1f} |")
                    verdicts.append((code, network, level, nodes, ratio))
    for other in list(codes)[1:]:
        print(f"\ncost per node-step, this / {other} (medians):")
        for (code, network, level, nodes), med in medians.items():
            old = medians.get((other, network, level, nodes))
            if code == "this" and old:
                print(f"  {network} {level} {nodes:,}: {med / old:.2f}x")
    print(f"\ntarget: cost per node-step at the largest size within {TARGET_RATIO}x of the "
          f"smallest (ratio of the medians)")
    for code in codes:
        for network in args.networks:
            for level in args.levels:
                last = [v for v in verdicts if v[:3] == (code, network, level)]
                if len(last) > 1:
                    n, ratio = last[-1][3], last[-1][4]
                    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
                    print(f"  {code}, {network}, record={level}: {n:,} nodes at {ratio:.2f}x "
                          f"-> {verdict}")
    return 0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
