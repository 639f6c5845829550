"""Real-mode DiLoCo through the simulator versus bare torch doing the same math, one process.

Workload: the MLP classifier (64 -> 256 -> 256 -> 10) on the digits data, batch 16, AdamW, DiLoCo
with H = 20 inner steps and the outer Nesterov step (lr 0.7, momentum 0.9), on N nodes.

- ``sim``: ``sim.run`` of that scenario (``ideal`` network, no evaluations): every inner step
  of every node goes through the engine (a compute task in simulated time), the policy and the
  learner (``workloads/learner.py``).
- ``bare``: a plain loop over the same N models (same initial weights, same data streams):
  for each outer step, each node takes H AdamW steps (zero grad, forward, cross-entropy,
  backward, global-norm clip, step, read the loss), then the outer gradient is averaged and
  the Nesterov step applied. The optimizer is the same fused AdamW with foreach clipping, so
  the ratio shows what the engine, the policy and the learner's Python cost, not a slower
  optimizer.

Rate = node-steps (inner steps summed over nodes) per second of wall time, both timed in this
process, alternately, best of ``--repeats``, after one untimed warm-up of each (the first torch
optimizer of a process imports ``torch._dynamo``: seconds, once); setup (models, data streams)
is inside both timings. ``sim / bare`` is the figure (target >= 0.85). The last column is the
ratio of each back-to-back pair (sim, then bare), its median and range: on a machine whose
speed drifts (a shared VM: session 12's varied bare torch's rate by 1.5x between runs) a pair
sees one speed, where the best of each side may come from two.

    python benchmarks/bench_learner_step.py                       # 4 and 8 nodes
    python benchmarks/bench_learner_step.py --nodes 8 --outer-steps 20 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from machine import describe  # benchmarks/machine.py, beside this script
from torch import nn

from policies.data_parallel.outer import nesterov_outer_step
from sim.config import ClusterConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.runner import run
from sim.usage import OneLineParser, at_least, refusing
from workloads import WorkloadConfig, build_workload

H = 20


DEVICE = "cpu"
"""Where both sides train: 'cpu' or 'cuda' (``--device``)."""


def workload_config() -> WorkloadConfig:
    """The MLP 64-256-256-10 on digits, batch 16, on :data:`DEVICE`."""
    return WorkloadConfig(learner="mlp", data="digits", d_model=256, batch=16, device=DEVICE)


def scenario(nodes: int, outer_steps: int) -> Scenario:
    """DiLoCo H = 20 on ``nodes`` nodes of an ideal network, no evaluations."""
    return Scenario(
        name=f"mlp-diloco-{nodes}", seed=0,
        cluster=ClusterConfig(num_nodes=nodes, device="h100"),
        network=NetworkConfig(model="ideal", topology="uniform", topology_params={}),
        workload=workload_config(),
        policy=PolicyConfig(name="diloco", params={"inner_steps": H}),
        # a node reports inner step H*S + 1 right after outer step S: S outer steps
        run=RunConfig(max_steps=H * outer_steps + 1, eval_every_s=1e12),
    )


def time_sim(nodes: int, outer_steps: int) -> tuple[float, int]:
    """Wall seconds of ``sim.run`` and the node-steps it took."""
    start = time.perf_counter()
    result = run(scenario(nodes, outer_steps))
    seconds = time.perf_counter() - start
    node_steps = int(result.history.query("metric == 'loss'").shape[0])
    return seconds, node_steps


def time_bare(nodes: int, outer_steps: int) -> tuple[float, int]:
    """Wall seconds of the same math in a plain torch loop, and its node-steps."""
    cfg = workload_config()
    workload = build_workload(cfg, num_replicas=nodes, seed=0)
    start = time.perf_counter()
    device = torch.device(cfg.device)
    models = [workload.make_model().to(device) for _ in range(nodes)]
    streams = [workload.make_stream(rank) for rank in range(nodes)]
    params = [list(m.parameters()) for m in models]
    optimizers = [torch.optim.AdamW(p, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                    weight_decay=cfg.weight_decay, fused=True) for p in params]
    phi = nn.utils.parameters_to_vector(params[0]).detach().clone()
    velocity = torch.zeros_like(phi)
    node_steps = 0
    for _ in range(outer_steps):
        deltas = []
        for i in range(nodes):
            for _ in range(H):
                optimizers[i].zero_grad(set_to_none=False)
                x, y = streams[i].next_batch()
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(models[i](x), y)
                loss.backward()
                nn.utils.clip_grad_norm_(params[i], cfg.grad_clip, foreach=True)
                optimizers[i].step()
                float(loss.detach())
                node_steps += 1
            deltas.append(phi - nn.utils.parameters_to_vector(params[i]).detach())
        phi, velocity = nesterov_outer_step(phi, torch.stack(deltas).mean(0), velocity,
                                            lr=0.7, momentum=0.9)
        for i in range(nodes):
            nn.utils.vector_to_parameters(phi, params[i])
    return time.perf_counter() - start, node_steps


PROG = "benchmarks/bench_learner_step.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """Node counts, outer steps, repeats, device; a bad value is a :class:`UsageError`."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--outer-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    for nodes in args.nodes:
        at_least("--nodes", nodes, 2)  # (DiLoCo averages over at least two nodes)
    at_least("--outer-steps", args.outer_steps, 1)
    at_least("--repeats", args.repeats, 1)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Time both sides per node count and print the table (one line and exit 2 if refused)."""
    args = parse_command_line(argv)
    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(1)
    print(describe())
    print(f"MLP 64-256-256-10, batch 16, DiLoCo H = {H}, {args.outer_steps} outer steps, "
          f"1 torch thread, best of {args.repeats}, device {args.device}")
    print("\n| nodes | node-steps | sim node-steps/s | bare torch node-steps/s | sim / bare "
          "| per pair: median (range) |")
    print("|---:|---:|---:|---:|---:|---:|")
    time_sim(2, 1), time_bare(2, 1)  # warm-up: imports torch pays once (e.g. torch._dynamo)
    for nodes in args.nodes:
        best = {"sim": 0.0, "bare": 0.0}
        steps = {}
        pairs = []  # sim / bare of each back-to-back pair: a drift of the machine's speed
        for _ in range(args.repeats):  # between pairs falls on both sides of one ratio
            rate = {}
            for name, fn in (("sim", time_sim), ("bare", time_bare)):
                seconds, node_steps = fn(nodes, args.outer_steps)
                steps[name] = node_steps
                rate[name] = node_steps / seconds
                best[name] = max(best[name], rate[name])
            pairs.append(rate["sim"] / rate["bare"])
        print(f"| {nodes} | {steps['sim']:,} (bare {steps['bare']:,}) | {best['sim']:,.0f} | "
              f"{best['bare']:,.0f} | {best['sim'] / best['bare']:.2f} | "
              f"{statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
