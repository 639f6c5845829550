"""The five methods on a tiny pipeline: each recovery does what its method says, at a real cost."""

import math

import numpy as np
import pytest
import torch

from policies.recovery.policies import RECOVERY_POLICIES
from policies.recovery.strategies import CheckFree, CheckFreePlus, Redundant
from sim.faults.stages import StageFailuresConfig
from sim.policy import get_policy
from tests.recovery.helpers import BANDWIDTH_BPS, LATENCY_S, run_policy

FAIL_AT_S = 20.0  # a few iterations in: the neighbours have trained, grad norms are known


class SpyCheckFree(CheckFree):
    """CheckFree that keeps the inputs and output of every rebuild."""

    def install(self, pipe, stage, kind, sources):
        seen = {"kind": kind, "sources": sources, "norms": list(pipe.grad_norms),
                "neighbours": {s: pipe.stage_weights(s) for s in sources}}
        if kind == "fallback":
            seen["snapshot"] = self.fallback_weights(pipe, stage)
            seen["snapshot_step"] = self.edge_uploads.stored_step
        super().install(pipe, stage, kind, sources)
        seen["rebuilt"] = pipe.stage_weights(stage)
        seen["lr_scale"] = pipe.learner.groups[stage].lr_scale
        seen["adam_state"] = len(pipe.learner.groups[stage].optimizer.state)
        self.spied = getattr(self, "spied", []) + [seen]


def test_registered_names():
    for name in RECOVERY_POLICIES:
        assert get_policy(name).name == name


def test_rebuilt_stage_equals_the_formula_exactly():
    result, policy = run_policy("checkfree", until_s=40.0, failures=[(FAIL_AT_S, 2)],
                                strategy_cls=SpyCheckFree)
    (seen,) = policy.strategy.spied
    assert seen["kind"] == "average" and seen["sources"] == (1, 3)
    g_prev, g_next = seen["norms"][1], seen["norms"][3]
    assert 0.0 < g_prev <= 1.0 + 1e-6 and 0.0 < g_next <= 1.0 + 1e-6  # clipped at 1.0
    a, b = g_next + 1e-4, g_prev + 1e-4
    w_prev, w_next = seen["neighbours"][1], seen["neighbours"][3]
    assert list(seen["rebuilt"]) == list(w_next)
    for name, got in seen["rebuilt"].items():
        # the formula written out (same float32 operations) ...
        assert torch.equal(got, (a * w_next[name] + b * w_prev[name]) / (a + b)), name
        # ... and an independent float64 oracle
        oracle = (a * w_next[name].double().numpy() + b * w_prev[name].double().numpy()) / (a + b)
        np.testing.assert_allclose(got.double().numpy(), oracle, rtol=1e-6, atol=1e-8)
    assert seen["lr_scale"] == pytest.approx(1.1)  # the learning-rate bump
    assert seen["adam_state"] == 0  # a fresh optimizer
    assert result.steps > 3 and math.isfinite(result.final_loss)


def test_squared_norms_and_lr_bump_parameters_change_the_rebuild():
    _, plain = run_policy("checkfree", until_s=25.0, failures=[(FAIL_AT_S, 3)],
                          strategy_cls=SpyCheckFree)
    _, squared = run_policy("checkfree", until_s=25.0, failures=[(FAIL_AT_S, 3)],
                            strategy_cls=SpyCheckFree, squared_norms=True, lr_bump=1.2)
    a, b = plain.strategy.spied[0], squared.strategy.spied[0]
    name = next(iter(a["rebuilt"]))
    assert not torch.equal(a["rebuilt"][name], b["rebuilt"][name])
    assert b["lr_scale"] == pytest.approx(1.2)
    g_prev, g_next = b["norms"][2], b["norms"][4]
    w = (g_next**2 + 1e-4) / (g_next**2 + g_prev**2 + 2e-4)  # weight of W_{i+1}
    expected = w * b["neighbours"][4][name] + (1 - w) * b["neighbours"][2][name]
    assert torch.allclose(b["rebuilt"][name], expected, atol=1e-6)


def test_recovery_transfer_time_is_the_network_time():
    # Both replicas of stage 2 fetch stage 1's and stage 3's weights: two flows share each
    # replacement's downlink, so the fetch takes 2 x stage bytes / bandwidth + latency.
    result, policy = run_policy("checkfree", until_s=40.0, failures=[(FAIL_AT_S, 2)])
    ev = result.recorder.events()
    rec = ev[ev.kind == "recovery"].iloc[0]
    stage_nbytes = policy.pipe.param_nbytes[2]
    assert rec.transfer_s == pytest.approx(2 * stage_nbytes / BANDWIDTH_BPS + LATENCY_S,
                                           rel=0.02)
    assert stage_nbytes > 50e6  # priced as the 125M model, not the tiny learner
    assert rec.downtime_s >= rec.transfer_s + 2.0 - 1e-9  # rejoin delay first


class SpyPlus(CheckFreePlus, SpyCheckFree):
    pass


@pytest.mark.parametrize("stage, copied_from", [(1, 2), (4, 3)])
def test_edge_stages_copy_their_neighbour_as_the_authors_code_does(stage, copied_from):
    # The authors' layout: stage 0 holds only the embedding, so the first transformer stage
    # (1) has one neighbour with blocks, like the last (4). Their convergence code copies it
    # (plain CheckFree: the only neighbour; CheckFree+: the swap partner, the same stage here).
    for name, cls in (("checkfree", SpyCheckFree), ("checkfree_plus", SpyPlus)):
        _, policy = run_policy(name, until_s=25.0, failures=[(FAIL_AT_S, stage)],
                               strategy_cls=cls)
        (seen,) = policy.strategy.spied
        assert seen["kind"] == "copy" and seen["sources"] == (copied_from,), name
        assert all(torch.equal(v, seen["neighbours"][copied_from][k])
                   for k, v in seen["rebuilt"].items())


def test_checkfree_plus_copies_its_partner_where_checkfree_averages():
    _, cf = run_policy("checkfree", until_s=25.0, failures=[(FAIL_AT_S, 3)],
                       strategy_cls=SpyCheckFree)
    _, plus = run_policy("checkfree_plus", until_s=25.0, failures=[(FAIL_AT_S, 3)],
                         strategy_cls=SpyPlus)
    assert (cf.strategy.spied[0]["kind"], cf.strategy.spied[0]["sources"]) == ("average", (2, 4))
    assert (plus.strategy.spied[0]["kind"], plus.strategy.spied[0]["sources"]) == ("copy", (4,))


def test_edge_snapshot_fallback_restores_the_stored_weights():
    _, cf = run_policy("checkfree", until_s=35.0, failures=[(FAIL_AT_S, 4)],
                       strategy_cls=SpyCheckFree, edge_fallback="checkpoint",
                       edge_checkpoint_every=2)
    seen = cf.strategy.spied[0]
    assert seen["kind"] == "fallback"
    stored = seen["snapshot"]
    assert all(torch.equal(seen["rebuilt"][k], stored[k]) for k in stored)
    assert seen["snapshot_step"] % 2 == 0 and seen["snapshot_step"] > 0
    assert cf.strategy.edge_uploads.stages == [1, 4]  # both edge stages are snapshotted


def test_checkfree_plus_swaps_edge_pairs_on_odd_microbatches():
    _, policy = run_policy("checkfree_plus", until_s=1.0, microbatches_per_replica=2)
    routes = [mb.route.stages for mb in policy.pipe.microbatches()]
    assert routes == [(0, 1, 2, 3, 4), (0, 2, 1, 4, 3)] * 2  # pairs (1, 2) and (3, 4)


def test_checkpointing_rolls_back_to_the_stored_step():
    result, policy = run_policy("checkpointing", until_s=60.0, failures=[(45.0, 2)],
                                checkpoint_every=3)
    (rb,) = policy.strategy.rollbacks
    assert rb["to_step"] % 3 == 0 and rb["to_step"] < rb["from_step"]
    ev = result.recorder.events()
    assert (ev.kind == "checkpoint_stored").sum() >= 1
    # uploads of weights + Adam state of every stage went to the store node (node 8)
    up = policy.pipe.param_nbytes[1] * 3
    assert policy.strategy.uploads.store.bytes_stored >= 4 * up * 0.99
    assert policy.strategy.uploads.stored_step <= policy.pipe.step


def test_redundant_restores_the_exact_state_and_pays_in_time():
    class SpyRedundant(Redundant):
        def before_loss(self, pipe, stage):
            super().before_loss(pipe, stage)
            self.before = pipe.stage_state(stage)

        def recover(self, pipe, stages):
            yield from super().recover(pipe, stages)
            self.after = pipe.stage_state(stages[0])

    result, policy = run_policy("redundant", until_s=40.0, failures=[(FAIL_AT_S, 2)],
                                strategy_cls=SpyRedundant)
    s = policy.strategy
    assert all(torch.equal(s.before["weights"][k], s.after["weights"][k])
               for k in s.before["weights"])
    assert s.before["optimizer"]["step_count"] == s.after["optimizer"]["step_count"]
    base, _ = run_policy("no_failure", until_s=40.0)
    red, _ = run_policy("redundant", until_s=40.0)
    assert red.steps < base.steps  # the successor's forward on every microbatch


def test_every_method_faces_the_same_failures_and_runs_are_deterministic():
    faults = StageFailuresConfig(p_hour=0.16, time_scale=400.0, failure_period_s=5.0,
                                 rejoin_delay_s=5.0)
    schedules = []
    for name in ("checkfree", "checkpointing", "redundant"):
        _, policy = run_policy(name, until_s=5.0, faults=faults)
        schedules.append(policy.pipe.schedule)
    assert schedules[0] and schedules[0] == schedules[1] == schedules[2]
    assert all(f.stage != 0 for f in schedules[0])
    a, _ = run_policy("checkfree", until_s=30.0, faults=faults)
    b, _ = run_policy("checkfree", until_s=30.0, faults=faults)
    assert a.trace_hash() == b.trace_hash()
    # the upper bound names no stage that can fail: the same [faults] strike nothing
    nf, _ = run_policy("no_failure", until_s=30.0, faults=faults)
    events = nf.recorder.events()
    assert len(events) == 0 or (events["kind"] == "failure").sum() == 0


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match="edge_fallback"):
        get_policy("checkfree")(edge_fallback="zeros")
    with pytest.raises(ValueError, match="checkpoint_every: must be >= 1, got 0"):
        get_policy("checkpointing")(checkpoint_every=0)
    with pytest.raises(ValueError, match="num_stages: the recovery family needs >= 3 .*got 2"):
        get_policy("no_failure")(num_stages=2)
    with pytest.raises(ValueError, match="num_stages: .* >= 4 with embedding_stage=True, got 3"):
        get_policy("no_failure")(num_stages=3)  # stage 0 holds no block: 2 transformer stages


def test_checkfree_plus_rebuilds_stage0_from_stage1_and_the_embedding_copies():
    class SpyPlus(CheckFreePlus):
        def install(self, pipe, stage, kind, sources):
            self.copy_at_failure = {k: v.clone() for k, v in self.embedding_copy.items()}
            self.stage1 = pipe.stage_weights(1)
            super().install(pipe, stage, kind, sources)
            self.rebuilt0 = pipe.stage_weights(0)

    _, policy = run_policy("checkfree_plus", until_s=35.0, failures=[(FAIL_AT_S, 0)],
                           strategy_cls=SpyPlus, faults=StageFailuresConfig(exempt=()),
                           embedding_stage=False, num_stages=4, num_nodes=9)
    s = policy.strategy
    assert sorted(s.copy_at_failure) == ["embed.weight", "head.weight", "norm.weight"]
    for name, value in s.rebuilt0.items():
        expected = s.copy_at_failure[name] if name in s.copy_at_failure else s.stage1[name]
        assert torch.equal(value, expected), name


def test_costs_from_the_timing_model_match_the_emulator_rule():
    # device "emulator": 0.055 s per sample per layer forward, backward 1.5x, loss 0.25 x a
    # 4-layer stage; LLaMA-125M has 12 layers -> 3 per stage; batch 8.
    from types import SimpleNamespace

    from policies.recovery.config import NoFailureConfig
    from policies.recovery.pipeline_run import microbatch_costs
    from workloads import WorkloadConfig, build_workload, get_device

    wl = build_workload(WorkloadConfig(learner="tiny-llama", timing="llama-125m", batch=8, seq=32),
                        num_replicas=1, seed=0)
    costs = microbatch_costs(wl, NoFailureConfig(num_stages=4, embedding_stage=False),
                             get_device("emulator"))
    assert costs.forward_s == pytest.approx((0.055 * 8 * 3,) * 4)
    assert costs.backward_s == pytest.approx((1.5 * 0.055 * 8 * 3,) * 4)
    assert costs.loss_s == pytest.approx(0.25 * 0.055 * 8 * 4)
    assert costs.activation_nbytes == 8 * 32 * 768 * 4  # B T C fp32
    # the authors' layout: stage 0 (embedding, head) computes nothing per stage, 4 x 3 blocks
    authors = microbatch_costs(wl, NoFailureConfig(num_stages=5), get_device("emulator"))
    assert authors.forward_s == pytest.approx((0.0,) + (0.055 * 8 * 3,) * 4)
    fixed = microbatch_costs(wl, NoFailureConfig(num_stages=5, forward_s=2.0), SimpleNamespace())
    assert fixed.forward_s == (0.0,) + (2.0,) * 4 and fixed.loss_s == 0.5


def test_redundant_gives_up_one_memory_slot_and_charges_the_successor_forward():
    _, red = run_policy("redundant", until_s=1.0)
    _, base = run_policy("checkfree", until_s=1.0)
    assert red.pipe.executor.config.memory_microbatches == 2
    assert base.pipe.executor.config.memory_microbatches == 3
    forward = red.pipe.costs.forward_s
    assert red.strategy.extra_forward_s(red.pipe, 1) == forward[2]
    assert red.strategy.extra_forward_s(red.pipe, 0) == forward[1]  # stage 0 backs up stage 1
    assert red.strategy.extra_forward_s(red.pipe, 4) == 0.0  # successor is stage 0: exempt


def test_checkfree_plus_copies_the_embedding_only_when_stage0_can_fail():
    # The copies guard stage 0: with stage 0 exempt (the reference: it holds the data) none is
    # sent; with stage 0 able to fail, each iteration sends the embedding to stage 1 and the
    # head to stage S-1 from every stage-0 replica.
    runs = {}
    for exempt in ((0,), ()):
        result, policy = run_policy("checkfree_plus", until_s=30.0,
                                    faults=StageFailuresConfig(p_hour=0.0, exempt=exempt))
        runs[exempt] = (result.summary, policy.pipe)
    (guarded, pipe), (plain, _) = runs[()], runs[(0,)]
    assert guarded["steps"] == plain["steps"] >= 2
    copies = guarded["steps"] * len(pipe.placement.replicas[0]) * (pipe.embed_nbytes
                                                                   + pipe.head_nbytes)
    assert guarded["bytes_sent"] - plain["bytes_sent"] == pytest.approx(copies, rel=1e-12)
