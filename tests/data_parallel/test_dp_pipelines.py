"""Data parallelism over pipelines (DP x PP) with fixed or NoLoCo's random routing.

Oracles: permutations checked element by element (a bijection per sample and boundary, the same
from the same seed); the backward pass checked against the unsplit model carrying the route's
replicas' weights; iteration time against the hand sum of one microbatch's forward, hops, loss
and backward on an ideal network; the reference exchange per stage against its closed form.
"""

import numpy as np
import pytest
import torch

from policies.data_parallel.diloco import DiLoCo
from policies.data_parallel.noloco import reduce_to_root_cost_s
from policies.data_parallel.pipelines import boundary_permutation, replica_route
from policies.pipeline.executor import MicrobatchResult
from sim.errors import ScenarioError
from sim.runner import run
from tests.data_parallel.helpers import run_policy, tiny_scenario
from workloads.pipeline import compute_grad_across

LATENCY_S, BANDWIDTH_BPS = 0.010, 1e9 / 8


def pp_scenario(policy, *, stages=2, replicas=2, steps=4, routing="random", network=None,
                **params):
    params = dict(pipeline_stages=stages, routing=routing, **params)
    return tiny_scenario(policy, nodes=stages * replicas, steps=steps, network=network,
                         workload={"n_layers": max(2, stages)}, **params)


# -- routing ------------------------------------------------------------------------------------

def test_random_routing_is_a_bijection_per_sample_and_boundary():
    replicas, stages = 8, 4
    for sample in range(50):
        for boundary in range(stages - 1):
            perm = boundary_permutation(7, sample, boundary, replicas)
            assert sorted(perm.tolist()) == list(range(replicas))
        # the R microbatches of one sample occupy every replica of every stage exactly once
        routes = [replica_route(7, sample, r, stages, replicas, "random") for r in range(replicas)]
        for s in range(stages):
            assert sorted(route[s] for route in routes) == list(range(replicas))
            if s + 1 < stages:
                perm = boundary_permutation(7, sample, s, replicas)
                assert all(route[s + 1] == perm[route[s]] for route in routes)


def test_random_routing_is_reproducible_from_the_seed_and_actually_random():
    routes = lambda seed: [replica_route(seed, j, r, 4, 4, "random")          # noqa: E731
                           for j in range(20) for r in range(4)]
    assert routes(3) == routes(3)
    assert routes(3) != routes(4)
    assert len(set(routes(3))) > 4            # not the same few pipelines every time
    assert all(replica_route(3, j, r, 4, 4, "fixed") == (r,) * 4
               for j in range(5) for r in range(4))


def test_policy_routes_follow_the_seeded_permutations_and_are_reproducible():
    _, a = run_policy(pp_scenario("noloco", stages=2, replicas=4, steps=2, inner_steps=10))
    _, b = run_policy(pp_scenario("noloco", stages=2, replicas=4, steps=2, inner_steps=10))
    for k in range(3):
        mbs = a.pipeline.microbatches_of(k)
        assert [mb.route for mb in mbs] == [mb.route for mb in b.pipeline.microbatches_of(k)]
        for mb in mbs:
            assert a.pipeline.iteration_of(mb.index) == k          # numbers unique in the run
            r, sample = divmod(mb.index - k * 4 * a.pipeline.microbatches,
                               a.pipeline.microbatches)
            perm = boundary_permutation(a.pipeline.seed, k * a.pipeline.microbatches + sample, 0, 4)
            assert mb.route.nodes == (r, 4 + int(perm[r]))


# -- the math: forward through the route's replicas, backward retracing it ----------------------

def test_backward_retraces_the_route_into_exactly_its_replicas():
    _, pol = run_policy(pp_scenario("diloco", stages=2, replicas=2, steps=2, inner_steps=1))
    columns = pol.pipeline.columns
    for column in columns:
        column.zero_grad()
    state = columns[0].stream.state()
    loss = compute_grad_across([columns[0], columns[1]])        # route: replica 0, then 1
    # oracle: one unsplit staged model carrying exactly those replicas' weights
    oracle = pol.ctx.workload.make_pipeline_learner(2, rank=0, head_stage="last")
    oracle.set_stage_flat(0, columns[0].get_stage_flat(0))
    oracle.set_stage_flat(1, columns[1].get_stage_flat(1))
    columns[0].stream.set_state(state)          # the same batch again
    oracle.stream = columns[0].stream
    assert oracle.compute_grad() == pytest.approx(loss, rel=1e-6)
    assert torch.allclose(columns[0].get_stage_flat_grad(0), oracle.get_stage_flat_grad(0),
                          atol=1e-7)
    assert torch.allclose(columns[1].get_stage_flat_grad(1), oracle.get_stage_flat_grad(1),
                          atol=1e-7)
    # replicas the route did not visit received nothing
    assert float(columns[1].get_stage_flat_grad(0).abs().sum()) == 0.0
    assert float(columns[0].get_stage_flat_grad(1).abs().sum()) == 0.0


def test_iteration_time_is_one_microbatchs_round_trip_on_an_ideal_network():
    # 2 stages x 2 replicas, M = 1: the two microbatches use disjoint nodes (a bijection), so
    # one iteration = F0 + hop + F1 + L + B1 + hop + B0 (loss on the last stage, no return hop).
    # Each data replica (stage 0) takes exactly that per iteration, back to back; a stage-1
    # replica ends its first iteration at its own backward, F0 + hop + F1 + L + B1, then one
    # round trip per iteration.
    result, pol = run_policy(pp_scenario("diloco", stages=2, replicas=2, steps=4,
                                         network={"model": "ideal"}, inner_steps=100))
    c = pol.pipeline.costs
    hop = LATENCY_S + c.activation_nbytes / BANDWIDTH_BPS
    by_hand = sum(c.forward_s) + sum(c.backward_s) + c.loss_s + 2 * hop
    first_stage1 = c.forward_s[0] + hop + c.forward_s[1] + c.loss_s + c.backward_s[1]
    rows = result.history.query("metric == 'stage_iteration_s'")
    for node in (0, 1):
        mine = rows[rows.node == node].iloc[:3]
        assert list(mine.value) == pytest.approx([by_hand] * 3, rel=1e-9)
        assert list(mine.time_s) == pytest.approx([by_hand * k for k in (1, 2, 3)], rel=1e-9)
    for node in (2, 3):
        mine = rows[rows.node == node]
        assert len(mine) == 4
        assert list(mine.time_s) == pytest.approx(
            [first_stage1 + by_hand * k for k in range(len(mine))], rel=1e-9)


def test_stage_replicas_step_their_own_stage_only():
    _, pol = run_policy(pp_scenario("noloco", stages=2, replicas=2, steps=3, inner_steps=100))
    learners = pol.learners
    # four workers, four different weight vectors (own data, own routes), two stage shapes
    flats = [lr.get_flat() for lr in learners]
    assert flats[0].numel() == flats[1].numel() != flats[2].numel() == flats[3].numel()
    assert not torch.equal(flats[0], flats[1]) and not torch.equal(flats[2], flats[3])
    # the run stops when the first worker ends step 3: the stage-1 replicas, whose part of an
    # iteration ends with their backward, before the data replicas' backward
    assert [lr.step for lr in learners] == [2, 2, 3, 3]


# -- outer steps per stage group -----------------------------------------------------------------

class _DiLoCoProbe(DiLoCo):
    """DiLoCo that keeps every worker's weights as it enters iteration 4 (after outer step 0)."""

    def setup(self, ctx):
        super().setup(ctx)
        self.seen, self.seen_phi = {}, {}
        gradient = self.pipeline.gradient

        def probe(node, iteration=None):
            if iteration == 4:
                self.seen[node.id] = self.learners[node.id].get_flat()
                self.seen_phi[node.id] = self.outers[self.group_of[node.id]].phi.clone()
            return gradient(node, iteration)
        self.pipeline.gradient = probe


def test_diloco_outer_step_all_reduces_each_stage_among_its_replicas():
    scenario = pp_scenario("diloco", stages=2, replicas=2, steps=6, inner_steps=4)
    pol = _DiLoCoProbe(**scenario.policy.params)
    run(scenario, pol)
    # right after the outer step every replica of a stage holds that stage's φ
    assert sorted(pol.seen) == [0, 1, 2, 3]
    for s, group in enumerate(pol.pipeline.stage_groups()):
        for i in group:
            assert torch.equal(pol.seen[i], pol.seen_phi[i])
            assert pol.seen[i].numel() == pol.pipeline.columns[0].stage_num_params(s)
    assert [g.members for g in pol.groups] == [[0, 1], [2, 3]]
    assert [g.nbytes for g in pol.groups] == pytest.approx(list(pol.pipeline.costs.grad_nbytes))


def test_noloco_pairs_inside_each_stage_and_exchanges_that_stages_tensors():
    result, pol = run_policy(pp_scenario("noloco", stages=2, replicas=2, steps=6, inner_steps=4,
                                         network={"model": "ideal"}))
    for r in range(3):
        for i in range(4):
            assert pol.pipeline.stage_of(pol.partner_of(i, r)) == pol.pipeline.stage_of(i)
    b = pol.timing.bytes_per_param
    tensors = pol.timing.stage_tensor_params(2, head_stage="last")
    assert [sum(t) for t in tensors] == [pol.pipeline.columns[0].stage_num_params(s)
                                         for s in range(2)]
    sync = result.history.query("metric == 'sync_s'")
    for s in range(2):
        closed = reduce_to_root_cost_s([2 * n * b for n in tensors[s]], LATENCY_S, BANDWIDTH_BPS)
        for i in pol.pipeline.stage_groups()[s]:
            assert sync[sync.node == i].value.iloc[0] == pytest.approx(closed, rel=1e-9)


def test_evaluation_scores_each_fixed_route_model():
    result, pol = run_policy(pp_scenario("noloco", stages=2, replicas=2, steps=6, inner_steps=4))
    batches = pol.ctx.run.eval_batches
    losses = pol.evaluate_workers(pol.ctx)
    direct = [column.eval_loss(batches) for column in pol.pipeline.columns]
    assert [losses.per_worker[r] for r in range(2)] == pytest.approx(direct, rel=1e-6)
    assert losses.mean == pytest.approx(np.mean(direct), rel=1e-6)
    # the averaged model: each stage's mean φ, evaluated as one model
    column = pol.pipeline.columns[0]
    own = column.get_flat()
    column.set_flat(torch.cat([torch.stack([pol.phi[0], pol.phi[1]]).mean(0),
                               torch.stack([pol.phi[2], pol.phi[3]]).mean(0)]))
    by_hand = column.eval_loss(batches)
    column.set_flat(own)
    assert losses.averaged == pytest.approx(by_hand, rel=1e-6)


def test_timing_only_runs_over_pipelines():
    result, pol = run_policy(pp_scenario("diloco", stages=2, replicas=3, steps=6, inner_steps=3,
                                         timing_only=True))
    assert result.steps == 6


def test_node_count_must_be_stages_times_replicas():
    scenario = tiny_scenario("noloco", nodes=6, steps=2, pipeline_stages=4,
                             workload={"n_layers": 4})
    with pytest.raises(ScenarioError, match="pipeline_stages"):
        run_policy(scenario)


def test_routing_must_be_named():
    with pytest.raises(ValueError, match="routing"):
        tiny_scenario("noloco", pipeline_stages=2, routing="shuffle")


def test_the_math_does_not_depend_on_which_microbatch_finishes_first():
    # on another network microbatches reach the last stage (where their math runs) in another
    # order; each worker sums its microbatches' gradients in microbatch order, and the data
    # replicas drew their batches in that order when they entered the iteration
    _, pol = run_policy(pp_scenario("noloco", stages=2, replicas=2, steps=2, inner_steps=10,
                                    pipeline_microbatches=3))
    hooks, columns = pol.pipeline, pol.pipeline.columns
    saved = [column.snapshot() for column in columns]
    k = 5
    mbs = hooks.microbatches_of(k)
    flats = []
    for order in (mbs, mbs[::-1]):
        for column, state in zip(columns, saved):
            column.restore(state)
        hooks._iterations.pop(k, None)
        hooks._ended.pop(k, None)
        for n in range(4):
            hooks._enter(n, k)
        for mb in order:                                    # forward reaches the last stage
            hooks.task_done(hooks.executor, mb, 1, "forward")
        for mb in order:                                    # backward at stage 1, then 0
            for position in (1, 0):
                hooks.task_done(hooks.executor, mb, position, "backward")
            hooks.microbatch_done(hooks.executor, mb, MicrobatchResult(
                microbatch=mb, ok=True, start_s=0.0, end_s=0.0))
        assert all(hooks._done[n].triggered for n in range(4))
        for learner in pol.learners:
            learner.optimizer_step()
        flats.append(torch.cat([column.get_flat() for column in columns]))
    assert torch.equal(flats[0], flats[1])
    for column, state in zip(columns, saved):
        column.restore(state)
    assert not torch.equal(flats[0], torch.cat([column.get_flat() for column in columns]))
