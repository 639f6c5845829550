"""The built-in failure models as components: one typed Config each, built by the registry.

A ``[faults] failures`` table (or a list of them) names a model and its parameters::

    failures = { model = "poisson", rate = "0.1/h", downtime = "10min" }

:func:`sim.components.config_from_table` turns each table into the model's Config (units: the
example arrives as ``rate_per_s`` and ``downtime_s``); the Config checks its values and refuses
one by raising :class:`~sim.errors.FieldError` with the field's name. ``build()`` makes the
:class:`~sim.faults.failures.FailureModel` whose ``schedule(num_nodes=, horizon_s=, rng=)`` the
world draws before the run. (The ``stage`` model, whose stages a policy names, is in
:mod:`sim.faults.stages`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.components import component, make_config, register_component
from sim.errors import FieldError
from sim.faults.downtime import Downtime
from sim.faults.events import FailureEvent
from sim.faults.failures import (
    SPOT_MONTHLY_BUCKETS,
    CombinedFailures,
    FailureModel,
    NoFailures,
    PoissonCrashes,
    SpotPreemption,
    TraceFailures,
    check_rate,
)
from sim.faults.group_failures import GroupFailures
from sim.faults.link_failures import LinkDown, Partition
from sim.faults.traces import read_failure_trace

__all__ = ["failure_config", "make_failure_model"]


def _downtime(downtime_s: float | None, downtime: Any) -> Downtime:
    """The downtime of a crash: ``downtime_s`` seconds, or a distribution table ``downtime``."""
    if downtime_s is not None and downtime is not None:
        raise FieldError("downtime", "give downtime_s or downtime, not both")
    if downtime is not None:
        if not isinstance(downtime, Mapping):
            raise FieldError("downtime", f"{downtime!r} has no unit; write it with one, e.g. "
                                         f"downtime = \"10min\" (or a table with a dist)")
        try:
            return Downtime.from_spec(dict(downtime))
        except (TypeError, ValueError) as exc:
            raise FieldError("downtime", str(exc)) from None
    try:
        return Downtime.from_spec(0.0 if downtime_s is None else float(downtime_s))
    except (TypeError, ValueError) as exc:
        raise FieldError("downtime_s", str(exc)) from None


def _node_ids(name: str, values: Any) -> tuple[int, ...]:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise FieldError(name, f"must be a list of node ids >= 0, got {values!r}")
    return tuple(int(v) for v in values)


@register_component("failures", "none")
@dataclass(frozen=True, kw_only=True)
class NoFailuresConfig:
    """Nothing ever fails."""

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.failures.NoFailures`."""
        return NoFailures()


@register_component("failures", "poisson")
@dataclass(frozen=True, kw_only=True)
class PoissonConfig:
    """Independent node crashes: up-time ``~ Exp(rate_per_s)``, then a downtime, repeat.

    rate_per_s:
        Crash rate of one up node, per second (``rate = "0.1/h"``).
    downtime_s, downtime:
        Seconds down after each crash, or a distribution table (``{dist = "lognormal", ...}``);
        0 s when neither is given.
    rejoin:
        False: a node crashes at most once and never comes back.
    exempt:
        Node ids that never crash.
    """

    rate_per_s: float
    downtime_s: float | None = None
    downtime: dict[str, Any] | None = None
    rejoin: bool = True
    exempt: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_rate("rate_per_s", self.rate_per_s)
        _downtime(self.downtime_s, self.downtime)
        object.__setattr__(self, "exempt", _node_ids("exempt", self.exempt))

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.failures.PoissonCrashes`."""
        return PoissonCrashes(self.rate_per_s, _downtime(self.downtime_s, self.downtime),
                              rejoin=self.rejoin, exempt=self.exempt)


@register_component("failures", "spot")
@dataclass(frozen=True, kw_only=True)
class SpotConfig:
    """Spot preemption: a notice, ``notice_s`` later the kill, then a downtime.

    rate_per_s, monthly_fraction, monthly_bucket:
        Exactly one: the preemption rate per node per second, a monthly interruption fraction,
        or an AWS spot-advisor bucket (``"<5%"``, ``"5-10%"``, ...).
    notice_s:
        Warning before the kill, seconds (AWS 120, GCP about 30).
    downtime_s, downtime, rejoin, exempt:
        As for ``poisson``.
    """

    rate_per_s: float | None = None
    monthly_fraction: float | None = None
    monthly_bucket: str | None = None
    notice_s: float = 120.0
    downtime_s: float | None = None
    downtime: dict[str, Any] | None = None
    rejoin: bool = True
    exempt: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        rates = {"rate_per_s": self.rate_per_s, "monthly_fraction": self.monthly_fraction,
                 "monthly_bucket": self.monthly_bucket}
        given = [name for name, value in rates.items() if value is not None]
        if len(given) != 1:
            raise FieldError("rate", f"model 'spot' needs exactly one of {sorted(rates)}, "
                                     f"got {given}")
        if self.monthly_bucket is not None and self.monthly_bucket not in SPOT_MONTHLY_BUCKETS:
            raise FieldError("monthly_bucket", f"{self.monthly_bucket!r}; allowed: "
                                               f"{', '.join(SPOT_MONTHLY_BUCKETS)}")
        if self.monthly_fraction is not None and not 0.0 <= self.monthly_fraction < 1.0:
            raise FieldError("monthly_fraction", f"must be in [0, 1), got "
                                                 f"{self.monthly_fraction!r}")
        check_rate("notice_s", self.notice_s, what="a finite number of seconds >= 0")
        check_rate("rate_per_s", self.rate)
        _downtime(self.downtime_s, self.downtime)
        object.__setattr__(self, "exempt", _node_ids("exempt", self.exempt))

    @property
    def rate(self) -> float:
        """Preemption rate per node, per second (from whichever of the three was given)."""
        if self.rate_per_s is not None:
            return self.rate_per_s
        monthly = self.monthly_fraction if self.monthly_fraction is not None \
            else self.monthly_bucket
        assert monthly is not None
        return SpotPreemption.rate_from_monthly(monthly)

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.failures.SpotPreemption`."""
        return SpotPreemption(self.rate, notice_s=self.notice_s,
                              downtime=_downtime(self.downtime_s, self.downtime),
                              rejoin=self.rejoin, exempt=self.exempt)


def _window(start_s: Any, duration_s: Any) -> None:
    if not (isinstance(start_s, (int, float)) and start_s >= 0):
        raise FieldError("start_s", f"must be a time >= 0 s, got {start_s!r}")
    if duration_s is not None and not (isinstance(duration_s, (int, float)) and duration_s >= 0):
        raise FieldError("duration_s", f"must be a duration >= 0 s (or absent: for good), got "
                                       f"{duration_s!r}")


@register_component("failures", "link_down")
@dataclass(frozen=True, kw_only=True)
class LinkDownConfig:
    """Given topology links go down at ``start_s`` for ``duration_s`` (absent: for good).

    links:
        ``[[u, v], ...]``: site names of each link's ends.
    start_s, duration_s:
        When the links go down and for how long, seconds.
    """

    links: tuple[tuple[str, str], ...]
    start_s: float
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if not self.links or not all(isinstance(link, Sequence) and len(link) == 2
                                     for link in self.links):
            raise FieldError("links", f"must list at least one [u, v] pair of sites, got "
                                      f"{self.links!r}")
        object.__setattr__(self, "links", tuple((str(u), str(v)) for u, v in self.links))
        _window(self.start_s, self.duration_s)

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.link_failures.LinkDown`."""
        return LinkDown(self.links, self.start_s, self.duration_s)


@register_component("failures", "partition")
@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    """The network splits into groups of sites from ``start_s`` for ``duration_s``.

    groups:
        ``[[site, ...], ...]``: every link between two groups goes down (sites in no group form
        one more group).
    start_s, duration_s:
        When, and for how long, seconds (absent duration: for good).
    """

    groups: tuple[tuple[str, ...], ...]
    start_s: float
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if not self.groups or not all(isinstance(g, Sequence) and not isinstance(g, str)
                                      for g in self.groups):
            raise FieldError("groups", f"must list at least one group of sites, got "
                                       f"{self.groups!r}")
        object.__setattr__(self, "groups",
                           tuple(tuple(str(site) for site in group) for group in self.groups))
        _window(self.start_s, self.duration_s)

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.link_failures.Partition` (the injector resolves its cut)."""
        return Partition(self.groups, self.start_s, self.duration_s)


@register_component("failures", "group")
@dataclass(frozen=True, kw_only=True)
class GroupConfig:
    """All nodes of a listed group fail at once (CheckFree's model, groups given by hand).

    groups:
        Node ids of each group (group index = stage index).
    p_hour:
        Failure probability of one group per hour.
    iteration_s:
        Length of one draw period (a training iteration), seconds.
    rejoin_delay_s:
        Downtime of a failed group, seconds.
    exempt:
        Group indices that never fail.
    """

    groups: tuple[tuple[int, ...], ...]
    p_hour: float
    iteration_s: float
    rejoin_delay_s: float = 0.0
    exempt: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.groups or not all(isinstance(g, Sequence) and g for g in self.groups):
            raise FieldError("groups", "must be a non-empty list of non-empty lists of node ids")
        object.__setattr__(self, "groups", tuple(_node_ids("groups", g) for g in self.groups))
        if not (isinstance(self.p_hour, (int, float)) and 0.0 <= self.p_hour <= 1.0):
            raise FieldError("p_hour", f"must be a probability in [0, 1], got {self.p_hour!r}")
        if not (isinstance(self.iteration_s, (int, float)) and self.iteration_s > 0):
            raise FieldError("iteration_s", f"must be > 0 seconds, got {self.iteration_s!r}")
        if not (isinstance(self.rejoin_delay_s, (int, float)) and self.rejoin_delay_s >= 0):
            raise FieldError("rejoin_delay_s", f"must be >= 0 seconds, got "
                                               f"{self.rejoin_delay_s!r}")
        object.__setattr__(self, "exempt", _node_ids("exempt", self.exempt))

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.group_failures.GroupFailures`."""
        return GroupFailures(self.groups, self.p_hour, self.iteration_s, self.rejoin_delay_s,
                             self.exempt)


@register_component("failures", "trace")
@dataclass(frozen=True, kw_only=True)
class TraceFailuresConfig:
    """Replay a failure trace CSV (:mod:`sim.faults.traces`; events past the horizon dropped).

    path:
        The trace file (relative paths resolve in the scenario file's folder).
    """

    path: str
    events: tuple[FailureEvent, ...] = field(init=False, repr=False, compare=False)
    """The trace, read once when the scenario is loaded."""

    def __post_init__(self) -> None:
        try:
            events = read_failure_trace(self.path)
        except FileNotFoundError:
            raise FieldError("path", f"file {str(self.path)!r} does not exist") from None
        except OSError as exc:
            raise FieldError("path", f"cannot read {str(self.path)!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise FieldError("path", str(exc)) from None
        object.__setattr__(self, "events", tuple(events))

    def build(self) -> FailureModel:
        """Return :class:`~sim.faults.failures.TraceFailures` of the trace."""
        return TraceFailures(self.events)


def failure_config(spec: Mapping[str, Any], *, where: str = "faults.failures") -> Any:
    """The typed Config of a failure table in SI units (``{"model": "poisson", ...}``)."""
    entry = component("failures", spec.get("model"), field=f"{where}.model")
    params = {k: v for k, v in spec.items() if k != "model"}
    return make_config(entry.config, params, where=where) if entry.config else None


def make_failure_model(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
                       ) -> FailureModel:
    """Build a failure model from a table in SI units, or a list of them (combined).

    E.g. ``{"model": "poisson", "rate_per_s": 1e-4, "downtime_s": 600}``; ``None`` or empty:
    nothing fails. The same path as a scenario's ``[faults] failures``: the model's Config,
    then ``build()``.
    """
    if not spec:
        return NoFailures()
    if not isinstance(spec, Mapping):
        return CombinedFailures([make_failure_model(s) for s in spec])
    return failure_config(spec).build()
