"""Same scenario and seed: identical trace bytes, whatever PYTHONHASHSEED is."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
from sim.config import ClusterConfig, FaultsConfig, NetworkConfig, RunConfig, Scenario
from sim.errors import SimFailure
from sim.world import World

scenario = Scenario(
    name="det", seed=11,
    cluster=ClusterConfig(num_nodes=8, device="h100", speed={"dist": "lognormal", "sigma": 0.3}),
    network=NetworkConfig(model="maxmin", topology="residential", uplink_Bps=2.5e6),
    faults=FaultsConfig(stragglers={"model": "bimodal", "p": 0.2, "slowdown": 4.0},
                        failures=[{"model": "poisson", "rate_per_s": 0.01, "downtime_s": 5.0}]),
    run=RunConfig(until_s=200.0))
world = World.build(scenario)
rng = world.policy_rng("traffic")

def worker(node):
    while True:
        try:
            yield node.compute(seconds=1.0)
            peer = int(rng.integers(world.num_nodes))
            yield world.network.transfer(node, peer, float(rng.uniform(1e5, 1e6)))
        except SimFailure:
            yield node.recovered_event()

for node in world.nodes:
    world.env.process(worker(node))
world.env.run(until=scenario.run.until_s)
world.recorder.finish(world.now)
print(world.recorder.trace_hash(), world.recorder.summary()["failures"])
"""


def _run(hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_trace_hash_is_independent_of_python_hash_seed():
    outputs = {seed: _run(seed) for seed in ("0", "1", "4242")}
    assert len(set(outputs.values())) == 1, outputs
    digest, failures = outputs["0"].split()
    assert len(digest) == 64 and int(failures) > 0  # the run really had failures
