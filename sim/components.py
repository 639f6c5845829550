"""The component registry: every pluggable kind of the simulator, by name.

A *component* is something a scenario names and configures: a training method (``policy``), a
straggler or failure model, a topology preset, a network model, a learner, a timing model, a
data set, a device profile. Each is registered under ``(kind, name)`` with

- ``config``: a frozen, keyword-only dataclass of its parameters in SI units (units in the field
  names, each documented), validated in its ``__post_init__``;
- ``build``: what turns a Config into the working object (a ``Policy``, a ``FailureModel``, ...).

:func:`config_from_table` is the one way a scenario table becomes a Config: it applies the unit
rules of :mod:`sim.tables`, refuses unknown keys, checks simple types, builds the Config and
turns a refusal into a :class:`~sim.errors.ScenarioError` that names the field. A Config
refuses a value by raising :class:`~sim.errors.FieldError` (the field's name and the message);
the field is taken from the exception, never read from the message. Any other ``ValueError`` or
``TypeError`` from a Config is reported against the whole table, its message unchanged.

Registering a component is one decorator in the component's own file; nothing else is edited::

    @register_policy("my_method")          # sim.policy: kind "policy"
    class MyMethod(Policy):
        Config = MyMethodConfig

    @register_component("failures", "my_failures")   # any other kind
    @dataclass(frozen=True, kw_only=True)
    class MyFailuresConfig:
        rate_per_s: float
        def build(self, *, num_nodes, horizon_s, rng): ...

Built-in components register when their modules are imported; :func:`load_builtins` imports
them (the engine's own kinds and the ``policies`` package) the first time the registry is read.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sim.errors import FieldError, ScenarioError, refuse_unknown_keys
from sim.tables import check_param_types, check_param_units, si_params

__all__ = ["KINDS", "Component", "component", "config_from_table", "describe", "find",
           "load_builtins", "make_config", "names", "register", "register_component"]

KINDS: dict[str, str] = {
    "policy": "training methods: [policy] name, [policies.<label>] name",
    "stragglers": "per-task slowdown models: [faults] stragglers.model",
    "failures": "failure schedules: [faults] failures.model",
    "topology": "topology presets: [network] topology",
    "network": "network models: [network] model",
    "transport": "how bytes move over the network model: [network] transport",
    "learner": "what trains for real: [workload] learner",
    "timing": "what the clock charges: [workload] timing",
    "data": "training data: [workload] data",
    "device": "device profiles: [cluster] device",
}
"""Every kind of component, with where a scenario names one."""

BUILTIN_MODULES = ("sim.faults", "sim.network", "sim.builtins", "policies")
"""Modules whose import registers the built-in components. ``policies`` is imported by name (not
by a static import): the engine must not depend on a concrete method."""

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class Component:
    """One registered component.

    kind, name:
        Where it is registered (``("policy", "diloco")``).
    config:
        Its frozen Config dataclass, or ``None`` for a component without parameters.
    build:
        ``build(config, **context)`` -> the working object; the context is kind-specific
        (a failure model gets ``num_nodes``, ``horizon_s`` and ``rng``).
    summary:
        One line for ``dtsim list``.

    ``parameters`` lists the parameter names ``dtsim list`` shows (the Config's fields unless
    given).
    """

    kind: str
    name: str
    config: type | None
    build: Callable[..., Any]
    summary: str = ""
    parameters: tuple[str, ...] = ()


_REGISTRY: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
_loaded = False


def register(kind: str, name: str, *, config: type | None = None,
             build: Callable[..., Any] | None = None, summary: str = "",
             parameters: tuple[str, ...] | None = None) -> Component:
    """Register a component; a second registration of the same name must be the same one."""
    if kind not in KINDS:
        raise ValueError(f"kind: unknown component kind {kind!r}; allowed: {', '.join(KINDS)}")
    if parameters is None:
        parameters = (tuple(f.name for f in dataclasses.fields(config) if f.init)
                      if config else ())
    if build is None:
        if config is None or not hasattr(config, "build"):
            raise ValueError(f"{kind} {name!r}: give build=, or a Config with a build method")
        build = _call_build
    if not summary:
        doc = (config.__doc__ if config is not None else None) or ""
        summary = doc.strip().split("\n")[0]
    entry = Component(kind=kind, name=name, config=config, build=build, summary=summary,
                      parameters=tuple(parameters))
    old = _REGISTRY[kind].get(name)
    if old is not None and (old.config is not config or
                            getattr(old.build, "__qualname__", None) !=
                            getattr(build, "__qualname__", None)):
        raise ValueError(f"{kind} {name!r} registered twice")
    _REGISTRY[kind][name] = entry
    return entry


def _call_build(config: Any, **context: Any) -> Any:
    return config.build(**context)


def register_component(kind: str, name: str) -> Callable[[C], C]:
    """Class decorator for a Config with a ``build(**context)`` method."""

    def decorate(config_cls: C) -> C:
        register(kind, name, config=config_cls)
        return config_cls

    return decorate


def load_builtins() -> None:
    """Import the modules that register the built-in components (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def names(kind: str) -> list[str]:
    """Every registered name of ``kind``, sorted."""
    load_builtins()
    return sorted(_REGISTRY[kind])


def component(kind: str, name: Any, *, field: str | None = None) -> Component:
    """The component ``name`` of ``kind``; an unknown name is a ScenarioError naming ``field``."""
    load_builtins()
    try:
        return _REGISTRY[kind][name]
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(_REGISTRY[kind]))
        raise ScenarioError(field or kind, f"unknown {kind} {name!r}; allowed: {allowed}") \
            from None


def find(kind: str, name: Any) -> Component | None:
    """The component ``name`` of ``kind``, or ``None`` when there is none."""
    load_builtins()
    return _REGISTRY[kind].get(name) if isinstance(name, str) else None


def describe() -> dict[str, dict[str, list[str]]]:
    """``{kind: {name: [parameter, ...]}}`` for every registered component (``dtsim list``)."""
    load_builtins()
    return {kind: {name: list(entry.parameters) for name, entry in sorted(items.items())}
            for kind, items in _REGISTRY.items()}


def config_from_table(kind: str, name: str, table: Mapping[str, Any], *, where: str) -> Any:
    """Turn a scenario table into the Config of component ``(kind, name)``.

    ``table`` holds the component's parameters as written in the file (``name``/``model`` keys
    already removed); ``where`` is its dotted path (``policies.diloco``), prefixed to every
    error. Applies the unit rules (:func:`sim.tables.si_params`), refuses bare numbers for
    dimensioned fields, unknown keys and wrong simple types, then builds the Config.
    """
    config_cls = component(kind, name, field=f"{where}.name").config
    params = si_params(table, where)
    if config_cls is None:
        if params:
            raise ScenarioError(f"{where}.{next(iter(params))}",
                                "unknown parameter; allowed: (none)")
        return None
    fields = [f.name for f in dataclasses.fields(config_cls) if f.init]
    check_param_units(params, fields, where)
    check_param_types(config_cls, params, where)
    return make_config(config_cls, params, where=where)


def make_config(config_cls: type, params: Mapping[str, Any], *, where: str) -> Any:
    """Build ``config_cls(**params)``; every refusal is a ScenarioError naming the field.

    A Config may list former parameters in a class attribute ``RETIRED_FIELDS`` (name -> where
    the setting went); giving one is refused with that note rather than as an unknown key.
    """
    fields = sorted(f.name for f in dataclasses.fields(config_cls) if f.init)
    retired: Mapping[str, str] = getattr(config_cls, "RETIRED_FIELDS", {})
    for key in params:
        if key in retired and key not in fields:
            raise ScenarioError(f"{where}.{key}", f"no longer a parameter here: {retired[key]}")
    refuse_unknown_keys(params, fields, where=where, what="unknown parameter")
    required = [f.name for f in dataclasses.fields(config_cls) if f.init
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in required:
        if name not in params:
            raise ScenarioError(f"{where}.{name}", f"required; parameters: {', '.join(fields)} "
                                                   f"(required: {', '.join(required)})")
    try:
        return config_cls(**params)
    except FieldError as exc:
        raise ScenarioError(f"{where}.{exc.field}", exc.message) from None
    except ScenarioError:
        raise
    except (TypeError, ValueError) as exc:  # not a FieldError: name the table, keep the message
        raise ScenarioError(where, str(exc)) from None
