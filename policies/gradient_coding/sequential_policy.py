"""Sequential gradient coding on the engine: GC, SR-SGC and M-SGC over a sequence of jobs.

The setting of Krishnan, Ebrahimi and Khisti (2023): ``num_models`` small models train
concurrently; job ``t`` is one gradient step of model ``t mod num_models``, starts in round ``t``
and must be decoded by the end of round ``t + T``. One node (the last, by default) is the master;
the other ``n`` are workers. A round, top to bottom:

1. the master sends the parameters of the round's new job (``param_bytes``) to every worker;
2. worker ``i`` computes its mini-tasks of the round (:meth:`SequentialScheme.tasks`): one
   ``node.compute`` of ``work_i x job_s`` seconds, where ``work_i`` is the fraction of a job's
   data in its tasks and ``job_s`` the timing model's step time of one whole job; then it sends
   one gradient-sized vector per job it touched;
3. the fixed-threshold rule (:func:`~policies.gradient_coding.sequential.threshold_round`): the
   master waits until ``(1 + mu)`` times the first arrival; the workers missing then are this
   round's stragglers; if they fit the scheme's straggler model the round closes, otherwise the
   master waits for every worker;
4. every job that became decodable steps its model (real torch) and is reported.

Every worker calls ``node.compute`` once per round (also with no work), so round ``r`` of a
replayed straggler pattern (``faults.stragglers.model = "bursty"``) is round ``r`` of every
scheme. A worker still busy from a straggling task queues behind it (one compute slot); give the
cluster more ``compute_slots`` to model fresh serverless invocations, as on AWS Lambda.

The decoded gradient of job ``t`` is the full gradient of its data (the codes' exactness is
checked in :mod:`.codes`' tests and the schedules' decodability in :mod:`.sequential`'s); the
master computes it with the model's learner when the job decodes. That is the same gradient the
workers would have computed at round ``t``: model ``t mod M``'s previous job decoded by round
``t - M + T < t``, so its parameters did not change in between (hence ``num_models > T``).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import simpy

from policies.gradient_coding.sequential import SequentialScheme, make_schedule
from sim.errors import FieldError, SimFailure
from sim.policy import Policy, RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class SequentialConfig:
    """A sequential gradient coding run under the (B, W, lam)-bursty straggler model.

    B, W, lam:
        Burst length (rounds), window (rounds), distinct stragglers per window (workers) the
        scheme is designed for. GC uses GC(n, lam); SR-SGC needs ``B | W-1``.
    mu:
        Straggler threshold: a worker answering later than ``(1 + mu)`` times the fastest in
        its round is a straggler (dimensionless, >= 0).
    num_jobs:
        Jobs ``J`` to finish (gradient steps in total, over all models).
    num_models:
        Models trained concurrently; job ``t`` steps model ``t mod num_models``. Must exceed the
        scheme's delay ``T`` (GC 0, SR-SGC ``B``, M-SGC ``W-2+B``).
    job_batches:
        Microbatches (of ``workload.batch`` samples) in one job's data; the compute time of a
        job is ``job_batches`` x the timing model's step time of one microbatch. ``None``: ``n``.
    job_samples:
        Samples in one job's data. When set, a worker computing a fraction ``w`` of a job
        processes ``round(w * job_samples)`` samples, each at the timing model's per-sample time
        (a microbatch step over ``workload.batch``), as the authors' Lambda workers computed on
        ``round(load x 4096)`` samples; overrides ``job_batches``. ``None``: ``job_batches``.
    sample_s:
        Seconds a worker computes per sample (with ``job_samples``), e.g. a serverless
        function's CPU; ``None``: the timing model's microbatch step over ``workload.batch``.
    invoke_s:
        Fixed seconds of every worker's round on top of its samples (a serverless function's
        start-up and data loading); it is part of the one compute task, so it straggles with it.
    master:
        Node id of the master; ``None``: the last node.
    send_model:
        Whether each round starts with the master sending ``param_bytes`` to every worker.
    """

    B: int = 1
    W: int = 2
    lam: int = 1
    mu: float = 1.0
    num_jobs: int = 40
    num_models: int = 4
    job_batches: int | None = None
    job_samples: int | None = None
    sample_s: float | None = None
    invoke_s: float = 0.0
    master: int | None = None
    send_model: bool = True


class SequentialCoding(Policy):
    """One mechanism for the three schemes; subclasses set ``scheme``."""

    scheme: ClassVar[str] = ""
    Config = SequentialConfig

    def check(self, scenario: Any) -> None:
        """Master id and the schedule's parameters against the cluster, before any world."""
        self._check_shape(scenario.cluster.num_nodes)

    def _check_shape(self, num_nodes: int) -> SequentialScheme:
        """Check the master id and build the schedule for ``num_nodes`` nodes."""
        cfg = self.config
        master = num_nodes - 1 if cfg.master is None else cfg.master
        if not 0 <= master < num_nodes:
            raise FieldError("master", f"must be a node id in 0..{num_nodes - 1}, "
                             f"got {master}")
        if cfg.mu < 0:
            raise FieldError("mu", f"must be >= 0, got {cfg.mu}")
        # refusals of B, W, lam and num_jobs are FieldErrors naming the Config's field
        schedule = make_schedule(self.scheme, num_nodes - 1, cfg.num_jobs, B=cfg.B, W=cfg.W,
                                 lam=cfg.lam)
        if cfg.num_models <= schedule.delay:
            raise FieldError("num_models", f"must exceed the delay T="
                             f"{schedule.delay} of {self.scheme}, got {cfg.num_models}")
        return schedule

    def setup(self, ctx: RunContext) -> None:
        """Pick master and workers, build the schedule and one learner per model."""
        world, cfg = ctx.world, self.config
        num_nodes = world.num_nodes
        self.schedule: SequentialScheme = self._check_shape(num_nodes)
        master = num_nodes - 1 if cfg.master is None else cfg.master
        self.master = world.nodes[master]
        self.workers = [node for node in world.nodes if node.id != master]
        n = len(self.workers)
        job_batches = n if cfg.job_batches is None else cfg.job_batches
        if job_batches < 1:
            raise FieldError("job_batches", f"must be >= 1, got {job_batches}")
        timing, wl = ctx.workload.timing, ctx.workload.config
        device = self.master.device
        if device is not None:
            batch_s = timing.step_seconds(device, wl.batch, wl.seq)
        else:
            batch_s = timing.step_flops(wl.batch, wl.seq) / self.master.flops_per_s
        if cfg.job_samples is not None and cfg.job_samples < 1:
            raise FieldError("job_samples", f"must be >= 1 sample, got {cfg.job_samples}")
        if not cfg.invoke_s >= 0:
            raise FieldError("invoke_s", f"must be >= 0 seconds, got {cfg.invoke_s}")
        self.job_s = job_batches * batch_s
        if cfg.sample_s is not None and not cfg.sample_s > 0:
            raise FieldError("sample_s", f"must be > 0 seconds, got {cfg.sample_s}")
        self.sample_s = batch_s / wl.batch if cfg.sample_s is None else cfg.sample_s
        self.grad_bytes = timing.grad_bytes
        self.param_bytes = timing.param_bytes
        self.timing_only = ctx.run.timing_only
        self.learners = [ctx.workload.make_learner(m % num_nodes, timing_only=self.timing_only)
                         for m in range(cfg.num_models)]
        self.arrived = simpy.Store(world.env)        # (round, worker index)
        self.round_s: list[float] = []

    # -- the master ---------------------------------------------------------------------------

    def coordinator(self, ctx: RunContext) -> Generator:
        """Play every round of the schedule with the fixed-threshold rule."""
        env, schedule, mu = ctx.env, self.schedule, self.config.mu
        decoded = 0
        while not schedule.finished and not ctx.should_stop:
            r, start_s = schedule.round, env.now
            tasks, work = schedule.tasks(), schedule.work()
            for index, node in enumerate(self.workers):
                env.process(self._round_task(ctx, node, index, r, work[index],
                                             len({t.job for t in tasks[index]})))
            waiting = {i for i in range(len(self.workers)) if work[i] > 0}
            stragglers = np.zeros(len(self.workers), dtype=bool)
            waited_all = False
            if waiting:
                first = yield from self._next_arrival(ctx, r, waiting, None)
                if first is None:
                    return
                threshold_s = start_s + (1.0 + mu) * (env.now - start_s)
                while waiting:
                    got = yield from self._next_arrival(ctx, r, waiting, threshold_s)
                    if got is None:
                        break
                if ctx.should_stop:
                    return
                if waiting:
                    stragglers[sorted(waiting)] = True
                    if not schedule.fits(stragglers):
                        waited_all = True
                        stragglers[:] = False
                        while waiting:
                            if (yield from self._next_arrival(ctx, r, waiting, None)) is None:
                                return
            self.round_s.append(env.now - start_s)
            newly = schedule.deliver(stragglers)
            ctx.world.recorder.metric("round_s", env.now - start_s, step=r)
            ctx.world.recorder.metric("stragglers", float(stragglers.sum()), step=r)
            ctx.world.recorder.metric("waited_for_all", float(waited_all), step=r)
            for job in newly:
                decoded += 1
                loss = None if self.timing_only else self._step(job)
                ctx.report(decoded, loss, job=job, model=job % self.config.num_models)

    def _next_arrival(self, ctx: RunContext, r: int, waiting: set[int],
                      until_s: float | None) -> Generator:
        """Wait for the next result of round ``r``; its worker index, or ``None`` at the limit."""
        env = ctx.env
        while True:
            got = self.arrived.get()
            limit = [ctx.stopped]
            if until_s is not None:
                limit.append(env.timeout(max(0.0, until_s - env.now)))
            yield env.any_of([got, *limit])
            if not got.triggered:
                got.cancel()
                return None
            round_index, worker = got.value
            if round_index == r and worker in waiting:      # late results of old rounds: dropped
                waiting.discard(worker)
                return worker

    def _round_task(self, ctx: RunContext, node, index: int, r: int, work: float,
                    jobs: int) -> Generator:
        """One worker's round: receive parameters, compute its mini-tasks, send the results."""
        net = ctx.world.network
        while True:
            try:
                if self.config.send_model:
                    yield net.transfer(self.master, node, self.param_bytes, label="params")
                yield node.compute(seconds=self.compute_s(work, jobs),
                                   label=f"{self.scheme}_round")
                if jobs > 0:
                    yield net.transfer(node, self.master, jobs * self.grad_bytes,
                                       label="results")
                    self.arrived.put((r, index))
                return
            except SimFailure:
                # A crashed worker is a straggler; it retries the round once it is back (a fresh
                # invocation), in case the master has to wait for everyone.
                # A crashed master (or a partition) cuts the transfers too: wait until the
                # round could go through, or the retry would spin at one instant.
                if jobs == 0:
                    return
                down = [n.recovered_event() for n in (node, self.master) if not n.is_up]
                if down:
                    yield ctx.env.any_of([*down, ctx.stopped])
                elif net.route(self.master.id, node.id) is None:
                    yield net.link_change_event() | ctx.stopped
                if ctx.should_stop or self.schedule.round != r:
                    return

    def compute_s(self, work: float, jobs: int) -> float:
        """Seconds one worker computes in a round: its samples, plus ``invoke_s`` if it has work.

        ``work`` is the fraction of a job's data in its tasks, ``jobs`` how many jobs they touch.
        """
        cfg = self.config
        if cfg.job_samples is not None:
            seconds = round(work * cfg.job_samples) * self.sample_s
        else:
            seconds = work * self.job_s
        return seconds + (cfg.invoke_s if jobs > 0 else 0.0)

    def _step(self, job: int) -> float:
        """Real math: the decoded job's gradient steps its model; returns the batch loss."""
        return self.learners[job % self.config.num_models].train_step()

    def evaluate(self, ctx: RunContext) -> float | None:
        """Mean held-out loss of the concurrently trained models."""
        if self.timing_only:
            return None
        return float(np.mean([m.eval_loss(ctx.run.eval_batches) for m in self.learners]))


@register_policy("gc_sequential")
class GCSequential(SequentialCoding):
    """Baseline: GC(n, lam) applied to each job in its own round (``T = 0``)."""

    scheme = "gc"


@register_policy("sr_sgc")
class SRSGC(SequentialCoding):
    """Selective-reattempt sequential gradient coding (``T = B``)."""

    scheme = "sr_sgc"


@register_policy("m_sgc")
class MSGC(SequentialCoding):
    """Multiplexed sequential gradient coding (``T = W - 2 + B``)."""

    scheme = "m_sgc"


@dataclass(frozen=True, kw_only=True)
class ProbeConfig(SequentialConfig):
    """The authors' delay probe: every worker computes ``load`` of a job in every round.

    load:
        Normalised load every worker computes each round (fraction of a job's data, 0..1; at 0
        a round is the invocation and the messages only).
    rounds:
        Rounds probed.
    """

    load: float = 0.0
    rounds: int = 40


@register_policy("gc_probe")
class DelayProbe(SequentialCoding):
    """Measure each worker's response time in each round at one load; the master waits for all.

    ``response_s[i, r]`` is seconds from the start of round ``r`` until worker ``i``'s result
    arrived. The tuning step (:mod:`policies.gradient_coding.tuning`) fits its linear load
    model to probes at several loads, as the authors probed their Lambda workers.
    """

    scheme = "gc"
    Config = ProbeConfig

    def setup(self, ctx: RunContext) -> None:
        """Check the probe's load and rounds, then set up as the schemes do."""
        cfg = self.config
        if not 0.0 <= cfg.load <= 1.0:
            raise FieldError("load", f"must be in [0, 1] (fraction of a job), "
                             f"got {cfg.load}")
        if cfg.rounds < 1:
            raise FieldError("rounds", f"must be >= 1, got {cfg.rounds}")
        super().setup(ctx)
        self.response_s = np.full((len(self.workers), cfg.rounds), np.nan)

    def coordinator(self, ctx: RunContext) -> Generator:
        """Run every round at the probe's load and wait for every worker."""
        env, cfg = ctx.env, self.config
        for r in range(cfg.rounds):
            if ctx.should_stop:
                return
            start_s = env.now
            for index, node in enumerate(self.workers):
                env.process(self._round_task(ctx, node, index, r, cfg.load, 1))
            waiting = set(range(len(self.workers)))
            while waiting:
                worker = yield from self._next_arrival(ctx, r, waiting, None)
                if worker is None:
                    return
                self.response_s[worker, r] = env.now - start_s
            self.round_s.append(env.now - start_s)
            ctx.report(r + 1, None)
