"""The refusal every layer of dtsim may raise: an error that names the field it refuses.

A bad value is reported as one line, ``<field>: <message>``, and the code that reports it takes
the field from the exception's ``field`` attribute, never from its text. The engine (``sim``),
its leaf packages (``topologies``, ``workloads``) and the methods (``policies``) all raise it,
so it lives below all of them: this package imports nothing of the project, and every package
may import it (``tests/engine/test_imports.py`` checks both). The engine re-exports
:class:`FieldError` as ``sim.errors.FieldError`` and derives its ``ScenarioError`` from
:class:`FieldRefusal`.
"""

from __future__ import annotations

__all__ = ["FieldError", "FieldRefusal"]


class FieldRefusal(ValueError):
    """A refusal that names its field: ``"<field>: <message>"``, both kept as attributes."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple:
        """Pickle with both arguments (a refusal raised in a worker process reaches the CLI)."""
        return (type(self), (self.field, self.message))


class FieldError(FieldRefusal):
    """A component's ``Config`` (or a method's check) refuses one of its own fields.

    ``field`` is the field's name inside the Config (``"inner_steps"``, ``"batch"``); whoever
    reads the Config from a table prefixes the table's dotted path
    (``policies.diloco.inner_steps``, ``workload.batch``). A Config raises it from
    ``__post_init__`` so that the loader names the field from this structured data, never by
    reading the message.
    """
