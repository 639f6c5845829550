"""Human units in scenario files -> SI floats inside.

A scenario file says ``"100Mbit/s"``, ``"50ms"``, ``"2GiB"``, ``"1.5h"``, ``"0.1/h"`` or
``"989TFLOP/s"``; the engine only ever sees seconds, bytes, bytes per second, events per second
and FLOP per second. Each ``parse_*`` function turns one kind of quantity into its SI float and
each ``format_*`` function goes back, so that ``parse_x(format_x(v)) == v`` up to rounding in the
12th significant digit.

A bare number for a dimensioned quantity is rejected: is ``100`` a hundred bytes, bits, megabits?
The error shows an example with a unit. Every error is a ``ValueError`` whose message names the
bad value and what is allowed; the scenario layer prefixes the field's dotted path.

Conventions
-----------
* Decimal prefixes (k, M, G, T, P) are powers of 1000; binary prefixes (Ki, Mi, Gi, Ti, Pi) are
  powers of 1024. ``KB`` is read as ``kB`` (1000 B).
* ``B`` is a byte, ``bit`` (or ``b`` inside ``bps``) a bit: ``"100Mbit/s" == "100Mbps" ==
  "12.5MB/s"``. A lone ``"Mb"`` is refused as ambiguous.
* Negative values are refused everywhere; bandwidths and FLOP rates must be positive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

__all__ = [
    "DURATION_UNITS_S",
    "format_bandwidth",
    "format_bytes",
    "format_duration",
    "format_flops",
    "format_rate",
    "parse_bandwidth",
    "parse_bytes",
    "parse_duration",
    "parse_flops",
    "parse_rate",
    "parse_size_or_duration",
]

#: Seconds per duration unit.
DURATION_UNITS_S: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "week": 7 * 86400.0,
    "month": 30 * 86400.0,
}

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

# Bytes per unit: "B", "kB", "MiB", ... and bits: "bit", "kbit", "Mbit", "Gibit", ...
BYTE_UNITS: dict[str, float] = {}
for _prefix, _scale in {**_DECIMAL, **_BINARY}.items():
    BYTE_UNITS[f"{_prefix}B"] = _scale
    BYTE_UNITS[f"{_prefix}bit"] = _scale / 8.0

# Bytes per second per bandwidth unit: every byte/bit unit "/s", plus the "bps" family.
BANDWIDTH_UNITS_BPS: dict[str, float] = {f"{unit}/s": scale for unit, scale in BYTE_UNITS.items()}
for _prefix, _scale in _DECIMAL.items():
    BANDWIDTH_UNITS_BPS[f"{_prefix}bps"] = _scale / 8.0
BANDWIDTH_UNITS_BPS["Bps"] = 1.0

FLOPS_UNITS: dict[str, float] = {}
for _prefix, _scale in _DECIMAL.items():
    FLOPS_UNITS[f"{_prefix}FLOP/s"] = _scale
    FLOPS_UNITS[f"{_prefix}FLOPS"] = _scale

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$")


def _split(text: object, kind: str, example: str) -> tuple[float, str]:
    """Split ``"12.5 MB/s"`` into ``(12.5, "MB/s")``; refuse bare numbers and non-strings."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"{text!r} is not a {kind}; write a string such as {example!r}")
    if isinstance(text, (int, float)):
        raise ValueError(f"{text!r} has no unit; write a {kind} with its unit, e.g. {example!r}")
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a {kind}; write a number and a unit, e.g. {example!r}")
    value = float(match["num"])
    unit = match["unit"]
    if unit == "":
        raise ValueError(f"{text!r} has no unit; write a {kind} with its unit, e.g. {example!r}")
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value, unit


def _check_sign(text: str, value: float, kind: str, positive: bool) -> None:
    if value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{text!r} is {'zero' if value == 0 else 'negative'}; a {kind} must be "
                         f"{need}")


def _lookup(text: str, unit: str, table: dict[str, float], kind: str, hint: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise ValueError(f"{text!r}: unknown {kind} unit {unit!r}; allowed: {hint}") from None


# -- durations --------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Duration in seconds: ``"50ms"`` -> 0.05, ``"1.5h"`` -> 5400.0, ``"2d"`` -> 172800.0."""
    value, unit = _split(text, "duration", "50ms")
    _check_sign(text, value, "duration", positive=False)
    return value * _lookup(text, unit, DURATION_UNITS_S, "duration",
                           "ns, us, ms, s, min, h, d, week, month (30 d)")


def format_duration(seconds: float) -> str:
    """Shortest natural unit: 0.05 -> ``"50ms"``, 5400 -> ``"1.5h"``."""
    for unit in ("d", "h", "min", "s", "ms", "us", "ns"):
        scale = DURATION_UNITS_S[unit]
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.12g}{unit}"
    raise AssertionError("unreachable")


# -- sizes ------------------------------------------------------------------------------------


_AMBIGUOUS_SIZES = ("b", "kb", "Mb", "Gb", "Tb", "Pb")
"""Units refused as sizes: bits or bytes? (``Mbit`` or ``MB``)."""


def _byte_unit(text: str, unit: str) -> float:
    if unit in _AMBIGUOUS_SIZES:
        raise ValueError(f"{text!r}: {unit!r} is ambiguous; write {unit[:-1]}bit (bits) or "
                         f"{unit[:-1]}B (bytes)")
    return _lookup(text, unit, BYTE_UNITS, "size",
                   "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, bit, kbit, Mbit, Gbit")


def parse_bytes(text: str) -> float:
    """Size in bytes: ``"2GiB"`` -> 2147483648.0, ``"268MB"`` -> 2.68e8, ``"8bit"`` -> 1.0."""
    value, unit = _split(text, "size", "2GiB")
    _check_sign(text, value, "size", positive=False)
    return value * _byte_unit(text, unit)


def format_bytes(nbytes: float) -> str:
    """Binary units when the value is a whole number of them, else decimal: 2**31 -> ``"2GiB"``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = BYTE_UNITS[unit]
        if abs(nbytes) >= scale and float(nbytes / scale).is_integer():
            return f"{nbytes / scale:.12g}{unit}"
    for unit in ("TB", "GB", "MB", "kB", "B"):
        scale = BYTE_UNITS[unit]
        if abs(nbytes) >= scale or unit == "B":
            return f"{nbytes / scale:.12g}{unit}"
    raise AssertionError("unreachable")


def parse_size_or_duration(text: str) -> tuple[float, str]:
    """A buffer given in bytes or in time: ``(bytes, "_bytes")`` or ``(seconds, "_s")``.

    ``"1.25MB"`` -> ``(1250000.0, "_bytes")``, ``"40ms"`` -> ``(0.04, "_s")``. A time stands
    for what a link holds in it at its own rate (the way router buffers are sized), so the
    caller multiplies it by each link's capacity. The unit decides the dimension; a bare
    number or an unknown unit is refused with both kinds in the message.
    """
    _, unit = _split(text, "size or duration", "40ms")
    if unit in DURATION_UNITS_S or unit in BYTE_UNITS or unit in _AMBIGUOUS_SIZES:
        return parse_quantity(text)  # (its "_s" or "_bytes"; an ambiguous unit is refused)
    raise ValueError(f"{text!r}: unknown unit {unit!r}; allowed: a size (B, kB, MB, GB, KiB, "
                     f"MiB, GiB, bit, kbit, Mbit) or a duration (us, ms, s)")


# -- bandwidths -------------------------------------------------------------------------------


def short_duration(seconds: float) -> str:
    """Three significant digits in the largest fitting unit: ``"2.12 h"``, ``"7 min"``."""
    for unit, scale in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if abs(seconds) >= scale or unit == "ms":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def short_bytes(nbytes: float) -> str:
    """Three significant digits, decimal units: ``"75.4 GB"``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)):
        if abs(nbytes) >= scale or unit == "B":
            return f"{nbytes / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def parse_bandwidth(text: str) -> float:
    """Bandwidth in bytes/s: ``"100Mbit/s"`` -> 1.25e7, ``"1Gbps"`` -> 1.25e8, ``"2GiB/s"``."""
    value, unit = _split(text, "bandwidth", "100Mbit/s")
    _check_sign(text, value, "bandwidth", positive=True)
    if unit.endswith("/s") and unit[:-2] in ("b", "kb", "Mb", "Gb", "Tb", "Pb"):
        _byte_unit(text, unit[:-2])  # raises the "ambiguous" message
    return value * _lookup(text, unit, BANDWIDTH_UNITS_BPS, "bandwidth",
                           "bit/s, kbit/s, Mbit/s, Gbit/s, Mbps, Gbps, B/s, kB/s, MB/s, GB/s, "
                           "MiB/s, GiB/s")


def format_bandwidth(bytes_per_s: float) -> str:
    """Bits per second, the way links are sold: 1.25e7 -> ``"100Mbit/s"``."""
    bits = bytes_per_s * 8.0
    for prefix in ("T", "G", "M", "k", ""):
        scale = _DECIMAL[prefix]
        if abs(bits) >= scale or prefix == "":
            return f"{bits / scale:.12g}{prefix}bit/s"
    raise AssertionError("unreachable")


# -- rates ------------------------------------------------------------------------------------


def parse_rate(text: str) -> float:
    """Events per second: ``"0.1/h"`` -> 2.78e-5, ``"5/day"``, ``"5%/month"`` -> 0.05 per month.

    A percentage is a fraction of the population per period (e.g. the share of spot instances
    preempted per month); it becomes that fraction as a rate per second.
    """
    value, unit = _split(text, "rate", "0.1/h")
    _check_sign(text, value, "rate", positive=False)
    if unit.startswith("%"):
        value /= 100.0
        unit = unit[1:].lstrip()
    if not unit.startswith("/"):
        raise ValueError(f"{text!r} is not a rate; write a count per period, e.g. '0.1/h' or "
                         f"'5%/month'")
    period = unit[1:].strip()
    period_s = DURATION_UNITS_S.get(period)
    if period_s is None:
        try:
            period_s = parse_duration(period)  # "0.5/10min"
        except ValueError:
            raise ValueError(f"{text!r}: unknown period {period!r}; allowed: s, min, h, d, "
                             f"week, month, or a duration such as 10min") from None
    if period_s == 0:
        raise ValueError(f"{text!r}: the period must be > 0")
    return value / period_s


def format_rate(per_s: float) -> str:
    """Largest period with a count of at least 1 (or per day): 1/3600 -> ``"1/h"``."""
    for unit in ("s", "min", "h"):
        scale = DURATION_UNITS_S[unit]
        if per_s * scale >= 1.0:
            return f"{per_s * scale:.12g}/{unit}"
    return f"{per_s * DURATION_UNITS_S['d']:.12g}/d"


# -- compute ----------------------------------------------------------------------------------


def parse_flops(text: str) -> float:
    """Compute speed in FLOP/s: ``"989TFLOP/s"`` -> 9.89e14 (``"989 TFLOPS"`` also works)."""
    value, unit = _split(text, "compute speed", "989TFLOP/s")
    _check_sign(text, value, "compute speed", positive=True)
    return value * _lookup(text, unit, FLOPS_UNITS, "compute speed",
                           "FLOP/s, GFLOP/s, TFLOP/s, PFLOP/s (or FLOPS, TFLOPS, ...)")


def format_flops(flops_per_s: float) -> str:
    """Decimal prefix: 9.89e14 -> ``"989TFLOP/s"``."""
    for prefix in ("P", "T", "G", "M", "k", ""):
        scale = _DECIMAL[prefix]
        if abs(flops_per_s) >= scale or prefix == "":
            return f"{flops_per_s / scale:.12g}{prefix}FLOP/s"
    raise AssertionError("unreachable")


#: Parser of each dimension, by the SI suffix its value gets in a field name.
PARSERS_BY_SUFFIX: dict[str, tuple[str, Callable[[str], float]]] = {
    "_s": ("duration", parse_duration),
    "_bytes": ("size", parse_bytes),
    "_Bps": ("bandwidth", parse_bandwidth),
    "_per_s": ("rate", parse_rate),
    "_flops_per_s": ("compute speed", parse_flops),
}


def parse_quantity(text: str) -> tuple[float, str]:
    """Parse a unit string of any dimension; returns ``(si_value, suffix)``, e.g. ``"_s"``.

    Used for free-form parameter tables (topology and fault model parameters), where the key says
    nothing about the dimension: the unit does.
    """
    value, unit = _split(text, "quantity", "50ms")
    if unit in DURATION_UNITS_S:
        return parse_duration(text), "_s"
    if unit.startswith("/") or unit.startswith("%"):
        return parse_rate(text), "_per_s"
    if unit in FLOPS_UNITS:
        return parse_flops(text), "_flops_per_s"
    if unit in BANDWIDTH_UNITS_BPS or unit.endswith("/s"):
        return parse_bandwidth(text), "_Bps"
    return parse_bytes(text), "_bytes"
