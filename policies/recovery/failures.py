"""Stage failures for the recovery family: when every replica of a stage is lost.

The failure model is CheckFree's (see ``sim.faults.failures.GroupFailures``): each stage except
the exempt ones (stage 0 holds the embedding, the head and the data) fails independently with
probability ``p_iter = 1 - (1 - p_hour)^(T / 3600)`` in every period of ``T`` seconds, at a
uniform time inside the period, and its replacement joins with no weights ``rejoin_delay_s``
later.

Rate scaling
------------
Published rates (5-16% per hour per stage) give almost no failures in a simulated run of a few
minutes. ``time_scale`` compresses time for the failure process only: one simulated second
counts as ``time_scale`` seconds of exposure, i.e. the rate used is

    p_hour_scaled = 1 - (1 - p_hour)^time_scale         (exactly rate x time_scale)

so that the expected number of failures of one stage in a run of ``H`` simulated seconds is
``-ln(1 - p_hour) * time_scale * H / 3600``. Training itself is not scaled: iteration times,
transfers and rejoin delays stay in simulated seconds.

The schedule is drawn once, before the run, from the *world's* random stream (``world_rng``),
so every method of a comparison faces the same failures at the same simulated times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.faults.failures import GroupFailures


@dataclass(frozen=True, kw_only=True)
class StageFailureConfig:
    """Stage-failure injection.

    p_hour:
        Failure probability of one stage per hour of exposure (0.05, 0.10, 0.16 in the paper).
        0 disables failures.
    time_scale:
        Seconds of exposure per simulated second (>= 1 makes failures happen in short runs; see
        the module docstring).
    failure_period_s:
        Length ``T`` of one draw period, seconds (the reference draws once per iteration; set
        it near the iteration time).
    rejoin_delay_s:
        Seconds between a failure and the moment its replacement nodes join (empty).
    exempt:
        Stages that never fail (stage 0 in the reference).
    horizon_s:
        Failures are drawn in ``[0, horizon_s)``, seconds; the run's ``until_s`` when ``None``.
    """

    p_hour: float = 0.0
    time_scale: float = 1.0
    failure_period_s: float = 10.0
    rejoin_delay_s: float = 30.0
    exempt: tuple[int, ...] = (0,)
    horizon_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_hour < 1.0:
            raise ValueError(f"p_hour={self.p_hour}: must be in [0, 1)")
        if not (self.time_scale > 0 and math.isfinite(self.time_scale)):
            raise ValueError(f"time_scale={self.time_scale}: must be a number > 0")
        if not self.failure_period_s > 0:
            raise ValueError(f"failure_period_s={self.failure_period_s}: must be > 0 seconds")
        if not self.rejoin_delay_s >= 0:
            raise ValueError(f"rejoin_delay_s={self.rejoin_delay_s}: must be >= 0")
        if self.horizon_s is not None and not self.horizon_s > 0:
            raise ValueError(f"horizon_s={self.horizon_s}: must be > 0 or None")

    @property
    def scaled_p_hour(self) -> float:
        """Per-hour probability after time compression: ``1 - (1 - p_hour)^time_scale``."""
        return -math.expm1(self.time_scale * math.log1p(-self.p_hour))

    def expected_failures(self, duration_s: float) -> float:
        """Return the expected failures of one non-exempt stage in ``duration_s`` seconds."""
        return -math.log1p(-self.p_hour) * self.time_scale * duration_s / 3600.0


@dataclass(frozen=True, kw_only=True)
class StageFailure:
    """All replicas of ``stage`` are lost at ``time_s``; replacements join at ``rejoin_s``."""

    time_s: float
    stage: int
    rejoin_s: float


def draw_stage_failures(config: StageFailureConfig, *, num_stages: int, horizon_s: float,
                        rng: np.random.Generator) -> list[StageFailure]:
    """Draw the run's stage-failure schedule, sorted by time.

    Uses :class:`sim.faults.failures.GroupFailures` with one group per stage (a group's
    "nodes" are stage indices here: the schedule is about stages, and the policy maps a stage
    to whichever nodes hold it when the failure strikes).
    """
    if config.p_hour == 0.0:
        return []
    model = GroupFailures(
        [[s] for s in range(num_stages)],
        config.scaled_p_hour,
        config.failure_period_s,
        rejoin_delay_s=config.rejoin_delay_s,
        exempt=config.exempt,
    )
    events = model.schedule(num_nodes=num_stages, horizon_s=horizon_s, rng=rng)
    return [
        StageFailure(time_s=e.time_s, stage=e.nodes[0], rejoin_s=e.time_s + config.rejoin_delay_s)
        for e in events
    ]


class FailureFeed:
    """Hands out the failures of a fixed schedule in time order, window by window."""

    def __init__(self, schedule: list[StageFailure]) -> None:
        self._pending = sorted(schedule, key=lambda f: (f.time_s, f.stage))
        self._next = 0

    def until(self, time_s: float) -> list[StageFailure]:
        """Failures up to and including ``time_s`` not handed out before."""
        out = []
        while self._next < len(self._pending) and self._pending[self._next].time_s <= time_s:
            out.append(self._pending[self._next])
            self._next += 1
        return out

    @property
    def remaining(self) -> int:
        """Failures not handed out yet."""
        return len(self._pending) - self._next
