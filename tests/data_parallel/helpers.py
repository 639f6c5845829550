"""Shared helpers for the data-parallel tests: tiny scenarios, scenario files, failure traces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sim.policy import get_policy
from sim.runner import run
from sim.scenario import ScenarioBuilder, load, resolve_policies

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def tiny_scenario(policy: str, *, nodes: int = 4, steps: int | None = 20, timing_only=False,
                  failures=None, workload=None, network=None, run_extra=None, seed: int = 1,
                  **params):
    """A small, fast scenario: tiny proxy model, 1 Gbit/s links 10 ms apart.

    The transport is ``fluid``: the tests check the methods' timings against the collectives'
    closed forms (``sim.collectives.*_cost``), which are fluid's; ``network={"transport":
    "tcp"}`` gives the product's default.
    """
    wl = dict(learner="tiny-llama", timing="same", data="synthetic-markov", batch=4, seq=16,
              d_model=16, n_layers=2, n_heads=2)
    wl.update(workload or {})
    net = dict(model="maxmin", transport="fluid", topology="uniform", uplink="1Gbit/s",
               downlink="1Gbit/s", topology_params={"latency": "10ms"})
    net.update(network or {})
    run_section = dict(timing_only=timing_only)
    if steps is not None:
        run_section["steps"] = steps
    run_section.update(run_extra or {})
    b = (ScenarioBuilder("dp-test", seed=seed).cluster(nodes=nodes, device="h100")
         .network(**net).workload(**wl).policy(policy, **params).run(**run_section))
    if failures:
        b = b.faults(failures=failures)
    return b.build()


def run_policy(scenario, policy=None, **params):
    """Run and return ``(result, policy instance)`` so tests can look inside the policy."""
    name = policy or scenario.policy.name
    params = params or (scenario.policy.params if name == scenario.policy.name else {})
    pol = get_policy(name)(**params)
    return run(scenario, pol), pol


def run_file(name: str, overrides=(), labels=None):
    """Run the policies of ``scenarios/<name>.toml``; return ``{label: (result, policy)}``."""
    spec = load(SCENARIOS / f"{name}.toml", list(overrides))
    out = {}
    for label, pc in resolve_policies(spec):
        if labels is not None and label not in labels:
            continue
        pol = get_policy(pc.name)(**pc.params)
        out[label] = (run(spec.scenario, pol), pol)
    return out


def crash_trace(tmp_path: Path, rows: list[tuple[float, int, float]]) -> list[dict]:
    """A failure spec replaying crashes ``(time_s, node, downtime_s)`` from a CSV trace."""
    path = tmp_path / "crashes.csv"
    lines = ["time_s,kind,nodes,duration_s"]
    lines += [f"{t},crash,{n},{d}" for t, n, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return [{"model": "trace", "path": str(path)}]


def with_workload(scenario, **changes):
    """The scenario with workload fields replaced (for values a file cannot say, e.g. None)."""
    return dataclasses.replace(scenario, workload=dataclasses.replace(scenario.workload, **changes))
