"""Sequential gradient coding: load formulas, hand-worked schedules, and the decoding guarantee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.gradient_coding.sequential import (
    SCHEMES,
    GCSchedule,
    MSGCSchedule,
    SRSGCSchedule,
    Task,
    emulate,
    gc_load,
    m_sgc_load,
    m_sgc_split,
    make_schedule,
    sr_sgc_load,
    sr_sgc_tolerance,
    threshold_round,
)
from sim.faults.bursty import check_bursty_pattern, generate_bursty_pattern


def test_loads_match_the_card_table_at_n_256():
    # Card (Krishnan et al. 2023): n=256, (B, W, lam) = (1, 2, 15): GC .0625, M-SGC .0074,
    # SR-SGC .0352.
    n, B, W, lam = 256, 1, 2, 15
    assert round(gc_load(n, lam), 4) == 0.0625
    assert round(m_sgc_load(n, B, W, lam), 4) == 0.0074
    assert round(sr_sgc_load(n, B, W, lam), 4) == 0.0352
    assert sr_sgc_tolerance(B, W, lam) == 8
    # and the schedules run exactly that load per worker in a full round
    for scheme, load in [("gc", 0.0625), ("m_sgc", 0.0074), ("sr_sgc", 0.0352)]:
        schedule = make_schedule(scheme, n, 10, B=B, W=W, lam=lam)
        schedule.deliver(np.zeros(n, dtype=bool))          # round 0 (M-SGC runs one slot)
        assert round(float(schedule.work().max()), 4) == load


@pytest.mark.parametrize("B,W,lam", [(1, 2, 15), (2, 3, 4), (3, 7, 2), (4, 4, 1)])
def test_m_sgc_split_and_equal_mini_tasks(B, W, lam):
    d1, d2 = m_sgc_split(B, W, lam)
    assert d1 + d2 == pytest.approx(1.0)
    n = 16
    schedule = MSGCSchedule(n, 50, B=B, W=W, lam=lam)
    # D1 chunk: d1 / (n (W-1)); D2 coded task: (lam+1) d2 / (n B); the card says they are equal.
    if W > 1:
        assert d1 / (n * (W - 1)) == pytest.approx(schedule.mini_size)
    assert (lam + 1) * d2 / (n * B) == pytest.approx(schedule.mini_size)
    assert (W - 1 + B) * schedule.mini_size == pytest.approx(m_sgc_load(n, B, W, lam))
    # M-SGC never loads a worker more than GC(n, lam) does
    assert m_sgc_load(n, B, W, lam) <= gc_load(n, lam) + 1e-12


def test_m_sgc_story_a_straggler_redoes_its_d1_chunk():
    # n=3, (B, W, lam) = (1, 2, 1): T = 1; each round: slot 0 = D1 chunk of job r, slot 1 = D2
    # coded task (group 0) of job r-1, unless the worker still owes its D1 chunk of job r-1.
    s = MSGCSchedule(3, 2, B=1, W=2, lam=1)
    assert s.delay == 1 and s.num_rounds == 3
    size = s.mini_size
    assert s.tasks() == [[Task(0, "d1", 0, size)]] * 3
    s.deliver(np.array([False, True, False]))            # worker 1 straggles in round 0
    assert s.tasks() == [
        [Task(1, "d1", 0, size), Task(0, "coded", 0, size)],
        [Task(1, "d1", 0, size), Task(0, "d1", 0, size)],  # redo, instead of its coded task
        [Task(1, "d1", 0, size), Task(0, "coded", 0, size)],
    ]
    assert s.deliver(np.zeros(3, dtype=bool)) == [0]      # job 0: all D1 + n - lam = 2 coded
    assert s.decoded_round == {0: 1}
    assert s.deliver(np.zeros(3, dtype=bool)) == [1]
    assert s.finished and s.decoded_round == {0: 1, 1: 2}


def test_sr_sgc_story_selective_reattempt():
    # n=4, (B, W, lam) = (1, 2, 2): s' = ceil(1*2/2) = 1, T = 1.
    s = SRSGCSchedule(4, 3, B=1, W=2, lam=2)
    assert s.s == 1 and s.delay == 1
    load = s.load
    s.deliver(np.array([True, True, False, False]))       # v = 2 > s' stragglers of job 0
    # v - s' = 1 of them (the lowest id) redoes job 0 instead of job 1
    assert s.tasks() == [[Task(0, "coded", 0, load)]] + [[Task(1, "coded", 0, load)]] * 3
    assert s.deliver(np.zeros(4, dtype=bool)) == [0, 1]   # job 0: 3 = n - s' results
    # job 1 misses worker 0 only (1 <= s'), so round 2 does not reattempt it
    assert s.tasks() == [[Task(2, "coded", 0, load)]] * 4


def test_sr_sgc_requires_b_to_divide_w_minus_1():
    with pytest.raises(ValueError, match="^B:"):
        SRSGCSchedule(8, 5, B=2, W=4, lam=2)


def test_gc_schedule_counts_stragglers_per_round():
    s = GCSchedule(5, 2, s=2)
    assert s.fits(np.array([1, 1, 0, 0, 0], dtype=bool))
    assert not s.fits(np.array([1, 1, 1, 0, 0], dtype=bool))
    with pytest.raises(AssertionError, match="deadline"):
        s.deliver(np.array([1, 1, 1, 0, 0], dtype=bool))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 9), W=st.integers(1, 6), B_frac=st.floats(0, 1), lam_frac=st.floats(0, 1),
       jobs=st.integers(1, 20), intensity=st.sampled_from([1.0, 0.6, 0.3]),
       seed=st.integers(0, 2**31))
def test_every_conformant_pattern_is_decoded_in_time(n, W, B_frac, lam_frac, jobs, intensity,
                                                     seed):
    """The schemes' guarantee: a (B, W, lam)-bursty pattern never makes a job miss T."""
    B = 1 + int(B_frac * (W - 1))
    lam = int(lam_frac * (n - 1))
    rng = np.random.default_rng(seed)
    for scheme in SCHEMES:
        if scheme == "sr_sgc" and (W - 1) % B:
            continue
        schedule = make_schedule(scheme, n, jobs, B=B, W=W, lam=lam)
        pattern = generate_bursty_pattern(schedule.num_rounds, n, B=B, W=W, lam=lam, rng=rng,
                                          intensity=intensity)
        assert not check_bursty_pattern(pattern, B=B, W=W, lam=lam)
        for row in pattern:
            assert schedule.fits(row)
            schedule.deliver(row)          # raises if a job misses its deadline
        assert sorted(schedule.decoded_round) == list(range(jobs))
        for job, r in schedule.decoded_round.items():
            assert job <= r <= job + schedule.delay


def test_m_sgc_rejects_a_round_that_breaks_the_model():
    s = MSGCSchedule(6, 10, B=1, W=3, lam=1)
    s.deliver(np.array([1, 0, 0, 0, 0, 0], dtype=bool))
    assert not s.fits(np.array([0, 1, 0, 0, 0, 0], dtype=bool))   # 2 distinct in a window of 3
    assert not s.fits(np.array([1, 0, 0, 0, 0, 0], dtype=bool))   # burst of 2 > B
    assert s.fits(np.zeros(6, dtype=bool))


def test_threshold_rule():
    accept_all = lambda stragglers: True          # noqa: E731
    reject_all = lambda stragglers: False         # noqa: E731
    arrivals = np.array([1.0, 1.5, 2.5, 4.0])
    duration, stragglers = threshold_round(arrivals, 1.0, accept_all)
    assert duration == 2.0 and stragglers.tolist() == [False, False, True, True]
    duration, stragglers = threshold_round(arrivals, 1.0, reject_all)
    assert duration == 4.0 and not stragglers.any()
    duration, stragglers = threshold_round(np.array([1.0, 1.2]), 1.0, reject_all)
    assert duration == 1.2 and not stragglers.any()   # nobody late: close at the last arrival
    with pytest.raises(ValueError, match="^mu:"):
        threshold_round(arrivals, -0.5, accept_all)


def test_emulate_charges_load_and_waits_for_nonconforming_rounds():
    n, jobs = 8, 12
    base_s = 10.0

    def response(r, work, slow=()):
        times = 0.1 + base_s * work
        for i in slow:
            times[i] *= 5.0
        return times

    gc = make_schedule("gc", n, jobs, B=1, W=2, lam=1)
    durations = emulate(gc, response, mu=1.0)
    assert durations == pytest.approx([0.1 + base_s * 2 / n] * jobs)
    # two stragglers in a round is more than GC(n, 1) tolerates: it waits for them (5x)
    gc = make_schedule("gc", n, jobs, B=1, W=2, lam=1)
    durations = emulate(gc, lambda r, w: response(r, w, slow=(0, 1) if r == 3 else ()), mu=1.0)
    assert durations[3] == pytest.approx(5 * (0.1 + base_s * 2 / n))
    # one straggler fits: the round closes at (1 + mu) x the fastest
    gc = make_schedule("gc", n, jobs, B=1, W=2, lam=1)
    durations = emulate(gc, lambda r, w: response(r, w, slow=(0,) if r == 3 else ()), mu=1.0)
    assert durations[3] == pytest.approx(2 * (0.1 + base_s * 2 / n))


def test_m_sgc_beats_gc_under_a_bursty_pattern_in_emulation():
    # Compute-dominated rounds, an adversarial (1, 2, 3) pattern with 6x slowdowns.
    n, jobs, B, W, lam = 16, 40, 1, 2, 3
    rng = np.random.default_rng(5)
    total = {}
    for scheme in ("gc", "m_sgc"):
        schedule = make_schedule(scheme, n, jobs, B=B, W=W, lam=lam)
        pattern = generate_bursty_pattern(schedule.num_rounds, n, B=B, W=W, lam=lam,
                                          rng=np.random.default_rng(5))
        jitter = 1 + 0.05 * rng.random((schedule.num_rounds, n))
        total[scheme] = emulate(
            schedule, lambda r, w: (0.2 + 10.0 * w) * jitter[r] * np.where(pattern[r], 6.0, 1.0),
            mu=1.0).sum()
    assert total["m_sgc"] < total["gc"]


def test_bad_bursty_parameters_name_the_field():
    with pytest.raises(ValueError, match="^lam:"):
        make_schedule("m_sgc", 4, 3, B=1, W=2, lam=4)
    with pytest.raises(ValueError, match="^B:"):
        make_schedule("m_sgc", 4, 3, B=3, W=2, lam=1)
    with pytest.raises(ValueError, match="^scheme:"):
        make_schedule("zz", 4, 3, B=1, W=2, lam=1)
    with pytest.raises(ValueError, match="^num_jobs:"):
        make_schedule("gc", 4, 0, B=1, W=2, lam=1)
