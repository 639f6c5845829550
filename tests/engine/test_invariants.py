"""Invariants under random traffic, compute and failures (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import SimFailure

from .conftest import make_world

event = st.tuples(st.floats(0, 10), st.integers(0, 5), st.integers(0, 5),
                  st.floats(0, 5e6), st.sampled_from(["send", "compute", "fail", "recover"]))


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(["ideal", "maxmin"]), events=st.lists(event, max_size=40),
       uplink=st.sampled_from([None, 1e6, 3e5]))
def test_bytes_are_delivered_or_cut_and_time_splits_exactly(model, events, uplink):
    n = 6
    world = make_world(n, model=model, latency_s=0.01, bandwidth_Bps=2e6,
                       uplink=(uplink,) * n if uplink else None)

    def act(t, a, b, size, kind):
        yield world.env.timeout(t)
        try:
            if kind == "send":
                yield world.network.transfer(a, b, size)
            elif kind == "compute":
                yield world.nodes[a].compute(seconds=size / 1e6)
            elif kind == "fail":
                world.nodes[a].fail()
            else:
                world.nodes[a].recover()
        except SimFailure:
            pass

    for e in events:
        world.env.process(act(*e))
    world.env.run()
    rec = world.recorder
    rec.finish(world.now)
    assert world.network.active_flows == 0
    assert rec.bytes_sent.sum() == pytest.approx(rec.bytes_received.sum() + rec.bytes_cut.sum())
    for node in range(n):
        assert rec.bytes_sent[node] == pytest.approx(
            sum(s for t, a, b, s, k in events if k == "send" and a == node))
    b = rec.node_time_breakdown()
    total = b.busy_s + b.comm_s + b.idle_s + b.down_s
    assert total.tolist() == pytest.approx([world.now] * n)
    assert (b[["busy_s", "comm_s", "idle_s", "down_s"]] >= -1e-9).all().all()
