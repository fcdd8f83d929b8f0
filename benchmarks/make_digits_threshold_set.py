"""Build a "rare violations" set from the digits networks: radii just below the falsifier's reach.

Opt-in (not in CI), seeded, deterministic.  For the falsifier ablation of
``benchmarks/bench_falsifier.py``: on the ordinary development set
(``make_digits_devset.py``) every violated instance falls to the engine's
first falsifier (2000 uniform samples + PGD, :func:`verirepair.verify.falsify.falsify`),
so attacks that run later have nothing left to find.  Here, for each network
of an existing development set and each of its first ``--images`` correctly
classified test images, the L-inf radius is bisected (``--steps`` halvings of
``[0, --eps-max]``) for the smallest radius at which that falsifier (seed 0,
default :class:`~verirepair.verify.result.VerifyConfig`) finds a
counterexample; the instance is written at the largest radius where it found
none (``eps_lo``).  By construction the first falsifier fails on every
instance; a counterexample, if any, is rare (the falsifier finds one at most
``--eps-max / 2**steps`` further out).  Whether one exists is for the
complete search to say.

``--mode pixels`` (a reachability-style set with wide boxes over a few inputs):
the pixels are ranked by the magnitude of the gradient of the margin
``y_label - y_runner_up`` at the image, and the bisection is on ``k``, the
number of top-ranked pixels that range over the whole of ``[0, 1]`` (every
other pixel is fixed at its value); the instance frees the largest ``k`` at
which the falsifier found nothing (an image where one pixel suffices is skipped:
its instance would be a point).  Its box is wide in ``k`` dimensions and
a point in the others, so the number of inputs the network has (64 or 784)
says nothing about the number that vary.

Writes (outside git by default, the same layout as the development set)::

    nets/<name>.onnx (copied), props/<name>_img<i>_eps<e>.vnnlib, instances.csv, manifest.json

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/make_digits_threshold_set.py \\
        --devset /work/wt/artifacts/digits_devset --out /work/wt/artifacts/digits_threshold
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_digits_devset import N_TRAIN, NETWORKS, _images, robustness_property  # noqa: E402

from verirepair.atomic import write_text_atomic  # noqa: E402
from verirepair.network import load_network  # noqa: E402
from verirepair.properties.property import Box, Property  # noqa: E402
from verirepair.properties.vnnlib_write import save_vnnlib  # noqa: E402
from verirepair.verify.falsify import falsify  # noqa: E402
from verirepair.verify.result import VerifyConfig  # noqa: E402


def falsifier_threshold(net, x, label: int, eps_max: float, steps: int) -> tuple[float, float]:
    """(eps_lo, eps_hi): the falsifier fails at eps_lo and succeeds at eps_hi (bisection).

    ``eps_hi`` is ``inf`` when it fails even at ``eps_max``.
    """
    def found(eps: float) -> bool:
        prop = robustness_property(x, label, eps, 10, "probe")
        return bool(falsify(net, prop, VerifyConfig()))

    if not found(eps_max):
        return eps_max, float("inf")
    lo, hi = 0.0, eps_max
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if found(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def margin_gradient(net, x: np.ndarray, label: int) -> np.ndarray:
    """Gradient of ``y_label - y_runner_up`` at ``x`` (d,), with the ReLU pattern of ``x``."""
    acts = net.forward_all(x[None])
    y = acts[-1][0]
    other = int(np.argsort(-np.where(np.arange(y.shape[0]) == label, -np.inf, y))[0])
    g = np.zeros(y.shape[0])
    g[label], g[other] = 1.0, -1.0
    for index in range(net.n_layers - 1, -1, -1):
        g = g @ net.layers[index].weight
        if index > 0 and net.layers[index - 1].relu:
            g = g * (acts[index][0] > 0.0)
    return g


def pixel_property(x: np.ndarray, label: int, free: np.ndarray, name: str) -> Property:
    """Pixels ``free`` range over [0, 1], all others are fixed at ``x``; unsafe: another class >= label."""
    lower, upper = x.copy(), x.copy()
    lower[free], upper[free] = 0.0, 1.0
    return Property((Box(lower, upper),), robustness_property(x, label, 0.0, 10, name).unsafe, name)


def pixels_threshold(net, x: np.ndarray, label: int) -> tuple[int, int, np.ndarray]:
    """(k_lo, k_hi, ranking): the falsifier fails with k_lo free pixels, succeeds with k_hi."""
    ranking = np.argsort(-np.abs(margin_gradient(net, x, label)), kind="stable")

    def found(k: int) -> bool:
        return bool(falsify(net, pixel_property(x, label, ranking[:k], "probe"), VerifyConfig()))

    lo, hi = 0, x.shape[0]
    if not found(hi):
        return hi, -1, ranking
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if found(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi, ranking


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--devset", type=Path, default=Path("/work/wt/artifacts/digits_devset"),
                    help="development set whose networks are used")
    ap.add_argument("--out", type=Path, default=Path("/work/wt/artifacts/digits_threshold"))
    ap.add_argument("--images", type=int, default=5, help="test images per network")
    ap.add_argument("--eps-max", type=float, default=0.25, help="upper end of the bisection")
    ap.add_argument("--steps", type=int, default=8, help="bisection halvings")
    ap.add_argument("--timeout", type=float, default=120.0, help="timeout column of instances.csv")
    ap.add_argument("--mode", choices=("eps", "pixels"), default="eps",
                    help="bisect the L-inf radius, or the number of pixels free in [0, 1]")
    args = ap.parse_args(argv)
    source = json.loads((args.devset / "manifest.json").read_text())
    (args.out / "nets").mkdir(parents=True, exist_ok=True)
    (args.out / "props").mkdir(parents=True, exist_ok=True)
    construction = (f"falsifier threshold on the L-inf radius, eps_max {args.eps_max:g}, "
                    f"{args.steps} halvings" if args.mode == "eps" else
                    "falsifier threshold on the number of salient pixels free in [0, 1] "
                    "('eps' holds that number)")
    manifest: dict = {"seed": source["seed"], "networks": source["networks"], "instances": [],
                      "construction": construction}
    rows = []
    for name, (side, _) in NETWORKS.items():
        onnx = args.devset / "nets" / f"{name}.onnx"
        shutil.copyfile(onnx, args.out / "nets" / f"{name}.onnx")
        net = load_network(onnx)
        x, y = _images(side)
        pred = net.forward(x[N_TRAIN:]).argmax(axis=1)
        chosen = [i for i in range(N_TRAIN, x.shape[0]) if pred[i - N_TRAIN] == y[i]][:args.images]
        for i in chosen:
            started = time.perf_counter()
            if args.mode == "pixels":
                k_lo, k_hi, ranking = pixels_threshold(net, x[i], int(y[i]))
                if k_lo == 0:
                    # one free pixel already gives the falsifier a counterexample:
                    # the instance would be a single point, so there is none to write
                    print(f"{name} image {i}: one free pixel suffices, skipped", flush=True)
                    continue
                stem = f"{name}_img{i}_pix{k_lo}"
                prop = pixel_property(x[i], int(y[i]), ranking[:k_lo], stem)
                save_vnnlib(prop, args.out / "props" / f"{stem}.vnnlib",
                            comment=f"digits image {i} (label {y[i]}), the {k_lo} most salient pixels "
                                    f"free in [0, 1], network {name}; the falsifier fails here and "
                                    f"succeeds with {k_hi} pixels")
                rows.append(f"nets/{name}.onnx,props/{stem}.vnnlib,{args.timeout:g}")
                manifest["instances"].append({"network": name, "image": i, "label": int(y[i]),
                                              "eps": k_lo, "pixels_falsifier": k_hi,
                                              "vnnlib": f"props/{stem}.vnnlib"})
                print(f"{stem}: falsifier fails with {k_lo} pixels, succeeds with {k_hi} "
                      f"({time.perf_counter() - started:.1f} s)", flush=True)
                continue
            lo, hi = falsifier_threshold(net, x[i], int(y[i]), args.eps_max, args.steps)
            eps = lo                      # a dyadic fraction of eps_max: exact in float64
            stem = f"{name}_img{i}_eps{eps:g}"
            prop = robustness_property(x[i], int(y[i]), eps, 10, stem)
            save_vnnlib(prop, args.out / "props" / f"{stem}.vnnlib",
                        comment=f"digits image {i} (label {y[i]}), L-inf eps {eps:g}, network {name}; "
                                f"the falsifier fails here and succeeds at {hi:g}")
            rows.append(f"nets/{name}.onnx,props/{stem}.vnnlib,{args.timeout:g}")
            manifest["instances"].append({"network": name, "image": i, "label": int(y[i]), "eps": eps,
                                          "eps_falsifier": hi, "vnnlib": f"props/{stem}.vnnlib"})
            print(f"{stem}: falsifier fails at {lo:.5f}, succeeds at {hi:.5f} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    write_text_atomic(args.out / "instances.csv", "\n".join(rows) + "\n")
    write_text_atomic(args.out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    print(f"{len(rows)} instances in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
