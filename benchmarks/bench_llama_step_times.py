"""The project's LLaMA timed on a GPU at the reference shapes, beside the timing model.

For every row of ``workloads/data/h100-llama-step-times.csv`` (preset, microbatch, sequence) it
builds the project's own decoder (:class:`workloads.llama.Llama`, the preset's shape from
:func:`workloads.timing.preset_config`) on the device in bfloat16, and times

- ``fwd_s``: the forward pass and the loss, with autograd recording (as in training);
- ``fwd_bwd_s``: forward, cross-entropy on random next tokens, and backward,

each the median of ``--repeats`` timed calls after ``--warmup`` untimed ones, the clock stopped
only when the device has finished (``torch.cuda.synchronize``). Beside each measurement it
prints the reference CSV's H100 time and what the timing model predicts for the device profile
``--profile`` (``workloads.devices``), with the error of the prediction against the measurement.

    python benchmarks/bench_llama_step_times.py --device cuda --profile h200
    python benchmarks/bench_llama_step_times.py --device cuda --only llama-1b:4 --compile

The reference was measured by others on an H100 with a setup we do not know in detail (dtype,
attention kernel, compilation); this script is ours, so a gap between its H100-class numbers and
the CSV says how much of the model's error is the setup rather than the device.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from sim.usage import (
    OneLineParser,
    at_least,
    check_output_file,
    known,
    refusing,
)
from workloads.devices import DEVICES, DeviceProfile, get_device
from workloads.llama import Llama
from workloads.timing import preset_config, preset_timing, reference_rows


def median_seconds(fn, warmup: int, repeats: int, device: torch.device) -> float:  # noqa: ANN001
    """Median wall seconds of ``fn()``, synchronised with the device before and after."""

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronise()
        t0 = time.perf_counter()
        fn()
        synchronise()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_row(model: torch.nn.Module, tokens: torch.Tensor, warmup: int, repeats: int,
             device: torch.device) -> tuple[float, float]:
    """(forward + loss, forward + loss + backward) median seconds on ``tokens`` (B, T + 1)."""
    x, y = tokens[:, :-1], tokens[:, 1:]

    def forward() -> torch.Tensor:
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        forward().backward()

    return (median_seconds(forward, warmup, repeats, device),
            median_seconds(forward_backward, warmup, repeats, device))


PROG = "benchmarks/bench_llama_step_times.py"

PROFILES = [name for name, profile in DEVICES.items() if isinstance(profile, DeviceProfile)]
"""The device profiles that predict from FLOP/s (every one but 'emulator')."""


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    ap = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--profile", default="h100", help="device profile to predict with")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--only", nargs="*", default=None,
                    help="rows to time: a preset ('llama-1b') or a preset and microbatch "
                         "('llama-1b:4'); default all")
    ap.add_argument("--compile", action="store_true",
                    help="time torch.compile(model) (compilation is in the warm-up)")
    ap.add_argument("--csv", default=None, help="also write the table here")
    args = ap.parse_args(argv)
    known("--profile", [args.profile.lower()], PROFILES, "device profile")
    at_least("--warmup", args.warmup, 0)
    at_least("--repeats", args.repeats, 1)
    if args.only:
        rows = [name for row in reference_rows()
                for name in (row.model, f"{row.model}:{row.batch}")]
        known("--only", args.only, list(dict.fromkeys(rows)), "row")
    check_output_file("--csv", args.csv)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Time each reference shape and print measured, reference and predicted seconds.

    One line and exit code 2 if the command line is refused.
    """
    args = parse_command_line(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    profile = get_device(args.profile)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {name}, {args.dtype}"
          f"{', torch.compile' if args.compile else ', eager'}, median of {args.repeats} "
          f"after {args.warmup}; prediction: profile {args.profile!r}")
    header = ["model", "batch", "seq", "fwd_s", "fwd_bwd_s", "h100_csv_fwd_bwd_s",
              "predicted_s", "error_vs_measured", "measured_vs_h100_csv", "tflops_6nd"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    out = open(args.csv, "w", newline="") if args.csv else None  # noqa: SIM115 (kept open)
    writer = csv.DictWriter(out, fieldnames=header) if out else None
    if writer:
        writer.writeheader()
    for row in reference_rows():
        if args.only and not {row.model, f"{row.model}:{row.batch}"} & set(args.only):
            continue
        cfg = preset_config(row.model)
        generator = torch.Generator(device=device).manual_seed(0)
        with torch.device(device):
            model = Llama(cfg, generator=generator).to(dtype)
        step_model = torch.compile(model) if args.compile else model
        tokens = torch.randint(0, cfg.vocab, (row.batch, row.seq + 1), device=device)
        try:
            fwd_s, fwd_bwd_s = time_row(step_model, tokens, args.warmup, args.repeats, device)
        except torch.OutOfMemoryError:
            print(f"| {row.model} | {row.batch} | {row.seq} | out of memory |", file=sys.stderr)
            continue
        finally:
            del model, step_model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        predicted = preset_timing(row.model).step_seconds(profile, row.batch, row.seq)
        tflops = 6 * row.params * row.batch * row.seq / fwd_bwd_s / 1e12
        values = [row.model, row.batch, row.seq, f"{fwd_s:.5f}", f"{fwd_bwd_s:.5f}",
                  f"{row.fwd_bwd_s:.5f}", f"{predicted:.5f}",
                  f"{predicted / fwd_bwd_s - 1:+.1%}", f"{fwd_bwd_s / row.fwd_bwd_s - 1:+.1%}",
                  f"{tflops:.0f}"]
        print("| " + " | ".join(str(v) for v in values) + " |", flush=True)
        if writer and out:  # row by row: a run stopped part-way keeps what it measured
            writer.writerow(dict(zip(header, values, strict=True)))
            out.flush()
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
