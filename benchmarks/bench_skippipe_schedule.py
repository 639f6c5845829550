"""How long SkipPipe's scheduler takes on the 20-node reference, and the reference's table.

Scheduling (default): build the reference's hop costs (20 nodes in 12 GCP regions, 32 MiB
activations, 0.35 s per hop), search the node-to-stage allocation, then run CBS over A* with and
without collision awareness; print the wall time of each part and the predicted iteration time.
Target: the whole 20-node schedule in under 30 s on 2 cores.

Reference table (``--reference ideal`` or ``--reference maxmin``): run the four methods of
``scenarios/skippipe-reference-<net>.toml`` through the engine (timing only) and print each
one's mean iteration time (pipeline part) and stage all-reduce time, with the ratio to the full
pipeline.

    python benchmarks/bench_skippipe_schedule.py
    python benchmarks/bench_skippipe_schedule.py --reference ideal
    python benchmarks/bench_skippipe_schedule.py --reference maxmin
    python benchmarks/bench_skippipe_schedule.py --training    # real training, a few minutes
    python benchmarks/bench_skippipe_schedule.py --collisions reference   # or: ci
    python benchmarks/bench_skippipe_schedule.py --collisions reference --transport tcp
    python benchmarks/bench_skippipe_schedule.py --reference ideal --set network.transport=tcp
    python benchmarks/bench_skippipe_schedule.py --reference ideal --seeds 0,1,2,3,4 [--set ...]
    python benchmarks/bench_skippipe_schedule.py --reference ideal --budget [--set ...]
    python benchmarks/bench_skippipe_schedule.py --reference ideal --set network.transport=tcp \
        --set policies.skippipe.hop_costs=fluid --set policies.skippipe_blind.hop_costs=fluid
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from sim.scenario import load
from sim.usage import (
    OneLineParser,
    at_least,
    command_line_checks,
    refusing,
    seed_list,
)

ROOT = Path(__file__).resolve().parents[1]

PROG = "benchmarks/bench_skippipe_schedule.py"


def reference_scenario(network: str) -> Path:
    """The scenario file of the reference on the ``network`` model (``ideal``, ``maxmin``)."""
    return ROOT / "scenarios" / f"skippipe-reference-{network}.toml"


def planner_costs(n: int, transport: str) -> tuple[np.ndarray, Any]:
    """The reference's hop costs on ``n`` GCP nodes: ``(allocation hop_s, NodeCosts)``.

    The allocation always prices hops as the authors (fluid); the path planner's costs follow
    ``transport`` (``fluid``: the same matrix; ``tcp``: the tcp transport's closed forms).
    """
    from policies.pipeline.costs import NodeCosts, hop_costs
    from sim.config import NetworkConfig
    from sim.network.forecast import MessageForecast
    from sim.world import World
    from topologies import gcp_regions

    world = World(gcp_regions(n), network=NetworkConfig(model="ideal", transport=transport),
                  flops_per_s=1e12)
    forecast = MessageForecast.of_network(world.network, n)
    alloc_hop, _ = hop_costs(forecast, 32 * 2**20, 0.35, model="fluid")
    hop, hops = hop_costs(forecast, 32 * 2**20, 0.35)
    return alloc_hop, NodeCosts(hop_s=hop, forward_s=np.full(n, 0.055 * 8 * 4), transport=hops)


def bench_schedule(seed: int, transport: str = "fluid") -> None:
    from policies.pipeline.allocation import random_allocation, search_allocation
    from policies.pipeline.cbs import CBSConfig
    from policies.pipeline.paths import PathRules
    from policies.pipeline.schedules import (
        full_pipeline_microbatches,
        make_agents,
        predict_makespan,
        skippipe_routes,
        stage_of_nodes,
    )

    n, sizes, m = 20, [5, 3, 3, 3, 3, 3], 3
    t0 = time.perf_counter()
    hop, costs = planner_costs(n, transport)  # fluid (default): the authors' emulator
    t1 = time.perf_counter()
    alloc = search_allocation(hop, sizes, np.random.default_rng(seed), restarts=8)
    t2 = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    randoms = np.array([random_allocation(hop, sizes, rng).cost_s for _ in range(1000)])
    stage_of = stage_of_nodes(alloc.replicas, n)
    agents, loads = make_agents(alloc.replicas[0], 6, m, costs.forward_s)
    rules = PathRules.for_skip_ratio(6, 1 / 3)
    t3 = time.perf_counter()
    blind, sb = skippipe_routes(agents, loads, costs, stage_of, rules, m,
                                CBSConfig(collision_aware=False))
    t4 = time.perf_counter()
    aware, sa = skippipe_routes(agents, loads, costs, stage_of, rules, m,
                                CBSConfig(collision_aware=True))
    t5 = time.perf_counter()
    full = predict_makespan(costs, full_pipeline_microbatches(alloc, 6), m)
    print(f"hop costs            {t1 - t0:6.2f} s")
    print(f"allocation search    {t2 - t1:6.2f} s  cost {alloc.cost_s:.2f} s; 1000 random: "
          f"mean {randoms.mean():.2f} s, best {randoms.min():.2f} s, "
          f"search better than {100 * (randoms > alloc.cost_s).mean():.1f}%")
    print(f"CBS, collision-blind {t4 - t3:6.2f} s  {sb.expansions} expansions, predicted "
          f"{predict_makespan(costs, blind, m):.2f} s")
    print(f"CBS, collision-aware {t5 - t4:6.2f} s  {sa.expansions} expansions, predicted "
          f"{predict_makespan(costs, aware, m):.2f} s")
    print(f"full pipeline predicted {full:.2f} s")
    print(f"total (allocation + aware CBS) {t2 - t1 + t5 - t4:.2f} s")


def collision_budget(n: int, sizes: list[int], seed: int, transport: str = "fluid") -> None:
    """Where each method's predicted iteration goes (fluid, ideal network, timeline model).

    For the routes of each method on ``n`` nodes in the GCP regions with ``sizes`` replicas per
    stage, print the predicted iteration, the same routes with unlimited memory slots (what the
    ``m`` slots cost), the slowest microbatch alone (no other traffic), the busiest node's
    compute, and the mean number of microbatch visits per non-data node (the load that makes
    collisions possible; the cap is ``m``).
    """
    from policies.pipeline.allocation import search_allocation
    from policies.pipeline.cbs import CBSConfig
    from policies.pipeline.paths import PathRules
    from policies.pipeline.schedules import (
        agent_microbatches,
        full_pipeline_microbatches,
        make_agents,
        random_skip_routes,
        skippipe_routes,
        stage_of_nodes,
    )
    from policies.pipeline.timeline import simulate_iteration

    m = 3
    hop, costs = planner_costs(n, transport)
    alloc = search_allocation(hop, sizes, np.random.default_rng(seed), restarts=8)
    stage_of = stage_of_nodes(alloc.replicas, n)
    agents, loads = make_agents(alloc.replicas[0], 6, m, costs.forward_s)
    rules = PathRules.for_skip_ratio(len(sizes), 1 / 3)
    routes = {
        "full": full_pipeline_microbatches(alloc, 6),
        "random": agent_microbatches(random_skip_routes(agents, alloc.replicas, rules, m,
                                                        np.random.default_rng(seed + 1)), loads),
        "blind": skippipe_routes(agents, loads, costs, stage_of, rules, m,
                                 CBSConfig(collision_aware=False))[0],
        "aware": skippipe_routes(agents, loads, costs, stage_of, rules, m,
                                 CBSConfig(collision_aware=True))[0],
    }
    data = set(alloc.replicas[0])
    print(f"{n} nodes, stages {sizes}, m = {m}, transport {transport}")
    print(f"{'routes':<8} {'iteration':>9} {'no m limit':>10} {'slowest alone':>13} "
          f"{'busiest node':>12} {'visits/node':>11}")
    for label, mbs in routes.items():
        nodes = [mb.nodes for mb in mbs]
        chains = [mb.chain for mb in mbs]
        tl = simulate_iteration(costs, nodes, memory=m, chains=chains)
        free = simulate_iteration(costs, nodes, memory=10**6, chains=chains)
        alone = max(simulate_iteration(costs, [r], memory=m).makespan_s for r in nodes)
        busy = np.zeros(n)
        for t in tl.tasks:
            busy[t.node] += t.end_s - t.start_s
        visits = sum(1 for r in nodes for v in r[1:] if v not in data) / (n - len(data))
        print(f"{label:<8} {tl.makespan_s:9.2f} {free.makespan_s:10.2f} {alone:13.2f} "
              f"{busy.max():12.2f} {visits:11.2f}")


def scenario_budget(network: str, overrides: list[str]) -> None:
    """Where the reference scenario's predicted iteration goes, with its policies' own routes.

    Sets up each method of ``scenarios/skippipe-reference-<network>.toml`` (with ``overrides``,
    e.g. ``network.transport=tcp``) as a run would, takes its first iteration's routes and
    times them with the timeline model priced by the scenario's transport (exact on the
    ``ideal`` network): the iteration; the same routes with no time collisions (a node runs
    any number of tasks at once: what collision awareness could at most remove); with
    unlimited memory slots; and the slowest microbatch alone.
    """
    import dataclasses

    from policies.pipeline.costs import hop_costs
    from policies.pipeline.timeline import simulate_iteration
    from sim.network.forecast import MessageForecast
    from sim.policy import RunContext
    from sim.runner import build_policy, build_workload
    from sim.scenario import load
    from sim.world import World

    spec = load(reference_scenario(network), overrides)
    print(f"transport {spec.network.transport}; seconds")
    print(f"{'method':<15} {'iteration':>9} {'no collisions':>13} {'no m limit':>10} "
          f"{'slowest alone':>13}")
    for label, config in spec.policy_configs(None):
        policy = build_policy(config)
        world = World.build(spec)
        ctx = RunContext(world, build_workload(spec, world), spec.run)
        policy.setup(ctx)
        forecast = MessageForecast.of_network(world.network, world.num_nodes)
        hop, hops = hop_costs(forecast, policy.executor.costs.activation_nbytes,
                              policy.config.hop_overhead_s)
        costs = dataclasses.replace(policy.node_costs, hop_s=hop, transport=hops)
        mbs = policy.plan_iteration(ctx, 0)
        nodes, chains = [mb.nodes for mb in mbs], [mb.chain for mb in mbs]
        m = policy.config.memory_microbatches
        it = simulate_iteration(costs, nodes, memory=m, chains=chains).makespan_s
        free = simulate_iteration(costs, nodes, memory=m, chains=chains,
                                  one_task_per_node=False).makespan_s
        slots = simulate_iteration(costs, nodes, memory=10**6, chains=chains).makespan_s
        alone = max(simulate_iteration(costs, [r], memory=m).makespan_s for r in nodes)
        print(f"{label:<15} {it:9.2f} {free:13.2f} {slots:10.2f} {alone:13.2f}")


def reference_table(network: str, overrides: list[str] | None = None) -> None:
    from sim.compare import compare
    from sim.scenario import load

    spec = load(reference_scenario(network), overrides or [])
    comparison = compare(spec)
    rows = [(run.label, run.result) for run in comparison.runs]
    base = None
    print(f"{'method':<16} {'iteration s':>12} {'all-reduce s':>13} {'vs full':>8}")
    for label, result in rows:
        h = result.history
        it = float(h[h.metric == "pipeline_time_s"].value.mean())
        ar = float(h[h.metric == "allreduce_time_s"].value.mean())
        base = base or it
        print(f"{label:<16} {it:12.2f} {ar:13.2f} {it / base:8.3f}")


def gains_over_seeds(network: str, seeds: list[int], overrides: list[str]) -> None:
    """Scheduling and collision-awareness gains of the reference at several seeds (1 iteration).

    The seed draws the node-to-stage allocation (and random skip's paths), so this shows how
    much the gains depend on where the stages landed.
    """
    from sim.compare import compare
    from sim.scenario import load

    print(f"{'seed':>4} {'random s':>9} {'blind s':>8} {'aware s':>8} {'scheduling':>11} "
          f"{'awareness':>10}")
    sched, aware_gain = [], []
    for seed in seeds:
        spec = load(reference_scenario(network),
                    [*overrides, f"seed={seed}", "run.steps=1"])
        times = {}
        for run in compare(spec, ["random_skip", "skippipe_blind", "skippipe"],
                           processes=1).runs:
            h = run.result.history
            times[run.label] = float(h[h.metric == "pipeline_time_s"].value.mean())
        r, b, a = times["random_skip"], times["skippipe_blind"], times["skippipe"]
        sched.append(r / a)
        aware_gain.append(b / a)
        print(f"{seed:>4} {r:9.2f} {b:8.2f} {a:8.2f} {r / a:10.3f}x {b / a:9.3f}x")
    print(f"mean {'':>27} {np.mean(sched):10.3f}x {np.mean(aware_gain):9.3f}x  "
          f"(min {min(aware_gain):.3f}x, max {max(aware_gain):.3f}x)")


def training_table() -> None:
    import math

    import torch

    from sim.compare import compare
    from sim.scenario import load

    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    spec = load(ROOT / "scenarios" / "skippipe-training.toml")
    print(f"{'method':<14} {'loss first':>10} {'loss last':>10} {'eval all':>9} {'eval half':>10} "
          f"{'ppl all':>8} {'ppl half':>9} {'ppl ratio':>10}")
    for run in compare(spec).runs:
        h = run.result.history
        loss = h[h.metric == "loss"].value.to_numpy()
        full = float(h[h.metric == "eval_loss"].value.iloc[-1])
        half = float(h[h.metric == "eval_loss_half"].value.iloc[-1])
        print(f"{run.label:<14} {loss[0]:10.3f} {loss[-5:].mean():10.3f} {full:9.3f} {half:10.3f} "
              f"{math.exp(full):8.3f} {math.exp(half):9.3f} {math.exp(half - full):10.3f}")


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", choices=["ideal", "maxmin"], default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="scenario override for --reference, "
                             "e.g. policies.skippipe.pipelined=false")
    parser.add_argument("--collisions", choices=["ci", "reference"], default=None,
                        help="where the predicted iteration goes: 12 nodes (6 x 2) or 20")
    parser.add_argument("--budget", action="store_true",
                        help="with --reference: where each method's iteration goes (its own "
                             "routes, timeline model priced by the scenario's transport)")
    parser.add_argument("--seeds", default=None,
                        help="with --reference: gains at these seeds, e.g. 0,1,2,3,4")
    parser.add_argument("--transport", choices=["fluid", "tcp"], default="fluid",
                        help="for the schedule and --collisions: the transport the planner "
                             "prices hops with (the table's: --set network.transport=tcp)")
    parser.add_argument("--training", action="store_true",
                        help="real training: scenarios/skippipe-training.toml")
    args = parser.parse_args(argv)
    at_least("--seed", args.seed, 0)
    if args.seeds is not None:
        args.seeds = seed_list("--seeds", args.seeds)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Time the schedule, or print the table asked for (one line and exit 2 if refused)."""
    args = parse_command_line(argv)
    if args.reference:  # (its overrides, refused before the runs)
        with command_line_checks():
            load(reference_scenario(args.reference), args.overrides)
    if args.collisions:
        n, sizes = (12, [2] * 6) if args.collisions == "ci" else (20, [5, 3, 3, 3, 3, 3])
        collision_budget(n, sizes, args.seed, args.transport)
    elif args.training:
        training_table()
    elif args.reference and args.budget:
        scenario_budget(args.reference, args.overrides)
    elif args.reference and args.seeds:
        gains_over_seeds(args.reference, args.seeds, args.overrides)
    elif args.reference:
        reference_table(args.reference, args.overrides)
    else:
        bench_schedule(args.seed, args.transport)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
