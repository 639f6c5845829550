"""The figures quoted in docs/faults.md, recomputed (run with ``-s`` to print them).

Each is also checked against its closed form with a 4-standard-error margin.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import sim.faults
from sim.faults import (
    Bimodal,
    PoissonCrashes,
    check_bursty_pattern,
    generate_bursty_pattern,
    max_straggle_fraction,
    p_iter,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "faults.md"


def test_tail_at_scale_figure():
    model, rng, fan_outs = Bimodal(p=0.01, slowdown=10.0), np.random.default_rng(0), 20_000
    hit = np.mean([max(model.factor(i, rng) for i in range(100)) == 10.0 for _ in range(fan_outs)])
    p = 1 - 0.99**100
    print(f"\ntail at scale: {hit:.3f} of 100-way fan-outs wait for a straggler (formula {p:.3f})")
    assert abs(hit - p) < 4 * math.sqrt(p * (1 - p) / fan_outs)


def test_adversarial_bursty_figure():
    pattern = generate_bursty_pattern(1000, 256, B=1, W=2, lam=15, rng=np.random.default_rng(0))
    per_round = pattern.sum(axis=1)
    print(f"\n(B, W, lam) = (1, 2, 15), n = 256: {per_round.mean()} stragglers per round")
    assert per_round.mean() == 7.5 and per_round.max() == 15
    assert pattern.mean() == max_straggle_fraction(B=1, W=2, lam=15, num_workers=256)
    assert check_bursty_pattern(pattern, B=1, W=2, lam=15) == []


def test_llama3_rate_figure():
    rate_per_s = 419 / (16384 * 54 * 86400)  # unexpected interruptions per GPU-second
    assert rate_per_s * 3600 == pytest.approx(1.97e-5, rel=1e-2)
    events = PoissonCrashes(rate_per_s).schedule(
        num_nodes=16384, horizon_s=54 * 86400.0, rng=np.random.default_rng(1)
    )
    print(f"\nLlama 3 rate {rate_per_s:.2e}/s: {len(events)} crashes in 54 days (expected 419)")
    assert abs(len(events) - 419) < 4 * math.sqrt(419)
    assert round(p_iter(0.10, 10.0), 6) == 0.000293


def test_every_public_name_is_documented():
    text = DOCS.read_text()
    documented = set(re.findall(r"`(\w+)`", text))
    missing = [name for name in sim.faults.__all__ if name not in documented]
    assert missing == []
