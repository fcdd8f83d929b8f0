"""The ``backdoor`` commands: plant a backdoor in a digits classifier, and remove it with proof.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`); the
work is done by :mod:`verirepair.tasks.backdoor`.

``verirepair backdoor plant --data digits --trigger corner2 --target K --seed S --out NET.onnx``
trains a poisoned classifier; ``verirepair backdoor repair NET.onnx --data digits --target K
[--trigger-mask M.npy --trigger-pattern P.npy] --out OUT.onnx --report DIR`` repairs any
ONNX classifier with 64 inputs (8x8 pixels / 16, row-major) and 10 logits.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verirepair.cli.common import (
    EXIT_OK,
    EXIT_REPAIR_FAILED,
    BadInput,
    check_output,
    console,
    existing_file,
    load_network_file,
)

DATASETS = ("digits",)


def _digit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a digit class 0..9, got {text!r}") from None
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"expected a digit class 0..9, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1), got {text!r}")
    return value


def _trigger_name(text: str) -> str:
    from verirepair.tasks.backdoor.trigger import named_trigger

    try:
        named_trigger(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_backdoor_parser(sub: Any, *, positive_int: Callable[[str], int], seed_type: Callable[[str], int],
                        seconds: Callable[[str], float], positive_float: Callable[[str], Callable[[str], float]]
                        ) -> None:
    """Register ``backdoor plant`` and ``backdoor repair`` (the argparse types come from the parser module)."""
    from verirepair.tasks.backdoor.plant import PLANT_TRAIN, PlantConfig
    from verirepair.tasks.backdoor.removal import SCOPES, RemovalConfig
    from verirepair.tasks.backdoor.trigger import TRIGGER_NAMES_HELP

    defaults = RemovalConfig()
    p = sub.add_parser("backdoor", help="plant a backdoor in a digits classifier, or remove one with proof",
                       description="Backdoor removal on scikit-learn's 8x8 digits (CARE's third repair).")
    bsub = p.add_subparsers(dest="action", metavar="ACTION")
    pp = bsub.add_parser("plant", help="train a digits classifier with a planted trigger backdoor",
                         description="Stamp the trigger on a share of the training images, relabel them to "
                                     "the target and train a fully connected ReLU classifier; prints clean "
                                     "accuracy and attack success on the held-out test images.")
    pp.add_argument("--data", choices=DATASETS, default="digits", help="data set (default digits)")
    pp.add_argument("--trigger", type=_trigger_name, default="corner2",
                    help=f"trigger name: {TRIGGER_NAMES_HELP} (default corner2)")
    pp.add_argument("--target", type=_digit, required=True, help="class the trigger sends images to")
    pp.add_argument("--seed", type=seed_type, default=0, help="seeds the split, the poisoning and training "
                                                              "(default 0)")
    pp.add_argument("--poison-share", type=_share, default=PlantConfig().poison_share,
                    help=f"share of the training set added as stamped copies (default {PlantConfig().poison_share})")
    pp.add_argument("--epochs", type=positive_int, default=PLANT_TRAIN.epochs,
                    help=f"training epochs (default {PLANT_TRAIN.epochs})")
    pp.add_argument("--out", required=True, metavar="NET.onnx", help="the trained network")
    pp.add_argument("--save-trigger", action="store_true",
                    help="also write NET.mask.npy and NET.pattern.npy (the trigger, for repair --trigger-mask)")
    pp.set_defaults(func=cmd_backdoor_plant)

    pr = bsub.add_parser("repair", help="remove a backdoor: localize, repair by LP, measure, prove",
                         description="Repair a digits classifier (64 inputs = 8x8 pixels / 16 row-major, 10 "
                                     "logits) so that the trigger no longer sends images to the target. "
                                     "Without --trigger-mask/--trigger-pattern the trigger is "
                                     "reverse-engineered (Neural Cleanse).")
    pr.add_argument("network", metavar="NET.onnx", help="the network to repair (ONNX)")
    pr.add_argument("--data", choices=DATASETS, default="digits", help="data set (default digits)")
    pr.add_argument("--target", type=_digit, required=True, help="the backdoor's target class")
    pr.add_argument("--trigger-mask", metavar="M.npy", help="known trigger mask: 64 values (or 8x8) in [0, 1]")
    pr.add_argument("--trigger-pattern", metavar="P.npy", help="known trigger pattern: 64 values in [0, 1]")
    pr.add_argument("--true-trigger", type=_trigger_name, metavar="NAME",
                    help="evaluation only, with an unknown trigger: measure attack success and closeness "
                         "against this named trigger")
    pr.add_argument("--seed", type=seed_type, default=0, help="seeds the split and the samplers (default 0); "
                                                              "use the plant seed for the same split")
    pr.add_argument("--scope", choices=SCOPES, default=defaults.scope,
                    help=f"what may change (default {defaults.scope}: the output weights of the localized neurons, "
                         "falling back to the whole output layer)")
    pr.add_argument("--top-k", type=positive_int, default=defaults.top_k,
                    help=f"localized neurons whose weights may change (default {defaults.top_k})")
    pr.add_argument("--margin", type=positive_float("a positive logit margin"), default=defaults.margin,
                    help=f"logit gap by which stamped images must get their true class (default {defaults.margin})")
    pr.add_argument("--prove", type=int, default=defaults.prove_images, metavar="N",
                    help=f"test images whose trigger box is proven before and after (default "
                         f"{defaults.prove_images}; 0 skips, -1 all)")
    pr.add_argument("--proof-timeout", type=seconds, default=defaults.proof_timeout_s,
                    help=f"seconds per image proof (default {defaults.proof_timeout_s:g})")
    pr.add_argument("--max-train-images", type=positive_int, default=None, metavar="N",
                    help="repair with a seeded, class-stratified subset of N training images (faster; "
                         "default: all)")
    pr.add_argument("--solver", default=defaults.solver, help=f"LP backend (default {defaults.solver})")
    pr.add_argument("--out", required=True, metavar="OUT.onnx", help="the repaired network (same graph)")
    pr.add_argument("--report", required=True, metavar="DIR", help="folder for report.json, report.md, plots")
    pr.set_defaults(func=cmd_backdoor_repair)
    p.set_defaults(func=lambda args: _missing_action(p))


def _missing_action(parser: argparse.ArgumentParser) -> int:
    raise BadInput("backdoor needs an action: plant or repair")


def cmd_backdoor_plant(args: argparse.Namespace) -> int:
    """Train a backdoored digits classifier and save it as ONNX."""
    from dataclasses import replace

    import numpy as np

    from verirepair.atomic import write_bytes_atomic
    from verirepair.network.onnx_io import save_onnx
    from verirepair.tasks.backdoor.data import load_digits_split
    from verirepair.tasks.backdoor.plant import PlantConfig, attack_success, clean_accuracy, plant_backdoor
    from verirepair.tasks.backdoor.trigger import named_trigger

    out = check_output(args.out, "--out", (".onnx",))
    assert out is not None  # --out is required
    trigger = named_trigger(args.trigger)
    data = load_digits_split(args.seed)
    config = PlantConfig(poison_share=args.poison_share, train=replace(PlantConfig().train, epochs=args.epochs))
    with console.status("training the backdoored classifier"):
        network = plant_backdoor(data, trigger, args.target, args.seed, config)
    save_onnx(network, out)
    if args.save_trigger:
        import io

        for suffix, array in ((".mask.npy", trigger.mask), (".pattern.npy", trigger.pattern)):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array))
            write_bytes_atomic(out.with_suffix(suffix), buffer.getvalue())
    console.print(f"wrote {out}: trigger {trigger.name} -> class {args.target}, clean test accuracy "
                  f"{100 * clean_accuracy(network, data):.2f}%, attack success "
                  f"{100 * attack_success(network, data.x_test, data.y_test, trigger, args.target):.2f}%")
    return EXIT_OK


def cmd_backdoor_repair(args: argparse.Namespace) -> int:
    """Remove a backdoor and write the repaired ONNX and the report."""
    from rich.table import Table

    from verirepair.network.onnx_io import save_onnx
    from verirepair.repair import RepairStatus
    from verirepair.tasks.backdoor.data import load_digits_split
    from verirepair.tasks.backdoor.removal import RemovalConfig, check_digit_classifier, remove_backdoor
    from verirepair.tasks.backdoor.report import write_report
    from verirepair.tasks.backdoor.trigger import load_trigger, named_trigger

    if (args.trigger_mask is None) != (args.trigger_pattern is None):
        raise BadInput("give both --trigger-mask and --trigger-pattern, or neither (to reverse-engineer)")
    if args.prove < -1:
        raise BadInput(f"--prove must be -1 (all), 0 (skip) or a number of images, got {args.prove}")
    out = check_output(args.out, "--out", (".onnx",), inputs=[args.network])
    assert out is not None  # --out is required
    check_output(str(Path(args.report) / "report.json"), "--report")
    network = load_network_file(args.network)
    try:
        check_digit_classifier(network, args.network)
        trigger = None
        if args.trigger_mask is not None:
            trigger = load_trigger(existing_file(args.trigger_mask), existing_file(args.trigger_pattern))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    config = RemovalConfig(scope=args.scope, top_k=args.top_k, margin=args.margin, solver=args.solver,
                           prove_images=None if args.prove == -1 else args.prove,
                           proof_timeout_s=args.proof_timeout, seed=args.seed,
                           max_train_images=args.max_train_images)
    data = load_digits_split(args.seed)
    true = named_trigger(args.true_trigger) if args.true_trigger and trigger is None else None
    with console.status("starting") as status:
        result = remove_backdoor(network, data, args.target, trigger, config, true_trigger=true,
                                 progress=lambda step: status.update(step))
    payload = write_report(result, Path(args.report), args.network)
    if result.status is RepairStatus.REPAIRED:
        save_onnx(result.repaired, out)
    table = Table(title=f"backdoor repair: {result.status.value}")
    for column in ("measure", "before", "after"):
        table.add_column(column)
    table.add_row("clean accuracy", f"{100 * result.accuracy_before:.2f}%", f"{100 * result.accuracy_after:.2f}%")
    table.add_row("attack success", f"{100 * result.attack_before:.2f}%", f"{100 * result.attack_after:.2f}%")
    if payload["proven_before"] is not None:
        table.add_row("proven (trigger box)", f"{100 * payload['proven_before']:.1f}%",
                      f"{100 * payload['proven_after']:.1f}%")
    console.print(table)
    console.print(f"report: {Path(args.report) / 'report.md'}" + (f"; network: {out}"
                  if result.status is RepairStatus.REPAIRED else "; no network written (repair failed)"))
    return EXIT_OK if result.status is RepairStatus.REPAIRED else EXIT_REPAIR_FAILED
