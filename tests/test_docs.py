"""The code in README.md and docs/ runs and prints what the docs say (issue 18, item 3).

Blocks are tagged with ``<!-- doctest: ... -->`` comments (see tests/docs_blocks.py). CI runs
every tagged block in its fast form (the ``fast:`` overrides shrink the scenario) and checks the
printed output's shape against the docs; the ``slow`` tier runs the full form and requires the
exact output the docs show.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs_blocks import (
    CHECKED_LANGUAGES,
    ROOT,
    Block,
    all_blocks,
    console_mismatches,
    run_python,
    run_shell,
    same_shape,
)

BLOCKS = all_blocks()


def _library_drops_file_policies() -> bool:
    """Issue 18 item 1 (helper i11's loader): ``load_scenario`` loses ``[policies.*]``.

    Fixed once a loaded Scenario answers ``policy_config("diloco")`` with the file's
    ``inner_steps = 20`` (it does since i11's loader landed).
    """
    from sim.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "dp-slow-wan.toml")
    policy_config = getattr(scenario, "policy_config", None)
    if policy_config is None:
        return True
    config = policy_config("diloco")
    config = config[1] if isinstance(config, tuple) else config  # (label, PolicyConfig)
    return config.params.get("inner_steps") != 20


#: Tracked bugs a block may be tagged with (``xfail: <name>: ...``): name -> "still there?".
KNOWN_BUGS = {"issue 18 item 1": _library_drops_file_policies}


def _param(block: Block):
    """A block as a test parameter; ``xfail: REASON`` marks a known, tracked failure.

    A reason that starts with a name of :data:`KNOWN_BUGS` expects the failure only while that
    bug is there (strictly: the tag must go once the block passes); any other reason always.
    """
    if "xfail" in block.directives:
        reason = block.directives["xfail"]
        still_there = next((probe for name, probe in KNOWN_BUGS.items()
                            if reason.startswith(name)), lambda: True)
        return pytest.param(block, id=block.id, marks=pytest.mark.xfail(
            condition=still_there(), strict=True, reason=reason))
    return pytest.param(block, id=block.id)


RUNNABLE = [_param(b) for b in BLOCKS if {"run", "pytest"} & set(b.directives)]
WITH_FAST_FORM = [_param(b) for b in BLOCKS
                  if {"run", "pytest"} & set(b.directives) and b.fast_overrides]


def test_every_code_block_says_how_it_is_tested():
    untagged = [b.id for b in BLOCKS if b.lang in CHECKED_LANGUAGES
                and not {"run", "pytest", "console", "scenario", "skip"} & set(b.directives)]
    assert untagged == [], "tag these blocks with <!-- doctest: run | pytest | console | " \
                           "scenario | skip: reason -->"
    unexplained = [b.id for b in BLOCKS if "skip" in b.directives and not b.directives["skip"]]
    assert unexplained == [], "a skipped block needs a reason"
    dangling = [b.id for b in BLOCKS if b.directives.get("output") == "next" and b.output is None]
    assert dangling == []


@pytest.fixture
def in_fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory whose ``scenarios/`` is the project's."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(block: Block, overrides: list[str]) -> str:
    if block.lang == "bash":
        return run_shell(block, overrides)
    return run_python(block, overrides, call_tests="pytest" in block.directives)


@pytest.mark.parametrize("block", RUNNABLE)
def test_block_runs_in_its_fast_form(block: Block, in_fresh_folder: Path) -> None:
    printed = _run(block, block.fast_overrides)
    if block.output is not None:
        if block.fast_overrides:
            assert same_shape(printed, block.output) == [], printed
        else:
            assert printed == block.output


@pytest.mark.slow
@pytest.mark.parametrize("block", WITH_FAST_FORM)
def test_block_runs_in_full_and_prints_what_the_docs_show(block: Block,
                                                          in_fresh_folder: Path) -> None:
    printed = _run(block, [])
    if block.output is not None:
        assert printed == block.output


@pytest.mark.parametrize("block", [b for b in BLOCKS if "scenario" in b.directives],
                         ids=lambda b: b.id)
def test_scenario_blocks_are_valid_scenarios(block: Block) -> None:
    import tomllib

    from sim.scenario import parse_spec

    table = tomllib.loads(block.text)
    base = block.directives["scenario"]
    if base:  # a fragment: merged into the named scenario file, then validated as a whole
        from sim.scenario import read_scenario_file

        table = _merged(read_scenario_file(ROOT / base), table)
    scenario = parse_spec(table, base_dir=ROOT / "scenarios")  # raises, naming the field
    assert scenario.policy_configs(None), "a documented scenario names at least one policy"


def _merged(base: dict, fragment: dict) -> dict:
    out = dict(base)
    for key, value in fragment.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


@pytest.mark.parametrize("block", [b for b in BLOCKS if "console" in b.directives],
                         ids=lambda b: b.id)
def test_console_transcripts_print_what_the_docs_show(block: Block,
                                                      in_fresh_folder: Path) -> None:
    assert console_mismatches(block) == []


def test_fast_overrides_reach_the_scenario(in_fresh_folder: Path) -> None:
    """The mechanism itself: a fast override changes what the block's code loads."""
    block = Block(path=ROOT / "README.md", line=0, lang="python", text=(
        "from sim import load_scenario\n"
        "print(load_scenario('scenarios/dp-slow-wan.toml').cluster.num_nodes)\n"))
    assert run_python(block, ["cluster.nodes=3"], call_tests=False) == "3\n"
    assert run_python(block, [], call_tests=False) == "16\n"
    assert os.getcwd() == str(in_fresh_folder)
