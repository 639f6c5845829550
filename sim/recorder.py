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
import math
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

# An interval, as the reading methods see it: a tuple (node, kind, start_s, end_s, label). It is
# stored as one row of a packed column (see Recorder); an owner that must cut one short (a
# failure, a flow that ends) closes it by its index.
Interval = tuple

IV_WIDTH = 4
"""Doubles per interval in :attr:`Recorder._iv`: node, (kind, label) code, start_s, end_s."""

METRIC_WIDTH = 5
"""Doubles per metric row in :attr:`Recorder._mv`: time_s, node, step, metric code, value
(``nan`` for a node or step that is ``None``)."""

NAN = math.nan


class Recorder:
    """Collects a run's records; exports DataFrames, CSV/Parquet, JSON and a Chrome trace.

    This is the ``full`` level (``[run] record``): every interval and metric row is kept. For
    large runs :class:`AggregateRecorder` keeps per-node totals instead.

    How they are kept: intervals and metric rows are the bulk of a long run's memory (several
    per node and step), so each is a row of doubles in one packed, growable ``array('d')``
    (:data:`IV_WIDTH` and :data:`METRIC_WIDTH` per row), with the strings (an interval's kind
    and label, a metric's name) replaced by the index of a table of the distinct ones. A row
    costs 32 or 40 bytes instead of a tuple of Python objects (about 140 bytes), allocates no
    object that outlives the call, and gives the garbage collector nothing to track; the
    reading methods rebuild exactly the tables the rows describe.
    """

    level = "full"

    def __init__(self, env: Any, node_names: list[str]) -> None:
        self.env = env
        self.node_names = list(node_names)
        n = len(node_names)
        # metric rows (time_s, node, step, name code, value), METRIC_WIDTH doubles each
        self._mv = array("d")
        self._metric_names: list[str] = []
        self._metric_code: dict[str, int] = {}
        self._events: list[dict[str, Any]] = []
        # intervals (node, (kind, label) code, start_s, end_s), IV_WIDTH doubles each
        self._iv = array("d")
        self._iv_kinds: list[tuple[str, str]] = []
        self._iv_code: dict[tuple[str, str], int] = {}
        self.bytes_sent = np.zeros(n)
        self.bytes_received = np.zeros(n)
        self.bytes_cut = np.zeros(n)  # as sender: messages that never arrived
        self.messages_sent = np.zeros(n, dtype=np.int64)
        # bytes that crossed each link, by the network's link id (see :meth:`track_links`): a
        # flat array, not a dict of link names, so a delivery at 100,000 nodes touches 8 bytes
        # per link instead of a name, a dict entry and a float object
        self._link_names: list[str] = []
        self.link_bytes_by_id = array("d")
        self.link_crossed = bytearray()  # 1 where a message (or its cut part) crossed the link
        self.end_time_s: float | None = None
        # spans (node, start_s, end_s, reason) of compute whose result did not survive
        self._discarded: list[tuple[int, float, float, str]] = []
        self.work_committed_s = np.zeros(n)  # per node: its compute before this time survived

    # -- writing ---------------------------------------------------------------------------

    def track_links(self, names: list[str]) -> None:
        """Count bytes per link of a network whose link ``i`` is named ``names[i]``.

        The network adds ``nbytes`` to ``link_bytes_by_id[i]`` and sets ``link_crossed[i]``.
        """
        self._link_names = names
        self.link_bytes_by_id = array("d", bytes(8 * len(names)))
        self.link_crossed = bytearray(len(names))

    @property
    def link_bytes(self) -> dict[str, float]:
        """Bytes that crossed each link, by link name (links no message crossed are absent)."""
        names, crossed = self._link_names, self.link_crossed
        out: dict[str, float] = defaultdict(float)
        for link, nbytes in enumerate(self.link_bytes_by_id):
            if crossed[link]:
                out[names[link]] = nbytes
        return out

    def metric(self, name: str, value: float, node: int | None = None,
               step: int | None = None) -> None:
        """Record ``value`` of ``name`` now."""
        code = self._metric_code.get(name)
        if code is None:
            code = self._metric_code[name] = len(self._metric_names)
            self._metric_names.append(name)
        self._mv.fromlist([self.env.now, NAN if node is None else node,
                           NAN if step is None else step, code, float(value)])

    def event(self, kind: str, node: int | None = None, **fields: Any) -> None:
        """Record a discrete event (failure, recovery, notice, ...) now."""
        self._events.append({"time_s": self.env.now, "kind": kind, "node": node, **fields})

    def interval(self, node: int, kind: str, start_s: float, end_s: float,
                 label: str = "") -> int:
        """Record that ``node`` is in state ``kind`` over [start_s, end_s); returns its index.

        ``end_s`` may be ``inf`` for an interval whose end is not known yet (see
        :meth:`close_interval`).
        """
        code = self._iv_code.get((kind, label))
        if code is None:
            code = self._iv_code[(kind, label)] = len(self._iv_kinds)
            self._iv_kinds.append((kind, label))
        iv = self._iv
        iv.fromlist([node, code, start_s, end_s])
        return len(iv) // IV_WIDTH - 1

    def close_interval(self, index: int, at_s: float) -> None:
        """End interval ``index`` at ``at_s`` if it would end later (never extends it)."""
        iv = self._iv
        end = IV_WIDTH * index + 3
        if at_s < iv[end]:
            start = iv[end - 1]
            iv[end] = at_s if at_s > start else start

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
        if self._iv:
            view = np.frombuffer(self._iv).reshape(-1, IV_WIDTH)
            late = view[:, 3] > end_time_s
            view[late, 3] = np.maximum(view[late, 2], end_time_s)
            del view  # (the array cannot grow while a view of it exists)

    # -- reading ---------------------------------------------------------------------------

    def _interval_rows(self) -> Iterator[Interval]:
        """Every interval recorded, in order, as a tuple (node, kind, start_s, end_s, label)."""
        kinds = self._iv_kinds
        rows = np.frombuffer(self._iv).reshape(-1, IV_WIDTH).tolist()
        for node, code, start, end in rows:
            kind, label = kinds[int(code)]
            yield int(node), kind, start, end, label

    def _metric_rows(self) -> list[tuple[float, int | None, int | None, str, float]]:
        """Every metric row recorded, in order, as a tuple (time_s, node, step, metric, value)."""
        names = self._metric_names
        rows = np.frombuffer(self._mv).reshape(-1, METRIC_WIDTH).tolist()
        return [(time_s, None if node != node else int(node), None if step != step else int(step),
                 names[int(code)], value) for time_s, node, step, code, value in rows]

    def has_metric(self, name: str, time_s: float) -> bool:
        """Whether a row of ``name`` without a node was recorded at ``time_s``."""
        code = self._metric_code.get(name)
        if code is None or not self._mv:
            return False
        rows = np.frombuffer(self._mv).reshape(-1, METRIC_WIDTH)
        return bool(np.any((rows[:, 3] == code) & (rows[:, 0] == time_s) & np.isnan(rows[:, 1])))

    @property
    def intervals_kept(self) -> int:
        """Number of intervals kept (recorded with :meth:`interval`, empty ones included)."""
        return len(self._iv) // IV_WIDTH

    @property
    def elapsed_s(self) -> float:
        """Simulated seconds covered by the record (up to :meth:`finish`, else now)."""
        return self.env.now if self.end_time_s is None else self.end_time_s

    def history(self) -> pd.DataFrame:
        """Metrics as a long DataFrame: time_s, node, step, metric, value (time_s: float64)."""
        columns = ["time_s", "node", "step", "metric", "value"]
        if not self._mv:
            return pd.DataFrame([], columns=columns).astype({"node": "Int64", "step": "Int64"})
        rows = np.frombuffer(self._mv).reshape(-1, METRIC_WIDTH).copy()
        names = np.array(self._metric_names, dtype=object)
        return pd.DataFrame({
            "time_s": rows[:, 0], "node": pd.array(rows[:, 1], dtype="Int64"),
            "step": pd.array(rows[:, 2], dtype="Int64"), "metric": names[rows[:, 3].astype(int)],
            "value": rows[:, 4]}, columns=columns)

    def events(self) -> pd.DataFrame:
        """Discrete events as a DataFrame (one column per field seen)."""
        return pd.DataFrame(self._events)

    def intervals(self) -> pd.DataFrame:
        """Node-state intervals: node, kind, start_s, end_s (float64), label."""
        columns = ["node", "kind", "start_s", "end_s", "label"]
        rows = np.frombuffer(self._iv).reshape(-1, IV_WIDTH)
        rows = rows[rows[:, 3] > rows[:, 2]]  # (a copy)
        if not len(rows):
            return pd.DataFrame([], columns=columns)
        codes = rows[:, 1].astype(int)
        kinds = np.array([kind for kind, _ in self._iv_kinds], dtype=object)
        labels = np.array([label for _, label in self._iv_kinds], dtype=object)
        return pd.DataFrame({"node": rows[:, 0].astype(np.int64), "kind": kinds[codes],
                             "start_s": rows[:, 2], "end_s": rows[:, 3],
                             "label": labels[codes]}, columns=columns)

    def state_spans(self) -> list[dict[str, list[tuple[float, float]]]]:
        """Per node, disjoint sorted ``[start_s, end_s)`` spans of each exclusive state.

        One dict per node with keys ``down``, ``busy``, ``comm`` (priority down > busy > comm,
        as in the module docstring); idle is the rest of ``[0, elapsed_s)``. The per-node time
        breakdown sums these; the timeline plot draws them.
        """
        elapsed = self.elapsed_s
        raw: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
        for node, kind, start, end, _ in self._interval_rows():
            end = min(end, elapsed)
            if end > start:
                raw[(node, kind)].append((start, end))
        out = []
        for node in range(len(self.node_names)):
            down = _union(raw[(node, "down")])
            busy = _subtract(_union(raw[(node, "busy")]), down)
            comm = _subtract(_subtract(_union(raw[(node, "comm")]), down), busy)
            out.append({"down": down, "busy": busy, "comm": comm})
        return out

    def node_time_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s, comm_s, idle_s, down_s; their sum is the elapsed time exactly."""
        elapsed = self.elapsed_s
        rows = [_time_row(node, elapsed, *(_length(spans[k]) for k in ("busy", "comm", "down")))
                for node, spans in enumerate(self.state_spans())]
        return pd.DataFrame(rows)

    def goodput_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s split into useful_s and discarded_s (compute that was lost)."""
        elapsed = self.elapsed_s
        busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
        down: dict[int, list[tuple[float, float]]] = defaultdict(list)
        lost: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for node, kind, start, end, _ in self._interval_rows():
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
        for node, kind, start, end, label in sorted(self._interval_rows(), key=_interval_key):
            if end > start:
                trace.append({"ph": "X", "pid": 0, "tid": node, "cat": kind,
                              "name": label or kind, "ts": _us(start), "dur": _us(end - start)})
        for ev in self._events:
            args = {k: _jsonable(v) for k, v in ev.items() if k not in ("time_s", "kind", "node")}
            tid = ev["node"] if ev["node"] is not None else 0
            trace.append({"ph": "i", "pid": 0, "tid": tid, "s": "t" if ev["node"] is not None
                          else "g", "name": ev["kind"], "ts": _us(ev["time_s"]), "args": args})
        for time_s, metric_node, _, name, value in self._metric_rows():
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
            import pyarrow  # noqa: F401  # deferred: optional, only for Parquet
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


def _time_row(node: int, elapsed_s: float, busy_s: float, comm_s: float,
              down_s: float) -> dict[str, float]:
    """One node's row of the time breakdown; idle is the rest of the elapsed time (s).

    busy, comm and down are disjoint, so only rounding can make idle negative.
    """
    idle_s = elapsed_s - busy_s - comm_s - down_s
    if idle_s < 0:
        assert idle_s > -1e-9 * max(1.0, elapsed_s), idle_s
        idle_s = 0.0
    return {"node": node, "busy_s": busy_s, "comm_s": comm_s, "idle_s": idle_s,
            "down_s": down_s}


def _length(spans: list[tuple[float, float]]) -> float:
    return float(sum(b - a for a, b in spans))


RECORD_LEVELS = ("full", "aggregate")
"""What a run keeps (``[run] record``): every interval and metric row, or aggregates."""


def make_recorder(env: Any, node_names: list[str], level: str = "full") -> Recorder:
    """The recorder of ``level`` (one of :data:`RECORD_LEVELS`)."""
    if level == "full":
        return Recorder(env, node_names)
    if level == "aggregate":
        return AggregateRecorder(env, node_names)
    raise ValueError(f"run.record: unknown level {level!r}; allowed: {', '.join(RECORD_LEVELS)}")


class AggregateRecorder(Recorder):
    """A recorder that keeps per-node totals instead of every interval and per-node metric row.

    For runs of many nodes, where the full record (an interval per task and per flow end, a
    metric row per node and step) grows to gigabytes, this keeps what the summary and the
    per-node breakdowns need, and memory grows with the nodes, not with the run's length:

    - intervals: per node, the seconds down, busy and communicating (exclusive, with the
      priorities of the module docstring) and the busy seconds discarded (goodput), counted
      as the run goes; :meth:`intervals` and :meth:`state_spans` (the timeline) are not
      available, and the Chrome trace has events and counters but no intervals;
    - metrics: rows without a node (evaluations, totals) are kept as they are; rows of one
      node (a node's loss, its ``sync_s``) are summed per ``(metric, step)``:
      :meth:`metric_aggregates` gives count, sum, min and max; :meth:`history` has only the
      rows without a node;
    - events, bytes per node and per link: as in :class:`Recorder`.

    How the totals stay exact: an interval starts at or after the current time and is only
    ever cut at the current time, so every node's record before ``now`` is final. Each node's
    open intervals wait in a small table; from time to time (when the table has grown, before
    a discard, and when the record is read) the span since the node's last accounting up to
    ``now`` is split into down, busy and communicating exactly as :meth:`Recorder.state_spans`
    does, and the intervals that have ended are dropped. The sums equal the full recorder's up
    to floating-point rounding (one span may be added in several pieces): the tests compare
    both at 1e-9 relative.

    Discarded compute refers to the past (a task cut by a failure, the work since a node's
    last commit), so each node keeps its busy spans (merged when back to back) back to the
    earlier of its latest task's start and its last :meth:`commit_work`. Policies that commit
    (synchronous groups every round, gossip methods every exchange) keep a round's worth; a
    policy that never commits keeps them all. A discard that reaches further back than that
    is a bug of the policy and raises.
    """

    level = "aggregate"

    def __init__(self, env: Any, node_names: list[str]) -> None:
        super().__init__(env, node_names)
        n = len(node_names)
        self._n = n
        self._seq = 0
        # per node: open (or not yet accounted) intervals, handle -> [kind, start_s, end_s]
        self._live: list[dict[int, list]] = [{} for _ in range(n)]
        self._flush_at = [8] * n        # flush a node's table when it reaches this size
        self._upto = [0.0] * n          # the node's record is accounted up to this time
        self._down_s = [0.0] * n
        self._busy_s = [0.0] * n
        self._comm_s = [0.0] * n
        self._discarded_s = [0.0] * n
        self.interval_counts: dict[str, int] = defaultdict(int)
        # per node, kept for discards: busy (not down) spans and discarded spans, since _keep_from
        self._busy_kept: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._lost_kept: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._last_busy_start = [0.0] * n
        self._kept_from = [0.0] * n
        self._node_metrics: dict[tuple[str, int | None], list[float]] = {}

    # -- writing ---------------------------------------------------------------------------

    def metric(self, name: str, value: float, node: int | None = None,
               step: int | None = None) -> None:
        """Record ``value`` of ``name`` now: kept if ``node`` is None, else summed per step."""
        if node is None:
            super().metric(name, value, None, step)
            return
        value = float(value)
        agg = self._node_metrics.get((name, step))
        if agg is None:
            self._node_metrics[(name, step)] = [1, value, value, value]
        else:
            agg[0] += 1
            agg[1] += value
            if value < agg[2]:
                agg[2] = value
            if value > agg[3]:
                agg[3] = value

    def interval(self, node: int, kind: str, start_s: float, end_s: float,
                 label: str = "") -> int:
        """Count an interval of ``node`` (see :meth:`Recorder.interval`); returns its handle."""
        live = self._live[node]
        if len(live) >= self._flush_at[node]:
            self._flush(node, self.env.now)
        self._seq += 1
        handle = self._seq * self._n + node
        live[handle] = [kind, start_s, end_s]
        self.interval_counts[kind] += 1
        if kind == "busy" and start_s > self._last_busy_start[node]:
            self._last_busy_start[node] = start_s
        return handle

    def close_interval(self, index: int, at_s: float) -> None:
        """End the interval ``index`` at ``at_s`` if it would end later (never extends it)."""
        iv = self._live[index % self._n].get(index)
        if iv is not None and at_s < iv[2]:
            iv[2] = max(iv[1], at_s)

    def discard_work(self, node: int, start_s: float, end_s: float, reason: str = "") -> None:
        """Discard ``node``'s busy time over [start_s, end_s) (see :meth:`Recorder`)."""
        if not end_s > start_s:
            return
        self._flush(node, self.env.now, prune=False)
        if start_s < self._kept_from[node]:
            raise RuntimeError(
                f"aggregate recorder: node {node} discards work from t={start_s}s, before the "
                f"busy time it kept (from t={self._kept_from[node]}s: its latest task's start "
                f"or its last commit)")
        fresh = _subtract([(float(start_s), float(end_s))], self._lost_kept[node])
        self._discarded_s[node] += _length(_intersect(self._busy_kept[node], fresh))
        self._lost_kept[node] = _union(self._lost_kept[node] + fresh)
        self._prune(node, self.env.now)

    def finish(self, end_time_s: float) -> None:
        """Close the record at the run's end; open intervals are cut there."""
        self.end_time_s = end_time_s
        for node in range(self._n):
            self._flush(node, end_time_s)

    # -- the accounting ----------------------------------------------------------------------

    def _flush(self, node: int, until_s: float, prune: bool = True) -> None:
        """Account ``node``'s record from its last accounting up to ``until_s`` (<= now).

        One sweep over the interval ends in [last accounting, until_s): each piece between two
        consecutive ends is down if a down interval covers it, else busy, else communicating,
        else idle (the priorities of :meth:`Recorder.state_spans`).
        """
        lo = self._upto[node]
        live = self._live[node]
        ended = []
        if until_s > lo:
            ends = []
            for handle, (kind, start, end) in live.items():
                if end <= until_s:
                    ended.append(handle)
                a = start if start > lo else lo
                b = end if end < until_s else until_s
                code = _STATE_CODE.get(kind)
                if b > a and code is not None:  # (other kinds are not states: ignored)
                    ends.append((a, 1, code))
                    ends.append((b, -1, code))
            if ends:
                self._sweep(node, ends)
            self._upto[node] = until_s
        else:
            ended = [h for h, iv in live.items() if iv[2] <= until_s]
        for handle in ended:
            del live[handle]
        self._flush_at[node] = max(8, 2 * len(live))
        if prune:
            self._prune(node, until_s)

    def _sweep(self, node: int, ends: list[tuple[float, int, int]]) -> None:
        ends.sort()
        open_ = [0, 0, 0]  # open down, busy, comm intervals
        seconds = [0.0, 0.0, 0.0]
        busy: list[tuple[float, float]] = []
        prev = ends[0][0]
        for t, step, code in ends:
            if t > prev:
                state = 0 if open_[0] else 1 if open_[1] else 2 if open_[2] else -1
                if state >= 0:
                    seconds[state] += t - prev
                    if state == 1:
                        if busy and busy[-1][1] == prev:
                            busy[-1] = (busy[-1][0], t)
                        else:
                            busy.append((prev, t))
                prev = t
            open_[code] += step
        self._down_s[node] += seconds[0]
        self._busy_s[node] += seconds[1]
        self._comm_s[node] += seconds[2]
        if busy:
            kept = self._busy_kept[node]
            if kept and kept[-1][1] == busy[0][0]:  # continues the last span: merge
                kept[-1] = (kept[-1][0], busy[0][1])
                kept.extend(busy[1:])
            else:
                kept.extend(busy)
            lost = self._lost_kept[node]
            if lost:  # busy time inside a span discarded earlier (a discard may run ahead)
                self._discarded_s[node] += _length(_intersect(busy, lost))

    def _prune(self, node: int, until_s: float) -> None:
        """Forget busy and discarded spans before the earliest start a discard may name."""
        keep = min(self._last_busy_start[node], float(self.work_committed_s[node]), until_s)
        for kind, start, _end in self._live[node].values():
            if kind == "busy" and start < keep:
                keep = start
        if keep > self._kept_from[node]:
            self._kept_from[node] = keep
            self._busy_kept[node] = _clip_from(self._busy_kept[node], keep)
            self._lost_kept[node] = _clip_from(self._lost_kept[node], keep)

    def _flush_all(self) -> None:
        until = self.elapsed_s
        for node in range(self._n):
            self._flush(node, until)

    # -- reading ---------------------------------------------------------------------------

    def _not_kept(self, what: str) -> ValueError:
        return ValueError(f"{what} is not available: the run kept aggregates only "
                          f"(run.record = \"aggregate\"); rerun with run.record = \"full\"")

    def intervals(self) -> pd.DataFrame:
        """Not kept at this level: raises ``ValueError``."""
        raise self._not_kept("the interval record")

    def state_spans(self) -> list[dict[str, list[tuple[float, float]]]]:
        """Not kept at this level: raises ``ValueError``."""
        raise self._not_kept("the per-node timeline (state spans)")

    def node_time_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s, comm_s, idle_s, down_s (idle is the rest of the elapsed time)."""
        self._flush_all()
        elapsed = self.elapsed_s
        rows = [_time_row(node, elapsed, self._busy_s[node], self._comm_s[node],
                          self._down_s[node]) for node in range(self._n)]
        return pd.DataFrame(rows)

    def goodput_breakdown(self) -> pd.DataFrame:
        """Per node: busy_s split into useful_s and discarded_s."""
        self._flush_all()
        return pd.DataFrame([
            {"node": node, "busy_s": self._busy_s[node],
             "useful_s": self._busy_s[node] - self._discarded_s[node],
             "discarded_s": self._discarded_s[node]} for node in range(self._n)])

    def metric_aggregates(self) -> pd.DataFrame:
        """Per-node metrics summed per step: metric, step, count, sum, min, max."""
        rows = [(name, step, *agg) for (name, step), agg in self._node_metrics.items()]
        df = pd.DataFrame(rows, columns=["metric", "step", "count", "sum", "min", "max"])
        return df.astype({"step": "Int64", "count": "int64"})


_STATE_CODE = {"down": 0, "busy": 1, "comm": 2}
"""Index of each exclusive state in :meth:`AggregateRecorder._sweep` (priority order)."""


def _intersect(a: list[tuple[float, float]],
               b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint sorted ``a`` intersected with disjoint sorted ``b``."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _clip_from(spans: list[tuple[float, float]], at_s: float) -> list[tuple[float, float]]:
    """Disjoint sorted ``spans``, without those that end at or before ``at_s``."""
    k = 0
    while k < len(spans) and spans[k][1] <= at_s:
        k += 1
    return spans[k:] if k else spans
