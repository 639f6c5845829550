"""Exceptions of the engine.

Two kinds. ``ScenarioError`` is bad input: it names the field, the bad value and what is allowed
(its sibling ``FieldError``, a Config refusing one of its own fields, is defined in the leaf
package :mod:`dtsim_errors` so that ``workloads`` and ``topologies`` can raise it too, and is
re-exported here).
``SimFailure`` and its subclasses are *simulated* faults thrown into a process that was waiting
on a compute task, a transfer or a collective when a node or a link failed; a policy catches them
and reacts the way its method says.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from dtsim_errors import FieldError, FieldRefusal

__all__ = ["CollectiveAborted", "FieldError", "NodeFailure", "ScenarioError", "SimFailure",
           "TransferCut", "did_you_mean", "refuse_unknown_keys"]


class ScenarioError(FieldRefusal):
    """Invalid scenario input; ``field`` is the dotted path of the offending key."""


class SimFailure(Exception):
    """Base of every simulated failure delivered to a waiting process.

    SimPy re-creates an exception that leaves a process as ``type(e)(*e.args)``, so ``args`` holds
    the constructor's arguments and ``__str__`` builds the message from the fields.
    """

    message = ""

    def __str__(self) -> str:
        return self.message


class NodeFailure(SimFailure):
    """The node running a compute task (or a party of a collective) went down."""

    def __init__(self, node_id: int, time_s: float) -> None:
        super().__init__(node_id, time_s)
        self.message = f"node {node_id} failed at t={time_s:.6g}s"
        self.node_id = node_id
        self.time_s = time_s


class TransferCut(SimFailure):
    """A transfer ended before delivery: an end node failed or a link on its path went down.

    ``delivered_bytes`` is what had been transmitted when it was cut; the rest is counted as cut
    bytes by the recorder.
    """

    def __init__(self, src: int, dst: int, nbytes: float, delivered_bytes: float,
                 reason: str) -> None:
        super().__init__(src, dst, nbytes, delivered_bytes, reason)
        self.message = f"transfer {src}->{dst} of {nbytes:.6g} B cut: {reason}"
        self.src = src
        self.dst = dst
        self.nbytes = nbytes
        self.delivered_bytes = delivered_bytes
        self.reason = reason


class CollectiveAborted(SimFailure):
    """A collective could not finish because some of its members failed."""

    def __init__(self, failed: list[int], name: str = "collective") -> None:
        super().__init__(failed, name)
        self.message = f"{name} aborted: nodes {sorted(failed)} failed"
        self.failed = sorted(failed)
        self.name = name


def did_you_mean(name: str, allowed: Iterable[str]) -> str:
    """``"; did you mean 'nodes'?"`` for the allowed name closest to ``name`` (or ``""``).

    Closeness is :func:`difflib.get_close_matches` (a ratio of matching characters), so a typo
    such as ``nodse`` finds ``nodes`` and an unrelated word finds nothing.
    """
    options = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def refuse_unknown_keys(keys: Iterable[str], allowed: Sequence[str], *, where: str,
                        what: str = "unknown key") -> None:
    """Raise a ScenarioError naming the first of ``keys`` not in ``allowed``.

    The one line reads ``<where>.<key>: <what>; allowed: a, b, c; did you mean 'b'?``, so every
    table of a scenario refuses a typo the same way.
    """
    for key in keys:
        if key not in allowed:
            raise ScenarioError(f"{where}.{key}", f"{what}; allowed: "
                                f"{', '.join(allowed) or '(none)'}{did_you_mean(key, allowed)}")
