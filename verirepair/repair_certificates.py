"""Checkable certificates of a repair run: one per proven property of the delivered file.

Pipeline position: :class:`verirepair.pipeline._Delivery` calls
:func:`attach_certificates` after a REPAIRED run's network is in place and its
report written.  Each property of the task is written as VNN-LIB into
``REPORT_DIR/certificates/``, verified once more on the delivered bytes with
the tree recorder, and its certificate written beside it; ``certificate.json``
gets a ``checkable_certificates`` list (``verirepair check REPORT_DIR`` checks
them all with the independent checker).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

from verirepair.atomic import write_text_atomic
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib, save_vnnlib
from verirepair.properties.property import Property
from verirepair.verify.certificate_writer import certify
from verirepair.verify.result import VerifyConfig

#: Sub-folder of the report that holds the property files and their certificates.
FOLDER = "certificates"


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "property"


def attach_certificates(report_dir: Path, network_path: Path, props: Sequence[tuple[str, Sequence[Property]]],
                        config: VerifyConfig, deadline: float) -> list[dict]:
    """Certify every property on the delivered network and list the files in ``certificate.json``.

    Parameters
    ----------
    report_dir : Path -- the run's report folder (``certificate.json`` is updated atomically)
    network_path : Path -- the delivered ONNX file
    props : sequence of (name, properties) -- the task's named properties (a VNN-LIB file each)
    config : VerifyConfig -- budget per property: what is left until ``deadline``
    deadline : float -- ``time.perf_counter()`` value; properties after it get no certificate

    Returns
    -------
    list of dict -- one entry per property: ``property``, ``vnnlib``, ``certificate``
    (paths relative to ``report_dir``, ``certificate`` None with a ``reason`` when none was written)
    """
    folder = Path(report_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    network = load_network(Path(network_path))
    entries = []
    for name, group in props:
        stem = _file_stem(name)
        vnnlib = save_vnnlib(list(group), folder / f"{stem}.vnnlib", comment=f"property {name} of the repair task")
        entry: dict = {"property": name, "vnnlib": f"{FOLDER}/{vnnlib.name}", "certificate": None}
        left = deadline - time.perf_counter()
        if left <= 1.0:
            entry["reason"] = "the run's time budget was used up before this certificate"
        else:
            budget = VerifyConfig(timeout_s=left, seed=config.seed, use_lp=config.use_lp,
                                  batch_size=config.batch_size)
            done = certify(network, parse_vnnlib(vnnlib), budget, Path(network_path), vnnlib,
                           folder / f"{stem}.npz")
            if done.path is not None:
                entry["certificate"] = f"{FOLDER}/{done.path.name}"
                entry["size_bytes"] = done.size_bytes
            else:
                entry["reason"] = done.reason
        entries.append(entry)
    summary_path = Path(report_dir) / "certificate.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["checkable_certificates"] = {"network": str(Path(network_path).resolve()), "entries": entries,
                                         "check_with": f"verirepair check {report_dir}"}
    write_text_atomic(summary_path, json.dumps(summary, indent=2))
    return entries
