"""Sequential gradient coding (Krishnan, Ebrahimi, Khisti 2023): schedules and load formulas.

``J`` jobs (gradients ``g(0..J-1)``) run over rounds; job ``t`` starts in round ``t`` and must be
decoded by the end of round ``t + T`` (``T`` is the scheme's delay). Stragglers follow the
``(B, W, lam)``-bursty model (see :mod:`sim.faults.bursty`). Three schemes share one interface,
:class:`SequentialScheme`:

- :class:`GCSchedule`: plain gradient coding GC(n, s) per job, ``T = 0``; fits a round with at
  most ``s`` stragglers. Load ``(s+1)/n``.
- :class:`SRSGCSchedule` (selective reattempt): GC(n, s') with ``s' = ceil(B lam / (W-1+B))``,
  ``T = B``, for ``B | W-1`` (the guarantee needs it; our property test finds misses
  otherwise). In round ``t``, if ``v > s'`` workers have not delivered job ``t-B``, ``v - s'``
  of them redo their job ``t-B`` task instead of job ``t``. Load ``(s'+1)/n``.
- :class:`MSGCSchedule` (multiplexed): ``T = W-2+B``; each job splits into D1 (uncoded,
  ``n(W-1)`` chunks, ``W-1`` per worker) and D2 (``B`` groups, each coded with GC(n, lam)).
  Every round a worker runs ``W-1+B`` equal mini-tasks, slot ``m`` belonging to job ``r-m``:
  slots ``m < W-1`` compute D1 chunk ``m``; D2 slot ``j`` computes the coded task of group ``j``
  if the worker has delivered all its D1 chunks, else redoes a missing D1 chunk.
  Load ``(lam+1)(W-1+B) / (n (B + (W-1)(lam+1)))``.

A schedule is driven round by round: :meth:`~SequentialScheme.tasks` says what each worker
computes, :meth:`~SequentialScheme.fits` whether the master may leave a set of stragglers behind
(the scheme's straggler model), :meth:`~SequentialScheme.deliver` records what arrived. The
fixed-threshold rule of the authors' emulation (a straggler answers later than ``(1+mu)`` times
the fastest) is :func:`threshold_round`. Pure Python and numpy; no SimPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.errors import FieldError
from sim.faults.bursty import check_bursty_pattern

SCHEMES = ("gc", "sr_sgc", "m_sgc")


def _check_bursty(n: int, B: int, W: int, lam: int) -> None:
    if n < 1:
        raise ValueError(f"n: must be >= 1 worker, got {n!r}")
    if not 1 <= W:
        raise FieldError("W", f"window must be >= 1 round, got {W!r}")
    if not 1 <= B <= W:
        raise FieldError("B", f"burst length must be in [1, W={W}] rounds, got {B!r}")
    if not 0 <= lam < n:
        raise FieldError("lam", f"stragglers per window must be in [0, n={n}), got {lam!r}")


# ------------------------------------------------------------------------------ load formulas

def gc_load(n: int, s: int) -> float:
    """Load of GC(n, s): each worker computes on ``(s+1)/n`` of a job's data (optimal)."""
    if not 0 <= s < n:
        raise FieldError("s", f"must be in [0, n={n}), got {s!r}")
    return (s + 1) / n


def sr_sgc_tolerance(B: int, W: int, lam: int) -> int:
    """``s' = ceil(B lam / (W - 1 + B))``: stragglers per round SR-SGC's inner code tolerates."""
    return math.ceil(B * lam / (W - 1 + B))


def sr_sgc_load(n: int, B: int, W: int, lam: int) -> float:
    """Load of SR-SGC: ``(s'+1)/n``."""
    _check_bursty(n, B, W, lam)
    return (sr_sgc_tolerance(B, W, lam) + 1) / n


def m_sgc_split(B: int, W: int, lam: int) -> tuple[float, float]:
    """Fractions of a job's data in D1 and D2: ``((W-1)(lam+1), B) / (B + (W-1)(lam+1))``."""
    total = B + (W - 1) * (lam + 1)
    return (W - 1) * (lam + 1) / total, B / total


def m_sgc_load(n: int, B: int, W: int, lam: int) -> float:
    """Load of M-SGC: ``(lam+1)(W-1+B) / (n (B + (W-1)(lam+1)))``."""
    _check_bursty(n, B, W, lam)
    return (lam + 1) * (W - 1 + B) / (n * (B + (W - 1) * (lam + 1)))


# ------------------------------------------------------------------------------ schedules

@dataclass(frozen=True)
class Task:
    """One mini-task of a worker in one round.

    job:
        Job index ``t``.
    kind:
        ``"coded"`` (a GC task: worker's coded combination of its partitions) or ``"d1"`` (an
        uncoded D1 chunk of M-SGC).
    index:
        For ``"coded"``: the coded group (0 for GC and SR-SGC; the D2 group for M-SGC). For
        ``"d1"``: the chunk number ``0..W-2`` of this worker.
    size:
        Fraction of the job's data this mini-task computes on.
    """

    job: int
    kind: str
    index: int
    size: float


class SequentialScheme:
    """Round-by-round schedule of one scheme over ``num_jobs`` jobs on ``n`` workers.

    Subclasses define ``delay`` (``T``), ``load`` and the task rule; this base class keeps the
    delivered results, the effective straggler pattern and the decoding state.
    """

    name = ""

    def __init__(self, n: int, num_jobs: int) -> None:
        if num_jobs < 1:
            raise FieldError("num_jobs", f"must be >= 1, got {num_jobs!r}")
        self.n = n
        self.num_jobs = num_jobs
        self.round = 0
        self.pattern: list[np.ndarray] = []          # effective stragglers of past rounds
        self.decoded_round: dict[int, int] = {}      # job -> round in which it became decodable
        self._planned: list[list[Task]] | None = None

    # subclasses ---------------------------------------------------------------------------
    delay: int = 0
    load: float = 0.0

    def _plan(self, r: int) -> list[list[Task]]:
        raise NotImplementedError

    def _record(self, r: int, tasks: list[list[Task]], delivered: np.ndarray) -> None:
        raise NotImplementedError

    def is_decodable(self, job: int) -> bool:
        """Whether the results delivered so far give job ``job``'s full gradient."""
        raise NotImplementedError

    def fits(self, stragglers: np.ndarray) -> bool:
        """Whether the master may close the current round with these workers missing."""
        raise NotImplementedError

    # shared -------------------------------------------------------------------------------
    @property
    def num_rounds(self) -> int:
        """Rounds needed to finish every job: ``J + T``."""
        return self.num_jobs + self.delay

    @property
    def finished(self) -> bool:
        """Whether every round has been played."""
        return self.round >= self.num_rounds

    def tasks(self) -> list[list[Task]]:
        """Return the mini-tasks of every worker in the current round (index = worker id)."""
        if self._planned is None:
            self._planned = self._plan(self.round)
        return self._planned

    def work(self) -> np.ndarray:
        """Fraction of one job's data each worker computes on this round, shape (n,)."""
        return np.array([sum(task.size for task in worker) for worker in self.tasks()])

    def deliver(self, stragglers: np.ndarray) -> list[int]:
        """Close the current round: every worker not in ``stragglers`` delivered all its tasks.

        Returns the jobs that became decodable in this round. Raises ``AssertionError`` if a
        job passes its deadline undecoded (the master must not accept such a round).
        """
        stragglers = np.asarray(stragglers, dtype=bool)
        assert stragglers.shape == (self.n,)
        r = self.round
        self._record(r, self.tasks(), ~stragglers)
        self.pattern.append(stragglers.copy())
        newly = []
        for job in range(max(0, r - self.delay), min(r + 1, self.num_jobs)):
            if job not in self.decoded_round and self.is_decodable(job):
                self.decoded_round[job] = r
                newly.append(job)
        due = r - self.delay
        assert due < 0 or due >= self.num_jobs or due in self.decoded_round, (
            f"{self.name}: job {due} missed its deadline (round {r})")
        self.round += 1
        self._planned = None
        return newly

    def _bursty_fits(self, stragglers: np.ndarray, B: int, W: int, lam: int) -> bool:
        # Only violations touching the newest round can appear: windows ending here need the
        # last W rounds; a burst ending here longer than B needs the last B+1.
        # Workers that never straggle in the tail cannot break the model: check the others only.
        tail = np.array(self.pattern[-(W + B):] + [np.asarray(stragglers, dtype=bool)])
        return not check_bursty_pattern(tail[:, tail.any(axis=0)], B=B, W=W, lam=lam)


class GCSchedule(SequentialScheme):
    """Plain gradient coding GC(n, s) applied to each job in its own round (``T = 0``)."""

    name = "gc"

    def __init__(self, n: int, num_jobs: int, *, s: int) -> None:
        super().__init__(n, num_jobs)
        self.s = s
        self.delay = 0
        self.load = gc_load(n, s)
        self._delivered = np.zeros((num_jobs, n), dtype=bool)

    def _plan(self, r: int) -> list[list[Task]]:
        if r >= self.num_jobs:
            return [[] for _ in range(self.n)]
        return [[Task(r, "coded", 0, self.load)] for _ in range(self.n)]

    def _record(self, r, tasks, delivered):
        for i in range(self.n):
            for task in tasks[i]:
                self._delivered[task.job, i] |= bool(delivered[i])

    def is_decodable(self, job: int) -> bool:
        """GC(n, s): any ``n - s`` coded results decode."""
        return int(self._delivered[job].sum()) >= self.n - self.s

    def fits(self, stragglers: np.ndarray) -> bool:
        """At most ``s`` stragglers in this round."""
        return int(np.sum(stragglers)) <= self.s


class SRSGCSchedule(SequentialScheme):
    """Selective-reattempt SGC over GC(n, s'), ``s' = ceil(B lam / (W-1+B))``, ``T = B``."""

    name = "sr_sgc"

    def __init__(self, n: int, num_jobs: int, *, B: int, W: int, lam: int) -> None:
        _check_bursty(n, B, W, lam)
        if (W - 1) % B != 0:
            # Without it a reattempting worker may straggle again in round t (its next burst may
            # start W rounds after the last one ended) and job t-B misses its deadline.
            raise FieldError("B", f"SR-SGC needs B to divide W-1={W - 1}, got B={B}")
        super().__init__(n, num_jobs)
        self.B, self.W, self.lam = B, W, lam
        self.s = sr_sgc_tolerance(B, W, lam)
        self.delay = B
        self.load = sr_sgc_load(n, B, W, lam)
        self._delivered = np.zeros((num_jobs, n), dtype=bool)

    def _plan(self, r: int) -> list[list[Task]]:
        plan = [[Task(r, "coded", 0, self.load)] if r < self.num_jobs else []
                for _ in range(self.n)]
        old = r - self.B
        if 0 <= old < self.num_jobs:
            missing = np.flatnonzero(~self._delivered[old])
            extra = len(missing) - self.s
            for i in missing[:max(0, extra)]:   # the lowest ids redo their job t-B task
                plan[int(i)] = [Task(old, "coded", 0, self.load)]
        return plan

    def _record(self, r, tasks, delivered):
        for i in range(self.n):
            for task in tasks[i]:
                self._delivered[task.job, i] |= bool(delivered[i])

    def is_decodable(self, job: int) -> bool:
        """Any ``n - s'`` coded results of the job, across its two rounds."""
        return int(self._delivered[job].sum()) >= self.n - self.s

    def fits(self, stragglers: np.ndarray) -> bool:
        """Accept if the effective straggler pattern stays (B, W, lam)-bursty."""
        return self._bursty_fits(stragglers, self.B, self.W, self.lam)


class MSGCSchedule(SequentialScheme):
    """Multiplexed SGC: D1 uncoded chunks plus ``B`` GC(n, lam)-coded D2 groups, ``T = W-2+B``."""

    name = "m_sgc"

    def __init__(self, n: int, num_jobs: int, *, B: int, W: int, lam: int) -> None:
        _check_bursty(n, B, W, lam)
        super().__init__(n, num_jobs)
        self.B, self.W, self.lam = B, W, lam
        self.delay = W - 2 + B
        self.load = m_sgc_load(n, B, W, lam)
        self.mini_size = (lam + 1) / (n * (B + (W - 1) * (lam + 1)))   # every mini-task
        self._d1 = np.zeros((num_jobs, n, max(W - 1, 0)), dtype=bool)   # chunk delivered
        self._d2 = np.zeros((num_jobs, B, n), dtype=bool)               # coded task delivered

    def _plan(self, r: int) -> list[list[Task]]:
        plan: list[list[Task]] = [[] for _ in range(self.n)]
        for m in range(self.W - 1 + self.B):
            job = r - m
            if not 0 <= job < self.num_jobs:
                continue
            if m < self.W - 1:
                chunk = Task(job, "d1", m, self.mini_size)
                for i in range(self.n):
                    plan[i].append(chunk)
                continue
            # a job has one slot per round, so at most one chunk of it is redone per round
            missing = ~self._d1[job]                                  # (n, W-1)
            first_missing = np.argmax(missing, axis=1) if missing.shape[1] else None
            coded = Task(job, "coded", m - (self.W - 1), self.mini_size)
            for i in np.flatnonzero(missing.any(axis=1)):
                plan[i].append(Task(job, "d1", int(first_missing[i]), self.mini_size))
            for i in np.flatnonzero(~missing.any(axis=1)):
                plan[i].append(coded)
        return plan

    def _record(self, r, tasks, delivered):
        for i in range(self.n):
            if not delivered[i]:
                continue
            for task in tasks[i]:
                if task.kind == "d1":
                    self._d1[task.job, i, task.index] = True
                else:
                    self._d2[task.job, task.index, i] = True

    def is_decodable(self, job: int) -> bool:
        """All D1 chunks, and at least ``n - lam`` coded results of every D2 group."""
        return bool(self._d1[job].all()) and bool(
            (self._d2[job].sum(axis=1) >= self.n - self.lam).all())

    def fits(self, stragglers: np.ndarray) -> bool:
        """Accept if the effective straggler pattern stays (B, W, lam)-bursty."""
        return self._bursty_fits(stragglers, self.B, self.W, self.lam)


def make_schedule(scheme: str, n: int, num_jobs: int, *, B: int, W: int,
                  lam: int) -> SequentialScheme:
    """Build ``"gc"`` (GC(n, lam)), ``"sr_sgc"`` or ``"m_sgc"`` for a (B, W, lam) model."""
    _check_bursty(n, B, W, lam)
    if scheme == "gc":
        return GCSchedule(n, num_jobs, s=lam)
    if scheme == "sr_sgc":
        return SRSGCSchedule(n, num_jobs, B=B, W=W, lam=lam)
    if scheme == "m_sgc":
        return MSGCSchedule(n, num_jobs, B=B, W=W, lam=lam)
    raise FieldError("scheme",
                     f"unknown sequential scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")


# ------------------------------------------------------------------------------ round rule

def threshold_round(arrival_s: np.ndarray, mu: float,
                    fits: Callable[[np.ndarray], bool]) -> tuple[float, np.ndarray]:
    """Close a round at ``(1+mu)`` times the first arrival (the fixed-threshold rule).

    Parameters
    ----------
    arrival_s:
        Response time of every worker in this round, seconds from the round's start, shape (n,).
    mu:
        Tolerance: a worker is a straggler if it answers later than ``(1+mu)`` times the fastest.
    fits:
        The scheme's rule: whether these stragglers may be left behind.

    Returns
    -------
    (duration_s, stragglers)
        If the stragglers fit, the round lasts until the threshold (or the last arrival, if
        everyone answered before it); otherwise the master waits for the slowest worker and
        nobody straggles.
    """
    arrival_s = np.asarray(arrival_s, dtype=float)
    if mu < 0:
        raise FieldError("mu", f"straggler threshold must be >= 0, got {mu!r}")
    threshold_s = (1.0 + mu) * float(arrival_s.min())
    stragglers = arrival_s > threshold_s
    if not stragglers.any():
        return float(arrival_s.max()), stragglers
    if fits(stragglers):
        return threshold_s, stragglers
    return float(arrival_s.max()), np.zeros_like(stragglers)


def emulate(schedule: SequentialScheme, response_s: Callable[[int, np.ndarray], np.ndarray],
            mu: float) -> np.ndarray:
    """Play every round of ``schedule`` with the fixed-threshold rule; durations in seconds.

    ``response_s(round, work)`` gives each worker's response time for the round, given the
    fraction of a job's data each computes (``work``, shape (n,)). The pure counterpart of the
    SimPy policy :class:`policies.gradient_coding.sequential_policy.SequentialCoding`.
    """
    durations = []
    while not schedule.finished:
        duration_s, stragglers = threshold_round(
            response_s(schedule.round, schedule.work()), mu, schedule.fits)
        schedule.deliver(stragglers)
        durations.append(duration_s)
    return np.array(durations)
