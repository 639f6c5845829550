"""Every bad input is refused the same way: exit code 2, one line naming the field, no run.

The cases are built from the classes of issue 15 (binary files, broken edge lists, missing trace
files, impossible pipeline shapes and coding parameters, output paths that cannot be written,
NaN targets, typos, runs that could never end) and from every key of docs/scenario-format.md
(wrong type, out of range, unknown key with a suggestion). Each case calls ``sim.cli.main`` in
the test's own process, with the engine's ``Environment.run`` replaced by one that fails the
test: a refusal must come *before any simulated time runs*.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from sim.cli import main

BASE_TOML = """
name = "bad-input"
seed = 1

[cluster]
nodes = 4

[network]
model = "maxmin"
uplink = "100Mbit/s"

[network.topology_params]
latency = "20ms"

[workload]
learner = "tiny-llama"
timing = "llama-125m"
batch = 4
seq = 16

[policy]
name = "ddp"

[run]
steps = 4
eval_every = "2min"
"""

EDGES_HEADER = "site_a,site_b,latency_s,bandwidth_Bps\n"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.toml"
    path.write_text(BASE_TOML, encoding="utf-8")
    (tmp_path / "garbage.csv").write_bytes(b"hello world\n\x00\x01 zz,,\n")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    (tmp_path / "header-only.csv").write_text(EDGES_HEADER, encoding="utf-8")
    (tmp_path / "disconnected.csv").write_text(
        EDGES_HEADER + "a,b,0.01,1e9\nc,d,0.01,1e9\n", encoding="utf-8")
    (tmp_path / "negative.csv").write_text(EDGES_HEADER + "a,b,0.01,-1e9\n", encoding="utf-8")
    (tmp_path / "nan.csv").write_text(EDGES_HEADER + "a,b,nan,1e9\n", encoding="utf-8")
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "bin.yaml").write_bytes(b"\x00\xff\xfe" + bytes(range(256)) * 4)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    return path


def refusal(capsys, argv: list[str]) -> str:
    """Run the CLI; assert exit 2 and a single ``dtsim: error:`` line; return the line."""
    code = main([*argv, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr={err!r}"
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dtsim: error: ")
    assert "Traceback" not in err
    return lines[0][len("dtsim: error: "):]


def check(line: str, field: str, *fragments: str) -> None:
    """The line starts with the field's name and says each fragment (regular expressions)."""
    assert re.match(rf"{re.escape(field)}[:.\[ ]", line), (field, line)
    for fragment in fragments:
        assert re.search(fragment, line), (fragment, line)


def sets(*pairs: str) -> list[str]:
    out: list[str] = []
    for pair in pairs:
        out += ["--set", pair]
    return out


# ---------------------------------------------------------------- files that are not scenarios

@pytest.mark.parametrize(("name", "fragment"), [
    ("bin.toml", "not valid TOML|not UTF-8"),
    ("bin.yaml", "not valid YAML|not UTF-8"),
    ("list.yaml", "must hold a table"),
    ("empty.toml", "missing section"),
    ("nope.toml", "no such file"),
    ("base.txt", "unknown file type"),
])
def test_unreadable_scenario_files(capsys, no_simulation, base, name, fragment):
    line = refusal(capsys, ["run", str(base.parent / name)])
    assert re.search(fragment, line), line
    assert line.split(":")[0] in ("scenario", "cluster")


# ---------------------------------------------------------------- edge lists

@pytest.mark.parametrize(("name", "fragment"), [
    ("garbage.csv", "column|header|site_a"),
    ("empty.csv", "empty|no edges|column"),
    ("header-only.csv", "empty|no edges|no vertices"),
    ("disconnected.csv", "not connected|disconnected"),
    ("negative.csv", "bandwidth.*> 0|negative"),
    ("nan.csv", "latency.*finite|latency.*>= 0|not a number"),
    ("no-such.csv", "does not exist"),
])
def test_bad_edge_lists(capsys, no_simulation, base, name, fragment):
    line = refusal(capsys, ["run", str(base), *sets(f"network.topology={base.parent / name}",
                                                    "network.topology_params={}")])
    check(line, "network.topology", fragment)


# ---------------------------------------------------------------- fault specs and trace files

@pytest.mark.parametrize(("value", "field", "fragment"), [
    ('{model="trace", path="nope.csv"}', "faults.stragglers", "does not exist|no such file"),
    ('{model="moon"}', "faults.stragglers", "moon"),
    ('{model="bimodal", p=2, slowdown=3}', "faults.stragglers", r"p"),
])
def test_bad_straggler_specs(capsys, no_simulation, base, value, field, fragment):
    line = refusal(capsys, ["run", str(base), *sets(f"faults.stragglers={value}")])
    check(line, field, fragment)


@pytest.mark.parametrize(("value", "field", "fragment"), [
    ('{model="trace", path="nope.csv"}', r"faults.failures[0]", "does not exist|no such file"),
    ('{model="moon"}', "faults.failures", "moon"),
    ('{model="poisson", rate="1e9/h", downtime="10min"}', "faults.failures[0].rate",
     "events|at most"),
    ('{model="poisson", rate="-1/h"}', "faults.failures[0].rate", "negative"),
    ('{model="poisson", rate="1/h", downtime=600}', "faults.failures[0].downtime", "no unit"),
    ('{model="poisson", rat="1/h"}', "faults.failures", "rat.*did you mean 'rate"),
    ('{model="partition", groups=[["x"]], start="1min"}', "faults.failures[0].groups",
     "unknown site"),
])
def test_bad_failure_specs(capsys, no_simulation, base, value, field, fragment):
    line = refusal(capsys, ["run", str(base), *sets(f"faults.failures={value}")])
    check(line, field, fragment)


# ---------------------------------------------------------------- shapes that cannot fit

@pytest.mark.parametrize(("policy", "extra", "field", "fragment"), [
    ('{name="full_pipeline", stage_sizes=[1,1,1,1,1]}', [], "policy.stage_sizes",
     "needs 5 nodes; the cluster has 4"),
    ('{name="full_pipeline", stage_sizes=[1,1,1,1,1,1,1,1,1,1,1,1]}', ["cluster.nodes=12"],
     "policy", "layers"),
    ('{name="skippipe", stage_sizes=[2,2]}', ["workload.learner=cnn", "workload.timing=same",
                                              "workload.data=digits"],
     "workload.learner", "decoder.*'cnn'"),
    ('{name="checkfree", num_stages=6}', [], "policy.num_stages", "nodes"),
    ('{name="checkfree", num_stages=4, replicas_per_stage=2}', [], "policy", "nodes"),
    ('{name="checkfree", num_stages=3}', [], "policy", "transformer stages"),
    ('{name="gc_cyclic", s=4}', [], "policy.s", r"\[0, n="),
    ('{name="gc_cyclic", s=500}', [], "policy.s", r"\[0, n="),
    ('{name="gc_approx", wait_for=50}', [], "policy.wait_for", "n="),
    ('{name="gc_cyclic", master=9}', [], "policy.master", "0..3"),
    ('{name="m_sgc", lam=50}', [], "policy.lam", "n="),
    ('{name="sr_sgc", B=3, W=3}', [], "policy.B", "divide"),
])
def test_impossible_method_shapes(capsys, no_simulation, base, policy, extra, field, fragment):
    line = refusal(capsys, ["run", str(base), *sets(f"policy={policy}", *extra)])
    check(line, field, fragment)


@pytest.mark.parametrize("name", ["ddp", "diloco", "noloco", "gossip", "streaming_diloco",
                                  "palsgd"])
def test_one_node_for_data_parallel(capsys, no_simulation, base, name):
    line = refusal(capsys, ["run", str(base), *sets("cluster.nodes=1", f"policy.name={name}")])
    check(line, "cluster.nodes", "at least 2")


def test_a_billion_nodes_is_refused_from_a_memory_estimate(capsys, no_simulation, base):
    line = refusal(capsys, ["run", str(base), *sets("cluster.nodes=1000000000")])
    check(line, "cluster.nodes", "memory|GiB")


# ---------------------------------------------------------------- stop conditions

@pytest.mark.parametrize(("pairs", "field", "fragment"), [
    (["run.target_loss=nan"], "run.target_loss", "finite"),
    (["run.target_loss=inf"], "run.target_loss", "finite"),
    (["run.target_loss=-inf"], "run.target_loss", "finite"),
    (['run={target_loss=1.0, stop_at_target=true, eval_every="1min"}'], "run",
     "bound|until|steps"),
    (['run={eval_every="1min"}'], "run", "stop condition"),
    (["run.until=inf"], "run.until", "finite|no unit"),
    (["run.until='1e400s'"], "run.until", "finite"),
])
def test_runs_that_could_never_end(capsys, no_simulation, base, pairs, field, fragment):
    line = refusal(capsys, ["run", str(base), *sets(*pairs)])
    check(line, field, fragment)


# ---------------------------------------------------------------- names and flags

def test_typo_names_the_unknown_key_and_the_closest_one(capsys, no_simulation, base):
    line = refusal(capsys, ["run", str(base), *sets("cluster.nodse=4")])
    check(line, "cluster.nodse", "unknown key", "did you mean 'nodes'")


@pytest.mark.parametrize(("pair", "field", "closest"), [
    ("netwrk.model=ideal", "netwrk", "network"),
    ("network.uplnk=1Gbit/s", "network.uplnk", "uplink"),
    ("run.step=4", "run.step", "steps"),
    ("workload.bacth=4", "workload.bacth", "batch"),
    ("policy.inner_step=4", "policy.inner_step", "inner_steps"),
    ("faults.straggler={model='bimodal'}", "faults.straggler", "stragglers"),
])
def test_typos_everywhere_get_a_suggestion(capsys, no_simulation, base, pair, field, closest):
    argv = ["run", str(base), *sets(pair)]
    if pair.startswith("policy."):
        argv += sets("policy.name=diloco")
    line = refusal(capsys, argv)
    check(line, field, "unknown", f"did you mean '{closest}'")


def test_unknown_policy_flag_names_the_flag(capsys, no_simulation, base):
    line = refusal(capsys, ["run", str(base), "--policy", "nosuch"])
    check(line, "--policy", "unknown policy 'nosuch'", "allowed: .*ddp")


def test_unknown_policies_flag_names_the_flag(capsys, no_simulation, base):
    line = refusal(capsys, ["compare", str(base), "--policies", "ddp,nosuch"])
    check(line, "--policies", "unknown policy 'nosuch'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no GPU")
@pytest.mark.parametrize("command", [[], ["run"], ["compare"]])
def test_a_cuda_workload_without_a_gpu_is_refused_before_any_run(capsys, no_simulation, base,
                                                                  command):
    argv = command + ([str(base)] if command else []) + sets("workload.device=cuda")
    line = refusal(capsys, argv)
    check(line, "workload.device", "'cuda' needs a GPU", "allowed here: 'cpu'")


# ---------------------------------------------------------------- output paths

def test_trace_into_a_missing_folder_is_refused_before_the_run(capsys, no_simulation, base):
    target = base.parent / "no" / "such" / "trace.json"
    line = refusal(capsys, ["run", str(base), "--trace", str(target)])
    check(line, "--trace", "does not exist")


def test_trace_onto_a_folder_is_refused(capsys, no_simulation, base):
    line = refusal(capsys, ["run", str(base), "--trace", str(base.parent)])
    check(line, "--trace", "folder")


def test_compare_trace_into_a_missing_folder(capsys, no_simulation, base):
    target = base.parent / "missing" / "t.json"
    line = refusal(capsys, ["compare", str(base), "--policies", "ddp", "--trace", str(target),
                            "--no-plots"])
    check(line, "--trace", "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_out_folder_that_cannot_be_written(capsys, no_simulation, base):
    locked = base.parent / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = refusal(capsys, ["compare", str(base), "--policies", "ddp", "--out",
                                str(locked / "plots")])
    finally:
        locked.chmod(0o700)
    check(line, "--out", "writ")


def test_out_onto_a_file_is_refused(capsys, no_simulation, base):
    line = refusal(capsys, ["compare", str(base), "--policies", "ddp", "--out", str(base)])
    check(line, "--out", "not a folder|is a file")


# ---------------------------------------------------------------- every documented key

# (override, field named, what the line says): wrong type, out of range and unknown values of
# every key in docs/scenario-format.md.
EVERY_KEY = [
    ("name=5", "name", "string"),
    ("description=[1]", "description", "string"),
    ("seed=-1", "seed", ">= 0|greater than or equal to 0"),
    ("seed='x'", "seed", "integer"),
    ("cluster.nodes=0", "cluster.nodes", ">= 1|greater than or equal to 1"),
    ("cluster.nodes='many'", "cluster.nodes", "integer"),
    ("cluster.nodes=2.5", "cluster.nodes", "integer"),
    ("cluster.device='moon'", "cluster.device", "moon.*allowed"),
    ("cluster.device=3", "cluster.device", "string"),
    ("cluster.speed='fast'", "cluster.speed", "table|list|dictionary"),
    ("cluster.speed={dist='moon'}", "cluster.speed", "moon"),
    ("cluster.speed=[1.0, 2.0]", "cluster.speed", "4"),
    ("cluster.speed=[1.0, -1.0, 1.0, 1.0]", "cluster.speed", "> 0|positive"),
    ("cluster.compute_slots=0", "cluster.compute_slots", ">= 1|greater than or equal to 1"),
    ("cluster.compute_slots='x'", "cluster.compute_slots", "integer"),
    ("cluster.memory=5", "cluster.memory", "no unit"),
    ("cluster.memory='-1GiB'", "cluster.memory", "negative"),
    ("cluster.memory='1KiB'", "cluster.memory", "fit|memory"),
    ("network.model='moon'", "network.model", "ideal.*maxmin"),
    ("network.topology='moon'", "network.topology", "moon.*allowed"),
    ("network.topology=7", "network.topology", "string"),
    ("network.topology_params={bogus=1}", "network.topology_params", "bogus"),
    ("network.topology_params='x'", "network.topology_params", "table|dict"),
    ("network.uplink=100", "network.uplink", "no unit"),
    ("network.uplink='-1Mbit/s'", "network.uplink", "negative"),
    ("network.uplink='0Mbit/s'", "network.uplink", "> 0|positive"),
    ("network.downlink='fast'", "network.downlink", "bandwidth"),
    ("network.latency='-5ms'", "network.latency", "negative"),
    ("network.latency=5", "network.latency", "no unit"),
    ("network.tcp.bottleneck_queue=40", "network.tcp.bottleneck_queue", "no unit"),
    ("network.tcp.bottleneck_queue='40parsec'", "network.tcp.bottleneck_queue",
     "allowed: a size .* or a duration"),
    ("network.tcp.bottleneck_queue='-40ms'", "network.tcp.bottleneck_queue", "negative"),
    ("network.tcp.bottleneck_queue='1e308h'", "network.tcp.bottleneck_queue", "finite time"),
    ("network.tcp.bottleneck_queue='1e308TB'", "network.tcp.bottleneck_queue", "finite size"),
    ("network.tcp_efficiency=2", "network.tcp_efficiency", "1"),
    ("network.tcp_efficiency=0", "network.tcp_efficiency", "0"),
    ("network.tcp_efficiency='x'", "network.tcp_efficiency", "number"),
    ("faults.stragglers='x'", "faults.stragglers", "table|dict"),
    ("faults.failures='x'", "faults.failures", "table|dict|list"),
    ("workload.learner='moon'", "workload.learner", "moon.*allowed"),
    ("workload.timing='moon'", "workload.timing", "moon.*allowed"),
    ("workload.data='text:nope.txt'", "workload.data", "does not exist"),
    ("workload.data='moon'", "workload.data", "moon"),
    ("workload.batch=0", "workload.batch", ">= 1|greater than or equal to 1"),
    ("workload.batch='x'", "workload.batch", "int"),
    ("workload.seq=0", "workload.seq", ">= 1|greater than or equal to 1"),
    ("workload.seq=2.5", "workload.seq", "int"),
    ("workload.lr=-1.0", "workload.lr", "> 0"),
    ("workload.lr='x'", "workload.lr", "float"),
    ("policy.name='nosuch'", "policy.name", "unknown policy 'nosuch'"),
    ("policy.name=3", "policy", "name"),
    ("policies.a={name='nosuch'}", "policies.a.name", "unknown policy"),
    ("run.until=5", "run.until", "no unit"),
    ("run.until='-1min'", "run.until", "negative"),
    ("run.until='0s'", "run.until", "> 0"),
    ("run.steps=0", "run.steps", ">= 1|greater than or equal to 1"),
    ("run.steps='x'", "run.steps", "integer"),
    ("run.target_loss='low'", "run.target_loss", "number"),
    ("run.stop_at_target='maybe'", "run.stop_at_target", "bool"),
    ("run.stop_at_target=true", "run.stop_at_target", "target_loss"),
    ("run.eval_every='0s'", "run.eval_every", "> 0"),
    ("run.eval_every=60", "run.eval_every", "no unit"),
    ("run.eval_batches=0", "run.eval_batches", ">= 1|greater than or equal to 1"),
    ("run.timing_only='x'", "run.timing_only", "bool"),
    ("run.seed=-2", "run.seed", ">= 0|greater than or equal to 0"),
    ("run.seed=5", "run.seed", "disagrees"),
]


@pytest.mark.parametrize(("pair", "field", "fragment"), EVERY_KEY,
                         ids=[case[0] for case in EVERY_KEY])
def test_every_documented_key(capsys, no_simulation, base, pair, field, fragment):
    line = refusal(capsys, ["run", str(base), *sets(pair)])
    check(line, field, fragment)


UNKNOWN_KEYS = [
    ("nme='x'", "nme", "name"),
    ("cluster.devce='h100'", "cluster.devce", "device"),
    ("cluster.compute_slot=1", "cluster.compute_slot", "compute_slots"),
    ("network.topolgy='uniform'", "network.topolgy", "topology"),
    ("network.latncy='1ms'", "network.latncy", "latency"),
    ("faults.failure={model='none'}", "faults.failure", "failures"),
    ("workload.lerner='mlp'", "workload.lerner", "learner"),
    ("run.untl='1h'", "run.untl", "until"),
    ("run.eval_evry='1min'", "run.eval_evry", "eval_every"),
    ("run.target_los=1.0", "run.target_los", "target_loss"),
    ("network.tcp.msss=1000", "network.tcp.msss", "mss"),
]


@pytest.mark.parametrize(("pair", "field", "closest"), UNKNOWN_KEYS,
                         ids=[case[0] for case in UNKNOWN_KEYS])
def test_unknown_keys_name_the_closest_valid_one(capsys, no_simulation, base, pair, field,
                                                 closest):
    line = refusal(capsys, ["run", str(base), *sets(pair)])
    check(line, field, "unknown", f"did you mean '{closest}'")


def test_a_refusal_survives_a_worker_process():
    """Parallel compare runs policies in worker processes: their refusals must pickle."""
    import pickle

    from sim.errors import ScenarioError

    error = pickle.loads(pickle.dumps(ScenarioError("cluster.nodes", "needs at least 2 nodes")))
    assert isinstance(error, ScenarioError)
    assert (error.field, str(error)) == ("cluster.nodes", "cluster.nodes: needs at least 2 nodes")


def test_compare_refuses_a_policy_that_cannot_run_on_the_cluster(capsys, base):
    line = refusal(capsys, ["compare", str(base), "--policies", "ddp,diloco", "--no-plots",
                            *sets("cluster.nodes=1")])
    check(line, "cluster.nodes", "at least 2 nodes")
