"""Frozen configuration dataclasses: what a scenario *is*, in SI units.

The scenario file layer (:mod:`sim.scenario`) validates user input with pydantic and turns it
into these plain dataclasses. Everything below this layer reads only these objects, so the engine
never sees a unit string or an unvalidated value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.components import component
from sim.components import names as registered
from sim.errors import ScenarioError, did_you_mean


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
        ``"tcp"`` (the default: connections with slow start, window cap and headers,
        :mod:`sim.network.tcp`) or ``"fluid"`` (bytes move at the model's rate from the first
        byte; for reproducing simulators that model the network that way).
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
    transport: str = "tcp"
    tcp: Any = None
    topology: str = "uniform"
    topology_params: dict[str, Any] = field(default_factory=dict)
    uplink_Bps: float | None = None
    downlink_Bps: float | None = None
    access_latency_s: float = 0.0
    tcp_efficiency: float = 1.0


@dataclass(frozen=True, kw_only=True)
class FaultsConfig:
    """Stragglers and failures.

    Each model is either the spec table of a built-in model (a dict in SI units with its
    ``model`` name, see :mod:`sim.faults`) or the typed Config of a registered fault model
    (``sim.components`` kinds ``stragglers`` / ``failures``), whose ``build`` makes the model:
    ``build(num_nodes=, rng=)`` a ``StragglerModel``, ``build()`` a ``FailureModel``.
    """

    stragglers: Any = field(default_factory=dict)
    failures: list[Any] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Which training method runs, and its parameters.

    name:
        The registered policy name (``sim.components.names("policy")``).
    params:
        Its parameters in SI units, as the scenario gives them (unset ones take the defaults).
    config:
        The policy's typed ``Config`` built from ``params`` when the scenario was loaded
        (``None``: built when the policy is made). Not part of equality: ``params`` says it all.
    configured:
        ``False`` when the scenario does not configure this policy and it runs with its
        defaults (reported in the run's summary as ``policy_defaults``).
    """

    name: str = "ddp"
    params: dict[str, Any] = field(default_factory=dict)
    config: Any = field(default=None, compare=False, repr=False)
    configured: bool = field(default=True, compare=False)


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
    record:
        What the recorder keeps: ``"full"`` (every interval and metric row: timelines, Chrome
        traces with every task and flow) or ``"aggregate"`` (per-node totals and per-step sums
        of per-node metrics: memory grows with the nodes, not with the run's length; see
        ``sim.recorder.AggregateRecorder``).
    """

    until_s: float | None = None
    max_steps: int | None = None
    target_loss: float | None = None
    stop_at_target: bool = False
    eval_every_s: float | None = None
    eval_batches: int = 4
    timing_only: bool = False
    record: str = "full"

    def __post_init__(self) -> None:
        if self.record not in ("full", "aggregate"):
            raise ValueError(f"run.record: must be 'full' or 'aggregate', got {self.record!r}")
        if self.eval_every_s is not None and not self.eval_every_s > 0:
            raise ValueError(f"run.eval_every: must be > 0 s, got {self.eval_every_s}")
        if self.target_loss is not None and self.eval_every_s is None:
            raise ValueError("run.eval_every: is needed with run.target_loss (the target is "
                             "checked at each evaluation)")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One complete, validated scenario. ``seed`` roots every random stream of the run.

    There is one scenario type, whether it comes from a file (:func:`sim.scenario.load`), a
    table (:func:`sim.scenario.scenario_from_dict`) or the Python builder: it keeps everything
    the source says, including the ``[policies.<label>]`` tables (``policies``), so that
    ``run(scenario, "diloco")`` runs DiLoCo with the file's parameters, exactly as
    ``dtsim run FILE --policy diloco`` does.
    """

    name: str = "scenario"
    seed: int = 0
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    workload: Any = None
    """A ``workloads.WorkloadConfig`` (untyped here so that importing sim does not import torch)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    run: RunConfig = field(default_factory=RunConfig)
    policies: tuple[tuple[str, PolicyConfig], ...] = ()
    """``(label, PolicyConfig)`` of each ``[policies.<label>]`` table, in file order: what a
    comparison runs when no policies are named."""
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The file-shaped table it was validated from, after overrides (sweeps override it again)."""
    base_dir: str | None = field(default=None, compare=False, repr=False)
    """Folder that relative paths of ``source`` resolve in (the scenario file's folder)."""

    @property
    def scenario(self) -> Scenario:
        """The scenario itself (code written for the former ``ScenarioSpec`` reads it)."""
        return self

    @property
    def raw(self) -> dict[str, Any]:
        """The source table (the former ``ScenarioSpec.raw``)."""
        return self.source

    def policy_config(self, name: str | None = None) -> tuple[str, PolicyConfig]:
        """``(label, PolicyConfig)`` for a ``[policies]`` label or a registered policy name.

        The one rule every entry point follows (``run``, ``compare``, ``sweep``, ``sim.testing``
        and the CLI): ``None`` is the scenario's own policy; a label of a ``[policies.<label>]``
        table runs with that table's parameters; the name of the scenario's ``[policy]`` with its
        parameters; any other registered policy with its defaults, marked ``configured=False``
        (a policy configured only under another label, e.g. ``[policies.streaming]`` with
        ``name = "streaming_diloco"``, is run with that table's parameters by its label).
        """
        if name is None:
            return self.policy.name, self.policy
        labels = dict(self.policies)
        if name in labels:
            return name, labels[name]
        if name == self.policy.name:
            return name, self.policy

        component("policy", name, field="policy.name")
        return name, PolicyConfig(name=name, params={}, configured=False)

    def policy_configs(self, names: Sequence[str] | None = None, *,
                       flag: str = "--policies") -> list[tuple[str, PolicyConfig]]:
        """``(label, PolicyConfig)`` for each of ``names`` (see :meth:`policy_config`).

        ``None`` means the ``[policies]`` tables, or the scenario's own policy when it has none.
        An unknown name is a ScenarioError on ``flag`` that lists the labels and names.
        """
        if names is None:
            return list(self.policies) or [(self.policy.name, self.policy)]
        if not names:
            raise ScenarioError(flag, "needs at least one policy name")
        chosen: list[tuple[str, PolicyConfig]] = []
        for name in names:
            try:
                chosen.append(self.policy_config(name))
            except ScenarioError:
                allowed = sorted(set(registered("policy")) | {label for label, _ in self.policies})
                raise ScenarioError(flag, f"unknown policy {name!r}; allowed: "
                                          f"{', '.join(allowed)}{did_you_mean(name, allowed)}"
                                    ) from None
        return chosen
