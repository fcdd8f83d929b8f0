"""Thin margins over whole regions: what limits the repair of N1,9 phi7 and N2,9 phi8.

Opt-in measurement (not in CI), three parts, each writing CSV rows:

* ``ties``   -- uniform samples of a property's region on the *original*
  network: the share of the region where the property's violation score is
  within ``t`` of zero.  A repair that adds a margin ``m`` must then prove a
  margin of about ``m`` on that share of the region.
* ``shift``  -- N1,9 with the biases of outputs 3 and 4 (strong left / strong
  right) raised by ``delta``: the simplest repair of phi7, with its margin
  ``delta`` almost everywhere.  Verified with plain CROWN intermediate bounds
  and with optimised ones (:mod:`verirepair.verify.intermediate_alpha`).
* ``depth``  -- the shifted N1,9 (``--deltas``, first value) searched with
  plain bounds for ``--timeout`` seconds; per split depth, the open boxes'
  unstable-unit count by the bounds, and how many of (up to 40 of) them the
  optimised intermediate bounds close, at what cost per box.
* ``ab``     -- ACAS Xu instances verified with and without the optimised
  intermediate bounds, alternated in one process (CPU time, sub-boxes, verdicts).
* ``table``  -- one row per network of ``repair_acasxu.csv``: the recorded
  change, that of ``repair_acasxu_newcore.csv``, and that of the ``repair``
  runs' CSVs given with ``--after`` (comma-separated).
* ``repair`` -- ``benchmarks/bench_repair_acasxu.py`` (its options follow
  ``--``) with the optimised intermediate bounds switched on in the verifier.
* ``cover``  -- the ``cover`` strategy's LP alone (:class:`verirepair.repair.cover.CoverProblem`)
  on one property of N1,9 / N2,9 (no pool, no preservation): the proven
  change per refinement round and cover size, plus the "sign floor" of the
  rows it settles on (the sum of the negative entries of ``w_i - w_j``: the
  change that makes a row's coefficients nonnegative, which the bounds can
  then prove without deciding any last-layer unit).  Round 0 is the strategy's first
  LP: the row search (:meth:`~verirepair.repair.cover.CoverProblem.search_rows`);
  ``l1_each_box_own_row`` is the change without it.
* ``floor``  -- N1,9 phi7: the last hidden layer's units that no sample of the
  region activates ("dead"), the smallest output-layer change that makes the
  coefficients of some convex combination ``y_t - sum_j l_j y_j`` (``l`` on a
  0.1 grid of the simplex, one per polytope) nonnegative on those units (an LP
  per grid point: the change a proof needs when it cannot bound those units),
  and how far the verifier gets proving upper bounds ``z_k <= U`` of a few of
  them on the whole region (``--timeout`` each).

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py ties --csv ties.csv
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py shift --deltas 4,2 --csv s.csv
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py ab --instances 3_3:2,4_2:2 --csv ab.csv
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py repair --csv r.csv -- --only 1_9 \\
        --no-cross-check --timeout 900 --verify-timeout 60 --md r.md
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py cover --rounds 8 --csv c.csv
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_thin_margins.py floor --timeout 30 --csv f.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from verirepair.certify_loop import float32_exact
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.tasks.acasxu.physical import default_vnnlib_dir
from verirepair.tolerances import BOUND_TOL
from verirepair.verify import VerifyConfig, bab, verify

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_verify_smooth import _write_csv  # noqa: E402 -- a sibling benchmark script's CSV writer

#: (network key, property number) pairs of the ``ties`` part.
TIE_CASES = (("1_9", 7), ("2_9", 8), ("2_9", 2))
TIE_THRESHOLDS = (1e-3, 1e-2, 5e-2, 0.1, 0.5)
#: The setting of :data:`verirepair.verify.bab.INTERMEDIATE_ALPHA_AFTER` for "tightened".
TIGHTEN_AFTER = 2048


def _load(key: str, number: int):
    network = load_network(acasxu_nets.onnx_path(acasxu_nets.network_info(key).name))
    return network, parse_vnnlib(default_vnnlib_dir() / f"prop_{number}.vnnlib")


def ties(samples: int, seed: int) -> list[dict]:
    """Share of each region whose violation score on the original network is above ``-t``."""
    rows = []
    for key, number in TIE_CASES:
        network, props = _load(key, number)
        rng = np.random.default_rng(seed)
        scores = np.concatenate([p.violation_score(network.forward(p.sample_inputs(rng, samples)))
                                 for p in props])
        row: dict = {"network": key, "property": number, "samples": scores.size,
                     "max_violation_score": float(scores.max())}
        for t in TIE_THRESHOLDS:
            row[f"share_within_{t:g}"] = float((scores > -t).mean())
        rows.append(row)
    return rows


def _verify(network, props, timeout_s: float, tighten: bool) -> tuple:
    bab.INTERMEDIATE_ALPHA_AFTER = TIGHTEN_AFTER if tighten else None
    cpu = time.process_time()
    result = verify(network, props, VerifyConfig(timeout_s=timeout_s), engine="own-input")
    return result, time.process_time() - cpu


def shift(deltas: list[float], timeout_s: float) -> list[dict]:
    """N1,9 with outputs 3 and 4 raised by ``delta``, phi7, plain vs tightened."""
    rows = []
    for delta in deltas:
        shifted, props = _shifted_n19(delta)
        for tighten in (False, True):
            result, cpu = _verify(shifted, props, timeout_s, tighten)
            rows.append({"delta": delta, "l1_change": 2 * delta, "intermediate": "alpha" if tighten else "crown",
                         "verdict": result.verdict.value, "time_s": round(result.stats.time_s, 2),
                         "cpu_s": round(cpu, 2), "subproblems": result.stats.subproblems,
                         "max_depth": result.stats.max_depth})
            print(rows[-1], flush=True)
    return rows


def _shifted_n19(delta: float):
    network, props = _load("1_9", 7)
    last = network.layers[-1]
    bias = last.bias.copy()
    bias[3:5] += delta
    return float32_exact(network.replace_layer(network.n_layers - 1, last.weight, bias)), props


def depth(delta: float, timeout_s: float, per_depth: int = 40) -> list[dict]:
    """Open boxes of a plain search by depth: unstable units, and what tightening closes."""
    from verirepair.verify.alpha_crown import optimize_spec_lower
    from verirepair.verify.intermediate_alpha import tighten_intermediate
    from verirepair.verify.search_state import SpecRows

    network, props = _shifted_n19(delta)
    prop = props[0]
    seen: dict[int, list] = {}
    counts: dict[int, list[int]] = {}
    split = bab.BranchAndBound.split

    def recording_split(self, stack, batch):  # noqa: ANN001, ANN202 -- a benchmark probe
        unstable = sum(((lo < 0) & (hi > 0)).sum(axis=1) for lo, hi in zip(batch.pre_l[:-1], batch.pre_u[:-1],
                                                                              strict=True))
        for i in range(len(batch)):
            d = int(batch.depth[i])
            counts.setdefault(d, []).append(int(unstable[i]))
            if len(seen.setdefault(d, [])) < per_depth:
                seen[d].append((batch.lower[i].copy(), batch.upper[i].copy(),
                                [a[i].copy() for a in batch.pre_l], [a[i].copy() for a in batch.pre_u]))
        return split(self, stack, batch)

    bab.INTERMEDIATE_ALPHA_AFTER = None
    bab.BranchAndBound.split = recording_split
    try:
        bab.search(network, prop, VerifyConfig(timeout_s=timeout_s), time.perf_counter() + timeout_s)
    finally:
        bab.BranchAndBound.split = split
    spec = SpecRows.of(prop)
    rows = []
    for d in sorted(seen):
        boxes = seen[d]
        lower = np.stack([b[0] for b in boxes])
        upper = np.stack([b[1] for b in boxes])
        layers = range(len(boxes[0][2]))
        pre_l = [np.stack([b[2][j] for b in boxes]) for j in layers]
        pre_u = [np.stack([b[3][j] for b in boxes]) for j in layers]
        start = time.perf_counter()
        new_l, new_u = tighten_intermediate(network, lower, upper, pre_l, pre_u)
        cost = (time.perf_counter() - start) / len(boxes)
        bound, _ = optimize_spec_lower(network, new_l, new_u, spec.C, lower, upper, bab.ALPHA_STEPS)
        poly_margin, _ = spec.best_rows(bound - spec.b - BOUND_TOL)
        unstable_after = sum(((lo < 0) & (hi > 0)).sum(axis=1) for lo, hi in zip(new_l[:-1], new_u[:-1],
                                                                                 strict=True))
        rows.append({"depth": d, "open_boxes": len(counts[d]),
                     "median_unstable_crown": float(np.median(counts[d])),
                     "sampled_boxes": len(boxes), "median_unstable_alpha": float(np.median(unstable_after)),
                     "closed_by_alpha": int((poly_margin > 0).all(axis=1).sum()),
                     "alpha_ms_per_box": round(1000 * cost, 1)})
        print(rows[-1], flush=True)
    return rows


def ab(instances: list[tuple[str, int]], timeout_s: float) -> list[dict]:
    """Each instance four times: plain, tightened, tightened, plain (CPU time of this process)."""
    rows = []
    for key, number in instances:
        network, props = _load(key, number)
        for rep, tighten in enumerate((False, True, True, False)):
            result, cpu = _verify(network, props, timeout_s, tighten)
            rows.append({"network": key, "property": number, "repeat": rep,
                         "intermediate": "alpha" if tighten else "crown", "verdict": result.verdict.value,
                         "cpu_s": round(cpu, 3), "subproblems": result.stats.subproblems})
            print(rows[-1], flush=True)
    return rows


def table(after_paths: list[Path]) -> list[dict]:
    """Recorded, newcore and tightened-run changes per network (see the module docstring)."""
    results = Path(__file__).resolve().parent / "results"

    def read(path: Path) -> dict[str, dict]:
        with open(path, newline="") as handle:
            return {r["network"]: r for r in csv.DictReader(handle)}

    recorded, newcore = read(results / "repair_acasxu.csv"), read(results / "repair_acasxu_newcore.csv")
    after: dict[str, dict] = {}
    for path in after_paths:
        after.update(read(path))
    rows = []
    for name, old in recorded.items():
        new, run = newcore.get(name, {}), after.get(name)
        rows.append({"network": name, "instances": old["instances"],
                     "status_recorded": old["status"], "l1_recorded": old["l1"], "time_s_recorded": old["time_s"],
                     "status_newcore": new.get("status_now", ""), "l1_newcore": new.get("l1_now", ""),
                     "time_s_newcore": new.get("time_s_now", ""),
                     "status_tightened": run["status"] if run else "not run",
                     "l1_tightened": run["l1"] if run else "", "rounds_tightened": run["rounds"] if run else "",
                     "time_s_tightened": run["time_s"] if run else ""})
    return rows


COVER_CASES = (("1_9", 7), ("2_9", 8), ("2_9", 2))


def cover(rounds: int, per_round: int) -> list[dict]:
    """The cover LP alone, per case: proven change and cover size after each refinement round."""
    from verirepair.repair import cover as cover_lp
    from verirepair.repair.config import RepairConfig
    from verirepair.solvers.registry import get_backend

    rows = []
    for key, number in COVER_CASES:
        network, props = _load(key, number)
        cpu = time.process_time()
        problem = cover_lp.CoverProblem(network, tuple(props), (1e-3,) * len(props), (True,) * len(props),
                                        np.zeros((0, 5)), np.zeros((0, 5)), "argmin", RepairConfig(solver="highs"))
        backend = get_backend("highs")
        W = network.layers[-1].weight
        natural = cover_lp.CoverProblem(network, tuple(props), (1e-3,) * len(props), (True,) * len(props),
                                        np.zeros((0, 5)), np.zeros((0, 5)), "argmin", RepairConfig(solver="highs"))
        own_row = natural.solve(backend, time.perf_counter() + 300)[1]
        for index in range(rounds + 1):
            solve = problem.search_rows if index == 0 else problem.solve
            status, objective, *_ = solve(backend, time.perf_counter() + 300)
            rows_used = sorted({int(r) for row, _ in problem.last_choices for r in np.unique(row)})
            spec = problem.specs[0]
            floor = sum(float(np.maximum(-(spec.C[r] @ W), 0.0).sum()) for r in rows_used)
            rows.append({"network": key, "property": number, "round": index, "boxes": problem.n_boxes(),
                         "status": status.value, "l1_change": objective, "rows_used": len(rows_used),
                         "sign_floor_of_rows_used": round(floor, 4),
                         "l1_each_box_own_row": own_row if index == 0 else "",
                         "searched_rows": " ".join(str(int(r)) for r in problem.searched[0]),
                         "cpu_s": round(time.process_time() - cpu, 2)})
            print(rows[-1], flush=True)
            if not status.has_solution or index == rounds or cover_lp._refine(problem, per_round) == 0:
                break
    return rows


def floor(samples: int, seed: int, timeout: float) -> list[dict]:
    """N1,9 phi7: dead last-layer units, the change a proof that cannot bound them needs, lemmas."""
    import itertools

    from scipy.optimize import linprog

    from verirepair.network.model import AffineLayer, Network
    from verirepair.properties.property import Box, HalfSpaces, Property

    network, (prop,) = _load("1_9", 7)
    rng = np.random.default_rng(seed)
    x = prop.sample_inputs(rng, samples)
    z = network.forward_all(x)
    # acts[-3] feeds the last hidden layer: its pre-activation, recomputed
    last = network.layers[-2]
    pre = z[-3] @ last.weight.T + last.bias
    dead = np.flatnonzero(pre.max(axis=0) <= 0.0)
    W = network.layers[-1].weight
    rows: list[dict] = [{"part": "dead_units", "units": " ".join(map(str, dead)), "count": dead.size,
                         "max_pre_activation": round(float(pre[:, dead].max()), 4),
                         "samples": samples}]
    print(rows[-1], flush=True)

    def cheapest(units: np.ndarray, l3: np.ndarray, l4: np.ndarray) -> float:
        # min ||D||_1 (columns of ``units``) s.t. (w_t + d_t) - sum_j l_j (w_j + d_j) >= 0 there
        n, k = units.size, W.shape[0]
        A, rhs = [], []
        for target, weights in ((3, l3), (4, l4)):
            a = np.zeros(k)
            a[target] = 1.0
            a[:3] -= weights
            for i, unit in enumerate(units):
                row = np.zeros(2 * k * n)
                row[np.arange(k) * n + i] = -a
                row[k * n + np.arange(k) * n + i] = a
                A.append(row)
                rhs.append(a @ W[:, unit])
        out = linprog(np.ones(2 * k * n), A_ub=np.array(A), b_ub=np.array(rhs), bounds=(0, None),
                      method="highs")
        return float(out.fun)

    grid = [np.array(v) / 10 for v in itertools.product(range(11), repeat=3) if sum(v) == 10]
    for label, units in (("dead units", dead), ("all units", np.arange(W.shape[1]))):
        best = min((cheapest(units, a, b), tuple(a), tuple(b)) for a in grid for b in grid)
        rows.append({"part": "sign_floor", "units": label, "count": units.size,
                     "l1_change": round(best[0], 4), "weights_y3": " ".join(f"{w:g}" for w in best[1]),
                     "weights_y4": " ".join(f"{w:g}" for w in best[2])})
        print(rows[-1], flush=True)
    # Lemmas: z_k <= U on the whole region, for the dead units the sampled maximum puts closest to 0.
    layers = list(network.layers[:-1])
    layers[-1] = AffineLayer(last.weight, last.bias)
    truncated = Network(tuple(layers), "N1,9 last hidden layer")
    box = prop.input_boxes[0]
    closest = dead[np.argsort(-pre[:, dead].max(axis=0))][:3]
    for unit in closest:
        for bound in (5.0, 1.0, 0.1):
            A = np.zeros((1, last.out_features))
            A[0, unit] = -1.0
            lemma = Property((Box(box.lower, box.upper),), (HalfSpaces(A, np.array([-bound])),),
                             f"z{unit}<={bound}")
            start = time.perf_counter()
            result = verify(truncated, [lemma], VerifyConfig(timeout_s=timeout))
            rows.append({"part": "lemma", "units": int(unit), "bound": bound,
                         "max_pre_activation": round(float(pre[:, unit].max()), 4),
                         "verdict": result.verdict.value, "time_s": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key, "") for key in fields} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ties", "shift", "depth", "ab", "table", "repair", "cover", "floor"))
    parser.add_argument("--rounds", type=int, default=8, help="cover: refinement rounds")
    parser.add_argument("--per-round", type=int, default=256, help="cover: boxes halved per round")
    parser.add_argument("--after", default="", help="table: CSVs of repair runs, comma-separated")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=200_000, help="ties: samples per region")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deltas", default="4,2,1,0.5", help="shift: bias increases")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per verification")
    parser.add_argument("--instances", default="3_3:2,4_2:2,1_1:6,3_3:9",
                        help="ab: network:property pairs")
    argv = sys.argv[1:] if argv is None else list(argv)
    # repair: everything after "--" goes to bench_repair_acasxu.py unparsed
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.part == "repair":
        import bench_repair_acasxu

        bab.INTERMEDIATE_ALPHA_AFTER = TIGHTEN_AFTER
        print(f"load average at start: {os.getloadavg()}", flush=True)
        code = bench_repair_acasxu.main(["--out", str(args.csv), *rest])
        print(f"load average at end: {os.getloadavg()}", flush=True)
        return code
    print(f"load average at start: {os.getloadavg()}", flush=True)
    if args.part == "ties":
        rows = ties(args.samples, args.seed)
    elif args.part == "table":
        rows = table([Path(p) for p in args.after.split(",") if p])
    elif args.part == "depth":
        rows = depth(float(args.deltas.split(",")[0]), args.timeout)
    elif args.part == "shift":
        rows = shift([float(d) for d in args.deltas.split(",")], args.timeout)
    elif args.part == "cover":
        rows = cover(args.rounds, args.per_round)
    elif args.part == "floor":
        rows = floor(args.samples, args.seed, args.timeout)
    else:
        pairs = [(k, int(p)) for k, p in (item.split(":") for item in args.instances.split(","))]
        rows = ab(pairs, args.timeout)
    _write_csv(rows, args.csv)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
