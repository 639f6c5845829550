"""sim.testing: speed-up measurements and assertion messages for users' regressions."""

from __future__ import annotations

import pytest
from product_helpers import FakeRunner

from sim.scenario import ScenarioBuilder, load
from sim.testing import assert_speedup, measure_speedup, speedup


def test_speedup_is_the_ratio_of_times_to_target(small_toml):
    runner = FakeRunner({"ddp": {"time_to_target_s": 900.0}, "diloco":
                         {"time_to_target_s": 300.0}})
    assert speedup(load(small_toml), "diloco", "ddp", run_fn=runner) == 3.0
    measured = measure_speedup(load(small_toml), "diloco", "ddp", run_fn=runner)
    assert (float(measured), measured.basis) == (3.0, "time_to_target")


def test_failed_assertion_shows_both_runs_and_the_scenario(small_toml):
    runner = FakeRunner({"ddp": {"time_to_target_s": 900.0, "bytes_sent": 123456789.0},
                         "diloco": {"time_to_target_s": 600.0}})
    with pytest.raises(AssertionError) as info:
        assert_speedup(small_toml, "diloco", "ddp", at_least=2.0, run_fn=runner)
    message = str(info.value)
    assert "expected a speed-up of at least 2.0x" in message
    assert "speed-up 1.5x (time_to_target) of 'diloco' over 'ddp'" in message
    assert "123456789" in message and "600" in message and "900" in message
    assert "scenario: 'small' seed=3; 4 x h100" in message
    assert "up 100Mbit/s" in message and "run until 20min" in message


def test_assertion_can_require_a_basis(small_toml):
    runner = FakeRunner({"ddp": {"steps": 10}, "diloco": {"steps": 20}})
    assert float(assert_speedup(small_toml, "diloco", "ddp", at_least=1.9, at_most=2.1,
                                run_fn=runner)) == 2.0
    with pytest.raises(AssertionError, match="expected the basis 'time_to_target'"):
        assert_speedup(small_toml, "diloco", "ddp", at_least=1.0, basis="time_to_target",
                       run_fn=runner)


def test_real_speedup_of_local_steps_on_a_slow_link():
    """On a 10 Mbit/s link, DiLoCo (sync every 5 steps) steps faster than DDP (every step)."""
    scenario = (ScenarioBuilder("slow-link", seed=2)
                .cluster(nodes=2, device="h100")
                .network(model="ideal", topology="uniform", uplink="10Mbit/s",
                         downlink="10Mbit/s")
                .workload(learner="tiny-llama", timing="llama-125m", batch=4, seq=16)
                .compare("ddp").compare("diloco", inner_steps=5)
                .run(steps=10))
    measured = assert_speedup(scenario, "diloco", "ddp", at_least=2.0, basis="step_time")
    assert measured.policy["steps"] == measured.baseline["steps"] == 10


def test_assert_speedup_fails_when_only_one_run_reaches_the_target(small_toml):
    from sim.scenario import load
    from sim.testing import assert_speedup

    runner = FakeRunner({"ddp": {"time_to_target_s": 600.0},
                         "diloco": {"time_to_target_s": None, "steps": 1000}})
    spec = load(small_toml, ["run.target_loss=2.0", "run.eval_every=1min"])
    with pytest.raises(AssertionError, match="the policy did not reach the target"):
        assert_speedup(spec, "diloco", "ddp", at_least=1.0, run_fn=runner)


def test_goodput_order_passes_and_fails_with_every_run_shown(small_toml):
    from sim.testing import assert_goodput_order, measure_goodput

    runner = FakeRunner({"ddp": {"goodput": 0.02}, "diloco": {"goodput": 0.40}})
    records = measure_goodput(small_toml, ["diloco", "ddp"], run_fn=runner)
    assert {label: r["goodput"] for label, r in records.items()} == {"diloco": 0.40, "ddp": 0.02}
    assert_goodput_order(small_toml, ["diloco", "ddp"], run_fn=runner)
    with pytest.raises(AssertionError) as info:
        assert_goodput_order(small_toml, ["ddp", "diloco"], run_fn=runner)
    message = str(info.value)
    assert "expected goodput ddp 0.020 > diloco 0.400" in message
    assert "scenario: 'small' seed=3" in message
