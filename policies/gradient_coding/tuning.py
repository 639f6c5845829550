"""Choosing each scheme's parameters the authors' way: emulate a grid on probed delays.

Krishnan, Ebrahimi and Khisti (2023) do not compare schemes at one fixed ``(B, W, lam)``. They
first *probe* the workers (run rounds at a few loads and record every worker's response time),
fit a linear model of the response time in the load, and then, for every scheme, *emulate* every
parameter set of a grid on those delays with the fixed-threshold rule; each scheme runs with the
parameter set of lowest emulated time, among those whose load is at most GC's. Every comparison
is therefore against the best tuned baseline. This module is that step:

- :class:`DelayProfile`: probed response times ``d[i, r]`` of worker ``i`` in round ``r`` at
  the load ``base_load``, and the slope ``c`` (seconds per unit of normalised load) of the
  authors' linear model: a worker computing a fraction ``w`` of a job answers after
  ``d[i, r] + (w - base_load) c`` seconds. :func:`fit_profile` makes one from probes at several
  loads: one slope for all cells (least squares, as the authors' ``LinearRegression``), or one
  slope per cell (``per_cell=True``) when the probes replay the same straggler draws at every
  load. The authors' Lambda stragglers sat mostly in the invocation, which a common slope
  models; in dtsim a straggler factor multiplies the whole task (invocation and samples), so a
  straggler's slope is its factor times the mean's, and only the per-cell fit predicts it.
- :func:`grid`: every admissible parameter set of a scheme (load at most ``max_load``, delay
  ``T`` at most ``max_delay``, window at most ``max_W``).
- :func:`tune`: emulate every parameter set (:func:`~.sequential.emulate`, the same schedules
  the SimPy policies run) and keep, per scheme, the one with the lowest total time.

Pure numpy; the SimPy probe that measures a scenario's delays is
:func:`policies.gradient_coding.tuned_compare.probe_scenario`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from policies.gradient_coding.sequential import (
    SCHEMES,
    emulate,
    gc_load,
    m_sgc_load,
    make_schedule,
    sr_sgc_load,
)

#: Slack on the load comparison (loads are ratios of small integers).
_LOAD_TOL = 1e-12


@dataclass(frozen=True, kw_only=True)
class DelayProfile:
    """Probed response times and the authors' linear load model.

    base_s:
        ``d[i, r]``: seconds from the start of round ``r`` until worker ``i``'s result arrives,
        probed at load ``base_load``; shape ``(n, rounds)``.
    base_load:
        Normalised load (fraction of a job's data per worker) the base delays were probed at.
    slope_s:
        ``c``: extra seconds per unit of normalised load (a worker computing a whole job's data
        takes ``c`` seconds more than at load 0); a number, or one per cell (shape of
        ``base_s``).
    """

    base_s: np.ndarray
    base_load: float = 0.0
    slope_s: float | np.ndarray = 0.0

    def __post_init__(self) -> None:
        base = np.asarray(self.base_s, dtype=float)
        if base.ndim != 2 or base.size == 0:
            raise ValueError(f"base_s: must be a non-empty (workers, rounds) array, "
                             f"got shape {base.shape}")
        if not np.all(np.isfinite(base)):
            raise ValueError("base_s: every probed delay must be finite")
        slope = np.asarray(self.slope_s, dtype=float)
        if slope.ndim and slope.shape != base.shape:
            raise ValueError(f"slope_s: must be a number or of shape {base.shape}, "
                             f"got {slope.shape}")
        if not np.all(slope >= 0):
            raise ValueError("slope_s: must be >= 0 seconds per unit load")
        object.__setattr__(self, "base_s", base)
        object.__setattr__(self, "slope_s", slope if slope.ndim else float(slope))

    @property
    def num_workers(self) -> int:
        """Workers probed (``n``)."""
        return self.base_s.shape[0]

    @property
    def num_rounds(self) -> int:
        """Rounds probed."""
        return self.base_s.shape[1]

    def response_s(self, r: int, work: np.ndarray) -> np.ndarray:
        """Response time of every worker in round ``r`` when worker ``i`` computes ``work[i]``."""
        if not 0 <= r < self.num_rounds:
            raise ValueError(f"round: the profile has {self.num_rounds} rounds, asked for {r}")
        work = np.asarray(work, dtype=float)
        slope = self.slope_s[:, r] if isinstance(self.slope_s, np.ndarray) else self.slope_s
        return self.base_s[:, r] + (work - self.base_load) * slope


def fit_profile(loads: Sequence[float], delays_s: Sequence[np.ndarray], *,
                base_load: float | None = None, per_cell: bool = False) -> DelayProfile:
    """Fit the linear load model to probes at several loads.

    ``delays_s[k]`` holds the response times probed at ``loads[k]`` (shape ``(n, rounds)``).
    The slope is the least-squares fit of every cell's delay against its load (``per_cell``:
    of each cell's own delays, one slope per cell); the base delays are the probe at
    ``base_load`` (default: the smallest load probed).
    """
    if len(loads) != len(delays_s) or not loads:
        raise ValueError("loads: need one probe (delay array) per load, and at least one")
    loads = [float(x) for x in loads]
    base_load = min(loads) if base_load is None else float(base_load)
    if base_load not in loads:
        raise ValueError(f"base_load: must be one of the probed loads {loads}, got {base_load}")
    x = np.concatenate([np.full(np.size(d), load) for load, d in zip(loads, delays_s)])
    y = np.concatenate([np.ravel(d) for d in delays_s])
    base = np.asarray(delays_s[loads.index(base_load)], dtype=float)
    if len(set(loads)) < 2:
        return DelayProfile(base_s=base, base_load=base_load, slope_s=0.0)
    if per_cell:
        stack = np.stack([np.asarray(d, dtype=float) for d in delays_s])   # (loads, n, rounds)
        dx = np.array(loads)[:, None, None] - np.mean(loads)
        slope = (dx * (stack - stack.mean(axis=0))).sum(axis=0) / (dx ** 2).sum()
        return DelayProfile(base_s=base, base_load=base_load, slope_s=np.maximum(slope, 0.0))
    slope = float(np.polyfit(x, y, 1)[0])
    return DelayProfile(base_s=base, base_load=base_load, slope_s=max(slope, 0.0))


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One parameter set of one scheme.

    scheme:
        ``"gc"``, ``"sr_sgc"`` or ``"m_sgc"``.
    B, W, lam:
        The straggler model the scheme is built for; GC(n, s) is ``lam = s`` (B and W unused).
    """

    scheme: str
    B: int = 1
    W: int = 2
    lam: int = 0

    def load(self, n: int) -> float:
        """Normalised load: fraction of a job's data a worker computes per round."""
        if self.scheme == "gc":
            return gc_load(n, self.lam)
        if self.scheme == "sr_sgc":
            return sr_sgc_load(n, self.B, self.W, self.lam)
        return m_sgc_load(n, self.B, self.W, self.lam)

    def delay(self) -> int:
        """Decoding delay ``T`` in rounds (GC 0, SR-SGC ``B``, M-SGC ``W-2+B``)."""
        return {"gc": 0, "sr_sgc": self.B, "m_sgc": self.W - 2 + self.B}[self.scheme]

    def params(self) -> dict[str, int]:
        """The policy parameters that run this candidate (``gc_sequential`` uses GC(n, lam))."""
        if self.scheme == "gc":
            return {"lam": self.lam}
        return {"B": self.B, "W": self.W, "lam": self.lam}


def grid(scheme: str, n: int, *, max_load: float, max_delay: int, max_W: int,
         lams: Sequence[int] | None = None) -> Iterator[Candidate]:
    """Every admissible parameter set of ``scheme`` for ``n`` workers.

    GC: ``s = 0..n-1``. SR-SGC: ``2 <= W <= max_W``, ``B | W-1``, ``lam = 0..n-1``. M-SGC:
    ``2 <= W <= max_W``, ``1 <= B < W``, ``lam = 0..n-1``. Kept only with load at most
    ``max_load`` and delay ``T`` at most ``max_delay`` rounds. ``lams`` restricts the ``lam``
    (or ``s``) values tried (default: all of ``0..n-1``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: unknown {scheme!r}; allowed: {', '.join(SCHEMES)}")
    if max_W < 2:
        raise ValueError(f"max_W: must be >= 2 rounds, got {max_W}")
    lams = range(n) if lams is None else sorted({int(x) for x in lams if 0 <= x < n})
    if scheme == "gc":
        shapes = [(1, 2)]
    else:
        shapes = [(B, W) for W in range(2, max_W + 1) for B in range(1, W)
                  if scheme == "m_sgc" or (W - 1) % B == 0]
    for B, W in shapes:
        for lam in lams:
            candidate = Candidate(scheme=scheme, B=B, W=W, lam=lam)
            if candidate.delay() > max_delay:
                continue
            if candidate.load(n) <= max_load + _LOAD_TOL:
                yield candidate


@dataclass(frozen=True, kw_only=True)
class Emulated:
    """A candidate and its emulated total time (seconds) for ``num_jobs`` jobs."""

    candidate: Candidate
    load: float
    total_s: float


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """Result of :func:`tune`: every emulated candidate, and the best per scheme."""

    table: tuple[Emulated, ...]
    best: dict[str, Emulated]
    max_load: float


def emulate_candidate(candidate: Candidate, profile: DelayProfile, *, num_jobs: int,
                      mu: float) -> float:
    """Total emulated time (seconds) of ``candidate`` over ``num_jobs`` jobs on ``profile``."""
    schedule = make_schedule(candidate.scheme, profile.num_workers, num_jobs,
                             B=candidate.B, W=candidate.W, lam=candidate.lam)
    if schedule.num_rounds > profile.num_rounds:
        raise ValueError(f"profile: {candidate} needs {schedule.num_rounds} rounds, "
                         f"the profile has {profile.num_rounds}")
    return float(emulate(schedule, profile.response_s, mu).sum())


def tune(profile: DelayProfile, *, num_jobs: int, mu: float, max_load: float,
         max_delay: int | None = None, max_W: int = 3,
         schemes: Sequence[str] = SCHEMES, lams: Sequence[int] | None = None) -> Tuning:
    """Emulate every admissible parameter set of every scheme; keep each scheme's fastest.

    Parameters
    ----------
    profile:
        Probed delays and load model; needs ``num_jobs + max_delay`` rounds.
    num_jobs:
        Jobs ``J`` each emulation finishes.
    mu:
        Fixed-threshold tolerance (a straggler answers later than ``(1+mu)`` x the fastest).
    max_load:
        Largest admissible normalised load (the authors: GC's load).
    max_delay:
        Largest admissible delay ``T`` (rounds); default: what the profile's length allows.
    max_W:
        Largest window ``W`` tried.
    schemes, lams:
        Schemes to tune, and the ``lam`` (``s``) values tried (default all).

    Ties are broken by the smaller load, then by grid order (deterministic).
    """
    n = profile.num_workers
    if max_delay is None:
        max_delay = profile.num_rounds - num_jobs
    if max_delay < 0:
        raise ValueError(f"profile: {profile.num_rounds} rounds cannot finish {num_jobs} jobs")
    table, best = [], {}
    for scheme in schemes:
        for candidate in grid(scheme, n, max_load=max_load, max_delay=max_delay, max_W=max_W,
                              lams=lams):
            row = Emulated(candidate=candidate, load=candidate.load(n),
                           total_s=emulate_candidate(candidate, profile, num_jobs=num_jobs,
                                                     mu=mu))
            table.append(row)
            incumbent = best.get(scheme)
            if incumbent is None or (row.total_s, row.load) < (incumbent.total_s, incumbent.load):
                best[scheme] = row
    missing = [s for s in schemes if s not in best]
    if missing:
        raise ValueError(f"max_load: no parameter set of {missing} has load <= {max_load}")
    return Tuning(table=tuple(table), best=best, max_load=max_load)
