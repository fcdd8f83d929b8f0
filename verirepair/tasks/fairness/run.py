"""One fairness run: measure, prove, repair, measure and prove again; the numbers of ``report.json``.

Pipeline position: the driver shared by ``verirepair fairness repair`` and
``benchmarks/bench_fairness.py``.  Before and after are measured on the *same*
samples (the test split, and one seeded uniform domain sample that the repair
never saw), so the two rates are a paired comparison; the proofs run on the
same test individuals before and after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from verirepair.network.model import Network
from verirepair.tasks.classifier import accuracy
from verirepair.tasks.fairness.data import FairnessData
from verirepair.tasks.fairness.measure import CONFIDENCE, DiscriminationEstimate, estimate, sample_domain
from verirepair.tasks.fairness.product import ProofSummary, prove_individuals
from verirepair.tasks.fairness.protected import ProtectedAttribute, protected_attribute
from verirepair.tasks.fairness.repair import FairRepairConfig, FairRepairResult, repair_fairness

__all__ = ["FairnessRunConfig", "measure_all", "prove_all", "run_fairness_repair"]

#: Seed offset of the measurement's domain sample (the repair rounds use ``[seed, round]``).
MEASURE_STREAM = 1_000_003


@dataclass(frozen=True, slots=True)
class FairnessRunConfig:
    """Settings of a measured repair.

    Parameters
    ----------
    n_domain : int
        Uniform domain samples of the measurement.
    confidence : float
        Of the discrimination intervals.
    proof_individuals : int
        Test individuals (a seeded subset) whose fairness is proven before and after.
    proof_tolerance : float
        ``+-`` this on every numeric feature (encoded units: a fraction of the
        feature's training range) in the proofs.
    proof_timeout_s : float
        Verifier budget per individual.
    seed : int
    repair : FairRepairConfig
    """

    n_domain: int = 10000
    confidence: float = CONFIDENCE
    proof_individuals: int = 100
    proof_tolerance: float = 0.01
    proof_timeout_s: float = 2.0
    seed: int = 0
    repair: FairRepairConfig = field(default_factory=FairRepairConfig)

    def __post_init__(self) -> None:
        if self.n_domain < 1 or self.proof_individuals < 0:
            raise ValueError("n_domain must be >= 1 and proof_individuals >= 0")
        if not 0 < self.confidence < 1 or self.proof_tolerance < 0 or not self.proof_timeout_s > 0:
            raise ValueError("confidence must lie in (0, 1), proof_tolerance >= 0, proof_timeout_s > 0")


def measure_all(network: Network, data: FairnessData, attributes: Sequence[ProtectedAttribute],
                domain: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, dict[str, DiscriminationEstimate]]:
    """Per attribute, the rate on the test split (``"data"``) and on ``domain`` (``"domain"``)."""
    return {a.name: {"data": estimate(network, data.x_test, a, "data", confidence),
                     "domain": estimate(network, domain, a, "domain", confidence)} for a in attributes}


def prove_all(network: Network, data: FairnessData, attributes: Sequence[ProtectedAttribute],
              individuals: np.ndarray, tolerance: float, timeout_s: float, seed: int = 0) -> dict[str, ProofSummary]:
    """Per attribute, :func:`prove_individuals` on the test rows ``individuals``."""
    return {a.name: prove_individuals(network, data.x_test[individuals], a, data.encoding, tolerance, timeout_s, seed)
            for a in attributes}


def _relative(before: float, after: float) -> float | None:
    return None if before == 0 else (before - after) / before


def run_fairness_repair(network: Network, data: FairnessData, attribute_names: Sequence[str],
                        config: FairnessRunConfig = FairnessRunConfig(),
                        progress: Callable[[str], None] | None = None) -> tuple[FairRepairResult, dict]:
    """Measure and prove, repair, then measure and prove the repaired network.

    Returns
    -------
    (FairRepairResult, dict)
        The repair and the JSON-ready report (``accuracy_before`` /
        ``_after``, ``proven_before`` / ``_after`` and ``discrimination_before``
        / ``_after`` per attribute, ``feature_layout``, the change, the rounds
        and the localization).

    Raises
    ------
    KeyError
        An attribute that is not a column of the data set.
    """
    say = progress or (lambda message: None)
    start = time.perf_counter()
    attributes = [protected_attribute(data.encoding, name) for name in attribute_names]
    domain = sample_domain(data.encoding, config.n_domain, np.random.default_rng([config.seed, MEASURE_STREAM]))
    n_proof = min(config.proof_individuals, data.x_test.shape[0])
    individuals = np.sort(np.random.default_rng([config.seed, MEASURE_STREAM + 1]).choice(
        data.x_test.shape[0], n_proof, replace=False))
    before = measure_all(network, data, attributes, domain, config.confidence)
    say("measured before: " + ", ".join(f"{a} {m['data'].rate:.2%}" for a, m in before.items()))
    proofs_before = prove_all(network, data, attributes, individuals, config.proof_tolerance,
                              config.proof_timeout_s, config.seed)
    say("proven before: " + ", ".join(f"{a} {p.proven}/{p.n}" for a, p in proofs_before.items()))
    repair_start = time.perf_counter()
    result = repair_fairness(network, data.encoding, attributes, data.x_train, config.repair, say)
    repair_s = time.perf_counter() - repair_start
    after = measure_all(result.network, data, attributes, domain, config.confidence)
    say("measured after: " + ", ".join(f"{a} {m['data'].rate:.2%}" for a, m in after.items()))
    proofs_after = prove_all(result.network, data, attributes, individuals, config.proof_tolerance,
                             config.proof_timeout_s, config.seed)
    say("proven after: " + ", ".join(f"{a} {p.proven}/{p.n}" for a, p in proofs_after.items()))
    stats = result.stats
    report = {
        "data": data.summary(),
        "network": {"name": network.name, "hidden": list(network.hidden_sizes), "n_inputs": network.n_inputs},
        "protected": list(attribute_names),
        "attributes": {a.name: {"kind": a.kind, "values": list(a.labels), "indices": a.indices.tolist()}
                       for a in attributes},
        "status": result.status,
        "accuracy_before": accuracy(network, data.x_test, data.y_test),
        "accuracy_after": accuracy(result.network, data.x_test, data.y_test),
        "train_accuracy_before": accuracy(network, data.x_train, data.y_train),
        "train_accuracy_after": accuracy(result.network, data.x_train, data.y_train),
        "discrimination_before": {a: {s: e.to_json() for s, e in m.items()} for a, m in before.items()},
        "discrimination_after": {a: {s: e.to_json() for s, e in m.items()} for a, m in after.items()},
        "relative_improvement": {a: {s: _relative(before[a][s].rate, after[a][s].rate) for s in ("data", "domain")}
                                 for a in before},
        "proven_before": {a: p.share for a, p in proofs_before.items()},
        "proven_after": {a: p.share for a, p in proofs_after.items()},
        "proofs_before": {a: p.to_json() for a, p in proofs_before.items()},
        "proofs_after": {a: p.to_json() for a, p in proofs_after.items()},
        "proof_individuals": individuals.tolist(),
        "change": {"layer_index": result.layer_index,
                   "neurons": list(result.neurons) if result.neurons is not None else None,
                   "l1": stats.l1 if stats else 0.0, "linf": stats.linf if stats else 0.0,
                   "n_changed": stats.n_changed if stats else 0,
                   "changed_units": list(stats.patch.changed_units) if stats and stats.patch else [],
                   "n_fix_points": stats.n_fix if stats else 0, "n_keep_points": stats.n_keep if stats else 0},
        "rounds": [r.to_json() for r in result.rounds],
        "localization": {"suggested_layer": result.localization.suggested_layer,
                         "suggested_neurons": list(result.localization.suggested_neurons),
                         "n_pairs": result.localization.n_counterexamples,
                         "top": [{"layer_index": e.layer_index, "unit": e.unit, "effect": e.effect_violation,
                                  "collateral": e.effect_correct} for e in result.localization.ranking[:10]]},
        "repair_time_s": repair_s,
        "time_s": time.perf_counter() - start,
        "config": _config_json(config),
        "targets": "each variant of a discriminatory individual gets the original network's decision on the "
                   "individual as it appears in the data (labels are not used)",
        "feature_layout": data.encoding.layout(),
    }
    return result, report


def _config_json(config: FairnessRunConfig) -> Any:
    return _plain(asdict(config))


def _plain(value: object) -> Any:
    """Enums and tuples in a nested asdict() result turned into JSON types."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, int | float | str | bool):
        return value.value
    return value
