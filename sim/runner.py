"""Run a policy on a scenario: build the world, start the processes, stop, collect.

The engine owns the loop (STYLE.md #3): the runner builds the world and the workload, calls the
policy's ``setup``, starts its coordinator and one worker per node, runs an evaluator that asks
the policy for its held-out loss every ``run.eval_every_s`` simulated seconds, and stops at the
first of: the time limit, the step limit, the target loss (if asked), or all processes done.

A run that cannot progress ends with ``stop_reason`` "stalled" and says why in ``stop_detail``
instead of spinning forever: when nothing is left to happen (every process waits on an event that
will never come, e.g. ``on_failure = "wait"`` for a node that never rejoins), when simulated time
stops advancing (:data:`MAX_EVENTS_AT_ONE_INSTANT` events at one instant), or when events keep
coming without any training step (:func:`max_events_per_step`). A run that fails part-way keeps
what it recorded: :class:`RunFailed` carries the partial :class:`Result`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tqdm import tqdm

from sim import components
from sim.config import PolicyConfig, Scenario
from sim.errors import FieldError, ScenarioError
from sim.faults.stages import refuse_stage_failures_without_stages
from sim.policy import Policy, RunContext
from sim.threads import DEFAULT_TORCH_THREADS, torch_threads
from sim.world import World


@dataclass
class Result:
    """What one run produced.

    ``history`` is the long table of metrics (time_s, node, step, metric, value); ``summary`` the
    JSON-ready figures; ``world`` gives access to the recorder (intervals, bytes, trace).
    """

    scenario: Scenario
    policy: str
    params: dict[str, Any]
    world: World
    steps: int
    final_loss: float | None
    optimum_loss: float | None
    time_to_target_s: float | None
    stop_reason: str
    wall_time_s: float
    error: str | None = None
    stop_detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    policy_figures: dict[str, Any] = field(default_factory=dict)
    """The policy's own figures (its ``Policy.summary`` hook), merged into :attr:`summary`."""
    policy_defaults: bool = False
    """True when the scenario does not configure the policy and it ran with its defaults."""
    label: str | None = None
    """The name the run was asked for (a ``[policies]`` label or a policy name)."""

    @property
    def recorder(self):
        """The run's :class:`~sim.recorder.Recorder` (intervals, bytes, events, trace)."""
        return self.world.recorder

    @property
    def history(self) -> pd.DataFrame:
        """Every recorded metric: time_s, node, step, metric, value."""
        return self.world.recorder.history()

    @property
    def sim_time_s(self) -> float:
        """Simulated seconds the run lasted."""
        return self.world.recorder.elapsed_s

    def loss_curve(self, metric: str = "eval_loss") -> pd.DataFrame:
        """``time_s``, ``step``, ``value`` of one metric (global points only)."""
        h = self.history
        h = h[(h.metric == metric) & h.node.isna()]
        return h[["time_s", "step", "value"]].reset_index(drop=True)

    @property
    def summary(self) -> dict[str, Any]:
        """The figures every interface reports (CLI ``--json`` prints exactly this)."""
        rec = self.world.recorder.summary()
        return {
            **self.policy_figures,
            "policy": self.policy,
            "policy_defaults": self.policy_defaults,
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "sim_time_s": rec["sim_time_s"],
            "steps": self.steps,
            "final_loss": self.final_loss,
            "optimum_loss": self.optimum_loss,
            "target_loss": self.scenario.run.target_loss,
            "time_to_target_s": self.time_to_target_s,
            "bytes_sent": rec["bytes_sent"],
            "bytes_sent_per_node": rec["bytes_sent_per_node"],
            "bytes_cut": rec["bytes_cut"],
            "idle_fraction": rec["idle_fraction"],
            "goodput": rec["goodput"],
            "failures": rec["failures"],
            "events": self.world.env.events_processed,
            "failure_horizon_s": self.world.failure_horizon_s,
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "wall_time_s": self.wall_time_s,
            "error": self.error,
            **self.extra,
        }

    def to_json(self) -> str:
        """The summary as canonical JSON."""
        return json.dumps(self.summary, sort_keys=True)

    def trace_hash(self) -> str:
        """SHA-256 of the run's canonical Chrome trace."""
        return self.world.recorder.trace_hash()

    def write_trace(self, path: str) -> None:
        """Write the run's Chrome trace (loads in Perfetto)."""
        self.world.recorder.write_chrome_trace(path)


class RunFailed(RuntimeError):
    """A run raised part-way; ``partial`` holds everything recorded up to then."""

    def __init__(self, message: str, partial: Result) -> None:
        super().__init__(message)
        self.partial = partial


def make_policy(scenario: Scenario, policy: str | Policy | None = None) -> Policy:
    """The policy to run: an instance, or a label / name resolved by the scenario.

    A name is resolved by :meth:`Scenario.policy_config` (the one rule of every entry point):
    a ``[policies.<label>]`` table's parameters, the ``[policy]``'s, or the policy's defaults.
    """
    if isinstance(policy, Policy):
        return policy
    _label, config = scenario.policy_config(policy)
    return build_policy(config)


def build_policy(config: PolicyConfig) -> Policy:
    """Build the policy a :class:`PolicyConfig` describes (its typed Config when it has one)."""
    entry = components.component("policy", config.name, field="policy.name")
    if config.config is not None:
        return entry.build(config.config)
    return entry.build(**config.params)


def build_workload(scenario: Scenario, world: World) -> Any:
    """The scenario's workload, seeded from the policy's half of the seed tree."""
    from workloads import WorkloadConfig  # deferred: the workloads package loads torch
    from workloads import build_workload as build  # deferred: as above

    config = scenario.workload if scenario.workload is not None else WorkloadConfig()
    return build(config, num_replicas=world.num_nodes,
                 seed=world.seeds.integer_seed("policy", "workload"))


def run(scenario: Scenario, policy: str | Policy | None = None, *,
        progress: bool = False, threads: int | None = DEFAULT_TORCH_THREADS) -> Result:
    """Run ``policy`` (default: the scenario's) on ``scenario`` and return the :class:`Result`.

    ``threads`` is how many CPU threads torch trains the learners on during the run (default
    one, as in the ``dtsim`` command: see :mod:`sim.threads`; the caller's setting is restored
    afterwards); ``None`` leaves torch's setting alone.
    """
    with torch_threads(threads):
        return _run(scenario, policy, progress=progress)


def _run(scenario: Scenario, policy: str | Policy | None, *, progress: bool) -> Result:
    wall_start = time.perf_counter()
    label: str | None = None
    policy_config: PolicyConfig | None = None
    if isinstance(policy, Policy):
        pol = policy
    else:
        label, policy_config = scenario.policy_config(policy)
        pol = build_policy(policy_config)
    check_policy(pol, scenario)
    try:
        groups = pol.failure_groups(scenario.cluster.num_nodes)
    except ValueError as exc:
        raise setup_error(pol.name, exc) from None
    if groups is None:
        refuse_stage_failures_without_stages(scenario.faults, pol.name)
    world = World.build(scenario, failure_groups=groups)
    workload = build_workload(scenario, world)
    ctx = RunContext(world, workload, scenario.run)
    env = world.env
    error: BaseException | None = None
    try:
        try:
            pol.setup(ctx)
        except ValueError as exc:
            raise setup_error(pol.name, exc) from None
        procs = []
        coordinator = pol.coordinator(ctx)
        if coordinator is not None:
            procs.append(env.process(coordinator))
        for node in world.nodes:
            gen = pol.worker(ctx, node)
            if gen is not None:
                procs.append(env.process(gen))
        if procs:
            env.all_of(procs).callbacks.append(lambda _e: ctx.stop("policy_done"))
        else:
            ctx.stop("policy_done")
        if scenario.run.eval_every_s:
            env.process(_evaluator(ctx, pol, scenario.run.eval_every_s))
        bar = _progress_bar(ctx, scenario) if progress else None
        limit = [ctx.stopped]
        if scenario.run.until_s is not None:
            limit.append(env.timeout(scenario.run.until_s))
        env.watchdog = _Watchdog(ctx)
        try:
            env.run(until=env.any_of(limit))
        except Stalled as stall:
            _stalled(ctx, str(stall))
        except RuntimeError:
            if env.peek() != math.inf or ctx.stopped.triggered:
                raise
            _stalled(ctx)  # nothing left to happen: every process waits on something that won't
        finally:
            env.watchdog = None
        if bar is not None:
            bar.close()
        if not ctx.stopped.triggered:
            ctx.stop("until_s")
        _final_eval(ctx, pol)
    except ScenarioError:
        raise  # bad input found while setting up (e.g. a model that does not fit): not a failure
    except Exception as exc:  # keep what was recorded, then report
        error = exc
    world.recorder.finish(env.now)
    figures = _policy_figures(pol)
    result = Result(
        scenario=scenario, policy=pol.name, params=_params(pol), world=world, steps=ctx.steps,
        final_loss=ctx.last_eval_loss, optimum_loss=getattr(workload, "optimum_loss", None),
        time_to_target_s=ctx.time_to_target_s, stop_reason=ctx.stop_reason or "error",
        wall_time_s=time.perf_counter() - wall_start,
        stop_detail=getattr(ctx, "stop_detail", None),
        error=None if error is None else f"{type(error).__name__}: {error}",
        policy_figures=figures, label=label or pol.name,
        policy_defaults=policy_config is not None and not policy_config.configured)
    if error is not None:
        raise RunFailed(f"run of {pol.name!r} on {scenario.name!r} failed at "
                        f"t={env.now:.6g}s: {result.error}", result) from error
    return result


def _policy_figures(pol: Policy) -> dict[str, Any]:
    """The policy's summary hook; a hook that fails is reported, not allowed to hide the run."""
    try:
        return dict(pol.summary() or {})
    except Exception as exc:  # noqa: BLE001  (the run's own figures must still come back)
        return {"policy_summary_error": f"{type(exc).__name__}: {exc}"}


def check_policy(policy: Policy | PolicyConfig, scenario: Scenario) -> Policy:
    """Run ``policy``'s :meth:`~sim.policy.Policy.check` on ``scenario``; bad input is exit 2.

    Returns the policy (built from its config when given one). Raises
    :class:`~sim.errors.ScenarioError` naming the field the policy refused.
    """
    pol = policy if isinstance(policy, Policy) else build_policy(policy)
    try:
        pol.check(scenario)
    except ValueError as exc:
        raise setup_error(pol.name, exc) from None
    return pol


def setup_error(policy: str, exc: ValueError) -> ScenarioError:
    """A policy refused the scenario in ``check``/``setup`` (before any simulated time): bad input.

    Policies check what needs the world (stage sizes against the cluster, code parameters
    against the node count) in ``check``/``setup`` and raise
    :class:`~sim.errors.FieldError` naming their Config's field; it is written as in the file
    (``policy.s``, not ``policy.gc_cyclic.s``). A refusal of another section's key is a
    :class:`~sim.errors.ScenarioError` naming it (``cluster.nodes``) and passes unchanged. Any
    other ``ValueError`` (a third-party policy's) is reported against the policy as a whole, in
    one line, its message unchanged and never read for a field name.
    """
    if isinstance(exc, ScenarioError):
        return exc
    if isinstance(exc, FieldError):
        return ScenarioError(f"policy.{exc.field}", exc.message)
    message = " ".join(str(exc).split())  # one line, whatever the message's layout
    return ScenarioError("policy", f"{policy!r} refused the scenario: {message}")


def _params(pol: Policy) -> dict[str, Any]:
    try:
        return dataclasses.asdict(pol.config)
    except TypeError:
        return {}


def _evaluator(ctx: RunContext, pol: Policy, every_s: float):
    """Every ``every_s`` simulated seconds: the method's held-out loss and the bytes sent so far."""
    rec = ctx.world.recorder
    while not ctx.should_stop:
        loss = pol.evaluate(ctx)
        if loss is not None:
            ctx.record_eval(loss)
        rec.metric("bytes_sent", float(rec.bytes_sent.sum()))
        if ctx.env.peek() == math.inf:  # only this evaluator is left: the run can't progress
            _stalled(ctx)
            return
        yield ctx.env.timeout(every_s) | ctx.stopped


NOTHING_LEFT = "nothing left to happen: every process waits on an event that will never come"

def _stalled(ctx: RunContext, detail: str = NOTHING_LEFT) -> None:
    """End a run that cannot progress, saying why (kept as the result's ``stop_detail``)."""
    if ctx.stopped.triggered:
        return
    ctx.world.recorder.event("stalled", detail=detail)
    ctx.stop_detail = detail  # type: ignore[attr-defined]
    ctx.stop("stalled")


MAX_EVENTS_AT_ONE_INSTANT = 1 << 20
"""Events processed without simulated time moving after which a run is stalled (a zero-time
loop: e.g. a retry that fails at once, forever)."""


def max_events_per_step(num_nodes: int) -> int:
    """Events without a training step after which a run is stalled: ``max(2^22, 64 n^2)``.

    A ring all-reduce over ``n`` nodes is ``2 n (n - 1)`` transfers of a few events each, so a
    healthy step of the largest methods costs ``O(n^2)`` events; 64 n^2 leaves a wide margin, and
    2^22 (4.2 million events, 10-20 s of wall time) covers small clusters with long fault storms.
    """
    return max(1 << 22, 64 * num_nodes * num_nodes)


class Stalled(Exception):
    """Raised out of the event loop by the watchdog; the message says why."""


class _Watchdog:
    """Checked every ``WATCH_EVERY`` events: is simulated time moving, are steps being made."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.env = ctx.env
        self.max_events_per_step = max_events_per_step(ctx.world.num_nodes)
        self.time_s, self.time_events = self.env.now, self.env.events_processed
        self.steps, self.step_events = ctx.steps, self.env.events_processed

    def __call__(self) -> None:
        env, events = self.env, self.env.events_processed
        if env.now != self.time_s:
            self.time_s, self.time_events = env.now, events
        elif events - self.time_events >= MAX_EVENTS_AT_ONE_INSTANT:
            raise Stalled(f"simulated time stopped advancing: {events - self.time_events} "
                          f"events at t={env.now:.6g}s")
        if self.ctx.steps != self.steps:
            self.steps, self.step_events = self.ctx.steps, events
        elif events - self.step_events >= self.max_events_per_step:
            raise Stalled(f"no training step in {events - self.step_events} events "
                          f"(step {self.ctx.steps}, t={env.now:.6g}s)")


def _final_eval(ctx: RunContext, pol: Policy) -> None:
    if ctx.world.recorder.has_metric("eval_loss", ctx.now):
        return
    loss = pol.evaluate(ctx)
    if loss is not None:
        ctx.record_eval(loss)
    rec = ctx.world.recorder
    rec.metric("bytes_sent", float(rec.bytes_sent.sum()))


def _progress_bar(ctx: RunContext, scenario: Scenario):
    total = scenario.run.until_s or scenario.run.max_steps
    unit = "sim-s" if scenario.run.until_s else "step"
    bar = tqdm(total=total, unit=unit, desc=scenario.name, leave=False)

    def tick():
        last = 0.0
        while not ctx.should_stop and ctx.env.peek() != math.inf:
            yield ctx.env.timeout(max((scenario.run.until_s or 1.0) / 200, 1e-9)) | ctx.stopped
            value = ctx.now if scenario.run.until_s else ctx.steps
            bar.update(value - last)
            last = value

    ctx.env.process(tick())
    return bar
