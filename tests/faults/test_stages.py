"""Stage failures as a [faults] model: the draw, the policy hook, the scenario and its refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from policies.recovery.failures import FailureFeed
from sim.cli import main
from sim.errors import ScenarioError
from sim.faults.stages import StageFailure, StageFailuresConfig, draw_stage_schedule
from sim.policy import get_policy
from sim.scenario import load, scenario_from_dict

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
GROUPS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_scaled_rate_is_rate_times_scale():
    cfg = StageFailuresConfig(p_hour=0.10, time_scale=60.0)
    # surviving 1 scaled hour = surviving 60 real hours
    assert 1 - cfg.scaled_p_hour == pytest.approx(0.9**60)
    assert cfg.expected_failures(3600.0) == pytest.approx(-math.log(0.9) * 60)
    assert StageFailuresConfig(p_hour=0.05).scaled_p_hour == pytest.approx(0.05)


def test_schedule_is_deterministic_exempts_stage0_and_matches_rate():
    cfg = StageFailuresConfig(p_hour=0.16, time_scale=200.0, failure_period_s=5.0,
                              rejoin_delay_s=7.0)
    horizon = 3600.0
    a = draw_stage_schedule(cfg, GROUPS, horizon_s=horizon, rng=np.random.default_rng(3))
    b = draw_stage_schedule(cfg, GROUPS, horizon_s=horizon, rng=np.random.default_rng(3))
    assert a == b and a.failures
    assert a.exempt == (0,) and a.groups == tuple(tuple(g) for g in GROUPS)
    assert all(f.stage != 0 for f in a.failures)
    assert all(f.rejoin_s == f.time_s + 7.0 for f in a.failures)
    assert [f.time_s for f in a.failures] == sorted(f.time_s for f in a.failures)
    # A stage cannot fail again while down: about H / (1/lambda + d) failures per stage
    # (renewal theorem), for the 4 stages that can fail.
    lam = cfg.expected_failures(1.0)  # per second
    expected = 4 * horizon / (1 / lam + 7.0)
    assert abs(len(a.failures) - expected) < 4 * math.sqrt(expected)


def test_the_draw_depends_on_the_number_of_stages_not_on_their_nodes():
    cfg = StageFailuresConfig(p_hour=0.16, time_scale=200.0, failure_period_s=5.0)
    a = draw_stage_schedule(cfg, GROUPS, horizon_s=600.0, rng=np.random.default_rng(1))
    b = draw_stage_schedule(cfg, [[n] for n in range(5)], horizon_s=600.0,
                            rng=np.random.default_rng(1))
    assert a.failures == b.failures


def test_zero_rate_or_no_stage_draws_nothing():
    rng = np.random.default_rng(0)
    assert draw_stage_schedule(StageFailuresConfig(), GROUPS, horizon_s=1e6, rng=rng).failures == ()
    cfg = StageFailuresConfig(p_hour=0.5)
    assert draw_stage_schedule(cfg, [], horizon_s=1e6, rng=rng).failures == ()


def test_feed_hands_out_each_failure_once_in_order():
    sched = [StageFailure(time_s=t, stage=s, rejoin_s=t + 1) for t, s in
             [(5.0, 2), (1.0, 1), (5.0, 1), (9.0, 3)]]
    feed = FailureFeed(sched)
    assert [(f.time_s, f.stage) for f in feed.until(5.0)] == [(1.0, 1), (5.0, 1), (5.0, 2)]
    assert feed.until(5.0) == []
    assert feed.remaining == 1
    assert [f.stage for f in feed.until(100.0)] == [3]


@pytest.mark.parametrize("field,value", [("p_hour", 1.0), ("time_scale", 0.0),
                                         ("failure_period_s", 0.0), ("rejoin_delay_s", -1.0),
                                         ("exempt", ["a"])])
def test_bad_config_names_field(field, value):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(_table(failures={"model": "stage", field: value}))
    assert err.value.field == f"faults.failures[0].{field}"


def _table(**faults):
    return {
        "cluster": {"nodes": 11},
        "network": {"model": "maxmin"},
        "workload": {"learner": "tiny-llama", "timing": "llama-125m", "batch": 4, "seq": 16,
                     "d_model": 16, "n_layers": 4, "n_heads": 2},
        "faults": faults,
        "policies": {"num_stages": 5, "checkfree": {}, "no_failure": {}},
        "run": {"until": "60s"},
    }


def test_every_method_of_a_comparison_gets_the_world_schedule(monkeypatch):
    """The world draws once per run from ("world", "stage_failures"): the same for each method."""
    from sim.runner import run

    spec = scenario_from_dict(_table(failures={"model": "stage", "p_hour": 0.5, "time_scale": 50.0,
                                               "failure_period_s": 5.0}))
    seen = {}
    for name in ("checkfree", "redundant", "checkpointing", "no_failure"):
        cls = get_policy(name)
        original = cls.setup

        def setup(self, ctx, original=original):
            seen[self.name] = ctx.world.stage_failures
            original(self, ctx)
            ctx.stop("seen")

        monkeypatch.setattr(cls, "setup", setup)
        run(spec, name)
    assert seen["checkfree"] == seen["redundant"] == seen["checkpointing"]
    assert seen["checkfree"].failures and seen["checkfree"].groups[1] == (2, 3)
    assert seen["no_failure"] is None  # the upper bound names no stage that can fail


def test_checkfree_scenarios_state_failures_and_pipeline_once():
    for pct in (5, 10, 16):
        spec = load(SCENARIOS / f"checkfree-{pct}pct.toml")
        (stage,) = spec.faults.failures
        assert isinstance(stage, StageFailuresConfig) and stage.p_hour == pytest.approx(pct / 100)
        for _, policy in spec.policies:
            assert policy.config.num_stages == 5 and policy.config.replicas_per_stage == 2


def test_a_method_without_stages_refuses_the_stage_model(capsys, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_toml("[policy]\nname = \"diloco\"\n"))
    assert main(["run", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "faults.failures[0].model" in line


@pytest.mark.parametrize("key", ["p_hour", "time_scale", "failure_period_s", "rejoin_delay_s",
                                 "exempt_stages"])
def test_former_policy_failure_keys_are_refused_with_the_way_to_migrate(capsys, tmp_path, key):
    path = tmp_path / "s.toml"
    path.write_text(_toml(f"[policy]\nname = \"checkfree\"\n{key} = 1\n"))
    assert main(["run", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and f"policy.{key}" in line and "[faults" in line
    with pytest.raises(ScenarioError) as err:
        get_policy("checkpointing")(**{key: 1})
    assert err.value.field == f"policy.checkpointing.{key}"


def test_a_shared_policies_key_some_method_does_not_take_is_refused():
    table = _table()
    table["policies"] = {"num_stages": 4, "checkfree": {}, "ddp": {}}
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(table)
    assert err.value.field == "policies.num_stages" and "ddp" in err.value.message


def _toml(policy: str) -> str:
    return f"""
[cluster]
nodes = 9
[network]
model = "maxmin"
[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16
[faults.failures]
model = "stage"
p_hour = 0.1
{policy}
[run]
until = "60s"
"""
