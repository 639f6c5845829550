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

from policies.recovery.policies import RECOVERY_POLICIES
from sim.config import ClusterConfig, FaultsConfig, NetworkConfig, RunConfig, Scenario
from sim.faults.stages import StageFailuresConfig
from sim.policy import get_policy

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
    device:
        Device profile of every node (``"emulator"``: the reference's seconds per sample per
        layer; only used when ``pipeline`` has no ``forward_s``).
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
    device: str = "h100"


def scenario_of(setup: FamilySetup, failures: StageFailuresConfig | None = None) -> Scenario:
    """Build the shared scenario, with its stage failures (no policy: each run passes its own)."""
    return Scenario(
        name=f"checkfree-{round(setup.p_hour * 100)}pct",
        seed=setup.seed,
        cluster=ClusterConfig(num_nodes=setup.num_nodes, device=setup.device),
        faults=FaultsConfig(failures=[failures] if failures is not None else []),
        network=NetworkConfig(model="maxmin", topology="uniform", uplink_Bps=setup.uplink_Bps,
                              downlink_Bps=setup.uplink_Bps, access_latency_s=setup.latency_s),
        workload=setup.workload,
        run=RunConfig(until_s=setup.until_s, eval_every_s=setup.eval_every_s,
                      target_loss=setup.target_loss),
    )


def scaled_failures(setup: FamilySetup, iteration_s: float) -> StageFailuresConfig:
    """The ``[faults]`` stage model after the time compression (module docstring)."""
    if not iteration_s > 0:
        raise ValueError(f"iteration_s={iteration_s}: must be > 0")
    return StageFailuresConfig(p_hour=setup.p_hour,
                               time_scale=setup.kappa * REFERENCE_ITERATION_S / iteration_s,
                               failure_period_s=iteration_s, rejoin_delay_s=iteration_s)


def scaled_checkpoints(setup: FamilySetup) -> dict[str, Any]:
    """The checkpoint intervals after the same compression: ``max(1, round(100 / kappa))``."""
    every = max(1, round(REFERENCE_CHECKPOINT_EVERY / setup.kappa))
    return {"checkpoint_every": every, "edge_checkpoint_every": every}


def params_for(name: str, setup: FamilySetup, scaled: dict[str, Any]) -> dict[str, Any]:
    """Select the parameters policy ``name`` takes: the shared pipeline plus what its Config has."""
    fields = {f.name for f in dataclasses.fields(get_policy(name).Config)}
    merged = {**setup.pipeline, **scaled}
    return {k: v for k, v in merged.items() if k in fields}


def run_family(setup: FamilySetup, names: tuple[str, ...] = RECOVERY_POLICIES, *,
               baseline: Any = None) -> dict[str, Any]:
    """Run every method of ``names`` on ``setup``.

    ``no_failure`` runs first (or ``baseline``, a finished ``no_failure`` run of the same
    scenario, is reused: it does not depend on the failure rate): its mean iteration time sets
    the failure clock (:func:`scaled_failures`). Every other method then runs on one scenario
    whose ``[faults]`` hold those stage failures. Returns name -> ``sim.runner.Result``; each
    result's ``extra`` holds the scaled parameters and counts of failures, recoveries and
    rollbacks.
    """
    from sim.runner import run

    if baseline is None:
        baseline = run(scenario_of(setup),
                       get_policy("no_failure")(**params_for("no_failure", setup, {})))
    iteration_s = baseline.sim_time_s / max(baseline.steps, 1)
    failures = scaled_failures(setup, iteration_s)
    checkpoints = scaled_checkpoints(setup)
    scenario = scenario_of(setup, failures)
    scaled = {**{f.name: getattr(failures, f.name) for f in dataclasses.fields(failures)
                 if f.name != "exempt"}, **checkpoints}
    results = {}
    for name in names:
        if name == "no_failure":
            result = baseline
        else:
            policy = get_policy(name)(**params_for(name, setup, checkpoints))
            result = run(scenario, policy)
        result.extra.update({"scaled": scaled, "iteration_s": iteration_s,
                             **result_summary(result)})
        results[name] = result
    return results


def full_setup(p_hour: float, *, seed: int = 0) -> FamilySetup:
    """Describe the full comparison of ``scenarios/checkfree-*.toml`` (minutes per method on a CPU).

    A 4-stage x 2-replica pipeline (2 microbatches of 8 x 32 tokens per data node per
    iteration) of a 32-wide, 8-block tiny LLaMA; LLaMA-125M sizes on the wire and the
    emulator's compute rule (0.055 s per sample per layer forward: 1.32 s per stage); 800 Mbit/s
    access links, 10 ms; ``kappa = 30`` (checkpoint every 3 iterations); 2400 simulated s.
    """
    from workloads import WorkloadConfig

    workload = WorkloadConfig(learner="tiny-llama", d_model=32, n_layers=8, n_heads=4, batch=8,
                              seq=32, lr=3e-3, warmup_steps=5, timing="llama-125m",
                              eval_batches=4)
    return FamilySetup(
        p_hour=p_hour, kappa=30.0, seed=seed, until_s=2400.0, eval_every_s=30.0,
        target_loss=1.3, workload=workload, device="emulator", uplink_Bps=100e6,
        pipeline=dict(num_stages=4, replicas_per_stage=2, microbatches_per_replica=2))


def ci_setup(p_hour: float, *, seed: int = 0) -> FamilySetup:
    """Describe the CI-size comparison (a few seconds per method on one CPU core).

    A 4-stage x 2-replica pipeline of a 16-wide, 4-block tiny LLaMA on the synthetic Markov
    language (optimum loss ~1.1 nats), priced as LLaMA-125M on the wire (a stage's weights are
    ~87 MB) with emulator-style compute (``forward_s = 0.5`` s per stage per microbatch);
    1 Gbit/s access links; ``kappa = 60`` (checkpoint every 2 iterations); 210 simulated s
    (about 27 failure-free iterations); target loss 2.0 nats.
    """
    from workloads import WorkloadConfig

    workload = WorkloadConfig(learner="tiny-llama", d_model=16, n_layers=4, n_heads=2, batch=8,
                              seq=16, lr=1e-2, warmup_steps=3, timing="llama-125m",
                              eval_batches=2)
    return FamilySetup(
        p_hour=p_hour, kappa=60.0, seed=seed, until_s=210.0, eval_every_s=5.0,
        target_loss=2.0, workload=workload,
        pipeline=dict(num_stages=4, replicas_per_stage=2, microbatches_per_replica=1,
                      forward_s=0.5))


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


def main(argv: list[str] | None = None) -> int:
    """Print the CI-size times to target: ``python -m experiments.recovery_family``."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description="CI-size recovery comparison, several seeds")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rates", default="0.05,0.10")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for seed in (int(s) for s in args.seeds.split(",")):
        baseline = None
        for p_hour in (float(p) for p in args.rates.split(",")):
            setup = ci_setup(p_hour, seed=seed)
            runs = run_family(setup, baseline=baseline)
            baseline = runs["no_failure"]
            times = {n: time_to_loss(r, setup.target_loss) for n, r in runs.items()}
            failures = runs["checkfree"].extra["failures"]
            print(f"seed={seed} p_hour={p_hour:.2f} failures={failures} time to "
                  f"{setup.target_loss}: " + " ".join(f"{n}={t:.0f}" for n, t in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
