"""The refusals every layer of dtsim may raise: a bad value and a bad command line, one line each.

A bad value is reported as one line, ``<field>: <message>``, and the code that reports it takes
the field from the exception's ``field`` attribute, never from its text. The engine (``sim``),
its leaf packages (``topologies``, ``workloads``) and the methods (``policies``) all raise it,
so it lives below all of them: this package imports nothing of the project, and every package
may import it (``tests/engine/test_imports.py`` checks both). The engine re-exports
:class:`FieldError` as ``sim.errors.FieldError`` and derives its ``ScenarioError`` from
:class:`FieldRefusal`.

A command line that cannot be run is refused the same way: one line on stderr,
``<prog>: error: <option>: <message>``, and exit code :data:`EXIT_BAD_INPUT` (2), never
argparse's usage block or a traceback. :class:`OneLineParser`, :class:`UsageError`, the
``main`` decorator :func:`refusing` and :func:`command_line_checks` live here,
not in the engine, so that a leaf package's own command (``python -m workloads.calibrate``)
refuses its arguments exactly like ``dtsim`` without importing the engine; ``sim.usage``
re-exports them with the checks the engine's commands share.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, ParamSpec

__all__ = ["EXIT_BAD_INPUT", "FieldError", "FieldRefusal", "OneLineParser", "UsageError",
           "command_line_checks", "refused", "refusing"]

P = ParamSpec("P")

#: Exit code of a command that refused its input.
EXIT_BAD_INPUT = 2


class FieldRefusal(ValueError):
    """A refusal that names its field: ``"<field>: <message>"``, both kept as attributes.

    A message that bounds the field by another one (``mss`` by ``frame``) names that field
    through ``refs``, structured data like ``field`` itself: the message holds ``{name}``
    where ``name=value`` goes, and :meth:`message_naming` writes it with the names a reader
    uses (a scenario file's keys instead of a Config's field names), so no layer reads the
    text to rename it.
    """

    def __init__(self, field: str, message: str, *,
                 refs: Mapping[str, object] | None = None) -> None:
        self.field = field
        self.template = message
        self.refs = dict(refs or {})
        self.message = self.message_naming({})
        super().__init__(f"{field}: {self.message}")

    def message_naming(self, names: Mapping[str, str]) -> str:
        """The message with each referenced field written as ``names.get(field, field)=value``."""
        if not self.refs:
            return self.template
        return self.template.format(**{ref: f"{names.get(ref, ref)}={value}"
                                       for ref, value in self.refs.items()})

    def __reduce__(self) -> tuple:
        """Pickle with every argument (a refusal raised in a worker process reaches the CLI)."""
        return (_rebuild, (type(self), self.field, self.template, self.refs))


class FieldError(FieldRefusal):
    """A component's ``Config`` (or a method's check) refuses one of its own fields.

    ``field`` is the field's name inside the Config (``"inner_steps"``, ``"batch"``); whoever
    reads the Config from a table prefixes the table's dotted path
    (``policies.diloco.inner_steps``, ``workload.batch``). A Config raises it from
    ``__post_init__`` so that the loader names the field from this structured data, never by
    reading the message.
    """


def _rebuild(cls: type[FieldRefusal], field: str, template: str,
             refs: dict[str, object]) -> FieldRefusal:
    """Unpickle a refusal (``refs`` is keyword-only in the constructor)."""
    return cls(field, template, refs=refs)


class UsageError(Exception):
    """A command line that cannot be run; the message is the one line to print."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` (one line) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Refuse the command line in one line (argparse's hook; it must not return)."""
        raise UsageError(f"{message} (see {self.prog} --help)")


def refused(prog: str, refusal: Exception) -> int:
    """Print a command's refusal as its one line on stderr; the exit code for ``main`` to return.

    ``refusal`` is a :class:`UsageError` or a :class:`FieldRefusal`: either one's text is the
    line's message (``--runs: must be an integer >= 1, got 0``, ``network.uplink: ...``).
    """
    print(f"{prog}: error: {refusal}", file=sys.stderr)
    return EXIT_BAD_INPUT


def refusing(prog: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Decorate a command's ``main``: a :class:`UsageError` it raises is :func:`refused`.

    Only a command line's checks raise :class:`UsageError` (the parser and the checks made
    right after parsing), so nothing the command's work raises is turned into exit code 2.
    """

    def decorate(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def refusing_main(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except UsageError as exc:
                return refused(prog, exc)

        return refusing_main

    return decorate


@contextlib.contextmanager
def command_line_checks() -> Iterator[None]:
    """Inside a command's checks, a :class:`FieldRefusal` is a refusal of its command line.

    A command that reads a scenario file or builds a Config from its arguments before it works
    (a ``--set`` key that does not exist, a value a Config refuses) wraps that part alone, so
    that :func:`refusing` answers it in one line; the same error raised later, by the work
    itself, is not bad input and keeps its traceback.
    """
    try:
        yield
    except FieldRefusal as exc:
        raise UsageError(str(exc)) from exc
