"""Straggler models against their closed forms.

Tolerances: a sample mean of N i.i.d. draws is within 4 standard errors (sigma / sqrt(N)) of the
true mean except with probability ~6e-5; with fixed seeds the tests are deterministic, and the
4-SE margin says how far a *correct* sampler could land. For a quantile x_q we check the fraction
of draws <= x_q, a binomial proportion with standard error sqrt(q (1 - q) / N).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.faults.node_stragglers import BurstyPattern, GilbertElliott, PerNodeModels, TraceReplay
from sim.faults.straggler_configs import make_straggler_model
from sim.faults.stragglers import (
    Bimodal,
    LogNormal,
    NoStragglers,
    Pareto,
    ShiftedExponential,
    speed_multipliers,
)

N = 40_000


def draws(model, n=N, seed=0, node=0):
    rng = np.random.default_rng(seed)
    return np.array([model.factor(node, rng) for _ in range(n)])


def assert_mean_matches(samples, mean, std):
    se = std / math.sqrt(samples.size)
    assert abs(samples.mean() - mean) < 4 * se, (samples.mean(), mean, se)


def assert_quantile_matches(samples, model, q):
    x_q = model.quantile(q)
    fraction = float(np.mean(samples <= x_q))
    se = math.sqrt(q * (1 - q) / samples.size)
    assert abs(fraction - q) < 4 * se, (q, x_q, fraction)


# (model, closed-form standard deviation of the factor)
CONTINUOUS = [
    (ShiftedExponential(mu=2.0), 1 / 2.0),
    (ShiftedExponential(mu=0.5, shift=1.5), 1 / 0.5),
    # Pareto variance x_m^2 alpha / ((alpha - 1)^2 (alpha - 2)) exists for alpha > 2
    (Pareto(alpha=5.0), math.sqrt(5.0 / (16.0 * 3.0))),
    (Pareto(alpha=3.0, scale=2.0), math.sqrt(4.0 * 3.0 / (4.0 * 1.0))),
    (LogNormal(sigma=0.5), math.sqrt((math.exp(0.25) - 1) * math.exp(0.25))),
    (LogNormal(sigma=0.3, mu=0.2), math.sqrt((math.exp(0.09) - 1) * math.exp(0.4 + 0.09))),
]


@pytest.mark.parametrize("model,std", CONTINUOUS, ids=lambda m: type(m).__name__)
def test_continuous_models_match_mean_and_quantiles(model, std):
    samples = draws(model)
    assert_mean_matches(samples, model.mean(), std)
    for q in (0.5, 0.9, 0.99):
        assert_quantile_matches(samples, model, q)
    assert samples.min() >= model.floor


def test_closed_forms_by_hand():
    # shifted exponential: median a + ln2/mu
    assert ShiftedExponential(mu=2.0).quantile(0.5) == pytest.approx(1 + math.log(2) / 2)
    assert ShiftedExponential(mu=2.0).mean() == pytest.approx(1.5)
    # Pareto alpha=2: P[F > x] = 1/x^2, so the 0.75 quantile is 2; mean 2
    assert Pareto(alpha=2.0).quantile(0.75) == pytest.approx(2.0)
    assert Pareto(alpha=2.0).mean() == pytest.approx(2.0)
    assert Pareto(alpha=0.9).mean() == math.inf
    # log-normal: median exp(mu); Phi^-1(0.975) = 1.959964
    assert LogNormal(sigma=1.0, mu=0.5).quantile(0.5) == pytest.approx(math.exp(0.5))
    assert LogNormal(sigma=1.0).quantile(0.975) == pytest.approx(math.exp(1.959964), rel=1e-6)
    # bimodal p=0.05, 4x
    model = Bimodal(p=0.05, slowdown=4.0)
    assert model.mean() == pytest.approx(1.15)
    assert model.quantile(0.95) == 1.0 and model.quantile(0.951) == 4.0


@pytest.mark.parametrize("model", [m for m, _ in CONTINUOUS], ids=lambda m: type(m).__name__)
def test_cdf_inverts_quantile(model):
    for q in (0.1, 0.5, 0.9, 0.999):
        assert model.cdf(model.quantile(q)) == pytest.approx(q, abs=1e-9)


def test_bimodal_mean_and_straggle_fraction():
    model = Bimodal(p=0.05, slowdown=4.0)
    samples = draws(model)
    std = 3.0 * math.sqrt(0.05 * 0.95)  # (kappa - 1) * sqrt(p (1 - p))
    assert_mean_matches(samples, model.mean(), std)
    assert set(np.unique(samples)) == {1.0, 4.0}
    # a discrete law: the quantile jumps from 1 to kappa at q = 1 - p, so check the mass there
    slow = float(np.mean(samples == 4.0))
    assert abs(slow - 0.05) < 4 * math.sqrt(0.05 * 0.95 / samples.size)
    assert model.cdf(1.0) == pytest.approx(0.95) and model.cdf(4.0) == 1.0


def test_no_stragglers_is_one_and_does_not_draw():
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    assert NoStragglers().factor(0, rng) == 1.0
    assert rng.bit_generator.state == before


def test_same_seed_same_factors_different_seed_different():
    for model in [m for m, _ in CONTINUOUS] + [Bimodal(p=0.3, slowdown=2.0)]:
        assert np.array_equal(draws(model, 100, seed=7), draws(model, 100, seed=7))
        assert not np.array_equal(draws(model, 100, seed=7), draws(model, 100, seed=8))


# ------------------------------------------------------------------ Gilbert-Elliott


def burst_lengths(bad: np.ndarray) -> np.ndarray:
    padded = np.concatenate([[0], bad.astype(np.int8), [0]])
    edges = np.diff(padded)
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_gilbert_elliott_stationary_probability_and_mean_burst():
    p, q = 0.02, 0.25
    model = GilbertElliott(p_good_to_bad=p, p_bad_to_good=q, slowdown=3.0)
    assert model.p_bad == pytest.approx(p / (p + q))
    assert model.mean_burst_tasks == pytest.approx(1 / q)
    n = 200_000
    bad = draws(model, n, seed=1) == 3.0
    # The chain's lag-1 correlation is rho = 1 - p - q, so the variance of the time average
    # is pi (1 - pi) (1 + rho) / (1 - rho) / n (standard Markov-chain CLT).
    pi, rho = p / (p + q), 1 - p - q
    se = math.sqrt(pi * (1 - pi) * (1 + rho) / (1 - rho) / n)
    assert abs(bad.mean() - pi) < 4 * se
    lengths = burst_lengths(bad)
    # burst lengths are Geometric(q): mean 1/q, variance (1 - q) / q^2
    se_burst = math.sqrt((1 - q) / q**2 / lengths.size)
    assert abs(lengths.mean() - 1 / q) < 4 * se_burst
    assert model.mean() == pytest.approx(1 + pi * 2.0)


def test_gilbert_elliott_chains_are_per_node_and_start_stationary():
    p, q = 0.1, 0.3
    model = GilbertElliott(p_good_to_bad=p, p_bad_to_good=q, slowdown=2.0)
    rng = np.random.default_rng(5)
    # first task of 20,000 distinct nodes: the stationary law, i.i.d.
    first = np.array([model.factor(node, rng) for node in range(20_000)]) == 2.0
    pi = p / (p + q)
    assert abs(first.mean() - pi) < 4 * math.sqrt(pi * (1 - pi) / first.size)
    # interleaving two nodes must not mix their chains: each keeps mean burst 1/q
    model.reset()
    rng = np.random.default_rng(6)
    seq = {0: [], 1: []}
    for _ in range(60_000):
        for node in (0, 1):
            seq[node].append(model.factor(node, rng) == 2.0)
    for node in (0, 1):
        lengths = burst_lengths(np.array(seq[node]))
        se = math.sqrt((1 - q) / q**2 / lengths.size)
        assert abs(lengths.mean() - 1 / q) < 4 * se


def test_gilbert_elliott_reset_forgets_state():
    model = GilbertElliott(p_good_to_bad=0.5, p_bad_to_good=0.5, slowdown=2.0)
    a = draws(model, 50, seed=2)
    model.reset()
    assert np.array_equal(a, draws(model, 50, seed=2))


# ------------------------------------------------------------------ pattern and trace replay


def test_bursty_pattern_uses_each_nodes_task_counter():
    pattern = np.array([[True, False], [False, False], [False, True]])
    model = BurstyPattern(pattern, slowdown=5.0)
    rng = np.random.default_rng(0)
    assert [model.factor(0, rng) for _ in range(4)] == [5.0, 1.0, 1.0, 1.0]  # past the end: 1
    assert [model.factor(1, rng) for _ in range(3)] == [1.0, 1.0, 5.0]
    assert model.factor_at(1, 2) == 5.0 and model.factor_at(7, 0) == 1.0
    assert model.mean() == pytest.approx(1 + (2 / 6) * 4.0)
    with pytest.raises(ValueError, match="boolean"):
        BurstyPattern(np.zeros((2, 2)), slowdown=2.0)


def test_trace_replay_from_csv_factor_and_duration(tmp_path):
    path = tmp_path / "factors.csv"
    path.write_text("node,round,factor\n1,1,3.0\n0,0,1.0\n0,1,2.0\n1,0,1.5\n")
    model = TraceReplay.from_csv(str(path))
    rng = np.random.default_rng(0)
    assert [model.factor(0, rng) for _ in range(3)] == [1.0, 2.0, 1.0]  # cycles
    assert [model.factor(1, rng) for _ in range(2)] == [1.5, 3.0]
    assert model.factor(9, rng) == 1.0
    assert model.mean() == pytest.approx(7.5 / 4)
    assert model.quantile(0.5) == 1.5

    durations = tmp_path / "durations.csv"
    durations.write_text("node,round,duration_s\n0,0,0.5\n0,1,2.0\n")
    assert TraceReplay.from_csv(str(durations)).factors[0].tolist() == [1.0, 4.0]
    assert TraceReplay.from_csv(str(durations), nominal_s=1.0).factors[0].tolist() == [0.5, 2.0]


def test_trace_replay_rejects_gaps_and_bad_columns(tmp_path):
    gap = tmp_path / "gap.csv"
    gap.write_text("node,round,factor\n0,0,1.0\n0,2,1.0\n")
    with pytest.raises(ValueError, match="without gaps"):
        TraceReplay.from_csv(str(gap))
    both = tmp_path / "both.csv"
    both.write_text("node,round,factor,duration_s\n0,0,1.0,1.0\n")
    with pytest.raises(ValueError, match="exactly one of"):
        TraceReplay.from_csv(str(both))


# ------------------------------------------------------------------ heterogeneity


def test_per_node_shifted_exponential_gives_each_worker_its_own_law():
    shifts, rates = [1.0, 2.0], [4.0, 0.5]
    model = PerNodeModels.shifted_exponential(shifts, rates)
    for node, (a, mu) in enumerate(zip(shifts, rates)):
        samples = draws(model, 20_000, seed=node, node=node)
        assert_mean_matches(samples, a + 1 / mu, 1 / mu)
        assert samples.min() >= a
    assert model.mean() == pytest.approx(((1 + 0.25) + (2 + 2.0)) / 2)
    # mixture quantile: half the mass of each component below it on average
    for q in (0.3, 0.9):
        assert model.cdf(model.quantile(q)) == pytest.approx(q, abs=1e-9)
    # a node not listed uses the default (no stragglers)
    assert model.factor(5, np.random.default_rng(0)) == 1.0


def test_speed_multipliers():
    rng = np.random.default_rng(0)
    assert speed_multipliers(3, dist="constant", rng=rng).tolist() == [1.0, 1.0, 1.0]
    assert speed_multipliers(2, dist="constant", value=0.5, rng=rng).tolist() == [0.5, 0.5]
    assert speed_multipliers(2, dist="list", values=[1.0, 0.25], rng=rng).tolist() == [1.0, 0.25]
    speeds = speed_multipliers(20_000, dist="lognormal", sigma=0.3, mu=0.1, rng=rng)
    # the median of exp(mu + sigma Z) is exp(mu); P[speed <= exp(mu)] = 1/2
    assert abs(np.mean(speeds <= math.exp(0.1)) - 0.5) < 4 * math.sqrt(0.25 / speeds.size)
    uniform = speed_multipliers(1000, dist="uniform", low=0.5, high=2.0, rng=rng)
    assert uniform.min() >= 0.5 and uniform.max() <= 2.0
    a = speed_multipliers(5, dist="lognormal", sigma=0.3, rng=np.random.default_rng(1))
    b = speed_multipliers(5, dist="lognormal", sigma=0.3, rng=np.random.default_rng(1))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="one entry per node"):
        speed_multipliers(3, dist="list", values=[1.0], rng=rng)
    with pytest.raises(ValueError, match="cluster.speed.dist"):
        speed_multipliers(3, dist="gamma", rng=rng)
    with pytest.raises(ValueError, match="sigma"):
        speed_multipliers(3, dist="lognormal", rng=rng)
    with pytest.raises(ValueError, match="unknown parameter"):
        speed_multipliers(3, dist="constant", sigma=1.0, rng=rng)


# ------------------------------------------------------------------ scenario specs


def test_make_straggler_model_builds_each_model_with_its_parameters():
    built = make_straggler_model({"model": "bimodal", "p": 0.05, "slowdown": 4})
    assert isinstance(built, Bimodal) and built.p == 0.05 and built.slowdown == 4.0
    built = make_straggler_model({"model": "shifted_exponential", "mu": 3.0, "shift": 1.2})
    assert built.mean() == pytest.approx(1.2 + 1 / 3)
    assert make_straggler_model({"model": "pareto", "alpha": 2.0}).quantile(0.75) == 2.0
    assert make_straggler_model({"model": "lognormal", "sigma": 0.5}).sigma == 0.5
    ge = make_straggler_model(
        {"model": "gilbert_elliott", "p_good_to_bad": 0.1, "p_bad_to_good": 0.3, "slowdown": 2}
    )
    assert ge.p_bad == pytest.approx(0.25)
    assert isinstance(make_straggler_model({}), NoStragglers)
    assert isinstance(make_straggler_model({"model": "none"}), NoStragglers)
    per_node = make_straggler_model({"model": "per_node", "shifts": [1, 2], "rates": [1, 1]})
    assert per_node.model_of(1).shift == 2.0
    per_node = make_straggler_model(
        {"model": "per_node", "models": [{"model": "none"}, {"model": "pareto", "alpha": 3}]}
    )
    assert isinstance(per_node.model_of(1), Pareto)
    bursty = make_straggler_model(
        {"model": "bursty", "B": 2, "W": 4, "lam": 1, "num_rounds": 50, "slowdown": 3},
        num_nodes=4,
        rng=np.random.default_rng(0),
    )
    assert bursty.pattern.shape == (50, 4) and bursty.pattern.sum() == 1 * 2 * 10  # period 5


def test_make_straggler_model_errors_name_the_field():
    with pytest.raises(ValueError, match=r"faults\.stragglers\.model.*weibull.*bimodal.*pareto"):
        make_straggler_model({"model": "weibull"})
    with pytest.raises(ValueError, match=r"faults\.stragglers\.slowdown"):
        make_straggler_model({"model": "bimodal", "p": 0.1})
    with pytest.raises(ValueError, match=r"faults\.stragglers\.sigm"):
        make_straggler_model({"model": "lognormal", "sigma": 1.0, "sigm": 2})
    with pytest.raises(ValueError, match=r"faults\.stragglers\.p: must be a probability"):
        make_straggler_model({"model": "bimodal", "p": 1.5, "slowdown": 2})
    with pytest.raises(ValueError, match=r"slowdown: must be .* >= 1"):
        make_straggler_model({"model": "bimodal", "p": 0.5, "slowdown": 0.5})
    with pytest.raises(ValueError, match="num_nodes and rng"):
        make_straggler_model(
            {"model": "bursty", "B": 1, "W": 2, "lam": 1, "num_rounds": 5, "slowdown": 2}
        )


def test_per_node_default_and_trace_spec(tmp_path):
    model = PerNodeModels({0: NoStragglers()}, default=Bimodal(p=1.0, slowdown=2.0))
    rng = np.random.default_rng(0)
    assert model.factor(0, rng) == 1.0 and model.factor(3, rng) == 2.0
    path = tmp_path / "trace.csv"
    path.write_text("node,round,duration_s\n0,0,2.0\n0,1,6.0\n")
    built = make_straggler_model({"model": "trace", "path": str(path), "nominal_s": 2.0})
    assert isinstance(built, TraceReplay) and built.factors[0].tolist() == [1.0, 3.0]
