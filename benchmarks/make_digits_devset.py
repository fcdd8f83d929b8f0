"""Build the wide-input development set: ReLU networks on scikit-learn digits, L-inf robustness.

Seeded and deterministic (torch CPU, one thread).  Writes, outside git by
default (``/work/wt/artifacts/digits_devset/``, ``--out`` to change it)::

    nets/<name>.onnx            clean Gemm/Relu graphs (verirepair.network.save_onnx)
    props/<name>_img<i>_eps<e>.vnnlib
    instances.csv               VNN-COMP style: onnx,vnnlib,timeout (paths relative to --out)
    manifest.json               per network: sizes, test accuracy; per instance: image, label, eps

Networks (``NETWORKS``): the 8x8 images (64 inputs in [0, 1]) and the same
images upsampled bilinearly to 28x28 (784 inputs), with 2-6 hidden layers of
64-256 ReLUs, trained by Adam on 1400 images and tested on the remaining 397.
Properties: around each of the first ``--images`` test images that the
network classifies correctly, the box ``[x - eps, x + eps]`` clipped to
``[0, 1]``, unsafe when some other class scores at least the label's
(``Y_label - Y_j <= 0``, one polytope per class ``j``).  So "holds" means
robust at that radius.

Usage (needs scikit-learn for ``load_digits``)::

    OMP_NUM_THREADS=1 python benchmarks/make_digits_devset.py [--out DIR] [--images 5] \\
        [--eps 0.01,0.03,0.06] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.network import save_onnx
from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.vnnlib_write import save_vnnlib

DEFAULT_OUT = Path("/work/wt/artifacts/digits_devset")
#: name -> (side of the square image, hidden widths)
NETWORKS: dict[str, tuple[int, tuple[int, ...]]] = {
    "d8_2x64": (8, (64, 64)),
    "d8_3x128": (8, (128, 128, 128)),
    "d8_4x256": (8, (256, 256, 256, 256)),
    "d28_2x256": (28, (256, 256)),
    "d28_4x128": (28, (128, 128, 128, 128)),
    "d28_6x64": (28, (64, 64, 64, 64, 64, 64)),
}
SEED = 0
N_TRAIN = 1400
EPOCHS = 60
LR = 1e-3


def _images(side: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (n, side*side) floats in [0, 1] and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("make_digits_devset: needs scikit-learn (pip install scikit-learn) for load_digits")
    import torch

    digits = load_digits()
    x = digits.images.astype(np.float64) / 16.0
    if side != 8:
        t = torch.from_numpy(x[:, None]).float()
        t = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
        x = t.numpy()[:, 0].astype(np.float64).clip(0.0, 1.0)
    return x.reshape(x.shape[0], -1), digits.target.astype(np.int64)


def _train(x: np.ndarray, y: np.ndarray, hidden: tuple[int, ...], seed: int) -> Network:
    import torch

    torch.manual_seed(seed)
    sizes = [x.shape[1], *hidden, 10]
    mods: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x[:N_TRAIN]).float(), torch.from_numpy(y[:N_TRAIN])
    gen = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        perm = torch.randperm(N_TRAIN, generator=gen)
        for start in range(0, N_TRAIN, 64):
            idx = perm[start:start + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    layers = tuple(AffineLayer(m.weight.detach().double().numpy(), m.bias.detach().double().numpy(),
                               i < len(linears) - 1) for i, m in enumerate(linears))
    return Network(layers)


def robustness_property(x: np.ndarray, label: int, eps: float, n_classes: int, name: str) -> Property:
    """L-inf ball of radius ``eps`` around ``x`` (clipped to [0, 1]); unsafe: another class >= label."""
    box = Box(np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0))
    polys = []
    for j in range(n_classes):
        if j != label:
            a = np.zeros(n_classes)
            a[label], a[j] = 1.0, -1.0
            polys.append(HalfSpaces(a[None, :], np.zeros(1)))
    return Property((box,), tuple(polys), name)


def build(out: Path, images: int, eps_list: list[float], timeout: float) -> dict:
    import torch

    torch.set_num_threads(1)
    (out / "nets").mkdir(parents=True, exist_ok=True)
    (out / "props").mkdir(parents=True, exist_ok=True)
    manifest: dict = {"seed": SEED, "networks": {}, "instances": []}
    rows = []
    for k, (name, (side, hidden)) in enumerate(NETWORKS.items()):
        x, y = _images(side)
        net = _train(x, y, hidden, SEED + k).with_name(name)
        pred = net.forward(x[N_TRAIN:]).argmax(axis=1)
        acc = float((pred == y[N_TRAIN:]).mean())
        save_onnx(net, out / "nets" / f"{name}.onnx", keep_graph=False)
        manifest["networks"][name] = {"inputs": side * side, "hidden": list(hidden), "test_accuracy": acc}
        chosen = [i for i in range(N_TRAIN, x.shape[0]) if pred[i - N_TRAIN] == y[i]][:images]
        for i in chosen:
            for eps in eps_list:
                stem = f"{name}_img{i}_eps{eps:g}"
                prop = robustness_property(x[i], int(y[i]), eps, 10, stem)
                save_vnnlib(prop, out / "props" / f"{stem}.vnnlib",
                            comment=f"digits image {i} (label {y[i]}), L-inf eps {eps:g}, network {name}")
                rows.append(f"nets/{name}.onnx,props/{stem}.vnnlib,{timeout:g}")
                manifest["instances"].append({"network": name, "image": i, "label": int(y[i]),
                                              "eps": eps, "vnnlib": f"props/{stem}.vnnlib"})
        print(f"{name}: {side * side} inputs, hidden {hidden}, test accuracy {acc:.3f}", flush=True)
    write_text_atomic(out / "instances.csv", "\n".join(rows) + "\n")
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--images", type=int, default=5, help="test images per network")
    ap.add_argument("--eps", default="0.01,0.03,0.06", help="comma-separated L-inf radii")
    ap.add_argument("--timeout", type=float, default=120.0, help="timeout column of instances.csv")
    args = ap.parse_args(argv)
    eps_list = [float(e) for e in args.eps.split(",")]
    manifest = build(args.out, args.images, eps_list, args.timeout)
    print(f"{len(manifest['instances'])} instances in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
