"""A tiny pipeline scenario and a way to force failures at chosen times."""

from __future__ import annotations

from policies.recovery.failures import StageFailure
from sim.config import ClusterConfig, FaultsConfig, NetworkConfig, RunConfig, Scenario
from sim.faults.stages import StageFailuresConfig
from sim.policy import get_policy
from sim.runner import run
from workloads import WorkloadConfig

BANDWIDTH_BPS = 125e6
LATENCY_S = 0.01
WORKLOAD = WorkloadConfig(learner="tiny-llama", d_model=16, n_layers=4, n_heads=2, batch=4,
                          seq=16, lr=1e-2, warmup_steps=2, timing="llama-125m", eval_batches=1)
PIPELINE = dict(num_stages=5, replicas_per_stage=2, microbatches_per_replica=1, forward_s=0.5)
"""The authors' layout: stage 0 holds the embedding and head, stages 1-4 one block each."""


NO_STAGE_FAILURES = StageFailuresConfig(p_hour=0.0)
"""Stages 1-4 can fail (stage 0 is exempt), but none does unless a test forces it."""


def scenario(until_s: float = 60.0, seed: int = 0, eval_every_s: float | None = None,
             faults: StageFailuresConfig | None = NO_STAGE_FAILURES,
             num_nodes: int = 11) -> Scenario:
    """Five stages x two replicas + a store node, 1 Gbit/s access links, no topology core.

    ``faults``: the ``[faults]`` stage-failure model every method faces (``None``: none).
    Fluid transfers: the tests force failures at instants chosen from, and compare recovery
    times with, the fluid transfer time (latency + bytes / rate).
    """
    return Scenario(
        name="tiny-pipeline", seed=seed,
        cluster=ClusterConfig(num_nodes=num_nodes, device="h100"),
        faults=FaultsConfig(failures=[faults] if faults is not None else []),
        network=NetworkConfig(model="maxmin", transport="fluid", topology="uniform",
                              uplink_Bps=BANDWIDTH_BPS,
                              downlink_Bps=BANDWIDTH_BPS, access_latency_s=LATENCY_S),
        workload=WORKLOAD,
        run=RunConfig(until_s=until_s, eval_every_s=eval_every_s))


def forced(policy_cls: type, failures: list[tuple[float, int]], rejoin_s: float = 2.0) -> type:
    """``policy_cls`` whose failure schedule is exactly ``(time_s, stage)`` of ``failures``."""

    class Forced(policy_cls):
        def setup(self, ctx):
            super().setup(ctx)
            self.pipe.schedule = [StageFailure(time_s=t, stage=s, rejoin_s=t + rejoin_s)
                                  for t, s in failures]

    Forced.name = policy_cls.name
    return Forced


def run_policy(name: str, *, until_s: float = 60.0, failures=None, seed: int = 0,
               strategy_cls: type | None = None, rejoin_s: float = 2.0, num_nodes: int = 11,
               faults: StageFailuresConfig | None = NO_STAGE_FAILURES, **params):
    """Run policy ``name`` on the tiny pipeline; returns (result, policy).

    ``failures``: force exactly these ``(time_s, stage)`` failures (replacements join
    ``rejoin_s`` later); ``faults``: the scenario's stage-failure model.
    """
    cls = get_policy(name)
    if failures is not None:
        cls = forced(cls, failures, rejoin_s)
    if strategy_cls is not None:
        cls = type(cls.__name__, (cls,), {"Strategy": strategy_cls})
        cls.name = name
    policy = cls(**{**PIPELINE, **params})
    result = run(scenario(until_s, seed, faults=faults, num_nodes=num_nodes), policy)
    return result, policy
