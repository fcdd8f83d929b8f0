"""--strategy on the command line and in run files; the strategy and PAC statements in the report."""

from __future__ import annotations

import json

import pytest

from pipeline_helpers import run_config
from verirepair.cli import EXIT_BAD_INPUT, main
from verirepair.cli.parser import build_parser
from verirepair.cli.repair_commands import run_config_from_args
from verirepair.demo import demo_paths, demo_task
from verirepair.network import load_network
from verirepair.pipeline import PipelineStatus, run_pipeline
from verirepair.run_config import ConfigError, config_to_toml, load_run_config
from verirepair.verify.result import Verdict, VerificationResult

NET_PATH, PROP_PATHS = demo_paths()


def test_bad_strategy_is_one_line_naming_the_strategies(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["repair", str(NET_PATH), "--property", str(PROP_PATHS[0]), "--strategy", "pso"])
    assert info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--strategy" in err and all(name in err for name in ("lp", "imitation", "finetune"))
    assert not list(tmp_path.iterdir())


def test_strategy_flag_and_default_reach_the_run_config():
    parser = build_parser()
    args = parser.parse_args(["repair", str(NET_PATH), "--strategy", "finetune"])
    assert run_config_from_args(args).strategy.name == "finetune"
    assert run_config_from_args(parser.parse_args(["repair", str(NET_PATH)])).strategy.name == "cover"


def test_run_file_strategy_table_round_trips_and_rejects_bad_names(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[strategy]\nname = "imitation"\nepochs = 50\n')
    config = load_run_config(path)
    assert config.strategy.name == "imitation" and config.strategy.epochs == 50
    again = tmp_path / "again.toml"
    again.write_text(config_to_toml(config))
    assert load_run_config(again) == config
    path.write_text('[strategy]\n\nname = "retrain"\n')
    with pytest.raises(ConfigError, match=r"run.toml:3: strategy.name: .*lp, cover, imitation, finetune"):
        load_run_config(path)
    path.write_text("[delivery]\npac_delta = 1.5\n")
    with pytest.raises(ConfigError, match="pac_delta must lie in"):
        load_run_config(path)


def test_undecided_properties_get_pac_statements_kept_apart_from_the_verdicts(tmp_path, monkeypatch):
    """Every verification times out: no repair, status PARTIAL, and each property gets sampling
    evidence in report.json's own "pac" field; the verdicts stay TIMEOUT and nothing is certified."""
    import verirepair.certify_loop as certify_loop

    def all_time_out(net, named, base, deadline, engine="own", emit=None):
        return {name: VerificationResult(Verdict.TIMEOUT, engine="own", message="forced") for name, _ in named}

    monkeypatch.setattr(certify_loop, "verify_all", all_time_out)
    network = load_network(NET_PATH)
    config = run_config(timeout_s=60, cross_check=None, pac_epsilon=0.01, pac_delta=0.05)
    result = run_pipeline(network, demo_task(network), config, tmp_path / "f.onnx", tmp_path / "r")
    assert result.status is PipelineStatus.PARTIAL
    assert set(result.pac) == {"demo_prop_1", "demo_prop_2"}
    # demo_prop_1 is violated on the original (a planted fault of positive measure): sampling sees it.
    assert result.pac["demo_prop_1"].n_violations >= 1 and result.pac["demo_prop_1"].epsilon is None
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["certified"] is False and report["strategy"] == "cover"
    assert all(entry["before"]["verdict"] == "timeout" for entry in report["properties"].values())
    held = report["pac"]["demo_prop_2"]
    assert held["proof"] is False and held["n_violations"] == 0 and held["n_samples"] == 300
    assert held["epsilon"] == pytest.approx(0.0099858, rel=1e-4)
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Statistical statements (NOT proofs)" in text and "NOT a proof" in text
    certificate = json.loads((tmp_path / "r" / "certificate.json").read_text())
    assert certificate["certified"] is False
