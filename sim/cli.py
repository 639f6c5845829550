"""The ``dtsim`` command (also ``python -m sim``).

::

    dtsim                                   the built-in default comparison (DDP, DiLoCo, NoLoCo)
    dtsim run SCENARIO [--policy NAME]      one run
    dtsim compare SCENARIO [--policies a,b] several policies on the same scenario
    dtsim sweep SCENARIO --grid KEY=v1,v2   a parameter grid, in parallel, resumable
    dtsim list [policies|topologies|networks|transports|stragglers|failures|workloads|devices]

``compare`` (and the default comparison) runs its policies in parallel processes, ``sweep`` its
runs; ``--backend ray [--address ADDR]`` runs them as Ray tasks instead (local or a cluster;
needs ``pip install -e ".[ray]"``).

Common options: ``--set KEY=VALUE`` (repeatable) overrides any scenario key; ``--json`` prints
machine-readable output (one object for ``run``, a list for ``compare`` and ``sweep``);
``--trace FILE`` writes the Chrome trace; ``--out DIR`` is where plots go (default
``dtsim-out``).

Bad input (a scenario error, a bad option) prints one line, ``dtsim: error: <field>: <what is
wrong and what is allowed>``, on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sim.backends import SerialBackend, make_backend
from sim.compare import check_plot_format, compare, format_table, record_of
from sim.components import describe
from sim.errors import ScenarioError
from sim.runner import run
from sim.scenario import (
    apply_overrides,
    default_scenario_path,
    load,
    parse_override_value,
    read_scenario_file,
    resolve_policies,
)
from sim.sweep import sweep
from sim.threads import check_threads
from sim.usage import (
    OneLineParser,
    UsageError,
    check_output_file,
    check_output_folder,
    refused,
)

DEFAULT_OUT = "dtsim-out"


def _add_common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Options every command shares; on subcommands they default to the top level's value."""
    keep: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override a scenario key, e.g. network.model=ideal (repeatable)",
                        **({"default": []} if top_level else keep))
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON",
                        **keep)
    parser.add_argument("--quiet", action="store_true", help="no progress bar", **keep)
    parser.add_argument("--threads", type=int, metavar="N", help="torch threads per process "
                        "(default 1: the small learners dtsim trains run fastest on one thread, "
                        "and several threads fight over a few cores)",
                        **({"default": 1} if top_level else keep))


def _add_plot_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Options of the commands that write plots (the default comparison and ``compare``)."""
    keep: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument("--plot-format", metavar="FMT[,FMT]", help="plot file formats: png, "
                        "svg, pdf, comma-separated (default: png)",
                        **({"default": "png"} if top_level else keep))
    parser.add_argument("--overwrite", action="store_true", help="replace the plots already "
                        "in --out (default: an earlier run's plots are kept and the new ones "
                        "go to the first free OUT-2, OUT-3, ...)", **keep)


def _add_backend_options(parser: argparse.ArgumentParser, *, top_level: bool,
                         processes_help: str) -> None:
    """Where the runs execute: ``--processes``, ``--backend``, ``--address``, ``--max-retries``."""
    keep: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument("--processes", type=int, metavar="N", help=processes_help,
                        **({"default": None} if top_level else keep))
    parser.add_argument("--backend", choices=["process", "ray"], help="where the runs execute: "
                        "local processes (default) or Ray tasks (pip install -e \".[ray]\")",
                        **({"default": "process"} if top_level else keep))
    parser.add_argument("--address", help="Ray cluster to connect to (e.g. auto, HOST:6379, "
                        "ray://HOST:10001; default: start a local Ray instance)",
                        **({"default": None} if top_level else keep))
    parser.add_argument("--max-retries", type=int, metavar="N", help="Ray: times a run is "
                        "retried when its worker or machine is lost (default 3)",
                        **({"default": 3} if top_level else keep))


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for docs and tests)."""
    parser = OneLineParser(prog="dtsim", description="Simulate decentralized training over "
                           "slow networks. With no command: the built-in default comparison.")
    _add_common_options(parser, top_level=True)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for plots (default: "
                        "%(default)s)")
    parser.add_argument("--trace", metavar="FILE", help="write the Chrome trace to FILE")
    _add_plot_options(parser, top_level=True)
    compare_processes = ("worker processes for the policies (default: one per policy, up to the "
                         "CPUs; 1: one after another in this process)")
    _add_backend_options(parser, top_level=True, processes_help=compare_processes)
    commands = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    keep: dict[str, Any] = {"default": argparse.SUPPRESS}

    run = commands.add_parser("run", help="run one policy on a scenario")
    run.add_argument("scenario", help="scenario file (.toml, .yaml)")
    _add_common_options(run, top_level=False)
    run.add_argument("--policy", help="policy name or [policies] label (default: [policy])")
    run.add_argument("--trace", metavar="FILE", help="write the Chrome trace to FILE", **keep)

    cmp_ = commands.add_parser("compare", help="run several policies on one scenario")
    cmp_.add_argument("scenario", help="scenario file (.toml, .yaml)")
    _add_common_options(cmp_, top_level=False)
    cmp_.add_argument("--policies", help="comma-separated names; the first is the baseline "
                      "(default: the file's [policies] tables)")
    cmp_.add_argument("--trace", metavar="FILE", help="write one Chrome trace (a track group "
                      "per policy) to FILE", **keep)
    cmp_.add_argument("--out", help=f"folder for plots (default: {DEFAULT_OUT})", **keep)
    cmp_.add_argument("--no-plots", action="store_true", help="do not write plots")
    _add_plot_options(cmp_, top_level=False)
    _add_backend_options(cmp_, top_level=False, processes_help=compare_processes)

    swp = commands.add_parser("sweep", help="run a parameter grid in parallel processes")
    swp.add_argument("scenario", help="scenario file (.toml, .yaml)")
    _add_common_options(swp, top_level=False)
    swp.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                     help="a swept key and its values (repeatable; values read like --set)")
    swp.add_argument("--policies", help="comma-separated policies to run at every point "
                     "(default: the file's [policies] tables, as compare runs them)")
    swp.add_argument("--out", dest="records", default=f"{DEFAULT_OUT}/sweep",
                     help="folder of per-run records (default: %(default)s); finished runs "
                     "there are skipped")
    _add_backend_options(swp, top_level=False, processes_help="worker processes (default: "
                         "this machine's CPUs)")
    swp.add_argument("--no-resume", action="store_true", help="redo runs already saved")

    lst = commands.add_parser("list", help="list policies, topologies, workloads, devices")
    lst.add_argument("what", nargs="?", choices=["policies", "topologies", "networks",
                                                 "transports", "stragglers", "failures",
                                                 "workloads", "devices"], help="one kind only")
    lst.add_argument("--json", action="store_true", help="print machine-readable JSON", **keep)
    return parser


# ---------------------------------------------------------------- commands


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _run_comparison(spec: Any, names: list[str] | None, args: argparse.Namespace,
                    out_dir: str | None) -> int:
    chosen = resolve_policies(spec, names)
    check_output_file("--trace", getattr(args, "trace", None))
    check_output_folder("--out", out_dir)
    formats = [check_plot_format(f) for f in _split_names(args.plot_format) or [""]]
    backend = _backend(args, default_processes=min(len(chosen), os.cpu_count() or 1))
    comparison = compare(spec, chosen, progress=not (args.quiet or args.json), backend=backend,
                         threads=args.threads)
    if args.json:
        _print_json(comparison.records)
    else:
        print(f"scenario {spec.scenario.name!r} (seed {spec.scenario.seed})")
        print(comparison.format_table())
    if out_dir is not None:
        paths = comparison.save_plots(out_dir, formats=formats, overwrite=args.overwrite)
        stream = sys.stderr if args.json else sys.stdout
        if paths and paths[0].parent != Path(out_dir):
            print(f"{out_dir} holds an earlier run's plots (kept; --overwrite replaces them)",
                  file=stream)
        print("plots: " + ", ".join(str(p) for p in paths), file=stream)
    if getattr(args, "trace", None):
        comparison.write_trace(args.trace)
        print(f"trace: {args.trace}", file=sys.stderr if args.json else sys.stdout)
    return 0


def check_device_here(device: str, args: argparse.Namespace) -> None:
    """Refuse a CUDA workload before any run starts, when its runs would start on this machine.

    Without this a comparison's worker processes would each build the workload and fail with a
    traceback; with ``--backend ray --address`` the runs go to the cluster's workers, which may
    have the GPU that this machine lacks.
    """
    if device != "cuda" or torch.cuda.is_available() or getattr(args, "address", None):
        return
    raise ScenarioError("workload.device", f"'cuda' needs a GPU that this torch "
                                           f"({torch.__version__}) can see, and it sees none; "
                                           "allowed here: 'cpu'")


def cmd_default(args: argparse.Namespace) -> int:
    """``dtsim`` alone: the built-in default comparison, table printed, plots written."""
    spec = load(default_scenario_path(), args.overrides)
    check_device_here(spec.scenario.workload.device, args)
    return _run_comparison(spec, None, args, args.out)


def cmd_compare(args: argparse.Namespace) -> int:
    """``dtsim compare``: several policies on one scenario; table, plots, trace."""
    spec = load(args.scenario, args.overrides)
    check_device_here(spec.scenario.workload.device, args)
    return _run_comparison(spec, _split_names(args.policies), args,
                           None if args.no_plots else args.out)


def cmd_run(args: argparse.Namespace) -> int:
    """``dtsim run``: one policy on one scenario."""
    spec = load(args.scenario, args.overrides)
    label, config = resolve_policies(spec, [args.policy], flag="--policy")[0] if args.policy \
        else (spec.scenario.policy.name, spec.scenario.policy)
    check_device_here(spec.scenario.workload.device, args)
    check_output_file("--trace", args.trace)
    result = run(dataclasses.replace(spec.scenario, policy=config),
                 progress=not (args.quiet or args.json), threads=args.threads)
    record = record_of(result, label)
    if args.json:
        _print_json(record)
    else:
        print(f"scenario {spec.scenario.name!r} (seed {spec.scenario.seed})")
        row = {**record, "policy": label, "speedup": None, "speedup_basis": ""}
        print(format_table(pd.DataFrame([row]).drop(columns=["speedup", "speedup_basis"])))
    if args.trace:
        result.write_trace(args.trace)
        print(f"trace: {args.trace}", file=sys.stderr if args.json else sys.stdout)
    return 0


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["network.uplink=10Mbit/s,100Mbit/s"]`` -> ``{"network.uplink": ["10Mbit/s", ...]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise ScenarioError("--grid", f"expected KEY=V1,V2,... such as "
                                          f"cluster.nodes=4,8, got {item!r}")
        grid[key.strip()] = [parse_override_value(v) for v in values]
    if not grid:
        raise ScenarioError("--grid", "give at least one --grid KEY=V1,V2,...")
    return grid


def _backend(args: argparse.Namespace, *, default_processes: int) -> Any:
    """The backend the options ask for; one process means this process."""
    processes = args.processes if args.processes is not None else default_processes
    backend = make_backend(args.backend, processes=processes, address=args.address,
                           max_retries=args.max_retries)
    if args.backend == "process" and processes == 1:
        return SerialBackend()
    return backend


def cmd_sweep(args: argparse.Namespace) -> int:
    """``dtsim sweep``: a parameter grid in parallel processes (or Ray tasks), resumable."""
    backend = _backend(args, default_processes=os.cpu_count() or 1)
    grid = parse_grid(args.grid)
    check_output_folder("--out", args.records)
    raw = apply_overrides(read_scenario_file(args.scenario), args.overrides)
    table = sweep(raw, grid, args.records, policies=_split_names(args.policies),
                  backend=backend, resume=not args.no_resume,
                  progress=not (args.quiet or args.json),
                  base_dir=Path(args.scenario).resolve().parent, torch_threads=args.threads)
    skipped = table.attrs.get("skipped", [])
    if skipped:
        print(f"resumed: skipped {len(skipped)} of {len(table)} runs already finished in "
              f"{args.records}/ (--no-resume redoes them)", file=sys.stderr)
    if args.json:
        _print_json(json.loads(table.to_json(orient="records")))
    else:
        columns = [c for c in [*grid, "policy", "status", "sim_time_s", "final_loss",
                               "time_to_target_s", "bytes_sent", "error"] if c in table]
        with_values = [c for c in columns if table[c].notna().any()]
        print(table[with_values].to_string(index=False))
        print(f"records: {args.records}/")
    failed = int((table.status != "ok").sum())
    return 1 if failed else 0


LIST_KINDS = {"policies": "policy", "topologies": "topology", "networks": "network",
              "transports": "transport", "stragglers": "stragglers", "failures": "failures",
              "devices": "device"}
"""``dtsim list`` section -> component kind (``workloads`` groups learner, timing and data)."""


def listing() -> dict[str, Any]:
    """Collect what ``dtsim list`` shows: every registered component and its parameters."""
    everything = describe()
    out: dict[str, Any] = {section: everything[kind] for section, kind in LIST_KINDS.items()}
    out["devices"] = sorted(everything["device"])
    out["workloads"] = {"learners": list(everything["learner"]),
                        "timing": ["same", *sorted(n for n in everything["timing"] if n != "same")],
                        "data": list(everything["data"])}
    return out


def cmd_list(args: argparse.Namespace) -> int:
    """``dtsim list``: every registered component, by kind, with its parameters."""
    everything = listing()
    chosen = {args.what: everything[args.what]} if args.what else everything
    if args.json:
        _print_json(chosen[args.what] if args.what else chosen)
        return 0
    for kind, items in chosen.items():
        print(f"{kind}:")
        if isinstance(items, dict):
            for name, params in items.items():
                print(f"  {name:<22} {', '.join(params) if params else ''}")
        else:
            for name in items:
                print(f"  {name}")
    return 0


COMMANDS = {None: cmd_default, "run": cmd_run, "compare": cmd_compare, "sweep": cmd_sweep,
            "list": cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dtsim``; returns the exit code (0 ok, 1 failed runs, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command != "list":  # each command passes it on to the library's threads=
            check_threads(args.threads, "--threads")
        return COMMANDS[args.command](args)
    except (ScenarioError, UsageError) as exc:
        return refused("dtsim", exc)
    except KeyboardInterrupt:
        print("dtsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
