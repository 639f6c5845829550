"""Scenario files (TOML, YAML), tables and a Python builder -> one validated :class:`Scenario`.

This is the one place where user input is checked, in two layers: :mod:`sim.fileformat` checks
the file's shape (sections, keys, units of the fixed fields) and reads ``--set`` overrides;
:mod:`sim.sections` turns each section into its typed config, checking every name against the
component registry (:mod:`sim.components`). Dimensioned values are strings with units
(``"50ms"``, ``"100Mbit/s"``, ``"2GiB"``, ``"0.1/h"``); bare numbers for them are refused. Every
error is a :class:`~sim.errors.ScenarioError` whose message starts with the dotted path of the
bad field and says what is allowed, e.g. ``network.uplink: '-5Mbit/s' is negative; a bandwidth
must be > 0``.

Free-form parameter tables (``network.topology_params``, the fault model specs, the policy's
parameters) follow one rule (:mod:`sim.tables`): a key whose value is a unit string gets the SI
suffix of that unit and the value in SI units, so ``latency = "50ms"`` arrives as
``latency_s = 0.05`` and ``rate = "0.1/h"`` as ``rate_per_s = 2.8e-5``.

A file, a table and the builder all give the same type, :class:`~sim.config.Scenario`, which
keeps the file's ``[policies.<label>]`` tables.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sim import sections
from sim.config import PolicyConfig, Scenario
from sim.errors import ScenarioError
from sim.fileformat import (
    ScenarioFile,
    apply_overrides,
    first_error_line,
    parse_override_value,
    read_scenario_file,
)
from sim.tables import si_params

__all__ = [
    "ScenarioBuilder",
    "ScenarioError",
    "ScenarioSpec",
    "apply_overrides",
    "default_scenario_path",
    "load",
    "load_scenario",
    "parse_override_value",
    "parse_spec",
    "read_scenario_file",
    "resolve_policies",
    "scenario_from_dict",
    "si_params",
]


ScenarioSpec = Scenario
"""The former name of a loaded scenario with its ``[policies]`` tables; now :class:`Scenario`."""


def parse_spec(raw: Mapping[str, Any], *, base_dir: str | Path | None = None) -> Scenario:
    """Validate a file-shaped table into a :class:`Scenario`.

    Relative paths in it resolve in ``base_dir`` (default: the current folder).
    """
    try:
        model = ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise first_error_line(exc) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    sections.check_memory_estimate(model.cluster.nodes)

    seed = model.seed
    if model.run.seed is not None:
        if seed is not None and seed != model.run.seed:
            raise ScenarioError("run.seed", f"{model.run.seed} disagrees with the top-level "
                                            f"seed {seed}; give one of them")
        seed = model.run.seed

    cluster = sections.cluster_config(model.cluster)
    network = sections.network_config(model.network, cluster.num_nodes, base)
    faults = sections.faults_config(model.faults, cluster.num_nodes, base)
    workload = sections.workload_config(model.workload, base)
    run = sections.run_config(model.run)
    sections.check_failure_load(faults, cluster.num_nodes, run.until_s)

    compared = sections.compared_policies(model.policies)
    if model.policy is not None:
        policy = sections.policy_config(model.policy, "policy")
    elif compared:
        policy = compared[0][1]
    else:
        raise ScenarioError("policy", "missing section; give [policy] with a name "
                                      "(or [policies.<name>] tables for comparisons)")
    return Scenario(name=model.name, seed=seed if seed is not None else 0, cluster=cluster,
                    network=network, faults=faults, workload=workload, policy=policy, run=run,
                    policies=compared, source=copy.deepcopy(dict(raw)), base_dir=str(base))


# ---------------------------------------------------------------- public entry points


def load(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read, override and validate a scenario file (``.toml``, ``.yaml``) into a Scenario."""
    raw = apply_overrides(read_scenario_file(path), overrides)
    return parse_spec(raw, base_dir=Path(path).resolve().parent)


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Load a scenario file; the same as :func:`load` (kept as the library's name for it)."""
    return load(path, overrides)


def scenario_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = (), *,
                       base_dir: str | Path | None = None) -> Scenario:
    """Validate a table shaped like a scenario file into a :class:`~sim.config.Scenario`."""
    return parse_spec(apply_overrides(data, overrides), base_dir=base_dir)


def default_scenario_path() -> Path:
    """Return the path of the built-in default comparison (``sim/defaults/default.toml``)."""
    return Path(str(resources.files("sim") / "defaults" / "default.toml"))


def resolve_policies(spec: Scenario, names: Sequence[str] | None = None, *,
                     flag: str = "--policies") -> list[tuple[str, PolicyConfig]]:
    """Return the ``(label, PolicyConfig)`` list to compare (:meth:`Scenario.policy_configs`).

    ``flag`` is the command-line option an error names (``--policy`` for ``dtsim run``).
    """
    return spec.policy_configs(names, flag=flag)


# ---------------------------------------------------------------- Python builder


class ScenarioBuilder:
    """Build a scenario in Python with the same keys, units and checks as a file.

    Example
    -------
    >>> scenario = (ScenarioBuilder("wan-8", seed=7)
    ...     .cluster(nodes=8, device="h100")
    ...     .network(model="maxmin", topology="uniform", uplink="100Mbit/s",
    ...              topology_params={"latency": "50ms", "bandwidth": "1Gbit/s"})
    ...     .workload(learner="tiny-llama", timing="llama-1b", data="synthetic-markov")
    ...     .policy("diloco", inner_steps=50)
    ...     .run(until="2h")
    ...     .build())                                           # doctest: +SKIP
    """

    def __init__(self, name: str = "scenario", *, seed: int = 0) -> None:
        self._data: dict[str, Any] = {"name": name, "seed": seed}
        self._overrides: list[str] = []

    def _section(self, section: str, values: Mapping[str, Any]) -> ScenarioBuilder:
        self._data.setdefault(section, {}).update(values)
        return self

    def cluster(self, **values: Any) -> ScenarioBuilder:
        """Keys of ``[cluster]``: nodes, device, speed, compute_slots, memory."""
        return self._section("cluster", values)

    def network(self, **values: Any) -> ScenarioBuilder:
        """Keys of ``[network]``: model, topology, topology_params, uplink, downlink, ..."""
        return self._section("network", values)

    def faults(self, **values: Any) -> ScenarioBuilder:
        """Keys of ``[faults]``: stragglers (a spec), failures (a spec or a list of them)."""
        return self._section("faults", values)

    def workload(self, **values: Any) -> ScenarioBuilder:
        """Keys of ``[workload]``: learner, timing, data, batch, seq, ..."""
        return self._section("workload", values)

    def policy(self, name: str, **params: Any) -> ScenarioBuilder:
        """Set the policy that :func:`sim.runner.run` uses, with its parameters."""
        self._data["policy"] = {"name": name, **params}
        return self

    def compare(self, label: str, name: str | None = None, **params: Any) -> ScenarioBuilder:
        """Add a ``[policies.<label>]`` entry for comparisons."""
        entry = {"name": name or label, **params}
        self._data.setdefault("policies", {})[label] = entry
        return self

    def run(self, **values: Any) -> ScenarioBuilder:
        """Keys of ``[run]``: until, steps, target_loss, stop_at_target, eval_every, ..."""
        return self._section("run", values)

    def set(self, key: str, value: Any) -> ScenarioBuilder:
        """Override one dotted key, e.g. ``.set("network.model", "ideal")``."""
        self._data = apply_overrides(self._data, [f"{key}=__placeholder__"])
        table = self._data
        parts = key.split(".")
        for part in parts[:-1]:
            table = table[part]
        table[parts[-1]] = value
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the scenario as a file-shaped table (for :func:`sim.sweep.sweep`)."""
        return copy.deepcopy(self._data)

    def spec(self) -> Scenario:
        """Validate and return the scenario (the same as :meth:`build`)."""
        return parse_spec(self._data)

    def build(self) -> Scenario:
        """Validate and return the :class:`~sim.config.Scenario`."""
        return parse_spec(self._data)
