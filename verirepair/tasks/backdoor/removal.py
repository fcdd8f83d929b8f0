"""Backdoor removal: localize the neurons the trigger acts through, repair one layer by LP, measure, prove.

Pipeline position: the task's driver (``verirepair backdoor repair`` and the
benchmark call :func:`remove_backdoor`).  Steps:

1. the trigger to repair against: the given one, or one recovered by
   :func:`~verirepair.tasks.backdoor.reverse.reverse_trigger` for the target
   (with a Neural Cleanse scan of every class for the anomaly index);
2. fix points: that trigger stamped on the training images not of the target
   whose clean version the network classifies correctly; their goal is their
   true class.  Keep points: the clean training images (their classes);
3. causal localization (:func:`verirepair.localize.localize`, CARE's method):
   the violation is "a stamped image is classified as the target" (one
   property per stamped image, region a point, unsafe set "the target's logit
   is the largest"), so each neuron's effect is how much intervening on it
   reduces the target's lead;
4. repair by the core's LP (:func:`verirepair.tasks.classify_repair.repair_to_targets`):
   scope ``"localized"`` changes only the output layer's weights from the
   ``top_k`` most guilty neurons of the last hidden layer (CARE changes only
   localized neurons), falling back to the whole output layer when that is
   infeasible; scope ``"output"`` changes the whole output layer.  The output
   layer is chosen because no activation pattern needs to be held fixed there:
   the LP is exact, while in a hidden layer the fixed-pattern LP would have to
   keep the backdoor's own activation pattern on the stamped images (measured
   infeasible on the first hidden layer, see the README section);
5. the repaired parameters are rounded to float32 (what the ONNX file holds) and
   everything after is measured on that network, on held-out test images: clean
   accuracy, attack success (with the true trigger when known, and with the
   repaired-against trigger);
6. prove (:mod:`.proof`) on test images before and after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from verirepair.localize import Localization, LocalizeConfig, localize
from verirepair.network.model import Network
from verirepair.properties.property import Box, Property
from verirepair.repair import RepairConfig, RepairStatus
from verirepair.tasks.backdoor.data import N_CLASSES, N_PIXELS, DigitsData
from verirepair.tasks.backdoor.plant import attack_success
from verirepair.tasks.backdoor.proof import ProofSummary, answers_target_polytope, prove_removal
from verirepair.tasks.backdoor.reverse import (
    ReverseConfig,
    ReversedTrigger,
    anomaly_index,
    recovered_region,
    reverse_trigger,
    scan_targets,
    trigger_closeness,
)
from verirepair.tasks.backdoor.trigger import Trigger
from verirepair.tasks.classifier import accuracy, as_float32, predict
from verirepair.tasks.classify_repair import ClassifyRepairStats, repair_to_targets
from verirepair.verify import VerifyConfig

SCOPES = ("localized", "output")


def check_digit_classifier(network: Network, what: str = "network") -> None:
    """Raise ``ValueError`` unless ``network`` takes 64 inputs and gives 10 outputs (one line)."""
    if network.n_inputs != N_PIXELS or network.n_outputs != N_CLASSES:
        raise ValueError(f"{what} must take {N_PIXELS} inputs (8x8 pixels / 16) and give {N_CLASSES} outputs "
                         f"(digit logits), got {network.n_inputs} inputs and {network.n_outputs} outputs")
    if not any(layer.relu for layer in network.layers[:-1]):
        raise ValueError(f"{what} has no hidden ReLU layer: there is no neuron to localize the trigger in")


@dataclass(frozen=True, slots=True)
class RemovalConfig:
    """Settings of :func:`remove_backdoor`.

    Parameters
    ----------
    margin : float
        Logit gap by which each fix point must get its true class.
    preserve_margin : float
        Keep points keep their class by ``min(preserve_margin, gap / 2)``.
    scope : {"localized", "output"}
        What may change (see the module docstring).
    top_k : int
        Guilty neurons whose outgoing weights may change (scope "localized").
    fix_batch : int
        Fix points in the first LP; failing ones are added per round.
    max_rounds : int
    solver : str
        LP backend.
    repair_time_limit_s : float
    reverse : ReverseConfig
    scan_all_targets : bool
        With an unknown trigger, also reverse-engineer every other class for the anomaly index.
    prove_images : int or None
        Test images (a seeded subset) whose trigger box is proven; 0 skips proofs, None = all.
    proof_timeout_s : float
        Per image.
    max_train_images : int or None
        Use a seeded, class-stratified subset of at most this many training
        images for the repair (faster, less preserved); None: all.
    seed : int
    """

    margin: float = 1.0
    preserve_margin: float = 3.0
    scope: str = "localized"
    top_k: int = 16
    fix_batch: int = 300
    max_rounds: int = 6
    solver: str = "highs"
    repair_time_limit_s: float = 300.0
    reverse: ReverseConfig = field(default_factory=ReverseConfig)
    scan_all_targets: bool = True
    prove_images: int | None = 100
    proof_timeout_s: float = 10.0
    max_train_images: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if not (self.margin > 0 and self.preserve_margin >= 0 and self.repair_time_limit_s > 0
                and self.proof_timeout_s > 0):
            raise ValueError("margin, repair_time_limit_s and proof_timeout_s must be positive, "
                             "preserve_margin >= 0")
        if self.top_k < 1 or self.fix_batch < 1 or self.max_rounds < 1:
            raise ValueError("top_k, fix_batch and max_rounds must be at least 1")
        if self.max_train_images is not None and self.max_train_images < N_CLASSES:
            raise ValueError(f"max_train_images must be at least {N_CLASSES} or None")
        if self.prove_images is not None and self.prove_images < 0:
            raise ValueError("prove_images must be >= 0 or None")


@dataclass(frozen=True, slots=True)
class RemovalResult:
    """Everything :func:`remove_backdoor` measured (see ``to_json_dict`` for the report keys)."""

    network: Network
    repaired: Network
    target: int
    trigger_known: bool
    repair_trigger: Trigger
    true_trigger: Trigger | None
    proof_region: np.ndarray
    reversed: ReversedTrigger | None
    anomaly: dict[int, float] | None
    localization: Localization
    repair_layer: int
    repair_inputs: tuple[int, ...] | None
    scope_used: str
    stats: ClassifyRepairStats
    accuracy_before: float
    accuracy_after: float
    attack_before: float
    attack_after: float
    attack_repair_trigger_before: float
    attack_repair_trigger_after: float
    proof_before: ProofSummary | None
    proof_after: ProofSummary | None
    times_s: dict[str, float]

    @property
    def status(self) -> RepairStatus:
        """The repair's status."""
        return self.stats.status

    def to_json_dict(self) -> dict[str, Any]:
        """The ``report.json`` payload."""
        closeness = (trigger_closeness(self.true_trigger, self.repair_trigger).to_json_dict()
                     if self.true_trigger is not None and not self.trigger_known else None)
        pb, pa = self.proof_before, self.proof_after
        return {
            "status": self.status.value, "target": self.target, "trigger_known": self.trigger_known,
            "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
            "accuracy_change_points": 100 * (self.accuracy_after - self.accuracy_before),
            "attack_success_before": self.attack_before, "attack_success_after": self.attack_after,
            "attack_success_measured_with": ("true trigger" if self.true_trigger is not None
                                             else "repaired-against trigger"),
            "attack_success_repair_trigger_before": self.attack_repair_trigger_before,
            "attack_success_repair_trigger_after": self.attack_repair_trigger_after,
            "proven_before": pb.proven_share if pb else None, "proven_after": pa.proven_share if pa else None,
            "proof_before": pb.to_json_dict() if pb else None, "proof_after": pa.to_json_dict() if pa else None,
            "proof_region": [int(i) for i in self.proof_region],
            "proof_statement": ("for each checked test image not of the target class: for every value in [0, 1] "
                                "of the proof_region pixels (all other pixels fixed), some other class scores "
                                "strictly above the target"),
            "trigger_closeness": closeness,
            "reversed": None if self.reversed is None else {
                "mask_l1": self.reversed.mask_l1, "success": self.reversed.success,
                "reached_goal": self.reversed.reached_goal},
            "anomaly_index": None if self.anomaly is None else {str(k): v for k, v in self.anomaly.items()},
            "localization": {"suggested_layer": self.localization.suggested_layer,
                             "top": [e.to_json_dict() for e in self.localization.ranking[:10]]},
            "repair_layer": self.repair_layer, "repair_inputs": list(self.repair_inputs or []),
            "scope_used": self.scope_used, "repair": self.stats.to_json_dict(), "times_s": self.times_s,
        }


def _fix_points(network: Network, data: DigitsData, trigger: Trigger, target: int
                ) -> tuple[np.ndarray, np.ndarray]:
    ok = (data.y_train != target) & (predict(network, data.x_train) == data.y_train)
    return trigger.stamp(data.x_train[ok]), data.y_train[ok]


def _train_subset(data: DigitsData, limit: int | None, seed: int) -> DigitsData:
    """At most ``limit`` training images, the same share of each class (seeded); the test set is kept."""
    if limit is None or data.y_train.size <= limit:
        return data
    rng = np.random.default_rng(seed)
    keep = np.zeros(data.y_train.size, dtype=bool)
    share = limit / data.y_train.size
    for c in np.unique(data.y_train):
        members = np.flatnonzero(data.y_train == c)
        keep[rng.choice(members, max(1, int(share * members.size)), replace=False)] = True
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


def localize_trigger(network: Network, stamped: np.ndarray, clean: np.ndarray, target: int,
                     config: LocalizeConfig | None = None) -> Localization:
    """Causal localization of the neurons through which stamped images reach ``target``.

    Parameters
    ----------
    network : Network
    stamped : array, shape (n, n_inputs) -- triggered images (those not classified ``target`` are ignored)
    clean : array, shape (m, n_inputs) -- clean images (intervention ranges, collateral effect)
    target : int
    config : LocalizeConfig, optional -- its ``decision`` is set to ``"argmax"``
    """
    config = replace(config or LocalizeConfig(top_k=16), decision="argmax")
    hits = stamped[predict(network, stamped) == target]
    if hits.shape[0] == 0:
        return localize(network, [_point_property(stamped[:1], target, network.n_outputs)],
                        np.zeros((0, network.n_inputs)), clean, config)
    return localize(network, [_point_property(hits, target, network.n_outputs)], hits, clean, config)


def _point_property(points: np.ndarray, target: int, n_outputs: int) -> Property:
    return Property(tuple(Box(p, p) for p in points), (answers_target_polytope(target, n_outputs),),
                    f"answers_{target}")


def remove_backdoor(network: Network, data: DigitsData, target: int, trigger: Trigger | None = None,
                    config: RemovalConfig = RemovalConfig(), true_trigger: Trigger | None = None,
                    progress: Any = None) -> RemovalResult:
    """Remove a backdoor to ``target`` from a digits classifier (see the module docstring).

    Parameters
    ----------
    network : Network -- 64 inputs, 10 outputs
    data : DigitsData -- training images for the repair, test images for the measures
    target : int
    trigger : Trigger, optional -- the known trigger; None: reverse-engineer one
    config : RemovalConfig
    true_trigger : Trigger, optional
        Only for evaluation when ``trigger`` is None (a benchmark that planted
        the backdoor): attack success and closeness are measured against it.
    progress : callable(str), optional -- told the name of each step as it starts

    Returns
    -------
    RemovalResult

    Raises
    ------
    ValueError -- a network of the wrong shape or a target outside 0..9
    """
    check_digit_classifier(network)
    if not 0 <= target < N_CLASSES:
        raise ValueError(f"target must be a digit class 0..9, got {target}")
    say = progress or (lambda step: None)
    data = _train_subset(data, config.max_train_images, config.seed)
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    known = trigger is not None
    true = trigger if known else true_trigger
    reversed_: ReversedTrigger | None = None
    anomaly: dict[int, float] | None = None
    if trigger is None:
        say("reverse-engineering the trigger")
        if config.scan_all_targets:
            scans = scan_targets(network, data.x_train, data.y_train, None, config.reverse)
            reversed_ = scans[target]
            anomaly = {s.target: float(a) for s, a in zip(scans, anomaly_index(
                np.array([s.mask_l1 for s in scans])), strict=True)}
        else:
            reversed_ = reverse_trigger(network, data.x_train, data.y_train, target, config.reverse)
        trigger = reversed_.trigger
        lap("reverse")
    region = true.region if true is not None else recovered_region(trigger)
    fix_x, fix_t = _fix_points(network, data, trigger, target)

    say("localizing")
    loc = localize_trigger(network, fix_x, data.x_train, target, LocalizeConfig(top_k=config.top_k,
                                                                                seed=config.seed))
    lap("localize")

    say("repairing")
    out_layer = network.n_layers - 1
    repair_config = RepairConfig(solver=config.solver, preserve_margin=config.preserve_margin,
                                 time_limit_s=config.repair_time_limit_s)
    guilty = tuple(e.unit for e in loc.ranking if e.layer_index == out_layer - 1)[:config.top_k]
    attempts: list[tuple[str, tuple[int, ...] | None]] = []
    if config.scope == "localized" and guilty:
        attempts.append(("localized", guilty))
    attempts.append(("output", None))
    scope_used, inputs = attempts[0]
    for scope_used, inputs in attempts:  # noqa: B007 -- the last attempt tried is reported
        repaired, stats = repair_to_targets(
            network, fix_x, fix_t, data.x_train, data.y_train, layer_index=out_layer, margin=config.margin,
            config=replace(repair_config, inputs=inputs), fix_batch=config.fix_batch, max_rounds=config.max_rounds)
        if stats.status in (RepairStatus.REPAIRED, RepairStatus.NOT_NEEDED):
            break
    if stats.status is RepairStatus.REPAIRED:
        # Measure and prove the network as delivered: ONNX files carry float32 parameters
        # (a float64 graph stores float32-rounded values exactly).
        repaired = as_float32(repaired)
    lap("repair")

    measure = true if true is not None else trigger
    acc_b, acc_a = accuracy(network, data.x_test, data.y_test), accuracy(repaired, data.x_test, data.y_test)
    asr_b = attack_success(network, data.x_test, data.y_test, measure, target)
    asr_a = attack_success(repaired, data.x_test, data.y_test, measure, target)
    rt_b = attack_success(network, data.x_test, data.y_test, trigger, target)
    rt_a = attack_success(repaired, data.x_test, data.y_test, trigger, target)
    lap("measure")

    proof_b = proof_a = None
    if config.prove_images != 0:
        say("proving")
        vc = VerifyConfig(timeout_s=config.proof_timeout_s, falsify_samples=200, pgd_steps=20, seed=config.seed)
        proof_b = prove_removal(network, data.x_test, data.y_test, region, target, vc, config.prove_images,
                                config.seed)
        proof_a = prove_removal(repaired, data.x_test, data.y_test, region, target, vc, config.prove_images,
                                config.seed)
        lap("prove")
    return RemovalResult(network, repaired, target, known, trigger, true, np.asarray(region), reversed_, anomaly,
                         loc, out_layer, inputs, scope_used, stats, acc_b, acc_a, asr_b, asr_a, rt_b, rt_a,
                         proof_b, proof_a, times)
