"""Goodput of the decentralised methods: a crash loses exactly the work not yet shared.

NoLoCo shares a worker's work at each completed pair exchange, gossip at each delivered model.
A crashed worker rejoins with a peer's model, so its compute since the start of its last
completed exchange (busy time only) is lost; nobody else loses anything.
"""

from __future__ import annotations

import pytest

from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

CRASH_S, NODE = 0.2, 2


def _busy_between(result, node, start_s, end_s):
    iv = result.recorder.intervals()
    busy = iv[(iv.node == node) & (iv.kind == "busy")]
    return float((busy.end_s.clip(upper=end_s) - busy.start_s.clip(lower=start_s))
                 .clip(lower=0).sum())


@pytest.mark.parametrize("policy, params", [("noloco", {"inner_steps": 4, "exchange": "swap"}),
                                            ("gossip", {"variant": "adpsgd"}),
                                            ("gossip", {"variant": "dpsgd"})])
def test_a_crash_loses_the_work_since_the_last_shared_model(tmp_path, policy, params):
    scen = tiny_scenario(policy, nodes=4, steps=80, timing_only=True,
                         failures=crash_trace(tmp_path, [(CRASH_S, NODE, 0.1)]), **params)
    result, _ = run_policy(scen)
    g = result.recorder.goodput_breakdown().set_index("node")
    lost = g.loc[NODE, "discarded_s"]
    assert lost > 0
    assert all(g.loc[m, "discarded_s"] == 0 for m in (0, 1, 3))
    # lost: at most the work since ... the last point the worker could have shared, and at
    # least the task the crash cut
    iv = result.recorder.intervals()
    busy = iv[(iv.node == NODE) & (iv.kind == "busy")]
    cut = busy[(busy.start_s < CRASH_S) & (busy.end_s >= CRASH_S - 1e-12)]
    assert lost >= float((CRASH_S - cut.start_s).sum()) - 1e-9
    if policy == "noloco":
        h = result.history
        syncs = h[(h.metric == "sync_s") & (h.node == NODE) & (h.time_s < CRASH_S)]
        last_start = float((syncs.time_s - syncs.value).max())
        assert lost == pytest.approx(_busy_between(result, NODE, last_start, CRASH_S), rel=1e-9)
