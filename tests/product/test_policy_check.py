"""Cross-field policy checks run for every policy before the first one runs.

A comparison whose second policy cannot run on the scenario (a pipeline longer than the cluster,
a code parameter too large for the workers) is refused as bad input (exit 2, one line naming the
field) before any policy has run: ``Policy.check`` is called for every policy first.
"""

from __future__ import annotations

import dataclasses
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

RECOVERY_REFUSED = [  # (second policy, cluster nodes, field, detail)
    # 4 stages x 2 replicas need 8 nodes; the cluster has 4
    ('name = "checkfree"\nnum_stages = 4', 4, "policy.num_stages", "4 x 2 = 8 nodes"),
    # stage 0 holds the embedding: 13 transformer stages for llama-125m's 12 timed blocks
    ('name = "no_failure"\nnum_stages = 14\nreplicas_per_stage = 1\nforward_s = 1.0', 14,
     "policy.num_stages", "n_layers=12"),
    # 12 blocks over 5 transformer stages: CheckFree cannot average uneven neighbours
    ('name = "checkfree_plus"\nnum_stages = 6\nreplicas_per_stage = 1\nforward_s = 1.0', 6,
     "policy.num_stages", "uneven"),
    # 4 x 1 pipeline nodes fill the cluster: no node left for the checkpoint store
    ('name = "checkpointing"\nnum_stages = 4\nreplicas_per_stage = 1\nforward_s = 1.0', 4,
     "cluster.nodes", "needs a store node"),
]

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


def scenario_file(tmp_path: Path, second: str, nodes: int = 4) -> Path:
    path = tmp_path / "check.toml"
    text = TOML.format(second=second).replace("nodes = 4", f"nodes = {nodes}")
    path.write_text(text, encoding="utf-8")
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


@pytest.mark.parametrize(("second", "nodes", "field", "detail"), RECOVERY_REFUSED)
def test_compare_refuses_a_recovery_policy_that_does_not_fit_before_running_the_first(
        tmp_path, capsys, no_simulation, second, nodes, field, detail):
    path = scenario_file(tmp_path, second, nodes)
    code = main(["compare", str(path), "--processes", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and field in err[0] and detail in err[0], err


@pytest.mark.parametrize(("second", "nodes", "field", "detail"), RECOVERY_REFUSED)
def test_running_the_recovery_policy_alone_is_refused_identically(
        tmp_path, capsys, no_simulation, second, nodes, field, detail):
    path = scenario_file(tmp_path, second, nodes)
    assert main(["compare", str(path), "--processes", "1"]) == 2
    compared = capsys.readouterr().err.strip()
    assert main(["run", str(path), "--policy", "second"]) == 2
    alone = capsys.readouterr().err.strip()
    assert alone == compared and len(alone.splitlines()) == 1


def test_setup_refuses_with_the_same_line_as_the_check(tmp_path, capsys, monkeypatch):
    """Setup runs the same rule: a run whose check is skipped still refuses, same words."""
    path = scenario_file(tmp_path, *RECOVERY_REFUSED[2][:2])
    assert main(["run", str(path), "--policy", "second"]) == 2
    checked = capsys.readouterr().err.strip()
    from policies.recovery.policies import PipelineRecoveryPolicy

    monkeypatch.setattr(PipelineRecoveryPolicy, "check", lambda self, scenario: None)
    assert main(["run", str(path), "--policy", "second"]) == 2
    assert capsys.readouterr().err.strip() == checked


def test_a_valid_recovery_policy_passes_the_check(tmp_path):
    spec = load(scenario_file(tmp_path, 'name = "checkpointing"\nnum_stages = 4\n'
                                        'replicas_per_stage = 1\nforward_s = 1.0'))
    from sim.runner import check_policy

    scenario = dataclasses.replace(spec.scenario, cluster=dataclasses.replace(
        spec.scenario.cluster, num_nodes=5))
    for name in ("checkfree", "checkfree_plus", "checkpointing", "redundant", "no_failure"):
        check_policy(PolicyConfig(name=name, params={"num_stages": 4, "replicas_per_stage": 1}),
                     scenario)


@pytest.mark.parametrize("workload", [
    {"learner": "tiny-llama", "timing": "same"},
    {"learner": "tiny-llama", "timing": "llama-350m"},
    {"learner": "tiny-llama", "timing": "same", "n_layers": 4},
    {"learner": "llama", "timing": "same"},
])
def test_the_checked_block_counts_are_the_ones_the_workload_builds(workload):
    from policies.recovery.policies import model_blocks
    from workloads.config import WorkloadConfig
    from workloads.workload import Workload

    config = WorkloadConfig(**workload, batch=2, seq=8)
    built = Workload(config, num_replicas=1, seed=0)
    assert model_blocks(config, timing_only=True) == (built.timing.n_layers,)
    assert set(model_blocks(config, timing_only=False)) == {
        built.timing.n_layers, built.llama_config().n_layers}


@pytest.mark.parametrize("second", ['name = "checkfree"\nnum_stages = 4\nreplicas_per_stage = 1',
                                    'name = "full_pipeline"\nstage_sizes = [1, 1]'])
def test_a_pipeline_method_refuses_a_classifier_learner_before_running_the_first(
        tmp_path, capsys, no_simulation, second):
    path = scenario_file(tmp_path, second)
    path.write_text(path.read_text().replace('learner = "tiny-llama"',
                                             'learner = "mlp"\ndata = "digits"'))
    code = main(["compare", str(path), "--processes", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "workload.learner" in err[0] and "'mlp'" in err[0], err
