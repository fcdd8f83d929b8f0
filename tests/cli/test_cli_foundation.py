"""The foundation commands of the CLI: info, spec, properties export, errors and --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from verirepair.cli import EXIT_BAD_INPUT, EXIT_OK, build_parser, main
from verirepair.demo import demo_paths

DEMO_NET, DEMO_PROPS = demo_paths()


def test_info_prints_every_layer_and_parameter_count(capsys, monkeypatch):
    from verirepair.cli.common import console

    # The table follows the terminal width (COLUMNS=40 wraps its cells); read it wide.
    monkeypatch.setattr(console, "width", 160)
    assert main(["info", str(DEMO_NET)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "12 x 5" in out and "12 x 12" in out and "5 x 12" in out
    # 5*12+12 + 12*12+12 + 12*5+5 = 293 parameters
    assert "293 parameters" in out


def test_spec_prints_boxes_and_unsafe_set(capsys):
    assert main(["spec", str(DEMO_PROPS[0])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "[0.2, 0.5]" in out
    assert "Y_0 - Y_1 <= 0" in out


@pytest.mark.parametrize("argv", [
    ["info", "does-not-exist.onnx"],
    ["spec", "does-not-exist.vnnlib"],
    ["verify", "does-not-exist.onnx", "x.vnnlib"],
])
def test_missing_file_is_one_line_error_exit_2(argv, capsys):
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does-not-exist" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_malformed_vnnlib_reports_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1.0)\n")
    assert main(["spec", str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "bad.vnnlib" in err and "line" in err and "Traceback" not in err


def test_unknown_network_suffix_is_bad_input(tmp_path, capsys):
    path = tmp_path / "net.h5"
    path.write_bytes(b"\x00")
    assert main(["info", str(path)]) == EXIT_BAD_INPUT
    assert ".onnx" in capsys.readouterr().err


def test_every_subcommand_has_help():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices  # the argparse registry
    assert {"info", "spec", "properties", "verify", "bench", "localize", "repair", "demo"} <= set(subparsers)
    for name, sub in subparsers.items():
        assert sub.description, f"'{name}' has no description for --help"
        assert sub.format_help().startswith("usage: verirepair " + name)


def test_console_script_help_runs_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "verirepair.cli", "--help"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and "verify" in proc.stdout


def test_properties_export_writes_ten_files_and_leaves_sources(tmp_path, capsys):
    from verirepair.tasks.acasxu.physical import default_properties_dir

    src = default_properties_dir()
    before = {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}
    assert main(["properties", "export", "--dest", str(tmp_path)]) == EXIT_OK
    assert sorted(p.name for p in tmp_path.glob("prop_*.vnnlib")) == sorted(f"prop_{n}.vnnlib" for n in range(1, 11))
    after = {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}
    assert before == after, "export must never touch its input files"
    assert "10 properties exported" in capsys.readouterr().out


def test_readme_test_command_is_what_ci_runs():
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    block = readme.split("**Run the checks and the tests**", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert block and block in ci, "the README's test command must be exactly the one .ci/run runs"


def test_blas_runs_single_threaded_unless_the_environment_says_otherwise(monkeypatch, capsys):
    from verirepair.cli import BLAS_THREAD_VARIABLES

    net, _ = demo_paths()
    for variable in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    assert main(["info", str(net)]) == EXIT_OK
    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "2"


def test_an_interrupt_names_the_undelivered_network_only_for_repairs():
    from verirepair.cli.entry import _stop_note
    from verirepair.cli.parser import build_parser

    parser = build_parser()
    assert "no repaired network" in _stop_note(parser.parse_args(["repair", "n.onnx", "--acasxu"]))
    assert "no repaired network" in _stop_note(parser.parse_args(["fairness", "repair", "n.onnx", "--data", "german",
                                                                  "--protected", "sex", "--out", "o.onnx",
                                                                  "--report", "r"]))
    assert _stop_note(parser.parse_args(["verify", "n.onnx", "p.vnnlib"])) == ""
