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
    # 4 nodes, 100 Mbit/s, 100 ms; measured (seed 0): DDP 3540 s, DiLoCo 180 s, NoLoCo 600 s
    # (reference exchange; the mean of the workers' own models reaches the target)
    spec = load(SCENARIOS / "dp-slow-wan.toml",
                ["cluster.nodes=4", *TINY_LLAMA, "run.target_loss=2.2", "run.eval_every=1min"])
    for method in ("diloco", "noloco"):
        assert_speedup(spec, method, "ddp", at_least=4.0, basis="time_to_target")


def test_coded_training_reaches_the_target_sooner_than_uncoded_under_stragglers():
    # 12 workers, two of them 8x slow; measured under tcp (the default, this test) uncoded
    # 160 s, fractional 74 s (2.16x), cyclic 104 s (1.54x); under fluid 146 s, 62 s (2.35x),
    # 90 s (1.62x): docs/methods/gradient-coding.md
    spec = load(SCENARIOS / "gc-stragglers.toml", ["run.stop_at_target=true"])
    assert_speedup(spec, "fractional", "uncoded", at_least=1.8, basis="time_to_target")
    assert_speedup(spec, "cyclic", "uncoded", at_least=1.3, basis="time_to_target")


def test_m_sgc_against_the_tuned_gc_in_the_lambda_like_scenario():
    # The authors' protocol: probe the scenario, emulate every parameter set with load at most
    # GC(64, 4)'s, run each scheme with its fastest. 64 workers, 20 jobs. Measured under
    # fluid: tuned GC s = 0 233.5 s, tuned M-SGC (B, W, lam) = (1, 3, 14) 210.3 s, 1.11x; under
    # tcp (the default, this test) 1.078x. At the full 256 workers M-SGC is 3.5% faster on
    # average over 4 seeds under tcp, 2.4% slower under fluid (docs/methods/gradient-coding.md):
    # far from the published 16% either way, hence the upper bound.
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
    # 128 workers (lam = 8), 20 jobs; measured GC 26.0 s, M-SGC 19.9 s (0.76x GC). Fluid
    # transport: the figure in docs/methods/gradient-coding.md. Under tcp (the default since
    # issue 12) the 272 MB messages are window-capped (4 MiB / 80 ms RTT ~ 52 MB/s: 20 ms access
    # latency at each end, 40 ms one way), rounds turn network-bound and M-SGC is 0.742x of
    # GC's speed: the direction does not hold there.
    overrides = ["cluster.nodes=129", "run.steps=20", "network.transport=fluid"]
    for label in ("gc", "m_sgc"):
        overrides += [f"policies.{label}.lam=8", f"policies.{label}.num_jobs=20"]
    spec = load(SCENARIOS / "gc-bursty.toml", overrides)
    assert_speedup(spec, "m_sgc", "gc", at_least=1 / 0.9, basis="step_time")


def test_noloco_sync_step_advantage_over_diloco_grows_with_node_count():
    # dp-sync-vs-nodes (timing-only; H = 5, 100 ms links): time per step = compute + sync / H.
    # NoLoCo's pair exchange costs the same at any N, DiLoCo's tree all-reduce 2·log2(N) rounds.
    # measured (seed 0), step-time speed-up over DiLoCo: swap 5.38x (16) -> 10.41x (256);
    # reduce_to_root (the reference, 2 latency-bound messages per tensor) 0.077x -> 0.149x.
    # Fluid transport: the figures of docs/methods/data-parallel.md. Under tcp (the default
    # since issue 12; measured swap 6.26x -> 12.48x, reference 0.63x -> 1.26x) the growth holds
    # but the reference exchange overtakes DiLoCo's tree at 256 nodes: the tree's large
    # messages pay slow start again after every outer round's idle gap.
    ratios = {}
    for nodes in (16, 256):
        spec = load(SCENARIOS / "dp-sync-vs-nodes.toml", [f"cluster.nodes={nodes}",
                                                          "run.steps=11",
                                                          "network.transport=fluid"])
        ratios[nodes] = {
            label: assert_speedup(spec, label, "diloco", at_least=0.01, basis="step_time").value
            for label in ("noloco_swap", "noloco")}
    for label in ("noloco_swap", "noloco"):
        assert ratios[256][label] > 1.3 * ratios[16][label], ratios
    assert ratios[256]["noloco_swap"] > 5 > 1 > ratios[256]["noloco"], ratios


def test_decentralised_sgd_outpaces_allreduce_sgd_with_a_slow_worker():
    # dp-hetero-gossip at 8 nodes, one 4x slow, bimodal stragglers, shared 10 Gbit/s switch.
    # step_time: simulated time over the most advanced worker's step count (AD-PSGD's fast
    # workers are never held back by the slow one; DDP steps in lockstep with it).
    spec = load(SCENARIOS / "dp-hetero-gossip.toml",
                ["cluster.nodes=8", "cluster.speed=[0.25,1,1,1,1,1,1,1]", "run.until=1min"])
    # measured (seed 0): D-PSGD 1.455x, AD-PSGD 2.818x DDP's step rate
    assert_speedup(spec, "dpsgd", "ddp", at_least=1.15, basis="step_time")
    assert_speedup(spec, "adpsgd", "ddp", at_least=2.0, basis="step_time")


def test_palsgd_steps_faster_than_ddp_when_compute_bound():
    # dp-palsgd (the PALSGD reference's example run, compute-bound, fluid), timing-only: PALSGD
    # skips p = 0.2 of its forward/backward passes and all-reduces 16 times every H = 32 steps.
    # measured (seed 0): 1.155x DDP's step rate (1.185x with one outer step per sync). Its time
    # to target on the proxy task does not reproduce the paper's 18-24% (the docs say why).
    spec = load(SCENARIOS / "dp-palsgd.toml", ["run.timing_only=true", "run.steps=352"])
    assert_speedup(spec, "palsgd", "ddp", at_least=1.1, basis="step_time")


def test_skippipe_scheduling_and_collision_awareness_gain_over_their_ablations():
    # The 20-node reference (12 GCP regions in the authors' order, ideal network), one
    # iteration. Measured (mean of 3 iterations): random skip 91.41 s, collision-blind SkipPipe
    # 83.00 s, SkipPipe 80.86 s: scheduling gains 1.13x over random paths, collision awareness
    # 1.026x over the blind schedule (the authors' figure: 72 -> 52.5 s and 59.5 -> 52.5 s;
    # docs/methods/pipeline-skippipe.md says why ours are smaller).
    spec = load(SCENARIOS / "skippipe-reference-ideal.toml", ["run.steps=1"])
    assert_speedup(spec, "skippipe", "random_skip", at_least=1.08, basis="step_time")
    assert_speedup(spec, "skippipe", "skippipe_blind", at_least=1.02, basis="step_time")


def test_under_tcp_skippipe_keeps_its_scheduling_gain_and_collision_awareness_gives_little():
    # The same reference under dtsim's default transport, the planner pricing hops with the
    # tcp transport (slow start on cold connections, idle restarts: sim.network.forecast),
    # one iteration, seed 0: random skip 111.65 s, collision-blind 96.91 s, SkipPipe 95.56 s:
    # scheduling 1.168x, collision awareness 1.014x (seeds 0-4: 1.000-1.029x, mean 1.016x;
    # with the authors' fluid-priced planner under tcp 0.994-1.002x, mean 0.998x). Not the
    # clear gain of the fluid reference: collisions cost the blind schedule at most 2.94 s
    # here (8.57 s with fluid transfers), the memory waves 32 s (docs/methods/
    # pipeline-skippipe.md, "Planning with the transport"). Never below 1: the planner's
    # prediction is the executed iteration and the blind schedule is one of its candidates.
    spec = load(SCENARIOS / "skippipe-reference-ideal.toml",
                ["run.steps=1", "network.transport=tcp"])
    assert_speedup(spec, "skippipe", "random_skip", at_least=1.08, basis="step_time")
    assert_speedup(spec, "skippipe", "skippipe_blind", at_least=1.0, at_most=1.03,
                   basis="step_time")


def test_over_pipelines_noloco_converges_further_per_step_but_diloco_sooner_in_time():
    # DP x PP (NoLoCo's setting): 4 stages x 2 replicas, NoLoCo's random routing, 100 Mbit/s
    # WAN, H = 10, on the real-text proxy (Python's stdlib source). Measured (seed 0): eval
    # loss after 100 steps NoLoCo 2.755, DiLoCo 2.858 on either transport (2.759, 2.857 with a
    # barrier per inner step, before workers waited only for their neighbours; NoLoCo further per
    # step, as the paper reports); time to 3.0 NoLoCo 840 s, DiLoCo 540 s (0.64x) with
    # transport tcp, 420 s and 180 s (0.43x) with fluid: the reference exchange moves 4x a
    # stage's bytes per pair. Full size: python -m experiments.dp_regressions dp-pp.
    spec = load(SCENARIOS / "dp-pp-noloco.toml",
                ["cluster.nodes=8", "workload.data=python-stdlib", "run.steps=100",
                 "policies.diloco.inner_steps=10", "policies.noloco.inner_steps=10",
                 "run.eval_every=1min", "run.target_loss=3.0"])
    measured = assert_speedup(spec, "noloco", "diloco", at_most=0.8, basis="time_to_target")
    assert measured.policy["final_loss"] < measured.baseline["final_loss"] - 0.05, \
        measured.report()
