"""Failure and rejoin: each policy's documented reaction, on tiny runs with replayed crashes."""

import pytest
import torch

from policies.data_parallel.streaming_diloco import StreamingDiLoCo
from sim.runner import run
from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

FAIL_AT_S, DOWN_S = 0.2, 0.4          # node 2 crashes at 0.2 s and is back at 0.6 s


def losses_of(result, node, start_s, end_s):
    h = result.history
    return h[(h.metric == "loss") & (h.node == node) & (h.time_s > start_s)
             & (h.time_s < end_s)]


def metric_of(result, metric, node):
    h = result.history
    return h[(h.metric == metric) & (h.node == node)]


def fetches(result, node):
    events = result.recorder.events()
    return events[(events.kind == "rejoin_fetch") & (events.node == node)]


@pytest.mark.parametrize("on_failure", ["drop", "wait"])
def test_ddp_drop_goes_on_and_wait_holds_the_step(tmp_path, on_failure):
    scen = tiny_scenario("ddp", nodes=4, steps=16, on_failure=on_failure,
                         failures=crash_trace(tmp_path, [(FAIL_AT_S, 2, DOWN_S)]))
    result, ddp = run_policy(scen)
    during = losses_of(result, 0, FAIL_AT_S + 0.1, FAIL_AT_S + DOWN_S)
    if on_failure == "drop":
        assert len(during) >= 3                  # steps (~65 ms each) go on without node 2
    else:
        assert len(during) == 0                  # everyone waits for node 2
    # node 2 fetched weights and AdamW's two moments from a peer, and is a replica again
    assert list(fetches(result, 2).nbytes) == [3 * ddp.timing.param_bytes]
    flats = [learner.get_flat() for learner in ddp.learners]
    assert all(torch.equal(flats[0], f) for f in flats[1:])


@pytest.mark.parametrize("on_failure", ["drop", "wait"])
def test_diloco_drop_goes_on_and_wait_holds_the_round(tmp_path, on_failure):
    scen = tiny_scenario("diloco", nodes=4, steps=60, inner_steps=4, on_failure=on_failure,
                         failures=crash_trace(tmp_path, [(FAIL_AT_S, 2, DOWN_S)]))
    result, diloco = run_policy(scen)
    syncs = metric_of(result, "sync_s", 0)
    during = syncs[(syncs.time_s > FAIL_AT_S + 0.1) & (syncs.time_s < FAIL_AT_S + DOWN_S)]
    if on_failure == "drop":
        assert len(during) >= 2
    else:
        assert len(during) == 0
        assert syncs.value.max() > DOWN_S / 2    # one long wait at the barrier
    assert list(fetches(result, 2).nbytes) == [diloco.timing.param_bytes]
    assert len(metric_of(result, "sync_s", 2).query(f"time_s > {FAIL_AT_S + DOWN_S}")) >= 2
    assert torch.isfinite(diloco.outer.phi).all()


def test_noloco_failed_partner_drops_out_and_nobody_waits(tmp_path):
    fail_s, down_s = 0.1, 0.15                  # NoLoCo runs 60 steps in ~0.4 s here
    scen = tiny_scenario("noloco", nodes=4, steps=60, inner_steps=4, exchange="swap",
                         failures=crash_trace(tmp_path, [(fail_s, 2, down_s)]))
    result, noloco = run_policy(scen)
    events = result.recorder.events()
    missing = events[events.kind == "partner_missing"]
    assert len(missing) >= 1 and set(missing.partner) == {2}
    for node in (0, 1, 3):                      # every survivor keeps syncing
        syncs = metric_of(result, "sync_s", node)
        assert len(syncs.query(f"{fail_s + 0.03} < time_s < {fail_s + down_s}")) >= 1
        assert syncs.value.max() < 0.05         # and never waits long
    assert list(fetches(result, 2).nbytes) == [noloco.timing.param_bytes]
    assert len(metric_of(result, "sync_s", 2).query(f"time_s > {fail_s + down_s}")) >= 2


def test_noloco_reference_exchange_cut_by_a_crash_leaves_the_partner_alone(tmp_path):
    # reduce_to_root here: 2 x 21 tensor messages of 10 ms each, ~0.42 s per exchange. Node 2
    # crashes in the middle of the first exchange; its partner steps alone at once.
    scen = tiny_scenario("noloco", nodes=4, steps=13, inner_steps=4,
                         failures=crash_trace(tmp_path, [(0.2, 2, 0.5)]))
    result, noloco = run_policy(scen)
    partner = noloco.partner_of(2, 0)
    events = result.recorder.events()
    missing = events[(events.kind == "partner_missing") & (events["round"] == 0)]
    assert list(missing.node) == [partner] and list(missing.partner) == [2]
    first = metric_of(result, "sync_s", partner).iloc[0]
    assert first.time_s == pytest.approx(0.2)            # left the exchange when it was cut
    others = [i for i in range(4) if i not in (2, partner)]
    for node in others:                                  # the other pair is not disturbed
        assert metric_of(result, "sync_s", node).value.iloc[0] > 0.4


@pytest.mark.parametrize("policy, params", [
    ("streaming_diloco", dict(inner_steps=6, num_fragments=3, overlap_steps=1)),
    ("streaming_diloco", dict(inner_steps=6, num_fragments=3, overlap_steps=1,
                              on_failure="wait")),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2, on_failure="wait")),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2, outer_steps_per_sync=3)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2, outer_steps_per_sync=3,
                    on_failure="wait")),
    ("gossip", dict(variant="dpsgd", graph="ring")),
    ("gossip", dict(variant="adpsgd", graph="ring")),
])
def test_other_policies_survive_a_crash_and_rejoin(tmp_path, policy, params):
    scen = tiny_scenario(policy, nodes=4, steps=100, timing_only=True,
                         failures=crash_trace(tmp_path, [(FAIL_AT_S, 2, DOWN_S)]), **params)
    result, pol = run_policy(scen)
    assert result.stop_reason == "max_steps"
    events = result.recorder.events()
    assert {"failure", "recovery", "rejoin"} <= set(events.kind)
    assert len(fetches(result, 2)) == 1
    assert pol.steps_done[2] > 0
    busy = result.recorder.intervals().query("node == 2 and kind == 'busy'")
    assert (busy.start_s > FAIL_AT_S + DOWN_S).sum() >= 3      # node 2 computes again


class RecordingStreaming(StreamingDiLoCo):
    """Streaming DiLoCo that notes who took part in each fragment round."""

    def _outer_step(self, p, k=0):
        combine = super()._outer_step(p, k)

        def recording(mean, participants, r):
            self.rounds.append((p, r, tuple(participants)))
            return combine(mean, participants, r)
        return recording

    def setup(self, ctx):
        self.rounds = []
        super().setup(ctx)


@pytest.mark.parametrize("on_failure", ["drop", "wait"])
def test_streaming_drop_goes_on_and_wait_holds_the_fragment_round(tmp_path, on_failure):
    # H = 6, P = 3: fragments sync after steps 6, 8, 10, 12, ...; node 2 fails at 0.2 s, in the
    # all-reduce of fragment 2's round 0 (sent after step 10), and is back at 0.6 s.
    params = dict(inner_steps=6, num_fragments=3, overlap_steps=1, on_failure=on_failure)
    scen = tiny_scenario("streaming_diloco", nodes=4, steps=60,
                         failures=crash_trace(tmp_path, [(FAIL_AT_S, 2, DOWN_S)]), **params)
    pol = RecordingStreaming(**params)
    result = run(scen, pol)
    assert result.stop_reason == "max_steps"
    during = losses_of(result, 0, FAIL_AT_S + 0.1, FAIL_AT_S + DOWN_S)
    full = [rnd for rnd in pol.rounds if rnd[2] == (0, 1, 2, 3)]
    node2 = losses_of(result, 2, 0.0, 10.0).step.tolist()      # steps 1..11, crash, ...
    resumed = next(b for a, b in zip(node2, node2[1:]) if b != a + 1)
    if on_failure == "drop":
        assert len(during) >= 3                  # the others go on without node 2
        assert len(full) < len(pol.rounds)       # some rounds ran among three
        assert resumed > 11                      # it skipped what it missed
    else:
        assert len(during) == 0                  # everyone stops at fragment 2's round 0
        assert len(full) == len(pol.rounds)      # every round of every fragment had all four
        # s* = 10 (fragment 2's round 0), H = 6: node 2 redoes steps 5..10 from φ
        assert resumed == 5
    assert list(fetches(result, 2).nbytes) == [pol.timing.param_bytes]
    assert pol.outer.steps == [len([r for r in pol.rounds if r[0] == p]) for p in range(3)]


def test_streaming_wait_with_one_fragment_is_diloco_wait_under_a_crash(tmp_path):
    # P = 1, τ = 0, α = 0, float32: Streaming DiLoCo's wait redoes the same H steps from the
    # same φ as DiLoCo's wait (resume at s* − H = r·H), so the global weights agree exactly.
    common = dict(nodes=4, steps=40, inner_steps=4, on_failure="wait",
                  failures=crash_trace(tmp_path, [(0.1, 2, 0.2)]))
    r_diloco, diloco = run_policy(tiny_scenario("diloco", **common))
    r_stream, stream = run_policy(tiny_scenario("streaming_diloco", num_fragments=1,
                                                overlap_steps=0, alpha=0.0, quantize=False,
                                                **common))
    assert len(fetches(r_diloco, 2)) == len(fetches(r_stream, 2)) == 1
    assert diloco.outer.steps == stream.outer.steps
    assert torch.equal(diloco.outer.phi, stream.outer.phi)
    assert diloco.steps_done == stream.steps_done


@pytest.mark.parametrize("on_failure", ["drop", "wait"])
def test_diloco_rejoiner_adopts_the_peers_schedule_position(tmp_path, on_failure):
    scen = tiny_scenario("diloco", nodes=4, steps=60, inner_steps=4, on_failure=on_failure,
                         failures=crash_trace(tmp_path, [(FAIL_AT_S, 2, DOWN_S)]))
    _, diloco = run_policy(scen)
    # node 2 took a different number of optimizer steps than node 0 (it missed rounds under
    # drop, redid one under wait) yet it sits at the same place on the learning-rate schedule
    assert diloco.steps_done[2] != diloco.steps_done[0]
    steps = [learner.step for learner in diloco.learners]
    assert steps[2] == steps[0]
    assert diloco.learners[2].lr == diloco.learners[0].lr
