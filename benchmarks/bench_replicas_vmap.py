"""Loop versus vmap: time one training step of R replicas both ways.

The loop steps R :class:`workloads.Learner` objects one after another; the vmap path steps a
:class:`workloads.ReplicaGroup` (stacked parameters, ``torch.func.vmap``). Both use the
reference shape of ``workloads/data/h100-batched-replicas.csv`` (d_model 128, 2 layers, batch 16,
seq 64) unless told otherwise, and print the two times and their ratio side by side, next to the
H100 reference where it has the same replica count.

    python benchmarks/bench_replicas_vmap.py --replicas 1 8 64 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import time
from importlib import resources

import torch

from sim.usage import OneLineParser, at_least, command_line_checks, refusing
from workloads import ReplicaGroup, WorkloadConfig, build_workload

PROG = "benchmarks/bench_replicas_vmap.py"


def reference_speedups() -> dict[int, float]:
    """Replica count -> speedup measured on an H100 (shipped CSV)."""
    text = resources.files("workloads").joinpath("data/h100-batched-replicas.csv").read_text()
    return {int(r["replicas"]): float(r["speedup"]) for r in csv.DictReader(io.StringIO(text))}


def time_step(step, repeats: int, device: str) -> float:  # noqa: ANN001
    """Best wall time of ``repeats`` calls of ``step`` after one warm-up call (seconds).

    On CUDA the clock stops only when the device has finished the step's kernels (the vmap
    step returns its losses as a device tensor without waiting for them).
    """

    def synchronise() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()
    best = float("inf")
    for _ in range(repeats):
        synchronise()
        t0 = time.perf_counter()
        step()
        synchronise()
        best = min(best, time.perf_counter() - t0)
    return best


def attention_backend(name: str) -> contextlib.AbstractContextManager:
    """``math``: every attention call uses the math kernel (vmap has batching rules for it)."""
    if name == "math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    ap = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sdpa", choices=["default", "math"], default="default",
                    help="attention backend: torch's choice, or the math kernel for both paths")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = ap.parse_args(argv)
    for replicas in args.replicas:
        at_least("--replicas", replicas, 1)
    for option, value in (("--d-model", args.d_model), ("--layers", args.layers),
                          ("--batch", args.batch), ("--seq", args.seq),
                          ("--repeats", args.repeats)):
        at_least(option, value, 1)
    if args.threads is not None:
        at_least("--threads", args.threads, 1)
    return args


def workload_config(args: argparse.Namespace) -> WorkloadConfig:
    """The LLaMA both paths train: the options' shape, 4 heads."""
    return WorkloadConfig(
        learner="llama",
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=4,
        batch=args.batch,
        seq=args.seq,
        device=args.device,
    )


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Print loop and vmap seconds per step and their ratio for each replica count.

    One line and exit code 2 if the command line is refused (an option, or the workload it
    describes).
    """
    args = parse_command_line(argv)
    with command_line_checks():
        cfg = workload_config(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    reference = reference_speedups()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"attention {args.sdpa}")
    print(f"{'replicas':>8} {'loop_s':>9} {'vmap_s':>9} {'speedup':>8} {'h100_ref':>9}")
    for R in args.replicas:
        wl = build_workload(cfg, num_replicas=R, seed=0)
        learners = [wl.make_learner(r) for r in range(R)]
        group = ReplicaGroup(wl, list(range(R)))

        def loop_step() -> None:
            for learner in learners:
                learner.train_step()

        with attention_backend(args.sdpa):
            loop_s = time_step(loop_step, args.repeats, args.device)
            vmap_s = time_step(group.train_step, args.repeats, args.device)
        ref = reference.get(R)
        ref_text = f"{ref:.2f}" if ref is not None else "-"
        print(f"{R:>8} {loop_s:>9.4f} {vmap_s:>9.4f} {loop_s / vmap_s:>8.2f} {ref_text:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
