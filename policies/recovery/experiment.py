"""The family's headline experiment: five methods, one pipeline, the same stage failures.

Rate scaling (how a short simulated run sees the paper's failure rates)
-----------------------------------------------------------------------
The CheckFree reference (124M model) draws failures once per iteration with
``p_iter = 1 - (1 - p_hour)^(T_ref / 3600)``, ``T_ref`` about 20.5 s (its 10%/h config uses
``p_iter = 6e-4``), and checkpoints every 100 iterations; its runs last ~10^5 iterations. A CI run
lasts tens of iterations, so time is compressed by a factor ``kappa`` for failures:

- each simulated iteration carries the failure exposure of ``kappa`` reference iterations:
  ``time_scale = kappa * T_ref / T_iter`` (``T_iter``: this pipeline's failure-free iteration
  time, measured by a ``no_failure`` run);
- the checkpoint interval shrinks by the same factor, ``C = max(1, round(100 / kappa))``, so the
  expected number of failures per checkpoint interval (what makes checkpointing lose progress)
  stays the reference's;
- the replacement's rejoin delay is one failure-free iteration.

Everything else (compute, transfers, the losses) is not scaled.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sim.config import ClusterConfig, NetworkConfig, RunConfig, Scenario
from sim.policy import get_policy

from policies.recovery.policies import RECOVERY_POLICIES

REFERENCE_ITERATION_S = 20.5
"""Seconds of failure exposure per iteration in the CheckFree reference (124M, 10%/h -> 6e-4)."""
REFERENCE_CHECKPOINT_EVERY = 100
"""Iterations between checkpoints in the CheckFree reference."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FamilySetup:
    """One point of the family comparison.

    p_hour:
        Failure probability per stage per hour (0.05, 0.10, 0.16).
    kappa:
        Time compression of the failure process (reference iterations per simulated iteration).
    seed:
        Root seed of the scenario (failures, data, initial weights).
    until_s:
        Simulated seconds per run.
    eval_every_s:
        Simulated seconds between evaluations.
    target_loss:
        Held-out loss whose first crossing time is compared.
    workload:
        ``workloads.WorkloadConfig`` of the real model and of the timing.
    pipeline:
        Pipeline parameters shared by all five (``num_stages``, ``forward_s``, ...).
    num_nodes:
        Cluster size (``num_stages x replicas_per_stage + 1``: the last is the store).
    uplink_Bps:
        Access bandwidth of every node, both directions, bytes/s.
    latency_s:
        One-way access latency, seconds.
    """

    p_hour: float = 0.10
    kappa: float = 30.0
    seed: int = 0
    until_s: float = 600.0
    eval_every_s: float = 10.0
    target_loss: float | None = None
    workload: Any = None
    pipeline: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_nodes: int = 9
    uplink_Bps: float = 125e6
    latency_s: float = 0.01


def scenario_of(setup: FamilySetup) -> Scenario:
    """The shared scenario (no policy: each run passes its own policy object)."""
    return Scenario(
        name=f"checkfree-{round(setup.p_hour * 100)}pct",
        seed=setup.seed,
        cluster=ClusterConfig(num_nodes=setup.num_nodes, device="h100"),
        network=NetworkConfig(model="maxmin", topology="uniform", uplink_Bps=setup.uplink_Bps,
                              downlink_Bps=setup.uplink_Bps, access_latency_s=setup.latency_s),
        workload=setup.workload,
        run=RunConfig(until_s=setup.until_s, eval_every_s=setup.eval_every_s,
                      target_loss=setup.target_loss),
    )


def scaled_parameters(setup: FamilySetup, iteration_s: float) -> dict[str, Any]:
    """Failure and checkpoint parameters after the time compression (module docstring)."""
    if not iteration_s > 0:
        raise ValueError(f"iteration_s={iteration_s}: must be > 0")
    every = max(1, round(REFERENCE_CHECKPOINT_EVERY / setup.kappa))
    return {
        "p_hour": setup.p_hour,
        "time_scale": setup.kappa * REFERENCE_ITERATION_S / iteration_s,
        "failure_period_s": iteration_s,
        "rejoin_delay_s": iteration_s,
        "checkpoint_every": every,
        "edge_checkpoint_every": every,
    }


def params_for(name: str, setup: FamilySetup, scaled: dict[str, Any]) -> dict[str, Any]:
    """The parameters policy ``name`` takes: the shared pipeline plus what its Config has."""
    fields = {f.name for f in dataclasses.fields(get_policy(name).Config)}
    merged = {**setup.pipeline, **scaled}
    return {k: v for k, v in merged.items() if k in fields}


def run_family(setup: FamilySetup, names: tuple[str, ...] = RECOVERY_POLICIES) -> dict[str, Any]:
    """Run every method of ``names`` on ``setup``; ``no_failure`` first (it sets the clock).

    Returns name -> ``sim.runner.Result``; each result's ``extra`` holds the scaled parameters
    and the policy's own summary (failures, recoveries, rollback steps).
    """
    from sim.runner import run

    scenario = scenario_of(setup)
    base = run(scenario, get_policy("no_failure")(**params_for("no_failure", setup, {})))
    iteration_s = base.sim_time_s / max(base.steps, 1)
    scaled = scaled_parameters(setup, iteration_s)
    results = {}
    for name in names:
        if name == "no_failure":
            result = base
        else:
            policy = get_policy(name)(**params_for(name, setup, scaled))
            result = run(scenario, policy)
        result.extra.update({"scaled": scaled, "iteration_s": iteration_s,
                             **result_summary(result)})
        results[name] = result
    return results


def result_summary(result: Any) -> dict[str, Any]:
    """Failures, recoveries, rollbacks and steps of one run (from its recorded events)."""
    events = result.recorder.events()
    kinds = events["kind"].tolist() if len(events) else []
    return {
        "steps": result.steps,
        "failures": kinds.count("failure"),
        "recoveries": kinds.count("recovery"),
        "rollbacks": kinds.count("rollback"),
        "lost_iterations": kinds.count("iteration_lost"),
    }


def time_to_loss(result: Any, target: float) -> float:
    """First simulated time the evaluation loss is at or below ``target`` (``inf``: never)."""
    curve = result.loss_curve("eval_loss")
    hit = curve[curve.value <= target]
    return float(hit.time_s.iloc[0]) if len(hit) else math.inf
