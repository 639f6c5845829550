"""The scenario file format: its sections as pydantic models, reading, and ``--set`` overrides.

A scenario file has the sections ``cluster``, ``network``, ``faults`` (optional), ``workload``,
``policy`` / ``policies`` and ``run`` (docs/scenario-format.md lists every key). This module
checks the file's *shape* (known keys, simple types, units of the fixed fields); turning each
section into its typed config is :mod:`sim.sections`, and :mod:`sim.scenario` puts the two
together. Any key can be overridden before validation with ``KEY=VALUE`` strings (``--set`` on
the command line): the value is read as a TOML value when it is one (``16``, ``2.5``, ``true``,
``"x"``, ``[1, 2]``) and as a plain string otherwise (``100Mbit/s``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from sim import units
from sim.errors import ScenarioError, did_you_mean

__all__ = ["ClusterSection", "FaultsSection", "NetworkSection", "RunSection", "ScenarioFile",
           "TcpSection",
           "apply_overrides", "first_error_line", "parse_override_value", "read_scenario_file"]

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
# (value, "_bytes") or (value, "_s"): a buffer in bytes or in the time it holds at a link's rate
SizeOrDuration = Annotated[tuple[float, str], BeforeValidator(units.parse_size_or_duration)]

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
    """``[network.tcp]``: the parameters of the ``tcp`` transport (``sim.network.TcpConfig``)."""

    mss: int = Field(default=1448, ge=1)
    frame: int = Field(default=1514, ge=1)
    initial_window: int = Field(default=10, ge=1)
    max_window: Size = 4 * 1024 * 1024
    slow_start_after_idle: bool = True
    min_rto: Duration = 0.2
    parallel_streams: int = Field(default=1, ge=1)
    handshake: bool = False
    hystart_short_rtt_exit: bool = False
    ack_frame: int = Field(default=0, ge=0)  # 66 with segments_per_ack 3.5: ACK bytes on
    segments_per_ack: float = Field(default=3.5, ge=1.0)
    hystart_delay_exit: bool = False
    hystart_delay_rtt_fraction: float = Field(default=0.125, gt=0.0)
    hystart_delay_min: Duration = 0.004
    hystart_delay_max: Duration = 0.016
    # every link's drop-tail buffer: wire bytes, or a time (x each link's rate); 0: none modelled
    bottleneck_queue: SizeOrDuration = (0.0, "_bytes")
    # "burst" (a round's window at the share, then a wait) or "paced" (window / RTT all round);
    # unset: paced, or burst with hystart_delay_exit or a bottleneck_queue (TcpConfig.rounds)
    rounds: Literal["burst", "paced"] | None = None


class NetworkSection(_Section):
    """``[network]``: the network model, the transport, the topology and the access links."""

    model: Literal["ideal", "maxmin"] = "maxmin"
    topology: str = "uniform"
    topology_params: dict[str, Any] = Field(default_factory=dict)
    uplink: Bandwidth = None
    downlink: Bandwidth = None
    latency: Duration = 0.0
    tcp_efficiency: float = Field(default=1.0, gt=0.0, le=1.0)
    transport: Literal["fluid", "tcp"] = "tcp"
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
    record: Literal["full", "aggregate"] = "full"
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
    policies: dict[str, Any] = Field(default_factory=dict)
    """``[policies.<label>]`` tables, and parameters shared by all of them (plain keys)."""
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


def first_error_line(exc: ValidationError) -> ScenarioError:
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
    if kind == "value_error":  # a validator refused: its own message, without pydantic's tag
        return ScenarioError(path, str(err["ctx"]["error"]))
    return ScenarioError(path, f"{err['msg']} (got {value!r})")


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
