"""Cross-field policy checks run for every policy before the first one runs.

A comparison whose second policy cannot run on the scenario (a pipeline longer than the cluster,
a code parameter too large for the workers) is refused as bad input (exit 2, one line naming the
field) before any policy has run: ``Policy.check`` is called for every policy first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.compare import compare
from sim.config import PolicyConfig
from sim.errors import ScenarioError
from sim.scenario import load
from sim.sweep import sweep_tasks
from sim.world import Environment

TOML = """
name = "check-hook"
seed = 1

[cluster]
nodes = 4

[network]
model = "ideal"

[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16

[policies.first]
name = "diloco"

[policies.second]
{second}

[run]
steps = 2
timing_only = true
"""

REFUSED = [
    ('name = "full_pipeline"\nstage_sizes = [2, 2, 2]', "policy.stage_sizes", "needs 6 nodes"),
    ('name = "gc_cyclic"\ns = 3', "policy.s", r"[0, n=3)"),
    ('name = "gc_uncoded"\nmaster = 7', "policy.master", "0..3"),
    ('name = "m_sgc"\nB = 1\nW = 2\nlam = 9', "policy.lam", "[0, n=3)"),
]


@pytest.fixture
def no_simulation(monkeypatch):
    """Any simulated time fails the test: the refusal must come first."""

    def refuse_to_run(self, until=None):
        raise AssertionError("simulated time ran before the second policy was refused")

    monkeypatch.setattr(Environment, "run", refuse_to_run)


def scenario_file(tmp_path: Path, second: str) -> Path:
    path = tmp_path / "check.toml"
    path.write_text(TOML.format(second=second), encoding="utf-8")
    return path


@pytest.mark.parametrize(("second", "field", "detail"), REFUSED)
def test_compare_refuses_the_second_policy_before_running_the_first(
        tmp_path, capsys, no_simulation, second, field, detail):
    path = scenario_file(tmp_path, second)
    code = main(["compare", str(path), "--processes", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and field in err[0] and detail in err[0], err


def test_library_compare_checks_every_policy_before_any_run(tmp_path):
    spec = load(scenario_file(tmp_path, 'name = "gc_cyclic"\ns = 3'))
    ran = []

    def fake_run(scenario):
        ran.append(scenario.policy.name)
        raise AssertionError("no policy may run")

    with pytest.raises(ScenarioError, match=r"policy\.s"):
        compare(spec, run_fn=fake_run)
    with pytest.raises(ScenarioError, match="policy.stage_sizes"):
        compare(spec, ["first", PolicyConfig(name="skippipe",
                                             params={"stage_sizes": [3, 3]})], run_fn=fake_run)
    assert ran == []


def test_a_sweep_refuses_a_point_where_a_policy_cannot_run(tmp_path, no_simulation):
    path = scenario_file(tmp_path, 'name = "gc_cyclic"\ns = 2')
    with pytest.raises(ScenarioError, match=r"policy\.s.*\[0, n=2\)"):
        sweep_tasks(path, {"cluster.nodes": [4, 3]})


def test_a_valid_second_policy_still_runs(tmp_path):
    spec = load(scenario_file(tmp_path, 'name = "gc_cyclic"\ns = 1'))
    comparison = compare(spec, processes=1)
    assert [run.label for run in comparison.runs] == ["first", "second"]
