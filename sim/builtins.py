"""Register the components that live outside ``sim``: topology presets and workload parts.

``topologies`` and ``workloads`` depend on nothing of ``sim``, so they cannot register
themselves; this module lists what they provide under the kinds ``topology``, ``learner``,
``timing``, ``data`` and ``device`` of :mod:`sim.components`, each built by the package's own
factory. (Network models register in :mod:`sim.network`, fault models in :mod:`sim.faults`,
policies in their own modules.)
"""

from __future__ import annotations

import inspect

import topologies
from sim import components
from workloads import DEVICES, get_device, preset_names
from workloads.config import DATA_SETS, LEARNERS

TOPOLOGY_FILLED_IN = ("num_nodes", "seed")
"""Preset arguments the world passes itself (not scenario keys)."""


def _register() -> None:
    for name, builder in sorted(topologies.PRESETS.items()):
        params = tuple(p for p in inspect.signature(builder).parameters
                       if p not in TOPOLOGY_FILLED_IN)
        doc = (builder.__doc__ or "").strip().split("\n")[0]
        components.register("topology", name, build=builder, parameters=params, summary=doc)
    for name in LEARNERS:
        components.register("learner", name, build=_named, summary=f"learner {name!r}")
    for name in ["same", *preset_names()]:
        components.register("timing", name, build=_named, summary=f"timing model {name!r}")
    for name, summary in [*DATA_SETS.items(), ("text:PATH", "a local text file")]:
        components.register("data", name, build=_named, summary=summary)
    for name in sorted(DEVICES):
        components.register("device", name, build=get_device, summary=f"device {name!r}")


def _named(name: str) -> str:
    """Learners, timing models and data sets are built by the workload from their names."""
    return name


_register()
