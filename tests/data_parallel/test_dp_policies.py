"""The policies on tiny runs: compositions that must agree, traffic invariants, validation."""

import pytest
import torch

from policies.data_parallel.ddp import DDPConfig
from policies.data_parallel.diloco import DiLoCoConfig
from policies.data_parallel.gossip import GossipConfig
from policies.data_parallel.noloco import NoLoCoConfig
from policies.data_parallel.palsgd import PALSGDConfig
from policies.data_parallel.streaming_diloco import StreamingDiLoCoConfig, parameter_layers
from sim import collectives
from tests.data_parallel.helpers import run_policy, tiny_scenario, with_workload

SGD = dict(optimizer="sgd", momentum=0.0, lr=0.05, warmup_steps=0)


def test_ddp_replicas_stay_identical():
    _, ddp = run_policy(tiny_scenario("ddp", nodes=3, steps=4))
    flats = [learner.get_flat() for learner in ddp.learners]
    assert all(torch.equal(flats[0], f) for f in flats[1:])
    assert ddp.learners[0].step == 4


def test_diloco_h1_plain_averaging_is_ddp_with_sgd():
    # H = 1, lr_out = 1, μ = 0: φ ← mean_i(φ − γ g_i) = φ − γ·mean g, which is DDP with SGD.
    scen = with_workload(tiny_scenario("ddp", nodes=3, steps=4, workload=SGD), grad_clip=None)
    _, ddp = run_policy(scen)
    scen = with_workload(tiny_scenario("diloco", nodes=3, steps=5, workload=SGD, inner_steps=1,
                                       outer_lr=1.0, outer_momentum=0.0), grad_clip=None)
    _, diloco = run_policy(scen)
    assert diloco.outer.steps == [4]
    assert torch.allclose(diloco.outer.phi, ddp.learners[0].get_flat(), atol=1e-6)


def test_streaming_with_one_fragment_no_overlap_is_diloco():
    common = dict(nodes=3, steps=13, inner_steps=4)
    _, diloco = run_policy(tiny_scenario("diloco", **common))
    _, streaming = run_policy(tiny_scenario("streaming_diloco", num_fragments=1,
                                            overlap_steps=0, alpha=0.0, quantize=False,
                                            **common))
    assert diloco.outer.steps == streaming.outer.steps == [3]
    assert torch.equal(diloco.outer.phi, streaming.outer.phi)


def test_streaming_fragments_follow_layer_stride():
    scen = tiny_scenario("streaming_diloco", nodes=2, steps=1, inner_steps=6, num_fragments=3,
                         overlap_steps=1)
    _, pol = run_policy(scen)
    layers = parameter_layers(pol.learners[0].model)
    assert len(layers) == 5                    # embedding, 2 blocks, final norm, head
    sizes = [len(f) for f in pol.outer.fragments]
    assert sizes == [layers[0] + layers[3], layers[1] + layers[4], layers[2]]
    assert sorted(torch.cat(pol.outer.fragments).tolist()) == list(range(sum(layers)))


def test_streaming_alpha_changes_the_merge():
    def phi(alpha):
        _, pol = run_policy(tiny_scenario("streaming_diloco", nodes=2, steps=14, inner_steps=6,
                                          num_fragments=2, overlap_steps=1, alpha=alpha))
        return pol.learners[0].get_flat()
    assert not torch.equal(phi(0.0), phi(0.5))


def test_noloco_every_worker_pairs_and_sends_two_models():
    result, pol = run_policy(tiny_scenario("noloco", nodes=8, steps=31, timing_only=True,
                                           inner_steps=5, exchange="swap"))
    rec = result.recorder
    assert rec.messages_sent.min() >= 6                           # 6 rounds done
    assert rec.bytes_sent.sum() == rec.messages_sent.sum() * 2 * pol.timing.param_bytes
    events = rec.events()
    assert events.empty or "partner_missing" not in set(events.kind)


def test_noloco_is_deterministic():
    def go():
        result, pol = run_policy(tiny_scenario("noloco", nodes=4, steps=12, inner_steps=4))
        return result.trace_hash(), pol.phi[0]
    (h1, phi1), (h2, phi2) = go(), go()
    assert h1 == h2 and torch.equal(phi1, phi2)


def test_noloco_pair_update_keeps_pair_mean_of_slow_weights_close():
    # Pairing pulls slow weights together: after several rounds the spread of φ_i across
    # workers is far below the spread of their local progress θ_i − φ_i.
    _, pol = run_policy(tiny_scenario("noloco", nodes=4, steps=25, inner_steps=4))
    phis = torch.stack(pol.phi)
    assert (phis - phis.mean(0)).norm() < 0.5 * phis.mean(0).norm()


def test_palsgd_pulls_a_fraction_p_of_local_steps():
    result, pol = run_policy(tiny_scenario("palsgd", nodes=8, steps=404, timing_only=True,
                                           inner_steps=20, skip_probability=0.2,
                                           warmup_ddp_steps=4))
    local_steps = 8 * 400
    assert abs(sum(pol.pulls) / local_steps - 0.2) < 0.03
    # pulls take no compute time: busy time ≈ (K0 + (1 − p)·local) steps per node
    busy = result.recorder.node_time_breakdown().busy_s.sum()
    assert busy == pytest.approx((8 * 4 + local_steps - sum(pol.pulls)) * pol.step_s, rel=0.02)


def test_dpsgd_sends_its_model_to_each_neighbour_every_step():
    result, pol = run_policy(tiny_scenario("gossip", variant="dpsgd", nodes=6, steps=10,
                                           timing_only=True, graph="ring"))
    rec = result.recorder
    assert rec.bytes_sent.sum() == rec.messages_sent.sum() * pol.timing.param_bytes
    assert rec.messages_sent.min() >= 2 * 9 and rec.messages_sent.max() <= 2 * 11


def test_dpsgd_keeps_models_close_and_learns():
    result, pol = run_policy(tiny_scenario("gossip", variant="dpsgd", nodes=4, steps=30,
                                           graph="complete", run_extra={"eval_every": "1s"}))
    flats = torch.stack([learner.get_flat() for learner in pol.learners])
    assert (flats - flats.mean(0)).norm() < 0.05 * flats.mean(0).norm()
    curve = result.loss_curve()
    assert curve.value.iloc[-1] < curve.value.iloc[0] - 0.3


def test_adpsgd_averages_in_pairs():
    result, pol = run_policy(tiny_scenario("gossip", variant="adpsgd", nodes=4, steps=10,
                                           graph="ring"))
    rec = result.recorder
    assert pol.averagings >= 4 * 9
    assert rec.bytes_sent.sum() == pytest.approx(rec.messages_sent.sum() * pol.timing.param_bytes)


def test_allreduce_algorithm_changes_time():
    times = {}
    for algorithm in ("ring", "tree"):
        result, _ = run_policy(tiny_scenario("ddp", nodes=8, steps=3, timing_only=True,
                                             allreduce=algorithm))
        times[algorithm] = result.sim_time_s
    assert times["tree"] < times["ring"]        # 2·3 latency rounds instead of 2·7


@pytest.mark.parametrize("config, params, field", [
    (DDPConfig, {"allreduce": "star"}, "allreduce"),
    (DDPConfig, {"on_failure": "retry"}, "on_failure"),
    (DiLoCoConfig, {"inner_steps": 0}, "inner_steps"),
    (DiLoCoConfig, {"outer_momentum": 1.0}, "outer_momentum"),
    (DiLoCoConfig, {"drop_outer_gradient_p": 2.0}, "drop_outer_gradient_p"),
    (StreamingDiLoCoConfig, {"on_failure": "retry"}, "on_failure"),
    (StreamingDiLoCoConfig, {"inner_steps": 30, "num_fragments": 3, "overlap_steps": 10},
     "overlap_steps"),
    (StreamingDiLoCoConfig, {"alpha": -0.1}, "alpha"),
    (PALSGDConfig, {"skip_probability": 1.0}, "skip_probability"),
    (PALSGDConfig, {"warmup_ddp_steps": -1}, "warmup_ddp_steps"),
    (NoLoCoConfig, {"beta": 1.0}, "beta"),
    (NoLoCoConfig, {"gamma": 0.0}, "gamma"),
    (GossipConfig, {"graph": "star"}, "graph"),
    (GossipConfig, {"variant": "dadao"}, "variant"),
])
def test_configs_reject_bad_values_naming_the_field(config, params, field):
    with pytest.raises(ValueError, match=field):
        config(**params)


def final_model(pol):
    """The model a policy evaluates and the workers' mean model, as one flat tensor."""
    workers = torch.stack([learner.get_flat() for learner in pol.learners]).mean(0)
    if hasattr(pol, "outer"):
        return torch.cat([pol.outer.phi, workers])
    if hasattr(pol, "phi"):
        return torch.cat([torch.stack(pol.phi).mean(0), workers])
    return workers


@pytest.mark.parametrize("policy, base, changed", [
    ("diloco", dict(inner_steps=3), dict(outer_lr=0.3)),
    ("diloco", dict(inner_steps=3), dict(outer_momentum=0.5)),
    ("streaming_diloco", dict(inner_steps=6, num_fragments=2), dict(overlap_steps=2)),
    ("streaming_diloco", dict(inner_steps=6, num_fragments=2), dict(quantize=False)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2), dict(eta=1.0)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2), dict(warmup_ddp_steps=4)),
    ("noloco", dict(inner_steps=3), dict(beta=0.0)),
    ("noloco", dict(inner_steps=3), dict(gamma=0.3)),
    ("gossip", dict(variant="dpsgd"), dict(graph="complete")),
])
def test_each_parameter_changes_the_trained_model(policy, base, changed):
    nodes = 4 if policy == "gossip" else 2       # a ring of 2 or 3 is a complete graph
    _, a = run_policy(tiny_scenario(policy, nodes=nodes, steps=9, **base))
    _, b = run_policy(tiny_scenario(policy, nodes=nodes, steps=9, **{**base, **changed}))
    assert not torch.allclose(final_model(a), final_model(b))


def test_step_and_round_times_match_closed_forms():
    # uniform 10 ms, 1 Gbit/s links, no stragglers: a DDP step is compute + one ring all-reduce;
    # a DiLoCo round is H computes + one ring all-reduce (timing-only, so no math).
    alpha_s, beta_Bps = 0.010, 1e9 / 8
    result, ddp = run_policy(tiny_scenario("ddp", nodes=4, steps=3, timing_only=True))
    ring = collectives.ring_allreduce_cost(4, ddp.timing.grad_bytes, alpha_s, beta_Bps)
    assert result.sim_time_s == pytest.approx(3 * (ddp.step_s + ring), rel=1e-9)
    result, diloco = run_policy(tiny_scenario("diloco", nodes=4, steps=11, timing_only=True,
                                              inner_steps=5))
    # stops at the report of step 11: two rounds of (5 computes + all-reduce), one compute
    assert result.sim_time_s == pytest.approx(2 * (5 * diloco.step_s + ring) + diloco.step_s,
                                              rel=1e-9)


@pytest.mark.parametrize("variant", ["dpsgd", "adpsgd"])
def test_gossip_overlaps_communication_with_computation(variant):
    # ideal network: a model message costs α + m/β whatever else is in flight. Each step costs
    # max(compute, exchange) when overlapped (Lian et al.), their sum when not.
    def sim_time(overlap):
        result, pol = run_policy(tiny_scenario(
            "gossip", variant=variant, nodes=4, steps=10, timing_only=True, overlap=overlap,
            network={"model": "ideal"}, workload={"timing": "llama-125m"}))
        return result.summary["sim_time_s"], pol
    t_overlap, pol = sim_time(True)
    t_serial, _ = sim_time(False)
    message_s = 0.010 + pol.timing.param_bytes / (1e9 / 8)
    assert pol.step_s > 0 and message_s > pol.step_s          # communication-bound here
    assert t_overlap == pytest.approx(10 * max(pol.step_s, message_s), rel=1e-9)
    assert t_serial == pytest.approx(10 * (pol.step_s + message_s), rel=1e-9)
