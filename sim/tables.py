"""The unit rules of free-form scenario tables (parameters of policies, models, presets).

One rule for every free-form table: a key whose value is a unit string gets the SI suffix of
that unit and the value in SI units, so ``latency = "50ms"`` arrives as ``latency_s = 0.05`` and
``rate = "0.1/h"`` as ``rate_per_s = 2.8e-5``. A key that already ends in an SI suffix takes a
plain number (``latency_s = 0.05``) or a unit string of that dimension. A bare number for a key
whose receiver takes it with a unit (``latency = 5`` where ``latency_s`` is accepted) is refused
with an example unit. Every error is a :class:`~sim.errors.ScenarioError` naming the field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sim import units
from sim.errors import ScenarioError

__all__ = ["check_param_types", "check_param_units", "si_params"]

_SI_SUFFIXES = sorted(units.PARSERS_BY_SUFFIX, key=len, reverse=True)

_UNIT_EXAMPLES = {"_s": "50ms", "_bytes": "2GiB", "_Bps": "100Mbit/s", "_per_s": "0.1/h",
                  "_flops_per_s": "989TFLOP/s"}

_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
}


def si_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Convert a free-form table: ``{"latency": "50ms"}`` -> ``{"latency_s": 0.05}``.

    Unit strings get the SI suffix of their unit; keys that already carry a suffix keep their
    numeric value (a unit string there is parsed with that suffix's parser); nested tables and
    lists of tables are converted the same way. Other values pass through untouched.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{where}.{key}"
        suffix = next((s for s in _SI_SUFFIXES if key.endswith(s)), None)
        if isinstance(value, Mapping):
            out[key] = si_params(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out[key] = [si_params(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, str) and suffix is not None:
            _, parse = units.PARSERS_BY_SUFFIX[suffix]
            out[key] = _parsed(path, parse, value)
        elif isinstance(value, str) and _looks_like_quantity(value):
            si_value, unit_suffix = _parsed(path, units.parse_quantity, value)
            out[key + unit_suffix] = si_value
        else:
            out[key] = value
    return out


def _looks_like_quantity(text: str) -> bool:
    """``"50ms"``, ``"0.1/h"``, ``"1 Gbit/s"``: a number, then a unit (a lexical check)."""
    number_then_unit = r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*[A-Za-zµ%/].*"
    return re.fullmatch(number_then_unit, text) is not None


def _parsed(path: str, parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise ScenarioError(path, str(exc)) from None


def check_param_units(params: Mapping[str, Any], accepted: Iterable[str], where: str) -> None:
    """Refuse ``latency = 5`` when the receiver takes ``latency_s``: say which unit to write."""
    accepted = set(accepted)
    for key, value in params.items():
        if key in accepted or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for suffix, example in _UNIT_EXAMPLES.items():
            if key + suffix in accepted:
                raise ScenarioError(f"{where}.{key}", f"{value!r} has no unit; write it with "
                                                      f"one, e.g. {key} = \"{example}\"")


def check_param_types(config_cls: type, params: Mapping[str, Any], where: str) -> None:
    """Check values against simple annotations (``int``, ``float | None``, ...) of a Config.

    Richer annotations (lists, tuples, unions of other types) are left to the Config's own
    ``__post_init__``.
    """
    for f in dataclasses.fields(config_cls):
        if f.name not in params:
            continue
        value = params[f.name]
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        options = [a.strip() for a in annotation.split("|")]
        if not all(a in _SIMPLE_TYPES or a == "None" for a in options):
            continue
        if value is None and "None" in options:
            continue
        allowed = tuple(t for a in options if a in _SIMPLE_TYPES for t in _SIMPLE_TYPES[a])
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            raise ScenarioError(f"{where}.{f.name}", f"{value!r} is not of type {annotation}")
