"""The compiled engine gives the same runs as the pure-Python one, trace for trace.

``DTSIM_COMPILE=1 pip install .`` compiles the engine's hot modules with mypyc (setup.py). The
same source runs either way, so every simulated time must come out bit for bit the same: this
test runs one set of cases twice, each in a fresh process, once from the checkout (plain
Python) and once from a compiled install, and compares their trace hashes (every recorded
interval, event and metric; :meth:`sim.runner.RunResult.trace_hash`). The cases cover both
models, both transports, real training (in this process and in worker processes, as ``dtsim``
runs a comparison: scenarios pickled there, results back), and the fuzzer's failure and
straggler schedules over every policy family (cuts, recoveries, stalls).

The compiled install is where ``DTSIM_COMPILED_SITE`` points (a ``pip install --target`` of the
wheel; ``.ci/run`` builds one); without it the test is skipped. Each child reports which engine
it imported (``sim.network.COMPILED``) and the test requires the compiled one from the compiled
install, so the comparison cannot silently be plain against plain; every plain case must also
have run cleanly (a hash, not a fuzz finding), so two equal failures cannot pass as equal runs.

    DTSIM_COMPILE=1 pip wheel --no-deps -w /tmp/wheel .
    pip install --no-deps --target /tmp/compiled /tmp/wheel/dtsim-*.whl
    DTSIM_COMPILED_SITE=/tmp/compiled python -m pytest -q tests/engine/test_compiled_build.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sim.network
from sim.compare import compare
from sim.config import ClusterConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.fuzz import FAMILIES, make_case, run_case
from sim.policy import get_policy
from sim.runner import run
from sim.scenario import default_scenario_path, load, resolve_policies
from workloads import WorkloadConfig

ROOT = Path(__file__).resolve().parents[2]
SITE = os.environ.get("DTSIM_COMPILED_SITE")

FUZZ_SEEDS = range(0, 6)
"""Fuzz cases per family (``sim.fuzz.make_case``): 24 runs with failures and stragglers."""


def timing_only(model: str, transport: str, topology: str, steps: int = 4) -> Scenario:
    """``bench_timing_only_scale.py``'s scenario, small: timing-only DiLoCo (H = 1), 64 nodes."""
    params: dict = ({"latency_s": 0.01} if topology == "uniform" else
                    {"num_clusters": 4, "intra_latency_s": 1e-3, "intra_bandwidth_Bps": 1.25e9,
                     "wan_latency_s": 0.01, "wan_bandwidth_Bps": 1.25e9})
    return Scenario(
        name="compiled-identity", seed=0, cluster=ClusterConfig(num_nodes=64, device="h100"),
        network=NetworkConfig(model=model, transport=transport, topology=topology,
                              topology_params=params, uplink_Bps=1.25e8, downlink_Bps=1.25e8),
        workload=WorkloadConfig(learner="tiny-llama", timing="llama-125m", batch=8, seq=128),
        policy=PolicyConfig(name="diloco", params={"inner_steps": 1, "allreduce": "tree"}),
        run=RunConfig(max_steps=steps + 1, timing_only=True))


def child() -> None:
    """Run every case in this process and print ``{"compiled": ..., "hashes": {...}}``.

    Run as a script (``--child``), so its imports come from ``PYTHONPATH`` when it is set (the
    compiled install) before the checkout's editable install.
    """
    torch.set_num_threads(1)
    hashes: dict[str, str] = {}
    for model in ("maxmin", "ideal"):
        for transport in ("tcp", "fluid"):
            for topology in ("uniform", "clusters-of-clusters"):
                result = run(timing_only(model, transport, topology))
                hashes[f"timing-only/{model}/{transport}/{topology}"] = result.trace_hash()
    spec = load(default_scenario_path(), ["run.until=10min"])
    for label, pc in resolve_policies(spec):
        hashes[f"default/{label}"] = run(spec.scenario,
                                         get_policy(pc.name)(**pc.params)).trace_hash()
    # the same comparison in worker processes: scenarios (TcpConfig) pickled there, results
    # (the recorder) pickled back, as `dtsim` does
    for policy_run in compare(spec, processes=2).runs:
        hashes[f"processes/{policy_run.label}"] = policy_run.result.trace_hash()
    for family in sorted(FAMILIES):
        for seed in FUZZ_SEEDS:
            out = run_case(make_case(seed, family), wall_limit_s=120.0)
            hashes[f"fuzz/{family}/{seed}"] = out.problem or out.trace_hash
    print(json.dumps({"compiled": sim.network.COMPILED, "hashes": hashes}))


def hashes_of(site: str | None) -> dict:
    """The child's answer from the checkout (``site`` None) or from a compiled install."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = site
    done = subprocess.run([sys.executable, __file__, "--child"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(SITE is None, reason="DTSIM_COMPILED_SITE: no compiled install to compare")
def test_the_compiled_engine_gives_the_same_traces_as_plain_python():
    compiled, plain = hashes_of(SITE), hashes_of(None)
    assert compiled["compiled"] is True, "the compiled install imported plain modules"
    assert plain["compiled"] is False
    assert len(plain["hashes"]) == 8 + 3 + 3 + 4 * len(FUZZ_SEEDS)
    for label in ("ddp", "diloco", "noloco"):  # (a worker process runs what this one does)
        assert plain["hashes"][f"processes/{label}"] == plain["hashes"][f"default/{label}"]
    assert all(len(h) == 64 for h in plain["hashes"].values()), plain["hashes"]
    differing = {case: (compiled["hashes"].get(case), want)
                 for case, want in plain["hashes"].items() if compiled["hashes"].get(case) != want}
    assert not differing


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    child()
