"""Scenario files (TOML, YAML) and a Python builder -> validated :class:`sim.config.Scenario`.

This is the one place where user input is checked. A scenario file has the sections ``cluster``,
``network``, ``faults`` (optional), ``workload``, ``policy`` and ``run`` (see
docs/scenario-format.md for every key). Dimensioned values are strings with units (``"50ms"``,
``"100Mbit/s"``, ``"2GiB"``, ``"0.1/h"``); bare numbers for them are refused. Every error is a
:class:`~sim.errors.ScenarioError` whose message starts with the dotted path of the bad field and
says what is allowed, e.g. ``network.uplink: '-5Mbit/s' is negative; a bandwidth must be > 0``.

Free-form parameter tables (``network.topology_params``, the fault model specs, the policy's
parameters) follow one rule: a key whose value is a unit string gets the SI suffix of that unit
and the value in SI units, so ``latency = "50ms"`` arrives as ``latency_s = 0.05`` and
``rate = "0.1/h"`` as ``rate_per_s = 2.8e-5``. A key that already ends in an SI suffix takes a
plain number (``latency_s = 0.05``).

Any key can be overridden before validation with ``KEY=VALUE`` strings (``--set`` on the command
line): the value is read as a TOML value when it is one (``16``, ``2.5``, ``true``, ``"x"``,
``[1, 2]``) and as a plain string otherwise (``100Mbit/s``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from sim import units
from sim.config import (
    ClusterConfig,
    FaultsConfig,
    NetworkConfig,
    PolicyConfig,
    RunConfig,
    Scenario,
)
from sim.errors import ScenarioError, did_you_mean
from sim.network.tcp import TcpConfig

__all__ = [
    "ScenarioBuilder",
    "ScenarioError",
    "ScenarioSpec",
    "apply_overrides",
    "default_scenario_path",
    "load",
    "load_scenario",
    "parse_spec",
    "read_scenario_file",
    "resolve_policies",
    "scenario_from_dict",
]

REQUIRED_SECTIONS = ("cluster", "network", "workload", "run")


# ---------------------------------------------------------------- unit-typed fields


def _bandwidth_or_unlimited(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("unlimited", "inf")):
        return None
    return units.parse_bandwidth(value)


# The parsers run on the raw value, before pydantic's own coercion, so bare numbers fail.
Duration = Annotated[float, BeforeValidator(units.parse_duration)]
Size = Annotated[float, BeforeValidator(units.parse_bytes)]
Bandwidth = Annotated[float | None, BeforeValidator(_bandwidth_or_unlimited)]

_SI_SUFFIXES = tuple(units.PARSERS_BY_SUFFIX)


def si_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Convert a free-form table: ``{"latency": "50ms"}`` -> ``{"latency_s": 0.05}``.

    Unit strings get the SI suffix of their unit; keys that already carry a suffix keep their
    numeric value (a unit string there is parsed with that suffix's parser); nested tables and
    lists of tables are converted the same way. Other values pass through untouched.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{where}.{key}"
        suffix = next((s for s in sorted(_SI_SUFFIXES, key=len, reverse=True)
                       if key.endswith(s)), None)
        if isinstance(value, Mapping):
            out[key] = si_params(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out[key] = [si_params(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, str) and suffix is not None:
            _, parse = units.PARSERS_BY_SUFFIX[suffix]
            out[key] = _wrap(path, parse, value)
        elif isinstance(value, str) and _looks_like_quantity(value):
            si_value, unit_suffix = _wrap(path, units.parse_quantity, value)
            out[key + unit_suffix] = si_value
        else:
            out[key] = value
    return out


def _looks_like_quantity(text: str) -> bool:
    """``"50ms"``, ``"0.1/h"``, ``"1 Gbit/s"``: a number, then a unit."""
    number_then_unit = r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*[A-Za-zµ%/].*"
    return re.fullmatch(number_then_unit, text) is not None


def _wrap(path: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError as exc:
        raise ScenarioError(path, str(exc)) from None


# ---------------------------------------------------------------- the file's sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSection(_Section):
    """``[cluster]``: how many nodes, which device, persistent heterogeneity."""

    nodes: int = Field(ge=1)
    device: str = "h100"
    speed: dict[str, Any] | list[float] = Field(default_factory=dict)
    compute_slots: int = Field(default=1, ge=1)
    memory: Size | None = None


class TcpSection(_Section):
    """``[network.tcp]``: the parameters of the ``tcp`` transport (:class:`TcpConfig`)."""

    mss: int = Field(default=1448, ge=1)
    frame: int = Field(default=1514, ge=1)
    initial_window: int = Field(default=10, ge=1)
    max_window: Size = 4 * 1024 * 1024
    slow_start_after_idle: bool = True
    min_rto: Duration = 0.2
    parallel_streams: int = Field(default=1, ge=1)
    handshake: bool = False


class NetworkSection(_Section):
    """``[network]``: the network model, the transport, the topology and the access links."""

    model: Literal["ideal", "maxmin"] = "maxmin"
    topology: str = "uniform"
    topology_params: dict[str, Any] = Field(default_factory=dict)
    uplink: Bandwidth = None
    downlink: Bandwidth = None
    latency: Duration = 0.0
    tcp_efficiency: float = Field(default=1.0, gt=0.0, le=1.0)
    transport: Literal["fluid", "tcp"] = "fluid"
    tcp: TcpSection = Field(default_factory=TcpSection)


class FaultsSection(_Section):
    """``[faults]``: a straggler model spec and zero or more failure model specs."""

    stragglers: dict[str, Any] = Field(default_factory=dict)
    failures: dict[str, Any] | list[dict[str, Any]] = Field(default_factory=list)


class RunSection(_Section):
    """``[run]``: stop conditions, evaluation, seed."""

    until: Duration | None = None
    steps: int | None = Field(default=None, ge=1)
    target_loss: float | None = Field(default=None, allow_inf_nan=False)
    stop_at_target: bool = False
    eval_every: Duration | None = None
    eval_batches: int = Field(default=4, ge=1)
    timing_only: bool = False
    seed: int | None = Field(default=None, ge=0)


class ScenarioFile(BaseModel):
    """The whole file. ``workload``, ``policy`` and ``policies`` are checked after pydantic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "scenario"
    description: str = ""
    seed: int | None = Field(default=None, ge=0)
    cluster: ClusterSection
    network: NetworkSection
    faults: FaultsSection = Field(default_factory=FaultsSection)
    workload: dict[str, Any]
    policy: dict[str, Any] | None = None
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    run: RunSection

    @field_validator("policy")
    @classmethod
    def _policy_has_name(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("name"), str):
            raise ValueError("needs a name, e.g. name = \"ddp\"")
        return value


def _is_type_tag(part: str) -> bool:
    return part in ("float", "int", "str", "bool", "none", "list[float]", "dict[str,any]") or \
        "[" in part or part.startswith("function-")


def _model_at(loc: list[str]) -> type[BaseModel]:
    """The section model that holds the last key of ``loc`` (``network.tcp.mss`` -> tcp's)."""
    model: type[BaseModel] = ScenarioFile
    for part in loc[:-1]:
        annotation = getattr(model.model_fields.get(part), "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def _first_error_line(exc: ValidationError) -> ScenarioError:
    """Turn pydantic's report into one line naming the first bad field.

    An unknown key comes first: a typo (``nodse``) also makes its intended key missing, and
    the typo is what the user has to fix.
    """
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # Union members and validators add type tags such as "float" or "function-before[...]" to
    # the location; only keys of the file (and list indices) name a field.
    loc = [str(p) for p in err["loc"] if isinstance(p, int) or not _is_type_tag(str(p))]
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    path = path or "scenario"
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        if "." not in path and path in REQUIRED_SECTIONS:
            return ScenarioError(path, "missing section; a scenario needs the sections "
                                       f"{', '.join(REQUIRED_SECTIONS)} (and policy)")
        return ScenarioError(path, "missing required key")
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = ", ".join(model.model_fields)
        hint = did_you_mean(loc[-1], model.model_fields)
        return ScenarioError(path, f"unknown key; allowed: {allowed}{hint}")
    message = err["msg"]
    if message.startswith("Value error, "):
        return ScenarioError(path, message[len("Value error, "):])
    return ScenarioError(path, f"{message} (got {value!r})")


# ---------------------------------------------------------------- reading and overriding


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """Read the raw table of a ``.toml``, ``.yaml`` or ``.yml`` file (nothing validated)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ScenarioError("scenario", f"{str(path)!r}: unknown file type {suffix or '(none)'!r}; "
                                        "allowed: .toml, .yaml, .yml")
    if not path.is_file():
        raise ScenarioError("scenario", f"no such file: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError("scenario", f"{str(path)!r} is not UTF-8 text (a binary file?): "
                                        f"byte {exc.start} is {exc.object[exc.start]:#04x}"
                            ) from None
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError("scenario", f"{str(path)!r} is not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = " ".join(str(exc).split())
            raise ScenarioError("scenario", f"{str(path)!r} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ScenarioError("scenario", f"{str(path)!r} must hold a table of sections, "
                                        f"got {type(data).__name__}")
    return data


def parse_override_value(text: str) -> Any:
    """Return a TOML value when ``text`` is one (``16``, ``true``, ``[1, 2]``), else the string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``"dotted.key=value"`` applied in order."""
    data = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ScenarioError("--set", f"expected KEY=VALUE such as network.model=ideal, "
                                         f"got {item!r}")
        parts = key.split(".")
        table = data
        for depth, part in enumerate(parts[:-1]):
            child = table.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ScenarioError(key, f"cannot set a key inside {where}, which is "
                                         f"{child!r}, not a table")
            table = child
        table[parts[-1]] = parse_override_value(text.strip())
    return data


# ---------------------------------------------------------------- validated spec


@dataclass(frozen=True, kw_only=True)
class ScenarioSpec:
    """A validated scenario plus what the file says about comparisons.

    scenario:
        The run's frozen configuration (SI units).
    policies:
        ``(label, PolicyConfig)`` for each entry of the file's ``[policies.<label>]`` tables, in
        file order: what ``dtsim compare`` runs when no ``--policies`` is given.
    raw:
        The file's table after overrides (for sweeps, which override it again).
    """

    scenario: Scenario
    policies: tuple[tuple[str, PolicyConfig], ...] = ()
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_spec(raw: Mapping[str, Any], *, base_dir: str | Path | None = None) -> ScenarioSpec:
    """Validate a raw table into a :class:`ScenarioSpec`; relative paths resolve in ``base_dir``."""
    try:
        model = ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise _first_error_line(exc) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    check_memory_estimate(model.cluster.nodes)

    seed = model.seed
    if model.run.seed is not None:
        if seed is not None and seed != model.run.seed:
            raise ScenarioError("run.seed", f"{model.run.seed} disagrees with the top-level "
                                            f"seed {seed}; give one of them")
        seed = model.run.seed

    cluster = _cluster_config(model.cluster)
    network = _network_config(model.network, cluster.num_nodes, base)
    faults = _faults_config(model.faults, cluster.num_nodes, base)
    workload = _workload_config(model.workload, base)
    run = _run_config(model.run)
    check_failure_load(faults, cluster.num_nodes, run.until_s)

    compared = tuple((label, _policy_config(params, f"policies.{label}", default_name=label))
                     for label, params in model.policies.items())
    if model.policy is not None:
        policy = _policy_config(model.policy, "policy")
    elif compared:
        policy = compared[0][1]
    else:
        raise ScenarioError("policy", "missing section; give [policy] with a name "
                                      "(or [policies.<name>] tables for comparisons)")
    scenario = Scenario(name=model.name, seed=seed if seed is not None else 0, cluster=cluster,
                        network=network, faults=faults, workload=workload, policy=policy, run=run)
    return ScenarioSpec(scenario=scenario, policies=compared, raw=copy.deepcopy(dict(raw)))


def _cluster_config(section: ClusterSection) -> ClusterConfig:
    speed = section.speed
    if isinstance(speed, list):
        speed = {"dist": "list", "values": [float(v) for v in speed]}
    speed = dict(speed)
    if speed:
        import numpy as np

        from sim.faults.stragglers import speed_multipliers

        params = {k: v for k, v in speed.items() if k != "dist"}
        try:
            speed_multipliers(section.nodes, dist=speed.get("dist", "constant"),
                              rng=np.random.default_rng(0), **params)
        except (TypeError, ValueError) as exc:
            raise _as_scenario_error("cluster.speed", exc) from None
    _check_device(section.device)
    return ClusterConfig(num_nodes=section.nodes, device=section.device, speed=speed,
                         compute_slots=section.compute_slots, memory_bytes=section.memory)


def _check_device(name: str) -> None:
    try:
        from workloads.devices import DEVICES
    except ImportError:  # the workloads package is optional for parsing
        return
    if name not in DEVICES and name.lower() not in DEVICES:
        raise ScenarioError("cluster.device", f"unknown device {name!r}; allowed: "
                                              f"{', '.join(sorted(DEVICES))}")


def _is_path_like(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (
        ".csv", ".txt", ".edgelist", ".graphml", ".json", ".gml")


def _network_config(section: NetworkSection, num_nodes: int, base: Path) -> NetworkConfig:
    params = si_params(section.topology_params, "network.topology_params")
    topology = section.topology
    from topologies import PRESETS

    if topology not in PRESETS:
        if not _is_path_like(topology):
            raise ScenarioError("network.topology", f"unknown preset {topology!r}; allowed: "
                                f"{', '.join(sorted(PRESETS))}, or a path to an edge-list file")
        path = Path(topology).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ScenarioError("network.topology", f"topology file {topology!r} does not "
                                                    f"exist (looked for {str(path)!r})")
        topology = str(path.resolve())
        _check_edge_list(topology, params, num_nodes)
    else:
        _check_preset(topology, params, num_nodes)
    if section.transport == "tcp" and section.tcp_efficiency != 1.0:
        raise ScenarioError("network.tcp_efficiency", "only for transport = 'fluid'; the tcp "
                            "transport's efficiency is network.tcp.mss / network.tcp.frame")
    t = section.tcp
    try:
        tcp = TcpConfig(mss_bytes=t.mss, frame_bytes=t.frame,
                        initial_window_segments=t.initial_window, max_window_bytes=t.max_window,
                        slow_start_after_idle=t.slow_start_after_idle, min_rto_s=t.min_rto,
                        parallel_streams=t.parallel_streams, handshake=t.handshake)
    except ValueError as err:  # name the scenario's key, not the config's field
        field_name, _, message = str(err).partition(": ")
        keys = {"mss_bytes": "mss", "initial_window_segments": "initial_window",
                "max_window_bytes": "max_window", "min_rto_s": "min_rto"}
        prefix, _, name = field_name.rpartition(".")
        raise ScenarioError(f"{prefix}.{keys.get(name, name)}", message) from None
    return NetworkConfig(model=section.model, transport=section.transport, tcp=tcp,
                         topology=topology, topology_params=params,
                         uplink_Bps=section.uplink, downlink_Bps=section.downlink,
                         access_latency_s=section.latency, tcp_efficiency=section.tcp_efficiency)


def _check_edge_list(path: str, params: dict[str, Any], num_nodes: int) -> None:
    """Load an edge-list topology once: garbage, empty, disconnected or negative edges fail here.

    The file must also place exactly ``cluster.nodes`` nodes (one per site, or
    ``topology_params.node_sites``), or the world would silently simulate another cluster.
    """
    import inspect

    from topologies import from_edgelist

    accepted = [p for p in inspect.signature(from_edgelist).parameters if p != "path"]
    for key in params:
        if key not in accepted:
            raise ScenarioError(f"network.topology_params.{key}", "not a parameter of an "
                                f"edge-list topology; allowed: {', '.join(accepted)}"
                                f"{did_you_mean(key, accepted)}")
    try:
        topology = from_edgelist(path, **params)
    except (TypeError, ValueError, OSError, UnicodeDecodeError) as exc:
        message = " ".join(str(exc).split())
        raise ScenarioError("network.topology", message) from None
    if topology.num_nodes() != num_nodes:
        raise ScenarioError("network.topology", f"{Path(path).name} places "
                            f"{topology.num_nodes()} nodes (one per site unless "
                            f"topology_params.node_sites says otherwise) but cluster.nodes = "
                            f"{num_nodes}; make them agree")


def _check_preset(name: str, params: dict[str, Any], num_nodes: int) -> None:
    """Build the preset once so that bad parameters fail here, naming the field."""
    import inspect

    from topologies import PRESETS, get_topology

    accepted = inspect.signature(PRESETS[name]).parameters
    _check_param_units(params, accepted, "network.topology_params")
    kwargs = dict(params)
    if "num_nodes" in accepted and "num_nodes" not in kwargs:
        kwargs["num_nodes"] = num_nodes
    if "seed" in accepted and "seed" not in kwargs:
        kwargs["seed"] = 0  # only checking here; the world passes its own seed
    try:
        get_topology(name, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if message.startswith("topology"):
            message = message.split(":", 1)[-1].strip() if message.startswith("topology:") \
                else message
        raise ScenarioError("network.topology_params", message) from None


def _resolve_path(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make a trace model's relative ``path`` relative to the scenario file's folder."""
    path = spec.get("path")
    if isinstance(path, str) and not Path(path).expanduser().is_absolute():
        spec["path"] = str((base / path).resolve())
    return spec


# Dimensioned parameters of the fault models (sim.faults): a bare number for the unsuffixed key
# (``downtime = 600``) is refused with an example unit.
_FAULT_SI_KEYS = ("rate_per_s", "downtime_s", "notice_s", "start_s", "duration_s",
                  "iteration_s", "rejoin_delay_s", "nominal_s")


def _faults_config(section: FaultsSection, num_nodes: int, base: Path) -> FaultsConfig:
    stragglers = _resolve_path(si_params(section.stragglers, "faults.stragglers"), base)
    failures_raw = section.failures if isinstance(section.failures, list) else (
        [section.failures] if section.failures else [])
    failures = [_resolve_path(si_params(spec, f"faults.failures[{i}]"), base)
                for i, spec in enumerate(failures_raw)]
    _check_param_units(stragglers, _FAULT_SI_KEYS, "faults.stragglers")
    for i, spec in enumerate(failures):
        _check_param_units(spec, _FAULT_SI_KEYS, f"faults.failures[{i}]")
    if stragglers:
        import numpy as np

        from sim.faults.stragglers import make_straggler_model

        try:
            make_straggler_model(stragglers, num_nodes=num_nodes, rng=np.random.default_rng(0))
        except (TypeError, ValueError, OSError) as exc:
            raise _as_scenario_error("faults.stragglers", exc) from None
    _check_failures(failures, num_nodes)
    return FaultsConfig(stragglers=stragglers, failures=failures)


WORLD_BYTES_PER_NODE = 4096
"""Memory one simulated node's share of the world takes (node, access links, recorder rows,
topology entry), measured with tracemalloc on ``World.build`` of 1,000 and 4,000 uniform nodes
(4.5 KiB and 3.9 KiB per node). Learners and policy state come on top."""

MAX_FAILURE_EVENTS = 1_000_000
"""Most failure events a schedule may be expected to draw: every event is a few SimPy events and
a recorder row, so more than this cannot run in reasonable time or memory."""


def machine_memory_bytes() -> float:
    """Physical memory of this machine, bytes (``inf`` where the OS does not say)."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_memory_estimate(num_nodes: int) -> None:
    """Refuse a cluster whose world alone could not fit in this machine's memory.

    Checked before anything is built, so a billion nodes is an error in microseconds rather than
    a machine that swaps for an hour.
    """
    need = num_nodes * WORLD_BYTES_PER_NODE
    have = machine_memory_bytes()
    if need > have:
        raise ScenarioError("cluster.nodes", f"{num_nodes} nodes need at least "
                                             f"{need / 2**30:.3g} GiB of memory for the "
                                             f"simulated world ({WORLD_BYTES_PER_NODE} B per "
                                             f"node); this machine has "
                                             f"{have / 2**30:.3g} GiB")


def check_failure_load(faults: FaultsConfig, num_nodes: int, until_s: float | None) -> None:
    """Refuse failure models that would draw more than :data:`MAX_FAILURE_EVENTS` events.

    Schedules are drawn before the run, over ``run.until`` (or the world's default failure
    horizon), so a rate of 1e9/h is refused here instead of spinning in the draw. The estimate is
    the count with no downtime, ``rate x horizon x nodes`` (an upper bound on the expected count);
    group failures are bounded by the iterations they draw, ``horizon / iteration``.
    """
    from sim.world import DEFAULT_FAILURE_HORIZON_S

    horizon_s = until_s if until_s is not None else DEFAULT_FAILURE_HORIZON_S
    when = "run.until" if until_s is not None else "the default failure horizon of 24h"
    for i, spec in enumerate(faults.failures):
        field = f"faults.failures[{i}]"
        rate = spec.get("rate_per_s")
        if isinstance(rate, (int, float)) and rate > 0:
            expected = rate * horizon_s * num_nodes
            if expected > MAX_FAILURE_EVENTS:
                raise ScenarioError(f"{field}.rate", f"{rate * 3600:.3g}/h on {num_nodes} nodes "
                                    f"over {when} draws about {expected:.3g} failures; at most "
                                    f"{MAX_FAILURE_EVENTS:.0e} can be simulated (lower the rate "
                                    f"or run.until)")
        iteration = spec.get("iteration_s")
        if isinstance(iteration, (int, float)) and iteration > 0:
            draws = horizon_s / iteration
            if draws > MAX_FAILURE_EVENTS:
                raise ScenarioError(f"{field}.iteration", f"{iteration:.3g}s iterations over "
                                    f"{when} are {draws:.3g} draws; at most "
                                    f"{MAX_FAILURE_EVENTS:.0e} (a longer iteration or a shorter "
                                    f"run.until)")


def _check_failures(failures: list[dict[str, Any]], num_nodes: int) -> None:
    try:
        from sim.faults import failures as failure_models
    except ImportError:  # not written yet: the engine checks them when it builds the world
        return
    make = getattr(failure_models, "make_failure_model", None)
    if make is None:
        return
    for i, spec in enumerate(failures):
        try:
            make(spec)
        except (TypeError, ValueError, OSError) as exc:
            raise _as_scenario_error(f"faults.failures[{i}]", exc) from None


_SECTION_NAMES = ("cluster", "network", "faults", "workload", "policy", "policies", "run")


def _as_scenario_error(field: str, exc: Exception) -> ScenarioError:
    """Keep a message that already names its field (``"cluster.speed.sigma must be..."``)."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return ScenarioError(field, f"file {str(exc.filename)!r} does not exist")
    if isinstance(exc, OSError):
        return ScenarioError(field, f"cannot read {str(exc.filename)!r}: {exc.strerror}")
    message = " ".join(str(exc).split())
    match = re.match(rf"^((?:{'|'.join(_SECTION_NAMES)})(?:[.\[][\w.\[\]-]*)?)", message)
    if match:
        named = match.group(1)
        rest = message[len(named):]
        got = re.match(r"^=(.*?): (.*)$", rest)  # "workload.batch=0: must be >= 1"
        if got:
            return ScenarioError(named, f"{got.group(2)} (got {got.group(1)})")
        return ScenarioError(named, rest.lstrip(" :"))
    return ScenarioError(field, message)


def _check_param_units(params: Mapping[str, Any], accepted: Iterable[str], where: str) -> None:
    """Refuse ``latency = 5`` when the receiver takes ``latency_s``: say which unit to write."""
    accepted = set(accepted)
    examples = {"_s": "50ms", "_bytes": "2GiB", "_Bps": "100Mbit/s", "_per_s": "0.1/h",
                "_flops_per_s": "989TFLOP/s"}
    for key, value in params.items():
        if key in accepted or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for suffix, example in examples.items():
            if key + suffix in accepted:
                raise ScenarioError(f"{where}.{key}", f"{value!r} has no unit; write it with "
                                                      f"one, e.g. {key} = \"{example}\"")


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
}


def _check_param_types(config_cls: type, params: Mapping[str, Any], where: str) -> None:
    """Check values against simple annotations (``int``, ``float | None``, ...) of a Config."""
    for f in dataclasses.fields(config_cls):
        if f.name not in params:
            continue
        value = params[f.name]
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        options = [a.strip() for a in annotation.split("|")]
        if not all(a in _SIMPLE_TYPES or a == "None" for a in options):
            continue  # a richer type: the Config checks it itself
        if value is None and "None" in options:
            continue
        allowed = tuple(t for a in options if a in _SIMPLE_TYPES for t in _SIMPLE_TYPES[a])
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            raise ScenarioError(f"{where}.{f.name}", f"{value!r} is not of type {annotation}")


def _workload_config(section: Mapping[str, Any], base: Path) -> Any:
    """Build ``workloads.WorkloadConfig`` from the ``[workload]`` table (units converted)."""
    from workloads.config import WorkloadConfig

    params = si_params(section, "workload")
    fields = [f.name for f in dataclasses.fields(WorkloadConfig)]
    for key in params:
        if key not in fields:
            raise ScenarioError(f"workload.{key}", f"unknown key; allowed: {', '.join(fields)}"
                                                   f"{did_you_mean(key, fields)}")
    _check_param_types(WorkloadConfig, params, "workload")
    _check_workload_names(params)
    data = params.get("data")
    if isinstance(data, str) and data.startswith("text:"):
        path = Path(data[len("text:"):]).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ScenarioError("workload.data", f"text file {data[5:]!r} does not exist "
                                                 f"(looked for {str(path)!r})")
        params["data"] = f"text:{path.resolve()}"
    try:
        return WorkloadConfig(**params)
    except (TypeError, ValueError) as exc:
        raise _as_scenario_error("workload", exc) from None


def _check_workload_names(params: Mapping[str, Any]) -> None:
    from workloads.config import LEARNERS
    from workloads.timing import preset_names

    presets = preset_names()
    learner = params.get("learner")
    if learner is not None and learner not in LEARNERS and learner not in presets:
        raise ScenarioError("workload.learner", f"unknown learner {learner!r}; allowed: "
                                                f"{', '.join([*LEARNERS, *presets])}")
    timing = params.get("timing")
    if timing is not None and timing != "same" and timing not in presets:
        raise ScenarioError("workload.timing", f"unknown timing model {timing!r}; allowed: "
                                               f"same, {', '.join(presets)}")


def _run_config(section: RunSection) -> RunConfig:
    if section.until is None and section.steps is None and not (
            section.target_loss is not None and section.stop_at_target):
        raise ScenarioError("run", "no stop condition; set run.until (e.g. \"2h\"), run.steps, "
                                   "or run.target_loss with run.stop_at_target = true")
    if section.until is None and section.steps is None:
        raise ScenarioError("run", "a run that stops only at run.target_loss may never reach "
                                   "it; also give an upper bound: run.until (e.g. \"2h\") or "
                                   "run.steps")
    if section.until is not None and not (math.isfinite(section.until) and section.until > 0):
        raise ScenarioError("run.until", f"must be a finite duration > 0, got {section.until}s")
    if section.stop_at_target and section.target_loss is None:
        raise ScenarioError("run.stop_at_target", "is true but run.target_loss is not set")
    if section.eval_every is not None and section.eval_every <= 0:
        raise ScenarioError("run.eval_every", f"must be > 0, got {section.eval_every}s")
    if section.target_loss is not None and section.eval_every is None:
        raise ScenarioError("run.eval_every", "is needed with run.target_loss: the target is "
                                              "checked at each evaluation (e.g. \"1min\")")
    return RunConfig(until_s=section.until, max_steps=section.steps,
                     target_loss=section.target_loss, stop_at_target=section.stop_at_target,
                     eval_every_s=section.eval_every, eval_batches=section.eval_batches,
                     timing_only=section.timing_only)


def _policy_config(table: Mapping[str, Any], where: str, *,
                   default_name: str | None = None) -> PolicyConfig:
    """Check the policy name and its parameters against the policy's own ``Config``."""
    from sim.policy import get_policy, make_config

    name = table.get("name", default_name)
    if not isinstance(name, str):
        raise ScenarioError(f"{where}.name", f"must be a policy name, got {name!r}")
    params = si_params({k: v for k, v in table.items() if k != "name"}, where)
    try:
        cls = get_policy(name)
    except ValueError as exc:
        message = str(exc).split(":", 1)[-1].strip()
        raise ScenarioError(f"{where}.name", message) from None
    field_names = [f.name for f in dataclasses.fields(cls.Config)]
    _check_param_units(params, field_names, where)
    _check_param_types(cls.Config, params, where)
    try:
        make_config(cls.Config, params, where=where)
    except ValueError as exc:
        raise _as_scenario_error(where, exc) from None
    return PolicyConfig(name=name, params=params)


# ---------------------------------------------------------------- public entry points


def load(path: str | Path, overrides: Sequence[str] = ()) -> ScenarioSpec:
    """Read, override and validate a scenario file."""
    raw = apply_overrides(read_scenario_file(path), overrides)
    return parse_spec(raw, base_dir=Path(path).resolve().parent)


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Load the validated :class:`~sim.config.Scenario` of a ``.toml`` / ``.yaml`` file."""
    return load(path, overrides).scenario


def scenario_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = (), *,
                       base_dir: str | Path | None = None) -> Scenario:
    """Validate a table shaped like a scenario file into a :class:`~sim.config.Scenario`."""
    return parse_spec(apply_overrides(data, overrides), base_dir=base_dir).scenario


def default_scenario_path() -> Path:
    """Return the path of the built-in default comparison (``sim/defaults/default.toml``)."""
    return Path(str(resources.files("sim") / "defaults" / "default.toml"))


def resolve_policies(spec: ScenarioSpec, names: Sequence[str] | None = None, *,
                     flag: str = "--policies") -> list[tuple[str, PolicyConfig]]:
    """Return the ``(label, PolicyConfig)`` list to compare.

    ``names`` are labels of the file's ``[policies.<label>]`` tables or registered policy names
    (then run with the parameters of ``[policy]`` when it names the same policy, else their
    defaults). ``None`` means the file's ``[policies]`` tables, or just its ``[policy]``.
    ``flag`` is the command-line option an error names (``--policy`` for ``dtsim run``).
    """
    known = dict(spec.policies)
    if names is None:
        return list(spec.policies) or [(spec.scenario.policy.name, spec.scenario.policy)]
    if not names:
        raise ScenarioError(flag, "needs at least one policy name")
    chosen: list[tuple[str, PolicyConfig]] = []
    for name in names:
        if name in known:
            chosen.append((name, known[name]))
        elif name == spec.scenario.policy.name:
            chosen.append((name, spec.scenario.policy))
        else:
            from sim.policy import get_policy, policy_names

            try:
                get_policy(name)
            except ValueError:
                allowed = sorted(set(policy_names()) | set(known))
                raise ScenarioError(flag, f"unknown policy {name!r}; allowed: "
                                          f"{', '.join(allowed)}{did_you_mean(name, allowed)}"
                                    ) from None
            chosen.append((name, PolicyConfig(name=name, params={})))
    return chosen


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

    def spec(self) -> ScenarioSpec:
        """Validate and return the full spec."""
        return parse_spec(self._data)

    def build(self) -> Scenario:
        """Validate and return the :class:`~sim.config.Scenario`."""
        return self.spec().scenario
