"""Failure and rejoin: each policy's documented reaction, on tiny runs with replayed crashes."""

import pytest
import torch

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
    scen = tiny_scenario("noloco", nodes=4, steps=60, inner_steps=4,
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


@pytest.mark.parametrize("policy, params", [
    ("streaming_diloco", dict(inner_steps=6, num_fragments=3, overlap_steps=1)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2, on_failure="wait")),
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
