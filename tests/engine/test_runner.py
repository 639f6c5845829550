"""The runner's stop conditions, including a run that can no longer progress."""

from __future__ import annotations

import re

import pytest

from sim.config import ClusterConfig, NetworkConfig, RunConfig, Scenario
from sim.policy import Policy
from sim.runner import run


class WaitForever(Policy):
    """Every worker computes once, then waits on an event nothing will ever trigger."""

    name = "wait_forever"

    def worker(self, ctx, node):
        yield node.compute(seconds=1.0)
        ctx.report(1)
        yield ctx.env.event()

    def evaluate(self, ctx):
        return 1.0


@pytest.mark.parametrize("eval_every_s", [None, 10.0])
def test_a_run_that_cannot_progress_ends_as_stalled(eval_every_s):
    scenario = Scenario(cluster=ClusterConfig(num_nodes=2),
                        network=NetworkConfig(model="ideal"),
                        run=RunConfig(max_steps=100, eval_every_s=eval_every_s))
    result = run(scenario, WaitForever())
    assert result.stop_reason == "stalled"
    assert result.sim_time_s == pytest.approx(1.0 if eval_every_s is None else 10.0)
    assert result.steps == 1


def test_a_time_limit_still_ends_a_stalled_run_at_the_limit():
    scenario = Scenario(cluster=ClusterConfig(num_nodes=2), network=NetworkConfig(model="ideal"),
                        run=RunConfig(until_s=30.0, eval_every_s=10.0))
    result = run(scenario, WaitForever())
    assert result.stop_reason == "until_s" and result.sim_time_s == pytest.approx(30.0)


def test_target_loss_needs_an_evaluation_interval():
    with pytest.raises(ValueError, match="run.eval_every"):
        RunConfig(max_steps=10, target_loss=1.0)
    with pytest.raises(ValueError, match="run.eval_every"):
        RunConfig(max_steps=10, eval_every_s=0.0)


@pytest.mark.parametrize("spec, field", [
    ({"model": "link_down", "links": [["a", "b"]], "start_s": 1.0, "duration_s": 1.0},
     "faults.failures[0].links"),
    ({"model": "partition", "groups": [["nope"]], "start_s": 1.0, "duration_s": 1.0},
     "faults.failures[0].groups"),
])
def test_faults_on_links_or_sites_the_topology_lacks_are_refused(spec, field):
    from sim.config import FaultsConfig
    from sim.errors import ScenarioError
    from sim.world import World

    scenario = Scenario(cluster=ClusterConfig(num_nodes=4),
                        network=NetworkConfig(topology="star",
                                              topology_params={"latency_s": 0.01,
                                                               "bandwidth_Bps": 1e6}),
                        faults=FaultsConfig(failures=[spec]), run=RunConfig(until_s=10.0))
    with pytest.raises(ScenarioError, match=re.escape(field) + ".*sites are"):
        World.build(scenario)


class SpinAtOneInstant(Policy):
    """A retry loop that never lets simulated time pass (the bug class of issue 15)."""

    name = "spin_at_one_instant"

    def coordinator(self, ctx):
        ctx.report(1)
        while True:
            yield ctx.env.timeout(0)


class BusyWithoutSteps(Policy):
    """Events keep coming and time moves, but no training step is ever made."""

    name = "busy_without_steps"

    def coordinator(self, ctx):
        while True:
            yield ctx.env.timeout(1e-3)


def test_a_run_whose_time_stops_ends_as_stalled_with_the_reason():
    scenario = Scenario(cluster=ClusterConfig(num_nodes=2), network=NetworkConfig(model="ideal"),
                        run=RunConfig(max_steps=5))
    result = run(scenario, SpinAtOneInstant())
    assert result.stop_reason == "stalled"
    assert result.sim_time_s == 0.0 and result.steps == 1
    assert re.match(r"simulated time stopped advancing: \d+ events at t=0s", result.stop_detail)
    assert result.summary["stop_detail"] == result.stop_detail
    assert [e["kind"] for e in result.recorder._events].count("stalled") == 1


def test_a_run_with_events_but_no_steps_ends_as_stalled(monkeypatch):
    import sim.runner

    monkeypatch.setattr(sim.runner, "max_events_per_step", lambda n: 1 << 17)
    scenario = Scenario(cluster=ClusterConfig(num_nodes=2), network=NetworkConfig(model="ideal"),
                        run=RunConfig(max_steps=5))
    result = run(scenario, BusyWithoutSteps())
    assert result.stop_reason == "stalled" and result.steps == 0
    assert result.stop_detail.startswith("no training step in 131072 events (step 0")
    # one event per millisecond; the watchdog looks every 65,536 events and stops at the 2nd look
    assert result.sim_time_s == pytest.approx(131072 * 1e-3, rel=1e-3)


def test_the_event_limit_per_step_grows_with_the_square_of_the_nodes():
    from sim.runner import max_events_per_step

    assert max_events_per_step(2) == 1 << 22
    assert max_events_per_step(1000) == 64_000_000  # a ring all-reduce: ~2 n^2 transfers
