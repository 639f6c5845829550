"""compare(): the table, the speed-up rule (hand-worked), JSON records and plots."""

from __future__ import annotations

import json

import pytest
from product_helpers import FakeRunner

from sim.compare import compare, format_table, speedup_between
from sim.config import PolicyConfig
from sim.scenario import load


def test_speedup_uses_time_to_target_when_both_reached():
    assert speedup_between({"time_to_target_s": 50.0}, {"time_to_target_s": 200.0}) == \
        (4.0, "time_to_target")


def test_speedup_falls_back_to_time_per_step_only_when_neither_reached():
    # baseline: 100 s / 10 steps = 10 s per step; policy: 100 s / 40 steps = 2.5 s per step.
    got = speedup_between({"time_to_target_s": None, "sim_time_s": 100.0, "steps": 40},
                          {"time_to_target_s": None, "sim_time_s": 100.0, "steps": 10})
    assert got == (4.0, "step_time")
    # one reached the target, the other did not: no number (steps of unlike methods)
    assert speedup_between({"time_to_target_s": None, "sim_time_s": 100.0, "steps": 40},
                           {"time_to_target_s": 30.0, "sim_time_s": 100.0, "steps": 10}) == \
        (None, "missed_target")
    assert speedup_between({"time_to_target_s": 30.0, "sim_time_s": 100.0, "steps": 40},
                           {"time_to_target_s": None, "sim_time_s": 100.0, "steps": 10}) == \
        (None, "baseline_missed_target")
    assert speedup_between({"sim_time_s": 1.0, "steps": 0}, {"sim_time_s": 1.0,
                                                             "steps": 3}) == (None, "")


def test_table_of_a_fake_comparison(small_toml):
    runner = FakeRunner({"ddp": {"time_to_target_s": 600.0, "final_loss": 2.0},
                         "diloco": {"time_to_target_s": 150.0, "final_loss": 1.5,
                                    "bytes_sent_per_node": 1.0e5, "idle_fraction": 0.25}})
    spec = load(small_toml, ["run.target_loss=2.0"])
    comparison = compare(spec, ["ddp", "diloco"], run_fn=runner)
    table = comparison.table
    assert list(table.policy) == ["ddp", "diloco"]
    assert list(table.speedup) == [1.0, 4.0]
    assert list(table.bytes_sent_per_node) == [2.0e6, 1.0e5]
    assert list(table.idle_fraction) == [0.5, 0.25]
    # every run saw the same scenario except for its policy; named params come from [policy]
    assert [c.policy.name for c in runner.calls] == ["ddp", "diloco"]
    assert runner.calls[1].policy.params == {"inner_steps": 10}
    assert runner.calls[0].network == runner.calls[1].network
    records = json.loads(comparison.to_json())
    assert [r["speedup"] for r in records] == [1.0, 4.0]
    text = format_table(table)
    assert "4.00x" in text and "10 min" in text and "2.5 min" in text


def test_labels_and_configs(small_toml):
    runner = FakeRunner({"diloco": {}})
    spec = load(small_toml)
    comparison = compare(spec, [("h5", PolicyConfig(name="diloco", params={"inner_steps": 5})),
                                PolicyConfig(name="diloco", params={"inner_steps": 50})],
                         run_fn=runner)
    assert [r.label for r in comparison.runs] == ["h5", "diloco"]
    assert [c.policy.params["inner_steps"] for c in runner.calls] == [5, 50]


def test_real_comparison_plots_and_trace(fast_toml, tmp_path):
    comparison = compare(load(fast_toml))
    assert [r.label for r in comparison.runs] == ["ddp", "diloco"]
    paths = comparison.save_plots(tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
    comparison.write_trace(tmp_path / "trace.json")
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert names == {"ddp", "diloco"}
    assert {e["pid"] for e in events} == {0, 1}
    # DiLoCo syncs every 5 steps instead of every step: it must send fewer bytes per node.
    ddp, diloco = comparison.records
    assert diloco["bytes_sent_per_node"] < ddp["bytes_sent_per_node"]
    assert diloco["speedup_basis"] == "step_time" and diloco["speedup"] > 1.0


def test_unknown_policy_is_a_scenario_error(small_toml):
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match="^--policies: unknown policy 'nope'"):
        compare(load(small_toml), ["nope"], run_fn=FakeRunner({}))
