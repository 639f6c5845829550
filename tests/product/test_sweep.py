"""sweep(): grid points, one saved record per run, resume, failures, parallel processes."""

from __future__ import annotations

import json

import pytest
from product_helpers import FakeRunner

from sim.errors import ScenarioError
from sim.scenario import load
from sim.sweep import grid_points, load_records, load_table, run_key, sweep


def test_grid_points_are_the_cartesian_product_in_key_order():
    points = grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(points) == 6
    assert points[0] == {"a": 1, "b": "x"} and points[-1] == {"a": 2, "b": "z"}


@pytest.mark.parametrize("values", [[], "10Mbit/s", 3])
def test_grid_values_must_be_lists(values):
    with pytest.raises(ScenarioError, match=r"^grid\.k: needs a non-empty list"):
        grid_points({"k": values})


def test_run_key_is_stable_and_distinguishes():
    table = {"a": {"b": 1}, "seed": 1}
    assert run_key(table, "ddp") == run_key({"seed": 1, "a": {"b": 1}}, "ddp")
    keys = {run_key(table, "ddp"), run_key({**table, "seed": 2}, "ddp"),
            run_key(table, "diloco"), run_key({"a": {"b": 2}, "seed": 1}, "ddp")}
    assert len(keys) == 4


def test_sweep_saves_each_run_and_resume_skips_them(small_toml, tmp_path):
    raw = load(small_toml).raw
    grid = {"network.uplink": ["10Mbit/s", "100Mbit/s"], "cluster.nodes": [2, 4]}
    runner = FakeRunner({"diloco": {}})
    table = sweep(raw, grid, tmp_path, processes=1, progress=False, run_fn=runner)
    assert len(runner.calls) == 4 and len(list(tmp_path.glob("*.json"))) == 4
    assert sorted(c.network.uplink_Bps for c in runner.calls) == [1.25e6, 1.25e6, 1.25e7, 1.25e7]
    assert list(table.status) == ["ok"] * 4
    assert set(table.columns) >= {"network.uplink", "cluster.nodes", "sim_time_s"}
    # Resume: nothing left to do.
    again = FakeRunner({"diloco": {}})
    table2 = sweep(raw, grid, tmp_path, processes=1, progress=False, run_fn=again)
    assert again.calls == [] and list(table2.status) == ["ok"] * 4
    assert table.attrs["skipped"] == [] and len(table2.attrs["skipped"]) == 4
    # A grown grid runs only the new points.
    grid["cluster.nodes"].append(3)
    sweep(raw, grid, tmp_path, processes=1, progress=False, run_fn=again)
    assert sorted(c.cluster.num_nodes for c in again.calls) == [3, 3]


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(small_toml, tmp_path):
    raw = load(small_toml).raw
    runner = FakeRunner({"ddp": {}})  # no figures for diloco: the fake raises
    table = sweep(raw, {"cluster.nodes": [2, 3]}, tmp_path, policies=["diloco", "ddp"],
                  processes=1, progress=False, run_fn=runner)
    assert sorted(table.status) == ["error", "error", "ok", "ok"]
    errors = [r for r in load_records(tmp_path) if r["status"] == "error"]
    assert len(errors) == 2 and "no figures for 'diloco'" in errors[0]["error"]
    # Resuming retries the failed runs only.
    retry = FakeRunner({"ddp": {}, "diloco": {}})
    table = sweep(raw, {"cluster.nodes": [2, 3]}, tmp_path, policies=["diloco", "ddp"],
                  processes=1, progress=False, run_fn=retry)
    assert [c.policy.name for c in retry.calls] == ["diloco", "diloco"]
    assert list(table.status) == ["ok"] * 4


def test_a_bad_grid_value_fails_before_anything_runs(small_toml, tmp_path):
    runner = FakeRunner({"diloco": {}})
    with pytest.raises(ScenarioError, match=r"^network\.uplink: 100 has no unit"):
        sweep(load(small_toml).raw, {"network.uplink": ["10Mbit/s", 100]}, tmp_path,
              processes=1, progress=False, run_fn=runner)
    assert runner.calls == [] and list(tmp_path.glob("*.json")) == []


def test_parallel_sweep_with_the_real_engine(fast_toml, tmp_path):
    table = sweep(fast_toml, {"run.steps": [2, 4]}, tmp_path, policies=["diloco"],
                  processes=2, progress=False, torch_threads=1)
    assert list(table.status) == ["ok", "ok"]
    assert list(table.steps) == [2, 4]
    saved = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert {s["record"]["label"] for s in saved} == {"diloco"}


def test_an_interrupted_sweep_keeps_finished_runs(small_toml, tmp_path):
    class InterruptAfter(FakeRunner):
        def __call__(self, scenario):
            if len(self.calls) == 2:
                raise KeyboardInterrupt  # the user pressed Ctrl-C during the third run
            return super().__call__(scenario)

    raw = load(small_toml).raw
    grid = {"cluster.nodes": [2, 3, 4, 5]}
    with pytest.raises(KeyboardInterrupt):
        sweep(raw, grid, tmp_path, processes=1, progress=False,
              run_fn=InterruptAfter({"diloco": {}}))
    assert [r["status"] for r in load_records(tmp_path)] == ["ok", "ok"]
    resumed = FakeRunner({"diloco": {}})
    table = sweep(raw, grid, tmp_path, processes=1, progress=False, run_fn=resumed)
    assert sorted(c.cluster.num_nodes for c in resumed.calls) == [4, 5]
    assert list(table.status) == ["ok"] * 4
    saved = {r["key"]: r["point"]["cluster.nodes"] for r in load_records(tmp_path)}
    assert sorted(saved[k] for k in table.attrs["skipped"]) == [2, 3]


def test_without_policies_sweep_runs_the_files_policy_list_like_compare(small_toml, tmp_path):
    """A file with [policies.*] tables: every label runs at every point, with its parameters."""
    text = small_toml.read_text() + """
[policies.ddp]
name = "ddp"

[policies.h5]
name = "diloco"
inner_steps = 5
"""
    path = tmp_path / "two.toml"
    path.write_text(text)
    runner = FakeRunner({"ddp": {}, "diloco": {}})
    table = sweep(path, {"cluster.nodes": [2, 3]}, tmp_path / "out", processes=1,
                  progress=False, run_fn=runner)
    assert list(table.policy) == ["ddp", "h5", "ddp", "h5"]
    assert [(c.policy.name, c.policy.params.get("inner_steps")) for c in runner.calls] == [
        ("ddp", None), ("diloco", 5), ("ddp", None), ("diloco", 5)]
    # compare runs the same list from the same file
    from sim.compare import compare

    compared = FakeRunner({"ddp": {}, "diloco": {}})
    compare(load(path), run_fn=compared)
    assert [c.policy for c in compared.calls] == [c.policy for c in runner.calls[:2]]


def test_load_table_reads_every_saved_run(small_toml, tmp_path):
    raw = load(small_toml).raw
    table = sweep(raw, {"cluster.nodes": [2, 3]}, tmp_path, processes=1, progress=False,
                  run_fn=FakeRunner({"diloco": {}}))
    loaded = load_table(tmp_path).sort_values("cluster.nodes").reset_index(drop=True)
    assert list(loaded["cluster.nodes"]) == [2, 3]
    assert loaded.drop(columns="key").equals(table)
