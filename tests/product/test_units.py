"""Unit strings -> SI floats: hand-worked examples, round trips, and the refusals."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import units

finite = st.floats(min_value=1e-6, max_value=1e15, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(("text", "seconds"), [
    ("50ms", 0.05), ("1.5h", 5400.0), ("10min", 600.0), ("2d", 172800.0), ("30 s", 30.0),
    ("250us", 250e-6), ("1e3s", 1000.0), ("1week", 604800.0),
])
def test_parse_duration_examples(text, seconds):
    assert units.parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("text", "nbytes"), [
    ("2GiB", 2 * 1024**3), ("268MB", 268e6), ("32MiB", 32 * 1024**2), ("1kB", 1000.0),
    ("1KiB", 1024.0), ("8bit", 1.0), ("1Gbit", 1.25e8),
])
def test_parse_bytes_examples(text, nbytes):
    assert units.parse_bytes(text) == pytest.approx(nbytes, rel=1e-12)


@pytest.mark.parametrize(("text", "bytes_per_s"), [
    ("100Mbit/s", 12.5e6), ("1Gbit/s", 125e6), ("2GiB/s", 2 * 1024**3), ("12.5MB/s", 12.5e6),
    ("1Gbps", 125e6), ("100 Mbps", 12.5e6), ("800bit/s", 100.0),
])
def test_parse_bandwidth_examples(text, bytes_per_s):
    assert units.parse_bandwidth(text) == pytest.approx(bytes_per_s, rel=1e-12)


def test_the_same_link_written_three_ways_is_one_number():
    assert units.parse_bandwidth("100Mbit/s") == units.parse_bandwidth("100Mbps") \
        == units.parse_bandwidth("12.5MB/s")


@pytest.mark.parametrize(("text", "per_s"), [
    ("0.1/h", 0.1 / 3600), ("5/day", 5 / 86400), ("3/min", 0.05), ("5%/month", 0.05 / 2592000),
    ("1/10min", 1 / 600),
])
def test_parse_rate_examples(text, per_s):
    assert units.parse_rate(text) == pytest.approx(per_s, rel=1e-12)


def test_parse_flops_examples():
    assert units.parse_flops("989TFLOP/s") == pytest.approx(9.89e14)
    assert units.parse_flops("989 TFLOPS") == pytest.approx(9.89e14)
    assert units.parse_flops("1.2PFLOP/s") == pytest.approx(1.2e15)


@pytest.mark.parametrize("parse", [units.parse_duration, units.parse_bytes,
                                   units.parse_bandwidth, units.parse_rate, units.parse_flops])
@pytest.mark.parametrize("bare", [100, 2.5, "100", " 7 "])
def test_bare_numbers_are_refused_with_an_example(parse, bare):
    with pytest.raises(ValueError, match=r"(no unit|not a rate).*e\.g\. '"):
        parse(bare)


@pytest.mark.parametrize(("parse", "text", "message"), [
    (units.parse_bandwidth, "-100Mbit/s", "negative; a bandwidth must be > 0"),
    (units.parse_bandwidth, "0Mbit/s", "zero; a bandwidth must be > 0"),
    (units.parse_duration, "-5s", "negative"),
    (units.parse_bandwidth, "10Mb/s", "ambiguous"),
    (units.parse_bytes, "10Mb", "ambiguous"),
    (units.parse_duration, "5 fortnights", "unknown duration unit 'fortnights'; allowed"),
    (units.parse_bandwidth, "5 furlongs", "unknown bandwidth unit"),
    (units.parse_rate, "0.1/eon", "unknown period 'eon'"),
    (units.parse_duration, "fast", "not a duration"),
    (units.parse_duration, True, "not a duration"),
])
def test_errors_name_the_value_and_what_is_allowed(parse, text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse(text)
    assert repr(text) in str(info.value)


@given(finite)
def test_duration_round_trip(seconds):
    assert units.parse_duration(units.format_duration(seconds)) == pytest.approx(seconds,
                                                                                 rel=1e-11)


@given(finite)
def test_bytes_round_trip(nbytes):
    assert units.parse_bytes(units.format_bytes(nbytes)) == pytest.approx(nbytes, rel=1e-11)


@given(finite)
def test_bandwidth_round_trip(bytes_per_s):
    text = units.format_bandwidth(bytes_per_s)
    assert text.endswith("bit/s")
    assert units.parse_bandwidth(text) == pytest.approx(bytes_per_s, rel=1e-11)


@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False))
def test_rate_round_trip(per_s):
    assert units.parse_rate(units.format_rate(per_s)) == pytest.approx(per_s, rel=1e-11)


@given(finite)
def test_flops_round_trip(flops):
    assert units.parse_flops(units.format_flops(flops)) == pytest.approx(flops, rel=1e-11)


@given(st.integers(min_value=0, max_value=10**6),
       st.sampled_from(sorted(units.DURATION_UNITS_S)))
def test_parse_scales_exactly_by_the_unit(count, unit):
    assert units.parse_duration(f"{count}{unit}") == count * units.DURATION_UNITS_S[unit]


def test_formats_pick_natural_units():
    assert units.format_duration(0.05) == "50ms"
    assert units.format_duration(5400) == "1.5h"
    assert units.format_bytes(2 * 1024**3) == "2GiB"
    assert units.format_bytes(268e6) == "268MB"
    assert units.format_bandwidth(12.5e6) == "100Mbit/s"
    assert units.format_rate(1 / 3600) == "1/h"
    assert units.format_flops(9.89e14) == "989TFLOP/s"


@pytest.mark.parametrize(("text", "suffix", "value"), [
    ("50ms", "_s", 0.05), ("1Gbit/s", "_Bps", 1.25e8), ("0.1/h", "_per_s", 0.1 / 3600),
    ("5%/h", "_per_s", 0.05 / 3600), ("2GiB", "_bytes", 2.0**31),
    ("1TFLOP/s", "_flops_per_s", 1e12),
])
def test_parse_quantity_infers_the_dimension(text, suffix, value):
    got, got_suffix = units.parse_quantity(text)
    assert got_suffix == suffix
    assert math.isclose(got, value, rel_tol=1e-12)


@pytest.mark.parametrize(("text", "value", "suffix"), [
    ("40ms", 0.04, "_s"), ("0ms", 0.0, "_s"), ("1.5 s", 1.5, "_s"), ("250us", 250e-6, "_s"),
    ("504KB", 504e3, "_bytes"), ("0B", 0.0, "_bytes"), ("8bit", 1.0, "_bytes"),
    ("1MiB", 2.0**20, "_bytes"),
])
def test_a_buffer_is_a_size_or_a_duration_by_its_unit(text, value, suffix):
    """``[network.tcp] bottleneck_queue``: the unit picks the field (a zero of either: none)."""
    got, got_suffix = units.parse_size_or_duration(text)
    assert got_suffix == suffix
    assert math.isclose(got, value, rel_tol=1e-12)


@pytest.mark.parametrize(("text", "message"), [
    (40, "no unit"), ("0", "no unit"), ("40Mbit/s", "allowed: a size .* or a duration"),
    ("40Mb", "ambiguous"), ("-40ms", "negative"), ("-1B", "negative"), ("nan ms", "not a size"),
])
def test_a_buffer_that_is_neither_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        units.parse_size_or_duration(text)
