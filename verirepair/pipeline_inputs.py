"""Inputs of the certify loop: properties, the input domain, samples, counterexample files.

Pipeline position: helpers of :mod:`verirepair.pipeline` (and of the CLI's
``localize`` command), kept apart so that ``pipeline.py`` holds only the loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verirepair.network.model import Network
from verirepair.spec.property import Box, Property
from verirepair.verify.result import Verdict, VerifyConfig

NamedProperties = list[tuple[str, list[Property]]]


def collect_properties(network_path: Path, paths: Sequence[Path], acasxu: bool) -> NamedProperties:
    """Gather named properties from files and, with ``acasxu``, the applicable ACAS Xu ones.

    Parameters
    ----------
    network_path : Path -- used to recognise an ACAS Xu network by name
    paths : VNN-LIB files given explicitly
    acasxu : bool -- add every ACAS Xu property that applies to the network

    Returns
    -------
    list of (name, list of Property)
    """
    from verirepair.spec import parse_vnnlib

    named: NamedProperties = []
    if acasxu:
        import acasxu_nets
        from verirepair.spec.physical import default_vnnlib_dir

        try:
            info = acasxu_nets.network_info(network_path.stem)
        except (KeyError, ValueError, LookupError):
            from verirepair.errors import VerirepairError

            raise VerirepairError(f"--acasxu: {network_path.name} is not named like an ACAS Xu network "
                                  f"(expected e.g. ACASXU_run2a_2_1_batch_2000.onnx or N2_1); give its "
                                  f"properties with --property instead") from None
        for number in info.applicable_properties:
            path = default_vnnlib_dir() / f"prop_{number}.vnnlib"
            named.append((f"phi{number}", parse_vnnlib(path)))
    seen = {name for name, _ in named}
    for path in paths:
        name = path.stem
        if name in seen:
            continue
        named.append((name, parse_vnnlib(path)))
        seen.add(name)
    return named


def input_domain(network: Network, props: Sequence[Property]) -> Box:
    """The box of valid inputs, used for preservation and fidelity sampling.

    Taken from the network's normalisation metadata when it has some, from the
    ACAS Xu constants when the network is an ACAS Xu one, and otherwise the
    bounding box of every property's input region.
    """
    if network.normalization is not None:
        norm = network.normalization
        lower = (np.asarray(norm.input_min) - norm.input_mean) / np.asarray(norm.input_range)
        upper = (np.asarray(norm.input_max) - norm.input_mean) / np.asarray(norm.input_range)
        return Box(lower, upper)
    if _is_acasxu_name(network.name):
        from verirepair.spec.physical import NORMALIZATION_FILE, default_properties_dir, load_normalization

        norm = load_normalization(default_properties_dir() / NORMALIZATION_FILE)
        return Box(norm.normalize_inputs(norm.input_min), norm.normalize_inputs(norm.input_max))
    lower = np.min([box.lower for prop in props for box in prop.input_boxes], axis=0)
    upper = np.max([box.upper for prop in props for box in prop.input_boxes], axis=0)
    return Box(lower, upper)


def _is_acasxu_name(name: str) -> bool:
    import acasxu_nets

    try:
        acasxu_nets.network_info(name)
    except (KeyError, ValueError, LookupError):
        return False
    return True


def preservation_points(network: Network, props: Sequence[Property], domain: Box, n: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Uniform domain points whose original behaviour is worth keeping.

    Points where the original violates a property are dropped: keeping their
    advisory would contradict the repair.
    """
    x = domain.sample(rng, n)
    y = network.forward(x)
    bad = np.zeros(n, dtype=bool)
    for prop in props:
        bad |= prop.in_region(x) & prop.is_violated_by(y)
    return x[~bad]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
                     cex_path: Path | None = None, timeout_s: float = 60.0):
    """Find counterexamples (or read them) and localize the fault.

    Parameters
    ----------
    network : Network
    props : list of Property -- one VNN-LIB file's properties
    method : {"causal", "activation", "gradient"}
    seed : int
    cex_path : Path or None -- counterexamples file (.npy, .json or a VNN-COMP result)
    timeout_s : float -- verification budget

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
    return localize(network, props, cex_x, correct_x, LocalizeConfig(method=method, seed=seed))


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
