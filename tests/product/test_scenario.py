"""Scenario files, overrides and the builder -> validated, frozen configs in SI units."""

from __future__ import annotations

import dataclasses

import pytest
from product_helpers import SMALL_TOML, SMALL_YAML

from sim.config import PolicyConfig, Scenario
from sim.errors import ScenarioError
from sim.faults.failure_configs import PoissonConfig
from sim.faults.straggler_configs import BimodalConfig
from sim.policy import Policy, register_policy
from sim.scenario import (
    ScenarioBuilder,
    apply_overrides,
    default_scenario_path,
    load,
    load_scenario,
    resolve_policies,
    scenario_from_dict,
    si_params,
)


def test_toml_file_becomes_si_config(small_toml):
    s = load_scenario(small_toml)
    assert isinstance(s, Scenario)
    assert (s.name, s.seed) == ("small", 3)
    assert s.cluster.num_nodes == 4
    assert s.cluster.speed == {"dist": "lognormal", "sigma": 0.2}
    assert s.network.uplink_Bps == 12.5e6
    assert s.network.downlink_Bps == 125e6
    assert s.network.access_latency_s == pytest.approx(0.005)
    assert s.network.topology_params == {"latency_s": pytest.approx(0.02),
                                         "bandwidth_Bps": 1.25e9}
    # each fault table becomes the typed Config of the model it names, in SI units
    assert s.faults.stragglers == BimodalConfig(p=0.1, slowdown=3)
    (crashes,) = s.faults.failures
    assert isinstance(crashes, PoissonConfig)
    assert (crashes.rate_per_s, crashes.downtime_s) == (pytest.approx(0.1 / 3600), 600.0)
    assert (s.workload.learner, s.workload.batch, s.workload.seq) == ("tiny-llama", 8, 16)
    assert s.policy == PolicyConfig(name="diloco", params={"inner_steps": 10})
    assert (s.run.until_s, s.run.eval_every_s) == (1200.0, 60.0)


def test_yaml_and_toml_give_the_same_scenario(write):
    assert load_scenario(write("a.yaml", SMALL_YAML)) == load_scenario(write("a.toml", SMALL_TOML))


def test_builder_gives_the_same_scenario_as_the_file(small_toml):
    built = (ScenarioBuilder("small", seed=3)
             .cluster(nodes=4, device="h100", speed={"dist": "lognormal", "sigma": 0.2})
             .network(model="maxmin", topology="uniform", uplink="100Mbit/s",
                      downlink="1Gbit/s", latency="5ms",
                      topology_params={"latency": "20ms", "bandwidth": "10Gbit/s"})
             .faults(stragglers={"model": "bimodal", "p": 0.1, "slowdown": 3},
                     failures={"model": "poisson", "rate": "0.1/h", "downtime": "10min"})
             .workload(learner="tiny-llama", timing="llama-125m", data="synthetic-markov",
                       batch=8, seq=16)
             .policy("diloco", inner_steps=10)
             .run(until="20min", eval_every="1min")
             .build())
    assert built == load_scenario(small_toml)


def test_builder_set_and_file_override_agree(small_toml):
    spec = load(small_toml)
    builder = ScenarioBuilder()
    builder._data = spec.raw
    assert builder.set("network.model", "ideal").build() == \
        load_scenario(small_toml, ["network.model=ideal"])


def test_overrides_read_toml_values_and_plain_strings(small_toml):
    s = load_scenario(small_toml, ["cluster.nodes=6", "network.uplink=1Gbit/s",
                                   "run.target_loss=2.5", "run.stop_at_target=true",
                                   "policy.inner_steps=20", "network.model=ideal"])
    assert s.cluster.num_nodes == 6
    assert s.network.uplink_Bps == 125e6
    assert (s.run.target_loss, s.run.stop_at_target) == (2.5, True)
    assert s.policy.params == {"inner_steps": 20}
    assert s.network.model == "ideal"


def test_overrides_apply_in_order_and_do_not_touch_the_input():
    raw = {"a": {"b": 1}}
    out = apply_overrides(raw, ["a.b=2", "a.b=3", "c.d=x"])
    assert out == {"a": {"b": 3}, "c": {"d": "x"}}
    assert raw == {"a": {"b": 1}}


@pytest.mark.parametrize("bad", ["nokey", "=3", "a..b=1"])
def test_malformed_override_is_named(bad):
    with pytest.raises(ScenarioError, match=r"^--set: expected KEY=VALUE"):
        apply_overrides({}, [bad])


def test_override_through_a_value_is_refused():
    with pytest.raises(ScenarioError, match=r"^network.model.x: cannot set a key inside"):
        apply_overrides({"network": {"model": "ideal"}}, ["network.model.x=1"])


def test_tcp_transport_and_its_table_become_a_tcp_config(small_toml):
    s = load_scenario(small_toml, ["network.transport=tcp", "network.tcp.max_window=8MiB",
                                   "network.tcp.initial_window=4", "network.tcp.min_rto=1s"])
    assert s.network.transport == "tcp"
    tcp = s.network.tcp
    assert (tcp.max_window_bytes, tcp.initial_window_segments, tcp.min_rto_s) == (
        8 * 1024 * 1024, 4, 1.0)
    assert tcp.slow_start_after_idle and tcp.mss_bytes == 1448
    assert load_scenario(small_toml).network.transport == "tcp"  # the default (issue 12)
    assert load_scenario(small_toml, ["network.transport=fluid"]).network.transport == "fluid"


@pytest.mark.parametrize(("override", "message"), [
    ("network.uplink=-5Mbit/s", r"^network\.uplink: '-5Mbit/s' is negative; a bandwidth must "
                                r"be > 0"),
    ("network.uplink=100", r"^network\.uplink: 100 has no unit; .*e\.g\. '100Mbit/s'"),
    ("run.until=5", r"^run\.until: 5 has no unit"),
    ("policy.name=nope", r"^policy\.name: unknown policy 'nope'; allowed: .*ddp"),
    ("network.topology=missing.csv", r"^network\.topology: topology file 'missing.csv' does "
                                     r"not exist"),
    ("network.topology=moon", r"^network\.topology: unknown preset 'moon'; allowed: .*uniform"),
    ("network.model=carrier-pigeon", r"^network\.model: Input should be 'ideal' or 'maxmin' "
                                     r"\(got 'carrier-pigeon'\)"),
    ("network.bandwith=1Gbit/s", r"^network\.bandwith: unknown key; allowed: model, topology"),
    ("network.transport=udp", r"^network\.transport: Input should be 'fluid' or 'tcp'"),
    ("network.tcp.mss=2000", r"^network\.tcp\.mss: must be in \(0, frame=1514\]"),
    ("network.tcp.max_window=10", r"^network\.tcp\.max_window: 10 has no unit"),
    ("cluster.nodes=0", r"^cluster\.nodes: .*greater than or equal to 1"),
    ("cluster.device=tpu", r"^cluster\.device: unknown device 'tpu'; allowed: .*h100"),
    ("cluster.speed.sigma=-1", r"^cluster\.speed\.sigma: must be >= 0"),
    ("cluster.speed=[1.0, 2.0]", r"^cluster\.speed\.values: must have one entry per node \(4\)"),
    ("faults.stragglers.p=2", r"^faults\.stragglers\.p: .*probability"),
    ("faults.failures.rate=5", r"^faults\.failures\[0\]\.rate: 5 has no unit"),
    ("faults.failures.model=meteor", r"^faults\.failures\[0\]\.model: unknown failures 'meteor'"),
    ("workload.batch=0", r"^workload\.batch: must be >= 1 \(got 0\)"),
    ("workload.learner=gpt5", r"^workload\.learner: unknown learner 'gpt5'; allowed:"),
    ("workload.colour=1", r"^workload\.colour: unknown key; allowed: learner"),
    ("policy.inner_steps=x", r"^policy\.inner_steps: 'x' is not of type int"),
    ("policy.sparkle=1", r"^policy\.sparkle: unknown parameter; allowed: .*inner_steps"),
    ("network.topology_params.latency=5", r"^network\.topology_params\.latency: 5 has no "
                                          r"unit.*50ms"),
    ("network.topology_params.colour=5ms", r"^network\.topology_params: .*colour_s"),
    ("run.eval_every=-1s", r"^run\.eval_every: '-1s' is negative"),
    ("run.seed=9", r"^run\.seed: 9 disagrees with the top-level seed 3"),
    ("extra.key=1", r"^extra: unknown key; allowed: name, description, seed"),
])
def test_each_bad_input_names_its_field(small_toml, override, message):
    with pytest.raises(ScenarioError, match=message) as info:
        load_scenario(small_toml, [override])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("section", ["cluster", "network", "workload", "run"])
def test_missing_section_is_named(small_toml, section):
    raw = load(small_toml).raw
    del raw[section]
    with pytest.raises(ScenarioError, match=rf"^{section}: missing section"):
        scenario_from_dict(raw)


def test_missing_policy_is_named(small_toml):
    raw = load(small_toml).raw
    del raw["policy"]
    with pytest.raises(ScenarioError, match=r"^policy: missing section"):
        scenario_from_dict(raw)


def test_a_run_needs_a_stop_condition(small_toml):
    raw = load(small_toml).raw
    del raw["run"]["until"]
    with pytest.raises(ScenarioError, match=r"^run: no stop condition"):
        scenario_from_dict(raw)
    raw["run"]["steps"] = 5
    assert scenario_from_dict(raw).run.max_steps == 5


@pytest.mark.parametrize(("name", "text", "message"), [
    ("x.json", "{}", r"^scenario: .*unknown file type '.json'"),
    ("x.toml", "a = [", r"^scenario: .* is not valid TOML"),
    ("x.yaml", "a: [", r"^scenario: .* is not valid YAML"),
    ("x.yaml", "- 1\n- 2\n", r"^scenario: .* must hold a table of sections, got list"),
])
def test_unreadable_files_are_named(write, name, text, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(name, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ScenarioError, match=r"^scenario: no such file"):
        load_scenario(tmp_path / "nope.toml")


def test_topology_file_resolves_next_to_the_scenario(write):
    write("graphs/two.csv", "site_a,site_b,latency_s,bandwidth_Bps\nA,B,0.01,1e6\n")
    path = write("s.toml", SMALL_TOML)
    s = load_scenario(path, ["network.topology=graphs/two.csv",
                             "network.topology_params={}", "cluster.nodes=2"])
    assert s.network.topology == str(path.parent / "graphs" / "two.csv")


def test_si_params_rule():
    got = si_params({"latency": "50ms", "bandwidth_Bps": 1e6, "rate_per_s": "1/h", "p": 0.5,
                     "name": "ring", "nested": {"mean": "10min"},
                     "items": [{"duration": "1h"}]}, "x")
    assert got == {"latency_s": 0.05, "bandwidth_Bps": 1e6, "rate_per_s": 1 / 3600, "p": 0.5,
                   "name": "ring", "nested": {"mean_s": 600.0}, "items": [{"duration_s": 3600.0}]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TimedConfig:
    rounds: int = 1
    timeout_s: float = 1.0


@register_policy("product-test-timed")
class TimedPolicy(Policy):
    """A policy with a duration parameter, registered for these tests only."""

    Config = TimedConfig


def test_policy_parameters_take_units(small_toml):
    s = load_scenario(small_toml, ["policy={name='product-test-timed', timeout='2min'}"])
    assert s.policy == PolicyConfig(name="product-test-timed", params={"timeout_s": 120.0})
    with pytest.raises(ScenarioError, match=r"^policy\.timeout: 30 has no unit"):
        load_scenario(small_toml, ["policy={name='product-test-timed', timeout=30}"])
    with pytest.raises(ScenarioError, match=r"^policy\.rounds: 2\.5 is not of type int"):
        load_scenario(small_toml, ["policy={name='product-test-timed', rounds=2.5}"])


def test_policies_tables_keep_file_order_and_resolve(write):
    spec = load(default_scenario_path())
    labels = [label for label, _ in spec.policies]
    assert labels == ["ddp", "diloco", "noloco"]
    assert spec.scenario.policy == spec.policies[0][1]
    chosen = resolve_policies(spec, ["diloco", "ddp"])
    assert [label for label, _ in chosen] == ["diloco", "ddp"]
    assert chosen[0][1].params == dict(spec.policies)["diloco"].params
    with pytest.raises(ScenarioError, match=r"^--policies: unknown policy 'zzz'; allowed:"):
        resolve_policies(spec, ["ddp", "zzz"])


def test_same_input_same_scenario(small_toml):
    assert load_scenario(small_toml) == load_scenario(small_toml)
