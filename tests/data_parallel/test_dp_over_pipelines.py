"""Every data-parallel policy over pipelines (DP x PP): one mechanism, each policy's own rule.

Oracles: equivalences that hold step for step (Streaming DiLoCo with one fragment, no overlap,
no merge and no quantisation is DiLoCo; eager DiLoCo without delay is DiLoCo; quorum DiLoCo
with the full quorum is DiLoCo: the same per-stage φ); DDP's stage replicas stay identical;
gossip graphs stay inside a stage; the engine's invariants (bytes sent = received + cut + in
flight, time = busy + communicating + idle + down on every node); the same seed gives the same
trace; hand-worked times on an ``ideal`` network for the waiting rule (a worker waits only for
its pipeline neighbours and its pair partner, as in the NoLoCo reference).
"""

import dataclasses

import pytest
import torch

from sim.errors import ScenarioError
from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

LATENCY_S, BANDWIDTH_BPS = 0.010, 1e9 / 8


def pp_scenario(policy, *, stages=2, replicas=2, steps=8, routing="random", network=None,
                cluster=None, failures=None, timing_only=False, **params):
    scenario = tiny_scenario(policy, nodes=stages * replicas, steps=steps, network=network,
                             failures=failures, timing_only=timing_only,
                             workload={"n_layers": max(2, stages)},
                             pipeline_stages=stages, routing=routing, **params)
    if cluster:
        scenario = dataclasses.replace(
            scenario, cluster=dataclasses.replace(scenario.cluster, **cluster))
    return scenario


def assert_invariants(result):
    """Bytes are delivered, cut or in flight; every node's time splits exactly."""
    rec = result.recorder
    in_flight = result.world.network.bytes_in_flight
    assert rec.bytes_sent.sum() == pytest.approx(rec.bytes_received.sum() + rec.bytes_cut.sum()
                                                 + in_flight)
    b = rec.node_time_breakdown()
    total = b.busy_s + b.comm_s + b.idle_s + b.down_s
    assert total.tolist() == pytest.approx([result.sim_time_s] * len(total))
    assert (b[["busy_s", "comm_s", "idle_s", "down_s"]] >= -1e-9).all().all()


POLICIES = [
    ("ddp", {}),
    ("diloco", {"inner_steps": 3}),
    ("noloco", {"inner_steps": 3}),
    ("streaming_diloco", {"inner_steps": 4, "num_fragments": 2, "overlap_steps": 1}),
    ("eager_diloco", {"inner_steps": 3}),
    ("co2", {"inner_steps": 3}),
    ("compressed_diloco", {"inner_steps": 3}),
    ("quorum_diloco", {"inner_steps": 3, "quorum_fraction": 0.5}),
    ("gossip", {"variant": "dpsgd"}),
    ("gossip", {"variant": "adpsgd"}),
]


@pytest.mark.parametrize(("policy", "params"), POLICIES,
                         ids=[f"{p}-{v.get('variant', '')}" for p, v in POLICIES])
def test_every_policy_runs_over_two_stages_of_two_replicas(policy, params):
    result, pol = run_policy(pp_scenario(policy, steps=8, **params))
    assert result.steps == 8
    assert pol.sync_groups() == [[0, 1], [2, 3]]
    assert_invariants(result)
    # every worker trained its own stage: weights of that stage's size, moved from the start
    stage_sizes = [pol.pipeline.columns[0].stage_num_params(s) for s in range(2)]
    for i, learner in enumerate(pol.learners):
        assert learner.get_flat().numel() == stage_sizes[pol.pipeline.stage_of(i)]
        assert learner.step >= 6
    losses = pol.evaluate_workers(pol.ctx)
    assert losses is not None and losses.best <= losses.mean <= losses.worst
    # the same seed gives the same trace
    again, _ = run_policy(pp_scenario(policy, steps=8, **params))
    assert again.trace_hash() == result.trace_hash()
    # and the clock alone runs the same schedule
    timed, _ = run_policy(pp_scenario(policy, steps=8, timing_only=True, **params))
    assert timed.steps == 8
    assert_invariants(timed)


def test_ddp_over_pipelines_keeps_each_stages_replicas_identical():
    result, pol = run_policy(pp_scenario("ddp", steps=6, routing="random"))
    flats = [learner.get_flat() for learner in pol.learners]
    assert torch.equal(flats[0], flats[1]) and torch.equal(flats[2], flats[3])
    assert not torch.equal(flats[0][: 10], pol.pipeline.columns[0].get_stage_flat(1)[: 10])
    # one all-reduce group per stage, of that stage's gradient
    assert [g.members for g in pol.groups] == [[0, 1], [2, 3]]
    assert [g.nbytes for g in pol.groups] == pytest.approx(list(pol.pipeline.costs.grad_nbytes))


def _phis(pol):
    if hasattr(pol, "outers"):
        return [outer.phi for outer in pol.outers]
    return [state.phi for state in pol.states]


@pytest.mark.parametrize(("policy", "params"), [
    ("streaming_diloco", {"num_fragments": 1, "overlap_steps": 0, "alpha": 0.0,
                          "quantize": False}),
    ("eager_diloco", {"delay_rounds": 0}),
    ("quorum_diloco", {"quorum_fraction": 1.0}),
])
def test_diloco_variants_reduce_to_diloco_over_pipelines(policy, params):
    # H = 3, 10 steps: three outer steps per stage group; the run stops before the fourth
    diloco, dpol = run_policy(pp_scenario("diloco", steps=10, inner_steps=3))
    other, opol = run_policy(pp_scenario(policy, steps=10, inner_steps=3, **params))
    assert [outer.steps for outer in dpol.outers] == [[3], [3]]
    for a, b in zip(_phis(dpol), _phis(opol), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(dpol.learners, opol.learners):
        assert torch.allclose(a.get_flat(), b.get_flat(), rtol=1e-5, atol=1e-6)


def test_streaming_fragments_are_each_stages_layers():
    _, pol = run_policy(pp_scenario("streaming_diloco", steps=4, inner_steps=4,
                                    num_fragments=2, overlap_steps=0, quantize=False))
    for k, groups in enumerate(pol.fragment_groups):
        assert [g.members for g in groups] == [pol.sync_groups()[k]] * 2
        assert [g.nbytes for g in groups] == pytest.approx([pol.group_nbytes(k) / 2] * 2)
        idx = torch.cat(list(pol.outers[k].fragments))
        assert sorted(idx.tolist()) == list(range(pol.learners[pol.sync_groups()[k][0]]
                                                  .get_flat().numel()))


def test_gossip_graphs_stay_inside_a_stage():
    _, pol = run_policy(pp_scenario("gossip", stages=2, replicas=4, steps=3, graph="ring"))
    assert pol.neighbours == [[1, 3], [0, 2], [1, 3], [0, 2], [5, 7], [4, 6], [5, 7], [4, 6]]
    w = pol.weights
    assert w[0, 4] == 0.0 and w[:4, 4:].sum() == 0.0
    assert w.sum(axis=1).tolist() == pytest.approx([1.0] * 8)


@pytest.mark.parametrize("policy", ["palsgd", "poisson_gossip"])
def test_methods_not_defined_over_pipelines_refuse_with_a_reason(policy):
    with pytest.raises(ScenarioError, match=r"^policy\.pipeline_stages: must be 1") as err:
        tiny_scenario(policy, pipeline_stages=2)
    assert "stage replica" in str(err.value)


# -- the waiting rule ------------------------------------------------------------------------

def test_a_slow_replica_delays_only_the_workers_that_depend_on_it():
    # 2 stages x 2 replicas, fixed routes (pipelines 0 -> 2 and 1 -> 3), NoLoCo with H = 2 and
    # the one-round swap, ideal network. Node 1 (stage 0 of pipeline 1) computes at half speed.
    # Pipeline 0 runs at its own pace: its stage-0 worker ends iteration k at k·T, its stage-1
    # worker at a + (k−1)·T (it ends each iteration at its backward). Pipeline 1 the same with
    # T', a'. The outer step waits only for the pair partner (0 with 1, 2 with 3, pairs inside
    # a stage): node 0 waits 2T' − 2T, node 2 waits (a' + T') − (a + T), then the swap's
    # delivery; their partners find the message sent when the fast one arrived in flight.
    # (With a barrier per inner step, pipeline 0 would run at T'.)
    result, pol = run_policy(pp_scenario(
        "noloco", steps=3, routing="fixed", network={"model": "ideal"},
        cluster={"speed": {"dist": "list", "values": [1.0, 0.5, 1.0, 1.0]}},
        inner_steps=2, exchange="swap"))
    c = pol.pipeline.costs
    hop = LATENCY_S + c.activation_nbytes / BANDWIDTH_BPS
    F, B, L = c.forward_s, c.backward_s, c.loss_s
    T = F[0] + F[1] + L + B[1] + B[0] + 2 * hop
    T_slow = 2 * F[0] + F[1] + L + B[1] + 2 * B[0] + 2 * hop
    a = F[0] + hop + F[1] + L + B[1]
    a_slow = 2 * F[0] + hop + F[1] + L + B[1]
    rows = result.history.query("metric == 'stage_iteration_s'")
    ends = {n: list(rows[rows.node == n].time_s)[:2] for n in range(4)}
    assert ends[0] == pytest.approx([T, 2 * T], rel=1e-9)
    assert ends[1] == pytest.approx([T_slow, 2 * T_slow], rel=1e-9)
    assert ends[2] == pytest.approx([a, a + T], rel=1e-9)
    assert ends[3] == pytest.approx([a_slow, a_slow + T_slow], rel=1e-9)
    swap = [LATENCY_S + 2 * pol.group_nbytes(s) / BANDWIDTH_BPS for s in range(2)]
    sync = result.history.query("metric == 'sync_s'")
    first = {n: sync[sync.node == n].value.iloc[0] for n in range(4)}
    assert first[0] == pytest.approx(2 * T_slow - 2 * T + swap[0], rel=1e-9)
    # the slow one finds its partner's message on the way since the partner arrived (swap)
    assert first[1] == pytest.approx(max(0.0, 2 * T + swap[0] - 2 * T_slow), rel=1e-9)
    assert first[2] == pytest.approx((a_slow + T_slow) - (a + T) + swap[1], rel=1e-9)
    assert first[3] == pytest.approx(max(0.0, a + T + swap[1] - (a_slow + T_slow)), rel=1e-9)


# -- failures over pipelines -----------------------------------------------------------------

@pytest.mark.parametrize(("policy", "params", "crashed"), [
    ("diloco", {"inner_steps": 3, "on_failure": "drop"}, 2),
    ("diloco", {"inner_steps": 3, "on_failure": "drop"}, 0),
    ("noloco", {"inner_steps": 3}, 2),
    ("ddp", {"on_failure": "drop"}, 2),
    ("gossip", {"variant": "dpsgd"}, 2),
])
def test_a_crash_during_dp_x_pp(tmp_path, policy, params, crashed):
    # a replica (stage 1, or a stage-0 data replica) crashes at 0.2 s and is back at 0.6 s.
    # Microbatches routed through it fail (the others train on), it leaves its stage group
    # (drop) or its pair, and it comes back with its stage's weights from the other replica of
    # its stage, entering the iteration its group is at. The engine's invariants hold.
    scenario = pp_scenario(policy, steps=40,
                           failures=crash_trace(tmp_path, [(0.2, crashed, 0.4)]), **params)
    result, pol = run_policy(scenario)
    peer = crashed ^ 1                        # the other replica of its stage (R = 2)
    survivor = 0 if crashed == 2 else 1       # a worker it shares no stage group with, or one
    assert result.steps == 40
    assert_invariants(result)
    ev = result.recorder.events()
    assert (ev.kind == "microbatch_failed").sum() >= 1
    rejoin = ev[(ev.kind == "rejoin") & (ev.node == crashed)]
    assert len(rejoin) == 1 and rejoin.time_s.iloc[0] >= 0.6
    fetched = ev[(ev.kind == "rejoin_fetch") & (ev.node == crashed)]
    assert list(fetched.peer) == [peer]
    # the rejoined worker trains again: it took part in iterations after its return
    rows = result.history.query("metric == 'stage_iteration_s'")
    assert (rows[rows.node == crashed].time_s > 0.6).sum() >= 3
    # and the others never stopped for it: a survivor kept ending iterations while it was down
    other = rows[rows.node == survivor].time_s
    assert ((other > 0.25) & (other < 0.6)).sum() >= 2
    assert all(torch.isfinite(learner.get_flat()).all() for learner in pol.learners)


def test_under_random_routing_a_slow_replica_reaches_every_pipeline():
    # node 1 at a tenth of the speed (its F0 + B0 take 10x: more than the hops' slack), and
    # microbatches switch pipelines at random: the fast data replica now meets the slow
    # pipeline and falls behind its own pace T, though not to the slow pipeline's T'
    runs = {}
    for routing in ("fixed", "random"):
        result, pol = run_policy(pp_scenario(
            "diloco", steps=8, routing=routing, network={"model": "ideal"},
            cluster={"speed": {"dist": "list", "values": [1.0, 0.1, 1.0, 1.0]}},
            inner_steps=100))
        rows = result.history.query("metric == 'stage_iteration_s' and node == 0")
        runs[routing] = float(rows.time_s.iloc[5])          # node 0 ends its 6th iteration
    c = pol.pipeline.costs
    hop = LATENCY_S + c.activation_nbytes / BANDWIDTH_BPS
    T = sum(c.forward_s) + sum(c.backward_s) + c.loss_s + 2 * hop
    T_slow = T + 9 * (c.forward_s[0] + c.backward_s[0])
    assert runs["fixed"] == pytest.approx(6 * T, rel=1e-9)
    assert 6 * T * 1.1 < runs["random"] < 6 * T_slow


def test_quorum_diloco_over_pipelines_goes_ahead_without_the_slow_pipeline():
    # fixed routes, node 1 (stage 0 of pipeline 1) at a tenth of the speed, q = ceil(0.5·2) = 1:
    # in stage 0 the fast replica starts rounds alone and the slow one becomes late: it cuts its
    # block short, hands in its partial block and catches up (then, with blocks out of phase,
    # others can be late too)
    result, pol = run_policy(pp_scenario(
        "quorum_diloco", steps=12, routing="fixed", inner_steps=3, quorum_fraction=0.5,
        cluster={"speed": {"dist": "list", "values": [1.0, 0.1, 1.0, 1.0]}}))
    assert pol.quorum == 1
    assert_invariants(result)
    ev = result.recorder.events()
    late = ev[ev.kind == "late_block"]
    assert 1 in set(late.node)
    assert pol.versions[0] >= 3 and pol.versions[1] >= 3
    # rounds weight each member by its tokens: a round with the slow replica's partial block
    # gives it less than half
    assert any(0 < w[1] < 0.5 for w in pol.weights if 1 in w)
    assert all(sum(w.values()) == pytest.approx(1.0) for w in pol.weights)
