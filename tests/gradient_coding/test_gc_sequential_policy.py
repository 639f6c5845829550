"""GC, SR-SGC and M-SGC on the engine: closed-form round times, the guarantee, the headline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from policies.gradient_coding.sequential import gc_load, m_sgc_load, sr_sgc_load
from policies.gradient_coding.sequential_policy import MSGC, SRSGC, GCSequential
from sim.config import ClusterConfig, FaultsConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.errors import ScenarioError
from sim.runner import run
from workloads import WorkloadConfig, get_device, preset_timing

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
N = 12


def scenario(policy: str, *, stragglers=None, bandwidth_Bps=None, latency_s=0.0,
             **params) -> Scenario:
    """12 workers + a master; llama-125m timing on T4s; four MLPs on digits."""
    params = {"B": 1, "W": 2, "lam": 2, "num_jobs": 12, "num_models": 3, **params}
    return Scenario(
        name="sgc-small", seed=4,
        cluster=ClusterConfig(num_nodes=N + 1, device="t4", compute_slots=4),
        network=NetworkConfig(model="ideal", topology="uniform", uplink_Bps=bandwidth_Bps,
                              downlink_Bps=bandwidth_Bps, access_latency_s=latency_s),
        faults=FaultsConfig(stragglers=stragglers or {}),
        workload=WorkloadConfig(learner="mlp", data="digits", batch=16, seq=256,
                                timing="llama-125m", param_dtype="bf16"),
        policy=PolicyConfig(name=policy, params=params),
        run=RunConfig(max_steps=params["num_jobs"]))


def test_round_times_are_load_times_job_time_without_stragglers_or_network():
    job_s = N * preset_timing("llama-125m", bytes_per_param=2).step_seconds(get_device("t4"),
                                                                            16, 256)
    J = 12
    loads = {"gc_sequential": gc_load(N, 2), "sr_sgc": sr_sgc_load(N, 1, 2, 2),
             "m_sgc": m_sgc_load(N, 1, 2, 2)}
    for policy, load_ in loads.items():
        result = run(scenario(policy, send_model=False))
        # every round of a full schedule runs `load` of a job; M-SGC's first round runs only
        # its D1 slot and its last only its D2 slot, which add up to one full round.
        assert result.sim_time_s == pytest.approx(J * load_ * job_s, rel=1e-9), policy
        assert result.steps == J


def test_conformant_bursty_pattern_never_makes_the_master_wait():
    bursty = {"model": "bursty", "B": 1, "W": 2, "lam": 2, "num_rounds": 40, "slowdown": 4.0}
    for cls in (GCSequential, SRSGC, MSGC):
        pol = cls(B=1, W=2, lam=2, num_jobs=12, num_models=3)
        result = run(scenario(cls.name, stragglers=bursty), pol)
        h = result.history
        assert h.query("metric == 'stragglers'").value.sum() > 0        # stragglers were left
        assert h.query("metric == 'waited_for_all'").value.sum() == 0   # ... and they all fit
        assert sorted(pol.schedule.decoded_round) == list(range(12))
        assert all(j <= r <= j + pol.schedule.delay
                   for j, r in pol.schedule.decoded_round.items())


def test_nonconforming_stragglers_make_the_master_wait_for_all():
    heavy = {"model": "bimodal", "p": 0.4, "slowdown": 8.0}
    result = run(scenario("gc_sequential", stragglers=heavy, lam=1))
    assert result.history.query("metric == 'waited_for_all'").value.sum() > 0
    assert result.steps == 12


def test_every_scheme_trains_the_same_models():
    finals = {p: run(scenario(p, stragglers={"model": "bimodal", "p": 0.2, "slowdown": 5.0}))
              for p in ("gc_sequential", "sr_sgc", "m_sgc")}
    losses = [r.final_loss for r in finals.values()]
    assert losses[0] is not None and np.allclose(losses, losses[0], rtol=1e-6)
    assert len({r.sim_time_s for r in finals.values()}) == 3


@pytest.mark.parametrize("policy,params,field", [
    ("m_sgc", {"W": 3, "B": 2, "num_models": 3}, "num_models"),     # T = W-2+B = 3
    ("sr_sgc", {"W": 4, "B": 2}, "B"),                             # 2 does not divide 3
    ("gc_sequential", {"lam": 12}, "lam"),
    ("m_sgc", {"mu": -1.0}, "mu"),
])
def test_bad_parameters_name_the_field(policy, params, field):
    # refused before simulated time, naming the key as the scenario file spells it
    with pytest.raises(ScenarioError, match=rf"^policy\.{field}: "):
        run(scenario(policy, **params))


def test_crashed_workers_are_stragglers_and_retry_when_back():
    crashes = [{"model": "poisson", "rate_per_s": 0.3, "downtime_s": 1.0, "exempt": [N]}]
    for policy in ("gc_sequential", "m_sgc"):
        scen = dataclasses.replace(scenario(policy, lam=2),
                                   faults=FaultsConfig(failures=crashes),
                                   run=RunConfig(max_steps=12, until_s=100.0))  # failure horizon
        result = run(scen)
        assert result.recorder.events().query("kind == 'failure'").shape[0] > 0
        assert result.steps == 12 and result.stop_reason in ("max_steps", "policy_done")


def test_parameters_change_behaviour():
    base = run(scenario("m_sgc", send_model=False))
    # job_batches scales every round's compute
    double = run(scenario("m_sgc", send_model=False, job_batches=2 * N))
    assert double.sim_time_s == pytest.approx(2 * base.sim_time_s, rel=1e-9)
    # mu moves the threshold: with mu = 0 any later arrival is a straggler
    slow = {"model": "bimodal", "p": 0.2, "slowdown": 1.5}
    strict = run(scenario("gc_sequential", stragglers=slow, mu=0.0))
    lenient = run(scenario("gc_sequential", stragglers=slow, mu=1.0))
    count = lambda r: r.history.query("metric == 'stragglers'").value.sum()  # noqa: E731
    assert count(strict) > 0 and count(lenient) == 0
    # master: node 0 instead of the last; send_model: the parameters go out every round
    moved = run(scenario("gc_sequential", master=0))
    sent = moved.recorder.bytes_by_node().set_index("node").sent
    timing = preset_timing("llama-125m", bytes_per_param=2)
    assert sent[0] == pytest.approx(12 * N * timing.param_bytes)
    assert sent[N] == pytest.approx(12 * timing.grad_bytes)   # node 12 is a worker now
    # num_models: how many models the jobs are spread over
    one, three = (run(scenario("gc_sequential", num_models=m)) for m in (1, 3))
    assert one.final_loss != pytest.approx(three.final_loss, rel=1e-6)
