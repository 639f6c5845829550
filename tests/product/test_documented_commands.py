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
         "--scenarios: must be an existing folder, got 'no/such/folder'"),
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


def test_every_quoted_data_parallel_experiment_exists():
    """Each ``python -m experiments.dp_regressions NAME`` written in the docs, the scenario
    files' comments or the tests names an experiment the module has (before session 12, two
    scenario files pointed at ``co2`` and ``compressed``, which it never had)."""
    import re

    from experiments.dp_regressions import EXPERIMENTS

    quoted = {}
    texts = [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("scenarios/*.toml"),
             *ROOT.glob("tests/**/*.py")]
    for path in texts:
        for name in re.findall(r"-m experiments\.dp_regressions ((?:[a-z][a-z0-9-]* ?)+)",
                               path.read_text()):
            for word in name.split():
                quoted.setdefault(word, path.relative_to(ROOT))
    assert quoted  # the docs do quote some
    unknown = {word: str(path) for word, path in quoted.items()
               if word not in EXPERIMENTS and word != "all"}
    assert not unknown, unknown


def test_each_data_parallel_experiment_lists_the_files_it_reads():
    """``dp_regressions`` checks ``--set`` against each chosen experiment's scenario files
    before it runs any (``FILES``); the list must be the files its function reads."""
    import inspect
    import re

    from experiments import dp_regressions

    assert set(dp_regressions.FILES) == set(dp_regressions.EXPERIMENTS)
    for name, function in dp_regressions.EXPERIMENTS.items():
        if function.__name__ == "<lambda>":  # dp-pp-fixed: dp_pp with one routing
            function = dp_regressions.dp_pp
        read = re.findall(r'run_file\("([^"]+)"', inspect.getsource(function))
        assert sorted(set(read)) == sorted(dp_regressions.FILES[name]), name
