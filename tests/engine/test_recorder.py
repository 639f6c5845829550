"""The recorder's exports: DataFrames, CSV, Parquet, JSON summary and the Chrome trace."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import make_world


@pytest.fixture
def world():
    """Two nodes: a compute task, a delivered transfer, a cut one and a failure."""
    w = make_world(3, bandwidth_Bps=1e6, latency_s=0.01)

    def story():
        yield w.nodes[0].compute(seconds=1.0, label="fwd")
        w.recorder.metric("loss", 2.5, step=1)
        yield w.network.transfer(0, 1, 1e6, label="grads")
        cut = w.network.transfer(0, 2, 1e6, label="doomed")
        yield w.env.timeout(0.5)
        w.nodes[2].fail("crash")
        try:
            yield cut
        except Exception:
            pass
        w.recorder.metric("loss", 2.0, step=2)

    w.env.process(story())
    w.env.run()
    w.recorder.finish(w.now)
    return w


def test_history_csv_and_parquet_round_trip(world, tmp_path):
    rec = world.recorder
    h = rec.history()
    assert h.metric.tolist() == ["loss", "loss"] and h.value.tolist() == [2.5, 2.0]
    # compute 0-1 s; 1 MB at 1 MB/s + 10 ms arrives at 2.01 s; node 2 fails 0.5 s later
    assert h.time_s.tolist() == pytest.approx([1.0, 2.51])
    rec.to_csv(tmp_path / "h.csv")
    assert pd.read_csv(tmp_path / "h.csv").value.tolist() == [2.5, 2.0]
    rec.to_parquet(tmp_path / "h.parquet")
    assert pd.read_parquet(tmp_path / "h.parquet").value.tolist() == [2.5, 2.0]


def test_summary_is_json_and_counts_bytes(world):
    summary = json.loads(json.dumps(world.recorder.summary()))
    assert summary["bytes_sent"] == 2e6
    assert summary["bytes_received"] == 1e6 and summary["bytes_cut"] == 1e6
    assert summary["failures"] == 1


def test_a_cut_transfer_is_reported_at_both_ends(world):
    ev = world.recorder.events()
    cut = ev[ev.kind == "transfer_cut"].sort_values("node")
    assert cut[["node", "peer", "role"]].values.tolist() == [[0, 2, "sender"],
                                                             [2, 0, "receiver"]]
    assert cut.delivered_bytes.tolist() == pytest.approx([0.5e6, 0.5e6])


def test_chrome_trace_has_one_lane_per_node_and_valid_events(world, tmp_path):
    rec = world.recorder
    path = tmp_path / "trace.json"
    rec.write_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    lanes = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert lanes == {0: "node0", 1: "node1", 2: "node2"}
    complete = [e for e in events if e["ph"] == "X"]
    for e in complete:  # the fields Perfetto's JSON importer needs, in microseconds
        assert {"pid", "tid", "ts", "dur", "name"} <= set(e) and e["dur"] > 0
    fwd = [e for e in complete if e["name"] == "fwd"]
    assert fwd == [{"ph": "X", "pid": 0, "tid": 0, "cat": "busy", "name": "fwd", "ts": 0.0,
                    "dur": 1e6}]
    instants = {e["name"] for e in events if e["ph"] == "i"}
    assert {"failure", "transfer_cut"} <= instants
    counters = [e for e in events if e["ph"] == "C"]
    assert [c["args"]["loss"] for c in counters] == [2.5, 2.0]


def test_time_breakdown_splits_each_node_exactly(world):
    b = world.recorder.node_time_breakdown().set_index("node")
    total = b.busy_s + b.comm_s + b.idle_s + b.down_s
    assert total.tolist() == pytest.approx([world.now] * 3)
    assert b.loc[0, "busy_s"] == pytest.approx(1.0)
    assert b.loc[2, "down_s"] == pytest.approx(world.now - 2.51)
