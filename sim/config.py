"""Frozen configuration dataclasses: what a scenario *is*, in SI units.

The scenario file layer (:mod:`sim.scenario`) validates user input with pydantic and turns it
into these plain dataclasses. Everything below this layer reads only these objects, so the engine
never sees a unit string or an unvalidated value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """The machines.

    num_nodes:
        Number of simulated nodes (devices).
    device:
        Device profile name (see ``workloads.get_device``), e.g. ``"h100"``.
    speed:
        Persistent heterogeneity: a dict such as ``{"dist": "lognormal", "sigma": 0.3}`` or
        ``{"dist": "list", "values": [1.0, 0.5, ...]}``; empty dict means every node at speed 1.
    compute_slots:
        Tasks a node runs at once (1 = one task at a time, FIFO).
    memory_bytes:
        Memory capacity per node in bytes (``None``: the device profile's).
    """

    num_nodes: int = 8
    device: str = "h100"
    speed: dict[str, Any] = field(default_factory=dict)
    compute_slots: int = 1
    memory_bytes: float | None = None


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The network.

    model:
        ``"ideal"`` (latency + bytes / bottleneck bandwidth, no sharing) or ``"maxmin"``
        (flow-level max-min fair sharing).
    transport:
        ``"fluid"`` (bytes move at the model's rate from the first byte) or ``"tcp"``
        (connections with slow start, window cap and headers: :mod:`sim.network.tcp`).
    tcp:
        Parameters of the ``tcp`` transport (a ``sim.network.tcp.TcpConfig``; ``None``: its
        defaults).
    topology:
        Preset name (``topologies.PRESETS``) or a path to an edge-list / graph file.
    topology_params:
        Keyword arguments for the preset (already in SI units).
    uplink_Bps, downlink_Bps:
        Default access-link bandwidth of every node, bytes/s (``None``: unlimited).
    access_latency_s:
        One-way latency of a node's access link, seconds.
    tcp_efficiency:
        Fraction of nominal link capacity a flow can use (real TCP on shaped links: 0.9-0.97).
    """

    model: str = "maxmin"
    transport: str = "fluid"
    tcp: Any = None
    topology: str = "uniform"
    topology_params: dict[str, Any] = field(default_factory=dict)
    uplink_Bps: float | None = None
    downlink_Bps: float | None = None
    access_latency_s: float = 0.0
    tcp_efficiency: float = 1.0


@dataclass(frozen=True, kw_only=True)
class FaultsConfig:
    """Stragglers and failures, as model specs (dicts in SI units, see :mod:`sim.faults`)."""

    stragglers: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Which training method runs, and its parameters (validated by the policy's own Config)."""

    name: str = "ddp"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """When a run stops and how often it is evaluated.

    until_s:
        Stop at this simulated time, seconds (``None``: no time limit).
    max_steps:
        Stop once the policy reports this many (inner) steps (``None``: no step limit).
    target_loss:
        Evaluation loss that counts as "reached"; the time to reach it is reported.
    stop_at_target:
        Stop the run when the target is reached.
    eval_every_s:
        Simulated seconds between evaluations of the method's model (``None``: policy's own).
    eval_batches:
        Held-out batches per evaluation.
    timing_only:
        Run the policy with learners that do no math (no losses): for large sweeps.
    """

    until_s: float | None = None
    max_steps: int | None = None
    target_loss: float | None = None
    stop_at_target: bool = False
    eval_every_s: float | None = None
    eval_batches: int = 4
    timing_only: bool = False

    def __post_init__(self) -> None:
        if self.eval_every_s is not None and not self.eval_every_s > 0:
            raise ValueError(f"run.eval_every: must be > 0 s, got {self.eval_every_s}")
        if self.target_loss is not None and self.eval_every_s is None:
            raise ValueError("run.eval_every: is needed with run.target_loss (the target is "
                             "checked at each evaluation)")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One complete, validated scenario. ``seed`` roots every random stream of the run."""

    name: str = "scenario"
    seed: int = 0
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    workload: Any = None
    """A ``workloads.WorkloadConfig`` (untyped here so that importing sim does not import torch)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    run: RunConfig = field(default_factory=RunConfig)
