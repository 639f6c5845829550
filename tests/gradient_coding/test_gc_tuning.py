"""The tuning step: emulate every admissible parameter set on probed delays, keep the fastest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from policies.gradient_coding.sequential import m_sgc_load, sr_sgc_load
from policies.gradient_coding.sequential_policy import DelayProbe
from policies.gradient_coding.tuned_compare import probe_scenario, probe_seed
from policies.gradient_coding.tuning import (
    Candidate,
    DelayProfile,
    emulate_candidate,
    fit_profile,
    grid,
    tune,
)
from sim.config import PolicyConfig
from sim.errors import ScenarioError
from sim.runner import run
from sim.scenario import load
from tests.gradient_coding.test_gc_sequential_policy import SCENARIOS


def two_slow_workers() -> DelayProfile:
    """n = 4; workers 2 and 3 answer after 10 s, the others after 1 s; 4 s per unit load."""
    base = np.ones((4, 6))
    base[2:] = 10.0
    return DelayProfile(base_s=base, base_load=0.0, slope_s=4.0)


def test_gc_round_times_on_the_hand_made_table():
    # mu = 1: fast workers answer after 1 + 4 L, slow ones after 10 + 4 L; threshold 2 (1 + 4 L).
    # s = 0: 2 stragglers do not fit, wait for the slowest: 11 s a round; s = 1: 12 s;
    # s = 2: they fit, the round closes at the threshold 8 s; s = 3: 10 s. 4 jobs, 4 rounds.
    profile = two_slow_workers()
    times = {s: emulate_candidate(Candidate(scheme="gc", lam=s), profile, num_jobs=4, mu=1.0)
             for s in range(4)}
    assert times == pytest.approx({0: 44.0, 1: 48.0, 2: 32.0, 3: 40.0})


@pytest.mark.parametrize("max_load,best_s", [(0.5, 0), (0.75, 2), (1.0, 2)])
def test_tuning_picks_the_lowest_emulated_time_among_admissible_loads(max_load, best_s):
    tuning = tune(two_slow_workers(), num_jobs=4, mu=1.0, max_load=max_load, schemes=("gc",))
    assert tuning.best["gc"].candidate.lam == best_s
    assert all(row.load <= max_load for row in tuning.table)
    assert len(tuning.table) == int(max_load * 4)        # s = 0 .. 4 max_load - 1


def test_every_scheme_keeps_its_fastest_admissible_parameter_set():
    rng = np.random.default_rng(0)
    base = 1.0 + rng.pareto(3.0, size=(8, 12))
    profile = DelayProfile(base_s=base, slope_s=20.0)
    tuning = tune(profile, num_jobs=8, mu=1.0, max_load=3 / 8, max_W=3)
    for scheme in ("gc", "sr_sgc", "m_sgc"):
        rows = [r for r in tuning.table if r.candidate.scheme == scheme]
        assert rows and all(r.load <= 3 / 8 + 1e-12 for r in rows)
        assert tuning.best[scheme].total_s == min(r.total_s for r in rows)
        assert all(r.candidate.delay() <= 4 for r in rows)   # 12 rounds - 8 jobs


def test_grid_keeps_the_schemes_rules():
    n = 16
    sr = list(grid("sr_sgc", n, max_load=1.0, max_delay=9, max_W=5))
    assert sr and all((c.W - 1) % c.B == 0 for c in sr)
    assert {(c.B, c.W) for c in sr} == {(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (1, 5), (2, 5),
                                        (4, 5)}
    ms = list(grid("m_sgc", n, max_load=0.1, max_delay=2, max_W=5))
    assert ms and all(c.W - 2 + c.B <= 2 for c in ms)
    assert all(m_sgc_load(n, c.B, c.W, c.lam) <= 0.1 for c in ms)
    assert all(sr_sgc_load(n, c.B, c.W, c.lam) <= 0.2
               for c in grid("sr_sgc", n, max_load=0.2, max_delay=9, max_W=5))


def test_fit_recovers_affine_cells():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 2, size=(5, 7)), rng.uniform(10, 30, size=(5, 7))
    loads = [0.0, 0.25, 0.5]
    probes = [a + load * b for load in loads]
    per_cell = fit_profile(loads, probes, per_cell=True)
    np.testing.assert_allclose(per_cell.base_s, a)
    np.testing.assert_allclose(per_cell.slope_s, b)
    common = fit_profile(loads, probes)                      # the authors' one slope
    assert common.slope_s == pytest.approx(float(b.mean()))


def lambda_scenario(n: int, jobs: int):
    overrides = [f"cluster.nodes={n + 1}", f"run.steps={jobs}", "policies.gc.lam=2"]
    for label in ("gc", "sr_sgc", "m_sgc"):
        overrides += [f"policies.{label}.num_jobs={jobs}"]
    return load(SCENARIOS / "gc-lambda.toml", overrides)


def test_probe_measures_each_round_and_each_worker():
    spec = lambda_scenario(8, 4)
    params = dict(spec.policies)["gc"].params
    profile = probe_scenario(spec.scenario, params, loads=(0.0, 0.25), rounds=5)
    assert profile.base_s.shape == (8, 5) and np.all(profile.base_s > 0.2)
    # every worker's compute at load 0.25 is 1024 samples x 50 ms x its factor (>= 1)
    assert np.all(profile.slope_s >= 4096 * 0.05 - 1e-6)


def test_emulation_on_the_probe_predicts_the_simpy_run_on_the_same_draws():
    # GC's loads are multiples of 1/16, so round(L x 4096) is linear in L and the per-cell fit
    # is exact; run with the probe's seed (same straggler draws), the SimPy policy must take the
    # emulated time (up to the messages, which the probe measured at the same size).
    spec = lambda_scenario(16, 6)
    params = dict(spec.policies)["gc"].params
    profile = probe_scenario(spec.scenario, params, loads=(0.0, 1 / 16, 3 / 16), rounds=6)
    for s in (0, 1, 2):
        emulated = emulate_candidate(Candidate(scheme="gc", lam=s), profile, num_jobs=6, mu=1.0)
        scenario = dataclasses.replace(
            spec.scenario, seed=probe_seed(spec.scenario.seed),
            policy=PolicyConfig(name="gc_sequential", params={**params, "lam": s}))
        assert run(scenario).sim_time_s == pytest.approx(emulated, rel=1e-9), s


def test_probe_refuses_a_load_outside_zero_to_one():
    spec = lambda_scenario(4, 2)
    scenario = dataclasses.replace(spec.scenario,
                                   policy=PolicyConfig(name="gc_probe", params={"load": 1.5}))
    with pytest.raises(ScenarioError, match="policy.load: must be in"):
        run(scenario, DelayProbe(load=1.5))
