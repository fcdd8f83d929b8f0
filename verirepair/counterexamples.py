"""Counterexamples: read them from files, find them with the verifier, densify them, localize on them.

Pipeline position: helpers of the certify loop (:func:`densify`) and of the
CLI's ``localize`` command (:func:`localize_network`), which needs
counterexamples before the localization stage can rank neurons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verirepair.localize.result import Localization
from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify.result import Verdict, VerifyConfig


def densify(network: Network, props: list[Property], seeds: np.ndarray, rng: np.random.Generator,
             count: int) -> np.ndarray:
    """More counterexamples around known ones: Gaussian perturbations that stay violating."""
    if seeds.shape[0] == 0 or count <= 0:
        return seeds
    boxes = [box for prop in props for box in prop.input_boxes]
    scale = np.min([box.width for box in boxes], axis=0) * 0.02 + 1e-9
    picks = seeds[rng.integers(0, seeds.shape[0], size=count * 4)]
    cand = picks + rng.normal(size=picks.shape) * scale
    keep = np.zeros(cand.shape[0], dtype=bool)
    for prop in props:
        inside = prop.in_region(cand)
        if inside.any():
            keep[inside] |= prop.is_violated_by(network.forward(cand[inside]))
    return np.vstack([seeds, cand[keep][:count]])


def localize_network(network: Network, props: list[Property], method: str = "causal", seed: int = 0,
                     cex_path: Path | None = None, timeout_s: float = 60.0,
                     decision: str = "argmin") -> Localization:
    """Find counterexamples (or read them) and localize the fault.

    Parameters
    ----------
    network : Network
    props : list of Property -- one VNN-LIB file's properties
    method : {"causal", "activation", "gradient"}
    seed : int
    cex_path : Path or None -- counterexamples file (.npy, .json or a VNN-COMP result)
    timeout_s : float -- verification budget
    decision : str -- the decision rule of the collateral effect

    Returns
    -------
    Localization
    """
    from verirepair.localize import LocalizeConfig, localize
    from verirepair.localize.samples import sample_correct

    rng = np.random.default_rng(seed)
    if cex_path is not None:
        cex_x = read_counterexamples(cex_path, network.n_inputs)
    else:
        cex_x = _find_counterexamples(network, props, seed, timeout_s, 64)
    if cex_x.shape[0]:
        cex_x = densify(network, props, cex_x, rng, 256)
    correct_x = sample_correct(network, props, 512, rng)
    return localize(network, props, cex_x, correct_x, LocalizeConfig(method=method, seed=seed, decision=decision))


def _find_counterexamples(network: Network, props: list[Property], seed: int, timeout_s: float,
                          count: int) -> np.ndarray:
    from verirepair.verify import verify

    result = verify(network, props, VerifyConfig(timeout_s=timeout_s, seed=seed, max_counterexamples=count))
    if result.verdict is not Verdict.VIOLATED:
        return np.zeros((0, network.n_inputs))
    return np.array([c.x for c in result.counterexamples])


def read_counterexamples(path: Path, n_inputs: int) -> np.ndarray:
    """Read counterexample inputs from ``.npy``, ``.json`` (list of lists or {"x": ...}) or a VNN-COMP result.

    Returns
    -------
    array, shape (n, n_inputs)
    """
    import json

    from verirepair.errors import VerirepairError

    if path.suffix == ".npy":
        x = np.load(path)
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            data = data.get("counterexample", data).get("x") if "x" not in data else data["x"]
        x = np.asarray(data, dtype=np.float64)
    else:
        from verirepair.verify.vnncomp_io import parse_result

        verdict, x, _ = parse_result(path.read_text())
        if x is None:
            raise VerirepairError(f"{path}: result file says {verdict!r}, and carries no counterexample")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] != n_inputs:
        raise VerirepairError(f"{path}: counterexamples have {x.shape[1]} inputs, the network has {n_inputs}")
    return x
