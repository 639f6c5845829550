"""The recorder: everything a run measured, as flat records.

Four kinds of record, all stamped with simulated time:

- metrics: ``(time_s, node, step, metric, value)``, e.g. a loss or an evaluation loss;
- events: failures, recoveries, preemption notices, targets reached, ...;
- intervals: what each node was doing (``busy`` computing, ``comm`` with a flow in or out,
  ``down``), which gives the per-node time breakdown and the Chrome trace;
- bytes: per node (sent, received, cut) and per link (bytes that crossed it).

Busy, communicating, idle and down are exclusive, with priority down > busy > communicating >
idle, so that for every node ``busy_s + comm_s + idle_s + down_s == elapsed`` exactly.

Goodput: busy time splits further into *useful* compute, whose result survives into the model,
and *discarded* compute, whose result was lost (a task cut by a failure, steps whose update a
synchronous group threw away, a payload's compression). Whoever knows that a result is lost
says so with :meth:`Recorder.discard_work` (a span of one node's time) or
:meth:`Recorder.discard_uncommitted` (everything since the node's last :meth:`commit_work`).
``goodput = useful_s / up_s`` over all nodes, with ``up_s = busy_s + comm_s + idle_s``:
waiting, communicating and lost work are not goodput (docs/engine.md, "Goodput").
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

# An interval is a tuple (node, kind, start_s, end_s, label). Tuples of plain values are not
# tracked by the garbage collector, which matters for long runs with millions of intervals; an
# owner that must cut one short (a failure, a flow that ends) closes it by its index.
Interval = tuple


class Recorder:
    """Collects a run's records; exports DataFrames, CSV/Parquet, JSON and a Chrome trace."""

    def __init__(self, env: Any, node_names: list[str]) -> None:
        self.env = env
        self.node_names = list(node_names)
        n = len(node_names)
        self._metrics: list[tuple[float, int | None, int | None, str, float]] = []
        self._events: list[dict[str, Any]] = []
        self._intervals: list[Interval] = []
        self.bytes_sent = np.zeros(n)
        self.bytes_received = np.zeros(n)
        self.bytes_cut = np.zeros(n)  # as sender: messages that never arrived
        self.messages_sent = np.zeros(n, dtype=np.int64)
        self.link_bytes: dict[str, float] = defaultdict(float)
        self.end_time_s: float | None = None
        # spans (node, start_s, end_s, reason) of compute whose result did not survive
        self._discarded: list[tuple[int, float, float, str]] = []
        self.work_committed_s = np.zeros(n)  # per node: its compute before this time survived

    # -- writing ---------------------------------------------------------------------------

    def metric(self, name: str, value: float, node: int | None = None,
               step: int | None = None) -> None:
        """Record ``value`` of ``name`` now."""
        self._metrics.append((self.env.now, node, step, name, float(value)))

    def event(self, kind: str, node: int | None = None, **fields: Any) -> None:
        """Record a discrete event (failure, recovery, notice, ...) now."""
        self._events.append({"time_s": self.env.now, "kind": kind, "node": node, **fields})

    def interval(self, node: int, kind: str, start_s: float, end_s: float,
                 label: str = "") -> int:
        """Record that ``node`` is in state ``kind`` over [start_s, end_s); returns its index.

        ``end_s`` may be ``inf`` for an interval whose end is not known yet (see
        :meth:`close_interval`).
        """
        self._intervals.append((node, kind, start_s, end_s, label))
        return len(self._intervals) - 1

    def close_interval(self, index: int, at_s: float) -> None:
        """End interval ``index`` at ``at_s`` if it would end later (never extends it)."""
        node, kind, start, end, label = self._intervals[index]
        if at_s < end:
            self._intervals[index] = (node, kind, start, max(start, at_s), label)

    def discard_work(self, node: int, start_s: float, end_s: float, reason: str = "") -> None:
        """Declare ``node``'s compute over [start_s, end_s) lost: it is not goodput.

        Only the busy part of the span counts (idle or communicating time in it is unaffected);
        spans may overlap each other, the union is taken.
        """
        if end_s > start_s:
            self._discarded.append((node, float(start_s), float(end_s), reason))

    def commit_work(self, node: int, until_s: float) -> None:
        """``node``'s compute before ``until_s`` has survived into the model (never moves back)."""
        if until_s > self.work_committed_s[node]:
            self.work_committed_s[node] = until_s

    def discard_uncommitted(self, node: int, reason: str = "") -> None:
        """Discard ``node``'s compute since its last commit (a contribution lost); commit now."""
        now = self.env.now
        self.discard_work(node, float(self.work_committed_s[node]), now, reason)
        self.work_committed_s[node] = max(float(self.work_committed_s[node]), now)

    def finish(self, end_time_s: float) -> None:
        """Close the record at the run's end; open intervals are cut there."""
        self.end_time_s = end_time_s
        for index, iv in enumerate(self._intervals):
            if iv[3] > end_time_s:
                self.close_interval(index, end_time_s)

    # -- reading ---------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        """Simulated seconds covered by the record (up to :meth:`finish`, else now)."""
        return self.env.now if self.end_time_s is None else self.end_time_s

    def history(self) -> pd.DataFrame:
        """Metrics as a long DataFrame: time_s, node, step, metric, value."""
        df = pd.DataFrame(self._metrics, columns=["time_s", "node", "step", "metric", "value"])
        return df.astype({"node": "Int64", "step": "Int64"})

    def events(self) -> pd.DataFrame:
        """Discrete events as a DataFrame (one column per field seen)."""
        return pd.DataFrame(self._events)

    def intervals(self) -> pd.DataFrame:
        """Node-state intervals: node, kind, start_s, end_s, label."""
        rows = [iv for iv in self._intervals if iv[3] > iv[2]]
        return pd.DataFrame(rows, columns=["node", "kind", "start_s", "end_s", "label"])

    def node_time_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s, comm_s, idle_s, down_s; their sum is the elapsed time exactly."""
        elapsed = self.elapsed_s
        by_node: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
        for node, kind, start, end, _ in self._intervals:
            end = min(end, elapsed)
            if end > start:
                by_node[(node, kind)].append((start, end))
        rows = []
        for node in range(len(self.node_names)):
            down = _union(by_node[(node, "down")])
            busy = _subtract(_union(by_node[(node, "busy")]), down)
            comm = _subtract(_subtract(_union(by_node[(node, "comm")]), down), busy)
            down_s, busy_s, comm_s = _length(down), _length(busy), _length(comm)
            idle_s = elapsed - busy_s - comm_s - down_s
            if idle_s < 0:  # only rounding can make it negative: the spans are disjoint
                assert idle_s > -1e-9 * max(1.0, elapsed), idle_s
                idle_s = 0.0
            rows.append({"node": node, "busy_s": busy_s, "comm_s": comm_s, "idle_s": idle_s,
                         "down_s": down_s})
        return pd.DataFrame(rows)

    def goodput_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s split into useful_s and discarded_s (compute that was lost)."""
        elapsed = self.elapsed_s
        busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
        down: dict[int, list[tuple[float, float]]] = defaultdict(list)
        lost: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for node, kind, start, end, _ in self._intervals:
            end = min(end, elapsed)
            if end > start and kind in ("busy", "down"):
                (busy if kind == "busy" else down)[node].append((start, end))
        for node, start, end, _ in self._discarded:
            end = min(end, elapsed)
            if end > start:
                lost[node].append((start, end))
        rows = []
        for node in range(len(self.node_names)):
            spans = _subtract(_union(busy[node]), _union(down[node]))
            busy_s = _length(spans)
            discarded_s = busy_s - _length(_subtract(spans, _union(lost[node])))
            rows.append({"node": node, "busy_s": busy_s, "useful_s": busy_s - discarded_s,
                         "discarded_s": discarded_s})
        return pd.DataFrame(rows)

    def goodput(self) -> float:
        """Useful compute time over the time nodes were up, over all nodes (see module doc)."""
        b = self.node_time_breakdown()
        up = float((b.busy_s + b.comm_s + b.idle_s).sum())
        useful = float(self.goodput_breakdown().useful_s.sum())
        return useful / up if up > 0 else 0.0

    def idle_fraction(self) -> float:
        """Idle time over the time nodes were up, over all nodes."""
        b = self.node_time_breakdown()
        up = float((b.busy_s + b.comm_s + b.idle_s).sum())
        return float(b.idle_s.sum()) / up if up > 0 else 0.0

    def bytes_by_node(self) -> pd.DataFrame:
        """Per node: bytes sent, received, cut (sent but never delivered), messages sent."""
        return pd.DataFrame({"node": range(len(self.node_names)), "sent": self.bytes_sent,
                             "received": self.bytes_received, "cut": self.bytes_cut,
                             "messages": self.messages_sent})

    def bytes_by_link(self) -> pd.DataFrame:
        """Bytes that crossed each link (only links with a finite capacity are tracked)."""
        items = sorted(self.link_bytes.items())
        return pd.DataFrame(items, columns=["link", "bytes"])

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary of the run."""
        return {
            "sim_time_s": self.elapsed_s,
            "bytes_sent": float(self.bytes_sent.sum()),
            "bytes_received": float(self.bytes_received.sum()),
            "bytes_cut": float(self.bytes_cut.sum()),
            "bytes_sent_per_node": float(self.bytes_sent.mean()) if len(self.bytes_sent) else 0.0,
            "messages": int(self.messages_sent.sum()),
            "idle_fraction": self.idle_fraction(),
            "goodput": self.goodput(),
            "failures": sum(1 for e in self._events if e["kind"] == "failure"),
        }

    # -- exports ---------------------------------------------------------------------------

    def chrome_trace(self) -> dict[str, Any]:
        """The run as a Chrome trace (JSON object format): one lane per node, loads in Perfetto.

        Intervals become complete ("X") events on thread ``node`` of process 0, events become
        instant ("i") events, and scalar metrics become counter ("C") tracks. Times in µs.
        """
        trace: list[dict[str, Any]] = [
            {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "dtsim"}}]
        for node, name in enumerate(self.node_names):
            trace.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": node,
                          "args": {"name": name}})
            trace.append({"ph": "M", "name": "thread_sort_index", "pid": 0, "tid": node,
                          "args": {"sort_index": node}})
        for node, kind, start, end, label in sorted(self._intervals, key=_interval_key):
            if end > start:
                trace.append({"ph": "X", "pid": 0, "tid": node, "cat": kind,
                              "name": label or kind, "ts": _us(start), "dur": _us(end - start)})
        for ev in self._events:
            args = {k: _jsonable(v) for k, v in ev.items() if k not in ("time_s", "kind", "node")}
            tid = ev["node"] if ev["node"] is not None else 0
            trace.append({"ph": "i", "pid": 0, "tid": tid, "s": "t" if ev["node"] is not None
                          else "g", "name": ev["kind"], "ts": _us(ev["time_s"]), "args": args})
        for time_s, metric_node, _, name, value in self._metrics:
            if metric_node is None:
                trace.append({"ph": "C", "pid": 0, "tid": 0, "name": name, "ts": _us(time_s),
                              "args": {name: value}})
        return {"traceEvents": trace, "displayTimeUnit": "ms"}

    def write_chrome_trace(self, path: str) -> None:
        """Write :meth:`chrome_trace` as compact JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.chrome_trace(), f, separators=(",", ":"))

    def trace_hash(self) -> str:
        """SHA-256 of the canonical Chrome trace: equal for equal runs, whatever the hash seed."""
        text = json.dumps(self.chrome_trace(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_csv(self, path: str) -> None:
        """Metrics history as CSV."""
        self.history().to_csv(path, index=False)

    def to_parquet(self, path: str) -> None:
        """Metrics history as Parquet (needs pyarrow: ``pip install 'dtsim[parquet]'``)."""
        try:
            import pyarrow  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Parquet export needs pyarrow: pip install 'dtsim[parquet]'") from None
        self.history().to_parquet(path, index=False)


def _interval_key(iv: Interval) -> tuple:
    return (iv[0], iv[2], iv[3], iv[1], iv[4])


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping [start, end) spans into disjoint sorted spans."""
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def _subtract(spans: list[tuple[float, float]],
              cut: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint sorted ``spans`` minus disjoint sorted ``cut``."""
    out = []
    j = 0
    for start, end in spans:
        cur = start
        while j < len(cut) and cut[j][1] <= cur:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < end:
            if cut[k][0] > cur:
                out.append((cur, cut[k][0]))
            cur = max(cur, cut[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def _length(spans: list[tuple[float, float]]) -> float:
    return float(sum(b - a for a, b in spans))
