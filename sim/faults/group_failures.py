"""Correlated failures: every node of a group (every replica of a pipeline stage) at once.

CheckFree's failure model (Gensyn, 2025): in each training iteration of ``T`` seconds a
stage fails with probability ``p_iter = 1 - (1 - p_hour)^(T / 3600)`` (:func:`p_iter`), drawn
independently per stage (:func:`draw_stage_failures`); :class:`GroupFailures` turns those draws
into a schedule of ``group`` events over the run's horizon. The ``stage`` fault model
(:mod:`sim.faults.stages`) uses it over the stages a policy names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.faults.events import FailureEvent, sort_events
from sim.faults.failures import FailureModel, check_nodes

__all__ = ["GroupFailures", "draw_stage_failures", "p_iter"]


def p_iter(p_hour: float, iteration_s: float) -> float:
    """Per-iteration failure probability ``1 - (1 - p_hour)^(iteration_s / 3600)``."""
    if not 0.0 <= p_hour <= 1.0:
        raise ValueError(f"p_hour must be a probability in [0, 1], got {p_hour!r}")
    if not iteration_s > 0.0:
        raise ValueError(f"iteration_s must be > 0 seconds, got {iteration_s!r}")
    if p_hour == 1.0:
        return 1.0
    return -math.expm1(math.log1p(-p_hour) * iteration_s / 3600.0)


def draw_stage_failures(
    num_stages: int, p_iter: float, rng: np.random.Generator, exempt: Sequence[int] = (0,)
) -> list[int]:
    """Stages that fail in one iteration, each independently with probability ``p_iter``.

    Exactly ``num_stages`` uniforms are drawn whatever ``exempt`` is, so changing the exempt
    stages does not shift the random stream.
    """
    if not 0.0 <= p_iter <= 1.0:
        raise ValueError(f"p_iter must be a probability in [0, 1], got {p_iter!r}")
    draws = rng.random(num_stages)
    return [s for s in range(num_stages) if draws[s] < p_iter and s not in exempt]


class GroupFailures(FailureModel):
    """Correlated failures: all nodes of a group (e.g. every replica of a stage) at once.

    Iteration ``k`` covers ``[k T, (k+1) T)`` with ``T = iteration_s``. In each iteration
    every group that is up and not exempt fails with probability
    ``p_iter(p_hour, T)`` at a uniform time inside the iteration, and stays down for
    ``rejoin_delay_s`` (replacements join with no weights).

    Parameters
    ----------
    groups:
        Node ids of each group; group index = stage index.
    p_hour:
        Failure probability of one group per hour (CheckFree studies 0.05-0.33).
    iteration_s:
        Duration of one training iteration, seconds.
    rejoin_delay_s:
        Downtime of a failed group, seconds (``None``: never back).
    exempt:
        Group indices that never fail (stage 0 holds the embeddings and data).
    """

    def __init__(
        self,
        groups: Sequence[Sequence[int]],
        p_hour: float,
        iteration_s: float,
        rejoin_delay_s: float | None = 0.0,
        exempt: Sequence[int] = (0,),
    ):
        self.groups = tuple(tuple(int(n) for n in group) for group in groups)
        if not self.groups or not all(self.groups):
            raise ValueError("groups must be a non-empty list of non-empty lists of node ids")
        self.p_hour = float(p_hour)
        self.iteration_s = float(iteration_s)
        self.p_iter = p_iter(self.p_hour, self.iteration_s)
        self.rejoin_delay_s = None if rejoin_delay_s is None else float(rejoin_delay_s)
        if self.rejoin_delay_s is not None and self.rejoin_delay_s < 0:
            raise ValueError(f"rejoin_delay_s must be >= 0 or None, got {rejoin_delay_s!r}")
        self.exempt = tuple(sorted(int(s) for s in exempt))

    def schedule(
        self, *, num_nodes: int, horizon_s: float, rng: np.random.Generator
    ) -> list[FailureEvent]:
        """Draw every iteration's stage failures (one uniform per group per iteration)."""
        for group in self.groups:
            check_nodes(group, num_nodes, "GroupFailures.groups")
        events = []
        back_at = [0.0] * len(self.groups)  # time each group is up again
        num_iterations = math.ceil(horizon_s / self.iteration_s)
        for k in range(num_iterations):
            for stage in draw_stage_failures(len(self.groups), self.p_iter, rng, self.exempt):
                at = (k + float(rng.random())) * self.iteration_s
                if at < back_at[stage] or at >= horizon_s:
                    continue  # still down from the last failure, or past the horizon
                events.append(
                    FailureEvent(
                        time_s=at,
                        kind="group",
                        nodes=self.groups[stage],
                        duration_s=self.rejoin_delay_s,
                    )
                )
                down_s = math.inf if self.rejoin_delay_s is None else self.rejoin_delay_s
                back_at[stage] = at + down_s
        return sort_events(events)
