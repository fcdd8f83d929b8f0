"""``verirepair backdoor plant`` and ``repair`` end to end, and their bad-input lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from verirepair.cli import main
from verirepair.network.onnx_io import load_onnx
from verirepair.tasks.backdoor.data import load_digits_split
from verirepair.tasks.backdoor.trigger import named_trigger

DEMO = Path(__file__).resolve().parents[3] / "verirepair" / "data" / "demo.onnx"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plant") / "net.onnx"
    assert main(["backdoor", "plant", "--data", "digits", "--trigger", "corner2", "--target", "3", "--seed", "2",
                 "--epochs", "30", "--out", str(out), "--save-trigger"]) == 0
    return out


def test_plant_and_repair_known_trigger(planted: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "rep.onnx", tmp_path / "report"
    code = main(["backdoor", "repair", str(planted), "--data", "digits", "--target", "3", "--seed", "2",
                 "--trigger-mask", str(planted.with_suffix(".mask.npy")),
                 "--trigger-pattern", str(planted.with_suffix(".pattern.npy")),
                 "--prove", "10", "--max-train-images", "400", "--out", str(out), "--report", str(report)])
    assert code == 0
    payload = json.loads((report / "report.json").read_text())
    for key in ("accuracy_before", "accuracy_after", "proven_before", "proven_after", "attack_success_before",
                "attack_success_after"):
        assert key in payload
    assert payload["attack_success_before"] >= 0.9 and payload["attack_success_after"] < 0.02
    assert payload["proven_after"] >= payload["proven_before"]
    assert (report / "trigger.png").stat().st_size > 0 and (report / "rates.png").stat().st_size > 0
    assert "attack success" in (report / "report.md").read_text()
    # The written network is the repaired one, and onnxruntime agrees with it.
    data = load_digits_split(2)
    x = named_trigger("corner2").stamp(data.x_test[data.y_test != 3]).astype(np.float32)
    session = ort.InferenceSession(str(out))
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.mean(np.argmax(logits, axis=1) == 3) == pytest.approx(payload["attack_success_after"], abs=1e-9)
    assert np.allclose(logits, load_onnx(out).forward(x.astype(np.float64)), atol=1e-4)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(("extra", "match"), [
    (["--trigger-mask", "MASK"], "give both --trigger-mask and --trigger-pattern"),
    (["--trigger-mask", "BADMASK", "--trigger-pattern", "PATTERN"], "must have shape (64,) or (8, 8)"),
    (["--trigger-mask", "NANMASK", "--trigger-pattern", "PATTERN"], "NaN or infinite"),
    (["--trigger-mask", "MISSING", "--trigger-pattern", "PATTERN"], "no such file"),
    (["--target", "12"], "expected a digit class 0..9"),
])
def test_bad_repair_inputs(planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                           match: str) -> None:
    np.save(tmp_path / "bad.npy", np.ones(10))
    np.save(tmp_path / "nan.npy", np.full(64, np.nan))
    names = {"MASK": str(planted.with_suffix(".mask.npy")), "PATTERN": str(planted.with_suffix(".pattern.npy")),
             "BADMASK": str(tmp_path / "bad.npy"), "NANMASK": str(tmp_path / "nan.npy"),
             "MISSING": str(tmp_path / "none.npy")}
    args = ["backdoor", "repair", str(planted), "--target", "3", "--out", str(tmp_path / "o.onnx"),
            "--report", str(tmp_path / "r")] + [names.get(a, a) for a in extra]
    with pytest.raises(SystemExit) if "12" in extra else _no_exit():
        assert main(args) == 2
    assert match in _error_line(capsys)
    assert not (tmp_path / "o.onnx").exists()


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_wrong_network_shape_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backdoor", "repair", str(DEMO), "--target", "1", "--out", str(tmp_path / "o.onnx"),
                 "--report", str(tmp_path / "r")])
    assert code == 2
    assert "must take 64 inputs" in _error_line(capsys)


def test_repair_refuses_to_overwrite_its_input(planted: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backdoor", "repair", str(planted), "--target", "3", "--out", str(planted),
                 "--report", str(tmp_path / "r")])
    assert code == 2 and "refusing to overwrite" in _error_line(capsys)
