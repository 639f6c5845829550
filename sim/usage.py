"""Command lines that refuse bad arguments in one line, with exit code 2.

argparse reports a usage error as the usage block and a message, then exits; dtsim's commands
(``dtsim``, ``python -m sim.fuzz``) report every refusal -- argparse's own and the checks their
``main`` makes after parsing -- as one line, ``<prog>: error: <message>``, and return exit
code 2. :class:`OneLineParser` turns argparse's error into :class:`UsageError`, which the
command's ``main`` catches together with :class:`~sim.errors.ScenarioError`.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["EXIT_BAD_INPUT", "OneLineParser", "UsageError"]

#: Exit code of a command that refused its input.
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A command line that cannot be run; the message is the one line to print."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` (one line) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Refuse the command line in one line (argparse's hook; it must not return)."""
        raise UsageError(f"{message} (see {self.prog} --help)")
