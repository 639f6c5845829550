"""Scenario texts and a fake runner shared by the product-layer tests."""

from __future__ import annotations

from typing import Any

# A small but complete scenario: every section, units in every dimensioned field.
SMALL_TOML = """
name = "small"
seed = 3

[cluster]
nodes = 4
device = "h100"
speed = { dist = "lognormal", sigma = 0.2 }

[network]
model = "maxmin"
topology = "uniform"
uplink = "100Mbit/s"
downlink = "1Gbit/s"
latency = "5ms"

[network.topology_params]
latency = "20ms"
bandwidth = "10Gbit/s"

[faults]
stragglers = { model = "bimodal", p = 0.1, slowdown = 3 }
failures = { model = "poisson", rate = "0.1/h", downtime = "10min" }

[workload]
learner = "tiny-llama"
timing = "llama-125m"
data = "synthetic-markov"
batch = 8
seq = 16

[policy]
name = "diloco"
inner_steps = 10

[run]
until = "20min"
eval_every = "1min"
"""

SMALL_YAML = """
name: small
seed: 3
cluster:
  nodes: 4
  device: h100
  speed: {dist: lognormal, sigma: 0.2}
network:
  model: maxmin
  topology: uniform
  uplink: 100Mbit/s
  downlink: 1Gbit/s
  latency: 5ms
  topology_params: {latency: 20ms, bandwidth: 10Gbit/s}
faults:
  stragglers: {model: bimodal, p: 0.1, slowdown: 3}
  failures: {model: poisson, rate: 0.1/h, downtime: 10min}
workload: {learner: tiny-llama, timing: llama-125m, data: synthetic-markov, batch: 8, seq: 16}
policy: {name: diloco, inner_steps: 10}
run: {until: 20min, eval_every: 1min}
"""

# A fast scenario the real engine runs in well under a second per policy.
FAST_TOML = """
name = "fast"
seed = 1

[cluster]
nodes = 2
device = "h100"

[network]
model = "maxmin"
topology = "uniform"
uplink = "100Mbit/s"
downlink = "100Mbit/s"

[network.topology_params]
latency = "20ms"

[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16

[policies.ddp]

[policies.diloco]
inner_steps = 5

[run]
steps = 10
eval_every = "2min"
"""


class FakeResult:
    """Stands in for sim.runner.Result where only the summary matters."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary


class FakeRunner:
    """A runner whose figures are set per policy name; counts its calls."""

    def __init__(self, figures: dict[str, dict[str, Any]]) -> None:
        self.figures = figures
        self.calls: list[Any] = []

    def __call__(self, scenario: Any) -> FakeResult:
        self.calls.append(scenario)
        name = scenario.policy.name
        base = {"policy": name, "scenario": scenario.name, "seed": scenario.seed,
                "sim_time_s": 100.0, "steps": 10, "final_loss": 3.0, "optimum_loss": None,
                "target_loss": scenario.run.target_loss, "time_to_target_s": None,
                "bytes_sent": 8.0e6, "bytes_sent_per_node": 2.0e6, "idle_fraction": 0.5,
                "events": 123, "stop_reason": "until_s", "wall_time_s": 0.01}
        if name not in self.figures:
            raise RuntimeError(f"fake runner: no figures for {name!r}")
        return FakeResult({**base, **self.figures[name]})
