"""Failure schedules: the :class:`FailureModel` contract and the models that fail nodes.

A :class:`FailureModel` draws a whole schedule up front from the world's random stream, as a
sorted list of :class:`FailureEvent`. Drawing the schedule before the run (rather than inside
SimPy processes) makes it a plain list one can print, test, save as a trace and replay, and
keeps it independent of what the training policy does. :mod:`sim.faults.injector` applies a
schedule to a running World.

Models here (rates per second, durations in seconds; the scenario layer converts units):

- :class:`PoissonCrashes`: each node alternates up-times ``~ Exp(rate_per_s)`` and downtimes
  from a :class:`Downtime` distribution (or never returns). Expected crashes in ``[0, H)`` per
  node: ``rate_per_s * H`` when downtime is short next to ``1 / rate_per_s``; with a mean
  downtime ``d`` the long-run count is ``H / (1 / rate_per_s + d)`` (renewal theorem).
- :class:`SpotPreemption`: like crashes, but each kill is announced ``notice_s`` before it
  (AWS 120 s, GCP about 30 s).
- :class:`TraceFailures`: replay a CSV (see :mod:`sim.faults.traces`).
- :class:`CombinedFailures`: several models at once, each on its own child stream.

The other models are written against the same contract, each family in its own module:
links and partitions in :mod:`sim.faults.link_failures` (:class:`LinkDown`,
:class:`Partition`), correlated failures of whole groups of nodes (every replica of a pipeline
stage at once, CheckFree's model) in :mod:`sim.faults.group_failures` (:class:`GroupFailures`).

A schedule's events are :class:`~sim.faults.events.FailureEvent` (re-exported here).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sim.errors import FieldError
from sim.faults.downtime import Downtime
from sim.faults.events import FailureEvent, sort_events
from sim.faults.traces import read_failure_trace

#: Seconds in the "month" of spot interruption-frequency buckets (30 days).
SECONDS_PER_MONTH = 30 * 24 * 3600.0

#: Representative monthly interruption fraction of each AWS spot advisor bucket (bucket middle;
#: 25% for the open bucket ">20%").
SPOT_MONTHLY_BUCKETS: dict[str, float] = {
    "<5%": 0.025,
    "5-10%": 0.075,
    "10-15%": 0.125,
    "15-20%": 0.175,
    ">20%": 0.25,
}


# ---------------------------------------------------------------- models


def check_rate(name: str, value: float, *, what: str = "a finite rate >= 0 (per second)"
               ) -> float:
    """``value`` as a finite number >= 0; refuses it naming ``name`` (a :class:`FieldError`)."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0.0):
        raise FieldError(name, f"must be {what}, got {value!r}")
    return float(value)


def check_nodes(nodes: Iterable[int], num_nodes: int, what: str) -> None:
    """Refuse a node id outside ``[0, num_nodes)`` (``what`` says whose id it is)."""
    for node in nodes:
        if not 0 <= node < num_nodes:
            raise ValueError(f"{what}: node id {node!r} is outside [0, num_nodes={num_nodes})")


class FailureModel(ABC):
    """A random (or fixed) failure schedule."""

    @abstractmethod
    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Events that begin in ``[0, horizon_s)``, sorted by :attr:`FailureEvent.sort_key`.

        An event begins at its notice (``time_s - notice_s``); a preemption announced before
        the horizon is kept even if its kill falls after it.
        """


class NoFailures(FailureModel):
    """Nothing ever fails."""

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Return an empty schedule."""
        return []


class PoissonCrashes(FailureModel):
    """Independent node crashes: up-time ``~ Exp(rate_per_s)``, then a downtime, repeat.

    Parameters
    ----------
    rate_per_s:
        Crash rate of one up node, per second (``lambda``). Llama 3 405B: about 2e-5 unexpected
        failures per GPU-hour, i.e. 5.5e-9 per second.
    downtime:
        :class:`Downtime` (or its spec) of each crash.
    rejoin:
        False: a node crashes at most once and never comes back (``duration_s = None``).
    exempt:
        Node ids that never crash (e.g. a coordinator).
    """

    kind = "crash"  # kind of the events this model draws
    notice_s = 0.0  # warning before each strike, seconds (spot preemption overrides it)

    def __init__(
        self,
        rate_per_s: float,
        downtime: Downtime | float | Mapping[str, Any] | None = 0.0,
        *,
        rejoin: bool = True,
        exempt: Sequence[int] = (),
    ):
        self.rate_per_s = check_rate("rate_per_s", rate_per_s)
        self.downtime = Downtime.from_spec(downtime)
        self.rejoin = bool(rejoin)
        self.exempt = tuple(sorted(int(i) for i in exempt))

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Draw each node's alternating up/down renewal process, node 0 first."""
        events: list[FailureEvent] = []
        if self.rate_per_s == 0.0:
            return events
        notice_s = self.notice_s
        for node in range(num_nodes):
            if node in self.exempt:
                continue
            t = 0.0  # time the node (re)joined
            while True:
                warning_at = t + float(rng.standard_exponential()) / self.rate_per_s
                if warning_at >= horizon_s:
                    break
                down_s = self.downtime.sample(rng) if self.rejoin else None
                strike_at = warning_at + notice_s
                events.append(
                    FailureEvent(
                        time_s=strike_at,
                        kind=self.kind,
                        nodes=(node,),
                        duration_s=down_s,
                        notice_s=notice_s,
                    )
                )
                if down_s is None:
                    break
                t = strike_at + down_s
        return sort_events(events)


class SpotPreemption(PoissonCrashes):
    """Spot/preemptible instances: a notice, ``notice_s`` later the kill, then a downtime.

    Notices arrive as a Poisson process of rate ``rate_per_s`` per running node; the kill
    follows each notice after exactly ``notice_s``. Give the rate directly or as a monthly
    interruption fraction ``f`` (``rate = -ln(1 - f) / month``; see
    :data:`SPOT_MONTHLY_BUCKETS` for the AWS advisor buckets).

    Parameters
    ----------
    rate_per_s:
        Preemption rate per node, per second.
    notice_s:
        Warning before the kill, seconds (AWS 120, GCP about 30).
    downtime, rejoin, exempt:
        As for :class:`PoissonCrashes`.
    """

    kind = "preempt"

    def __init__(
        self,
        rate_per_s: float,
        *,
        notice_s: float = 120.0,
        downtime: Downtime | float | Mapping[str, Any] | None = 0.0,
        rejoin: bool = True,
        exempt: Sequence[int] = (),
    ):
        super().__init__(rate_per_s, downtime, rejoin=rejoin, exempt=exempt)
        self.notice_s = check_rate("notice_s", notice_s, what="a finite number of seconds >= 0")

    @staticmethod
    def rate_from_monthly(fraction_or_bucket: float | str) -> float:
        """Per-second rate from a monthly interruption fraction or an AWS bucket name."""
        if isinstance(fraction_or_bucket, str):
            if fraction_or_bucket not in SPOT_MONTHLY_BUCKETS:
                raise ValueError(
                    f"monthly bucket must be one of {list(SPOT_MONTHLY_BUCKETS)}, "
                    f"got {fraction_or_bucket!r}"
                )
            fraction = SPOT_MONTHLY_BUCKETS[fraction_or_bucket]
        else:
            fraction = float(fraction_or_bucket)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"monthly interruption fraction must be in [0, 1), got {fraction!r}")
        return -math.log1p(-fraction) / SECONDS_PER_MONTH


class TraceFailures(FailureModel):
    """Replay a fixed list of events (events at or after the horizon are dropped)."""

    def __init__(self, events: Iterable[FailureEvent]):
        self.events = sort_events(events)

    @classmethod
    def from_csv(cls, path: str) -> TraceFailures:
        """Load a failure trace CSV (format in :mod:`sim.faults.traces`)."""
        return cls(read_failure_trace(path))

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Return the trace's events that begin before ``horizon_s`` (``rng`` is not used)."""
        for event in self.events:
            check_nodes(event.nodes, num_nodes, "failure trace")
        return [event for event in self.events if event.time_s - event.notice_s < horizon_s]


class CombinedFailures(FailureModel):
    """Several failure models at once; each draws from its own child stream of ``rng``.

    Children come from ``rng.spawn``, so adding a model does not change the others' draws.
    """

    def __init__(self, models: Sequence[FailureModel]):
        self.models = tuple(models)

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Merge the models' schedules."""
        events: list[FailureEvent] = []
        for model, child in zip(self.models, rng.spawn(len(self.models))):
            events.extend(model.schedule(num_nodes=num_nodes, horizon_s=horizon_s, rng=child))
        return sort_events(events)
