"""Quorum DiLoCo against hand-worked timelines and against DiLoCo itself.

Timing-only runs on 4 workers, 1 Gbit/s links 10 ms apart (fluid transport: a ring all-reduce
takes its closed form), H = 10 inner steps of T seconds; worker 3 runs at speed 0.4 (a step
takes 2.5 T) where a straggler is wanted.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from policies.data_parallel.quorum import QuorumDiLoCoConfig
from sim import collectives as C
from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

ALPHA, BETA = 0.010, 1e9 / 8
H = 10


def _scenario(policy, *, speeds=None, steps=40, timing_only=True, failures=None, **params):
    scen = tiny_scenario(policy, nodes=4, steps=steps, timing_only=timing_only,
                         network={"transport": "fluid"}, inner_steps=H, failures=failures,
                         **params)
    if speeds is not None:
        cluster = dataclasses.replace(scen.cluster, speed={"dist": "list", "values": speeds})
        scen = dataclasses.replace(scen, cluster=cluster)
    return scen


def _sync_of(result, node):
    h = result.history
    return h[(h.metric == "sync_s") & (h.node == node)].sort_values("time_s")


def test_quorum_proceeds_without_the_slowest_worker_and_weights_by_tokens():
    result, pol = run_policy(_scenario("quorum_diloco", speeds=[1, 1, 1, 0.4],
                                       quorum_fraction=0.75))
    T, grad = pol.step_s, pol.timing.grad_bytes
    ring3 = C.ring_allreduce_cost(3, grad, ALPHA, BETA)
    # round 0: workers 0-2 arrive at H T, the quorum of 3 starts at once, without worker 3
    assert pol.quorum == 3
    assert pol.weights[0] == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    assert pol.group.sync_seconds[0] == pytest.approx(ring3, rel=1e-6)
    first = _sync_of(result, 0).iloc[0]
    assert first.time_s == pytest.approx(H * T + ring3, rel=1e-6)
    # worker 3 is late: it sees phi^1 at the end of its step j (steps end at 2.5 T j) and hands
    # in j steps' worth to round 1; the three others hand in H steps each
    j = math.floor((H * T + ring3) / (2.5 * T)) + 1
    assert j < H
    late = result.recorder.events().query("kind == 'late_block' and node == 3")
    assert late.steps.iloc[0] == j
    share = {0: H, 1: H, 2: H, 3: j}
    assert pol.weights[1] == pytest.approx({m: n / (3 * H + j) for m, n in share.items()})
    # and it caught up by downloading phi from a peer
    fetches = result.recorder.events().query("kind == 'rejoin_fetch' and node == 3")
    assert list(fetches.nbytes[:1]) == [pol.timing.param_bytes]


def test_synchronous_diloco_waits_for_the_slowest_instead():
    result, pol = run_policy(_scenario("diloco", speeds=[1, 1, 1, 0.4]))
    T, grad = pol.step_s, pol.timing.grad_bytes
    first = _sync_of(result, 0).iloc[0]
    ring4 = C.ring_allreduce_cost(4, grad, ALPHA, BETA)
    assert first.time_s == pytest.approx(2.5 * H * T + ring4, rel=1e-6)


def test_grace_window_starts_the_round_before_the_quorum():
    grace_steps = 3
    # quorum of all four, but a round starts 3 T after its first full block whatever the quorum
    T = run_policy(_scenario("quorum_diloco", steps=1))[1].step_s
    result, pol = run_policy(_scenario("quorum_diloco", speeds=[1, 1, 1, 0.4],
                                       quorum_fraction=1.0, grace_window_s=grace_steps * T))
    ring3 = C.ring_allreduce_cost(3, pol.timing.grad_bytes, ALPHA, BETA)
    first = _sync_of(result, 0).iloc[0]
    assert first.value == pytest.approx(grace_steps * T + ring3, rel=1e-6)
    assert sorted(pol.weights[0]) == [0, 1, 2]


def test_the_quorum_counts_live_workers_only(tmp_path):
    T = run_policy(_scenario("quorum_diloco", steps=1))[1].step_s
    # a quorum of all four, but worker 3 crashes mid-block for a long time: the three others
    # still take round 0 as soon as they arrive
    crash = crash_trace(tmp_path, [(0.5 * H * T, 3, 100.0)])
    result, pol = run_policy(_scenario("quorum_diloco", quorum_fraction=1.0, failures=crash))
    ring3 = C.ring_allreduce_cost(3, pol.timing.grad_bytes, ALPHA, BETA)
    assert _sync_of(result, 0).iloc[0].time_s == pytest.approx(H * T + ring3, rel=1e-6)
    assert sorted(pol.weights[0]) == [0, 1, 2]


def test_a_quorum_of_everyone_is_diloco_step_for_step():
    runs = {}
    for policy, extra in [("diloco", {}), ("quorum_diloco", {"quorum_fraction": 1.0})]:
        runs[policy] = run_policy(_scenario(policy, steps=30, timing_only=False, **extra))
    (r_d, diloco), (r_q, quorum) = runs["diloco"], runs["quorum_diloco"]
    assert torch.allclose(diloco.outer.phi, quorum.outer.phi, rtol=1e-5, atol=1e-6)
    assert r_q.sim_time_s == pytest.approx(r_d.sim_time_s, rel=1e-9)
    assert all(w == pytest.approx(0.25) for rnd in quorum.weights for w in rnd.values())


def test_real_training_with_a_straggler_decreases_the_loss():
    result, pol = run_policy(_scenario("quorum_diloco", speeds=[1, 1, 1, 0.4], steps=60,
                                       timing_only=False))
    h = result.history
    losses = h[h.metric == "loss"].sort_values("time_s").value
    assert losses.tail(8).mean() < losses.head(8).mean()
    assert torch.isfinite(pol.outer.phi).all()


@pytest.mark.parametrize("field, value", [("quorum_fraction", 0.0), ("quorum_fraction", 1.5),
                                          ("grace_window_s", -1.0), ("inner_steps", 0),
                                          ("collective_timeout_s", -2.0)])
def test_bad_fields_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        QuorumDiLoCoConfig(**{field: value})


def test_an_aborted_round_takes_back_what_arrived_while_it_ran():
    # members 0-2 hand in full blocks at t = 0 and their all-reduce starts (quorum 3); member 3
    # hands in at 0.5 s (to the next round: this one is running); member 2 fails at 1 s inside
    # the all-reduce, which aborts at 1 + T. Round 0 then has 0, 1 and 3: a quorum again, so it
    # re-runs at once among them and member 3 gets round 0's result.
    from policies.data_parallel.quorum import QuorumGroup
    from tests.engine.conftest import make_world

    alpha, beta, m, timeout_s = 0.02, 1e6, 4e6, 2.0
    world = make_world(4, model="maxmin", latency_s=alpha, bandwidth_Bps=beta)
    group = QuorumGroup(world, [0, 1, 2, 3], quorum=3, grace_window_s=None, nbytes=m,
                        timeout_s=timeout_s, combine=lambda mean, parts, r: (r, tuple(parts)))
    seen = {}

    def member(i, at_s):
        yield world.env.timeout(at_s)
        value = yield group.contribute(i, None, 1.0, full=True)
        seen[i] = (world.now, value)

    def faults():
        yield world.env.timeout(1.0)
        world.nodes[2].fail()

    for i, at_s in [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.5)]:
        world.env.process(member(i, at_s))
    world.env.process(faults())
    world.env.run(until=100.0)
    done_s = 1.0 + timeout_s + C.ring_allreduce_cost(3, m, alpha, beta)
    for i in (0, 1, 3):
        assert seen[i][0] == pytest.approx(done_s, rel=1e-9)
        assert seen[i][1] == (0, (0, 1, 3))
