"""Coded data-parallel training: exact decoding on real tensors, and the policies on the engine."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.gradient_coding.coded_training import GCApprox, partition_gradients
from policies.gradient_coding.codes import expander_error_bound, make_code
from sim.config import ClusterConfig, FaultsConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.errors import ScenarioError
from sim.runner import run
from workloads import WorkloadConfig, build_workload

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


# ---------------------------------------------------------------- exactness on real tensors

@pytest.mark.parametrize("learner,data", [("mlp", "digits"), ("tiny-llama", "synthetic-markov")])
@pytest.mark.parametrize("scheme,n,s", [("cyclic", 4, 1), ("cyclic", 5, 2), ("fractional", 6, 2)])
def test_decoded_gradient_is_the_full_batch_gradient(learner, data, scheme, n, s):
    wl = build_workload(WorkloadConfig(learner=learner, data=data, batch=4, seq=16),
                        num_replicas=n + 1, seed=0)
    parts = [wl.make_learner(j) for j in range(n)]
    params = wl.make_learner(n).get_flat() + 0.01          # any point, not just the init
    G, _ = partition_gradients(parts, params)                # (n, d) float64 of float32 grads
    # Oracle: torch's gradient of the mean loss over all n microbatches at once.
    ref = wl.make_learner(n)
    ref.set_flat(params)
    ref.zero_grad()
    x = torch.cat([p.last_batch[0] for p in parts])
    y = torch.cat([p.last_batch[1] for p in parts])
    ref.loss_fn(ref.forward(x), y).backward()
    full = ref.get_flat_grad().double().numpy()

    code = make_code(scheme, n, s, rng=np.random.default_rng(1))
    coded = code.encode(G)                                   # what the n workers send
    scale = np.abs(full).max()
    for F in itertools.combinations(range(n), n - s):
        decoded = code.combine(code.decode(list(F)), coded)
        np.testing.assert_allclose(decoded, G.sum(axis=0), rtol=0, atol=1e-9 * scale * n)
        np.testing.assert_allclose(decoded / n, full, rtol=0, atol=2e-6 * scale)


# ---------------------------------------------------------------- the policies on the engine

def small_scenario(policy: str, *, steps: int = 12, stragglers=None, speed=None,
                   nodes: int = 7, **params) -> Scenario:
    """6 workers + a master; llama-125m timing on T4s, a real MLP on digits."""
    return Scenario(
        name="gc-small", seed=2,
        cluster=ClusterConfig(num_nodes=nodes, device="t4", speed=speed or {}),
        network=NetworkConfig(model="maxmin", topology="uniform", uplink_Bps=12.5e9,
                              downlink_Bps=12.5e9, access_latency_s=1e-3),
        faults=FaultsConfig(stragglers=stragglers or {}),
        workload=WorkloadConfig(learner="mlp", data="digits", batch=16, seq=256,
                                timing="llama-125m", param_dtype="bf16"),
        policy=PolicyConfig(name=policy, params=params),
        run=RunConfig(max_steps=steps))


def losses(result) -> np.ndarray:
    h = result.history
    return h[h.metric == "loss"].sort_values("step").value.to_numpy()


STRAGGLY = {"model": "bimodal", "p": 0.3, "slowdown": 6.0}


def test_exact_codes_train_exactly_like_uncoded():
    base = run(small_scenario("gc_uncoded", stragglers=STRAGGLY))
    for policy in ("gc_fractional", "gc_cyclic"):
        coded = run(small_scenario(policy, stragglers=STRAGGLY, s=2))
        np.testing.assert_allclose(losses(coded), losses(base), rtol=1e-5)
        assert coded.sim_time_s != base.sim_time_s          # same math, different clock
    ignore = run(small_scenario("gc_ignore_stragglers", stragglers=STRAGGLY, s=2))
    assert not np.allclose(losses(ignore)[1:], losses(base)[1:], rtol=1e-5)


def test_worker_compute_scales_with_load_and_master_has_its_own_links():
    from workloads import get_device, preset_timing
    timing = preset_timing("llama-125m", bytes_per_param=2)
    t4 = get_device("t4")
    for policy, params, parts in [("gc_uncoded", {}, 1), ("gc_cyclic", {"s": 2}, 3),
                                  ("gc_fractional", {"s": 1}, 2)]:
        result = run(small_scenario(policy, steps=5, **params))
        iv = result.recorder.intervals()
        tasks = iv[(iv.label == "coded_grad") & (iv.kind == "busy")]
        assert set(tasks.node) <= set(range(6))             # node 6 is the master
        durations = (tasks.end_s - tasks.start_s).to_numpy()
        # no stragglers, speed 1: each task is one step of (s+1) microbatches
        assert durations == pytest.approx(timing.step_seconds(t4, parts * 16, 256), rel=1e-9)
        sent = result.recorder.bytes_by_node().set_index("node").sent
        assert sent[6] == pytest.approx(5 * 6 * timing.param_bytes)   # the model, every round
        responders = result.history.query("metric == 'responders'").value
        assert responders.max() <= 6 and responders.min() >= (6 if parts == 1 else 1)


def test_cyclic_waits_for_n_minus_s_and_fractional_for_one_per_group():
    # Two persistently slow workers (10x): cyclic (s=2) and fractional (s=2) never wait for
    # them; uncoded always does.
    speed = {"dist": "list", "values": [1, 0.1, 1, 1, 0.1, 1, 1]}
    times = {p: run(small_scenario(p, speed=speed, **kw)).sim_time_s
             for p, kw in [("gc_uncoded", {}), ("gc_cyclic", {"s": 2}),
                           ("gc_fractional", {"s": 2})]}
    assert times["gc_cyclic"] < 0.6 * times["gc_uncoded"]
    assert times["gc_fractional"] < 0.6 * times["gc_uncoded"]


def test_approximate_decoding_reports_its_error():
    approx = run(small_scenario("gc_approx", stragglers=STRAGGLY, s=1, wait_for=3))
    err = approx.history.query("metric == 'decode_error'").value
    assert (err > 1e-3).all()                               # 3 < n - s = 5 responders
    assert approx.history.query("metric == 'responders'").value.eq(3).all()
    exact = run(small_scenario("gc_approx", stragglers=STRAGGLY, s=1, wait_for=5))
    assert exact.history.query("metric == 'decode_error'").value.max() < 1e-12
    policy = GCApprox(s=2, wait_for=4, code="expander")
    expander = run(small_scenario("gc_approx", stragglers=STRAGGLY), policy)
    err = expander.history.query("metric == 'decode_error'").value
    assert (policy.code.B.sum(axis=1) == 3).all() and expander.steps == 12
    assert err.max() > 1e-6 and err.max() <= expander_error_bound(policy.code.B, 4) + 1e-9
    assert not np.allclose(losses(expander), losses(approx))     # a different code


def test_runs_are_deterministic():
    a = run(small_scenario("gc_cyclic", stragglers=STRAGGLY, s=2, steps=6))
    b = run(small_scenario("gc_cyclic", stragglers=STRAGGLY, s=2, steps=6))
    assert a.trace_hash() == b.trace_hash()
    np.testing.assert_array_equal(losses(a), losses(b))


@pytest.mark.parametrize("policy,params,field", [
    ("gc_fractional", {"s": 3}, "s"),                 # 4 does not divide 6 workers
    ("gc_cyclic", {"s": 6}, "s"),
    ("gc_cyclic", {"master": 9}, "master"),
    ("gc_approx", {"s": 1, "wait_for": 7}, "wait_for"),
    ("gc_approx", {"code": "mds"}, "code"),
])
def test_bad_parameters_name_the_field(policy, params, field):
    # refused before simulated time, naming the key as the scenario file spells it
    with pytest.raises(ScenarioError, match=rf"^policy\.{field}: "):
        run(small_scenario(policy, **params))


def test_worker_crashes_are_survived_and_coding_rides_through_them():
    # Workers crash (Poisson, mean up time 20 s) and stay down 15 s; the master (node 6) never.
    crashes = [{"model": "poisson", "rate_per_s": 0.05, "downtime_s": 15.0, "exempt": [6]}]
    steps = {}
    for policy, params in [("gc_uncoded", {}), ("gc_cyclic", {"s": 2})]:
        scen = dataclasses.replace(
            small_scenario(policy, steps=10_000, **params),
            faults=FaultsConfig(failures=crashes),
            run=RunConfig(until_s=60.0))
        result = run(scen)
        assert result.recorder.events().query("kind == 'failure'").shape[0] > 0
        steps[policy] = result.steps
    assert steps["gc_cyclic"] > steps["gc_uncoded"] > 0


def test_timing_only_mode_keeps_the_clock():
    real = run(small_scenario("gc_cyclic", stragglers=STRAGGLY, s=2, steps=8))
    timing = small_scenario("gc_cyclic", stragglers=STRAGGLY, s=2, steps=8)
    timing = dataclasses.replace(timing, run=dataclasses.replace(timing.run, timing_only=True))
    fake = run(timing)
    assert fake.sim_time_s == pytest.approx(real.sim_time_s, rel=1e-12)
    assert fake.final_loss is None and real.final_loss is not None


def test_master_and_send_model_parameters():
    from workloads import preset_timing
    timing = preset_timing("llama-125m", bytes_per_param=2)
    moved = run(small_scenario("gc_cyclic", steps=4, s=1, master=0))
    sent = moved.recorder.bytes_by_node().set_index("node").sent
    assert sent[0] == pytest.approx(4 * 6 * timing.param_bytes)      # node 0 is the master
    iv = moved.recorder.intervals()
    assert 0 not in set(iv[(iv.label == "coded_grad") & (iv.kind == "busy")].node)
    quiet = run(small_scenario("gc_cyclic", steps=4, s=1, send_model=False))
    assert quiet.recorder.bytes_by_node().set_index("node").sent[6] == 0
    assert quiet.sim_time_s < run(small_scenario("gc_cyclic", steps=4, s=1)).sim_time_s
