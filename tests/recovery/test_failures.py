"""Stage-failure injection: rate scaling, draws from the given stream, the feed."""

import math

import numpy as np
import pytest

from policies.recovery.failures import (
    FailureFeed,
    StageFailure,
    StageFailureConfig,
    draw_stage_failures,
)


def test_scaled_rate_is_rate_times_scale():
    cfg = StageFailureConfig(p_hour=0.10, time_scale=60.0)
    # surviving 1 scaled hour = surviving 60 real hours
    assert 1 - cfg.scaled_p_hour == pytest.approx(0.9**60)
    assert cfg.expected_failures(3600.0) == pytest.approx(-math.log(0.9) * 60)
    assert StageFailureConfig(p_hour=0.05).scaled_p_hour == pytest.approx(0.05)


def test_schedule_is_deterministic_exempts_stage0_and_matches_rate():
    cfg = StageFailureConfig(p_hour=0.16, time_scale=200.0, failure_period_s=5.0,
                             rejoin_delay_s=7.0)
    horizon = 3600.0
    a = draw_stage_failures(cfg, num_stages=5, horizon_s=horizon, rng=np.random.default_rng(3))
    b = draw_stage_failures(cfg, num_stages=5, horizon_s=horizon, rng=np.random.default_rng(3))
    assert a == b and a
    assert all(f.stage != 0 for f in a)
    assert all(f.rejoin_s == f.time_s + 7.0 for f in a)
    assert [f.time_s for f in a] == sorted(f.time_s for f in a)
    # A stage cannot fail again while down: about H / (1/lambda + d) failures per stage.
    lam = cfg.expected_failures(1.0)  # per second
    expected = 4 * horizon / (1 / lam + 7.0)
    assert abs(len(a) - expected) < 4 * math.sqrt(expected)


def test_zero_rate_draws_nothing():
    assert draw_stage_failures(StageFailureConfig(), num_stages=4, horizon_s=1e6,
                               rng=np.random.default_rng(0)) == []


def test_feed_hands_out_each_failure_once_in_order():
    sched = [StageFailure(time_s=t, stage=s, rejoin_s=t + 1) for t, s in
             [(5.0, 2), (1.0, 1), (5.0, 1), (9.0, 3)]]
    feed = FailureFeed(sched)
    assert [(f.time_s, f.stage) for f in feed.until(5.0)] == [(1.0, 1), (5.0, 1), (5.0, 2)]
    assert feed.until(5.0) == []
    assert feed.remaining == 1
    assert [f.stage for f in feed.until(100.0)] == [3]


@pytest.mark.parametrize("field,value", [("p_hour", 1.0), ("time_scale", 0.0),
                                         ("failure_period_s", 0.0), ("rejoin_delay_s", -1.0)])
def test_bad_config_names_field(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        StageFailureConfig(**{field: value})
