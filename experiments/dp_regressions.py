"""Run the data-parallel regression scenarios (scenarios/dp-*.toml) at full size; print figures.

Usage: python -m experiments.dp_regressions [NAME ...] [--set KEY=VALUE ...]
(names: see EXPERIMENTS; default all; ``--set`` overrides keys of every scenario file run)

Every figure in docs/methods/data-parallel.md comes from this script. The fast CI versions of
the same checks are in tests/data_parallel/test_dp_regressions.py.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from sim.policy import get_policy
from sim.runner import run
from sim.scenario import load, resolve_policies
from sim.usage import OneLineParser, command_line_checks, known, refusing

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
OVERRIDES: list[str] = []


def run_file(name: str, overrides: list[str] = (), labels=None) -> dict:
    """``{label: (result, policy)}`` for the policies of ``<name>.toml``."""
    spec = load(SCENARIOS / f"{name}.toml", [*OVERRIDES, *overrides])
    out = {}
    for label, pc in resolve_policies(spec):
        if labels is None or label in labels:
            pol = get_policy(pc.name)(**pc.params)
            out[label] = (run(spec.scenario, pol), pol)
    return out


def sync_mean_s(result) -> float:
    """Mean synchronisation step (seconds from arriving at a sync to resuming)."""
    return float(result.history.query("metric == 'sync_s'").value.mean())


def byte_ratio() -> None:
    """Byte ratio DDP/DiLoCo for the same steps."""
    ddp, _ = run_file("dp-byte-ratio", labels=["ddp"])["ddp"]
    diloco, pol = run_file("dp-byte-ratio", ["run.steps=501"], labels=["diloco"])["diloco"]
    b_ddp, b_diloco = ddp.summary["bytes_sent"], diloco.summary["bytes_sent"]
    print(f"bytes: DDP {b_ddp:.6g} B over 500 steps, DiLoCo (H={pol.config.inner_steps}) "
          f"{b_diloco:.6g} B over {pol.group.completed + 1} syncs; ratio {b_ddp / b_diloco:.6f}")


def slow_wan() -> None:
    """Time to target on the slow WAN, and speed-ups over DDP."""
    runs = run_file("dp-slow-wan")
    t_ddp = runs["ddp"][0].time_to_target_s
    for label, (r, _) in runs.items():
        t = r.time_to_target_s
        speedup = f"{t_ddp / t:.1f}x" if t and t_ddp else "n/a"
        print(f"slow-wan: {label:8s} time to target {t} s, steps {r.steps}, "
              f"bytes {r.summary['bytes_sent']:.3g}, speed-up over DDP {speedup}")


def sync_vs_nodes(counts=(16, 32, 64, 128, 256, 512, 1024)) -> None:
    """DiLoCo's all-reduce against NoLoCo's pair exchange, N = 16 .. 1024."""
    for n in counts:
        runs = run_file("dp-sync-vs-nodes", [f"cluster.nodes={n}"])
        d = sync_mean_s(runs["diloco"][0])
        c, s = sync_mean_s(runs["noloco"][0]), sync_mean_s(runs["noloco_swap"][0])
        print(f"sync-vs-nodes: N={n:5d} DiLoCo {d:.4f} s | NoLoCo reduce_to_root {c:.4f} s "
              f"ratio {d / c:.3f} | NoLoCo swap {s:.4f} s ratio {d / s:.2f}")


def stragglers() -> None:
    """Idle fractions under bimodal and Pareto stragglers."""
    for spec in ('{model="bimodal", p=0.1, slowdown=4}', '{model="pareto", alpha=2.0}'):
        runs = run_file("dp-stragglers", [f"faults.stragglers={spec}"])
        idle = {label: round(r.summary["idle_fraction"], 3) for label, (r, _) in runs.items()}
        print(f"stragglers {spec}: idle fraction {idle}")


def streaming() -> None:
    """Bytes per synchronisation and totals, Streaming DiLoCo vs DiLoCo."""
    runs = run_file("dp-streaming-bytes")
    diloco_rounds = runs["diloco"][1].group.bytes_per_round
    for label, (_r, pol) in runs.items():
        groups = getattr(pol, "groups", None) or [pol.group]
        peak = max(max(g.bytes_per_round) for g in groups)
        rounds = min(len(g.bytes_per_round) for g in groups)
        total = sum(sum(g.bytes_per_round[:rounds]) for g in groups)
        print(f"streaming: {label:15s} bytes per sync {peak:.6g} "
              f"({peak / diloco_rounds[0]:.4f} of DiLoCo's); over {rounds} periods {total:.6g} "
              f"({total / sum(diloco_rounds[:rounds]):.4f} of DiLoCo's)")


def palsgd() -> None:
    """PALSGD's time to target against DDP (compute-bound, real text), the whole 600 steps."""
    runs = run_file("dp-palsgd", ["run.stop_at_target=false"])
    target = 2.4
    t = {label: first_below(r, (target,))[target] for label, (r, _) in runs.items()}
    for label, (r, _) in runs.items():
        slower = (f"{100 * (t[label] / t['ddp'] - 1):+.1f}% time vs DDP"
                  if t[label] and t["ddp"] else "target not reached by both")
        print(f"palsgd: {label:11s} final eval loss {r.final_loss:.4f} after {r.steps} steps, "
              f"sim time {r.summary['sim_time_s']:.0f} s ({r.summary['sim_time_s'] / r.steps:.4f}"
              f" s per step); to {target}: {slower}")
        print(f"palsgd: {label:11s} (time s, step) first at or below: "
              f"{first_below(r, PALSGD_THRESHOLDS, with_step=True)}")


PALSGD_THRESHOLDS = (3.0, 2.8, 2.6, 2.4, 2.2, 2.0)
"""Eval losses (stdlib text, nats per byte) whose first crossing is printed by ``palsgd``."""


def outer_drop(probabilities=(0.0, 0.5)) -> None:
    """DiLoCo with each outer gradient dropped with probability p (the paper: p=0.5, +2.1%)."""
    for p in probabilities:
        runs = run_file("dp-slow-wan", [f"policies.diloco.drop_outer_gradient_p={p}",
                                        "run.stop_at_target=false"], labels=["diloco"])
        result, _ = runs["diloco"]
        print(f"outer-drop: p={p}: final eval loss {result.final_loss:.4f}, time to target "
              f"{result.time_to_target_s}, bytes sent {result.summary['bytes_sent']:.6g}")


def outer_drop_seeds(seeds=(0, 1, 2), nodes=8) -> None:
    """Outer-gradient dropping (p = 0.5 against 0) over several seeds, on ``nodes`` workers.

    The slow-WAN file with ``nodes`` workers (the paper's 8), H = 20, 400 steps, evaluated every
    2 simulated minutes. Per seed: both final eval losses (mean of the workers' own models), the
    perplexity cost, and the step at which the p = 0 run first reached p = 0.5's final loss
    (how many of the 400 steps' progress the drops cost).
    """
    costs = []
    for seed in seeds:
        result = {}
        for p in (0.0, 0.5):
            runs = run_file("dp-slow-wan", [f"seed={seed}", f"cluster.nodes={nodes}",
                                            f"policies.diloco.drop_outer_gradient_p={p}",
                                            "run.stop_at_target=false", "run.eval_every=2min"],
                            labels=["diloco"])
            result[p] = runs["diloco"][0]
        cost = math.exp(result[0.5].final_loss - result[0.0].final_loss) - 1
        costs.append(cost)
        reached = first_below(result[0.0], (result[0.5].final_loss,), with_step=True)
        print(f"outer-drop-seeds: seed {seed}, {nodes} workers: final eval loss p=0 "
              f"{result[0.0].final_loss:.4f}, p=0.5 {result[0.5].final_loss:.4f} "
              f"({100 * cost:+.1f}% perplexity); p=0 first at or below p=0.5's final loss "
              f"(time s, step): {reached}", flush=True)
    print(f"outer-drop-seeds: p=0.5 costs {100 * sum(costs) / len(costs):+.1f}% perplexity on "
          f"average over seeds {list(seeds)} (min {100 * min(costs):+.1f}%, "
          f"max {100 * max(costs):+.1f}%)")


def first_below(result, thresholds, metric="eval_loss", with_step=False) -> dict:
    """When ``metric`` first reached each threshold (None: never).

    Simulated seconds, or ``(seconds, step)`` pairs with ``with_step``.
    """
    h = result.loss_curve(metric)
    out = {}
    for t in thresholds:
        hit = h[h.value <= t]
        if hit.empty:
            out[t] = None
        else:
            out[t] = ((float(hit.time_s.iloc[0]), int(hit.step.iloc[0])) if with_step
                      else float(hit.time_s.iloc[0]))
    return out


def stdlib_proxy() -> None:
    """The slow-WAN comparison on Python's standard-library source text (the real-text proxy)."""
    runs = run_file("dp-slow-wan", ["workload.data=python-stdlib", "run.stop_at_target=false"])
    for label, (r, _) in runs.items():
        print(f"stdlib: {label:8s} final eval loss {r.final_loss:.4f} after {r.steps} steps, "
              f"sim time {r.summary['sim_time_s']:.0f} s; first time at or below "
              f"{first_below(r, THRESHOLDS)}")


THRESHOLDS = (4.0, 3.5, 3.0, 2.8, 2.6, 2.4, 2.0, 1.6, 1.4, 1.3)
"""Eval losses whose first crossing time is printed (Markov proxy: 2.0..1.3; stdlib: 4..2.4)."""


def dp_pp(routings=("random",)) -> None:
    """NoLoCo vs DiLoCo over pipelines (4 stages x 4 replicas), with the given routing(s)."""
    for routing in routings:
        runs = run_file("dp-pp-noloco", [f"policies.diloco.routing={routing}",
                                         f"policies.noloco.routing={routing}"])
        for label, (r, _) in runs.items():
            print(f"dp-pp: {routing:6s} {label:7s} final eval loss {r.final_loss:.4f} after "
                  f"{r.steps} steps, sim time {r.summary['sim_time_s']:.0f} s, time to "
                  f"target {r.time_to_target_s}, mean sync step {sync_mean_s(r):.2f} s, "
                  f"bytes {r.summary['bytes_sent']:.4g}; first time at or below "
                  f"{first_below(r, THRESHOLDS)}")


def throughput(result, policy) -> float:
    """Samples per second processed by all workers together (local steps x batch / time)."""
    batch = policy.ctx.workload.config.batch
    return sum(policy.steps_done) * batch / result.summary["sim_time_s"]


def hetero_gossip() -> None:
    """D-PSGD and AD-PSGD against all-reduce SGD with slow workers on a shared network."""
    runs = run_file("dp-hetero-gossip")
    rate = {label: throughput(r, pol) for label, (r, pol) in runs.items()}
    for label, (r, pol) in runs.items():
        print(f"hetero-gossip: {label:7s} {rate[label]:.1f} samples/s "
              f"({rate[label] / rate['ddp']:.2f}x DDP), local steps {sum(pol.steps_done)}, "
              f"idle fraction {r.summary['idle_fraction']:.3f}")


EXPERIMENTS = {"bytes": byte_ratio, "slow-wan": slow_wan, "sync-vs-nodes": sync_vs_nodes,
               "stragglers": stragglers, "streaming": streaming, "palsgd": palsgd,
               "outer-drop": outer_drop, "outer-drop-seeds": outer_drop_seeds,
               "hetero-gossip": hetero_gossip,
               "stdlib": stdlib_proxy, "dp-pp": dp_pp,
               "dp-pp-fixed": lambda: dp_pp(("fixed",))}

#: The scenario files (``scenarios/<name>.toml``) each experiment reads through :func:`run_file`:
#: the command line's ``--set`` overrides are checked against them before anything runs.
FILES = {"bytes": ["dp-byte-ratio"], "slow-wan": ["dp-slow-wan"],
         "sync-vs-nodes": ["dp-sync-vs-nodes"], "stragglers": ["dp-stragglers"],
         "streaming": ["dp-streaming-bytes"], "palsgd": ["dp-palsgd"],
         "outer-drop": ["dp-slow-wan"], "outer-drop-seeds": ["dp-slow-wan"],
         "hetero-gossip": ["dp-hetero-gossip"], "stdlib": ["dp-slow-wan"],
         "dp-pp": ["dp-pp-noloco"], "dp-pp-fixed": ["dp-pp-noloco"]}

PROG = "python -m experiments.dp_regressions"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The experiments to run and the overrides; a bad name is a :class:`UsageError`.

    Everything after ``--set`` is an override (``--set a=1 b=2``), as the docs write it.
    """
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"experiments to run (default: all): {', '.join(EXPERIMENTS)}")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override keys of every scenario file run")
    args = parser.parse_args(argv)
    if args.names in ([], ["all"]):
        args.names = list(EXPERIMENTS)
    known("NAME", args.names, EXPERIMENTS, "experiment")
    with command_line_checks():  # a bad --set is refused now, before any experiment runs
        for file in dict.fromkeys(f for name in args.names for f in FILES[name]):
            load(SCENARIOS / f"{file}.toml", args.overrides)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run the named experiments (default: all) and print their figures."""
    args = parse_command_line(argv)
    OVERRIDES[:] = args.overrides  # read by run_file, which every experiment calls
    torch.set_num_threads(1)
    try:
        for name in args.names:
            EXPERIMENTS[name]()
    finally:
        OVERRIDES.clear()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
