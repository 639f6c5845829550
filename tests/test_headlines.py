"""Headline regressions of simulated speed-ups, written with ``sim.testing`` as users would.

Each is the fast CI version of a scenario in ``scenarios/``; the full versions and their figures
are in the method pages (docs/methods/). ``assert_speedup`` runs the baseline and the method on
the same scenario and, when the ratio is out of bounds, fails with both runs' figures and the
scenario, so a red CI job says what changed without a rerun.
"""

from pathlib import Path

from sim.scenario import load
from sim.testing import assert_speedup

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
TINY_LLAMA = ["workload.d_model=16", "workload.n_layers=2", "workload.n_heads=2",
              "workload.seq=16", "workload.batch=4"]


def test_slow_wan_diloco_and_noloco_reach_the_target_sooner_than_ddp():
    # 4 nodes, 100 Mbit/s, 100 ms; measured (seed 0): DDP 3540 s, DiLoCo 240 s, NoLoCo 360 s
    spec = load(SCENARIOS / "dp-slow-wan.toml",
                ["cluster.nodes=4", *TINY_LLAMA, "run.target_loss=2.2", "run.eval_every=1min"])
    for method in ("diloco", "noloco"):
        assert_speedup(spec, method, "ddp", at_least=4.0, basis="time_to_target")


def test_coded_training_reaches_the_target_sooner_than_uncoded_under_stragglers():
    # 12 workers, two of them 8x slow; measured uncoded 146 s, fractional 62 s (2.35x),
    # cyclic 90 s (1.62x)
    spec = load(SCENARIOS / "gc-stragglers.toml", ["run.stop_at_target=true"])
    assert_speedup(spec, "fractional", "uncoded", at_least=1.8, basis="time_to_target")
    assert_speedup(spec, "cyclic", "uncoded", at_least=1.3, basis="time_to_target")


def test_m_sgc_against_the_tuned_gc_in_the_lambda_like_scenario():
    # The authors' protocol: probe the scenario, emulate every parameter set with load at most
    # GC(64, 4)'s, run each scheme with its fastest. 64 workers, 20 jobs. Measured: tuned GC
    # s = 0 233.5 s, tuned M-SGC (B, W, lam) = (1, 3, 14) 210.3 s: M-SGC 1.11x faster here; at
    # the full 256 workers it is 2.4% slower on average over 4 seeds (docs/methods/
    # gradient-coding.md): far from the published 16% either way, hence the upper bound.
    from policies.gradient_coding.tuned_compare import tuned_spec

    overrides = ["cluster.nodes=65", "run.steps=20", "policies.gc.lam=4"]
    for label in ("gc", "sr_sgc", "m_sgc"):
        overrides.append(f"policies.{label}.num_jobs=20")
    spec, _, tuning = tuned_spec(SCENARIOS / "gc-lambda.toml", overrides)
    tuned = dict(spec.policies)
    assert tuning.best["m_sgc"].candidate.lam > 0           # M-SGC does tolerate stragglers
    assert_speedup(spec.scenario, tuned["m_sgc"], tuned["gc"], at_least=1.05, at_most=1.2,
                   basis="step_time")


def test_m_sgc_runs_the_jobs_faster_than_gc_under_bursty_stragglers():
    # Fixed-parameter extra (not the authors' protocol: GC is not tuned; see the test above).
    # 128 workers (lam = 8), 20 jobs; measured GC 26.0 s, M-SGC 19.9 s (0.76x GC)
    overrides = ["cluster.nodes=129", "run.steps=20"]
    for label in ("gc", "m_sgc"):
        overrides += [f"policies.{label}.lam=8", f"policies.{label}.num_jobs=20"]
    spec = load(SCENARIOS / "gc-bursty.toml", overrides)
    assert_speedup(spec, "m_sgc", "gc", at_least=1 / 0.9, basis="step_time")


def test_skippipe_scheduling_and_collision_awareness_gain_over_their_ablations():
    # The 20-node reference (12 GCP regions in the authors' order, ideal network), one
    # iteration. Measured (mean of 3 iterations): random skip 91.41 s, collision-blind SkipPipe
    # 83.00 s, SkipPipe 80.86 s: scheduling gains 1.13x over random paths, collision awareness
    # 1.026x over the blind schedule (the authors' figure: 72 -> 52.5 s and 59.5 -> 52.5 s;
    # docs/methods/pipeline-skippipe.md says why ours are smaller).
    spec = load(SCENARIOS / "skippipe-reference-ideal.toml", ["run.steps=1"])
    assert_speedup(spec, "skippipe", "random_skip", at_least=1.08, basis="step_time")
    assert_speedup(spec, "skippipe", "skippipe_blind", at_least=1.02, basis="step_time")
