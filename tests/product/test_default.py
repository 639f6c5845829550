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


# The CI version of `dtsim` (shortened to 1 simulated minute on 4 nodes) is the README's own
# block, run by tests/test_docs.py with its printed table checked against the README's.


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
