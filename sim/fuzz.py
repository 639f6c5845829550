"""Fault fuzzing: random failure and straggler schedules against every policy family.

Each case is drawn from one integer seed: a family, one of its policies, a cluster shape that
fits it, zero or more failure models (crashes, spot preemptions, partitions, link cuts; for the
recovery family also stage losses) and a straggler model, at rates from none to extreme. Every
run is bounded (simulated time and steps) and is checked for what must hold whatever the
schedule:

* it ends without an exception, with a known stop reason;
* every recorded loss is finite;
* bytes sent = delivered + cut + still in flight (nothing lost or made up);
* the same case run twice gives the same trace (determinism).

``python -m sim.fuzz --runs 40`` runs 40 cases per family and prints one line per case and a
table per family (the figures in docs/robustness.md came from it).
"""

from __future__ import annotations

import argparse
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.runner import RunFailed, run
from sim.scenario import scenario_from_dict
from sim.usage import (
    OneLineParser,
    at_least,
    known,
    positive_seconds,
    refusing,
)

FAMILIES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "data_parallel": [("ddp", {}), ("diloco", {"inner_steps": 3}),
                      ("noloco", {"inner_steps": 3}), ("gossip", {}),
                      ("streaming_diloco", {"inner_steps": 4}), ("palsgd", {}),
                      ("eager_diloco", {"inner_steps": 3}), ("co2", {"inner_steps": 3}),
                      ("compressed_diloco", {"inner_steps": 3}),
                      ("quorum_diloco", {"inner_steps": 3}), ("poisson_gossip", {})],
    "pipeline": [("full_pipeline", {}), ("random_skip", {}), ("skippipe", {})],
    "recovery": [("checkfree", {}), ("checkfree_plus", {}), ("checkpointing", {}),
                 ("redundant", {}), ("no_failure", {})],
    "gradient_coding": [("gc_uncoded", {}), ("gc_ignore_stragglers", {"s": 1}),
                        ("gc_cyclic", {"s": 1}), ("gc_fractional", {"s": 1}),
                        ("gc_approx", {"s": 1}), ("gc_sequential", {"num_jobs": 8}),
                        ("sr_sgc", {"num_jobs": 8}), ("m_sgc", {"num_jobs": 8})],
}
"""Each family's policies and the parameters the fuzzer runs them with."""

RATES_PER_H = (0.0, 1.0, 20.0, 200.0)
"""Node crash / preemption rates drawn per case (per node, per hour): none to extreme."""

DOWNTIMES = ("5s", "1min", "10min", "never")
"""Downtimes after a crash ("never": the node does not come back)."""

STOP_REASONS = ("until_s", "max_steps", "policy_done", "target_loss", "stalled")


@dataclass(frozen=True)
class Case:
    """One fuzz case: a family, a policy and the file-shaped scenario table to run."""

    seed: int
    family: str
    policy: str
    table: dict[str, Any]

    def describe(self) -> str:
        """One line: the case's faults, for logs."""
        faults = self.table.get("faults", {})
        kinds = [f["model"] + (f":{f['rate']}" if "rate" in f else "")
                 for f in faults.get("failures", []) if f["model"] != "stage"]
        strag = faults.get("stragglers", {}).get("model", "none")
        extra = {k: f[k] for f in faults.get("failures", []) for k in ("p_hour",) if k in f}
        return (f"seed={self.seed} {self.family}/{self.policy} nodes="
                f"{self.table['cluster']['nodes']} failures={kinds or 'none'} "
                f"stragglers={strag} {extra or ''}").rstrip()


@dataclass
class Outcome:
    """What one fuzz run did; ``problem`` is ``None`` when every check held."""

    case: Case
    stop_reason: str = ""
    steps: int = 0
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    problem: str | None = None
    trace_hash: str = ""
    repeated: bool = False
    """Whether the case ran twice (and gave the same trace)."""


def _shape(family: str, policy: str, rng: np.random.Generator
           ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Nodes and shape parameters that fit ``policy``, and the family's own failure models."""
    if family == "data_parallel":
        return int(rng.integers(2, 7)), {}, []
    if family == "pipeline":
        sizes = [int(s) for s in rng.integers(1, 3, size=int(rng.integers(2, 4)))]
        return sum(sizes) + int(rng.integers(0, 2)), {"stage_sizes": sizes,
                                                      "microbatches_per_data_node": 2,
                                                      "hop_overhead_s": 0.01}, []
    if family == "recovery":
        # stage 0 (embedding, head) + 3 or 4 transformer stages: the authors' layout
        stages, replicas = int(rng.integers(4, 6)), int(rng.integers(1, 3))
        params: dict[str, Any] = {"num_stages": stages, "replicas_per_stage": replicas,
                                  "microbatches_per_replica": 1, "forward_s": 0.05}
        stage_failures = []
        if policy != "no_failure":  # (no_failure names no stage that fails: none drawn)
            stage_failures.append({"model": "stage",
                                   "p_hour": float(rng.choice([0.0, 0.1, 0.5, 0.9])),
                                   "failure_period_s": 5.0,
                                   "rejoin_delay_s": float(rng.choice([1.0, 10.0]))})
        if policy == "checkpointing":
            params["checkpoint_every"] = int(rng.integers(1, 4))
        return stages * replicas + 1, params, stage_failures  # + the checkpoint store
    n = int(rng.integers(4, 8))  # gradient coding: a master and n - 1 workers
    if policy == "gc_fractional" and (n - 1) % 2:
        n += 1  # fractional repetition with s = 1 needs s + 1 = 2 to divide the workers
    return n, {}, []


def _failures(rng: np.random.Generator, num_nodes: int) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    rate = float(rng.choice(RATES_PER_H))
    if rate > 0:
        down = str(rng.choice(DOWNTIMES))
        spec: dict[str, Any] = {"model": "poisson", "rate": f"{rate}/h"}
        spec.update({"rejoin": False} if down == "never" else {"downtime": down})
        specs.append(spec)
    if rng.random() < 0.3:
        specs.append({"model": "spot", "rate": f"{float(rng.choice(RATES_PER_H[1:]))}/h",
                      "notice": "10s", "downtime": "2min"})
    if rng.random() < 0.3:
        half = num_nodes // 2
        sites = [f"n{i}" for i in range(num_nodes)]  # the uniform topology's sites
        specs.append({"model": "partition", "groups": [[*sites[:half], "switch"], sites[half:]],
                      "start": f"{float(rng.uniform(0, 120)):.3f}s",
                      "duration": f"{float(rng.uniform(1, 120)):.3f}s"})
    return specs


def _stragglers(rng: np.random.Generator) -> dict[str, Any]:
    kind = rng.choice(["none", "bimodal", "pareto", "gilbert_elliott"])
    if kind == "bimodal":
        return {"model": "bimodal", "p": float(rng.choice([0.05, 0.3, 0.9])),
                "slowdown": float(rng.choice([2.0, 10.0, 100.0]))}
    if kind == "pareto":
        return {"model": "pareto", "alpha": float(rng.choice([1.1, 2.0, 4.0])), "scale": 1.0}
    if kind == "gilbert_elliott":
        return {"model": "gilbert_elliott", "p_good_to_bad": 0.2, "p_bad_to_good": 0.3,
                "slowdown": float(rng.choice([3.0, 30.0]))}
    return {}


def make_case(seed: int, family: str) -> Case:
    """Draw case ``seed`` of ``family`` (the same seed always gives the same case).

    The policy is the family's ``seed mod len``-th, so consecutive seeds cover every policy; the
    rest (shape, failures, stragglers) is drawn from a stream seeded by ``(seed, family)``.
    """
    rng = np.random.default_rng([seed, sorted(FAMILIES).index(family)])
    policy, params = FAMILIES[family][seed % len(FAMILIES[family])]  # every policy in turn
    num_nodes, shape, stage_failures = _shape(family, policy, rng)
    faults: dict[str, Any] = {"failures": _failures(rng, num_nodes) + stage_failures}
    stragglers = _stragglers(rng)
    if stragglers:
        faults["stragglers"] = stragglers
    workload = {"learner": "tiny-llama", "timing": "llama-125m", "batch": 2, "seq": 8}
    if family == "recovery":
        workload["n_layers"] = 12  # equal blocks per stage for 3 or 4 transformer stages
    table = {
        "name": f"fuzz-{family}-{seed}", "seed": seed,
        "cluster": {"nodes": num_nodes},
        "network": {"model": "maxmin", "topology": "uniform", "uplink": "1Gbit/s",
                    "topology_params": {"latency": "10ms"}},
        "faults": faults,
        "workload": workload,
        "policy": {"name": policy, **params, **shape},
        "run": {"until": "10min", "steps": 12, "eval_every": "2min", "eval_batches": 1},
    }
    return Case(seed=seed, family=family, policy=policy, table=table)


class _Hang(BaseException):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Hang()


def run_case(case: Case, *, wall_limit_s: float = 60.0) -> Outcome:
    """Run ``case`` once and check the invariants; a run past ``wall_limit_s`` is a hang."""
    out = Outcome(case=case)
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, wall_limit_s)
    try:
        result = run(scenario_from_dict(case.table))
    except _Hang:
        out.problem = f"hang: no end within {wall_limit_s:g} s of wall time"
        return out
    except RunFailed as exc:
        out.problem = f"exception: {exc}"
        return out
    except Exception as exc:  # noqa: BLE001 - anything else is a finding too
        out.problem = f"exception: {type(exc).__name__}: {exc}"
        return out
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        out.wall_s = time.perf_counter() - start
    out.stop_reason, out.steps, out.sim_time_s = result.stop_reason, result.steps, \
        result.sim_time_s
    out.trace_hash = result.trace_hash()
    out.problem = check_result(result)
    return out


def check_result(result: Any) -> str | None:
    """The invariants every run keeps whatever its faults; a message for the first broken one."""
    if result.stop_reason not in STOP_REASONS:
        return f"unknown stop reason {result.stop_reason!r}"
    history = result.history
    losses = history[history.metric.isin(["loss", "eval_loss"])].value
    if not np.isfinite(losses.to_numpy()).all():
        return f"non-finite loss: {losses[~np.isfinite(losses)].head(3).tolist()}"
    rec, network = result.recorder, result.world.network
    sent = float(rec.bytes_sent.sum())
    accounted = float(rec.bytes_received.sum() + rec.bytes_cut.sum()) + network.bytes_in_flight
    if not math.isclose(sent, accounted, rel_tol=1e-9, abs_tol=1e-3):
        return f"bytes sent {sent:.6g} != delivered + cut + in flight {accounted:.6g}"
    if not math.isfinite(result.sim_time_s) or result.sim_time_s < 0:
        return f"simulated time {result.sim_time_s}"
    return None


def fuzz(families: list[str], runs: int, *, first_seed: int = 0, repeat_every: int = 4,
         wall_limit_s: float = 60.0,
         log: Callable[[str], None] | None = None) -> list[Outcome]:
    """Run ``runs`` cases of each family; every ``repeat_every``-th case twice (determinism)."""
    outcomes = []
    for family in families:
        for seed in range(first_seed, first_seed + runs):
            case = make_case(seed, family)
            out = run_case(case, wall_limit_s=wall_limit_s)
            if out.problem is None and repeat_every and seed % repeat_every == 0:
                again = run_case(case, wall_limit_s=wall_limit_s)
                out.repeated = True
                if again.problem is None and again.trace_hash != out.trace_hash:
                    out.problem = "not deterministic: two runs gave different traces"
            outcomes.append(out)
            if log is not None:
                status = out.problem or f"ok {out.stop_reason} steps={out.steps}"
                log(f"{case.describe()} -> {status} ({out.wall_s:.1f}s)")
    return outcomes


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line; a refusal is a :class:`UsageError` naming the option."""
    parser = OneLineParser(prog="python -m sim.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="cases per family")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first case")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated families (default: all)")
    parser.add_argument("--wall-limit", type=float, default=60.0, help="seconds per run")
    args = parser.parse_args(argv)
    at_least("--runs", args.runs, 1)
    # a case's seed seeds numpy, which takes no negative seed
    at_least("--first-seed", args.first_seed, 0)
    positive_seconds("--wall-limit", args.wall_limit)
    args.families = known("--families", [f for f in args.families.split(",") if f], FAMILIES,
                          "family")
    return args


@refusing("python -m sim.fuzz")
def main(argv: list[str] | None = None) -> int:
    """``python -m sim.fuzz``: fuzz the families and print a table per family.

    Exit code 0 when every case held, 1 when one did not, 2 for a command line it refuses.
    """
    args = _parse(argv)
    import torch  # deferred: heavy; `import sim` does not load it

    torch.set_num_threads(1)  # tiny learners: one thread is fastest, more fight over cores
    families = args.families
    outcomes = fuzz(families, args.runs, first_seed=args.first_seed,
                    wall_limit_s=args.wall_limit, log=print)
    print(f"\n{'family':<16} {'runs':>5} {'policies':>8} {'repeated':>8} {'crashes':>8} "
          f"{'hangs':>6} {'other':>6} {'stalled':>8} {'max wall s':>10}")
    for family in families:
        mine = [o for o in outcomes if o.case.family == family]
        crashes = sum(bool(o.problem and o.problem.startswith("exception")) for o in mine)
        hangs = sum(bool(o.problem and o.problem.startswith("hang")) for o in mine)
        other = sum(o.problem is not None for o in mine) - crashes - hangs
        stalled = sum(o.stop_reason == "stalled" for o in mine)
        policies = len({o.case.policy for o in mine})
        repeated = sum(o.repeated for o in mine)
        print(f"{family:<16} {len(mine):>5} {policies:>8} {repeated:>8} {crashes:>8} {hangs:>6} "
              f"{other:>6} {stalled:>8} {max(o.wall_s for o in mine):>10.1f}")
    return 1 if any(o.problem for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
