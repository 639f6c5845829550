"""Engine overhead when real training runs: run wall time over the torch work it contains.

Design target: a simulated run's wall time is within 1.10x of the bare PyTorch compute inside
it. The benchmark runs the built-in default scenario (8 nodes, tiny LLaMA, DDP / DiLoCo / NoLoCo)
for a fixed number of steps and measures, in the same process:

- ``run_s``: wall time of ``sim.run`` (building the world and workload excluded);
- ``torch_s``: wall time spent inside the learners' torch methods (forward/backward, optimizer
  steps, evaluation, flat-vector copies), measured by wrapping those methods for this run only;
- ``ratio = run_s / torch_s``: 1.00 would mean the engine, the network model and the policy's
  Python cost nothing.

Each policy first runs ``--warmup`` steps untimed (``warmup_s`` in the table), so that one-time
costs of the process do not count as per-step overhead: the first ``torch.optim`` optimizer a
process builds imports ``torch._dynamo`` (about 1 s on this machine, inside the first policy's
run without the warm-up: DDP read 1.140 instead of 1.063 in one run, end of session 9), and
Python's first calls of each module. Bare torch doing the same math pays the import too.

    python benchmarks/bench_training_overhead.py
    python benchmarks/bench_training_overhead.py --steps 200 --policies diloco
    python benchmarks/bench_training_overhead.py --warmup 0      # the first run pays the imports
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from machine import describe  # benchmarks/machine.py, beside this script

from sim.runner import run
from sim.scenario import default_scenario_path, load
from sim.usage import OneLineParser, at_least, known, refusing
from workloads.learner import Learner

TORCH_METHODS = ("compute_grad", "optimizer_step", "train_step", "eval_loss", "get_flat",
                 "set_flat", "get_flat_grad", "set_flat_grad", "snapshot", "restore")


class TorchClock:
    """Wraps Learner methods so the wall time spent inside them (outermost calls only) adds up."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._saved: dict[str, object] = {}

    def __enter__(self) -> TorchClock:
        for name in TORCH_METHODS:
            original = getattr(Learner, name)
            self._saved[name] = original
            setattr(Learner, name, self._timed(original))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(Learner, name, original)

    def _timed(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self._depth -= 1
        return wrapper


def measure(policy: str, steps: int) -> tuple[float, float, int]:
    spec = load(default_scenario_path(), [f"run.steps={steps}", "run.target_loss=0.0"])
    config = dict(spec.policies)[policy]
    import dataclasses

    scenario = dataclasses.replace(spec.scenario, policy=config)
    with TorchClock() as clock:
        start = time.perf_counter()
        result = run(scenario)
        total = time.perf_counter() - start
    return total, clock.seconds, result.steps


PROG = "benchmarks/bench_training_overhead.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """Steps, policies, threads, warm-up; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--policies", default="ddp,diloco,noloco")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps each policy runs first (0: none)")
    args = parser.parse_args(argv)
    at_least("--steps", args.steps, 1)
    labels = [label for label, _ in load(default_scenario_path()).policies]
    args.policies = known("--policies", args.policies.split(","), labels, "policy")
    at_least("--threads", args.threads, 1)
    at_least("--warmup", args.warmup, 0)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Measure each policy and print the table (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    torch.set_num_threads(args.threads)
    print(describe())
    print(f"default scenario, {args.steps} steps, torch threads {args.threads}")
    print(f"{'policy':8} {'steps':>6} {'run_s':>8} {'torch_s':>8} {'ratio':>7}  {'warmup_s':>9}"
          f"  (target: ratio <= 1.10)")
    for policy in args.policies:
        warmup_s = measure(policy, args.warmup)[0] if args.warmup else 0.0
        total, torch_s, steps = measure(policy, args.steps)
        print(f"{policy:8} {steps:6d} {total:8.2f} {torch_s:8.2f} {total / torch_s:7.3f}"
              f"  {warmup_s:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
