"""The composed run configuration: defaults in one place, TOML files checked key by key."""

from __future__ import annotations

import dataclasses

import pytest

from verirepair.cli import EXIT_BAD_INPUT, main
from verirepair.demo import demo_paths
from verirepair.localize.config import LocalizeMethod
from verirepair.run_config import (
    ConfigError,
    DeliveryConfig,
    LoopConfig,
    RunConfig,
    config_to_toml,
    default_of,
    load_run_config,
)

NET, PROPS = demo_paths()


def test_a_written_configuration_reads_back_equal(tmp_path):
    config = RunConfig(timeout_s=77.0, seed=5, loop=LoopConfig(max_rounds=3, layer=1, guilty_neurons=2),
                       delivery=DeliveryConfig(cross_check=None, n_care=10))
    config = dataclasses.replace(config, localize=dataclasses.replace(config.localize, method="gradient"),
                                 repair=dataclasses.replace(config.repair, solver="highs", max_delta=2.5))
    path = tmp_path / "run.toml"
    path.write_text(config_to_toml(config))
    again = load_run_config(path)
    assert again == config
    assert again.localize.method is LocalizeMethod.GRADIENT and again.delivery.cross_check is None


def test_a_partial_file_keeps_every_other_default(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("seed = 9\n[loop]\nmax_rounds = 2\n")
    config = load_run_config(path)
    assert config.seed == 9 and config.loop.max_rounds == 2
    assert config.loop.margin_growth == default_of(LoopConfig, "margin_growth")
    assert config.verify == RunConfig().verify


@pytest.mark.parametrize("text, needle", [
    ("[loop]\nmax_round = 3\n", "run.toml:2: loop.max_round: unknown key in table [loop]"),
    ("verbose = true\n", "run.toml:1: verbose: unknown key at the top level"),
    ("[looop]\nmax_rounds = 3\n", "looop: unknown key at the top level"),
    ("[loop]\nmax_rounds = \"3\"\n", "run.toml:2: loop.max_rounds: expected int, got str"),
    ("[verify]\nuse_lp = 1\n", "verify.use_lp: expected bool"),
    ("[loop]\nmax_rounds = 0\n", "run.toml:2: loop.max_rounds: LoopConfig.max_rounds must be an integer >= 1"),
    ("[verify]\n\ntimeout_s = -1\n", "run.toml:3: verify.timeout_s: timeout_s must be finite and positive"),
    ("timeout_s = nan\n", "timeout_s"),
    ("[repair]\nnorm = \"l2\"\n", "norm"),
    ("[delivery]\ncross_check = \"z3\"\n", "cross_check"),
    ("[verify]\nseed = 4\n", "verify.seed: unknown key in table [verify]"),
    ("[loop\n", "not valid TOML"),
    ("loop = 3\n", "expected a table [loop]"),
])
def test_bad_files_name_file_line_and_key(tmp_path, text, needle):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    message = str(info.value)
    assert needle in message and "\n" not in message


@pytest.mark.parametrize("text", ["[loop]\nmax_round = 3\n", "[loop]\nmax_rounds = \"x\"\n",
                                  "[loop]\nmargin_growth = 0.5\n"])
def test_cli_config_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.toml"
    path.write_text(text)
    assert main(["repair", str(NET), "--property", str(PROPS[0]), "--config", str(path),
                 "--out", str(tmp_path / "o.onnx")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "run.toml" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


def test_cli_flags_override_the_file(tmp_path):
    import argparse

    from verirepair.cli import run_config_from_args

    path = tmp_path / "run.toml"
    path.write_text("[loop]\nmax_rounds = 2\n[repair]\nsolver = \"highs\"\n")
    args = argparse.Namespace(config=str(path), timeout=None, seed=None, verify_timeout=12.0, workers=None,
                              norm=None, solver=None, max_rounds=5, layer=None, guilty_neurons=None,
                              cross_check="none", cross_check_timeout=None)
    config = run_config_from_args(args)
    assert config.loop.max_rounds == 5 and config.repair.solver == "highs"
    assert config.verify.timeout_s == 12.0 and config.delivery.cross_check is None


def test_repair_certificates_are_opt_in_from_the_flag_and_the_file(tmp_path):
    from verirepair.cli.parser import build_parser
    from verirepair.cli.repair_commands import run_config_from_args

    parser = build_parser()
    assert run_config_from_args(parser.parse_args(["repair", "n.onnx"])).delivery.certificates is False
    assert run_config_from_args(parser.parse_args(["repair", "n.onnx", "--certificates"])).delivery.certificates
    path = tmp_path / "run.toml"
    path.write_text("[delivery]\ncertificates = true\n")
    assert load_run_config(path).delivery.certificates is True
    path.write_text("[delivery]\ncertificates = 1\n")
    with pytest.raises(ConfigError, match="certificates"):
        load_run_config(path)
