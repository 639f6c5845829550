"""Coded data-parallel training: workers send coded gradients, a master decodes and steps.

One node (the last, by default) is the master: a decoding node with its own links. The other
``n`` nodes are workers; the data of a round is ``n`` partitions (one microbatch each, partition
``j`` read from stream ``j`` of the workload). A round, top to bottom:

1. the master sends the current parameters (``param_bytes``) to every worker;
2. worker ``i`` computes on the partitions of its row ``b_i`` (``node.compute`` for the timing
   model's step time of one batch of ``|supp(b_i)|`` microbatches: load ``(s+1)/n`` of the round's
   data), then sends its coded gradient ``f_i = sum_j B_ij g_j`` (``grad_bytes``) to the master;
3. the master decodes from the first responders that suffice (the scheme's rule below), combines
   ``sum a_i f_i`` into the full-batch gradient, and steps its learner; late results are dropped.

A worker always works on the newest parameters it has: when it finishes a task after the master
moved on, it drops the stale result and starts on the newest round (a straggler does not queue
up old rounds).

Schemes (one mechanism, five registered names):

==========================  ================================  =================================
policy                      worker ``i`` sends                 master decodes when
==========================  ================================  =================================
``gc_uncoded``              ``g_i``                            all ``n`` arrived
``gc_ignore_stragglers``    ``g_i``                            ``n - s`` arrived (sum x n/(n-s))
``gc_fractional``           sum of its group's ``s+1``         one per group arrived
``gc_cyclic``               cyclic-repetition combination      ``n - s`` arrived (least squares)
``gc_approx``               cyclic or expander combination     ``wait_for`` arrived (best fit)
==========================  ================================  =================================

The real math: the master keeps one learner (the model) and ``n`` partition learners that only
compute gradients at the master's parameters on their own streams; the encoding and decoding run
in float64 on those real gradients, so the decoded gradient *is* what the workers would send.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import simpy
import torch

from policies.gradient_coding.codes import Decoding, GradientCode, make_code
from sim.errors import FieldError, ScenarioError, SimFailure
from sim.policy import Policy, RunContext, register_policy


@dataclass(frozen=True, kw_only=True)
class UncodedConfig:
    """Uncoded data parallelism with a master: wait for every worker.

    master:
        Node id of the master (decoding node); ``None``: the last node.
    send_model:
        Whether each round starts with the master sending ``param_bytes`` to every worker.
    """

    master: int | None = None
    send_model: bool = True


@dataclass(frozen=True, kw_only=True)
class CodedConfig(UncodedConfig):
    """A gradient code tolerating ``s`` stragglers (or, uncoded, ignoring ``s`` of them).

    s:
        Stragglers per round the master does not wait for (``0 <= s < n``).
    """

    s: int = 1


@dataclass(frozen=True, kw_only=True)
class ApproxConfig(CodedConfig):
    """Approximate gradient coding: a code of load ``(s+1)/n`` decoded from ``wait_for`` results.

    code:
        ``"cyclic"`` (cyclic repetition, best-fit least-squares decoder) or ``"expander"`` (a
        random ``(s+1)``-regular graph's adjacency matrix, fixed decoder ``n / ((s+1) |F|)``).
    wait_for:
        Responders the master decodes from (``1 <= wait_for <= n``);
        ``None``: ``n - 2s`` (twice the stragglers the code is built for). Below ``n - s`` the
        decoded gradient is approximate; its error ``||B_F^T a - 1||^2`` is reported.
    """

    code: str = "cyclic"
    wait_for: int | None = None


@dataclass
class _Round:
    """The master's state for one round."""

    index: int
    params: torch.Tensor | None          # parameters the workers compute on (None: timing only)
    arrivals: list[int]                  # worker ids in arrival order
    done: simpy.Event                    # fires when the master has decoded this round


class CodedTraining(Policy):
    """The coded data-parallel mechanism; subclasses pick the scheme (see module docstring)."""

    scheme: ClassVar[str] = ""
    Config = UncodedConfig

    # -- setup --------------------------------------------------------------------------------

    def check(self, scenario: Any) -> None:
        """Master id, worker count and ``s`` against the cluster, before any world is built."""
        n = self._check_shape(scenario.cluster.num_nodes)
        self._check_s(getattr(self.config, "s", 0), n)

    def _check_shape(self, num_nodes: int) -> int:
        """The master's id on ``num_nodes`` nodes is valid and a worker is left: return n."""
        cfg = self.config
        master = num_nodes - 1 if cfg.master is None else cfg.master
        if not 0 <= master < num_nodes:
            raise FieldError("master", f"must be a node id in 0..{num_nodes - 1}, got {master}")
        if num_nodes - 1 < 1:
            raise ScenarioError("cluster.nodes", f"policy {self.name!r} needs at least 2 nodes "
                                                 f"(a master and a worker), got {num_nodes}")
        return num_nodes - 1

    def setup(self, ctx: RunContext) -> None:
        """Pick master and workers, build the code and the learners."""
        world, cfg = ctx.world, self.config
        num_nodes = world.num_nodes
        n = self._check_shape(num_nodes)
        master = num_nodes - 1 if cfg.master is None else cfg.master
        self.master = world.nodes[master]
        self.workers = [node for node in world.nodes if node.id != master]
        self.n = n
        self.code = self._make_code(n, world.policy_rng("gradient_coding", "H"))
        self.wait_for = self._wait_for(n)
        timing = ctx.workload.timing
        wl = ctx.workload.config
        device = self.master.device
        if device is not None:
            # one pass over the (s+1) partitions of a row: a batch (s+1) times larger
            self.task_seconds = {k: timing.step_seconds(device, k * wl.batch, wl.seq)
                                 for k in range(1, n + 1)}
        else:
            self.task_seconds = {k: k * timing.step_flops(wl.batch, wl.seq)
                                 / self.master.flops_per_s for k in range(1, n + 1)}
        self.decode_flops_per_result = 2.0 * timing.num_params    # a_i f_i added into the sum
        self.grad_bytes = timing.grad_bytes
        self.param_bytes = timing.param_bytes
        self.timing_only = ctx.run.timing_only
        # the model (master) and one gradient-only learner per data partition
        self.learner = ctx.workload.make_learner(master, timing_only=self.timing_only)
        self.partitions = [ctx.workload.make_learner(w.id, timing_only=self.timing_only)
                           for w in self.workers]
        self.inbox = {w.id: simpy.Store(world.env) for w in self.workers}
        self.arrived = simpy.Store(world.env)        # (round, worker index) at the master
        self.current: _Round | None = None

    def _make_code(self, n: int, rng: np.random.Generator) -> GradientCode:
        if self.scheme in ("uncoded", "ignore_stragglers"):
            s = getattr(self.config, "s", 0)
            self._check_s(s, n)
            code = make_code("uncoded", n, 0)
            return GradientCode(scheme="uncoded", n=n, s=s, B=code.B)
        s = self.config.s
        self._check_s(s, n)
        scheme = self.scheme
        if scheme == "approx":
            scheme = self.config.code
            if scheme not in ("cyclic", "expander"):
                raise FieldError("code", f"must be 'cyclic' or 'expander', got {scheme!r}")
        return make_code(scheme, n, s, rng=rng)  # refusals of ``s`` are FieldErrors

    def _check_s(self, s: int, n: int) -> None:
        if not 0 <= s < n:
            raise FieldError("s", f"must be in [0, n={n}) for {n} workers, "
                             f"got {s}")

    def _wait_for(self, n: int) -> int:
        if self.scheme == "uncoded":
            return n
        if self.scheme == "approx":
            k = self.config.wait_for
            k = max(1, n - 2 * self.config.s) if k is None else k
            if not 1 <= k <= n:
                raise FieldError("wait_for", f"must be in [1, n={n}], got {k}")
            return k
        return n - self.code.s

    # -- the master ---------------------------------------------------------------------------

    def coordinator(self, ctx: RunContext) -> Generator:
        """Run rounds: send parameters, collect coded gradients, decode, step, report."""
        env = ctx.env
        step = 0
        while not ctx.should_stop:
            params = None if self.timing_only else self.learner.get_flat()
            rnd = _Round(step, params, [], env.event())
            self.current = rnd
            start_s = env.now
            for w in self.workers:
                env.process(self._send_model(ctx, w, rnd))
            decoding = None
            while decoding is None:
                got = self.arrived.get()
                yield got | ctx.stopped
                if not got.triggered:
                    got.cancel()
                    return
                round_index, worker = got.value
                if round_index != rnd.index:
                    continue                                   # a late result of an old round
                rnd.arrivals.append(worker)
                decoding = self._try_decode(rnd.arrivals)
            rnd.done.succeed()
            # the master's own work: combine |F| vectors (2 FLOP per parameter each)
            if np.isfinite(self.master.flops_per_s):
                yield self.master.compute(flops=self.decode_flops_per_result * len(decoding.used),
                                          label="decode")
            step += 1
            loss = None if self.timing_only else self._apply(decoding)
            ctx.report(step, loss, responders=len(decoding.used), round_s=env.now - start_s,
                       decode_error=decoding.error_sq)

    def _try_decode(self, arrivals: list[int]) -> Decoding | None:
        """Apply the scheme's stopping rule: a decoding once enough arrived, else ``None``."""
        if self.scheme == "ignore_stragglers":
            if len(arrivals) < self.wait_for:
                return None
            coefficients = np.zeros(self.n)
            coefficients[arrivals] = self.n / len(arrivals)    # rescaled partial sum
            return Decoding(coefficients=coefficients, used=tuple(arrivals), residual=0.0,
                            error_sq=0.0)
        if self.scheme in ("uncoded", "approx"):
            return self.code.decode(arrivals) if len(arrivals) >= self.wait_for else None
        if not self.code.can_decode(arrivals):
            return None
        return self.code.decode(arrivals)

    def _apply(self, decoding: Decoding) -> float:
        """Real math: encode the partition gradients, decode, step the model; the batch loss."""
        params = self.current.params
        grads, losses = partition_gradients(self.partitions, params)
        used = list(decoding.used)
        coded = self.code.B[used] @ grads                    # (|F|, d): what the responders sent
        total = decoding.coefficients[used] @ coded          # sum_i a_i f_i = sum_j g_j, float64
        self.learner.set_flat_grad(torch.from_numpy(total / self.n).float())
        self.learner.optimizer_step()
        return float(np.mean(losses))

    def _send_model(self, ctx: RunContext, worker, rnd: _Round) -> Generator:
        try:
            if self.config.send_model:
                yield ctx.world.network.transfer(self.master, worker, self.param_bytes,
                                                 label="params")
        except SimFailure:
            return                                           # the worker misses this round
        self.inbox[worker.id].put(rnd)

    # -- a worker -----------------------------------------------------------------------------

    def worker(self, ctx: RunContext, node) -> Generator | None:
        """Compute the coded gradient of the newest round, send it unless already stale."""
        if node.id == self.master.id:
            return None
        return self._work(ctx, node)

    def _work(self, ctx: RunContext, node) -> Generator:
        index = self.workers.index(node)
        task_s = self.task_seconds[len(self.code.support(index))]
        inbox = self.inbox[node.id]
        while not ctx.should_stop:
            got = inbox.get()
            yield got | ctx.stopped
            if not got.triggered:
                got.cancel()
                return
            rnd = got.value
            while inbox.items:                               # skip to the newest parameters
                rnd = inbox.items.pop(0)
            if rnd.done.triggered:
                continue
            try:
                yield node.compute(seconds=task_s, label="coded_grad")
                if rnd.done.triggered:
                    continue                                 # stale: the master moved on
                yield ctx.world.network.transfer(node, self.master, self.grad_bytes,
                                                 label="coded_grad")
            except SimFailure:
                if not node.is_up:
                    yield node.recovered_event() | ctx.stopped
                continue
            self.arrived.put((rnd.index, index))

    def evaluate(self, ctx: RunContext) -> float | None:
        """Held-out loss of the master's model."""
        if self.timing_only:
            return None
        return self.learner.eval_loss(ctx.run.eval_batches)


def partition_gradients(learners: list[Any],
                        params: torch.Tensor) -> tuple[np.ndarray, list[float]]:
    """Gradients of every partition at ``params``: ``G`` (n, d) float64, and the batch losses.

    Partition ``j``'s gradient is learner ``j``'s mean-loss gradient on its next microbatch, so
    ``G.mean(0)`` is the full-batch gradient of the ``n`` microbatches together.
    """
    rows, losses = [], []
    for learner in learners:
        learner.set_flat(params)
        losses.append(learner.compute_grad())
        rows.append(learner.get_flat_grad().double().numpy())
    return np.stack(rows), losses


@register_policy("gc_uncoded")
class GCUncoded(CodedTraining):
    """Uncoded baseline: the master waits for all ``n`` workers every round."""

    scheme = "uncoded"
    Config = UncodedConfig


@register_policy("gc_ignore_stragglers")
class GCIgnoreStragglers(CodedTraining):
    """Uncoded, but the master uses the first ``n - s`` results, rescaled by ``n/(n-s)``."""

    scheme = "ignore_stragglers"
    Config = CodedConfig


@register_policy("gc_fractional")
class GCFractional(CodedTraining):
    """Fractional repetition code; needs ``(s+1) | n``."""

    scheme = "fractional"
    Config = CodedConfig


@register_policy("gc_cyclic")
class GCCyclic(CodedTraining):
    """Cyclic repetition code (random ``H``, least-squares decoding in float64)."""

    scheme = "cyclic"
    Config = CodedConfig


@register_policy("gc_approx")
class GCApprox(CodedTraining):
    """Approximate gradient coding: decoding from ``wait_for`` results, with its error."""

    scheme = "approx"
    Config = ApproxConfig
