"""Repair tasks: what each builder puts in a task, and the task registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.demo import demo_paths
from verirepair.network import load_network
from verirepair.network.model import random_network
from verirepair.properties import parse_vnnlib
from verirepair.task import RepairTask, get_task, list_tasks, register_task, violating_mask
from verirepair.tasks.acasxu import acasxu_domain, build_acasxu_task
from verirepair.tasks.acasxu.physical import NORMALIZATION_FILE, default_properties_dir, load_normalization
from verirepair.tasks.vnnlib import build_vnnlib_task

NET, PROPS = demo_paths()


def test_registry_finds_the_builtin_tasks_and_names_them_when_unknown():
    assert {"acasxu", "vnnlib"} <= set(list_tasks())
    assert get_task("vnnlib") is build_vnnlib_task and get_task("acasxu") is build_acasxu_task
    with pytest.raises(ValueError, match="acasxu"):
        get_task("fairness-but-not-yet")


def test_a_task_registered_at_run_time_is_found():
    register_task("toy-test-task", lambda: build_vnnlib_task)
    assert "toy-test-task" in list_tasks() and get_task("toy-test-task") is build_vnnlib_task


def test_vnnlib_task_reads_each_file_once_with_argmax_by_default():
    network = load_network(NET)
    task = build_vnnlib_task(NET, network, [PROPS[0], PROPS[1], PROPS[0]], None)
    assert [name for name, _ in task.properties] == [PROPS[0].stem, PROPS[1].stem]
    assert task.decision == "argmax" and task.name == "vnnlib"
    boxes = [b for p in task.all_properties for b in p.input_boxes]
    assert np.allclose(task.domain.lower, np.min([b.lower for b in boxes], axis=0))
    assert np.allclose(task.domain.upper, np.max([b.upper for b in boxes], axis=0))
    assert build_vnnlib_task(NET, network, PROPS, "argmin").decision == "argmin"


def test_preservation_points_avoid_violations_and_fidelity_points_stay_in_the_domain():
    network = load_network(NET)
    task = build_vnnlib_task(NET, network, PROPS, "argmin")
    rng = np.random.default_rng(0)
    x = task.preservation_points(network, rng, 3000)
    assert 0 < x.shape[0] < 3000            # the demo's planted violation is dropped
    assert not violating_mask(task.all_properties, x, network.forward(x)).any()
    f = task.fidelity_points(rng, 500)
    assert f.shape == (500, 5) and task.domain.contains(f).all()


def test_acasxu_task_has_every_applicable_property_argmin_and_the_normalised_domain(tmp_path):
    network = random_network([5, 8, 5], seed=0)
    task = build_acasxu_task(tmp_path / "ACASXU_run2a_2_1_batch_2000.onnx", network, [], None)
    assert [name for name, _ in task.properties] == ["phi1", "phi2", "phi3", "phi4"]
    assert task.decision == "argmin" and task.name == "acasxu"
    norm = load_normalization(default_properties_dir() / NORMALIZATION_FILE)
    assert np.allclose(task.domain.lower, norm.normalize_inputs(norm.input_min))
    assert np.allclose(task.domain.upper, norm.normalize_inputs(norm.input_max))
    assert acasxu_domain(network) == task.domain
    n19 = build_acasxu_task(Path("N1_9.onnx"), network, [PROPS[0]], None)
    assert [name for name, _ in n19.properties] == ["phi1", "phi7", PROPS[0].stem]


def test_acasxu_properties_are_the_shipped_vnnlib_files():
    from verirepair.tasks.acasxu.physical import default_vnnlib_dir

    task = build_acasxu_task(Path("N2_9.onnx"), random_network([5, 4, 5], seed=1), [], None)
    named = dict(task.properties)
    assert named["phi8"] == parse_vnnlib(default_vnnlib_dir() / "prop_8.vnnlib")


def test_acasxu_task_refuses_a_network_that_is_not_acasxu():
    with pytest.raises(ValueError, match="not named like an ACAS Xu network"):
        build_acasxu_task(NET, load_network(NET), [], None)


def test_a_task_checks_its_rule_and_properties():
    network = load_network(NET)
    task = build_vnnlib_task(NET, network, PROPS, None)
    with pytest.raises(ValueError, match="argmin"):
        RepairTask("x", task.properties, "median", task.domain)
    with pytest.raises(ValueError, match="at least one property"):
        RepairTask("x", [], "argmax", task.domain)
