"""The (B, W, lambda)-bursty generator and checker.

Oracles: the definition (hand-made patterns that break exactly one rule), the densest-pattern
count ``min(lam, n) * B`` straggles per ``B + W - 1`` rounds, and hypothesis over random
parameters for "every generated pattern passes the checker".
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.faults.bursty import check_bursty_pattern, generate_bursty_pattern, max_straggle_fraction


def pattern_from(rows: list[str]) -> np.ndarray:
    """Rows are workers, columns rounds: ``"1100"`` = straggles in rounds 0 and 1."""
    return np.array([[c == "1" for c in row] for row in rows]).T  # (rounds, workers)


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 4),
    extra_w=st.integers(0, 5),
    lam=st.integers(0, 5),
    n=st.integers(1, 8),
    rounds=st.integers(0, 60),
    intensity=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_generated_patterns_conform(B, extra_w, lam, n, rounds, intensity, seed):
    W = B + extra_w
    pattern = generate_bursty_pattern(
        rounds, n, B=B, W=W, lam=lam, rng=np.random.default_rng(seed), intensity=intensity
    )
    assert pattern.shape == (rounds, n) and pattern.dtype == np.bool_
    assert check_bursty_pattern(pattern, B=B, W=W, lam=lam) == []


@pytest.mark.parametrize("B,W,lam,n", [(1, 2, 15, 256), (2, 5, 3, 10), (3, 3, 2, 2), (1, 1, 1, 4)])
def test_adversarial_pattern_is_as_dense_as_the_model_admits(B, W, lam, n):
    rounds = 7 * (B + W - 1)  # whole periods
    pattern = generate_bursty_pattern(rounds, n, B=B, W=W, lam=lam, rng=np.random.default_rng(0))
    assert check_bursty_pattern(pattern, B=B, W=W, lam=lam) == []
    # densest: min(lam, n) workers straggle B rounds, then the window must empty (W - 1 rounds)
    assert pattern.sum() == 7 * min(lam, n) * B
    assert pattern.mean() == pytest.approx(max_straggle_fraction(B=B, W=W, lam=lam, num_workers=n))
    # every burst is exactly B rounds long
    for worker in range(n):
        column = np.concatenate([[0], pattern[:, worker].astype(int), [0]])
        starts, ends = np.flatnonzero(np.diff(column) == 1), np.flatnonzero(np.diff(column) == -1)
        assert set((ends - starts).tolist()) <= {B}


def test_intensity_thins_the_pattern_and_seed_fixes_it():
    kwargs = dict(B=2, W=4, lam=3)
    dense = generate_bursty_pattern(500, 20, rng=np.random.default_rng(1), **kwargs)
    sparse = generate_bursty_pattern(500, 20, rng=np.random.default_rng(1), intensity=0.2, **kwargs)
    assert 0 < sparse.sum() < dense.sum()
    again = generate_bursty_pattern(500, 20, rng=np.random.default_rng(1), intensity=0.2, **kwargs)
    assert np.array_equal(sparse, again)
    other = generate_bursty_pattern(500, 20, rng=np.random.default_rng(2), intensity=0.2, **kwargs)
    assert not np.array_equal(sparse, other)
    assert (
        generate_bursty_pattern(50, 5, rng=np.random.default_rng(1), intensity=0.0, **kwargs).sum()
        == 0
    )
    # the adversary picks different workers over time, not always the first lam
    assert np.count_nonzero(dense.any(axis=0)) > 3


def test_hand_made_conformant_pattern_passes():
    # B=2, W=3, lam=2: worker 0 bursts 0-1 and again at 4 (gap of W-1=2 quiet rounds)
    pattern = pattern_from(["1100110", "0110000", "0000011"])
    assert check_bursty_pattern(pattern, B=2, W=3, lam=2) == []


def test_too_many_distinct_stragglers_in_a_window():
    pattern = pattern_from(["1000", "0100", "0010"])  # 3 workers within rounds 0-2
    violations = check_bursty_pattern(pattern, B=1, W=3, lam=2)
    assert len(violations) == 1 and "3 distinct stragglers [0, 1, 2] > lam=2" in violations[0]
    assert "rounds 0-2" in violations[0]
    assert check_bursty_pattern(pattern, B=1, W=3, lam=3) == []
    assert check_bursty_pattern(pattern, B=1, W=2, lam=2) == []


def test_burst_longer_than_B():
    pattern = pattern_from(["0111000"])
    violations = check_bursty_pattern(pattern, B=2, W=4, lam=1)
    assert violations == ["worker 0: burst of 3 rounds (1-3) longer than B=2"]
    assert check_bursty_pattern(pattern, B=3, W=4, lam=1) == []
    # B == W: an endless burst is still a burst longer than B
    assert "longer than B=2" in check_bursty_pattern(pattern_from(["1111"]), B=2, W=2, lam=1)[0]


def test_two_bursts_of_one_worker_inside_a_window():
    pattern = pattern_from(["1001000"])  # bursts at 0 and 3: both inside rounds 0-3
    violations = check_bursty_pattern(pattern, B=1, W=4, lam=1)
    assert violations == ["worker 0: two bursts (0-0 and 3-3) inside one window of W=4 rounds"]
    assert check_bursty_pattern(pattern, B=1, W=3, lam=1) == []  # gap of W-1 quiet rounds is ok


def test_several_violations_are_all_reported():
    pattern = pattern_from(["1110", "0101", "0010"])
    violations = check_bursty_pattern(pattern, B=2, W=3, lam=1)
    text = "\n".join(violations)
    assert "distinct stragglers" in text
    assert "burst of 3 rounds" in text
    assert "worker 1: two bursts" in text


def test_short_pattern_is_one_window_and_bad_input_is_rejected():
    pattern = pattern_from(["10", "01"])  # 2 rounds < W=5
    assert "2 distinct stragglers" in check_bursty_pattern(pattern, B=1, W=5, lam=1)[0]
    assert check_bursty_pattern(np.zeros((0, 3), dtype=bool), B=1, W=2, lam=1) == []
    with pytest.raises(ValueError, match="B"):
        check_bursty_pattern(pattern, B=3, W=2, lam=1)
    with pytest.raises(ValueError, match="boolean"):
        check_bursty_pattern(np.zeros((3, 3)), B=1, W=2, lam=1)
    with pytest.raises(ValueError, match="intensity"):
        generate_bursty_pattern(3, 3, B=1, W=2, lam=1, rng=np.random.default_rng(0), intensity=2)
