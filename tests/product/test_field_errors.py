"""Policy Configs name the refused field structurally (``FieldError``), never by message parsing.

Every built-in policy Config refuses a bad value with :class:`sim.errors.FieldError` (field name
and message as attributes); the loader turns it into a ``ScenarioError`` whose ``.field`` is the
dotted path. A Config that raises a plain ``ValueError`` is reported against its table with the
message unchanged: the loader does not read a field name out of a message.
"""

from __future__ import annotations

import dataclasses

import pytest

from sim import components
from sim.cli import main
from sim.errors import FieldError, ScenarioError
from sim.runner import check_policy
from sim.scenario import load

# (policy, table, field inside the Config, words the message must carry)
REFUSED = [
    ("diloco", {"inner_steps": 0}, "inner_steps", "H must be >= 1, got 0"),
    ("diloco", {"outer_lr": 0.0}, "outer_lr", "must be > 0"),
    ("diloco", {"outer_momentum": 1.0}, "outer_momentum", "[0, 1)"),
    ("diloco", {"allreduce": "tree9"}, "allreduce", "allowed:"),
    ("diloco", {"on_failure": "panic"}, "on_failure", "allowed: drop, wait"),
    ("diloco", {"collective_timeout_s": -1.0}, "collective_timeout_s", "finite number >= 0"),
    ("diloco", {"pipeline_stages": 0}, "pipeline_stages", "must be >= 1"),
    ("noloco", {"exchange": "smoke"}, "exchange", "allowed:"),
    ("noloco", {"beta": 1.0}, "beta", "[0, 1)"),
    ("eager_diloco", {"compress_bits": 20}, "compress_bits", "32 or in 1..16"),
    ("eager_diloco", {"compress_format": "fp7"}, "compress_format", "allowed:"),
    ("streaming_diloco", {"inner_steps": 10, "num_fragments": 2, "overlap_steps": 5},
     "overlap_steps", "τ < H/P = 5"),
    ("gossip", {"graph": "star"}, "graph", "allowed: complete, hypercube, ring"),
    ("palsgd", {"skip_probability": 1.0}, "skip_probability", "(0, 1)"),
    ("quorum_diloco", {"quorum_fraction": 0.0}, "quorum_fraction", "(0, 1]"),
    ("full_pipeline", {"allocation_search": "annealing"}, "allocation_search", "allowed"),
    ("skippipe", {"skip_ratio": 1.0}, "skip_ratio", "[0, 1)"),
    ("skippipe", {"max_expansions": 0}, "max_expansions", "must be >= 1"),
    ("skippipe", {"hop_costs": "ns3"}, "hop_costs", "allowed"),
    ("random_skip", {"paths_per_data_node": 0}, "paths_per_data_node", ">= 1 or None"),
]


@pytest.mark.parametrize(("policy", "table", "field", "words"), REFUSED,
                         ids=[f"{p}.{f}" for p, _, f, _ in REFUSED])
def test_policy_config_refusal_is_a_field_error(policy, table, field, words):
    """The Config raises FieldError itself, and the loader names the dotted field from it."""
    config_cls = components.find("policy", policy).config
    with pytest.raises(FieldError) as raised:
        config_cls(**table)
    assert (raised.value.field, words in raised.value.message) == (field, True)
    with pytest.raises(ScenarioError) as loaded:
        components.config_from_table("policy", policy, table, where="policies.m")
    assert loaded.value.field == f"policies.m.{field}"
    assert str(loaded.value) == f"policies.m.{field}: {raised.value.message}"


def test_plain_value_error_is_not_parsed_for_a_field():
    """``ValueError("rate: ...")`` names the table; the message is kept, not read for a field."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class LegacyConfig:
        rate: float = 1.0

        def __post_init__(self) -> None:
            if self.rate <= 0:
                raise ValueError(f"rate: must be > 0, got {self.rate}")

    with pytest.raises(ScenarioError) as loaded:
        components.make_config(LegacyConfig, {"rate": -1.0}, where="policies.mine")
    assert (loaded.value.field, str(loaded.value)) == (
        "policies.mine", "policies.mine: rate: must be > 0, got -1.0")


def test_every_builtin_policy_refuses_with_field_errors():
    """A bad value in any single field of any built-in policy Config is a FieldError (or a type
    error the table check refuses first), never a plain ValueError the loader cannot place."""
    plain = []
    for name in components.names("policy"):
        config_cls = components.find("policy", name).config
        if config_cls is None:
            continue
        for field in dataclasses.fields(config_cls):
            if not field.init:
                continue
            for value in (-1, 0, 10**9, -0.5, 1.5, 2.0, "bogus"):
                try:
                    config_cls(**{field.name: value})
                except FieldError:
                    pass
                except ValueError as exc:
                    if not isinstance(value, str):  # a string in a numeric field: a type error
                        plain.append(f"{name}.{field.name}={value!r}: {exc}")
                except TypeError:
                    pass
    assert plain == []


GC_TOML = """
name = "gc-one-node"
seed = 1
[cluster]
nodes = {nodes}
[network]
model = "ideal"
[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16
[policy]
name = "gc_cyclic"
{extra}
[run]
steps = 2
timing_only = true
"""


@pytest.mark.parametrize(("nodes", "extra", "field", "words"), [
    (4, "s = 3", "policy.s", "[0, n=3) for 3 workers, got 3"),
    (4, "master = 4", "policy.master", "node id in 0..3, got 4"),
    (1, "", "cluster.nodes", "'gc_cyclic' needs at least 2 nodes (a master and a worker), got 1"),
])
def test_gradient_coding_check_names_the_field(tmp_path, capsys, nodes, extra, field, words):
    """``check`` raises FieldError (or names the cluster); exit 2 with one line naming it."""
    path = tmp_path / "gc.toml"
    path.write_text(GC_TOML.format(nodes=nodes, extra=extra))
    scenario = load(path)
    with pytest.raises(ScenarioError) as refused:
        check_policy(scenario.policy_config(None)[1], scenario)
    assert (refused.value.field, words in str(refused.value)) == (field, True)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and words in err[0]


@pytest.mark.parametrize(("speed", "field", "words"), [
    ({"dist": "moon"}, "cluster.speed.dist", "must be one of"),
    ({"dist": "lognormal", "sigma": -1.0}, "cluster.speed.sigma", "must be >= 0"),
    ({"dist": "lognormal"}, "cluster.speed.sigma", "required for dist 'lognormal'"),
    ({"dist": "lognormal", "sgma": 1.0}, "cluster.speed.sgma", "allowed: ['mu', 'sigma']"),
    ({"dist": "list", "values": [1.0]}, "cluster.speed.values", "one entry per node (4), got 1"),
    ({"dist": "uniform", "low": 2.0, "high": 1.0}, "cluster.speed", "0 < low <= high"),
])
def test_speed_refusals_name_their_key(speed, field, words):
    """``speed_multipliers`` raises ScenarioError naming the key; nothing reads the message."""
    import numpy as np

    from sim.faults.speeds import speed_multipliers

    params = {k: v for k, v in speed.items() if k != "dist"}
    with pytest.raises(ScenarioError) as refused:
        speed_multipliers(4, dist=speed["dist"], rng=np.random.default_rng(0), **params)
    assert (refused.value.field, words in refused.value.message) == (field, True)


# ---------------------------------------------------------------- [workload] and [network.tcp]

# (field, bad value, words of the message): every check of WorkloadConfig.__post_init__.
WORKLOAD_REFUSED = [
    ("optimizer", "lion", "allowed ['adamw', 'sgd'] (got 'lion')"),
    ("shards", "random", "allowed ['iid', 'dirichlet', 'dialects', 'contiguous']"),
    ("device", "tpu", "allowed ['cpu', 'cuda'] (got 'tpu')"),
    ("text_level", "word", "(got 'word')"),
    ("param_dtype", "fp8", "allowed ['fp32', 'bf16', 'fp16'] (got 'fp8')"),
    ("activation_dtype", "int4", "(got 'int4')"),
    ("data", "imagenet", "'text:PATH' (got 'imagenet')"),
    ("batch", 0, "must be >= 1 (got 0)"),
    ("seq", 0, "must be >= 1 (got 0)"),
    ("eval_batches", 0, "must be >= 1 (got 0)"),
    ("lr", 0.0, "must be > 0 (got 0.0)"),
    ("warmup_steps", -1, "must be >= 0 (got -1)"),
    ("total_steps", 0, "must exceed warmup_steps=20 (or be None) (got 0)"),
    ("grad_clip", 0.0, "must be > 0 or None (got 0.0)"),
    ("held_out_fraction", 1.0, "must be in (0, 1) (got 1.0)"),
]


@pytest.mark.parametrize(("field", "value", "words"), WORKLOAD_REFUSED,
                         ids=[case[0] for case in WORKLOAD_REFUSED])
def test_workload_refusal_is_a_field_error(field, value, words):
    """WorkloadConfig (package workloads, below the engine) raises the shared FieldError; the
    loader names ``workload.<field>`` from its attribute, the message kept as it is."""
    from sim.sections import workload_config
    from workloads.config import WorkloadConfig

    with pytest.raises(FieldError) as raised:
        WorkloadConfig(**{field: value})
    assert (raised.value.field, words in raised.value.message) == (field, True)
    with pytest.raises(ScenarioError) as loaded:
        workload_config({field: value}, base=None)
    assert str(loaded.value) == f"workload.{field}: {raised.value.message}"


def test_workload_field_is_taken_from_the_exception_not_its_text(monkeypatch):
    """A FieldError whose message looks like another field is still named by its attribute."""
    import workloads.config
    from sim.sections import workload_config

    def refuse(self):
        raise FieldError("lr", "cluster.nodes=3: looks like a field, is not one")

    monkeypatch.setattr(workloads.config.WorkloadConfig, "__post_init__", refuse)
    with pytest.raises(ScenarioError) as loaded:
        workload_config({}, base=None)
    assert loaded.value.field == "workload.lr"


def test_the_loader_parses_no_message():
    """No module of the scenario loader reads a field name out of an exception's text."""
    import inspect
    import re

    import sim.components
    import sim.fileformat
    import sim.runner
    import sim.scenario
    import sim.sections

    for module in (sim.fileformat, sim.scenario, sim.sections, sim.components, sim.runner):
        source = inspect.getsource(module)
        assert "_as_scenario_error" not in source, module.__name__
        reads_text = r"(message|str\(\w+\))\.(partition|rpartition|startswith|split)\((?!\))"
        assert not re.search(reads_text, source), module.__name__
        assert "import re\n" not in source, module.__name__


MINIMAL_TOML = """
[cluster]
nodes = {nodes}
[network]
model = "ideal"
{network}
[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16
[policy]
name = "{policy}"
[run]
steps = 1
timing_only = true
{tail}
"""


def _scenario(tmp_path, *, nodes=4, network="", policy="ddp", tail=""):
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL_TOML.format(nodes=nodes, network=network, policy=policy, tail=tail))
    return path


@pytest.mark.parametrize(("key", "value", "field", "words"), [
    ("mss", "2000", "network.tcp.mss", "must be in (0, frame=1514], got 2000"),
    ("max_window", "\"1000B\"", "network.tcp.max_window", "must be >= mss=1448, got 1000"),
    ("hystart_delay_min", "\"20ms\"", "network.tcp.hystart_delay_min",
     "must be in [0, hystart_delay_max=0.016] s, got 0.02"),
    ("hystart_delay_max", "\"1ms\"", "network.tcp.hystart_delay_min",  # the pair's bound
     "must be in [0, hystart_delay_max=0.001] s, got 0.004"),
    ("bottleneck_queue", "\"-5KB\"", "network.tcp.bottleneck_queue", "negative"),
])
def test_tcp_refusals_name_the_files_key(tmp_path, key, value, field, words):
    """TcpConfig raises FieldError(mss_bytes, ...); the loader writes the file's key (mss)."""
    from sim.network.tcp import TcpConfig

    with pytest.raises(FieldError) as raised:
        TcpConfig(mss_bytes=2000.0)
    assert raised.value.field == "mss_bytes"
    path = _scenario(tmp_path, tail=f"[network.tcp]\n{key} = {value}\n")
    with pytest.raises(ScenarioError) as refused:
        load(path)
    assert (refused.value.field, words in refused.value.message) == (field, True), refused.value


def test_a_refusal_names_the_field_that_bounds_it_in_the_readers_words():
    """A bound by another field travels as data (``refs``), so the loader renames both the
    field and its bound without reading the text, and a pickled refusal (from a worker
    process) keeps them."""
    import pickle

    err = FieldError("mss_bytes", "must be in (0, {frame_bytes}], got 2000",
                     refs={"frame_bytes": 1514})
    assert str(err) == "mss_bytes: must be in (0, frame_bytes=1514], got 2000"
    assert err.message_naming({"frame_bytes": "frame"}) == "must be in (0, frame=1514], got 2000"
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.field, back.message, back.refs) == (
        FieldError, "mss_bytes", err.message, {"frame_bytes": 1514})
    plain = FieldError("batch", "must be >= 1, got {0}")  # braces without refs stay as written
    assert plain.message == "must be >= 1, got {0}" and plain.message_naming({"a": "b"}) == \
        plain.message


# ---------------------------------------------------------------- a policy's check and setup


def _third_party_policy(monkeypatch, name: str, error: ValueError):
    """A policy whose check raises ``error``, registered for this test only."""
    from sim.policy import Policy, register_policy

    components.names("policy")  # the built-ins first, then a copy this test may add to
    monkeypatch.setitem(components._REGISTRY, "policy", dict(components._REGISTRY["policy"]))

    @register_policy(name)
    class Refusing(Policy):
        """Refuses every scenario in check."""

        def check(self, scenario):
            raise error

    return Refusing


def test_setup_error_names_a_field_error_and_never_parses_a_plain_one():
    """FieldError -> ``policy.<field>``; a plain ValueError is one line against the policy, its
    text kept whole even when it looks like a dotted field."""
    from sim.runner import setup_error

    named = setup_error("mine", FieldError("num_stages", "must be >= 2, got 1"))
    assert (named.field, str(named)) == ("policy.num_stages",
                                         "policy.num_stages: must be >= 2, got 1")
    plain = setup_error("mine", ValueError("policy.num_stages: must be\n  >= 2"))
    assert plain.field == "policy"
    assert str(plain) == "policy: 'mine' refused the scenario: policy.num_stages: must be >= 2"
    passed = ScenarioError("cluster.nodes", "needs 4")
    assert setup_error("mine", passed) is passed


def test_third_party_plain_value_error_is_exit_2_one_line(tmp_path, capsys, monkeypatch):
    """A third-party policy raising a plain ValueError in check: exit 2, one line, no field read."""
    _third_party_policy(monkeypatch, "refuses_plainly",
                        ValueError("workload.batch=3: odd batches only"))
    path = _scenario(tmp_path, policy="refuses_plainly")
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dtsim: error: policy: 'refuses_plainly' refused the scenario: "
                   "workload.batch=3: odd batches only"]


# ---------------------------------------------------------------- topology presets


@pytest.mark.parametrize(("topology", "nodes", "params", "field", "words"), [
    ("random-regular", 4, "degree = 1, latency = \"1ms\", bandwidth = \"1Gbit/s\"",
     "network.topology_params.degree", "got 1; allowed: an int with 2 <= degree < num_nodes"),
    ("random-regular", 5, "degree = 3, latency = \"1ms\", bandwidth = \"1Gbit/s\"",
     "network.topology_params.degree", "num_nodes * degree even"),
    ("clusters-of-clusters", 4, "num_clusters = 0, intra_latency = \"1ms\", "
     "intra_bandwidth = \"1Gbit/s\", wan_latency = \"50ms\", wan_bandwidth = \"100Mbit/s\"",
     "network.topology_params.num_clusters", "got 0; allowed: an int >= 1"),
    ("random-regular", 2, "degree = 2, latency = \"1ms\", bandwidth = \"1Gbit/s\"",
     "cluster.nodes", "allowed: an int >= 3 for topology 'random-regular'"),
])
def test_topology_preset_refusals_name_the_parameter(tmp_path, topology, nodes, params, field,
                                                      words):
    """A preset raises FieldError(<parameter>); the loader names it under topology_params (or
    cluster.nodes, which the loader passes as num_nodes), from the attribute."""
    path = _scenario(tmp_path, nodes=nodes, network=f'topology = "{topology}"\n'
                     f"topology_params = {{ {params} }}")
    with pytest.raises(ScenarioError) as refused:
        load(path)
    assert (refused.value.field, words in refused.value.message) == (field, True), refused.value
