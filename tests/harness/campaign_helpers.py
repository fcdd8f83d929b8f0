"""A tiny campaign with hand-computable answers, for the campaign tests.

The network is y = relu(x) + relu(-x) = |x| on x in [-1, 1], so y lies in [0, 1]: the property
"unsafe: y >= t" is violated (sat) exactly when t <= 1 and holds (unsat) when t > 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Thresholds of the campaign's properties, and the answer each must get.
THRESHOLDS = (0.25, 0.5, 0.9, 1.5, 2.0, 4.0)


def expected_result(threshold: float) -> str:
    """The VNN-COMP answer of "unsafe: |x| >= threshold" on x in [-1, 1]."""
    return "sat" if threshold <= 1.0 else "unsat"


def write_abs_onnx(path: Path) -> Path:
    """y = relu(x) + relu(-x) = |x| as MatMul/Add/Relu, input shape (1, 1)."""
    inits = [
        numpy_helper.from_array(np.array([[1.0, -1.0]], dtype=np.float32), "W0"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "B0"),
        numpy_helper.from_array(np.array([[1.0], [1.0]], dtype=np.float32), "W1"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "B1"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W0"], ["m0"]),
        helper.make_node("Add", ["m0", "B0"], ["a0"]),
        helper.make_node("Relu", ["a0"], ["h0"]),
        helper.make_node("MatMul", ["h0", "W1"], ["m1"]),
        helper.make_node("Add", ["m1", "B1"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "abs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def vnnlib_text(threshold: float) -> str:
    """x in [-1, 1]; unsafe: y >= threshold."""
    return ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
            "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n"
            f"(assert (>= Y_0 {threshold}))\n")


def write_campaign(folder: Path, thresholds: tuple[float, ...] = THRESHOLDS, timeout_s: float = 30) -> Path:
    """``folder/instances.csv`` with one verify job per threshold (and the files it names)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_abs_onnx(folder / "abs.onnx")
    rows = []
    for index, threshold in enumerate(thresholds):
        (folder / f"p{index}.vnnlib").write_text(vnnlib_text(threshold), encoding="utf-8")
        rows.append(f"abs.onnx,p{index}.vnnlib,{timeout_s:g}")
    (folder / "instances.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "instances.csv"


def expected_by_vnnlib(thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, str]:
    """``{"p<i>.vnnlib": answer}`` for :func:`write_campaign`'s jobs."""
    return {f"p{i}.vnnlib": expected_result(t) for i, t in enumerate(thresholds)}
