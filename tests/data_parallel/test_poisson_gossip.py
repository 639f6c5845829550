"""Poisson-clock gossip (DADAO's clocks): the clocks, the queue, the exchanges, the averages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from policies.data_parallel.poisson_gossip import PoissonGossipConfig
from sim import collectives as C
from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

ALPHA, BETA = 0.010, 1e9 / 8


def _run(nodes=4, steps=None, until_s=None, timing_only=True, failures=None, **params):
    run_extra = {} if until_s is None else {"until": f"{until_s}s"}
    scen = tiny_scenario("poisson_gossip", nodes=nodes, steps=steps, timing_only=timing_only,
                         network={"transport": "fluid"}, failures=failures,
                         run_extra=run_extra, **params)
    return run_policy(scen)


def test_clocks_are_poisson_at_the_configured_rates():
    result, pol = _run(nodes=4, steps=400, grad_rate_per_step_time=0.5,
                       gossip_rate_per_step_time=0.2)
    events = result.recorder.events()
    T = pol.step_s
    for node in range(4):
        rings = np.sort(events.query(f"kind == 'grad_clock' and node == {node}").time_s.values)
        gaps = np.diff(np.concatenate([[0.0], rings]))
        # exponential inter-ring times of mean T / 0.5 (Kolmogorov-Smirnov, fixed seed)
        assert stats.kstest(gaps, "expon", args=(0, T / 0.5)).pvalue > 1e-3
        assert gaps.mean() == pytest.approx(T / 0.5, rel=0.15)
    # each of the 4 ring edges rang about 0.2/T per second (busy rings are skipped, not lost)
    horizon = result.sim_time_s
    exchanges = pol.averagings + len(events.query("kind == 'edge_busy'"))
    expected = 4 * 0.2 / T * horizon
    assert abs(exchanges - expected) < 4 * np.sqrt(expected)


def test_steps_queue_behind_each_other_by_lindleys_recursion():
    result, pol = _run(nodes=2, steps=60, grad_rate_per_step_time=0.8)
    T = pol.step_s
    events = result.recorder.events()
    iv = result.recorder.intervals()
    for node in range(2):
        rings = np.sort(events.query(f"kind == 'grad_clock' and node == {node}").time_s.values)
        busy = iv[(iv.node == node) & (iv.kind == "busy")].sort_values("start_s")
        busy = busy.iloc[:-1]                      # (the last one is cut at the run's end)
        end, starts = 0.0, []
        for ring in rings[:len(busy)]:
            start = max(ring, end)                 # start_k = max(ring_k, end_{k-1})
            starts.append(start)
            end = start + T
        assert busy.start_s.values == pytest.approx(starts, rel=1e-9, abs=1e-12)
        assert (busy.end_s - busy.start_s).values == pytest.approx([T] * len(busy))


def test_an_exchange_takes_the_pairwise_closed_form_and_averages_exactly():
    # two workers, one edge, no gradient steps: pure consensus
    result, pol = _run(nodes=2, until_s=0.5, timing_only=False, grad_rate_per_step_time=0.0,
                       gossip_rate_per_step_time=0.5)
    h = result.history
    durations = h[h.metric == "exchange_s"].value.values
    assert len(durations) >= 1
    assert durations == pytest.approx(
        [C.pairwise_exchange_cost(pol.timing.param_bytes, ALPHA, BETA)] * len(durations),
        rel=1e-6)
    assert torch.equal(pol.learners[0].get_flat(), pol.learners[1].get_flat())


def test_consensus_keeps_the_sum_and_shrinks_the_disagreement():
    # distinct starting models: perturb each worker, then run pure consensus on a ring of 4
    scen = tiny_scenario("poisson_gossip", nodes=4, steps=None, timing_only=False,
                         network={"transport": "fluid"}, run_extra={"until": "2s"},
                         grad_rate_per_step_time=0.0, gossip_rate_per_step_time=1.0)
    from sim.policy import get_policy
    from sim.runner import run

    pol = get_policy("poisson_gossip")(**scen.policy.params)
    original_setup = pol.setup

    def setup(ctx):
        original_setup(ctx)
        gen = torch.Generator().manual_seed(0)
        for learner in pol.learners:
            flat = learner.get_flat()
            learner.set_flat(flat + torch.randn(flat.shape, generator=gen))
        pol.start_sum = sum(learner.get_flat() for learner in pol.learners)
        pol.start_spread = _spread(pol)

    pol.setup = setup
    run(scen, pol)
    end_sum = sum(learner.get_flat() for learner in pol.learners)
    assert torch.allclose(end_sum, pol.start_sum, atol=1e-4)
    assert pol.averagings >= 8
    assert _spread(pol) < 0.5 * pol.start_spread


def _spread(pol):
    flats = torch.stack([learner.get_flat() for learner in pol.learners])
    return float((flats - flats.mean(0)).norm())


def test_real_training_decreases_the_loss_and_a_crash_loses_uncommitted_work(tmp_path):
    result, pol = _run(nodes=4, steps=80, timing_only=False,
                       failures=crash_trace(tmp_path, [(0.15, 2, 0.1)]))
    h = result.history
    losses = h[h.metric == "loss"].sort_values("time_s").value
    assert losses.tail(10).mean() < losses.head(10).mean()
    g = result.recorder.goodput_breakdown().set_index("node")
    assert g.loc[2, "discarded_s"] > 0                   # node 2's unshared work was lost
    assert g.loc[0, "discarded_s"] == 0
    fetch = result.recorder.events().query("kind == 'rejoin_fetch' and node == 2")
    assert list(fetch.nbytes) == [pol.timing.param_bytes]


@pytest.mark.parametrize("field, value", [("grad_rate_per_step_time", 1.0),
                                          ("grad_rate_per_step_time", -0.1),
                                          ("gossip_rate_per_step_time", 0.0),
                                          ("graph", "torus")])
def test_bad_fields_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field if field != "graph" else "graph"):
        PoissonGossipConfig(**{field: value})
