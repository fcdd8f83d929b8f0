"""The stage commands of the CLI on the shipped demo network: verify, bench, localize, repair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from verirepair.cli import EXIT_BAD_INPUT, EXIT_OK, main
from verirepair.demo import demo_paths
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib

NET, (PROP1, PROP2) = demo_paths()


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_verify_json_violated_carries_a_true_counterexample(capsys):
    assert main(["verify", str(NET), str(PROP1), "--json"]) == EXIT_OK
    payload = _json(capsys)
    assert payload["verdict"] == "violated"
    x = np.array(payload["counterexample"]["x"])
    y = load_network(NET).forward(x)
    assert np.allclose(y, payload["counterexample"]["y"])
    assert parse_vnnlib(PROP1)[0].is_violated_by(y[None, :])[0]


def test_verify_writes_vnncomp_result_file(tmp_path, capsys):
    out = tmp_path / "res.txt"
    assert main(["verify", str(NET), str(PROP2), "--out", str(out)]) == EXIT_OK
    assert out.read_text().splitlines()[0] == "unsat"
    assert "HOLDS" in capsys.readouterr().out


def test_bench_runs_a_csv_and_writes_rows(tmp_path, capsys):
    csv_path = tmp_path / "instances.csv"
    csv_path.write_text(f"{NET},{PROP1},30\n{NET},{PROP2},30\n")
    out = tmp_path / "rows.csv"
    assert main(["bench", str(csv_path), "--out", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "Benchmark summary" in text
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and "violated" in rows[1] and "holds" in rows[2]


def test_bench_malformed_csv_is_bad_input(tmp_path, capsys):
    csv_path = tmp_path / "instances.csv"
    csv_path.write_text("only-one-field\n")
    assert main(["bench", str(csv_path)]) == EXIT_BAD_INPUT
    assert "line 1" in capsys.readouterr().err


def test_localize_json_ranks_hidden_neurons(tmp_path, capsys):
    plot = tmp_path / "loc.png"
    assert main(["localize", str(NET), str(PROP1), "--json", "--top", "5", "--plot", str(plot)]) == EXIT_OK
    payload = _json(capsys)
    assert payload["method"] == "causal" and len(payload["ranking"]) == 5
    assert all(entry["layer_index"] in (0, 1) for entry in payload["ranking"])
    assert payload["suggested_layer"] in (0, 1)
    assert plot.stat().st_size > 1000


def test_localize_on_a_holding_property_says_so(capsys):
    assert main(["localize", str(NET), str(PROP2)]) == EXIT_OK
    assert "holds" in capsys.readouterr().out


def test_repair_end_to_end_writes_network_and_report(tmp_path, capsys):
    out = tmp_path / "fixed.onnx"
    report = tmp_path / "rep"
    argv = ["repair", str(NET), "--property", str(PROP1), "--property", str(PROP2), "--out", str(out),
            "--report", str(report), "--solver", "highs", "--cross-check", "none", "--timeout", "300",
            "--verify-timeout", "42", "--guilty-neurons", "3"]
    assert main(argv) == EXIT_OK
    assert "REPAIRED" in capsys.readouterr().out
    assert out.is_file() and (report / "report.json").is_file() and (report / "certificate.json").is_file()
    assert json.loads((report / "certificate.json").read_text())["all_properties_hold"] is True
    config = json.loads((report / "report.json").read_text())["config"]
    assert config["verify"]["timeout_s"] == 42.0 and config["loop"]["guilty_neurons"] == 3
    # config.toml records the run as given (the budget too), so --config on it repeats the run
    from verirepair.run_config import config_dict, load_run_config

    again = load_run_config(report / "config.toml")
    assert again.timeout_s == 300.0 and again.repair.solver == "highs" and again.delivery.cross_check is None
    assert config_dict(again) == config


def test_repair_without_properties_is_bad_input(capsys):
    assert main(["repair", str(NET)]) == EXIT_BAD_INPUT
    assert "--property" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["verify", str(NET), str(PROP1), "--engine", "nope"]])
def test_bad_choice_exits_2(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_repair_rejects_a_non_positive_guilty_neuron_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["repair", str(NET), "--property", str(PROP1), "--guilty-neurons", "0"])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err
