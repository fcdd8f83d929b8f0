"""``verirepair fairness train | measure | repair`` end to end on a small synthetic German Credit file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from verirepair.cli import main
from verirepair.cli.common import EXIT_BAD_INPUT, EXIT_OK
from verirepair.network.onnx_io import load_onnx

#: Valid codes of each categorical German column (UCI codebook), numeric columns as (low, high).
_COLUMNS: list[tuple[str, ...] | tuple[int, int]] = [
    ("A11", "A12", "A13", "A14"), (6, 48), ("A30", "A32", "A34"), ("A40", "A43", "A46"), (500, 9000),
    ("A61", "A65"), ("A71", "A73", "A75"), (1, 4), ("A91", "A92", "A93", "A94", "A95"), ("A101", "A103"),
    (1, 4), ("A121", "A124"), (19, 75), ("A141", "A143"), ("A151", "A152"), (1, 3), ("A172", "A173"), (1, 2),
    ("A191", "A192"), ("A201", "A202")]


def _synthetic_german(folder: Path, n: int = 160, seed: int = 0) -> None:
    """A german.data whose class depends on duration, amount and (planted) on age and sex."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        fields = [str(rng.choice(c)) if isinstance(c[0], str) else str(int(rng.integers(c[0], c[1] + 1)))
                  for c in _COLUMNS]
        score = -int(fields[1]) / 48 - int(fields[4]) / 9000 + (int(fields[12]) > 35) * 0.6 \
            + (fields[8] in ("A91", "A93", "A94")) * 0.4 + rng.normal(0, 0.1)
        fields.append("1" if score > -0.3 else "2")
        lines.append(" ".join(fields))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "german.data").write_text("\n".join(lines) + "\n")


@pytest.fixture
def german_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fairness"
    _synthetic_german(folder)
    monkeypatch.setenv("VERIREPAIR_FAIRNESS_DIR", str(folder))
    return folder


def test_train_measure_repair_end_to_end(german_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net = tmp_path / "german.onnx"
    assert main(["fairness", "train", "--data", "german", "--seed", "1", "--out", str(net), "--hidden", "8,4",
                 "--epochs", "40", "--lr", "0.01", "--json"]) == EXIT_OK
    trained = json.loads(capsys.readouterr().out)
    assert trained["train_accuracy"] >= 0.7 and trained["hidden"] == [8, 4]

    assert main(["fairness", "measure", str(net), "--data", "german", "--protected", "age,sex", "--n-domain", "500",
                 "--prove", "3", "--json"]) == EXIT_OK
    measured = json.loads(capsys.readouterr().out)
    assert set(measured["discrimination"]) == {"age", "sex"}
    assert measured["discrimination"]["age"]["domain"]["n"] == 500
    assert set(measured["proven"]) == {"age", "sex"}

    out, report_dir = tmp_path / "fair.onnx", tmp_path / "report"
    code = main(["fairness", "repair", str(net), "--data", "german", "--protected", "age,sex", "--out", str(out),
                 "--report", str(report_dir), "--max-rounds", "1", "--per-round", "4", "--layer", "2", "--keep", "40",
                 "--n-domain", "500", "--prove", "3", "--time-limit", "30"])
    assert code in (EXIT_OK, 4)
    report = json.loads((report_dir / "report.json").read_text())
    for key in ("accuracy_before", "accuracy_after", "proven_before", "proven_after", "discrimination_before",
                "discrimination_after", "feature_layout"):
        assert key in report
    assert set(report["discrimination_after"]) == {"age", "sex"}
    layout = report["feature_layout"]
    assert [e["index"] for e in layout] == list(range(len(layout)))
    age = next(e for e in layout if e["column"] == "age")
    assert age["kind"] == "numeric" and age["scale"] > 0
    assert {e["value"] for e in layout if e["column"] == "sex"} == {"female", "male"}
    assert (report_dir / "report.md").read_text().startswith("# Fairness repair")
    assert (report_dir / "rates.png").read_bytes()[:4] == b"\x89PNG"
    # the delivered ONNX computes what was measured (onnxruntime, float32)
    repaired = load_onnx(out)
    x = np.random.default_rng(0).random((20, repaired.n_inputs))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    np.testing.assert_allclose(got, repaired.forward(x), atol=1e-4)
    if code == EXIT_OK:
        assert report["status"] == "repaired" and report["change"]["n_changed"] > 0


def test_missing_data_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("VERIREPAIR_FAIRNESS_DIR", str(tmp_path / "absent"))
    assert main(["fairness", "train", "--data", "german", "--out", str(tmp_path / "n.onnx")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "german data not found" in err and "VERIREPAIR_FAIRNESS_DIR" in err
    assert not (tmp_path / "n.onnx").exists()


def test_bad_attribute_and_wrong_network(german_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net = tmp_path / "g.onnx"
    assert main(["fairness", "train", "--data", "german", "--out", str(net), "--hidden", "4", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["fairness", "measure", str(net), "--data", "german", "--protected", "race"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--protected race: not a column of german" in err and "age, sex" in err
    demo = Path(__file__).resolve().parents[3] / "verirepair" / "data" / "demo.onnx"
    assert main(["fairness", "measure", str(demo), "--data", "german", "--protected", "sex"]) == EXIT_BAD_INPUT
    assert "needs" in capsys.readouterr().err
    assert main(["fairness", "repair", str(net), "--data", "german", "--protected", "sex", "--out", str(net),
                 "--report", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    assert "refusing to overwrite" in capsys.readouterr().err


def test_fairness_without_action_names_the_actions(capsys: pytest.CaptureFixture) -> None:
    assert main(["fairness"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train" in err and "measure" in err and "repair" in err
