"""Every command the docs tell a user to run refuses a bad argument like ``dtsim`` does.

``python -m experiments.<name>`` and ``python -m workloads.calibrate`` (README.md, docs/methods/)
answer an unknown option, a non-number, a count below one, an unknown name or a path that cannot
be used with exit code 2, nothing on stdout and one line on stderr,
``<prog>: error: <option>: <what is allowed>``. Before session 12 each case here printed a
traceback and exited 1, printed argparse's usage block, ran anyway (``--until-s 0``,
``--processes 0``), or failed only after the runs (``--plot`` into a missing folder).

Each case calls the module's ``main(argv)`` in the test's own process with the engine's
``Environment.run`` replaced by one that fails the test: the refusal comes before any run.
``{out}`` in a command line is a fresh folder, ``{a_file}`` a file in it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GC_FILE = str(ROOT / "scenarios/gc-lambda.toml")

CASES = {
    "experiments.dp_regressions": [
        (["bogus"], "NAME: unknown experiment 'bogus'; allowed: bytes, slow-wan, "),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["bytes", "--set"], "argument --set: expected at least one argument"),
        (["bytes", "--set", "bogus=1"], "bogus: unknown key"),
    ],
    "experiments.recovery_family": [
        (["--seeds", "abc"], "--seeds: must be comma-separated integers >= 0, got 'abc'"),
        (["--seeds", "-1"], "--seeds: must be comma-separated integers >= 0, got '-1'"),
        (["--seeds", ""], "--seeds: must be comma-separated integers >= 0, got ''"),
        (["--rates", "1.5"], "--rates: must be comma-separated probabilities per hour in [0, 1)"),
        (["--rates", "0.05,nan"], "--rates: must be comma-separated probabilities per hour"),
    ],
    "experiments.recovery_connections": [
        (["--methods", "ddp"], "--methods: unknown method 'ddp'; allowed: checkfree, "),
        (["--methods"], "argument --methods: expected at least one argument"),
        (["--until-s", "0"], "--until-s: must be a number of seconds > 0, got 0.0"),
        (["--until-s", "nan"], "--until-s: must be a number of seconds > 0, got nan"),
        (["--transport", "udp"], "argument --transport: invalid choice: 'udp'"),
    ],
    "experiments.gc_tuned_compare": [
        ([], "the following arguments are required: scenario"),
        (["no/such.toml"], "scenario: no such file: 'no/such.toml'"),
        ([GC_FILE, "--max-W", "1"], "--max-W: must be an integer >= 2 (rounds), got 1"),
        ([GC_FILE, "--max-W", "two"], "argument --max-W: invalid int value: 'two'"),
        ([GC_FILE, "--plot", "no/such/folder/fig.png"], "--plot: folder 'no/such/folder' does "),
        ([GC_FILE, "--plot", "{out}/fig.gif"], "--plot: unknown figure format 'gif'; allowed: "),
        ([GC_FILE, "--set", "bogus=1"], "bogus: unknown key"),
    ],
    "experiments.recovery_figures": [
        (["--out", "{out}", "--rates", "7"], "--rates: must be comma-separated rates with a file "
                                           "checkfree-<rate>pct.toml in "),
        (["--out", "{out}", "--rates", "5,"], "--rates: must be comma-separated rates"),
        (["--out", "{out}", "--seeds", "abc"], "--seeds: must be comma-separated integers >= 0"),
        (["--out", "{out}", "--processes", "0"], "--processes: must be an integer >= 1, got 0"),
        (["--out", "{out}", "--methods", "bogus"], "--methods: unknown policy 'bogus'"),
        (["--out", "{out}", "--scenarios", "no/such/folder"],
         "--scenarios: must be an existing folder, got no/such/folder"),
        (["--out", "{out}", "--rates", "5", "--set", "bogus=1"], "bogus: unknown key"),
        (["--out", "{a_file}/figures"], "--out: "),
    ],
    "workloads.calibrate": [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["h100"], "unrecognized arguments: h100"),
    ],
}


@pytest.mark.parametrize(("module", "argv", "line"), [
    (module, argv, line) for module, cases in CASES.items() for argv, line in cases])
def test_the_command_refuses_a_bad_argument_in_one_line(capsys, tmp_path, no_simulation,
                                                          module, argv, line):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    argv = [arg.format(out=tmp_path, a_file=a_file) for arg in argv]
    assert importlib.import_module(module).main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"python -m {module}: error: {line}")
