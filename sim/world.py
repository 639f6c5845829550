"""The world: one SimPy environment, its seed tree, nodes, network and recorder.

A :class:`World` is everything a run simulates except the training method. It is built from a
scenario (:meth:`World.build`) or directly in Python for tests and notebooks. All its randomness
comes from the seed tree: the world's half (``world_rng``) drives speeds, stragglers and failures,
the policy's half (``policy_rng``) drives data order and peer choice, so every method run on one
scenario faces the same world.
"""

from __future__ import annotations

import gc
import heapq
import inspect
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

import topologies
from sim.config import NetworkConfig
from sim.errors import ScenarioError
from sim.faults import FailureEvent, make_failure_model, make_straggler_model, speed_multipliers
from sim.faults.injector import start_injector
from sim.faults.stages import STAGE_STREAM, StageFailuresConfig, draw_stage_schedule
from sim.network import TcpConfig, network_class
from sim.node import Node
from sim.recorder import make_recorder
from sim.seeds import SeedTree

if TYPE_CHECKING:
    from sim.faults.stages import StageFailureSchedule

WATCH_EVERY = 1 << 16
"""Events between two calls of an environment's watchdog (a power of two: a cheap mask test)."""
WATCH_MASK = WATCH_EVERY - 1

YOUNG_OBJECTS_PER_NODE = 32
"""A world's :attr:`Environment.young_objects` per node (a synchronous round keeps about 10-20
tracked objects per node alive: events, generator frames, callbacks, flows)."""


class Environment(simpy.Environment):
    """A SimPy environment that counts the events it processes, with a bucketed event queue.

    SimPy keeps every scheduled event in one heap of ``(time, priority, id, event)`` entries and
    processes them in that order. In a large synchronous run most events share their instant:
    10,000 nodes whose compute steps all end at one time put 10,000 equal times in the heap,
    and every push and pop pays ``log2(heap)`` comparisons of tuples that tie on time and
    priority, walking a heap too large for the CPU's caches. That made the cost per event grow
    with the number of nodes. Here the heap holds each distinct ``(time, priority)`` once, and
    the events of one key wait in a FIFO bucket: the same order as SimPy's (events of equal
    time and priority in the order they were scheduled, which is what SimPy's increasing ids
    give), so a run is event-for-event the same, at O(1) per event within an instant and
    O(log distinct instants) per new instant.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events_processed = 0
        self.watchdog: Any = None
        """Called every :data:`WATCH_EVERY` events (the runner's stall check), if set."""
        self.young_objects = 0
        """Objects the collector's youngest generation may gain during :meth:`run` before it
        is collected (``0``: Python's setting, 700).

        Python assumes most objects die within a few hundred allocations. A synchronous round
        of N nodes keeps O(N) events, callbacks and flows alive at once, so with 700 nearly
        all of them are examined, promoted to the older generations and walked again by the
        full collections that follow: about 30% of the run's time at 10,000 nodes, and the
        cost per event grew with N. A world sets this to a number of objects per node
        (:data:`YOUNG_OBJECTS_PER_NODE`), so that a round's objects die young (they are freed
        by reference counting; the hot path makes no reference cycles)."""
        self._keys: list[tuple[float, int]] = []  # heap of the distinct (time, priority)
        self._buckets: dict[tuple[float, int], deque[simpy.Event]] = {}
        # the bucket filed into last, while queued: most events of a round go where the one
        # before went (the same instant), found without a key tuple made and hashed
        self._last_at, self._last_priority = math.nan, 0
        self._last_bucket: deque[simpy.Event] = deque()
        # the bucket at the head of the heap (its key object), found without a dict probe
        self._head_key: tuple[float, int] | None = None
        self._head_bucket: deque[simpy.Event] = deque()
        # simpy.Environment binds these once for speed; a subclass must do the same
        for name in ("event", "timeout", "process", "all_of", "any_of"):
            setattr(self, name, getattr(self, name))

    def schedule(self, event: simpy.Event, priority: int = simpy.core.NORMAL,
                 delay: float = 0) -> None:
        """Schedule ``event`` with ``priority`` after ``delay`` simulated seconds."""
        at = self._now + delay
        if at == self._last_at and priority == self._last_priority:
            self._last_bucket.append(event)
            return
        key = (at, priority)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = deque((event,))
            heapq.heappush(self._keys, key)
        else:
            bucket.append(event)
        self._last_at, self._last_priority, self._last_bucket = at, priority, bucket

    def peek(self) -> float:
        """Time of the next scheduled event (``inf`` if there is none)."""
        return self._keys[0][0] if self._keys else math.inf

    def last_scheduled(self, at_s: float,
                       priority: int = simpy.core.NORMAL) -> simpy.Event | None:
        """The event scheduled last for ``(at_s, priority)`` that has not run yet, or None.

        Nothing is scheduled to run between it and the next event filed under the same key,
        so a caller may add that work to its callbacks instead of scheduling another event
        without changing the run (the tcp transport's shared wake timers). ``at_s`` must be
        the time as the queue files it, ``now + delay`` in seconds.
        """
        bucket = self._buckets.get((at_s, priority))
        return bucket[-1] if bucket else None

    def step(self) -> None:
        """Process the next event (and count it): SimPy's ``step`` on the bucketed queue."""
        self.events_processed += 1  # (counted before the empty check, as before)
        if not self.events_processed & WATCH_MASK and self.watchdog is not None:
            self.watchdog()
        keys = self._keys
        if not keys:
            raise simpy.core.EmptySchedule
        key = keys[0]
        if key is self._head_key:
            bucket = self._head_bucket
        else:
            bucket = self._head_bucket = self._buckets[key]
            self._head_key = key
        event = bucket.popleft()
        if not bucket:
            heapq.heappop(keys)
            del self._buckets[key]
            self._head_key = None
            if bucket is self._last_bucket:
                self._last_at = math.nan
        self._now = key[0]
        # as SimPy: callbacks detached first, a StopSimulation re-queues the remaining ones
        callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
        try:
            for callback in callbacks:
                callback(event)
        except simpy.core.StopSimulation:
            event.callbacks = callbacks[callbacks.index(callback) + 1:]
            self.schedule(event, -1)
            raise
        if not event._ok and not hasattr(event, "_defused"):
            # a failed event nobody handled crashes the run, as in SimPy
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def run(self, until: Any = None) -> Any:
        """SimPy's ``run``, with every object that exists when it starts frozen for the GC.

        Python's full (generation-2) garbage collections walk every tracked object of the
        process: the imported libraries (torch, pandas, networkx: ~250,000 objects), the world
        and the learners. A long run triggers one every few thousand events, so at 1,000 nodes
        they took over half of the run's time. ``gc.freeze`` moves the objects that exist now
        out of those walks for the length of the run (``gc.unfreeze`` puts them back after);
        what the run itself creates is collected as usual. Nothing about the simulation
        changes. Skipped when the collector is off or something else has frozen objects.

        For the same length of run, :attr:`young_objects` raises the collector's first
        threshold (see there); both settings are restored when the run returns.
        """
        if not gc.isenabled() or gc.get_freeze_count():
            return super().run(until)
        thresholds = gc.get_threshold()
        gc.freeze()
        if self.young_objects > thresholds[0]:
            gc.set_threshold(self.young_objects, *thresholds[1:])
        try:
            return super().run(until)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()


class World:
    """Nodes on a network, with a clock, a recorder and a seed tree.

    Parameters
    ----------
    topology:
        A ``topologies.Topology`` (sites, links, each node's site).
    seed:
        Root of every random stream, or the run's :class:`~sim.seeds.SeedTree` itself
        (:meth:`build` passes the tree it drew the topology and the faults from: one per run).
    network:
        The network: a :class:`~sim.config.NetworkConfig` (model, transport and its
        ``TcpConfig``, access links, TCP efficiency; its topology fields are not read: the
        ``topology`` is given), or just a model name (``"ideal"``, ``"maxmin"``) for the
        defaults of the rest.
    device:
        A device profile (``workloads.get_device``), or ``None``.
    flops_per_s:
        Sustained FLOP/s per node (scalar or one per node); default from ``device``.
    speeds:
        Persistent speed multiplier per node (default all 1).
    stragglers:
        A straggler model (``sim.faults``), or ``None``.
    slots, memory_bytes:
        Compute slots and memory per node.
    record:
        What the recorder keeps: ``"full"`` or ``"aggregate"`` (``sim.recorder.make_recorder``).
    """

    def __init__(self, topology: Any, *, seed: int | SeedTree = 0,
                 network: NetworkConfig | str = "maxmin", device: Any = None,
                 flops_per_s: float | Sequence[float] | None = None,
                 speeds: Sequence[float] | np.ndarray | None = None, stragglers: Any = None,
                 slots: int = 1, memory_bytes: float | None = None,
                 record: str = "full") -> None:
        self.env = Environment()
        self.seeds = seed if isinstance(seed, SeedTree) else SeedTree(seed)
        self.topology = topology
        self.failure_horizon_s: float | None = None
        self.stage_failures: StageFailureSchedule | None = None
        """The stage failures drawn for the policy's pipeline stages (:mod:`sim.faults.stages`);
        ``None`` when the scenario has no ``stage`` failure model or the method no stages."""
        n = topology.num_nodes()
        self.env.young_objects = YOUNG_OBJECTS_PER_NODE * n
        names = [f"node{i}" for i in range(n)]
        self.recorder = make_recorder(self.env, names, record)
        self.nodes: list[Node] = []
        net = NetworkConfig(model=network) if isinstance(network, str) else network
        # (the model's class carries both transports: a TcpConfig makes it tcp)
        extra = {"tcp": net.tcp or TcpConfig()} if net.transport == "tcp" else {}
        self.network = network_class(net.model, net.transport)(
            self, topology, uplink_Bps=net.uplink_Bps, downlink_Bps=net.downlink_Bps,
            access_latency_s=net.access_latency_s, tcp_efficiency=net.tcp_efficiency, **extra)
        if flops_per_s is None:
            peak = getattr(device, "peak_flops_per_s", None)
            flops_per_s = peak * getattr(device, "efficiency", 1.0) if peak else math.nan
        flops = list(flops_per_s) if isinstance(flops_per_s, Sequence) else [flops_per_s] * n
        speeds = [1.0] * n if speeds is None else [float(s) for s in speeds]
        if len(speeds) != n or len(flops) != n:
            raise ValueError(f"cluster: expected {n} per-node values, got speeds={len(speeds)}, "
                             f"flops_per_s={len(flops)}")
        if memory_bytes is None:
            memory_bytes = getattr(device, "memory_bytes", math.inf)
        if hasattr(stragglers, "reset"):
            stragglers.reset()  # models with per-node state start fresh in every world
        stream = self.seeds.child("world", "stragglers")
        for i in range(n):
            # a node's straggler stream only when it is drawn from (about 1 KiB each)
            rng = stream.generator(i) if stragglers is not None else None
            self.nodes.append(Node(self, i, name=names[i], site=topology.node_sites[i],
                                   flops_per_s=flops[i], device=device, speed=speeds[i],
                                   memory_bytes=memory_bytes, slots=slots,
                                   stragglers=stragglers, straggler_rng=rng))

    # -- building from a scenario ----------------------------------------------------------

    @classmethod
    def build(cls, scenario: Any, *, horizon_s: float | None = None,
              failure_groups: Sequence[Sequence[int]] | None = None) -> World:
        """Build the world a :class:`sim.config.Scenario` describes (failures scheduled).

        ``failure_groups`` are the node groups that form the training method's pipeline stages
        (:meth:`sim.policy.Policy.failure_groups`); a ``stage`` failure model
        (:mod:`sim.faults.stages`) draws its schedule over them and the world keeps it as
        :attr:`stage_failures` for the policy. ``None`` (a world built without a method, or for
        one without stages: the runner refuses the latter): no stage failures are drawn.
        """
        from workloads import get_device  # deferred: the workloads package loads torch

        cluster, net, faults = scenario.cluster, scenario.network, scenario.faults
        seeds = SeedTree(scenario.seed)
        topology = build_topology(net.topology, cluster.num_nodes, net.topology_params,
                                  seed=seeds.integer_seed("world", "topology"))
        device = get_device(cluster.device)
        speed_spec = dict(cluster.speed)
        speeds = None
        if speed_spec:
            dist = speed_spec.pop("dist", "constant")
            speeds = speed_multipliers(cluster.num_nodes, dist=dist,
                                       rng=seeds.generator("world", "speeds"), **speed_spec)
        stragglers = None
        if faults.stragglers:
            rng = seeds.generator("world", "straggler_pattern")
            stragglers = (make_straggler_model(dict(faults.stragglers),
                                               num_nodes=cluster.num_nodes, rng=rng)
                          if isinstance(faults.stragglers, Mapping)
                          else faults.stragglers.build(num_nodes=cluster.num_nodes, rng=rng))
        world = cls(topology, seed=seeds, network=net, device=device, speeds=speeds,
                    stragglers=stragglers, slots=cluster.compute_slots,
                    memory_bytes=cluster.memory_bytes, record=scenario.run.record)
        horizon = horizon_s or scenario.run.until_s or DEFAULT_FAILURE_HORIZON_S
        drawn_any = False
        stage_model_seen = False
        events: list[FailureEvent] = []
        for i, spec in enumerate(faults.failures):
            if isinstance(spec, StageFailuresConfig):
                if stage_model_seen:
                    raise ScenarioError(f"faults.failures[{i}].model",
                                        "give at most one 'stage' failure model")
                if failure_groups:
                    world.stage_failures = draw_stage_schedule(
                        spec, failure_groups, horizon_s=horizon,
                        rng=seeds.generator(*STAGE_STREAM))
                stage_model_seen = True
                drawn_any = drawn_any or bool(failure_groups)
                continue
            drawn_any = True
            # a spec table of a built-in model, or the typed Config of a registered one
            model = make_failure_model(dict(spec)) if isinstance(spec, Mapping) else spec.build()
            drawn = model.schedule(num_nodes=cluster.num_nodes, horizon_s=horizon,
                                   rng=seeds.generator("world", "failures", i))
            check_fault_sites(drawn, topology.graph, f"faults.failures[{i}]")
            events += drawn
        world.failure_horizon_s = horizon if drawn_any else None
        if events:
            events.sort(key=lambda e: (e.time_s, e.nodes))
            start_injector(world, events)
        return world

    # -- conveniences ----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Current simulated time, seconds."""
        return self.env.now

    @property
    def num_nodes(self) -> int:
        """Number of nodes in the world."""
        return len(self.nodes)

    def policy_rng(self, *names: str | int):
        """A numpy Generator from the policy's half of the seed tree."""
        return self.seeds.generator("policy", *names)

    def world_rng(self, *names: str | int):
        """A numpy Generator from the world's half of the seed tree (faults, stragglers)."""
        return self.seeds.generator("world", *names)

    def up_nodes(self, nodes: Sequence[Any] | None = None) -> list[Node]:
        """The nodes (of ``nodes``, default all) that are up now."""
        pool = self.nodes if nodes is None else [self.nodes[_id(n)] for n in nodes]
        return [n for n in pool if n.is_up]


def check_fault_sites(events: Sequence[Any], graph: Any, field: str) -> None:
    """Refuse link faults on edges the topology lacks and partitions of unknown sites.

    Without this a typo would strike nothing (a partition of unknown sites cuts no link) or
    stop the run part-way; the error names the field and lists what exists.
    """
    sites = sorted(str(s) for s in graph.nodes)
    for event in events:
        for u, v in getattr(event, "links", ()) or ():
            if not graph.has_edge(u, v):
                raise ScenarioError(f"{field}.links", f"no topology edge {u!r}-{v!r}; the "
                                    f"topology's sites are {sites}")
        for group in getattr(event, "groups", ()) or ():
            for site in group:
                if str(site) not in graph:
                    raise ScenarioError(f"{field}.groups", f"unknown site {site!r}; the "
                                        f"topology's sites are {sites}")


DEFAULT_FAILURE_HORIZON_S = 24 * 3600.0
"""Failures are drawn up to this simulated time when a run has no time limit (one day).

Schedules are drawn before the run starts, so a step-limited run that goes on longer than this
sees no failures after it: give ``run.until`` for longer runs (the run's summary reports the
horizon used as ``failure_horizon_s``)."""


def build_topology(name: str, num_nodes: int, params: dict[str, Any], *, seed: int) -> Any:
    """A topology preset by name, or a graph file (edge list) by path."""
    looks_like_path = os.sep in name or name.endswith((".csv", ".txt", ".edges", ".edgelist"))
    if looks_like_path:
        if not os.path.exists(name):
            raise ValueError(f"network.topology: file {name!r} does not exist")
        return topologies.from_edgelist(name, **params) if params else \
            topologies.from_edgelist(name)
    builder = topologies.PRESETS.get(name)
    kwargs = dict(params)
    if builder is not None:
        sig = inspect.signature(builder).parameters
        if "num_nodes" in sig:
            kwargs.setdefault("num_nodes", num_nodes)
        if "seed" in sig:
            kwargs.setdefault("seed", seed)
    return topologies.get_topology(name, **kwargs)


def _id(node: Any) -> int:
    return node if isinstance(node, int) else node.id
