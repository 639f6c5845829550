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

from collections.abc import Mapping

__all__ = ["FieldError", "FieldRefusal"]


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
