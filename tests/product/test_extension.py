"""Adding a policy or a fault model is one new file and no edit elsewhere.

Each test writes a module into a fresh folder (outside the project), imports it (registration
is the import: one decorator), and runs it from a scenario table that names it. Nothing in
``sim/`` or ``policies/`` is edited or told about it.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from sim import components
from sim.errors import ScenarioError
from sim.runner import run
from sim.scenario import scenario_from_dict

POLICY_MODULE = '''
from dataclasses import dataclass

from sim.errors import FieldError, NodeFailure
from sim.policy import Policy, RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class ComputeOnlyConfig:
    """Parameters of a method that only computes."""

    steps: int = 3
    """Local steps per node."""
    step_s: float = 2.0
    """Simulated seconds of one step."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise FieldError("steps", f"must be >= 1, got {self.steps}")


@register_policy("ext_compute_only")
class ComputeOnly(Policy):
    """Every node computes ``steps`` steps of ``step_s`` seconds and stops."""

    Config = ComputeOnlyConfig

    def worker(self, ctx: RunContext, node):
        for step in range(1, self.config.steps + 1):
            try:
                yield node.compute(seconds=self.config.step_s, label="step")
            except NodeFailure:
                return                                  # a crashed node stops
            ctx.report(step, node=node.id)

    def summary(self):
        return {"ext_steps_per_node": self.config.steps}
'''

FAULT_MODULE = '''
from dataclasses import dataclass

from sim.components import register_component
from sim.errors import FieldError
from sim.faults.failures import FailureEvent, FailureModel


class CrashAt(FailureModel):
    """One node crashes at a fixed time and never comes back."""

    def __init__(self, node: int, time_s: float) -> None:
        self.node, self.time_s = node, time_s

    def schedule(self, *, num_nodes, horizon_s, rng):
        if self.time_s >= horizon_s:
            return []
        return [FailureEvent(time_s=self.time_s, kind="crash", nodes=(self.node,))]


@register_component("failures", "ext_crash_at")
@dataclass(frozen=True, kw_only=True)
class CrashAtConfig:
    """One node crashes at a fixed time."""

    node: int
    """Id of the node that crashes."""
    at_s: float
    """When it crashes, seconds (scenario files write "5s")."""

    def __post_init__(self) -> None:
        if self.at_s < 0:
            raise FieldError("at_s", f"must be >= 0 s, got {self.at_s}")

    def build(self) -> CrashAt:
        return CrashAt(self.node, self.at_s)
'''


def _scenario(policy: dict, faults: dict | None = None) -> dict:
    table = {"name": "ext", "seed": 1,
             "cluster": {"nodes": 2, "device": "h100"},
             "network": {"model": "ideal", "topology": "uniform"},
             "workload": {"learner": "tiny-llama", "timing": "llama-125m"},
             "policy": policy, "run": {"until": "1min"}}
    if faults is not None:
        table["faults"] = faults
    return table


@pytest.fixture
def import_new_file(tmp_path, monkeypatch):
    """Write ``text`` as module ``name`` in a folder of its own and import it."""

    def _import(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        module = importlib.import_module(name)
        monkeypatch.delitem(sys.modules, name)
        return module

    yield _import


def test_a_new_policy_is_one_file(import_new_file):
    import_new_file("ext_policy", POLICY_MODULE)
    assert "ext_compute_only" in components.names("policy")
    assert components.describe()["policy"]["ext_compute_only"] == ["steps", "step_s"]
    scenario = scenario_from_dict(_scenario({"name": "ext_compute_only", "steps": 4,
                                             "step": "5s"}))
    assert scenario.policy.config.step_s == 5.0      # the unit rule: step = "5s" -> step_s
    result = run(scenario)
    assert result.steps == 4
    assert result.sim_time_s == pytest.approx(20.0)  # 4 steps of 5 s, nothing else
    assert result.summary["ext_steps_per_node"] == 4  # its summary hook, merged
    with pytest.raises(ScenarioError) as bad:
        scenario_from_dict(_scenario({"name": "ext_compute_only", "steps": 0}))
    assert bad.value.field == "policy.steps"


def test_a_new_fault_model_is_one_file(import_new_file):
    import_new_file("ext_policy2", POLICY_MODULE.replace("ext_compute_only", "ext_compute_2"))
    import_new_file("ext_fault", FAULT_MODULE)
    assert components.describe()["failures"]["ext_crash_at"] == ["node", "at_s"]
    scenario = scenario_from_dict(_scenario(
        {"name": "ext_compute_2", "steps": 10, "step": "1s"},
        {"failures": {"model": "ext_crash_at", "node": 1, "at": "3.5s"}}))
    result = run(scenario)
    events = result.recorder.events()
    failures = events[events.kind == "failure"]
    assert list(zip(failures.time_s, failures.node)) == [(3.5, 1)]
    assert result.steps == 10                           # node 0 carries on alone
    with pytest.raises(ScenarioError) as bad:
        scenario_from_dict(_scenario({"name": "ext_compute_2"},
                                     {"failures": {"model": "ext_crash_at", "node": 1,
                                                   "at": 3}}))
    assert bad.value.field == "faults.failures[0].at"   # a bare number for a duration


# ---------------------------------------------------------------- the documented examples

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _documented_block(heading: str) -> str:
    """The first ``python`` code block under ``heading`` in docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made by the test vanish after it (the documented names are generic)."""
    components.names("policy")  # the built-ins are registered first
    for kind in ("policy", "failures"):
        monkeypatch.setitem(components._REGISTRY, kind, dict(components._REGISTRY[kind]))


def test_the_documented_policy_example_is_one_working_file(import_new_file, own_registry):
    """docs/architecture.md's policy contract, copied into a file as it is, registers, takes
    its units and names its field; its hooks are empty, so the run ends at once."""
    import_new_file("doc_my_method", _documented_block("### Policy contract"))
    assert components.describe()["policy"]["my_method"] == ["inner_steps", "sync_timeout_s"]
    scenario = scenario_from_dict(_scenario({"name": "my_method", "sync_timeout": "45s"}))
    assert scenario.policy.config.sync_timeout_s == 45.0
    assert run(scenario).stop_reason == "policy_done"
    with pytest.raises(ScenarioError) as bad:
        scenario_from_dict(_scenario({"name": "my_method", "inner_steps": 0}))
    assert (bad.value.field, bad.value.message) == ("policy.inner_steps", "H must be >= 1, got 0")


def test_the_documented_fault_model_example_is_one_working_file(import_new_file, own_registry):
    """docs/architecture.md's fault model, copied into a file as it is, runs from the scenario
    line the page gives."""
    import_new_file("ext_policy3", POLICY_MODULE.replace("ext_compute_only", "ext_compute_3"))
    import_new_file("doc_crash_at", _documented_block("### Fault model contract"))
    scenario = scenario_from_dict(_scenario(
        {"name": "ext_compute_3", "steps": 10, "step": "1s"},
        {"failures": {"model": "crash_at", "node": 1, "at": "5s"}}))
    events = run(scenario).recorder.events()
    failures = events[events.kind == "failure"]
    assert list(zip(failures.time_s, failures.node)) == [(5.0, 1)]
    with pytest.raises(ScenarioError) as bad:
        scenario_from_dict(_scenario({"name": "ext_compute_3"},
                                     {"failures": {"model": "crash_at", "node": 1, "at": "-1s"}}))
    assert bad.value.field.startswith("faults.failures[0].at")
