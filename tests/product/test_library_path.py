"""A scenario loaded from a file keeps its [policies] tables: the library gives the CLI's answer.

``run(load_scenario(file), "diloco")``, ``compare``, ``sweep``, ``sim.testing`` and
``dtsim run FILE --policy diloco`` resolve a policy name by one rule
(:meth:`sim.config.Scenario.policy_config`), so they run the same configuration; a policy the
file does not configure runs with its defaults and the result says so (``policy_defaults``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from product_helpers import FakeRunner

from sim.compare import NONDETERMINISTIC_KEYS, compare, record_of
from sim.runner import run
from sim.scenario import load_scenario
from sim.sweep import sweep
from sim.testing import measure_speedup

ROOT = Path(__file__).resolve().parents[2]
SLOW_WAN = ROOT / "scenarios" / "dp-slow-wan.toml"
# a few seconds: 4 nodes, 40 inner steps (two DiLoCo rounds of the file's H = 20)
FAST = ["cluster.nodes=4", "run.steps=40"]


def _without_wall_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in NONDETERMINISTIC_KEYS}


def test_run_of_a_loaded_file_uses_its_policy_table_and_matches_the_cli():
    scenario = load_scenario(SLOW_WAN, FAST)
    result = run(scenario, "diloco")
    assert result.params["inner_steps"] == 20          # the file's H, not DiLoCo's default 500
    assert result.summary["policy_defaults"] is False
    assert result.summary["bytes_sent"] > 0            # 40 steps of H = 20: two all-reduces
    cli = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(SLOW_WAN), "--policy", "diloco", "--json",
         *[a for s in FAST for a in ("--set", s)]],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=600)
    from_cli = json.loads(cli.stdout)
    from_library = record_of(result)
    assert set(from_library) == set(from_cli)
    assert _without_wall_time(from_library) == _without_wall_time(from_cli)


def test_a_policy_the_file_does_not_configure_runs_with_defaults_and_says_so():
    scenario = load_scenario(SLOW_WAN, FAST)
    label, config = scenario.policy_config("gossip")
    assert (label, config.params, config.configured) == ("gossip", {}, False)
    assert scenario.policy_config("diloco")[1].params == {"inner_steps": 20}
    assert scenario.policy_config("diloco")[1].configured is True


@pytest.mark.parametrize("entry", ["compare", "testing", "sweep"])
def test_every_entry_point_resolves_a_name_like_run(entry, tmp_path):
    """compare, sim.testing and sweep hand the runner the file's [policies.diloco] table."""
    fake = FakeRunner({"ddp": {}, "diloco": {}})
    if entry == "compare":
        compare(load_scenario(SLOW_WAN), ["ddp", "diloco"], run_fn=fake)
    elif entry == "testing":
        measure_speedup(load_scenario(SLOW_WAN), "diloco", "ddp", run_fn=fake)
    else:
        sweep(SLOW_WAN, {"cluster.nodes": [4]}, tmp_path / "sweep", policies=["diloco"],
              processes=1, progress=False, run_fn=fake)
    diloco = [s.policy for s in fake.calls if s.policy.name == "diloco"]
    assert diloco and all(p.params == {"inner_steps": 20} and p.configured for p in diloco)
