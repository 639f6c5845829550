"""Command lines that refuse bad arguments in one line, with exit code 2.

argparse reports a usage error as the usage block and a message, then exits; dtsim's commands
(``dtsim``, ``python -m sim.fuzz``, the ``python -m experiments.<name>`` scripts) report every
refusal -- argparse's own and the checks their ``main`` makes after parsing -- as one line,
``<prog>: error: <message>``, and return exit code 2. :class:`OneLineParser` turns argparse's
error into :class:`UsageError`; a ``main`` decorated with :func:`refusing` hands every
:class:`UsageError` to :func:`refused`. A command that also reads a scenario while it checks
its command line wraps that part alone in :func:`command_line_checks`, which makes a
:class:`~sim.errors.ScenarioError` there a :class:`UsageError` (the same error raised by the
run is not bad input). These five are defined in the leaf
package :mod:`dtsim_errors` (so that ``python -m workloads.calibrate`` refuses the same way
without importing the engine) and re-exported here.

The checks below are the ones a ``main`` makes after parsing: each names the option, says what
is allowed and shows what it got (``--runs: must be an integer >= 1, got 0``), so that every
command words its refusals alike. The output-path checks run before the work, not after it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

from dtsim_errors import (
    EXIT_BAD_INPUT,
    OneLineParser,
    UsageError,
    command_line_checks,
    refused,
    refusing,
)

__all__ = ["EXIT_BAD_INPUT", "OneLineParser", "UsageError", "at_least", "check_output_file",
           "check_output_folder", "checked", "checked_list", "command_line_checks",
           "existing_file", "known", "positive", "positive_seconds", "refused", "refusing"]

T = TypeVar("T")


def checked(option: str, value: T, allowed: Callable[[T], bool], what: str) -> T:
    """``value`` if ``allowed(value)``, else refused: ``<option>: must be <what>, got <value>``.

    A text (a path, a name) is shown quoted, so that the refusal stays one line whatever it
    holds; a number as it is.
    """
    if not allowed(value):
        shown: object = value
        if isinstance(value, str | os.PathLike):
            shown = repr(str(value))
        raise UsageError(f"{option}: must be {what}, got {shown}")
    return value


def at_least(option: str, value: int, least: int) -> int:
    """``value`` if it is an integer >= ``least`` (a count, a size, a seed); else refuse it."""
    return checked(option, value, lambda n: n >= least, f"an integer >= {least}")


def positive(option: str, value: float, unit: str) -> float:
    """``value`` if it is a number of ``unit`` > 0 (finite: not NaN, not inf); else refuse it."""
    return checked(option, value, lambda x: math.isfinite(x) and x > 0, f"a number of {unit} > 0")


def positive_seconds(option: str, value: float) -> float:
    """``value`` if it is a number of seconds > 0 (finite: not NaN, not inf); else refuse it."""
    return positive(option, value, "seconds")


def checked_list(option: str, text: str, convert: Callable[[str], T],
                 allowed: Callable[[T], bool], what: str) -> list[T]:
    """The comma-separated values of ``text``: at least one, each ``convert``-ed and ``allowed``.

    Otherwise the whole text is refused, ``<option>: must be comma-separated <what>, got
    '<text>'`` (``what`` in the plural: ``"integers >= 0"``); an empty item (``"0,"``) is refused
    too, since it is a typo more often than a choice.
    """
    try:
        values = [convert(item) for item in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(allowed(value) for value in values):
        raise UsageError(f"{option}: must be comma-separated {what}, got {text!r}")
    return values


def seed_list(option: str, text: str) -> list[int]:
    """Comma-separated seeds (integers >= 0), as :func:`checked_list` checks and refuses them."""
    return checked_list(option, text, int, lambda seed: seed >= 0, "integers >= 0")


def known(option: str, names: Sequence[str], allowed: Collection[str], what: str) -> list[str]:
    """``names`` if there is at least one and each is in ``allowed``; else refuse them.

    The refusal names the first unknown one (``--families: unknown family 'bogus'; allowed:
    ...``) or says none was given, and lists what is allowed.
    """
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        problem = f"unknown {what} {unknown[0]!r}" if unknown else f"no {what} given"
        raise UsageError(f"{option}: {problem}; allowed: {', '.join(allowed)}")
    return list(names)


def existing_file(option: str, path: str) -> str:
    """``path`` if it names an existing file (an input to read); else refuse it."""
    return checked(option, path, lambda p: Path(p).is_file(), "an existing file")


def check_output_file(flag: str, path: str | None) -> None:
    """Refuse an output file that cannot be written, before the run (not after it)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag}: {path!r} is a folder; give a file name such as "
                         f"{str(target / 'trace.json')!r}")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"{flag}: folder {str(folder)!r} does not exist; create it first or "
                         f"give a path in an existing folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag}: folder {str(folder)!r} is not writable")


def check_output_folder(flag: str, path: str | None) -> None:
    """Refuse an output folder that is a file or cannot be created, before the run."""
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{flag}: {path!r} is a file, not a folder")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"{flag}: folder {str(existing)!r} is not writable")
