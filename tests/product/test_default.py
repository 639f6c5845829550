"""The built-in default comparison (``dtsim`` with no arguments) runs end to end."""

from __future__ import annotations

import json

import pytest

from sim.cli import main
from sim.scenario import default_scenario_path, load


def test_default_scenario_is_valid_and_compares_three_methods():
    spec = load(default_scenario_path())
    assert [label for label, _ in spec.policies] == ["ddp", "diloco", "noloco"]
    assert spec.scenario.run.target_loss is not None


def test_default_comparison_end_to_end_short(capsys, tmp_path):
    """CI version: the same command, shortened to 1 simulated minute on 4 nodes."""
    code = main(["--quiet", "--out", str(tmp_path), "--set", "run.until=1min",
                 "--set", "cluster.nodes=4"])
    out, _ = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "scenario 'default-wan' (seed 0)"
    assert [line.split()[0] for line in lines[3:6]] == ["ddp", "diloco", "noloco"]
    assert f"plots: {tmp_path / 'compare.png'}" in out
    assert (tmp_path / "compare.png").stat().st_size > 1000


@pytest.mark.slow
def test_default_comparison_full(capsys, tmp_path):
    """The full default: local-step methods reach the target loss sooner than DDP."""
    code = main(["--json", "--quiet", "--out", str(tmp_path)])
    records = {r["label"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 0
    for label in ("diloco", "noloco"):
        assert records[label]["time_to_target_s"] is not None
        assert records[label]["speedup_basis"] == "time_to_target"
        assert records[label]["speedup"] > 2.0
