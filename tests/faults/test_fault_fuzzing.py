"""Fault fuzzing: every policy family survives random failure and straggler schedules.

Cases come from :mod:`sim.fuzz` (one integer seed draws a policy of the family, a cluster that
fits it, crashes / preemptions / partitions / stage losses at rates from none to 200 per node-hour
and stragglers from none to 100x). Each run is bounded (10 simulated minutes, 12 steps, a wall
limit) and must end without an exception, with a known stop reason, finite losses and every byte
accounted for (sent = delivered + cut + in flight); some cases run twice and must give the same
trace. The CI version runs a few cases per family; ``-m slow`` runs 24 per family (every policy
of a family at least 3 times).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sim.fuzz import FAMILIES, Case, check_result, fuzz, main, make_case, run_case

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_survives_random_faults(family):
    outcomes = fuzz([family], runs=2, first_seed=100, repeat_every=2, wall_limit_s=120)
    problems = [f"{o.case.describe()}: {o.problem}" for o in outcomes if o.problem]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_survives_many_random_faults(family):
    outcomes = fuzz([family], runs=24, first_seed=0, repeat_every=4, wall_limit_s=300)
    problems = [f"{o.case.describe()}: {o.problem}" for o in outcomes if o.problem]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("argv", "line"), [
    (["--families", "bogus"], "--families: unknown family 'bogus'; allowed: data_parallel, "),
    (["--families", ","], "--families: no family given; allowed: "),
    (["--runs", "0"], "--runs: must be an integer >= 1, got 0"),
    (["--first-seed", "-5"], "--first-seed: must be an integer >= 0, got -5"),
    (["--wall-limit", "-1"], "--wall-limit: must be a number of seconds > 0, got -1.0"),
    (["--wall-limit", "nan"], "--wall-limit: must be a number of seconds > 0, got nan"),
    (["--runs", "x"], "argument --runs: invalid int value: 'x'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_the_command_refuses_bad_arguments_in_one_line(capsys, argv, line):
    """Before: a traceback and exit 1 (an unknown family, --runs 0, a negative seed or limit)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"python -m sim.fuzz: error: {line}")


def test_cases_are_drawn_from_their_seed_alone():
    assert make_case(7, "recovery") == make_case(7, "recovery")
    assert make_case(7, "recovery") != make_case(8, "recovery")


def _case(family: str, **table) -> Case:
    base = make_case(0, family)
    return Case(seed=0, family=family, policy=table["policy"]["name"], table={**base.table,
                                                                            **table})


@pytest.mark.parametrize("policy", ["checkfree", "checkpointing"])
def test_recovery_with_node_crashes_from_faults_ends_cleanly(policy):
    """Issue 15: CheckFree with [faults] node failures raised an unhandled TransferCut.

    The recovery transfers (a rebuilt stage's weights, checkpoint uploads to the store) crossed
    crashed nodes; now a cut transfer is sent again once both ends are back.
    """
    from sim.runner import run
    from sim.scenario import load

    spec = load(SCENARIOS / "checkfree-10pct.toml",
                ["run.until=15min", "seed=1", "run.timing_only=true",
                 f"policies.{policy}.forward_s=0.5",  # ~6 s iterations: some finish
                 # stage failures (compressed: some within 15 min) and node crashes
                 'faults.failures=[{model="stage", p_hour=0.1, time_scale=100.0, '
                 'failure_period_s=6.0}, {model="poisson", rate="20/h", downtime="2min"}]'])
    config = dict(spec.policies)[policy]
    result = run(dataclasses.replace(spec.scenario, policy=config))
    assert result.error is None and result.stop_reason == "until_s"
    assert result.summary["failures"] > 0 and result.steps > 0
    cuts = [e for e in result.recorder._events if e["kind"] == "transfer_cut"]
    assert cuts, "the schedule should cut at least one recovery transfer"
    assert check_result(result) is None


def test_m_sgc_with_poisson_crashes_ends_and_finishes_once_failures_stop():
    """Issue 15: M-SGC with Poisson failures (60/h, 10 min down) on 33 workers did not finish.

    At that rate a worker is down 10 of every 11 minutes, so rounds wait for workers: within
    two simulated hours the run ends at its time limit; with only a step limit it finishes its
    20 steps once the failure schedule (drawn over 24 h) is over.
    """
    faults = {"failures": [{"model": "poisson", "rate": "60/h", "downtime": "10min"}]}
    policy = {"name": "m_sgc", "num_jobs": 20}
    bounded = _case("gradient_coding", cluster={"nodes": 34}, policy=policy, faults=faults,
                    run={"until": "2h", "steps": 20, "eval_every": "30min", "eval_batches": 1})
    out = run_case(bounded, wall_limit_s=120)
    assert out.problem is None, out.problem
    assert out.stop_reason in ("until_s", "max_steps")
    steps_only = _case("gradient_coding", cluster={"nodes": 34}, policy=policy, faults=faults,
                       run={"steps": 20, "eval_every": "6h", "eval_batches": 1})
    out = run_case(steps_only, wall_limit_s=120)
    assert out.problem is None, out.problem
    assert out.stop_reason in ("max_steps", "policy_done") and out.steps == 20
