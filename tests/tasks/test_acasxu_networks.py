"""ACAS Xu registry: names, key forms, Katz applicability, data location and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.errors import DataMissingError
from verirepair.tasks.acasxu import networks as acasxu_nets


def katz_applies(number: int, x: int, y: int) -> bool:
    """Katz et al. (2017), written out independently of properties/*.toml."""
    rules = {
        1: True, 2: x >= 2, 3: (x, y) not in {(1, 7), (1, 8), (1, 9)},
        4: (x, y) not in {(1, 7), (1, 8), (1, 9)}, 5: (x, y) == (1, 1), 6: (x, y) == (1, 1),
        7: (x, y) == (1, 9), 8: (x, y) == (2, 9), 9: (x, y) == (3, 3), 10: (x, y) == (4, 5),
    }
    return rules[number]


def test_forty_five_names_in_order() -> None:
    names = acasxu_nets.NETWORK_NAMES
    assert len(names) == len(set(names)) == 45
    assert names[0] == "ACASXU_run2a_1_1_batch_2000"
    assert names[9] == "ACASXU_run2a_2_1_batch_2000"
    assert names[-1] == "ACASXU_run2a_5_9_batch_2000"


@pytest.mark.parametrize("key", ["N2,9", "2_9", (2, 9), "ACASXU_run2a_2_9_batch_2000",
                                 "ACASXU_run2a_2_9_batch_2000.onnx", "n2_9", "2,9"])
def test_key_forms(key) -> None:
    info = acasxu_nets.network_info(key)
    assert info.name == "ACASXU_run2a_2_9_batch_2000"
    assert (info.x, info.y, info.label) == (2, 9, "N2,9")
    assert info.previous_advisory == "WL"
    assert info.tau_s == 100
    assert info.applicable_properties == (1, 2, 3, 4, 8)


@pytest.mark.parametrize("key", ["N6,1", "N1,0", "1-1", "ACASXU_run2a_1_10_batch_2000",
                                 (0, 1), (1, 2, 3), "N,", "banana"])
def test_bad_keys(key) -> None:
    with pytest.raises(ValueError, match="network|ACAS Xu"):
        acasxu_nets.network_info(key)


def test_advisory_and_tau_tables() -> None:
    infos = acasxu_nets.all_networks()
    assert [i.previous_advisory for i in infos[::9]] == ["COC", "WL", "WR", "SL", "SR"]
    assert [i.tau_s for i in infos[:9]] == [0, 1, 5, 10, 20, 40, 60, 80, 100]


def test_applicability_read_from_toml_matches_katz() -> None:
    for info in acasxu_nets.all_networks():
        expected = tuple(n for n in range(1, 11) if katz_applies(n, info.x, info.y))
        assert info.applicable_properties == expected, info.label
    assert acasxu_nets.applicable_properties("N1,1") == (1, 3, 4, 5, 6)
    assert acasxu_nets.applicable_properties("N1,9") == (1, 7)
    assert len(acasxu_nets.networks_for_property(2)) == 36
    assert len(acasxu_nets.networks_for_property(3)) == 42
    assert acasxu_nets.networks_for_property(9) == ("ACASXU_run2a_3_3_batch_2000",)


def test_data_dir_default_and_env_override(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(acasxu_nets.ENV_VAR, raising=False)
    repo_root = Path(acasxu_nets.__file__).resolve().parents[3]
    assert acasxu_nets.acasxu_dir() == repo_root.parent / "shared" / "acasxu"
    monkeypatch.setenv(acasxu_nets.ENV_VAR, str(tmp_path))
    assert acasxu_nets.acasxu_dir() == tmp_path


def test_missing_data_says_what_where_and_how_to_fix(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(acasxu_nets.ENV_VAR, str(tmp_path))
    expected = tmp_path / "onnx" / "ACASXU_run2a_3_3_batch_2000.onnx"
    with pytest.raises(DataMissingError) as info:
        acasxu_nets.onnx_path("N3,3")
    message = str(info.value)
    assert str(expected) in message
    assert "onnx/*.onnx" in message and "nnet/*.nnet" in message
    assert acasxu_nets.ENV_VAR in message
    with pytest.raises(DataMissingError, match="nnet"):
        acasxu_nets.nnet_path((3, 3))
    with pytest.raises(DataMissingError, match="prop_7.vnnlib"):
        acasxu_nets.vnnlib_path(7)
    with pytest.raises(DataMissingError, match="instances.csv"):
        acasxu_nets.instances_csv()
    with pytest.raises(DataMissingError):
        acasxu_nets.require_data()
    with pytest.raises(pytest.skip.Exception, match="ACASXU_run2a_1_1"):
        acasxu_nets.data_or_skip()
    with pytest.raises(ValueError, match="1..10"):
        acasxu_nets.vnnlib_path(11)
    with pytest.raises(ValueError, match="unknown network format"):
        acasxu_nets.model_path("N1,1", "h5")


@pytest.mark.acasxu
def test_real_data_paths_and_instances() -> None:
    root = acasxu_nets.data_or_skip()
    assert acasxu_nets.onnx_path("N4,5") == root / "onnx" / "ACASXU_run2a_4_5_batch_2000.onnx"
    assert acasxu_nets.nnet_path("4_5").is_file()
    instances = acasxu_nets.read_instances()
    assert len(instances) == 186
    assert {i.timeout_s for i in instances} == {116.0}
    for number in range(1, 5):
        assert sorted(i.network for i in instances if i.property_number == number) == \
            sorted(acasxu_nets.NETWORK_NAMES)
    # VNN-COMP runs phi5..phi10 on exactly Katz's single network each.
    for number in range(5, 11):
        assert tuple(i.network for i in instances if i.property_number == number) == \
            acasxu_nets.networks_for_property(number)


@pytest.mark.acasxu
def test_load_acasxu_onnx_and_nnet_agree() -> None:
    acasxu_nets.data_or_skip()
    onnx_net = acasxu_nets.load_acasxu("N1,1")
    nnet_net = acasxu_nets.load_acasxu("N1,1", fmt="nnet")
    assert len(onnx_net.layers) == len(nnet_net.layers) == 7
    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(20, 5))
    np.testing.assert_allclose(onnx_net.forward(x), nnet_net.forward(x), rtol=0, atol=1e-5)
