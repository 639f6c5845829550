"""Find and run the code blocks of README.md and docs/ (used by tests/test_docs.py).

A fenced block is run by the tests when the HTML comment on the line before it (invisible on
GitHub) says so::

    <!-- doctest: run; fast: cluster.nodes=4 run.until=30min; output: next -->
    ```python
    ...
    ```

Directives, separated by ``;``:

``run``
    Execute the block: Python with ``exec`` (stdout captured); shell lines that start with
    ``dtsim`` or ``python -m sim`` through :func:`sim.cli.main` in this process (the exit code
    must be 0). The working directory is a fresh folder in which ``scenarios/`` is the
    project's, so relative paths read as in the docs and outputs land in the folder.
``pytest``
    Execute a Python block, then call every ``test_*`` function it defines.
``fast: KEY=VALUE ...``
    The CI form: these overrides are applied to every scenario file the block reads (around
    :func:`sim.scenario.read_scenario_file`, which every loader uses; a block in which none
    was read fails). The full form runs in the ``slow`` tier.
``output: next``
    The next fenced block is what the block prints. The full form must print it exactly; the
    fast form must print the same lines with the same first and last words (names, units and
    bases; the figures in between depend on the size of the run).
``console``
    A transcript: each ``$ dtsim ...`` line is run, and what it prints (stdout, then stderr)
    must be the lines that follow it; a line ending in ``...`` matches any line it begins.
``scenario`` or ``scenario: FILE``
    A TOML block that must be a valid scenario file; with ``FILE`` (a scenario of the project),
    a fragment that must be valid once merged into that file.
``skip: REASON``
    Not meant to run (a signature listing, an install step); the reason is required.
``xfail: REASON``
    Runs, but is known to fail for a tracked reason (name the issue); a strict expected
    failure, so the tag must go as soon as the block passes. A reason that names a bug of
    ``tests/test_docs.py``'s ``KNOWN_BUGS`` expects the failure only while that bug is there.

Every ``python``, ``bash`` and ``toml`` block must carry one of ``run``, ``pytest``,
``console``, ``scenario`` or ``skip``, so a new example cannot silently go untested.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The languages whose blocks must say how they are tested.
CHECKED_LANGUAGES = ("python", "bash", "toml")

DIRECTIVE = re.compile(r"^<!--\s*doctest:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")


@dataclass
class Block:
    """One fenced block of a Markdown file and what its directive asks."""

    path: Path
    line: int
    lang: str
    text: str
    directives: dict[str, str] = field(default_factory=dict)
    output: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def fast_overrides(self) -> list[str]:
        return self.directives.get("fast", "").split()


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse_directives(body: str) -> dict[str, str]:
    out = {}
    for part in body.split(";"):
        key, _, value = part.strip().partition(":")
        if key.strip():
            out[key.strip()] = value.strip()
    return out


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with its directive (if any) and expected output."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    previous = ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        directive = DIRECTIVE.match(previous)
        blocks.append(Block(path=path, line=i + 1, lang=match.group("lang"),
                            text="\n".join(lines[i + 1:end]) + "\n",
                            directives=parse_directives(directive.group("body"))
                            if directive else {}))
        previous = ""
        i = end + 1
    for block, following in zip(blocks, blocks[1:]):
        if block.directives.get("output") == "next":
            block.output = following.text
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in blocks_of(path)]


@contextlib.contextmanager
def extra_overrides(overrides: list[str]):
    """Add ``overrides`` to every scenario file read inside the block; yields a read counter."""
    import sim.scenario as scenario_module

    reads = [0]
    if not overrides:
        yield reads
        return
    real = scenario_module.read_scenario_file

    def read_with_overrides(path: Any) -> dict[str, Any]:
        reads[0] += 1
        return scenario_module.apply_overrides(real(path), overrides)

    # every module that imported the reader by name (sim.scenario, sim.cli, sim.sweep)
    holders = [m for m in list(sys.modules.values())
               if getattr(m, "read_scenario_file", None) is real]
    for module in holders:
        module.read_scenario_file = read_with_overrides
    try:
        yield reads
    finally:
        for module in holders:
            module.read_scenario_file = real


def shell_commands(text: str) -> list[list[str]]:
    """``dtsim`` argument lists of a shell block's lines (comments and prompts dropped)."""
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.removeprefix("$ "), comments=True)
        if not words:
            continue
        if words[0] == "dtsim":
            commands.append(words[1:])
        elif words[:3] == ["python", "-m", "sim"]:
            commands.append(words[3:])
        else:
            raise AssertionError(f"not a dtsim command: {line!r}")
    return commands


def run_shell(block: Block, overrides: list[str]) -> str:
    """Run each command of a shell block through ``sim.cli.main``; returns stdout."""
    from sim.cli import main

    out = io.StringIO()
    with extra_overrides(overrides) as reads:
        for argv in shell_commands(block.text):
            with contextlib.redirect_stdout(out):
                code = main(argv)
            assert code == 0, f"{block.id}: dtsim {shlex.join(argv)} exited with {code}"
    if overrides:
        assert reads[0] > 0, f"{block.id}: the fast overrides were never applied"
    return out.getvalue()


def console_mismatches(block: Block) -> list[str]:
    """Run each ``$ dtsim`` line of a transcript; lines that differ from the docs."""
    from sim.cli import main

    problems = []
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.rstrip("\n").splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    for command, expected in steps:
        [argv] = shell_commands(command)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
        got = (out.getvalue() + err.getvalue()).rstrip("\n").splitlines()
        if len(got) != len(expected) or not all(
                g.startswith(w[:-3]) if w.endswith("...") else g == w
                for g, w in zip(got, expected)):
            problems.append(f"$ {command}\nprinted:\n" + "\n".join(got)
                            + "\nthe docs show:\n" + "\n".join(expected))
    return problems


def run_python(block: Block, overrides: list[str], *, call_tests: bool) -> str:
    """Execute a Python block (and its ``test_*`` functions); returns what it printed."""
    namespace: dict[str, Any] = {"__name__": "__doc_block__"}
    out = io.StringIO()
    with extra_overrides(overrides) as reads, contextlib.redirect_stdout(out):
        exec(compile(block.text, block.id, "exec"), namespace)  # noqa: S102 - our own docs
        if call_tests:
            tests = [f for name, f in namespace.items() if name.startswith("test_")
                     and callable(f)]
            assert tests, f"{block.id}: a pytest block without test functions"
            for test in tests:
                test()
    if overrides:
        assert reads[0] > 0, f"{block.id}: the fast overrides were never applied"
    return out.getvalue()


def same_shape(printed: str, expected: str) -> list[str]:
    """Lines of a fast run that differ from the docs in more than their figures.

    Lines must match in number and in their first and last words; a line without digits (a
    header, a path) must have the same words.
    """
    problems = []
    got, want = printed.rstrip("\n").splitlines(), expected.rstrip("\n").splitlines()
    if len(got) != len(want):
        return [f"{len(got)} lines printed, the docs show {len(want)}"]
    for g, w in zip(got, want):
        if not re.search(r"\d", w):
            if g.split() != w.split() and not set(w) <= {"-", " "}:
                problems.append(f"printed {g!r}, the docs show {w!r}")
            continue
        gw, ww = g.split(), w.split()
        if not gw or gw[0] != ww[0] or gw[-1] != ww[-1]:
            problems.append(f"printed {g!r}, the docs show {w!r}")
    return problems
