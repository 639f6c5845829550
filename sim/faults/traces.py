"""Reading and writing fault traces (CSV), for replaying measured stragglers and failures.

Straggler trace: one row per (node, round), columns ``node, round`` and either ``factor``
(multiplier of the nominal duration) or ``duration_s`` (measured seconds)::

    node,round,duration_s
    0,0,1.02
    0,1,1.10
    1,0,3.95

Each node's rounds must be exactly ``0 .. n-1`` (any row order).

Failure trace: one row per event, columns ``time_s, kind`` and optionally ``nodes`` (ids
separated by ``;``), ``links`` (``u:v`` pairs separated by ``;``), ``groups`` (sites separated by
``;``, groups by ``|``), ``duration_s`` (empty: never back) and ``notice_s`` (empty: 0)::

    time_s,kind,nodes,links,groups,duration_s,notice_s
    3600,crash,3,,,600,
    7200,preempt,5,,,,120
    9000,link_down,,us-east1:europe-west4,,300,
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sim.faults.events import FailureEvent, sort_events

FAILURE_TRACE_COLUMNS = ("time_s", "kind", "nodes", "links", "groups", "duration_s", "notice_s")


def _rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    return header, rows


def read_straggler_trace(
    path: str | Path, *, nominal_s: float | None = None
) -> dict[int, np.ndarray]:
    """Per-node factor arrays ``{node: factors[round]}`` from a straggler trace CSV.

    With a ``duration_s`` column, factor = ``duration_s / nominal_s``; ``nominal_s`` defaults to
    the shortest duration in the file.
    """
    header, rows = _rows(path)
    value_columns = [c for c in ("factor", "duration_s") if c in header]
    if "node" not in header or "round" not in header or len(value_columns) != 1:
        raise ValueError(
            f"straggler trace {path}: columns must be node, round and exactly one of "
            f"factor or duration_s; got {header}"
        )
    column = value_columns[0]
    by_node: dict[int, dict[int, float]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            node, round_index, value = int(row["node"]), int(row["round"]), float(row[column])
        except ValueError as err:
            raise ValueError(f"straggler trace {path}, line {line}: {err}") from err
        if round_index in by_node.setdefault(node, {}):
            raise ValueError(
                f"straggler trace {path}, line {line}: node {node} round {round_index} repeated"
            )
        by_node[node][round_index] = value
    if not by_node:
        raise ValueError(f"straggler trace {path}: no rows")
    traces = {}
    for node in sorted(by_node):
        rounds = by_node[node]
        if sorted(rounds) != list(range(len(rounds))):
            raise ValueError(
                f"straggler trace {path}: rounds of node {node} must be 0..{len(rounds) - 1} "
                "without gaps"
            )
        traces[node] = np.array([rounds[r] for r in range(len(rounds))], dtype=float)
    if column == "duration_s":
        shortest = min(float(v.min()) for v in traces.values())
        nominal = shortest if nominal_s is None else float(nominal_s)
        if not nominal > 0:
            raise ValueError(f"nominal_s must be > 0 seconds, got {nominal!r}")
        traces = {node: values / nominal for node, values in traces.items()}
    elif nominal_s is not None:
        raise ValueError("nominal_s applies only to a trace with a duration_s column")
    return traces


def _optional_float(text: str, default: float | None) -> float | None:
    return default if text == "" else float(text)


def read_failure_trace(path: str | Path) -> list[FailureEvent]:
    """Events of a failure trace CSV, sorted."""
    header, rows = _rows(path)
    missing = [c for c in ("time_s", "kind") if c not in header]
    unknown = [c for c in header if c not in FAILURE_TRACE_COLUMNS]
    if missing or unknown:
        raise ValueError(
            f"failure trace {path}: needs columns time_s and kind, allows "
            f"{list(FAILURE_TRACE_COLUMNS)}; missing {missing}, unknown {unknown}"
        )
    events = []
    for line, row in enumerate(rows, start=2):
        try:
            nodes = tuple(int(n) for n in row.get("nodes", "").split(";") if n.strip())
            pairs = [pair.split(":", 1) for pair in row.get("links", "").split(";") if pair]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(f"links must be u:v pairs separated by ';', got {row['links']!r}")
            links = tuple((u, v) for u, v in pairs)
            groups = tuple(
                tuple(site for site in group.split(";") if site)
                for group in row.get("groups", "").split("|")
                if group
            )
            events.append(
                FailureEvent(
                    time_s=float(row["time_s"]),
                    kind=row["kind"],
                    nodes=nodes,
                    links=links,
                    groups=groups,
                    duration_s=_optional_float(row.get("duration_s", ""), None),
                    notice_s=_optional_float(row.get("notice_s", ""), 0.0) or 0.0,
                )
            )
        except ValueError as err:
            raise ValueError(f"failure trace {path}, line {line}: {err}") from err
    return sort_events(events)


def write_failure_trace(events: Iterable[FailureEvent], path: str | Path) -> None:
    """Write events as a failure trace CSV that :func:`read_failure_trace` reads back."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FAILURE_TRACE_COLUMNS)
        for event in sort_events(events):
            writer.writerow(
                [
                    repr(event.time_s),
                    event.kind,
                    ";".join(str(n) for n in event.nodes),
                    ";".join(f"{u}:{v}" for u, v in event.links),
                    "|".join(";".join(group) for group in event.groups),
                    "" if event.duration_s is None else repr(event.duration_s),
                    repr(event.notice_s),
                ]
            )
