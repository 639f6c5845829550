"""The dtsim command: exit codes, one-line errors, JSON output, determinism, traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]

JSON_KEYS = {"policy", "sim_time_s", "steps", "final_loss", "optimum_loss", "target_loss",
             "time_to_target_s", "bytes_sent", "idle_fraction", "events", "wall_time_s"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("edit", "field"), [
    (["--set", "policy.name=no-such-policy"], "policy.name: unknown policy 'no-such-policy'"),
    (["--set", "network.uplink=-100Mbit/s"], "network.uplink: '-100Mbit/s' is negative"),
    (["--set", "network.uplink=100"], "network.uplink: 100 has no unit"),
    (["--set", "network.topology=no/such/graph.csv"], "network.topology: topology file "
                                                      "'no/such/graph.csv' does not exist"),
])
def test_bad_input_exits_2_with_one_line(capsys, small_toml, edit, field):
    code, out, err = run_cli(capsys, "run", str(small_toml), *edit)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"dtsim: error: {field}")


def test_missing_section_exits_2(capsys, write):
    path = write("nocluster.toml", "[network]\nmodel = 'ideal'\n")
    code, _, err = run_cli(capsys, "run", str(path))
    assert code == 2
    assert err.startswith("dtsim: error: cluster: missing section")


def test_unknown_policy_in_compare_list_exits_2(capsys, small_toml):
    code, _, err = run_cli(capsys, "compare", str(small_toml), "--policies", "ddp,zzz")
    assert code == 2
    assert err.startswith("dtsim: error: --policies: unknown policy 'zzz'; allowed: ")


@pytest.mark.parametrize("argv", [["run"], ["frobnicate"], ["run", "x.toml", "--bogus"],
                                  ["sweep", "x.toml"], ["list", "planets"]])
def test_usage_errors_exit_2_with_one_line(capsys, argv, small_toml):
    argv = [str(small_toml) if a == "x.toml" else a for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dtsim: error: ")


def test_no_traceback_from_the_real_command(small_toml):
    """The installed entry point (python -m sim) prints one line and exits 2."""
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(small_toml), "--set",
                           "network.downlink=12"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dtsim: error: network.downlink: 12 has no unit; write a bandwidth with its unit, "
        "e.g. '100Mbit/s'"]
    assert "Traceback" not in proc.stderr


def test_list_shows_every_kind(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    listing = json.loads(out)
    assert code == 0
    assert {"ddp", "diloco"} <= set(listing["policies"])
    assert "inner_steps" in listing["policies"]["diloco"]
    assert "gcp-12-regions" in listing["topologies"]
    assert "tiny-llama" in listing["workloads"]["learners"]
    assert "h100" in listing["devices"]
    code, out, _ = run_cli(capsys, "list", "devices")
    assert code == 0 and "h100" in out.split()


def test_list_shows_every_registered_component_of_every_kind(capsys):
    """Every kind of the registry, every name in it, is in ``dtsim list`` (fault models with
    their parameters), and the data sets listed are exactly the ones the workload accepts."""
    from sim import components
    from sim.cli import LIST_KINDS
    from workloads.config import DATA

    code, out, _ = run_cli(capsys, "list", "--json")
    assert code == 0
    listing = json.loads(out)
    shown = {kind: set(listing[section]) for section, kind in LIST_KINDS.items()}
    shown.update(learner=set(listing["workloads"]["learners"]),
                 timing=set(listing["workloads"]["timing"]),
                 data=set(listing["workloads"]["data"]))
    assert set(shown) == set(components.KINDS)
    for kind in components.KINDS:
        assert shown[kind] == set(components.names(kind)), kind
    assert shown["data"] == {*DATA, "text:PATH"}
    assert "python-stdlib" in shown["data"]
    assert listing["failures"]["poisson"][:1] == ["rate_per_s"]
    assert "p_hour" in listing["failures"]["stage"]
    assert listing["stragglers"]["pareto"] == ["alpha", "scale"]


def test_run_json_is_one_object_and_deterministic(capsys, fast_toml, tmp_path):
    trace = tmp_path / "trace.json"
    code, out, _ = run_cli(capsys, "run", str(fast_toml), "--json", "--quiet",
                           "--trace", str(trace))
    assert code == 0
    first = json.loads(out)
    assert isinstance(first, dict) and JSON_KEYS <= set(first)
    assert first["policy"] == "ddp" and first["steps"] == 10
    assert first["target_loss"] is None and first["time_to_target_s"] is None
    assert first["bytes_sent"] > 0 and first["events"] > 0
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" for e in events)
    # A second run in a fresh process with another hash seed: identical but for wall time.
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(fast_toml), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr
    second = json.loads(proc.stdout)
    # wall_time_s is real time: the only field allowed to differ between identical runs.
    first.pop("wall_time_s"), second.pop("wall_time_s")
    assert first == second


def test_compare_json_is_a_list_with_speedups(capsys, fast_toml, tmp_path):
    code, out, err = run_cli(capsys, "compare", str(fast_toml), "--json", "--quiet",
                             "--out", str(tmp_path / "plots"))
    assert code == 0
    records = json.loads(out)
    assert [r["label"] for r in records] == ["ddp", "diloco"]
    assert all(JSON_KEYS <= set(r) for r in records)
    assert records[0]["speedup"] == 1.0
    assert "plots:" in err
    for name in ("compare.png", "timeline.png", "bytes.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000


def test_run_prints_a_table(capsys, fast_toml):
    code, out, _ = run_cli(capsys, "run", str(fast_toml), "--quiet", "--set",
                           "policies.diloco.inner_steps=2", "--policy", "diloco")
    assert code == 0
    assert "diloco" in out and "final loss" in out
