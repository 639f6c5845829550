"""Output folders are never overwritten silently (issue 18, item 4)."""

from __future__ import annotations

from sim.cli import main
from sim.output import fresh_output_dir


def test_fresh_output_dir_keeps_earlier_files(tmp_path):
    names = ["compare.png", "timeline.png"]
    out = tmp_path / "out"
    assert fresh_output_dir(out, names) == out  # does not exist yet
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert fresh_output_dir(out, names) == out  # other files are no conflict
    (out / "timeline.png").write_bytes(b"earlier")
    assert fresh_output_dir(out, names) == tmp_path / "out-2"
    (tmp_path / "out-2").mkdir()
    (tmp_path / "out-2" / "compare.png").write_bytes(b"earlier")
    assert fresh_output_dir(out, names) == tmp_path / "out-3"
    assert fresh_output_dir(out, names, overwrite=True) == out
    assert not (tmp_path / "out-3").exists()  # nothing is created


def _compare(fast_toml, out, *extra):
    return main(["compare", str(fast_toml), "--quiet", "--out", str(out), "--set",
                 "run.steps=1", *extra])


def test_second_cli_run_writes_a_new_folder_and_says_so(capsys, fast_toml, tmp_path):
    out = tmp_path / "dtsim-out"
    assert _compare(fast_toml, out) == 0
    first = capsys.readouterr().out
    assert f"plots: {out / 'compare.png'}, {out / 'timeline.png'}, {out / 'bytes.png'}" in first
    earlier = (out / "timeline.png").read_bytes()
    (out / "timeline.png").write_bytes(b"an earlier run's figure")

    assert _compare(fast_toml, out, "--plot-format", "png,svg") == 0
    second = capsys.readouterr().out
    again = tmp_path / "dtsim-out-2"
    assert f"{out} holds an earlier run's plots (kept; --overwrite replaces them)" in second
    assert f"plots: {again / 'compare.png'}, {again / 'compare.svg'}," in second
    assert (out / "timeline.png").read_bytes() == b"an earlier run's figure"
    assert (again / "timeline.svg").read_bytes().startswith(b"<?xml")

    assert _compare(fast_toml, out, "--overwrite") == 0
    third = capsys.readouterr().out
    assert "holds an earlier run's plots" not in third
    assert (out / "timeline.png").read_bytes() == earlier  # deterministic: the same figure


def test_bad_plot_format_exits_2(capsys, fast_toml, tmp_path):
    assert _compare(fast_toml, tmp_path, "--plot-format", "png,gif") == 2
    assert capsys.readouterr().err == ("dtsim: error: --plot-format: unknown format 'gif'; "
                                       "allowed: png, svg, pdf\n")
