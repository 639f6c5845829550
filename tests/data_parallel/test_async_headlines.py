"""Headlines of the delayed and compressed methods, written with ``sim.testing`` as users would.

Fast CI versions of scenarios/co2-overlap.toml, scenarios/compressed-ef.toml and
scenarios/dp-goodput.toml; the full runs
and their figures are in docs/methods/async-compressed.md
(``python -m sim compare scenarios/co2-overlap.toml``, ``... compressed-ef.toml``).
"""

from pathlib import Path

import pytest

from sim.scenario import load
from sim.testing import assert_goodput_order, assert_speedup, measure_speedup

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("tau", [1000, 50])
def test_co2_hides_the_allreduce_only_when_it_fits_in_tau_steps(tau):
    # llama-125m on 8 x H100, 1 Gbit/s: T_step = 19.5 ms, T_allreduce = 7.75 s (a ring).
    # tau = 1000: 19.5 s of compute per block > 7.75 s: hidden, CO2's step is T_step and the
    #   speed-up over DiLoCo (same tau) is 1 + T_ar/(tau T) = 1.40 (measured 1.398).
    # tau = 50: 0.97 s < 7.75 s: not hidden, a warm block takes T_ar; over 6 blocks
    #   (measured) DiLoCo 0.149 s/step, CO2 0.110 s/step (1.35x), both >> T_step.
    spec = load(SCENARIOS / "co2-overlap.toml", [
        f"policies.diloco.inner_steps={tau}", f"policies.co2.inner_steps={tau}",
        f"run.steps={6 * tau}"])
    measured = assert_speedup(spec, "co2", "diloco", at_least=1.3, basis="step_time")
    step_s = measured.policy["sim_time_s"] / measured.policy["steps"]
    t_step = 0.01949367  # llama-125m, batch 8 x 32 tokens, H100 profile
    if tau == 1000:
        assert step_s == pytest.approx(t_step, rel=1e-6)          # fully hidden
        assert measured.policy["goodput"] == pytest.approx(1.0)
    else:
        assert step_s > 5 * t_step                                # the all-reduce shows
        assert measured.policy["goodput"] < 0.2


def test_topk_with_error_feedback_reaches_the_target_sooner_than_plain_topk():
    # measured (seed 1, 200 steps, default MLP): error feedback reaches 1.6 at 0.65 s, plain
    # top-1% at 1.00 s (1.54x); plain top-k ends lower here (0.55 against 0.82): see
    # docs/methods/async-compressed.md for why.
    spec = load(SCENARIOS / "compressed-ef.toml")
    assert_speedup(spec, "topk_ef", "topk_plain", at_least=1.3, basis="time_to_target")


def test_topk_without_error_feedback_falls_behind_on_a_small_model():
    # the same with 16 hidden units: plain top-1% never reaches 1.6 (2.05 at the end),
    # error feedback does (1.30 at its best)
    spec = load(SCENARIOS / "compressed-ef.toml", ["workload.d_model=16"])
    measured = measure_speedup(spec, "topk_ef", "topk_plain")
    assert measured.basis == "baseline_missed_target", measured.report()
    assert measured.baseline["final_loss"] > spec.scenario.run.target_loss + 0.2


def test_goodput_under_failures_and_stragglers_quorum_over_diloco_over_ddp():
    # 8 nodes, 10 Gbit/s, node 7 at half speed, bimodal stragglers, ~30 crashes per node-hour
    # (20 s down), 5 s collective timeout, H = 200. Measured over 100 s, seeds 0 / 1 / 2, tcp
    # (the default): quorum DiLoCo 42.3 / 40.7 / 37.8 %, DiLoCo 39.5 / 27.5 / 37.5 %, DDP
    # 0.4 / 0.2 / 0.4 %; fluid 75.5 / 63.5 / 69.5, 45.6 / 50.5 / 52.6, 2.2 / 2.2 / 2.3 %.
    # With H = 50 under tcp the all-reduce dominates and quorum does not lead (docs).
    spec = load(SCENARIOS / "dp-goodput.toml", ["run.until=100s"])
    assert spec.scenario.network.transport == "tcp"
    records = assert_goodput_order(spec, ["quorum_diloco", "diloco", "ddp"])
    assert records["quorum_diloco"]["goodput"] > records["diloco"]["goodput"] + 0.02
