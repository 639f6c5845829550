"""The full recorder keeps intervals and metric rows in packed columns; its tables must be
exactly the ones the rows describe.

Oracle: the tables built the straightforward way from the same rows kept as Python tuples
(what the recorder did before it packed them), on hand-written and random streams of records:
equal frames (values, dtypes, index), equal state spans and an equal Chrome trace. One
difference is by design: time columns are always float64. (Built from tuples, a column whose
every time is SimPy's starting clock, the int 0, came out int64; through the engine some time
is always a float, so this never showed outside hand-made records.)
"""

from __future__ import annotations

import json
import math
import pickle
import types

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.recorder import Recorder, _interval_key, _subtract, _union


class RowRecorder:
    """The oracle: every record a tuple in a list, tables built from the lists."""

    def __init__(self, env, nodes: int) -> None:
        self.env, self.nodes = env, nodes
        self.metrics: list[tuple] = []
        self.intervals: list[tuple] = []

    def metric(self, name, value, node=None, step=None):
        self.metrics.append((self.env.now, node, step, name, float(value)))

    def interval(self, node, kind, start_s, end_s, label=""):
        self.intervals.append((node, kind, start_s, end_s, label))
        return len(self.intervals) - 1

    def close_interval(self, index, at_s):
        node, kind, start, end, label = self.intervals[index]
        if at_s < end:
            self.intervals[index] = (node, kind, start, max(start, at_s), label)

    def finish(self, end_s):
        for i, iv in enumerate(self.intervals):
            if iv[3] > end_s:
                self.close_interval(i, end_s)

    def history(self):
        df = pd.DataFrame(self.metrics, columns=["time_s", "node", "step", "metric", "value"])
        df = df.astype({"node": "Int64", "step": "Int64"})
        return df.astype({"time_s": float}) if self.metrics else df

    def interval_table(self):
        rows = [iv for iv in self.intervals if iv[3] > iv[2]]
        df = pd.DataFrame(rows, columns=["node", "kind", "start_s", "end_s", "label"])
        return df.astype({"start_s": float, "end_s": float}) if rows else df

    def state_spans(self, elapsed):
        out = []
        for node in range(self.nodes):
            spans = {k: [(s, min(e, elapsed)) for n, kind, s, e, _ in self.intervals
                         if n == node and kind == k and min(e, elapsed) > s]
                     for k in ("down", "busy", "comm")}
            down = _union(spans["down"])
            busy = _subtract(_union(spans["busy"]), down)
            comm = _subtract(_subtract(_union(spans["comm"]), down), busy)
            out.append({"down": down, "busy": busy, "comm": comm})
        return out

    def trace_intervals(self):
        return [{"tid": n, "cat": k, "name": label or k, "ts": round(s * 1e6, 3),
                 "dur": round((e - s) * 1e6, 3)}
                for n, k, s, e, label in sorted(self.intervals, key=_interval_key) if e > s]


def replay(records, nodes: int = 3):
    """Feed the same records to a :class:`Recorder` and to the oracle; return both."""
    env = types.SimpleNamespace(now=0)  # (SimPy's clock starts at the int 0)
    rec, oracle = Recorder(env, [f"n{i}" for i in range(nodes)]), RowRecorder(env, nodes)
    handles: list[tuple[int, int]] = []
    for what, *args in records:
        if what == "at":
            env.now = args[0]
        elif what == "metric":
            rec.metric(*args)
            oracle.metric(*args)
        elif what == "interval":
            handles.append((rec.interval(*args), oracle.interval(*args)))
        elif what == "close" and handles:
            a, b = handles[args[0] % len(handles)]
            rec.close_interval(a, args[1])
            oracle.close_interval(b, args[1])
    return rec, oracle


def assert_same(rec: Recorder, oracle: RowRecorder, end_s: float) -> None:
    pd.testing.assert_frame_equal(rec.history(), oracle.history())
    pd.testing.assert_frame_equal(rec.intervals(), oracle.interval_table())
    rec.finish(end_s)
    oracle.finish(end_s)
    pd.testing.assert_frame_equal(rec.intervals(), oracle.interval_table())
    assert rec.state_spans() == oracle.state_spans(end_s)
    got = [{k: e[k] for k in ("tid", "cat", "name", "ts", "dur")}
           for e in rec.chrome_trace()["traceEvents"] if e["ph"] == "X"]
    assert json.dumps(got) == json.dumps(oracle.trace_intervals())
    counters = [(e["ts"], e["name"], e["args"]) for e in rec.chrome_trace()["traceEvents"]
                if e["ph"] == "C"]
    assert json.dumps(counters) == json.dumps(
        [(round(t * 1e6, 3), name, {name: v}) for t, node, _, name, v in oracle.metrics
         if node is None])


HAND_WRITTEN = [
    ("metric", "eval_loss", 3.5, None, 0),           # at the int time 0
    ("interval", 0, "busy", 0, 1.25, "fwd"),
    ("interval", 1, "comm", 0, math.inf, "send"),
    ("interval", 2, "comm", 0, math.inf, ""),
    ("at", 1.25),
    ("metric", "loss", 2.5, 0, 1),
    ("metric", "loss", float("nan"), 1, 1),           # a NaN value stays a NaN
    ("metric", "sync_s", -0.0, 2, None),              # a node without a step
    ("close", 1, 1.25),
    ("interval", 0, "busy", 1.25, 1.25, "empty"),    # empty: not in the tables
    ("interval", 2, "down", 1.25, math.inf, "crash"),
    ("close", 4, 1.0),                                 # before its start: cut to its start
    ("close", 0, 2.0),                                 # later than its end: unchanged
    ("at", 3.0),
    ("metric", "eval_loss", 2.0, None, 7),
    ("interval", 1, "comm", 3.0, 4.5, "recv"),
]


def test_packed_tables_equal_the_row_tables_on_a_hand_written_run():
    rec, oracle = replay(HAND_WRITTEN)
    assert rec.intervals_kept == len(oracle.intervals) == 6
    assert rec.has_metric("eval_loss", 3.0) and not rec.has_metric("eval_loss", 1.25)
    assert not rec.has_metric("loss", 1.25)  # rows of a node do not count
    h = rec.history()
    assert h.node.isna().tolist() == [True, False, False, False, True]
    assert h.step.tolist()[1] == 1 and pd.isna(h.step.tolist()[3])
    assert math.isnan(h.value[2]) and math.copysign(1, h.value[3]) == -1
    assert_same(rec, oracle, end_s=5.0)
    assert rec.intervals().end_s.tolist() == [1.25, 1.25, 5.0, 4.5]  # (finish cut one)


def test_an_empty_record_gives_the_same_empty_tables():
    rec, oracle = replay([])
    assert_same(rec, oracle, end_s=1.0)


def test_the_recorder_pickles_with_its_columns():
    rec, _ = replay(HAND_WRITTEN)
    rec.env = types.SimpleNamespace(now=3.0)
    back = pickle.loads(pickle.dumps(rec))
    pd.testing.assert_frame_equal(back.history(), rec.history())
    pd.testing.assert_frame_equal(back.intervals(), rec.intervals())


record = st.one_of(
    st.tuples(st.just("at"), st.floats(0, 100)),
    st.tuples(st.just("metric"), st.sampled_from(["loss", "eval_loss", "sync_s"]),
              st.floats(-10, 10), st.one_of(st.none(), st.integers(0, 2)),
              st.one_of(st.none(), st.integers(0, 50))),
    st.tuples(st.just("interval"), st.integers(0, 2), st.sampled_from(["busy", "comm", "down"]),
              st.floats(0, 100), st.one_of(st.floats(0, 100), st.just(math.inf)),
              st.sampled_from(["", "fwd", "send"])),
    st.tuples(st.just("close"), st.integers(0, 1000), st.floats(0, 100)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(record, max_size=40), st.floats(0, 120))
def test_packed_tables_equal_the_row_tables_on_random_records(records, end_s):
    rec, oracle = replay(records)
    assert_same(rec, oracle, end_s)
    np.testing.assert_array_equal(rec.node_time_breakdown().sum(axis=1) >= 0, True)
