"""The flat, JSON-ready record of one run: what ``--json`` prints and sweeps save.

Its own module because both :mod:`sim.compare` and :mod:`sim.runs` (which runs comparisons and
sweeps in worker processes) make records, and neither should import the other.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["record_of"]


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, non-finite floats to ``None``."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def record_of(result: Any, label: str | None = None) -> dict[str, Any]:
    """Return the flat, JSON-ready record of one run (what ``--json`` prints).

    It is the runner's ``Result.summary`` plus ``label`` (the name the comparison gave the run)
    and ``bytes_per_node`` (mean bytes sent per node).
    """
    summary = dict(result.summary)
    record = {"label": label or getattr(result, "label", None) or summary.get("policy"),
              **summary}
    record.setdefault("bytes_per_node", summary.get("bytes_sent_per_node"))
    return _clean(record)
