"""How the recovery family consumes its stage failures: a feed over the world's schedule.

The failures themselves are the scenario's: a ``stage`` model in ``[faults]``
(:mod:`sim.faults.stages`: the draw, the rate scaling, the exempt stages), drawn by the world
over the stages the policy names (``Policy.failure_groups``) and handed to the policy as
``world.stage_failures``. Every method of a comparison faces the same schedule.
"""

from __future__ import annotations

from sim.faults.stages import StageFailure

__all__ = ["FailureFeed", "StageFailure"]


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
