"""Snapshot every shipped scenario's results, to show that a refactoring preserves behaviour.

For each ``scenarios/*.toml`` and every policy label it configures (``[policies.<label>]``, or
its ``[policy]``), and for the built-in default comparison, this runs the command line exactly as
a user would (``python -m sim run FILE --policy LABEL --json --trace T``; ``python -m sim
--json --trace T`` for the default) and records the ``--json`` record minus ``wall_time_s`` and
the SHA-256 of the Chrome trace. Full-size scenarios take minutes, so each file is bounded by the
``--set`` overrides in :data:`BOUNDS`; the same overrides must be used before and after a change.

Usage::

    python benchmarks/snapshot_scenarios.py OUT.json [--jobs 2] [--only NAME ...]
    python benchmarks/snapshot_scenarios.py --diff BEFORE.json AFTER.json

Only the command line is used, so the script runs unchanged on code before and after a
refactoring of the library API.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PROG = "benchmarks/snapshot_scenarios.py"

#: ``--set`` overrides per scenario file stem that bound a run to a few seconds.
BOUNDS: dict[str, list[str]] = {
    "checkfree-5pct": ["run.until=300s"],
    "checkfree-10pct": ["run.until=300s"],
    "checkfree-16pct": ["run.until=300s"],
    "dp-byte-ratio": ["run.steps=100"],
    "dp-palsgd": ["run.steps=60"],
    "dp-pp-noloco": ["run.steps=40"],
    "dp-slow-wan": ["run.steps=40"],
    "dp-stragglers": ["run.steps=60"],
    "dp-streaming-bytes": ["run.steps=61"],
    "dp-sync-vs-nodes": [],
    "gc-bursty": ["run.steps=6"],
    "gc-stragglers": ["run.steps=20"],
    "skippipe-reference-ideal": ["run.steps=1"],
    "skippipe-reference-maxmin": ["run.steps=1"],
    "skippipe-training": ["run.steps=6"],
    "default": ["run.until=20min"],
}


def labels_of(path: Path) -> list[str]:
    """The policy labels a scenario file configures, in file order.

    Plain keys of ``[policies]`` are parameters shared by the labels, not labels.
    """
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    labels = [k for k, v in data.get("policies", {}).items() if isinstance(v, dict)]
    return labels or [data["policy"]["name"]]


def jobs() -> list[tuple[str, list[str]]]:
    """``(key, argv)`` for every run of the snapshot."""
    out = []
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        sets = [a for s in BOUNDS.get(path.stem, []) for a in ("--set", s)]
        for label in labels_of(path):
            out.append((f"{path.stem}:{label}",
                        ["run", str(path.relative_to(ROOT)), "--policy", label, "--json", *sets]))
    sets = [a for s in BOUNDS["default"] for a in ("--set", s)]
    out.append(("default", ["--json", *sets]))
    return out


def run_one(key: str, argv: list[str]) -> tuple[str, dict]:
    """Run one command; return its record(s) minus wall time, and the trace hash."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        cmd = [sys.executable, "-m", "sim", "--out", str(Path(tmp) / "out"), "--trace",
               str(trace), *argv]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:  # recorded, so one slow run cannot lose the others
            return key, {"argv": argv, "rc": "timeout after 900 s"}
        entry: dict = {"argv": argv, "rc": proc.returncode}
        if proc.returncode != 0:
            entry["stderr"] = proc.stderr[-2000:]
            return key, entry
        records = json.loads(proc.stdout)
        for record in records if isinstance(records, list) else [records]:
            record.pop("wall_time_s", None)
        entry["json"] = records
        entry["trace_sha256"] = hashlib.sha256(trace.read_bytes()).hexdigest()
        return key, entry


def diff(before: dict, after: dict) -> int:
    """Print every difference; return the number of differing runs."""
    bad = 0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        bad += 1
        print(f"== {key}")
        if a is None or b is None:
            print("   only in", "after" if a is None else "before")
            continue
        if a.get("trace_sha256") != b.get("trace_sha256"):
            print("   trace hash differs")
        ja, jb = a.get("json"), b.get("json")
        ra = ja if isinstance(ja, list) else [ja]
        rb = jb if isinstance(jb, list) else [jb]
        for x, y in zip(ra, rb):
            for k in sorted(set(x or {}) | set(y or {})):
                if (x or {}).get(k) != (y or {}).get(k):
                    print(f"   {k}: {(x or {}).get(k)!r} -> {(y or {}).get(k)!r}")
        if a.get("rc") != b.get("rc"):
            print(f"   rc {a.get('rc')} -> {b.get('rc')}: {b.get('stderr', '')[-300:]}")
    print(f"{bad} of {len(set(before) | set(after))} runs differ")
    return bad


class Refused(Exception):
    """A command line this script cannot run; the message is the one line to print."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like ``sim.usage.OneLineParser``.

    This script imports nothing of the project (it is copied into an older checkout to snapshot
    the code before a change, which may predate ``sim.usage``), so it has its own.
    """

    def error(self, message: str) -> NoReturn:
        """Refuse the command line in one line (argparse's hook; it must not return)."""
        raise Refused(f"{message} (see {self.prog} --help)")


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The snapshot to write or the two to compare; a bad value is :class:`Refused`."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="keys (or key prefixes) to run")
    parser.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.diff:
        for path in args.diff:
            if not Path(path).is_file():
                raise Refused(f"--diff: must be an existing file, got {path!r}")
        return args
    if args.out is None:
        raise Refused("out: give the file to write the snapshot to (or --diff BEFORE AFTER)")
    folder = Path(args.out).resolve().parent
    if Path(args.out).is_dir() or not folder.is_dir():
        raise Refused(f"out: must be a file in an existing folder, got {args.out!r}")
    if args.jobs < 1:
        raise Refused(f"--jobs: must be an integer >= 1, got {args.jobs}")
    keys = [key for key, _ in jobs()]
    for prefix in args.only or []:
        if not any(key.startswith(prefix) for key in keys):
            raise Refused(f"--only: must be a key or key prefix of a run, e.g. default or "
                          f"gc-bursty, got {prefix!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (one line and exit code 2 if the command line is refused)."""
    try:
        args = parse_command_line(argv)
    except Refused as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.diff:
        before, after = (json.loads(Path(p).read_text()) for p in args.diff)
        return 1 if diff(before, after) else 0
    todo = [(k, a) for k, a in jobs()
            if not args.only or any(k.startswith(p) for p in args.only)]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(lambda job: run_one(*job), todo))
    for key, entry in sorted(results.items()):
        status = "ok" if entry["rc"] == 0 else f"rc={entry['rc']}"
        print(f"{key:<45} {status} {entry.get('trace_sha256', '')[:12]}", file=sys.stderr)
    Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
