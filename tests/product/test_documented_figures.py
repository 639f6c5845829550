"""Figures written in the docs and scenario comments agree with the code that computes them.

Issue 18, item 6. Each check reads the figure from the text (so editing the text re-checks it)
and compares it, at the precision it is written with, with the value computed where the product
computes it: the workload's optimum loss, the timing model's gradient bytes, the closed-form
ring all-reduce cost, the registered policy names, the keys of a real ``--json`` record.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from sim.collectives import ring_allreduce_cost
from sim.scenario import default_scenario_path, load

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml")) + [default_scenario_path()]


@cache
def workload_of(path: Path):
    from sim.runner import build_workload
    from sim.world import World

    scenario = load(path).scenario
    return scenario, build_workload(scenario, World.build(scenario))


def agrees(written: str, value: float) -> bool:
    """``value`` rounds to ``written`` at the number of decimals ``written`` shows."""
    decimals = -Decimal(written).as_tuple().exponent
    return round(value, decimals) == float(written)


OPTIMUM = re.compile(r"optimum(?: loss)?(?: is)?(?: known)?\s*\(?(?:about |~)?(\d+\.\d+)")


@pytest.mark.parametrize("path", [p for p in SCENARIOS if OPTIMUM.search(p.read_text())],
                         ids=lambda p: p.name)
def test_optimum_in_scenario_comments_is_the_workloads(path):
    _, workload = workload_of(path)
    for written in OPTIMUM.findall(path.read_text()):
        assert agrees(written, workload.optimum_loss), (written, workload.optimum_loss)


@pytest.mark.parametrize(("doc", "pattern", "scenario"), [
    ("README.md", r"known optimum loss of about (\d\.\d+) nats", default_scenario_path()),
    ("docs/scenario-format.md", r"the data's optimum is (\d\.\d+)", default_scenario_path()),
    ("docs/methods/pipeline-skippipe.md", r"optimum (\d\.\d+) nats",
     ROOT / "scenarios/skippipe-training.toml"),
])
def test_optimum_in_docs_is_the_scenarios(doc, pattern, scenario):
    written = re.findall(pattern, (ROOT / doc).read_text())
    assert written, f"{doc}: {pattern!r} not found"
    _, workload = workload_of(scenario)
    assert all(agrees(w, workload.optimum_loss) for w in written), (written,
                                                                     workload.optimum_loss)


def test_optimum_of_the_default_workload_in_docs():
    from workloads import WorkloadConfig, build_workload

    text = (ROOT / "docs/workloads.md").read_text()
    optimum = build_workload(WorkloadConfig(), num_replicas=1, seed=0).optimum_loss
    for written in re.findall(r"(1\.\d+) nats/token: the chain's entropy rate", text) + \
            re.findall(r"optimum_loss` \((\d\.\d+) for seed 0\)", text):
        assert agrees(written, optimum), (written, optimum)


@pytest.mark.parametrize("path", [ROOT / "scenarios/dp-slow-wan.toml", default_scenario_path(),
                                  ROOT / "docs/cli.md"], ids=lambda p: p.name)
def test_gradient_bytes_and_all_reduce_times(path):
    """'a 543.5 MB fp32 gradient: 84.5 s per ring all-reduce' against the timing model and the
    closed form 2(k-1) alpha + 2(k-1)/k m / beta."""
    text = re.sub(r"\s*\n#?\s*", " ", path.read_text())  # comment lines joined into one
    scenario_path = default_scenario_path() if path.name in ("default.toml", "cli.md") else path
    scenario, workload = workload_of(scenario_path)
    sizes = re.findall(r"(\d+(?:\.\d+)?) MB (?:fp32 )?gradient", text)
    assert sizes, "no gradient size written"
    assert all(agrees(s, workload.timing.grad_bytes / 1e6) for s in sizes), sizes
    k, beta = scenario.cluster.num_nodes, scenario.network.uplink_Bps
    latency = scenario.network.topology_params.get("latency_s", 0.0)
    with_latency = re.findall(r"(\d+\.\d+) s per ring all-reduce here", text)
    bandwidth_only = re.findall(r"(\d+\.\d+) s (?:per ring all-reduce at 100 Mbit/s, )?"
                                r"(?:of )?bandwidth term", text)
    assert with_latency or bandwidth_only, "no all-reduce time written"
    for seconds in with_latency:
        assert agrees(seconds, ring_allreduce_cost(k, workload.timing.grad_bytes, latency, beta))
    for seconds in bandwidth_only:
        assert agrees(seconds, ring_allreduce_cost(k, workload.timing.grad_bytes, 0.0, beta))


def test_learner_size_in_readme():
    _, workload = workload_of(default_scenario_path())
    learner = workload.make_learner(0)
    readme = (ROOT / "README.md").read_text()
    written = re.findall(r"a (\d+)k-parameter LLaMA really trains", readme)
    assert written and all(round(learner.num_params / 1000, -1) == int(w) for w in written)


def test_readme_and_cli_docs_show_the_same_default_table():
    def rows(text: str) -> list[str]:
        return [line for line in text.splitlines()
                if re.match(r"^(ddp|diloco|noloco)\s+\S+ (h|min|s)\s", line)]

    readme = rows((ROOT / "README.md").read_text().split("scenario 'default-wan'")[1])[:3]
    cli = rows((ROOT / "docs/cli.md").read_text())
    assert len(readme) == 3 and readme == cli


def test_policy_names_in_docs_are_registered():
    from sim.policy import get_policy, policy_names

    # the project's own methods (tests register throwaway policies of their own)
    registered = {n for n in policy_names() if get_policy(n).__module__.startswith("policies.")}
    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| ")
             and line.count("|") == 5]
    listed = {name for line in table for name in re.findall(r"`(\w+)`", line.split("|")[2])}
    assert listed == registered  # every method listed, nothing that does not exist
    cli = (ROOT / "docs/cli.md").read_text()
    lists = re.findall(r"unknown policy '\w+'; allowed: ([\w, ]+)", cli)
    assert lists, "docs/cli.md shows no unknown-policy error"
    for allowed in lists:
        names = [n.strip() for n in allowed.split(",") if n.strip()]
        assert set(names) <= registered, names
        assert names == sorted(names)


def test_json_keys_in_cli_docs_are_the_records(capsys, fast_toml):
    """docs/cli.md's table of --json keys is exactly what `dtsim compare --json` prints."""
    from sim.cli import main

    assert main(["compare", str(fast_toml), "--json", "--quiet", "--no-plots",
                 "--set", "run.steps=1"]) == 0
    records = json.loads(capsys.readouterr().out)
    text = (ROOT / "docs/cli.md").read_text()
    section = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    documented = {key for line in section.splitlines() if line.startswith("| `")
                  for key in re.findall(r"`(\w+)`", line.split("|")[1])}
    for record in records:
        assert set(record) == documented
