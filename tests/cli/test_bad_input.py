"""The bad-input suite: every malformed file, option or output location of the CLI.

Each case must give exit code 2, exactly ONE line on stderr starting with
``error:``, no traceback, and leave every file as it was (nothing created,
nothing changed), in the working directory and beside the inputs.

Most cases call :func:`verirepair.cli.main` in-process (fast); a few run the
console script in a subprocess with ``COLUMNS`` unset and with ``COLUMNS=40``,
where rich used to hard-wrap messages at the console width.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from verirepair.cli import EXIT_BAD_INPUT, main
from verirepair.demo import demo_paths

DEMO_NET, DEMO_PROPS = demo_paths()


# ----------------------------------------------------------------------------- fixtures
def _mutated_onnx(path: Path, mutate) -> Path:
    model = onnx.load(str(DEMO_NET))
    mutate(model)
    path.write_bytes(model.SerializeToString())
    return path


def _flatten_with_weight(model) -> None:
    node = next(n for n in model.graph.node if n.op_type in ("Gemm", "MatMul"))
    node.op_type = "Flatten"
    del node.attribute[:]
    while len(node.input) > 2:
        node.input.pop()


def _relu_with_bias(model) -> None:
    node = next(n for n in model.graph.node if n.op_type == "Relu")
    node.input.append(model.graph.initializer[1].name)


def _nan_weight(model) -> None:
    init = model.graph.initializer[0]
    values = numpy_helper.to_array(init).copy()
    values.flat[3] = np.nan
    init.CopyFrom(numpy_helper.from_array(values, init.name))


def _bad_dims(model) -> None:
    model.graph.initializer[0].dims[0] += 1


def _bad_dtype(model) -> None:
    model.graph.initializer[0].data_type = 99


def _unknown_op(model) -> None:
    next(n for n in model.graph.node if n.op_type == "Relu").op_type = "Softsign"


def _prop_text(n_inputs: int, n_outputs: int) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    lines += [f"(assert (>= X_{i} 0.0))\n(assert (<= X_{i} 0.5))" for i in range(n_inputs)]
    lines.append("(assert (<= Y_0 Y_1))")
    return "\n".join(lines) + "\n"


@pytest.fixture
def files(tmp_path):
    """Bad input files in a folder of their own (``tmp_path/in``); the command runs in ``tmp_path/run``."""
    d = tmp_path / "in"
    d.mkdir()
    good = d / "good.vnnlib"
    shutil.copy(DEMO_PROPS[0], good)
    net = d / "net.onnx"
    shutil.copy(DEMO_NET, net)
    body = Path(DEMO_PROPS[0]).read_bytes()
    paths = {
        "net": net, "prop": good,
        "empty_onnx": d / "empty.onnx", "garbage_onnx": d / "garbage.onnx", "truncated_onnx": d / "trunc.onnx",
        "folder_onnx": d / "folder.onnx",
        "flatten_w": _mutated_onnx(d / "flatten_w.onnx", _flatten_with_weight),
        "relu_b": _mutated_onnx(d / "relu_b.onnx", _relu_with_bias),
        "nan_w": _mutated_onnx(d / "nan_w.onnx", _nan_weight),
        "bad_dims": _mutated_onnx(d / "bad_dims.onnx", _bad_dims),
        "bad_dtype": _mutated_onnx(d / "bad_dtype.onnx", _bad_dtype),
        "unknown_op": _mutated_onnx(d / "unknown_op.onnx", _unknown_op),
        "bad_nnet": d / "bad.nnet", "h5": d / "net.h5",
        "x_mismatch": d / "x4.vnnlib", "y_mismatch": d / "y3.vnnlib",
        "latin1_number": d / "latin1_number.vnnlib", "latin1_token": d / "latin1_token.vnnlib",
        "deep": d / "deep.vnnlib", "unclosed": d / "unclosed.vnnlib", "empty_vnnlib": d / "empty.vnnlib",
        "bad_csv": d / "bad.csv", "binary_csv": d / "binary.csv", "nul_csv": d / "nul.csv",
        "a_file": d / "a_file.txt",
    }
    paths["empty_onnx"].write_bytes(b"")
    paths["garbage_onnx"].write_bytes(b"\x08\x07garbage\xff\xfe" * 20)
    paths["truncated_onnx"].write_bytes(DEMO_NET.read_bytes()[:300])
    paths["folder_onnx"].mkdir()
    paths["bad_nnet"].write_text("// header\n3,5,5,12\nnot numbers here\n")
    paths["h5"].write_bytes(b"\x00")
    paths["x_mismatch"].write_text(_prop_text(4, 5))
    paths["y_mismatch"].write_text(_prop_text(5, 3))
    paths["latin1_number"].write_bytes(body + b"(assert (<= X_0 0.\xe95))\n")
    paths["latin1_token"].write_bytes(body.replace(b"X_0", b"X_\xe90", 1))
    # 100000 nested lists that never close: a parser that recursed would crash, ours says where it ends
    paths["deep"].write_text(_prop_text(5, 5) + "(assert " + "(and " * 100000 + "(<= Y_0 Y_1)\n")
    paths["unclosed"].write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1.0)\n")
    paths["empty_vnnlib"].write_text("")
    paths["bad_csv"].write_text("net.onnx,good.vnnlib\n")
    paths["binary_csv"].write_bytes(b"net.onnx,good.vnnlib,\xff\xfe60\n")
    paths["nul_csv"].write_bytes(b"net.onnx,good.vnnlib,6\x000\n")
    paths["a_file"].write_text("I am a file\n")
    run = tmp_path / "run"
    run.mkdir()
    return paths


def _snapshot(*roots: Path) -> dict:
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[str(path)] = "dir"
    return state


# ----------------------------------------------------------------------------- the cases
# Each case is a list of arguments; "{name}" is replaced by the fixture path.
CASES = {
    # repair: numeric options
    "repair-timeout-zero": ["repair", "{net}", "--property", "{prop}", "--timeout", "0"],
    "repair-timeout-negative": ["repair", "{net}", "--property", "{prop}", "--timeout", "-5"],
    "repair-timeout-nan": ["repair", "{net}", "--property", "{prop}", "--timeout", "nan"],
    "repair-timeout-inf": ["repair", "{net}", "--property", "{prop}", "--timeout", "inf"],
    "repair-timeout-text": ["repair", "{net}", "--property", "{prop}", "--timeout", "soon"],
    "repair-verify-timeout-zero": ["repair", "{net}", "--property", "{prop}", "--verify-timeout", "0"],
    "repair-verify-timeout-nan": ["repair", "{net}", "--property", "{prop}", "--verify-timeout", "nan"],
    "repair-cross-check-timeout-negative": ["repair", "{net}", "--property", "{prop}",
                                            "--cross-check-timeout", "-1"],
    "repair-layer-abc": ["repair", "{net}", "--property", "{prop}", "--layer", "abc"],
    "repair-layer-negative": ["repair", "{net}", "--property", "{prop}", "--layer", "-1"],
    "repair-layer-out-of-range": ["repair", "{net}", "--property", "{prop}", "--layer", "99"],
    "repair-max-rounds-zero": ["repair", "{net}", "--property", "{prop}", "--max-rounds", "0"],
    "repair-guilty-neurons-zero": ["repair", "{net}", "--property", "{prop}", "--guilty-neurons", "0"],
    "repair-workers-zero": ["repair", "{net}", "--property", "{prop}", "--workers", "0"],
    "repair-seed-negative": ["repair", "{net}", "--property", "{prop}", "--seed", "-1"],
    "repair-seed-huge": ["repair", "{net}", "--property", "{prop}", "--seed", str(2**70)],
    "repair-norm-unknown": ["repair", "{net}", "--property", "{prop}", "--norm", "l7"],
    "repair-solver-unknown": ["repair", "{net}", "--property", "{prop}", "--solver", "cplex9"],
    "repair-cross-check-unknown": ["repair", "{net}", "--property", "{prop}", "--cross-check", "z3"],
    # repair: inputs and outputs
    "repair-no-property": ["repair", "{net}"],
    "repair-missing-property": ["repair", "{net}", "--property", "{run}/missing.vnnlib"],
    "repair-property-is-folder": ["repair", "{net}", "--property", "{folder_onnx}"],
    "repair-x-mismatch": ["repair", "{net}", "--property", "{x_mismatch}"],
    "repair-y-mismatch": ["repair", "{net}", "--property", "{y_mismatch}"],
    "repair-acasxu-not-acasxu-name": ["repair", "{net}", "--acasxu"],
    "repair-out-not-onnx": ["repair", "{net}", "--property", "{prop}", "--out", "{run}/out.txt"],
    "repair-out-is-input": ["repair", "{net}", "--property", "{prop}", "--out", "{net}"],
    "repair-out-under-a-file": ["repair", "{net}", "--property", "{prop}", "--out", "{a_file}/x.onnx"],
    "repair-out-read-only": ["repair", "{net}", "--property", "{prop}", "--out", "/proc/verirepair.onnx"],
    "repair-out-is-folder": ["repair", "{net}", "--property", "{prop}", "--out", "{folder_onnx}"],
    "repair-report-is-file": ["repair", "{net}", "--property", "{prop}", "--out", "{run}/o.onnx",
                              "--report", "{a_file}"],
    "repair-report-read-only": ["repair", "{net}", "--property", "{prop}", "--out", "{run}/o.onnx",
                                "--report", "/proc/verirepair_report"],
    "repair-network-missing": ["repair", "{run}/nope.onnx", "--property", "{prop}"],
    "repair-network-invalid": ["repair", "{flatten_w}", "--property", "{prop}"],
    # verify
    "verify-timeout-zero": ["verify", "{net}", "{prop}", "--timeout", "0"],
    "verify-timeout-negative": ["verify", "{net}", "{prop}", "--timeout", "-1"],
    "verify-timeout-nan": ["verify", "{net}", "{prop}", "--timeout", "nan"],
    "verify-workers-zero": ["verify", "{net}", "{prop}", "--workers", "0"],
    "verify-seed-text": ["verify", "{net}", "{prop}", "--seed", "abc"],
    "verify-engine-unknown": ["verify", "{net}", "{prop}", "--engine", "nnenum"],
    "verify-x-mismatch": ["verify", "{net}", "{x_mismatch}"],
    "verify-y-mismatch": ["verify", "{net}", "{y_mismatch}"],
    "verify-out-under-a-file": ["verify", "{net}", "{prop}", "--out", "{a_file}/result.txt"],
    "verify-out-is-folder": ["verify", "{net}", "{prop}", "--out", "{folder_onnx}"],
    "verify-out-read-only": ["verify", "{net}", "{prop}", "--out", "/proc/verirepair_result.txt"],
    "verify-network-is-folder": ["verify", "{folder_onnx}", "{prop}"],
    "verify-empty-onnx": ["verify", "{empty_onnx}", "{prop}"],
    "verify-garbage-onnx": ["verify", "{garbage_onnx}", "{prop}"],
    "verify-truncated-onnx": ["verify", "{truncated_onnx}", "{prop}"],
    "verify-flatten-with-weight": ["verify", "{flatten_w}", "{prop}"],
    "verify-relu-with-bias": ["verify", "{relu_b}", "{prop}"],
    "verify-nan-weight": ["verify", "{nan_w}", "{prop}"],
    "verify-initializer-dims": ["verify", "{bad_dims}", "{prop}"],
    "verify-initializer-dtype-99": ["verify", "{bad_dtype}", "{prop}"],
    "verify-unsupported-op": ["verify", "{unknown_op}", "{prop}"],
    "verify-latin1-number": ["verify", "{net}", "{latin1_number}"],
    "verify-latin1-token": ["verify", "{net}", "{latin1_token}"],
    "verify-deep-nesting": ["verify", "{net}", "{deep}"],
    "verify-unclosed-paren": ["verify", "{net}", "{unclosed}"],
    "verify-empty-vnnlib": ["verify", "{net}", "{empty_vnnlib}"],
    "verify-property-missing": ["verify", "{net}", "{run}/missing.vnnlib"],
    # info / spec
    "info-empty-onnx": ["info", "{empty_onnx}"],
    "info-bad-nnet": ["info", "{bad_nnet}"],
    "info-unknown-suffix": ["info", "{h5}"],
    "info-folder": ["info", "{folder_onnx}"],
    "spec-latin1": ["spec", "{latin1_number}"],
    "spec-folder": ["spec", "{folder_onnx}"],
    "spec-missing": ["spec", "{run}/missing.vnnlib"],
    # bench
    "bench-jobs-zero": ["bench", "{bad_csv}", "--jobs", "0"],
    "bench-limit-negative": ["bench", "{bad_csv}", "--limit", "-1"],
    "bench-limit-zero": ["bench", "{bad_csv}", "--limit", "0"],
    "bench-timeout-scale-zero": ["bench", "{bad_csv}", "--timeout-scale", "0"],
    "bench-timeout-scale-nan": ["bench", "{bad_csv}", "--timeout-scale", "nan"],
    "bench-malformed-csv": ["bench", "{bad_csv}"],
    "bench-non-utf8-csv": ["bench", "{binary_csv}"],
    "bench-nul-csv": ["bench", "{nul_csv}"],
    "bench-compare-one-engine": ["bench", "{bad_csv}", "--compare", "own"],
    "bench-compare-unknown-engine": ["bench", "{bad_csv}", "--compare", "own,eran"],
    "bench-missing-csv": ["bench", "{run}/missing.csv"],
    # localize
    "localize-plot-txt": ["localize", "{net}", "{prop}", "--plot", "{run}/out.txt"],
    "localize-plot-read-only": ["localize", "{net}", "{prop}", "--plot", "/proc/verirepair.png"],
    "localize-top-negative": ["localize", "{net}", "{prop}", "--top", "-1"],
    "localize-top-zero": ["localize", "{net}", "{prop}", "--top", "0"],
    "localize-timeout-nan": ["localize", "{net}", "{prop}", "--timeout", "nan"],
    "localize-cex-missing": ["localize", "{net}", "{prop}", "--cex", "{run}/cex.npy"],
    "localize-method-unknown": ["localize", "{net}", "{prop}", "--method", "shapley"],
    "localize-x-mismatch": ["localize", "{net}", "{x_mismatch}"],
    # demo, command groups
    "demo-timeout-zero": ["demo", "--timeout", "0"],
    "demo-out-dir-is-file": ["demo", "--out-dir", "{a_file}"],
    "properties-no-action": ["properties"],
    "no-command": [],
    "unknown-command": ["frobnicate"],
}


def _expand(argv: list[str], files: dict, run: Path) -> list[str]:
    names = {**{k: str(v) for k, v in files.items()}, "run": str(run)}
    return [arg.format(**names) for arg in argv]


def test_the_suite_has_at_least_sixty_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(name, files, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.chdir(run)
    before = _snapshot(tmp_path)
    demo_before = _snapshot(DEMO_NET.parent)
    argv = _expand(CASES[name], files, run)
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, (argv, captured.err)
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in captured.err and "np.float64" not in captured.err
    assert _snapshot(tmp_path) == before
    assert _snapshot(DEMO_NET.parent) == demo_before


def test_messages_name_what_is_wrong(files, tmp_path, capsys, monkeypatch):
    """A few messages, checked for content: the rule, the option, both counts, the file."""
    run = tmp_path / "run"
    monkeypatch.chdir(run)
    expectations = {
        "repair-timeout-nan": "--timeout",
        "repair-layer-abc": "--layer",
        "verify-x-mismatch": "4 inputs",
        "repair-acasxu-not-acasxu-name": "ACAS Xu",
        "localize-plot-txt": ".png",
        "verify-network-is-folder": "folder",
        "repair-report-is-file": "--report",
        "verify-latin1-number": "latin1_number.vnnlib",
        "verify-unsupported-op": "Softsign",
        "no-command": "repair",
        "properties-no-action": "export",
    }
    for name, needle in expectations.items():
        try:
            main(_expand(CASES[name], files, run))
        except SystemExit:
            pass
        err = capsys.readouterr().err
        assert needle in err, (name, err)


@pytest.mark.parametrize("columns", [None, "40"])
def test_errors_fit_one_physical_line_in_a_pipe(files, tmp_path, columns):
    """The console script in a subprocess: stderr is a pipe, COLUMNS unset or 40."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    argvs = [
        ["bench", str(files["bad_csv"])],
        ["verify", str(files["net"]), str(files["x_mismatch"])],
        ["repair", str(files["net"]), "--property", str(files["prop"]), "--timeout", "nan"],
    ]
    for argv in argvs:
        proc = subprocess.run([sys.executable, "-m", "verirepair.cli", *argv], env=env, cwd=tmp_path / "run",
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and len(lines[0]) > 40, proc.stderr
        assert "\x1b[" not in proc.stderr          # no colour codes in a pipe
