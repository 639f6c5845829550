"""Helpers for users' own regression tests (dtsim is used from pytest).

::

    from sim.testing import assert_speedup, speedup

    def test_diloco_beats_ddp_on_slow_wan():
        scenario = load_scenario("scenarios/wan.toml")
        assert_speedup(scenario, "diloco", baseline="ddp", at_least=2.0)

:func:`speedup` returns the measured ratio (baseline time over policy time) of time to target
loss when both runs reach ``run.target_loss``, else of time per step (simulated time over
steps), and :func:`assert_speedup` fails with a message that shows both runs' figures and the
scenario, so a failing CI job says what changed without a rerun.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.compare import compare, speedup_between
from sim.config import PolicyConfig, Scenario
from sim.scenario import ScenarioBuilder, ScenarioSpec, load
from sim.units import format_bandwidth, format_duration

__all__ = ["SpeedupMeasurement", "assert_goodput_order", "assert_speedup", "describe_scenario",
           "measure_goodput", "measure_speedup", "speedup"]


@dataclass(frozen=True)
class SpeedupMeasurement:
    """A measured speed-up of ``policy`` over ``baseline`` on one scenario.

    value:
        ``baseline / policy`` of the figure named by ``basis``; > 1 means ``policy`` is faster.
        ``None`` when only one of the two runs reached the target loss.
    basis:
        ``"time_to_target"`` or ``"step_time"``, or why there is no value (``"missed_target"``,
        ``"baseline_missed_target"``); see :func:`sim.compare.speedup_between`.
    policy, baseline:
        The two runs' records (``sim.compare.record_of``).
    scenario:
        The scenario both ran on.
    """

    value: float | None
    basis: str
    policy: dict[str, Any]
    baseline: dict[str, Any]
    scenario: Scenario

    def __float__(self) -> float:
        if self.value is None:
            raise ValueError(f"no speed-up: {self.basis}\n{self.report()}")
        return self.value

    def report(self) -> str:
        """Both runs' figures side by side, then the scenario."""
        keys = ["policy", "time_to_target_s", "final_loss", "sim_time_s", "steps",
                "bytes_sent", "idle_fraction", "goodput", "stop_reason"]
        width = max(len(k) for k in keys)
        measured = "none" if self.value is None else f"{self.value:.4g}x"
        lines = [f"speed-up {measured} ({self.basis}) of {self.policy['label']!r} over "
                 f"{self.baseline['label']!r}",
                 f"  {'':<{width}}  {'policy':>16}  {'baseline':>16}"]
        for key in keys:
            lines.append(f"  {key:<{width}}  {_cell(self.policy.get(key)):>16}  "
                         f"{_cell(self.baseline.get(key)):>16}")
        lines.append("scenario: " + describe_scenario(self.scenario))
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def describe_scenario(scenario: Scenario) -> str:
    """Describe a scenario in one compact paragraph in human units."""
    c, n, r = scenario.cluster, scenario.network, scenario.run
    parts = [f"{scenario.name!r} seed={scenario.seed}",
             f"{c.num_nodes} x {c.device}" + (f" speed={c.speed}" if c.speed else ""),
             f"network {n.model} {n.topology}"
             + (f" up {format_bandwidth(n.uplink_Bps)}" if n.uplink_Bps else "")
             + (f" down {format_bandwidth(n.downlink_Bps)}" if n.downlink_Bps else "")]
    if scenario.faults.stragglers:
        parts.append(f"stragglers {scenario.faults.stragglers}")
    if scenario.faults.failures:
        parts.append(f"failures {scenario.faults.failures}")
    workload = scenario.workload
    if workload is not None and hasattr(workload, "learner"):
        parts.append(f"workload {workload.learner} timed as {workload.timing}, "
                     f"batch {workload.batch}, data {workload.data}")
    stop = []
    if r.until_s is not None:
        stop.append(f"until {format_duration(r.until_s)}")
    if r.max_steps is not None:
        stop.append(f"{r.max_steps} steps")
    if r.target_loss is not None:
        stop.append(f"target loss {r.target_loss}")
    parts.append("run " + ", ".join(stop))
    return "; ".join(parts)


def _as_scenario(scenario: Any) -> Any:
    """Accept a Scenario, a ScenarioSpec, a ScenarioBuilder or a scenario file path."""
    if isinstance(scenario, (str, Path)):
        return load(scenario)
    if isinstance(scenario, ScenarioBuilder):
        return scenario.spec()
    if isinstance(scenario, (Scenario, ScenarioSpec)):
        return scenario
    raise TypeError(f"scenario: expected a Scenario, ScenarioSpec, ScenarioBuilder or a path, "
                    f"got {type(scenario).__name__}")


def measure_speedup(scenario: Any, policy: str | PolicyConfig, baseline: str | PolicyConfig, *,
                    run_fn: Callable[..., Any] | None = None) -> SpeedupMeasurement:
    """Run ``baseline`` and ``policy`` on ``scenario`` and measure the speed-up."""
    comparison = compare(_as_scenario(scenario), [baseline, policy], run_fn=run_fn)
    base_record, policy_record = (run.record for run in comparison.runs)
    value, basis = speedup_between(policy_record, base_record)
    if value is None and not basis:
        raise ValueError("speedup: neither time to target nor time per step is defined "
                         "(no steps were run); records: "
                         + json.dumps([policy_record, base_record]))
    return SpeedupMeasurement(value=value, basis=basis, policy=policy_record,
                              baseline=base_record, scenario=comparison.scenario)


def speedup(scenario: Any, policy: str | PolicyConfig, baseline: str | PolicyConfig, *,
            run_fn: Callable[..., Any] | None = None) -> float:
    """Measured speed-up of ``policy`` over ``baseline`` (> 1: ``policy`` is faster).

    Raises ``ValueError`` (with both runs' figures) when only one of them reached the target.
    """
    return float(measure_speedup(scenario, policy, baseline, run_fn=run_fn))


def assert_speedup(scenario: Any, policy: str | PolicyConfig, baseline: str | PolicyConfig, *,
                   at_least: float | None = None, at_most: float | None = None,
                   basis: str | None = None,
                   run_fn: Callable[..., Any] | None = None) -> SpeedupMeasurement:
    """Fail (``AssertionError``) unless ``at_least <= speedup <= at_most``.

    ``basis`` (``"time_to_target"`` or ``"step_time"``) additionally requires that basis, e.g.
    to insist that both runs reached the target. The message shows both runs and the scenario.
    """
    if at_least is None and at_most is None:
        raise ValueError("assert_speedup: give at_least and/or at_most")
    measured = measure_speedup(scenario, policy, baseline, run_fn=run_fn)
    if measured.value is None:
        who = "the policy" if measured.basis == "missed_target" else "the baseline"
        raise AssertionError(f"{who} did not reach the target loss, so there is no speed-up\n"
                             + measured.report())
    problems = []
    if at_least is not None and not measured.value >= at_least:
        problems.append(f"expected a speed-up of at least {at_least}x")
    if at_most is not None and not measured.value <= at_most:
        problems.append(f"expected a speed-up of at most {at_most}x")
    if basis is not None and measured.basis != basis:
        problems.append(f"expected the basis {basis!r}, got {measured.basis!r}")
    if problems:
        raise AssertionError("; ".join(problems) + "\n" + measured.report())
    return measured


def measure_goodput(scenario: Any, policies: list[str | PolicyConfig], *,
                    run_fn: Callable[..., Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``policies`` on ``scenario``; return each run's record by its label.

    ``record["goodput"]`` is the fraction of up time spent on compute that reached the model
    (docs/engine.md, "Goodput").
    """
    comparison = compare(_as_scenario(scenario), list(policies), run_fn=run_fn)
    return {run.record["label"]: run.record for run in comparison.runs}


def assert_goodput_order(scenario: Any, policies: list[str | PolicyConfig], *,
                         run_fn: Callable[..., Any] | None = None) -> dict[str, dict[str, Any]]:
    """Fail unless the goodput strictly decreases along ``policies`` (best first).

    The message shows every run's figures and the scenario. Returns the records.
    """
    records = measure_goodput(scenario, policies, run_fn=run_fn)
    values = [record["goodput"] for record in records.values()]
    if not all(a > b for a, b in zip(values, values[1:], strict=False)):
        order = " > ".join(f"{label} {record['goodput']:.3f}" for label, record in
                           records.items())
        rows = "\n".join(json.dumps(record, default=str) for record in records.values())
        raise AssertionError(f"expected goodput {order} (in that order)\n{rows}\n"
                             f"scenario: {describe_scenario(_as_scenario(scenario))}")
    return records
