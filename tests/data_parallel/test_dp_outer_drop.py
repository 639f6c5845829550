"""DiLoCo's dropped outer gradients: the mean of the delivered ones, honest bytes, determinism."""

import pytest
import torch

from policies.data_parallel.diloco import DiLoCo, DiLoCoConfig
from sim.runner import run
from tests.data_parallel.helpers import run_policy, tiny_scenario

PLAIN_AVERAGING = dict(outer_lr=1.0, outer_momentum=0.0)   # φ ← φ − Δ


class RecordingDiLoCo(DiLoCo):
    """DiLoCo that notes every payload brought to a round and every round's φ before/after."""

    def setup(self, ctx):
        super().setup(ctx)
        self.phi0 = self.outer.phi.clone()
        self.payloads = {}                     # round -> {node: payload or None}
        self.rounds = []                       # (round, φ before, mean, φ after)
        arrive = self.group.arrive

        def recording_arrive(node_id, r, payload):
            self.payloads.setdefault(r, {})[node_id] = payload
            return arrive(node_id, r, payload)
        self.group.arrive = recording_arrive

    def _outer_step(self, mean_delta, participants, r):
        before = self.outer.phi.clone()
        result = super()._outer_step(mean_delta, participants, r)
        self.rounds.append((r, before, mean_delta, self.outer.phi.clone()))
        return result


def run_diloco(p, *, steps=13, nodes=4, seed=1, **params):
    params = dict(inner_steps=3, drop_outer_gradient_p=p, **PLAIN_AVERAGING, **params)
    pol = RecordingDiLoCo(**params)
    result = run(tiny_scenario("diloco", nodes=nodes, steps=steps, seed=seed, **params), pol)
    return result, pol


def dropped_events(result):
    events = result.recorder.events()
    if events.empty:
        return events
    return events[events.kind == "outer_gradient_dropped"]


def test_default_is_no_dropping_and_p0_is_todays_diloco():
    assert DiLoCoConfig().drop_outer_gradient_p == 0.0
    r_default, default = run_policy(tiny_scenario("diloco", nodes=3, steps=10, inner_steps=3))
    r_zero, zero = run_policy(tiny_scenario("diloco", nodes=3, steps=10, inner_steps=3,
                                            drop_outer_gradient_p=0.0))
    assert r_default.trace_hash() == r_zero.trace_hash()
    assert torch.equal(default.outer.phi, zero.outer.phi)
    assert len(dropped_events(r_zero)) == 0


def test_mean_is_over_the_delivered_outer_gradients():
    result, pol = run_diloco(0.5)
    assert len(pol.rounds) == 4
    kept_counts = []
    for r, before, mean, after in pol.rounds:
        payloads = pol.payloads[r]
        kept = [payloads[n] for n in sorted(payloads) if payloads[n] is not None]
        kept_counts.append(len(kept))
        if kept:
            # hand check: Δ = Σ_kept Δ_i / |kept|; lr_out = 1, μ = 0 gives φ ← φ − Δ
            assert torch.allclose(mean, torch.stack(kept).sum(0) / len(kept))
            assert torch.allclose(after, before - mean)
        else:
            assert torch.equal(after, before)
    # seed 1: some rounds lost some, but not all, outer gradients (the case that matters)
    assert any(0 < k < 4 for k in kept_counts)
    n_dropped = sum(v is None for r in pol.payloads for v in pol.payloads[r].values())
    assert len(dropped_events(result)) == n_dropped > 0


def test_all_dropped_leaves_phi_unchanged_and_workers_restart_from_it():
    result, pol = run_diloco(1.0, steps=10)
    assert pol.outer.steps == [0]
    assert torch.equal(pol.outer.phi, pol.phi0)
    assert all(mean is None for _r, _b, mean, _a in pol.rounds) and len(pol.rounds) == 3
    assert len(dropped_events(result)) == 4 * 3
    # every worker reset θ ← φ = φ0 after round 2 and took one step since
    flats = [learner.get_flat() for learner in pol.learners]
    assert all(not torch.equal(f, pol.phi0) for f in flats)


def test_dropping_costs_the_same_bytes_and_time():
    # unreliable delivery: the outer gradient is sent and lost, so traffic and timing are those
    # of p = 0; only the average changes
    r0, p0 = run_diloco(0.0)
    r1, p1 = run_diloco(0.5)
    assert r1.recorder.bytes_sent.sum() == r0.recorder.bytes_sent.sum() > 0
    assert r1.sim_time_s == r0.sim_time_s
    assert not torch.equal(p0.outer.phi, p1.outer.phi)


def test_dropping_is_deterministic():
    (ra, a), (rb, b) = run_diloco(0.5), run_diloco(0.5)
    assert list(dropped_events(ra).node) == list(dropped_events(rb).node)
    assert torch.equal(a.outer.phi, b.outer.phi)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_drop_probability_names_the_field(p):
    with pytest.raises(ValueError, match="drop_outer_gradient_p"):
        DiLoCoConfig(drop_outer_gradient_p=p)
