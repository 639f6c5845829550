"""The policy contract: a training method is a small strategy; the engine owns the loop.

A policy starts SimPy processes that drive the engine (compute, transfers, collectives) and the
learners (real torch steps). It reports its progress through :class:`RunContext`, which is also
where the runner's stop conditions live. ``sim`` never imports a concrete policy: they register
themselves by name with :func:`register_policy` (kind ``"policy"`` of :mod:`sim.components`), and
:func:`get_policy` looks them up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import simpy

from sim import components
from sim.components import make_config

if TYPE_CHECKING:
    from sim.config import RunConfig, Scenario
    from sim.node import Node
    from sim.world import Environment, World


@dataclass(frozen=True, kw_only=True)
class NoConfig:
    """A policy without parameters."""


class Policy:
    """Base class of every training method.

    Subclasses set ``name`` and ``Config`` (a frozen, keyword-only dataclass whose fields document
    their units) and override some of the hooks below. A worker or coordinator is a generator that
    yields SimPy events, so a method reads top to bottom like its pseudocode.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None, **params: Any) -> None:
        if config is None:
            config = make_config(self.Config, params, where=f"policy.{self.name}")
        elif params:
            config = dataclasses.replace(config, **params)
        self.config = config

    def check(self, scenario: Scenario) -> None:
        """Refuse a scenario this policy cannot run, before any world is built or run.

        For checks across fields that need the scenario, not the world: a shape against the
        cluster's node count, code parameters against the number of workers. Raise
        ``ValueError`` (or :class:`~sim.errors.ScenarioError`) naming the field as the file
        spells it (``policy.s``, ``cluster.nodes``). Every entry point calls it for every
        policy it is about to run before the first one starts (a comparison does not run its
        first policy and then refuse its second), and the runner calls it again before
        :meth:`setup`. Cheap: no learners, no world.
        """

    def setup(self, ctx: RunContext) -> None:
        """Build learners and state before simulated time starts."""

    def coordinator(self, ctx: RunContext) -> Generator | None:
        """A process that is not tied to one node (a master, a scheduler); optional."""
        return None

    def worker(self, ctx: RunContext, node: Node) -> Generator | None:
        """The process of one node; optional."""
        return None

    def failure_groups(self, num_nodes: int) -> list[list[int]] | None:
        """The node groups that form this method's pipeline stages (group ``i`` = stage ``i``).

        A ``stage`` failure model in the scenario's ``[faults]`` (:mod:`sim.faults.stages`)
        fails all nodes of a group at once; the world draws that schedule before the run and
        hands it to the policy as ``ctx.world.stage_failures``. ``None`` (the default): the
        method has no stages, and such a model is refused; ``[]``: it has stages, none of which
        fails (an upper bound without failures). Called before :meth:`setup`, with the cluster
        size; raise ``ValueError`` naming the field when the stages do not fit.
        """
        return None

    def evaluate(self, ctx: RunContext) -> float | None:
        """Held-out loss of the method's current model (no simulated time passes)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for result tables."""
        return {"policy": self.name, **dataclasses.asdict(self.config)}

    def summary(self) -> dict[str, Any] | None:
        """Figures of this method to merge into the run's summary (optional).

        Called once after the run ends (also after a failed run, on what was recorded); keys
        must not clash with the runner's own (``steps``, ``final_loss``, ...), which win.
        """
        return None


def register_policy(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy available by ``name`` (its ``Config`` is its parameters)."""

    def decorate(cls: type[Policy]) -> type[Policy]:
        old = _POLICIES.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"policy {name!r} registered twice")
        cls.name = name
        _POLICIES[name] = cls
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        components.register("policy", name, config=cls.Config, build=cls, summary=doc)
        return cls

    return decorate


_POLICIES: dict[str, type[Policy]] = {}


def policy_names() -> list[str]:
    """Every registered policy name, sorted."""
    return components.names("policy")


def get_policy(name: str) -> type[Policy]:
    """The policy class registered as ``name``."""
    return _POLICIES[components.component("policy", name, field="policy.name").name]


@dataclass
class RunContext:
    """What a running policy sees: the world, the workload, and how to report progress.

    ``report`` records one point of the method's progress (its step count and, when known, a
    training loss) and checks the step-count stop condition. The runner's evaluator records
    ``eval_loss`` and checks the target-loss condition. ``stopped`` fires when the run should end;
    long-lived processes may yield it in a condition to finish cleanly.
    """

    world: World
    workload: Any
    run: RunConfig
    steps: int = 0
    stopped: simpy.Event = field(init=False)
    stop_reason: str | None = None
    time_to_target_s: float | None = None
    last_eval_loss: float | None = None

    def __post_init__(self) -> None:
        self.stopped = self.world.env.event()

    @property
    def env(self) -> Environment:
        """The world's SimPy environment."""
        return self.world.env

    @property
    def now(self) -> float:
        """Current simulated time, seconds."""
        return self.world.env.now

    @property
    def should_stop(self) -> bool:
        """Whether a stop condition has been met."""
        return self.stopped.triggered

    def report(self, step: int, loss: float | None = None, *, node: int | None = None,
               **metrics: float) -> None:
        """Record progress at the current simulated time; ``step`` counts (inner) steps."""
        rec = self.world.recorder
        self.steps = max(self.steps, step)
        if loss is not None:
            rec.metric("loss", float(loss), node=node, step=step)
        for key, value in metrics.items():
            if value is not None:
                rec.metric(key, float(value), node=node, step=step)
        if self.run.max_steps is not None and self.steps >= self.run.max_steps:
            self.stop("max_steps")

    def record_eval(self, loss: float) -> None:
        """Record an evaluation loss and check the target."""
        self.last_eval_loss = loss
        self.world.recorder.metric("eval_loss", float(loss), step=self.steps)
        target = self.run.target_loss
        if target is not None and self.time_to_target_s is None and loss <= target:
            self.time_to_target_s = self.now
            self.world.recorder.event("target_reached", loss=float(loss))
            if self.run.stop_at_target:
                self.stop("target_loss")

    def stop(self, reason: str) -> None:
        """End the run at the current simulated time."""
        if not self.stopped.triggered:
            self.stop_reason = reason
            self.stopped.succeed(reason)
