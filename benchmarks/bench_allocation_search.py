"""Is the hill-climbing allocation at least as cheap as DT-FM's genetic search? (issue 14)

SkipPipe's authors allocate nodes to stages with DT-FM's genetic search (population 200, 8000
trials) over the data-parallel plus pipeline cost; dtsim uses random-restart hill climbing over
pairwise swaps (:func:`policies.pipeline.allocation.search_allocation`). Both minimise the same
cost (:func:`~policies.pipeline.allocation.allocation_cost`) on SkipPipe's 20-node reference
(12 GCP regions, stages [5, 3, 3, 3, 3, 3], 32 MiB activations + 0.35 s per hop, LLaMA-350M
stage gradients, the authors' FACTOR as ``dp_weight``). Printed side by side for several seeds,
with the wall time of each search:

    python benchmarks/bench_allocation_search.py [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.usage import OneLineParser, refusing, seed_list

PROG = "benchmarks/bench_allocation_search.py"

def reference_problem() -> tuple[np.ndarray, list[int], float]:
    """Hop costs, stage sizes and the authors' dp_weight of the 20-node reference."""
    from policies.pipeline.costs import hop_cost_matrix, network_matrices
    from policies.pipeline.methods import workload_costs
    from sim.world import World
    from topologies import gcp_regions
    from workloads import WorkloadConfig, build_workload, get_device

    n, sizes, microbatches = 20, [5, 3, 3, 3, 3, 3], 6
    world = World(gcp_regions(n), network="ideal", flops_per_s=1e12)
    workload = build_workload(WorkloadConfig(learner="tiny-llama", timing="llama-350m", batch=8,
                                             seq=1024), num_replicas=1, seed=0)
    costs = workload_costs(workload, get_device("emulator"), len(sizes))
    hop = hop_cost_matrix(*network_matrices(world.network, n), costs.activation_nbytes, 0.35)
    dp_weight = max(costs.grad_nbytes[1:]) / (costs.activation_nbytes * microbatches)
    return hop, sizes, dp_weight


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The seeds to search with; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args(argv)
    args.seeds = seed_list("--seeds", args.seeds)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run both searches per seed and print their costs (one line and exit code 2 if refused)."""
    from policies.pipeline.allocation import genetic_allocation, search_allocation

    args = parse_command_line(argv)
    hop, sizes, dp_weight = reference_problem()
    print(f"dp_weight (the authors' FACTOR) = {dp_weight:.3f}")
    print(f"{'seed':>4} {'hill climbing s':>16} {'wall s':>7} {'genetic s':>10} {'wall s':>7}")
    for seed in args.seeds:
        t0 = time.perf_counter()
        hill = search_allocation(hop, sizes, np.random.default_rng(seed), restarts=8,
                                 dp_weight=dp_weight)
        t1 = time.perf_counter()
        ga = genetic_allocation(hop, sizes, np.random.default_rng(seed), dp_weight=dp_weight)
        t2 = time.perf_counter()
        print(f"{seed:>4} {hill.cost_s:16.3f} {t1 - t0:7.1f} {ga.cost_s:10.3f} {t2 - t1:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
