"""Stage failures: every replica of a pipeline stage is lost at once (CheckFree's model).

A scenario asks for them in its ``[faults]`` section, like any other failure model::

    [faults.failures]
    model = "stage"
    p_hour = 0.10            # failure probability of one stage per hour of exposure
    time_scale = 31.26       # seconds of exposure per simulated second
    failure_period_s = 19.672
    rejoin_delay_s = 19.672

Which nodes form a stage is the training method's business, not the scenario's: the policy
names its stages through :meth:`sim.policy.Policy.failure_groups` (group ``i`` = stage ``i``),
the world draws the schedule from its own stream ``("world", "stage_failures")`` before the run
(:meth:`sim.world.World.build`) and hands it to the policy as ``world.stage_failures``. Every
method of a comparison therefore faces the same failures at the same simulated times, and a
method that loses a stage decides what losing it means (its weights are gone; it rebuilds them
its own way). A policy that names no stages (``failure_groups`` returns ``[]``, as the
``no_failure`` upper bound does) faces none.

The draw
--------
Time is cut into periods of ``T = failure_period_s``. In each period every stage that is up and
not exempt fails with probability ``p_iter = 1 - (1 - p_hour')^(T / 3600)`` at a uniform time in
the period (:class:`sim.faults.group_failures.GroupFailures`), and its replacement joins, empty,
``rejoin_delay_s`` later; a stage cannot fail again before that.

Rate scaling
------------
Published rates (5-16% per hour per stage) give almost no failures in a simulated run of a few
minutes. ``time_scale`` compresses time for the failure process only: one simulated second
counts as ``time_scale`` seconds of exposure, i.e. the rate used is

    p_hour' = 1 - (1 - p_hour)^time_scale          (exactly rate x time_scale)

so the expected failures of one stage in ``H`` simulated seconds are
``-ln(1 - p_hour) * time_scale * H / 3600``. Training itself is not scaled: iteration times,
transfers and the rejoin delay stay in simulated seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.components import register_component
from sim.errors import FieldError, ScenarioError
from sim.faults.group_failures import GroupFailures

__all__ = ["STAGE_STREAM", "StageFailure", "StageFailureSchedule", "StageFailuresConfig",
           "draw_stage_schedule", "refuse_stage_failures_without_stages"]

STAGE_STREAM = ("world", "stage_failures")
"""The seed-tree path the schedule is drawn from (the same for every method of a comparison)."""


@dataclass(frozen=True, kw_only=True)
class StageFailure:
    """All replicas of ``stage`` are lost at ``time_s``; empty replacements join at ``rejoin_s``."""

    time_s: float
    stage: int
    rejoin_s: float


@dataclass(frozen=True, kw_only=True)
class StageFailureSchedule:
    """What the world hands a policy: the run's stage failures and the stages that never fail.

    failures:
        Every stage failure of the run, sorted by time.
    groups:
        The node ids of each stage, as the policy named them.
    exempt:
        Stages that never fail.
    """

    failures: tuple[StageFailure, ...]
    groups: tuple[tuple[int, ...], ...]
    exempt: tuple[int, ...]


@register_component("failures", "stage")
@dataclass(frozen=True, kw_only=True)
class StageFailuresConfig:
    """Every replica of a pipeline stage fails at once; the policy names the stages.

    p_hour:
        Failure probability of one stage per hour of exposure (0.05, 0.10, 0.16 in CheckFree);
        0 draws no failure (the stages that could fail are still known to the policy).
    time_scale:
        Seconds of failure exposure per simulated second (module docstring).
    failure_period_s:
        Length ``T`` of one draw period, seconds (the reference draws once per iteration: set
        it near the iteration time).
    rejoin_delay_s:
        Seconds between a failure and the moment the stage's replacement nodes join, empty.
    exempt:
        Stages that never fail (stage 0 in the reference: it holds the embedding, the head and
        the data).
    """

    p_hour: float = 0.0
    time_scale: float = 1.0
    failure_period_s: float = 10.0
    rejoin_delay_s: float = 30.0
    exempt: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not (isinstance(self.p_hour, (int, float)) and 0.0 <= self.p_hour < 1.0):
            raise FieldError("p_hour", f"{self.p_hour!r}: must be a probability in [0, 1)")
        if not (isinstance(self.time_scale, (int, float)) and self.time_scale > 0
                and math.isfinite(self.time_scale)):
            raise FieldError("time_scale", f"{self.time_scale!r}: must be a number > 0")
        if not (isinstance(self.failure_period_s, (int, float)) and self.failure_period_s > 0
                and math.isfinite(self.failure_period_s)):
            raise FieldError("failure_period_s",
                             f"{self.failure_period_s!r}: must be > 0 seconds")
        if not (isinstance(self.rejoin_delay_s, (int, float)) and self.rejoin_delay_s >= 0
                and math.isfinite(self.rejoin_delay_s)):
            raise FieldError("rejoin_delay_s", f"{self.rejoin_delay_s!r}: must be >= 0 seconds")
        exempt = (self.exempt,) if isinstance(self.exempt, int) else self.exempt
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in exempt):
            raise FieldError("exempt", f"{self.exempt!r}: must be a list of stage indices >= 0")
        object.__setattr__(self, "exempt", tuple(int(s) for s in exempt))

    @property
    def scaled_p_hour(self) -> float:
        """Per-hour probability after time compression: ``1 - (1 - p_hour)^time_scale``."""
        return -math.expm1(self.time_scale * math.log1p(-self.p_hour))

    def expected_failures(self, duration_s: float) -> float:
        """Expected failures of one non-exempt stage in ``duration_s`` simulated seconds."""
        return -math.log1p(-self.p_hour) * self.time_scale * duration_s / 3600.0

    def build(self) -> StageFailuresConfig:
        """The model is its config: the world draws it once it knows the stages."""
        return self


def draw_stage_schedule(config: StageFailuresConfig, groups: Sequence[Sequence[int]], *,
                        horizon_s: float, rng: np.random.Generator) -> StageFailureSchedule:
    """Draw the run's stage failures over ``[0, horizon_s)`` for the stages ``groups``.

    The draw is about stages (``GroupFailures`` over one group per stage index), so it depends
    only on the number of stages, the config, the horizon and ``rng``: every method that names
    the same number of stages faces the same schedule.
    """
    stages = tuple(tuple(int(n) for n in group) for group in groups)
    failures: list[StageFailure] = []
    if config.p_hour > 0.0 and stages:
        model = GroupFailures([[s] for s in range(len(stages))], config.scaled_p_hour,
                              config.failure_period_s, rejoin_delay_s=config.rejoin_delay_s,
                              exempt=config.exempt)
        events = model.schedule(num_nodes=len(stages), horizon_s=horizon_s, rng=rng)
        failures = [StageFailure(time_s=e.time_s, stage=e.nodes[0],
                                 rejoin_s=e.time_s + config.rejoin_delay_s) for e in events]
    return StageFailureSchedule(failures=tuple(failures), groups=stages, exempt=config.exempt)


def refuse_stage_failures_without_stages(faults: Any, policy: str) -> None:
    """Refuse a ``stage`` model for a method that names no stages (``failure_groups`` None)."""
    for i, spec in enumerate(faults.failures):
        if isinstance(spec, StageFailuresConfig):
            raise ScenarioError(f"faults.failures[{i}].model",
                                f"'stage' fails whole pipeline stages, and policy {policy!r} "
                                f"has none (it names no failure_groups); run a pipeline method "
                                f"or remove the model")
