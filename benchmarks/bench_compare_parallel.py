"""A comparison of three policies, its runs in parallel processes versus one after another.

The built-in default comparison (``dtsim`` with no arguments: DDP, DiLoCo and NoLoCo on 8 nodes,
real tiny-LLaMA training) is run twice in one process, each with one torch thread per run:

- ``sequential``: ``compare(spec, processes=1)``, every policy in this process in turn;
- ``parallel``: ``compare(spec, processes=P)``, the policies in P spawned worker processes
  (what ``dtsim`` and ``dtsim compare`` do by default, P = min(policies, CPUs)).

It prints both wall times, their ratio, and checks that the two comparisons' records (minus wall
time) and trace hashes are identical. The parallel time includes starting the workers (spawn and
import: a few seconds), so the gain needs runs longer than that and free cores.

    python benchmarks/bench_compare_parallel.py                      # default scenario, P = 3
    python benchmarks/bench_compare_parallel.py --set run.until=30min --processes 2
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from machine import describe  # benchmarks/machine.py, beside this script

from sim.compare import NONDETERMINISTIC_KEYS, compare
from sim.scenario import default_scenario_path, load
from sim.usage import OneLineParser, at_least, command_line_checks, refusing

PROG = "benchmarks/bench_compare_parallel.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """Overrides and processes; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a key of the default scenario")
    parser.add_argument("--processes", type=int, default=3)
    args = parser.parse_args(argv)
    at_least("--processes", args.processes, 1)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run the comparison both ways and print the table (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    with command_line_checks():
        spec = load(default_scenario_path(), args.overrides)
    torch.set_num_threads(1)
    labels = [label for label, _ in spec.policies]
    print(describe())
    print(f"default comparison ({', '.join(labels)}), {os.cpu_count()} CPUs, "
          f"parallel with {args.processes} processes")
    timings = {}
    comparisons = {}
    for mode, processes in (("sequential", 1), ("parallel", args.processes)):
        start, cpu = time.perf_counter(), time.process_time()
        comparisons[mode] = compare(spec, processes=processes)
        timings[mode] = (time.perf_counter() - start, time.process_time() - cpu)

    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in NONDETERMINISTIC_KEYS} for r in records]

    same_records = strip(comparisons["sequential"].records) == \
        strip(comparisons["parallel"].records)
    same_traces = all(a.result.trace_hash() == b.result.trace_hash() for a, b in
                      zip(comparisons["sequential"].runs, comparisons["parallel"].runs))
    print("\n| mode | processes | wall s | CPU s of this process |")
    print("|---|---:|---:|---:|")
    for mode, processes in (("sequential", 1), ("parallel", args.processes)):
        wall, cpu = timings[mode]
        print(f"| {mode} | {processes} | {wall:.1f} | {cpu:.1f} |")
    ratio = timings["sequential"][0] / timings["parallel"][0]
    print(f"\nsequential / parallel wall time: {ratio:.2f}x")
    print(f"records identical (minus wall time): {same_records}; traces identical: "
          f"{same_traces}")
    if not same_records:
        for one, other in zip(strip(comparisons["sequential"].records),
                              strip(comparisons["parallel"].records)):
            diff = {k: (one[k], other.get(k)) for k in one if one[k] != other.get(k)}
            if diff:
                print(f"  {one['label']}: (sequential, parallel) {diff}")
    print(comparisons["parallel"].format_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
