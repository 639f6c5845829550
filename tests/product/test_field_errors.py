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
