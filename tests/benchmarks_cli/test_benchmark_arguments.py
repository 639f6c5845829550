"""Every benchmark script refuses a bad argument like ``dtsim`` does, before it measures.

The scripts of ``benchmarks/`` and ``benchmarks/validate_network/`` (README.md,
benchmarks/README.md) answer an unknown option, a count below its least, an unknown name, a
file that is not there or a scenario override that does not exist with exit code 2, nothing on
stdout and one line on stderr, ``benchmarks/<script>: error: <option>: <what is allowed>``.
Before session 12 most of these printed a traceback (``--processes 0``: ZeroDivisionError,
``--nodes -1``: FieldError, ``--csv /nonexistent.csv``: FileNotFoundError), argparse's usage
block, or ran and printed an empty table (``bench_node_scaling.py --sizes -1``).

Each case calls the script's ``main(argv)`` in the test's own process with every way a
benchmark measures replaced by one that fails the test (SimPy's clock, a child process, a torch
module's forward): the refusal comes before any measurement. ``{out}`` in a command line is a
fresh folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import simpy
import torch

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
ANY_OPTION = ["--bogus"], "unrecognized arguments: --bogus"

CASES = {
    "bench_engine_events.py": [
        ANY_OPTION,
        (["--processes", "0"], "--processes: must be an integer >= 2, got 0"),
        (["--repeats", "0"], "--repeats: must be an integer >= 1, got 0"),
        (["--operations", "10"], "--operations: must be an integer >= --processes (200), got 10"),
        (["--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
    ],
    "bench_allocation_search.py": [
        ANY_OPTION,
        (["--seeds", "abc"], "--seeds: must be comma-separated integers >= 0, got 'abc'"),
    ],
    "bench_training_overhead.py": [
        ANY_OPTION,
        (["--threads", "0"], "--threads: must be an integer >= 1, got 0"),
        (["--steps", "0"], "--steps: must be an integer >= 1, got 0"),
        (["--policies", "bogus"], "--policies: unknown policy 'bogus'; allowed: ddp, diloco, "),
        (["--warmup", "-1"], "--warmup: must be an integer >= 0, got -1"),
    ],
    "bench_timing_only_scale.py": [
        ANY_OPTION,
        (["--nodes", "-1"], "--nodes: must be an integer >= 2, got -1"),
        (["--steps", "1"], "--steps: must be an integer >= 2, got 1"),
        (["--latency-s", "0"], "--latency-s: must be a number of seconds > 0, got 0.0"),
        (["--topology", "clusters-of-clusters", "--nodes", "4"],
         "--clusters: must be an integer from 1 to --nodes (4), got 8"),
        (["--networks", "bogus"], "argument --networks: invalid choice: 'bogus'"),
    ],
    "census_paced_rounds.py": [
        ANY_OPTION,
        (["--nodes", "-1"], "--nodes: must be an integer >= 2, got -1"),
        (["--steps", "0"], "--steps: must be an integer >= 1, got 0"),
        (["--nodes", "4"], "--clusters: must be an integer from 1 to --nodes (4), got 8"),
        (["--allreduce", "bogus"], "argument --allreduce: invalid choice: 'bogus'"),
    ],
    "bench_maxmin_flows.py": [
        ANY_OPTION,
        (["--nodes", "-1"], "--nodes: must be an integer >= 2, got -1"),
        (["--topology", "bogus"], "--topology: unknown topology 'bogus'; allowed: residential, "),
        (["--median-bytes", "0"], "--median-bytes: must be a number of bytes > 0, got 0.0"),
        (["--naive-events", "0"], "--naive-events: must be an integer >= 1, got 0"),
    ],
    "bench_transport_flows.py": [
        ANY_OPTION,
        (["--nodes", "-1"], "--nodes: must be an integer >= 2, got -1"),
        (["--events", "0"], "--events: must be an integer >= 1, got 0"),
        (["--flows-per-node", "0"], "--flows-per-node: must be an integer >= 1, got 0"),
    ],
    "bench_replicas_vmap.py": [
        ANY_OPTION,
        (["--batch", "0"], "--batch: must be an integer >= 1, got 0"),
        (["--replicas", "0"], "--replicas: must be an integer >= 1, got 0"),
        (["--threads", "0"], "--threads: must be an integer >= 1, got 0"),
        (["--device", "tpu"], "device: allowed "),
    ],
    "bench_learner_step.py": [
        ANY_OPTION,
        (["--nodes", "0"], "--nodes: must be an integer >= 2, got 0"),
        (["--outer-steps", "0"], "--outer-steps: must be an integer >= 1, got 0"),
    ],
    "bench_compare_parallel.py": [
        ANY_OPTION,
        (["--set", "bogus=1"], "bogus: unknown key"),
        (["--processes", "0"], "--processes: must be an integer >= 1, got 0"),
    ],
    "bench_skippipe_schedule.py": [
        ANY_OPTION,
        (["--reference", "ideal", "--seeds", "abc"],
         "--seeds: must be comma-separated integers >= 0, got 'abc'"),
        (["--reference", "ideal", "--set", "bogus=1"], "bogus: unknown key"),
        (["--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
    ],
    "bench_llama_step_times.py": [
        ANY_OPTION,
        (["--profile", "bogus"], "--profile: unknown device profile 'bogus'; allowed: "),
        (["--profile", "emulator"], "--profile: unknown device profile 'emulator'; allowed: "),
        (["--only", "llama-9z"], "--only: unknown row 'llama-9z'; allowed: "),
        (["--repeats", "0"], "--repeats: must be an integer >= 1, got 0"),
        (["--csv", "no/such/folder/times.csv"], "--csv: folder 'no/such/folder' does not exist"),
    ],
    "snapshot_scenarios.py": [
        ANY_OPTION,
        ([], "out: give the file to write the snapshot to"),
        (["{out}/snapshot.json", "--jobs", "0"], "--jobs: must be an integer >= 1, got 0"),
        (["{out}/snapshot.json", "--only", "bogus"], "--only: must be a key or key prefix"),
        (["--diff", "/nonexistent.json", "/nonexistent.json"],
         "--diff: must be an existing file, got '/nonexistent.json'"),
        (["no/such/folder/snapshot.json"], "out: must be a file in an existing folder"),
    ],
    "bench_node_scaling.py": [
        ANY_OPTION,
        (["--sizes", "-1"], "--sizes: must be an integer >= 2, got -1"),
        (["--steps", "0"], "--steps: must be an integer >= 2, got 0"),
        (["--warmup", "5"], "--warmup: must be an integer >= 1 and < --steps (5), got 5"),
        (["--baseline", "/nonexistent"], "--baseline: must be a checkout of dtsim"),
    ],
    "bench_planner_routes.py": [
        ANY_OPTION,
        (["--nodes", "0"], "--nodes: must be an integer >= 2, got 0"),
        (["--baseline", "/nonexistent"], "--baseline: must be a checkout of dtsim"),
    ],
    "compare_commits.py": [
        ANY_OPTION,
        ([], "checkouts: give at least one checkout"),
        (["/nonexistent"], "checkouts: must be a checkout of dtsim"),
        ([str(ROOT), "--nodes", "-1"], "--nodes: must be an integer >= 2, got -1"),
        ([str(ROOT), "--steps", "0"], "--steps: must be an integer >= 2, got 0"),
        ([str(ROOT), "--cache-misses"], "--cache-misses: counts under callgrind"),
    ],
    "validate_network/compare.py": [
        ANY_OPTION,
        (["--csv", "/nonexistent.csv"], "--csv: must be an existing file, got '/nonexistent.csv'"),
    ],
    "validate_network/rtt_bias_whatif.py": [
        ANY_OPTION,
        (["--csv", "/nonexistent.csv"], "--csv: must be an existing file, got '/nonexistent.csv'"),
    ],
    "validate_network/hystart_whatif.py": [
        ANY_OPTION,
        (["--queue-pkts", "-1"], "--queue-pkts: must be a number of packets >= 0, got -1.0"),
    ],
    "validate_network/delayline_reference.py": [
        ANY_OPTION,
        (["--repeats", "0"], "--repeats: must be an integer from 1 to 20, got 0"),
        (["--table-from", "/nonexistent.json"], "--table-from: must be an existing file"),
    ],
    "validate_network/netns_reference.py": [
        ANY_OPTION,
        (["--repeats", "0"], "--repeats: must be an integer from 1 to 50, got 0"),
        (["--queue-ms", "0"], "--queue-ms: must be 1 to 1000 milliseconds, got 0.0"),
    ],
    "validate_network/ns3_reference.py": [
        ANY_OPTION,
        (["--limit-s", "0"], "--limit-s: must be a number of seconds > 0, got 0.0"),
    ],
}


@pytest.fixture
def no_measurement(monkeypatch):
    """Make every way a benchmark measures a test failure: refusals happen before it."""

    def measuring(*args, **kwargs):
        raise AssertionError("the benchmark started measuring: the input should have been "
                             "refused first")

    monkeypatch.setattr(simpy.Environment, "run", measuring)
    monkeypatch.setattr(simpy.Environment, "step", measuring)
    monkeypatch.setattr(subprocess.Popen, "__init__", measuring)
    monkeypatch.setattr(torch.nn.Module, "__call__", measuring)


@pytest.mark.parametrize(("script", "argv", "line"), [
    (script, argv, line) for script, cases in CASES.items() for argv, line in cases])
def test_the_benchmark_refuses_a_bad_argument_in_one_line(capsys, monkeypatch, tmp_path,
                                                           no_measurement, script, argv, line):
    path = BENCHMARKS / script
    monkeypatch.syspath_prepend(str(path.parent))  # as when run: its folder's modules import
    main = load_script(path).main
    argv = [arg.format(out=tmp_path) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1, err
    assert err.startswith(f"benchmarks/{script}: error: {line}"), err


def test_the_snapshot_script_imports_nothing_of_the_project():
    """``snapshot_scenarios.py`` is copied into an older checkout to snapshot the code before a
    change (docs/architecture.md, "Behaviour-preserving changes"), which may predate any module
    of today's: it uses the standard library and the command line only."""
    import ast

    tree = ast.parse((BENCHMARKS / "snapshot_scenarios.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    project = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert imported and not imported & project, imported & project


def test_compare_commits_runs_the_checkout_it_was_given(monkeypatch, tmp_path):
    """Its child runs in the temporary folder, so a relative checkout (``.``) is passed on
    resolved: before session 12 the child looked for ``./sim`` there, found none and measured
    whatever ``import sim`` found (the editable install), whatever checkout was named."""
    import argparse

    compare_commits = load_script(BENCHMARKS / "compare_commits.py")
    started = []

    def run(cmd, **kwargs):
        started.append((cmd, kwargs["cwd"]))
        return subprocess.CompletedProcess(cmd, 0, stdout='{"later_ms": 1.0}\n', stderr="")

    monkeypatch.setattr(compare_commits.subprocess, "run", run)
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(nodes=10, steps=2, network="ideal", transport="fluid",
                              topology="uniform", timeout_s=60.0, cache_misses=False)
    compare_commits.run_child(args, ".", None)
    (cmd, cwd), = started
    child = cmd[cmd.index("--child") + 1]
    assert Path(cwd) != tmp_path and child == str(tmp_path.resolve())


@pytest.mark.parametrize("network", ["maxmin-python", "maxmin-per-change", "ideal-per-round",
                                     "maxmin-own-ramps"])
def test_the_switched_variants_are_refused_under_the_compiled_engine(capsys, monkeypatch,
                                                                     no_measurement, network):
    """They set attributes of the engine's classes, which compiled classes do not allow; the
    plain variants and the round models (a TcpConfig field) run either way."""
    path = BENCHMARKS / "bench_timing_only_scale.py"
    monkeypatch.syspath_prepend(str(path.parent))
    bench = load_script(path)
    monkeypatch.setattr(bench, "COMPILED", True)
    assert bench.main(["--networks", "maxmin", network, "--steps", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"benchmarks/bench_timing_only_scale.py: error: --networks {network}: "
                          "switches a mechanism of the engine's classes"), err
    assert bench.parse_command_line(["--networks", "maxmin", "ideal-burst", "--steps", "2"])
