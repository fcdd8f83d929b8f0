"""The BIRDNN repair strategies (imitation, finetune) and their registry beside lp.

Each strategy gets the shipped demo network (a planted violation of
demo_prop_1): the strategy must remove it and the certify loop must then
prove every property on the delivered file, which keeps the original graph.
The sample split and the imitation targets are checked on a one-input
network whose answers are computed by hand.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from pipeline_helpers import run_config
from verirepair.demo import demo_paths, demo_task
from verirepair.network import load_network
from verirepair.network.model import AffineLayer, Network
from verirepair.pipeline import PipelineStatus, run_pipeline
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.repair.network_patch import NetworkPatch, apply_change, layer_patches
from verirepair.repair.patch import Patch
from verirepair.repair.strategy import get_strategy, list_strategies
from verirepair.repair.strategy_config import StrategyConfig
from verirepair.repair.training import nearest_targets, split_samples
from verirepair.verify import verify
from verirepair.verify.result import Verdict, VerifyConfig

NET_PATH, PROP_PATHS = demo_paths()


def _run(tmp_path, **strategy):
    network = load_network(NET_PATH)
    # A generous budget: the run ends when it is proven (about 30 s on a quiet machine); a loaded
    # shared machine must not turn the test into a timing test.
    config = run_config(max_rounds=6, timeout_s=900, n_preserve=1000, n_fidelity=1000, n_care=200,
                        cross_check=None, solver="highs", pac_epsilon=None, **strategy)
    result = run_pipeline(network, demo_task(network), config, tmp_path / "fixed.onnx", tmp_path / "report",
                          source_path=NET_PATH)
    return network, result


@pytest.fixture(scope="module")
def imitation_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("imitation"), name="imitation")


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("finetune"), name="finetune", n_neurons=8)


@pytest.mark.parametrize("which", ["imitation_run", "finetune_run"])
def test_strategy_removes_the_planted_violation_and_the_loop_proves_it(which, request):
    original, result = request.getfixturevalue(which)
    assert result.properties["demo_prop_1"].before.verdict is Verdict.VIOLATED
    assert result.status is PipelineStatus.REPAIRED, result.rounds
    delivered = load_network(result.output_path)
    for _, props in demo_task(original).properties:
        assert verify(delivered, props, VerifyConfig(timeout_s=60)).verdict is Verdict.HOLDS
    # Same graph: the same node list, only initializer values differ.
    before, after = onnx.load(str(NET_PATH)), onnx.load(str(result.output_path))
    assert [(n.op_type, list(n.input)) for n in before.graph.node] == \
        [(n.op_type, list(n.input)) for n in after.graph.node]
    assert [layer.weight.shape for layer in delivered.layers] == [layer.weight.shape for layer in original.layers]
    assert result.strategy == which.split("_")[0]


def test_imitation_changes_several_layers_and_reports_them(imitation_run):
    original, result = imitation_run
    assert isinstance(result.patch, NetworkPatch)
    assert len(result.change.layers) >= 2 and result.change.layer_index is None
    delivered = load_network(result.output_path)
    diff = sum(float(np.abs(a.weight - b.weight).sum() + np.abs(a.bias - b.bias).sum())
               for a, b in zip(original.layers, delivered.layers, strict=True))
    assert result.change.l1 == pytest.approx(diff, rel=1e-5)


def test_finetune_changes_only_the_rows_of_its_neurons(finetune_run):
    original, result = finetune_run
    rows = [(p.layer_index, unit) for p in layer_patches(result.patch) for unit in p.changed_units]
    assert 1 <= len(rows) <= 8
    # Only hidden layers (the activation ranking knows no output units), whole rows at most.
    assert all(layer < original.n_layers - 1 for layer, _ in rows)
    assert result.change.n_changed <= sum(original.layers[layer].in_features + 1 for layer, _ in rows)


def _line_network() -> Network:
    """y = (x, 1 - x): one input, two outputs, no hidden layer."""
    return Network((AffineLayer(np.array([[1.0], [-1.0]]), np.array([0.0, 1.0]), relu=False),), "line")


def _prop() -> Property:
    """For x in [0, 1]: unsafe when y0 >= 0.7 (i.e. x >= 0.7)."""
    return Property((Box(np.array([0.0]), np.array([1.0])),),
                    (HalfSpaces(np.array([[-1.0, 0.0]]), np.array([-0.7])),), "p")


def test_split_and_nearest_targets_on_a_hand_computed_case():
    network, prop = _line_network(), _prop()
    pool = np.array([[0.75], [0.9], [0.5], [2.0]])            # two violating, one safe, one outside the region
    preserve = np.array([[0.1], [0.6], [0.8]])                 # 0.8 violates: not a positive
    samples = split_samples(network, [prop], pool, preserve)
    np.testing.assert_array_equal(samples.negative_x, [[0.75], [0.9]])
    np.testing.assert_array_equal(np.sort(samples.positive_x[:, 0]), [0.1, 0.5, 0.6])
    targets = nearest_targets(samples, [prop], k=1)
    # The nearest safe point of both negatives is 0.6: the original's output there is (0.6, 0.4).
    np.testing.assert_allclose(targets, [[0.6, 0.4], [0.6, 0.4]])
    targets2 = nearest_targets(samples, [prop], k=2)
    np.testing.assert_allclose(targets2, [[0.55, 0.45], [0.55, 0.45]])


def test_nearest_targets_without_positives_is_an_error():
    network, prop = _line_network(), _prop()
    samples = split_samples(network, [prop], np.array([[0.9]]), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="safe samples"):
        nearest_targets(samples, [prop], k=1)


def test_network_patch_between_and_apply_round_trip():
    a = _line_network()
    b = a.replace_layer(0, np.array([[1.5], [-1.0]]), np.array([0.0, 1.25]))
    patch = NetworkPatch.between(a, b)
    assert patch is not None and patch.layer_indices == (0,)
    assert patch.l1 == pytest.approx(0.75) and patch.linf == pytest.approx(0.5) and patch.n_changed == 2
    np.testing.assert_allclose(apply_change(a, patch).forward(np.array([[0.3]])), b.forward(np.array([[0.3]])))
    assert NetworkPatch.between(a, a) is None
    with pytest.raises(ValueError, match="each layer once"):
        NetworkPatch((Patch(0, np.zeros((2, 1)), np.zeros(2)), Patch(0, np.zeros((2, 1)), np.zeros(2))))


def test_registry_lists_every_strategy_and_rejects_unknown_names():
    assert list_strategies() == ["lp", "cover", "imitation", "finetune"]
    with pytest.raises(ValueError, match="lp, cover, imitation, finetune"):
        get_strategy("pso")
    with pytest.raises(ValueError, match="StrategyConfig.name must be one of lp, cover, imitation, finetune"):
        StrategyConfig(name="retrain")
    with pytest.raises(ValueError, match="epochs"):
        StrategyConfig(epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        StrategyConfig(optimizer="sgd")


def _hidden_line_network() -> Network:
    """h = relu(x, 1), y = h: on x in [0, 1], y0 = x and y1 = 1 (its neuron never varies)."""
    return Network((AffineLayer(np.array([[1.0], [0.0]]), np.array([0.0, 1.0]), relu=True),
                    AffineLayer(np.eye(2), np.zeros(2), relu=False)), "hidden_line")


def _context(config: StrategyConfig):
    import time

    from verirepair.repair.strategy_context import StrategyContext

    rng = np.random.default_rng(0)
    return StrategyContext(_hidden_line_network(), (_prop(),), (0.01,), rng.uniform(0, 1, (200, 1)),
                           rng.uniform(0, 1, (200, 1)), "argmax", config, 0, time.perf_counter() + 120,
                           lambda stage, info: None, lambda: (None, None))


@pytest.mark.parametrize("config", [StrategyConfig(name="imitation", epochs=400),
                                    StrategyConfig(name="finetune", epochs=400, n_neurons=1),
                                    StrategyConfig(name="finetune", epochs=150, n_neurons=1, optimizer="pso",
                                                   particles=12)],
                         ids=["imitation", "finetune-adam", "finetune-pso"])
def test_each_strategy_moves_every_region_point_out_of_the_unsafe_set(config):
    """y0 = x violates "y0 < 0.7" on [0.7, 1]; afterwards every pool point of the region is
    at least the margin inside the safe side, on the float32-rounded weights."""
    from verirepair.repair.config import RepairStatus

    context = _context(config)
    outcome = get_strategy(config.name)(context)
    assert outcome.result is not None and outcome.result.status is RepairStatus.REPAIRED, outcome.result
    repaired = apply_change(context.network, outcome.result.patch)
    y = repaired.forward(context.pool)
    assert np.all(_prop().violation_score(y) <= -0.01 + 1e-6)
    changed = {(p.layer_index, u) for p in layer_patches(outcome.result.patch) for u in p.changed_units}
    if config.name == "finetune":
        # Hidden neuron 0 carries y0 = x: the activation ranking picks it, and only its row changes.
        assert changed == {(0, 0)}
    else:
        assert {layer for layer, _ in changed} == {0, 1}


def test_a_candidate_that_fixes_everything_but_flips_decisions_is_rejected():
    """Fidelity floor: outputs (0.5, 0.4) everywhere are safe, but every arg-min decision of the
    original (output 0, since x < 1) becomes 1; with min_agreement 0.9 that is SOLVER_FAILED."""
    from verirepair.repair.config import RepairStatus
    from verirepair.repair.training import TrainingRun, trained_outcome

    context = _context(StrategyConfig(name="finetune"))
    context = type(context)(**{**{f: getattr(context, f) for f in context.__slots__}, "decision": "argmin"})
    samples = split_samples(context.network, context.properties, context.pool, context.preserve_x)
    flat = context.network.replace_layer(1, np.zeros((2, 2)), np.array([0.5, 0.4]))
    run = TrainingRun(1, 0.0, 0.0, True, 0.0)
    rejected = trained_outcome(context, samples, flat, run, "test", 1).result
    assert rejected.status is RepairStatus.SOLVER_FAILED and "min_agreement=0.9" in rejected.message
    assert rejected.stats.cex_fixed == samples.negative_x.shape[0] and rejected.stats.preserve_agreement == 0.0
    lax = type(context)(**{**{f: getattr(context, f) for f in context.__slots__},
                           "config": StrategyConfig(name="finetune", min_agreement=0.0)})
    assert trained_outcome(lax, samples, flat, run, "test", 1).result.status is RepairStatus.REPAIRED
