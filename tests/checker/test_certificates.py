"""Certificates: written for a HOLDS, accepted by the independent checker, every tampering rejected.

The instance: the shipped demo network (5-10-10-5 ReLU) on the whole box
[-0.5, 0.5]^5 with two unsafe disjuncts (``Y_0 >= 0.7896``; ``Y_1 >= 0.4553``
and ``Y_1`` above ``Y_2, Y_3``), 5% beyond the largest sampled outputs: it
holds, but only after ~300 sub-boxes (so the tree has splits and the search
used alpha-CROWN on some boxes).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest

from verirepair.checker import NetworkRejected, Rejected, check_certificate, evidence_margins, read_chain
from verirepair.checker.arith import Outward
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib
from verirepair.verify.certificate_writer import certify
from verirepair.verify.result import Verdict, VerifyConfig

DATA = Path(__file__).resolve().parents[2] / "verirepair" / "data"
HEAD = "".join(f"(declare-const X_{i} Real)\n" for i in range(5)) + \
    "".join(f"(declare-const Y_{i} Real)\n" for i in range(5)) + \
    "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n" for i in range(5))


def _property(c0: float, c1: float) -> str:
    return HEAD + f"(assert (or (and (>= Y_0 {c0})) (and (>= Y_1 {c1}) (<= Y_2 Y_1) (<= Y_3 Y_1))))\n"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cert")
    net_path = folder / "demo.onnx"
    shutil.copy(DATA / "demo.onnx", net_path)
    prop_path = folder / "prop.vnnlib"
    prop_path.write_text(_property(0.7896, 0.4553))
    cert = folder / "prop.npz"
    done = certify(load_network(net_path), parse_vnnlib(prop_path), VerifyConfig(timeout_s=60), net_path,
                   prop_path, cert)
    assert done.result.verdict is Verdict.HOLDS and done.path == cert, done.reason
    return {"net": net_path, "prop": prop_path, "cert": cert, "done": done, "folder": folder}


def test_a_holds_gets_a_certificate_the_checker_accepts(instance: dict) -> None:
    result = check_certificate(instance["cert"], instance["net"], instance["prop"])
    summary = instance["done"].summary[0]
    assert result.leaves == summary["leaves"] > 10           # a real tree, not one box
    assert result.evidence == summary["evidence"] >= result.leaves
    assert summary["with_slopes"] > 0                        # alpha-CROWN evidence is in it too


def test_exact_mode_agrees_on_a_sample(instance: dict) -> None:
    result = check_certificate(instance["cert"], instance["net"], instance["prop"], exact="sample", sample=3)
    assert result.exact_evidence == 3


def test_no_certificate_for_a_violated_property(instance: dict) -> None:
    bad = instance["folder"] / "violated.vnnlib"
    bad.write_text(_property(0.5, 0.3))
    done = certify(load_network(instance["net"]), parse_vnnlib(bad), VerifyConfig(timeout_s=30),
                   instance["net"], bad, instance["folder"] / "violated.npz")
    assert done.result.verdict is Verdict.VIOLATED and done.path is None
    assert not (instance["folder"] / "violated.npz").exists() and "violated" in done.reason


# -- the tampering suite ----------------------------------------------------------

def _load(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path) as archive:
        arrays = {k: archive[k].copy() for k in archive.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def _save(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def _leaf_evidence(arrays: dict[str, np.ndarray]) -> int:
    leaves = np.flatnonzero(arrays["p0_split_dim"] < 0)
    return int(np.flatnonzero(np.isin(arrays["p0_ev_node"], leaves))[0])


def _drop_record(h: dict, a: dict) -> None:
    keep = np.ones(len(a["p0_ev_node"]), bool)
    keep[_leaf_evidence(a)] = False
    for key in ("p0_ev_node", "p0_ev_disjunct", "p0_ev_weights", "p0_ev_slope"):
        a[key] = a[key][keep]


def _move_split(h: dict, a: dict) -> None:
    a["p0_split_point"][0] = 0.49             # root split of [-0.5, 0.5] moved near its edge


def _split_outside(h: dict, a: dict) -> None:
    a["p0_split_point"][0] = 0.75


def _change_dim(h: dict, a: dict) -> None:
    a["p0_split_dim"][0] = (a["p0_split_dim"][0] + 1) % 5


def _slope_out_of_range(h: dict, a: dict) -> None:
    a["p0_slopes"][0, 0] = 1.5


def _slope_nan(h: dict, a: dict) -> None:
    a["p0_slopes"][0, 0] = np.nan


def _negative_weight(h: dict, a: dict) -> None:
    a["p0_ev_weights"][0, 0] = -1.0


def _zero_weights(h: dict, a: dict) -> None:
    a["p0_ev_weights"][0] = 0.0


def _other_disjunct(h: dict, a: dict) -> None:
    record = _leaf_evidence(a)
    a["p0_ev_disjunct"][record] = 1 - a["p0_ev_disjunct"][record]
    a["p0_ev_weights"][record] = [1.0, 0.0, 0.0]


def _move_record(h: dict, a: dict) -> None:
    leaves = np.flatnonzero(a["p0_split_dim"] < 0)
    a["p0_ev_node"][np.isin(a["p0_ev_node"], leaves)] = leaves[0]      # every leaf proof moved to one leaf


def _root_box(h: dict, a: dict) -> None:
    a["p0_roots_upper"][0, 2] = 0.4


def _drop_node(h: dict, a: dict) -> None:
    a["p0_split_dim"], a["p0_split_point"] = a["p0_split_dim"][:-1], a["p0_split_point"][:-1]


def _extra_node(h: dict, a: dict) -> None:
    a["p0_split_dim"] = np.append(a["p0_split_dim"], -1)
    a["p0_split_point"] = np.append(a["p0_split_point"], np.nan)


def _node_out_of_range(h: dict, a: dict) -> None:
    a["p0_ev_node"][0] = len(a["p0_split_dim"])


def _missing_array(h: dict, a: dict) -> None:
    del a["p0_slopes"]


def _wrong_version(h: dict, a: dict) -> None:
    h["version"] = 99


def _network_hash(h: dict, a: dict) -> None:
    h["network"]["sha256"] = "0" * 64


def _unsupported(h: dict, a: dict) -> None:
    h["properties"][0]["unsupported"] = "activation splits (issue 14)"


MUTATIONS: dict[str, tuple[Callable[[dict, dict], None], str]] = {
    "drop a leaf's evidence": (_drop_record, "has no proof that disjunct"),
    # a moved split makes boxes below it either unproven or impossible to split as listed
    "move a split point": (_move_split, "is not proven|is not inside the box"),
    "split point outside its box": (_split_outside, "is not inside the box"),
    "change a split dimension": (_change_dim, "is not proven|is not inside the box"),
    "slope above 1": (_slope_out_of_range, "outside [0, 1]"),
    "slope NaN": (_slope_nan, "outside [0, 1]"),
    "negative row weight": (_negative_weight, "weights must be"),
    "all row weights 0": (_zero_weights, "weights must be"),
    "evidence for the other disjunct": (_other_disjunct, "disjunct"),
    "all leaf evidence on one leaf": (_move_record, "has no proof|is not proven"),
    "root box changed": (_root_box, "root boxes are not"),
    "node dropped from the split list": (_drop_node, "ends inside the tree"),
    "node added to the split list": (_extra_node, "after the last tree"),
    "evidence points past the tree": (_node_out_of_range, "points outside"),
    "array missing": (_missing_array, "is missing"),
    "unknown version": (_wrong_version, "not a verirepair-certificate version 1"),
    "network hash edited": (_network_hash, "another network"),
    "section marked not certifiable": (_unsupported, "not certifiable"),
}


def test_every_tampering_is_rejected_with_its_reason(instance: dict, tmp_path: Path) -> None:
    tried = caught = 0
    for name, (mutate, reason) in MUTATIONS.items():
        header, arrays = _load(instance["cert"])
        mutate(header, arrays)
        path = _save(tmp_path / "tampered.npz", header, arrays)
        tried += 1
        with pytest.raises(Rejected, match=reason.replace("[", r"\[").replace("]", r"\]")) as info:
            check_certificate(path, instance["net"], instance["prop"])
        caught += 1
        assert "\n" not in str(info.value), name
    assert caught == tried == len(MUTATIONS)


def test_truncated_or_foreign_files_are_rejected(instance: dict, tmp_path: Path) -> None:
    data = instance["cert"].read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(Rejected, match="not a readable certificate"):
        check_certificate(tmp_path / "cut.npz", instance["net"], instance["prop"])
    with pytest.raises(Rejected, match="not a readable certificate"):
        check_certificate(instance["prop"], instance["net"], instance["prop"])


def test_other_network_or_property_files_are_rejected(instance: dict, tmp_path: Path) -> None:
    other_net = tmp_path / "other.onnx"
    model = onnx.load(str(instance["net"]))
    weight = model.graph.initializer[0]
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] += 0.25
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(other_net))
    with pytest.raises(Rejected, match="another network"):
        check_certificate(instance["cert"], other_net, instance["prop"])
    changed = tmp_path / "prop.vnnlib"
    changed.write_text(_property(0.7, 0.4553))                 # weaker threshold: violated
    with pytest.raises(Rejected, match="another property"):
        check_certificate(instance["cert"], instance["net"], changed)
    # the same edit with the header re-hashed: the bound itself fails now
    header, arrays = _load(instance["cert"])
    from verirepair.atomic import sha256_file
    header["property"]["sha256"] = sha256_file(changed)
    forged = _save(tmp_path / "forged.npz", header, arrays)
    with pytest.raises(Rejected, match="is not proven"):
        check_certificate(forged, instance["net"], changed)


# -- the pieces ---------------------------------------------------------------------

def test_outward_dot_products_enclose_the_exact_value() -> None:
    rng = np.random.default_rng(0)
    ops = Outward()
    for scale in (1e-300, 1.0, 1e200):
        X = rng.normal(size=(20, 30)) * scale
        Y = rng.normal(size=(30, 7))
        Y[:, 0] = -X[0] / scale           # heavy cancellation in one column
        lo, hi = ops.dot_lo(X, Y), ops.dot_hi(X, Y)
        for i in range(0, 20, 7):
            for j in range(7):
                exact = sum(Fraction(float(X[i, k])) * Fraction(float(Y[k, j])) for k in range(30))
                assert Fraction(float(lo[i, j])) <= exact <= Fraction(float(hi[i, j]))


def test_margins_are_below_sampled_values(instance: dict) -> None:
    raw = read_chain(instance["net"])
    net = load_network(instance["net"])
    prop = parse_vnnlib(instance["prop"])[0]
    rng = np.random.default_rng(1)
    lower = rng.uniform(-0.5, 0.3, (8, 5))
    upper = lower + rng.uniform(0.01, 0.2, (8, 5))
    poly = prop.unsafe[1]
    weights = rng.uniform(0, 1, (8, 3))
    margins, _ = evidence_margins(raw, lower, upper, np.repeat(poly.A[None], 8, 0), np.repeat(poly.b[None], 8, 0),
                                  weights, np.full((8, 24), np.nan))
    for i in range(8):
        y = net.forward(rng.uniform(lower[i], upper[i], (2000, 5)))
        assert margins[i] <= ((y @ poly.A.T - poly.b) @ weights[i]).min()


def test_the_reader_matches_the_network_and_names_unsupported_operators(tmp_path: Path) -> None:
    raw = read_chain(DATA / "demo.onnx")
    x = np.random.default_rng(2).uniform(-1, 1, (50, 5))
    h = x
    for W, b, relu in raw:
        h = h @ W.T + b
        h = np.maximum(h, 0) if relu else h
    np.testing.assert_allclose(h, load_network(DATA / "demo.onnx").forward(x), rtol=1e-12, atol=1e-12)
    model = onnx.load(str(DATA / "demo.onnx"))
    model.graph.node[1].op_type = "Sigmoid"
    onnx.save(model, str(tmp_path / "smooth.onnx"))
    with pytest.raises(NetworkRejected, match="Sigmoid.*unsupported operator; supported: MatMul"):
        read_chain(tmp_path / "smooth.onnx")


def test_cli_check_exit_codes(instance: dict, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "verirepair.cli", *args], capture_output=True, text=True,
                              timeout=120)

    ok = run("check", str(instance["cert"]), str(instance["net"]), str(instance["prop"]))
    assert ok.returncode == 0 and "CERTIFICATE ACCEPTED" in ok.stdout
    other = tmp_path / "p.vnnlib"
    other.write_text(_property(0.7, 0.4553))
    rejected = run("check", str(instance["cert"]), str(instance["net"]), str(other))
    assert rejected.returncode == 1 and rejected.stderr.count("\n") == 1 and "another property" in rejected.stderr
    missing = run("check", str(tmp_path / "nothing.npz"), str(instance["net"]), str(instance["prop"]))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_holds_on_a_smooth_network_says_why_there_is_no_certificate(tmp_path: Path) -> None:
    """The checker reads ReLU chains only: a tanh network's HOLDS stays a HOLDS, with no file and the reason."""
    from verirepair.network.activation import Activation, ActivationKind
    from verirepair.network.model import random_network
    from verirepair.network.onnx_io import save_onnx

    net = random_network([5, 8, 5], seed=3, activation=Activation(ActivationKind.TANH))
    net_path = save_onnx(net, tmp_path / "tanh.onnx")
    prop_path = tmp_path / "p.vnnlib"
    bound = float(np.abs(net.layers[-1].weight).sum(axis=1).max() + np.abs(net.layers[-1].bias).max()) + 1.0
    prop_path.write_text(HEAD + f"(assert (>= Y_0 {bound}))\n")     # |tanh| <= 1: never reached
    cert = tmp_path / "c.npz"
    done = certify(load_network(net_path), parse_vnnlib(prop_path), VerifyConfig(timeout_s=30), net_path,
                   prop_path, cert)
    assert done.result.verdict is Verdict.HOLDS
    assert done.path is None and not cert.exists()
    assert "Tanh" in done.reason and "unsupported operator" in done.reason


@pytest.mark.parametrize("arith", ["float", "exact"])
def test_layer_bounds_contain_exact_values_and_the_forward_pass_tightens_them(arith: str) -> None:
    from verirepair.checker.arith import Exact
    from verirepair.checker.leaf_bounds import Layer, layer_bounds
    rng = np.random.default_rng(3)
    sizes = [4, 12, 12, 12, 3]
    raw = [(rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m) * 0.1)
           for n, m in zip(sizes, sizes[1:], strict=False)]
    ops = Outward() if arith == "float" else Exact()
    layers = [Layer(ops.convert(W), ops.convert(b), k < len(raw) - 1) for k, (W, b) in enumerate(raw)]
    lower = rng.uniform(-1, 0.5, (3, 4))
    upper = lower + rng.uniform(0.1, 0.8, (3, 4))
    bounds = layer_bounds(ops, layers, ops.convert(lower), ops.convert(upper))
    for box in range(3):
        for x in rng.uniform(lower[box], upper[box], (6, 4)):
            h = [Fraction(float(v)) for v in x]
            for k, (W, b) in enumerate(raw):
                z = [sum((Fraction(float(w)) * v for w, v in zip(row, h, strict=True)), Fraction(float(c)))
                     for row, c in zip(W, b, strict=True)]
                lo, hi = bounds[k][0][box], bounds[k][1][box]
                assert all(Fraction(float(lo[j])) <= z[j] <= Fraction(float(hi[j])) for j in range(len(z)))
                h = [max(v, Fraction(0)) for v in z] if layers[k].relu else z
    # the last (linear) layer is never back-substituted: its bounds are interval arithmetic on the
    # previous layer's bounds intersected with the forward symbolic pass: never looser, tighter somewhere
    lo2, hi2 = (np.maximum(np.asarray(v, dtype=np.float64), 0) for v in bounds[-2][:2])
    W, b = raw[-1]
    interval_width = (np.maximum(W, 0) @ (hi2 - lo2).T - np.minimum(W, 0) @ (hi2 - lo2).T).T
    width = np.asarray(bounds[-1][1], dtype=np.float64) - np.asarray(bounds[-1][0], dtype=np.float64)
    assert (width <= interval_width * (1 + 1e-9)).all() and (width < 0.98 * interval_width).any()


def test_an_overflowing_bound_is_unbounded_never_nan() -> None:
    """inf - inf in a layer's interval sum must give an unstable unit with infinite bounds: a NaN
    bound would make the unit look stable and inactive, and the checker could accept a false proof."""
    import warnings

    from verirepair.checker.leaf_bounds import Layer, layer_bounds

    ops = Outward()
    big = np.finfo(np.float64).max / 2
    layers = [Layer(ops.convert(np.array([[big, big, -big]])), ops.convert(np.zeros(1)), True),
              Layer(ops.convert(np.array([[1.0]])), ops.convert(np.zeros(1)), False)]
    lower, upper = np.full((1, 3), 2.0), np.full((1, 3), 3.0)       # 2 big + 2 big - 3 big: inf - inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bounds = layer_bounds(ops, layers, ops.convert(lower), ops.convert(upper))
    lo, hi = bounds[0][0], bounds[0][1]
    assert not np.isnan(lo).any() and not np.isnan(hi).any()
    assert lo[0, 0] <= 0 <= hi[0, 0]
    assert not (bounds[1][0] > 0).any()        # nothing downstream is claimed positive


def _F(x: float) -> Fraction:
    return Fraction(float(x))


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e200])
def test_outward_error_bounds_cover_the_exact_rounding_errors(scale: float) -> None:
    """Each error bound of the float checker against the exact rational error of the float
    operation it covers: sums of non-negative terms, signed sums with cancellation, the
    back-substitution step (product and bias), the interval step, the forward step."""
    from verirepair.checker.leaf_bounds import _matmul
    rng = np.random.default_rng(7)
    ops = Outward()
    # non-negative sums and signed sums with heavy cancellation
    X = np.abs(rng.normal(size=(5, 40))) * scale
    X[0] = scale * np.r_[1.0, np.full(39, 0.9 * 2.0 ** -53)]     # every addition rounds down
    for i, value in enumerate(ops.nonneg_sum_hi(X.sum(axis=1), 40)):
        assert _F(value) >= sum(_F(v) for v in X[i])
    terms = [rng.normal(size=6) * scale, rng.normal(size=6), -rng.normal(size=6) * scale]
    terms.append(-(terms[0] + terms[1] + terms[2]))          # exact sum near 0
    low = ops.sum_lo(*terms)
    for j in range(6):
        assert _F(low[j]) <= sum(_F(t[j]) for t in terms)
    # one back-substitution step: P = A @ W and A @ b, used against |h| <= h_abs
    n, R, m, p = 2, 3, 9, 7
    A = rng.normal(size=(n, R, m)) * scale
    W, b = rng.normal(size=(m, p)), rng.normal(size=m)
    W[:, 0] = -A[0, 0] / scale                                # cancellation in one entry
    h_abs, z_abs = np.abs(rng.normal(size=(n, p))), np.abs(rng.normal(size=(n, m)))
    bound = ops.step_error_hi(A, ops.step_weights(np.abs(W), np.abs(b), h_abs, z_abs))
    P, Ab = _matmul(A, W), A @ b
    for i in range(n):
        for r in range(R):
            exact_P = [sum(_F(A[i, r, k]) * _F(W[k, j]) for k in range(m)) for j in range(p)]
            err = sum(abs(_F(P[i, r, j]) - exact_P[j]) * _F(h_abs[i, j]) for j in range(p))
            err += abs(_F(Ab[i, r]) - sum(_F(A[i, r, k]) * _F(b[k]) for k in range(m)))
            err += sum((2 * Fraction(2) ** -53 * abs(_F(A[i, r, k])) + Fraction(2) ** -1074) * _F(z_abs[i, k])
                       for k in range(m))                      # the entry-rounding allowance
            assert _F(bound[i, r]) >= err
    # interval step: the computed bounds enclose the exact interval image of the box
    lo = rng.normal(size=(n, p)) * scale
    hi = lo + np.abs(rng.normal(size=(n, p))) * scale
    lo[1], hi[1] = 1e3 * scale, (1e3 + 1e-9) * scale               # a narrow box far from 0: mid's product dominates
    zl, zu = ops.interval_affine(W, np.abs(W), b, lo, hi)
    for i in range(n):
        for j in range(m):
            exact_lo = sum(_F(w) * (_F(lo[i, k]) if w > 0 else _F(hi[i, k])) for k, w in enumerate(W[j])) + _F(b[j])
            exact_hi = sum(_F(w) * (_F(hi[i, k]) if w > 0 else _F(lo[i, k])) for k, w in enumerate(W[j])) + _F(b[j])
            assert _F(zl[i, j]) <= exact_lo and _F(zu[i, j]) >= exact_hi
    # forward step: F = X @ G and g @ X^T against |x| <= x_abs
    K, d = 6, 3
    Xf, G, g = rng.normal(size=(4, K)), rng.normal(size=(n, K, d)) * scale, rng.normal(size=(n, K)) * scale
    x_abs = np.abs(rng.normal(size=(n, d)))
    fbound = ops.forward_error_hi(np.abs(Xf), G, g, x_abs)
    F = _matmul(G.transpose(0, 2, 1), Xf.T).transpose(0, 2, 1)
    gX = g @ Xf.T
    for i in range(n):
        for u in range(4):
            err = sum(abs(_F(F[i, u, e]) - sum(_F(Xf[u, k]) * _F(G[i, k, e]) for k in range(K))) * _F(x_abs[i, e])
                      for e in range(d))
            err += abs(_F(gX[i, u]) - sum(_F(g[i, k]) * _F(Xf[u, k]) for k in range(K)))
            assert _F(fbound[i, u]) >= err
