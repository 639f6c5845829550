"""The adversarial (B, W, lambda)-bursty straggler model of sequential gradient coding.

Definition (Krishnan, Ebrahimi, Khisti 2023): in any window of ``W`` consecutive rounds,

1. at most ``lam`` distinct workers straggle, and
2. each straggling worker's straggles in that window form one burst of at most ``B``
   consecutive rounds.

Here a *burst* is a maximal run of consecutive straggling rounds of one worker; we also
require every burst to be at most ``B`` rounds long (this follows from 2 when ``B < W``, and
closes the loophole of an endless burst when ``B == W``).

A pattern is a boolean array of shape ``(rounds, workers)``: ``pattern[r, i]`` is True when
worker ``i`` straggles in round ``r``. :func:`generate_bursty_pattern` draws a conformant
pattern with as many straggles as the model admits; :func:`check_bursty_pattern` lists the
violations of any pattern. Both are pure (no SimPy); replay a pattern with
:class:`sim.faults.node_stragglers.BurstyPattern`.

The densest conformant pattern has ``min(lam, n) * B`` straggles every ``B + W - 1`` rounds
(a window can hold ``lam`` workers, and a worker that ends a burst must then stay quiet for
``W - 1`` rounds); :func:`max_straggle_fraction` gives that bound, the greedy generator meets it.
"""

from __future__ import annotations

import numpy as np

from sim.errors import FieldError


def check_bursty_params(B: int, W: int, lam: int) -> None:
    """Refuse a ``(B, W, lam)`` that is not a bursty model, naming the parameter."""
    def is_int(value: object) -> bool:
        return (isinstance(value, (int, float, np.integer)) and not isinstance(value, bool)
                and float(value).is_integer())

    if not is_int(W) or W < 1:
        raise FieldError("W", f"(window, rounds) must be an integer >= 1, got {W!r}")
    if not is_int(B) or not 1 <= B <= W:
        raise FieldError("B", f"(burst length, rounds) must be an integer in [1, W={W}], "
                              f"got {B!r}")
    if not is_int(lam) or lam < 0:
        raise FieldError("lam", f"(distinct stragglers per window) must be an integer >= 0, "
                                f"got {lam!r}")


def max_straggle_fraction(*, B: int, W: int, lam: int, num_workers: int) -> float:
    """Long-run fraction of (round, worker) cells straggling in the densest pattern.

    ``min(lam, n) * B / ((B + W - 1) * n)``.
    """
    check_bursty_params(B, W, lam)
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers!r}")
    return min(lam, num_workers) * B / ((B + W - 1) * num_workers)


def generate_bursty_pattern(
    num_rounds: int,
    num_workers: int,
    *,
    B: int,
    W: int,
    lam: int,
    rng: np.random.Generator,
    intensity: float = 1.0,
) -> np.ndarray:
    """Draw a (B, W, lam)-conformant straggler pattern, shape ``(num_rounds, num_workers)``.

    Greedy, round by round. A worker in a burst keeps straggling until its burst is ``B`` rounds
    long (the adversary uses every round it is allowed). Then, while the window ending at this
    round holds fewer than ``lam`` distinct stragglers, workers with no straggle in that window
    (chosen in a random order) start a new burst, each with probability ``intensity``.
    Checking only the window ending at the current round is enough: every later window holds,
    so far, a subset of its rounds, and both conditions survive taking subsets.

    Parameters
    ----------
    num_rounds, num_workers:
        Shape of the pattern.
    B, W, lam:
        Burst length (rounds), window (rounds), distinct stragglers per window.
    rng:
        Random stream for the choice of workers and the ``intensity`` coin flips.
    intensity:
        Probability in [0, 1] that an admissible new burst starts (1.0: adversarial, as many
        straggles as the model admits; lower values give sparser random conformant patterns).
    """
    check_bursty_params(B, W, lam)
    if num_rounds < 0 or num_workers < 0:
        raise ValueError(
            f"num_rounds and num_workers must be >= 0, got {num_rounds!r}, {num_workers!r}"
        )
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"intensity must be in [0, 1], got {intensity!r}")

    pattern = np.zeros((num_rounds, num_workers), dtype=bool)
    last_straggle = np.full(num_workers, -(10**12), dtype=np.int64)  # round of last straggle
    run_length = np.zeros(num_workers, dtype=np.int64)  # length of the burst ending there
    for r in range(num_rounds):
        window_start = r - W + 1
        continuing = (last_straggle == r - 1) & (run_length < B)
        in_window = last_straggle >= window_start  # distinct stragglers of the window so far
        free_slots = lam - int(in_window.sum())
        # A new burst may start only on a worker silent in the whole window and in round r-1
        # (so it neither adds a second burst to the window nor extends the previous one).
        candidates = np.flatnonzero(~in_window & (last_straggle < r - 1))
        starting: list[int] = []
        if free_slots > 0 and candidates.size > 0:
            order = rng.permutation(candidates)
            accept = rng.random(order.size) < intensity
            starting = [int(i) for i, ok in zip(order, accept) if ok][:free_slots]
        straggling = continuing.copy()
        straggling[starting] = True
        run_length[continuing] += 1
        run_length[starting] = 1
        last_straggle[straggling] = r
        pattern[r] = straggling
    return pattern


def _bursts(column: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D boolean array, as inclusive ``(first, last)`` rounds."""
    padded = np.concatenate([[False], column, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def check_bursty_pattern(pattern: np.ndarray, *, B: int, W: int, lam: int) -> list[str]:
    """List the ways ``pattern`` breaks the (B, W, lam)-bursty model (empty if it conforms).

    Three kinds of violation, each reported once:

    - a window of ``W`` consecutive rounds with more than ``lam`` distinct stragglers;
    - a burst (maximal run of one worker) longer than ``B`` rounds;
    - two bursts of one worker inside one window (the second starts fewer than ``W`` rounds
      after the first ends).

    Windows are the ``rounds - W + 1`` full windows (one window if the pattern is shorter).
    """
    check_bursty_params(B, W, lam)
    pattern = np.asarray(pattern)
    if pattern.ndim != 2 or pattern.dtype != np.bool_:
        raise ValueError(
            f"pattern must be a 2-D boolean array (rounds, workers), got dtype {pattern.dtype} "
            f"and shape {pattern.shape}"
        )
    num_rounds, num_workers = pattern.shape
    violations: list[str] = []

    # (1) distinct stragglers per window, from a cumulative count per worker: (rounds+1, n)
    width = min(W, num_rounds)
    cumulative = np.vstack([np.zeros((1, num_workers), dtype=np.int64), np.cumsum(pattern, 0)])
    per_window = cumulative[width:] - cumulative[:-width] if num_rounds else cumulative[:0]
    distinct = (per_window > 0).sum(axis=1)  # (windows,)
    for start in np.flatnonzero(distinct > lam):
        workers = np.flatnonzero(per_window[start] > 0).tolist()
        violations.append(
            f"window rounds {start}-{start + width - 1}: {len(workers)} distinct stragglers "
            f"{workers} > lam={lam}"
        )

    # (2) and (3): bursts of each worker
    for worker in range(num_workers):
        bursts = _bursts(pattern[:, worker])
        for first, last in bursts:
            if last - first + 1 > B:
                violations.append(
                    f"worker {worker}: burst of {last - first + 1} rounds ({first}-{last}) "
                    f"longer than B={B}"
                )
        for (first_a, last_a), (first_b, last_b) in zip(bursts, bursts[1:]):
            if first_b - last_a < W:  # both lie in the window starting at round last_a
                violations.append(
                    f"worker {worker}: two bursts ({first_a}-{last_a} and {first_b}-{last_b}) "
                    f"inside one window of W={W} rounds"
                )
    return violations
