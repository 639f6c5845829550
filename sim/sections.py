"""Each validated section of a scenario file -> its typed config (SI units).

The file's shape is checked by :mod:`sim.fileformat`; here every value is checked against what
it names: the device profile, the topology preset and its parameters, the fault models, the
workload's parts and the policy's own ``Config`` (through :func:`sim.components.config_from_table`).
Every error is a :class:`~sim.errors.ScenarioError` naming the field.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.components import component, config_from_table, find, make_config, names
from sim.config import (
    ClusterConfig,
    FaultsConfig,
    NetworkConfig,
    PolicyConfig,
    RunConfig,
)
from sim.errors import FieldError, ScenarioError, refuse_unknown_keys
from sim.faults.stragglers import speed_multipliers
from sim.fileformat import ClusterSection, FaultsSection, NetworkSection, RunSection
from sim.network.tcp import TcpConfig
from sim.tables import check_param_types as _check_param_types
from sim.tables import check_param_units as _check_param_units
from sim.tables import si_params
from sim.world import DEFAULT_FAILURE_HORIZON_S
from topologies import from_edgelist, get_topology

if TYPE_CHECKING:
    from workloads.config import WorkloadConfig

__all__ = ["cluster_config", "compared_policies", "faults_config", "network_config",
           "policy_config", "run_config", "workload_config"]


def cluster_config(section: ClusterSection) -> ClusterConfig:
    """``[cluster]`` -> :class:`ClusterConfig` (device profile and speed model checked)."""
    speed = section.speed
    if isinstance(speed, list):
        speed = {"dist": "list", "values": [float(v) for v in speed]}
    speed = dict(speed)
    if speed:
        params = {k: v for k, v in speed.items() if k != "dist"}
        try:
            speed_multipliers(section.nodes, dist=speed.get("dist", "constant"),
                              rng=np.random.default_rng(0), **params)
        except ScenarioError:
            raise  # names its key (cluster.speed.sigma, ...)
        except (TypeError, ValueError) as exc:  # a value that is not a number, e.g. sigma = "x"
            raise ScenarioError("cluster.speed", str(exc)) from None
    _check_device(section.device)
    return ClusterConfig(num_nodes=section.nodes, device=section.device, speed=speed,
                         compute_slots=section.compute_slots, memory_bytes=section.memory)


def _check_device(name: str) -> None:
    if find("device", name) is None and find("device", name.lower()) is None:
        raise ScenarioError("cluster.device", f"unknown device {name!r}; allowed: "
                                              f"{', '.join(names('device'))}")


def _is_path_like(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (
        ".csv", ".txt", ".edgelist", ".graphml", ".json", ".gml")


def network_config(section: NetworkSection, num_nodes: int, base: Path) -> NetworkConfig:
    """``[network]`` -> :class:`NetworkConfig` (a preset built once, or a graph file found)."""
    params = si_params(section.topology_params, "network.topology_params")
    topology = section.topology
    if find("topology", topology) is None:
        if not _is_path_like(topology):
            raise ScenarioError("network.topology", f"unknown preset {topology!r}; allowed: "
                                f"{', '.join(names('topology'))}, or a path to an edge-list file")
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
    queue, queue_unit = t.bottleneck_queue  # a size, or a time at each link's rate
    try:
        tcp = TcpConfig(mss_bytes=t.mss, frame_bytes=t.frame,
                        initial_window_segments=t.initial_window, max_window_bytes=t.max_window,
                        slow_start_after_idle=t.slow_start_after_idle, min_rto_s=t.min_rto,
                        parallel_streams=t.parallel_streams, handshake=t.handshake,
                        hystart_short_rtt_exit=t.hystart_short_rtt_exit,
                        ack_frame_bytes=t.ack_frame, segments_per_ack=t.segments_per_ack,
                        hystart_delay_exit=t.hystart_delay_exit,
                        hystart_delay_rtt_fraction=t.hystart_delay_rtt_fraction,
                        hystart_delay_min_s=t.hystart_delay_min,
                        hystart_delay_max_s=t.hystart_delay_max,
                        bottleneck_queue_bytes=queue if queue_unit == "_bytes" else 0.0,
                        bottleneck_queue_s=queue if queue_unit == "_s" else 0.0,
                        rounds=t.rounds)
    except FieldError as err:  # name the scenario's keys, not the config's fields
        raise ScenarioError(f"network.tcp.{_TCP_KEYS.get(err.field, err.field)}",
                            err.message_naming(_TCP_KEYS)) from None
    return NetworkConfig(model=section.model, transport=section.transport, tcp=tcp,
                         topology=topology, topology_params=params,
                         uplink_Bps=section.uplink, downlink_Bps=section.downlink,
                         access_latency_s=section.latency, tcp_efficiency=section.tcp_efficiency)


_TCP_KEYS = {"mss_bytes": "mss", "initial_window_segments": "initial_window",
             "max_window_bytes": "max_window", "min_rto_s": "min_rto", "frame_bytes": "frame",
             "ack_frame_bytes": "ack_frame", "hystart_delay_min_s": "hystart_delay_min",
             "hystart_delay_max_s": "hystart_delay_max",
             "bottleneck_queue_bytes": "bottleneck_queue", "bottleneck_queue_s": "bottleneck_queue"}
"""``[network.tcp]`` keys whose :class:`TcpConfig` field has another name."""


def _check_edge_list(path: str, params: dict[str, Any], num_nodes: int) -> None:
    """Load an edge-list topology once: garbage, empty, disconnected or negative edges fail here.

    The file must also place exactly ``cluster.nodes`` nodes (one per site, or
    ``topology_params.node_sites``), or the world would silently simulate another cluster.
    """
    accepted = [p for p in inspect.signature(from_edgelist).parameters if p != "path"]
    refuse_unknown_keys(params, accepted, where="network.topology_params",
                        what="not a parameter of an edge-list topology")
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
    accepted = inspect.signature(component("topology", name).build).parameters
    _check_param_units(params, accepted, "network.topology_params")
    kwargs = dict(params)
    if "num_nodes" in accepted and "num_nodes" not in kwargs:
        kwargs["num_nodes"] = num_nodes
    if "seed" in accepted and "seed" not in kwargs:
        kwargs["seed"] = 0  # only checking here; the world passes its own seed
    try:
        get_topology(name, **kwargs)  # the builder, with its parameters named on a mismatch
    except FieldError as exc:  # a parameter of the preset: named from the exception
        if exc.field == "num_nodes" and "num_nodes" not in params:
            raise ScenarioError("cluster.nodes", f"{exc.message} for topology {name!r}") from None
        where = (f"network.topology_params.{exc.field}" if exc.field in accepted
                 else "network.topology_params")
        message = exc.message if exc.field in accepted else str(exc)
        raise ScenarioError(where, message) from None
    except (TypeError, ValueError) as exc:  # any other refusal: the table, message whole
        raise ScenarioError("network.topology_params", str(exc)) from None


def _resolve_path(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make a trace model's relative ``path`` relative to the scenario file's folder."""
    path = spec.get("path")
    if isinstance(path, str) and not Path(path).expanduser().is_absolute():
        spec["path"] = str((base / path).resolve())
    return spec


def faults_config(section: FaultsSection, num_nodes: int, base: Path) -> FaultsConfig:
    """``[faults]`` -> :class:`FaultsConfig` of typed fault-model Configs.

    Each table names a registered model (``model = "poisson"``); its parameters become that
    model's Config through :func:`sim.components.config_from_table` (units, unknown keys, the
    Config's own checks, each refusal naming its field). A trace's relative ``path`` resolves
    in the scenario file's folder.
    """
    failures_raw = section.failures if isinstance(section.failures, list) else (
        [section.failures] if section.failures else [])
    stragglers = (_fault("stragglers", section.stragglers, "faults.stragglers", base)
                  if section.stragglers else {})
    failures = [_fault("failures", raw, f"faults.failures[{i}]", base)
                for i, raw in enumerate(failures_raw)]
    return FaultsConfig(stragglers=stragglers, failures=failures)


def _fault(kind: str, table: Mapping[str, Any], where: str, base: Path) -> Any:
    """One fault table -> the typed Config of the model it names."""
    entry = component(kind, table.get("model"), field=f"{where}.model")
    params = _resolve_path({k: v for k, v in table.items() if k != "model"}, base)
    return config_from_table(kind, entry.name, params, where=where)


def workload_config(section: Mapping[str, Any], base: Path) -> WorkloadConfig:
    """Build ``workloads.WorkloadConfig`` from the ``[workload]`` table (units converted).

    The Config's own refusals are :class:`~dtsim_errors.FieldError` (``batch``), named here as
    ``workload.batch`` by :func:`sim.components.make_config`, as for every other table.
    """
    from workloads.config import WorkloadConfig  # deferred: the workloads package loads torch

    params = si_params(section, "workload")
    fields = [f.name for f in dataclasses.fields(WorkloadConfig)]
    refuse_unknown_keys(params, fields, where="workload")
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
    return make_config(WorkloadConfig, params, where="workload")


def _check_workload_names(params: Mapping[str, Any]) -> None:
    presets = [n for n in names("timing") if n != "same"]
    learner = params.get("learner")
    if learner is not None and find("learner", learner) is None and learner not in presets:
        raise ScenarioError("workload.learner", f"unknown learner {learner!r}; allowed: "
                                                f"{', '.join([*names('learner'), *presets])}")
    timing = params.get("timing")
    if timing is not None and find("timing", timing) is None:
        raise ScenarioError("workload.timing", f"unknown timing model {timing!r}; allowed: "
                                               f"same, {', '.join(presets)}")


def run_config(section: RunSection) -> RunConfig:
    """``[run]`` -> :class:`RunConfig`; a run needs a stop condition."""
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
                     timing_only=section.timing_only, record=section.record)


def policy_config(table: Mapping[str, Any], where: str, *,
                   default_name: str | None = None) -> PolicyConfig:
    """Check the policy name and its parameters against the policy's own ``Config``."""
    name = table.get("name", default_name)
    if not isinstance(name, str):
        raise ScenarioError(f"{where}.name", f"must be a policy name, got {name!r}")
    given = {k: v for k, v in table.items() if k != "name"}
    config = config_from_table("policy", name, given, where=where)
    return PolicyConfig(name=name, params=si_params(given, where), config=config)


def compared_policies(table: Mapping[str, Any]) -> tuple[tuple[str, PolicyConfig], ...]:
    """``[policies]`` -> ``(label, PolicyConfig)`` of each ``[policies.<label>]`` table.

    A plain key of ``[policies]`` itself (``num_stages = 4``) is a parameter shared by every
    label, so a comparison states a common setting once; a label's own table overrides it. A
    shared key that some label's policy does not take is refused, naming both.
    """
    shared = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    out = []
    for label, params in table.items():
        if not isinstance(params, Mapping):
            continue
        name = params.get("name", label)
        entry = find("policy", name)
        if entry is not None and entry.config is not None:
            fields = {f.name for f in dataclasses.fields(entry.config)}
            given = {si: raw for raw, si in zip(shared, si_params(shared, "policies"))}
            for si, key in given.items():
                if si not in fields and key not in params:
                    raise ScenarioError(f"policies.{key}", f"a parameter shared by every "
                                        f"[policies.<label>] table, but policy {name!r} of "
                                        f"[policies.{label}] does not take it")
        merged = {**shared, **params}
        out.append((label, policy_config(merged, f"policies.{label}", default_name=label)))
    if shared and not out:
        key = next(iter(shared))
        raise ScenarioError(f"policies.{key}", "must be a [policies.<label>] table (plain keys "
                                               "are parameters shared by those tables)")
    return tuple(out)


WORLD_BYTES_PER_NODE = 4096
"""Memory one simulated node's share of the world takes (node, access links, recorder rows,
topology entry), measured with tracemalloc on ``World.build`` of 1,000 and 4,000 uniform nodes
(4.5 KiB and 3.9 KiB per node). Learners and policy state come on top."""

MAX_FAILURE_EVENTS = 1_000_000
"""Most failure events a schedule may be expected to draw: every event is a few SimPy events and
a recorder row, so more than this cannot run in reasonable time or memory."""


def machine_memory_bytes() -> float:
    """Physical memory of this machine, bytes (``inf`` where the OS does not say)."""
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
    group and stage failures are bounded by the periods they draw, ``horizon / period``.
    """
    horizon_s = until_s if until_s is not None else DEFAULT_FAILURE_HORIZON_S
    when = "run.until" if until_s is not None else "the default failure horizon of 24h"
    for i, spec in enumerate(faults.failures):
        field = f"faults.failures[{i}]"
        period = getattr(spec, "failure_period_s", None)  # the stage model's draw period
        if isinstance(period, (int, float)) and horizon_s / period > MAX_FAILURE_EVENTS:
            raise ScenarioError(f"{field}.failure_period_s",
                                f"{period:.3g}s periods over {when} are "
                                f"{horizon_s / period:.3g} draws per stage; at most "
                                f"{MAX_FAILURE_EVENTS:.0e} (a longer period or a shorter "
                                f"run.until)")
        rate = getattr(spec, "rate_per_s", None)
        if isinstance(rate, (int, float)) and rate > 0:
            expected = rate * horizon_s * num_nodes
            if expected > MAX_FAILURE_EVENTS:
                raise ScenarioError(f"{field}.rate", f"{rate * 3600:.3g}/h on {num_nodes} nodes "
                                    f"over {when} draws about {expected:.3g} failures; at most "
                                    f"{MAX_FAILURE_EVENTS:.0e} can be simulated (lower the rate "
                                    f"or run.until)")
        iteration = getattr(spec, "iteration_s", None)
        if isinstance(iteration, (int, float)) and iteration > 0:
            draws = horizon_s / iteration
            if draws > MAX_FAILURE_EVENTS:
                raise ScenarioError(f"{field}.iteration", f"{iteration:.3g}s iterations over "
                                    f"{when} are {draws:.3g} draws; at most "
                                    f"{MAX_FAILURE_EVENTS:.0e} (a longer iteration or a shorter "
                                    f"run.until)")
