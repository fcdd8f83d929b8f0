"""``verirepair fairness train | measure | repair``: CARE's fairness task on Adult and German Credit.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`).
The work is done by :mod:`verirepair.tasks.fairness`; this module reads the
options, checks inputs and outputs before any work, shows progress and prints
tables (or JSON).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from verirepair.cli.common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_REPAIR_FAILED,
    BadInput,
    check_output,
    console,
    dump_json,
    load_network_file,
)

if TYPE_CHECKING:
    from verirepair.network.model import Network
    from verirepair.tasks.fairness.data import FairnessData

__all__ = ["add_fairness_parser"]

#: Training defaults per data set: (hidden widths, epochs).  Adult has 36k training rows, German 800.
TRAIN_DEFAULTS = {"adult": ((32, 16), 10), "german": ((32, 16), 60)}


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths such as 32,16, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return widths


def _attributes(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more attribute names separated by commas")
    return names


def add_fairness_parser(sub: Any, types: dict[str, Callable[[str], Any]]) -> argparse.ArgumentParser:
    """Register ``fairness`` and its three actions on the sub-command set ``sub``.

    ``types`` holds the parser's shared argparse types: ``int`` (positive
    integer), ``seed``, ``seconds`` and ``number`` (a positive float).
    """
    from verirepair.tasks.fairness.data import DATASETS
    from verirepair.tasks.fairness.protected import PROTECTED
    from verirepair.tasks.fairness.repair import FairRepairConfig
    from verirepair.tasks.fairness.run import FairnessRunConfig

    run_d, rep_d = FairnessRunConfig(), FairRepairConfig()
    protected_help = "; ".join(f"{k}: {', '.join(v)}" for k, v in PROTECTED.items())
    parent = sub.add_parser("fairness", help="fairness repair (CARE) on UCI Adult and German Credit",
                            description="Train, measure and repair classifiers for individual fairness. Data "
                                        "from ../shared/fairness (or $VERIREPAIR_FAIRNESS_DIR).",
                            epilog=EXIT_CODES_HELP)
    actions = parent.add_subparsers(dest="action", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, choices=sorted(DATASETS), help="the data set")
        p.add_argument("--split-seed", type=types["seed"], default=0,
                       help="seed of the 80/20 train/test split (default 0; use the same for train, measure, repair)")

    p = actions.add_parser("train", help="train a small ReLU classifier and export it to ONNX",
                           description="Seeded torch training (Adam, cross-entropy, one thread) of a fully "
                                       "connected ReLU classifier with 2 logits; prints its test accuracy.",
                           epilog=EXIT_CODES_HELP)
    common(p)
    p.add_argument("--seed", type=types["seed"], default=0, help="training seed (default 0)")
    p.add_argument("--out", required=True, metavar="NET.onnx", help="where the network goes")
    p.add_argument("--hidden", type=_hidden, default=None, metavar="W1,W2",
                   help="hidden widths (default 32,16)")
    p.add_argument("--epochs", type=types["int"], default=None,
                   help="epochs (default: adult 10, german 60)")
    p.add_argument("--lr", type=types["number"], default=1e-3, help="Adam learning rate (default 0.001)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_fairness_train)

    p = actions.add_parser("measure", help="individual discrimination rate with confidence intervals",
                           description="Change only the protected attribute of each individual to each of its "
                                       "other values (age: other decades) and count the individuals whose class "
                                       "changes, on the test split and on a uniform domain sample.",
                           epilog=EXIT_CODES_HELP)
    p.add_argument("network", metavar="NET.onnx")
    common(p)
    p.add_argument("--protected", type=_attributes, required=True, metavar="ATTR[,ATTR...]",
                   help=f"protected attributes ({protected_help})")
    p.add_argument("--n-domain", type=types["int"], default=run_d.n_domain,
                   help=f"uniform domain samples (default {run_d.n_domain})")
    p.add_argument("--confidence", type=types["number"], default=run_d.confidence,
                   help=f"confidence of the intervals (default {run_d.confidence})")
    p.add_argument("--prove", type=int, default=0, metavar="N",
                   help="also try to prove fairness for N test individuals (default 0: no proofs)")
    p.add_argument("--tolerance", type=float, default=run_d.proof_tolerance,
                   help=f"proofs: +- this on numeric features, a fraction of their range (default "
                        f"{run_d.proof_tolerance})")
    p.add_argument("--proof-timeout", type=types["seconds"], default=run_d.proof_timeout_s,
                   help=f"proofs: seconds per individual (default {run_d.proof_timeout_s:g})")
    p.add_argument("--seed", type=types["seed"], default=0, help="seed of the domain sample (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_fairness_measure)

    p = actions.add_parser("repair", help="repair a classifier for fairness by a minimal one-layer change",
                           description="Measure and prove, localize the neurons causing the dependence on the "
                                       "protected attributes, change one layer by LP so that discriminatory "
                                       "pairs agree while training points keep their class, iterate on fresh "
                                       "pairs, then measure and prove again. Writes the repaired ONNX (same "
                                       "graph), report.json, report.md and rates.png.",
                           epilog=EXIT_CODES_HELP)
    p.add_argument("network", metavar="NET.onnx")
    common(p)
    p.add_argument("--protected", type=_attributes, required=True, metavar="ATTR[,ATTR...]",
                   help=f"protected attributes ({protected_help})")
    p.add_argument("--out", required=True, metavar="OUT.onnx", help="the repaired network")
    p.add_argument("--report", required=True, metavar="DIR", help="folder of report.json / report.md / rates.png")
    p.add_argument("--max-rounds", type=types["int"], default=rep_d.max_rounds,
                   help=f"repair rounds (default {rep_d.max_rounds})")
    p.add_argument("--per-round", type=types["int"], default=rep_d.max_new_individuals,
                   help=f"new discriminatory individuals per attribute and round (default {rep_d.max_new_individuals})")
    p.add_argument("--keep", type=types["int"], default=rep_d.n_keep,
                   help=f"training individuals that keep their class (default {rep_d.n_keep})")
    p.add_argument("--margin", type=types["number"], default=rep_d.margin,
                   help=f"logit margin of the repaired decisions (default {rep_d.margin})")
    p.add_argument("--layer", type=int, default=None, help="layer to change (default: localization's choice)")
    p.add_argument("--neurons", choices=("localized", "all"), default=rep_d.neurons,
                   help=f"change the localized neurons' rows or the whole layer (default {rep_d.neurons})")
    p.add_argument("--time-limit", type=types["seconds"], default=rep_d.repair.time_limit_s,
                   help=f"LP time budget of the whole repair, seconds (default {rep_d.repair.time_limit_s:g})")
    p.add_argument("--solver", default=rep_d.repair.solver, help=f"LP backend (default {rep_d.repair.solver})")
    p.add_argument("--n-domain", type=types["int"], default=run_d.n_domain,
                   help=f"uniform domain samples of the measurement (default {run_d.n_domain})")
    p.add_argument("--prove", type=int, default=run_d.proof_individuals, metavar="N",
                   help=f"test individuals proven before and after (default {run_d.proof_individuals})")
    p.add_argument("--tolerance", type=float, default=run_d.proof_tolerance,
                   help=f"proofs: +- this on numeric features (default {run_d.proof_tolerance})")
    p.add_argument("--proof-timeout", type=types["seconds"], default=run_d.proof_timeout_s,
                   help=f"proofs: seconds per individual (default {run_d.proof_timeout_s:g})")
    p.add_argument("--seed", type=types["seed"], default=0, help="seed of the samples (default 0)")
    p.set_defaults(func=cmd_fairness_repair)
    return parent


# ----------------------------------------------------------------------------- helpers
def _load_data(args: argparse.Namespace) -> FairnessData:
    from verirepair.tasks.fairness.data import load_dataset

    return load_dataset(args.data, seed=args.split_seed)


def _check_network(network: Network, data: FairnessData, path: str) -> None:
    if network.n_inputs != data.encoding.n_inputs or network.n_outputs != 2:
        raise BadInput(f"{path}: the network has {network.n_inputs} inputs and {network.n_outputs} outputs; a "
                       f"{data.name} classifier needs {data.encoding.n_inputs} inputs (see feature_layout) and 2")


def _check_attributes(names: tuple[str, ...], data: FairnessData) -> None:
    from verirepair.tasks.fairness.protected import PROTECTED

    known = [f.column for f in data.encoding.features]
    for name in names:
        if name not in known:
            raise BadInput(f"--protected {name}: not a column of {data.name}; protected attributes: "
                           f"{', '.join(PROTECTED[data.name])} (all columns: {', '.join(known)})")


def _check_proof_options(args: argparse.Namespace) -> None:
    if args.prove < 0:
        raise BadInput(f"--prove must be >= 0, got {args.prove}")
    if not args.tolerance >= 0:
        raise BadInput(f"--tolerance must be >= 0, got {args.tolerance}")


def _rate_table(title: str, rows: Sequence[tuple[str, str, dict, dict | None]], confidence: float) -> Table:
    """Rates per attribute and sample; the after columns only when some row has one."""
    with_after = any(after is not None for *_, after in rows)
    table = Table(title=title)
    headers = ["attribute", "sample", "n", "before" if with_after else "rate", f"{confidence:.0%} CI"]
    headers += ["after", f"{confidence:.0%} CI"] if with_after else []
    for column in headers:
        table.add_column(column, justify="right" if column in ("n", "before", "after", "rate") else "left")

    def ci(e: dict) -> str:
        return f"[{e['ci_low']:.2%}, {e['ci_high']:.2%}]"

    for attr, source, before, after in rows:
        cells = [attr, source, str(before["n"]), f"{before['rate']:.2%}", ci(before)]
        if with_after:
            cells += [f"{after['rate']:.2%}", ci(after)] if after else ["", ""]
        table.add_row(*cells)
    return table


# ----------------------------------------------------------------------------- commands
def cmd_fairness_train(args: argparse.Namespace) -> int:
    """``fairness train``: seeded training, ONNX export, test accuracy."""
    from verirepair.network.onnx_io import save_onnx
    from verirepair.tasks.classifier import TrainConfig, accuracy, train_mlp

    out = check_output(args.out, "--out", (".onnx",))
    assert out is not None
    data = _load_data(args)
    hidden, epochs = TRAIN_DEFAULTS[args.data]
    config = TrainConfig(hidden=args.hidden or hidden, epochs=args.epochs or epochs, lr=args.lr, seed=args.seed)
    start = time.perf_counter()
    with console.status(f"training on {data.x_train.shape[0]} {args.data} individuals ..."):
        network = train_mlp(data.x_train, data.y_train, config, n_classes=2, name=f"{args.data}_fair")
    save_onnx(network, out)
    result = {"network": str(out), "data": args.data, "hidden": list(config.hidden), "epochs": config.epochs,
              "seed": args.seed, "split_seed": args.split_seed, "test_accuracy": accuracy(network, data.x_test,
                                                                                          data.y_test),
              "train_accuracy": accuracy(network, data.x_train, data.y_train),
              "majority_class_accuracy": float(max(data.y_test.mean(), 1 - data.y_test.mean())),
              "time_s": time.perf_counter() - start, "data_summary": data.summary()}
    if args.json:
        dump_json(result)
    else:
        console.print(f"{out}: {args.data} classifier {'-'.join(map(str, config.hidden))}, test accuracy "
                      f"{result['test_accuracy']:.2%} (majority class {result['majority_class_accuracy']:.2%}), "
                      f"{data.x_train.shape[0]} training / {data.x_test.shape[0]} test individuals, "
                      f"{data.rows_with_missing} rows with missing values dropped")
    return EXIT_OK


def cmd_fairness_measure(args: argparse.Namespace) -> int:
    """``fairness measure``: discrimination per attribute with intervals, optionally proofs."""
    import numpy as np

    from verirepair.tasks.fairness.measure import sample_domain
    from verirepair.tasks.fairness.protected import protected_attribute
    from verirepair.tasks.fairness.run import MEASURE_STREAM, measure_all, prove_all

    _check_proof_options(args)
    if not 0 < args.confidence < 1:
        raise BadInput(f"--confidence must lie in (0, 1), got {args.confidence}")
    network = load_network_file(args.network)
    data = _load_data(args)
    _check_network(network, data, args.network)
    _check_attributes(args.protected, data)
    attributes = [protected_attribute(data.encoding, name) for name in args.protected]
    domain = sample_domain(data.encoding, args.n_domain, np.random.default_rng([args.seed, MEASURE_STREAM]))
    measured = measure_all(network, data, attributes, domain, args.confidence)
    from verirepair.tasks.classifier import accuracy

    payload: dict = {"network": args.network, "data": args.data,
                     "accuracy": accuracy(network, data.x_test, data.y_test),
                     "discrimination": {a: {s: e.to_json() for s, e in m.items()} for a, m in measured.items()}}
    if args.prove:
        n = min(args.prove, data.x_test.shape[0])
        individuals = np.sort(np.random.default_rng([args.seed, MEASURE_STREAM + 1]).choice(
            data.x_test.shape[0], n, replace=False))
        with console.status(f"proving fairness of {n} test individuals ...") if not args.json else _Null():
            proofs = prove_all(network, data, attributes, individuals, args.tolerance, args.proof_timeout, args.seed)
        payload["proven"] = {a: p.share for a, p in proofs.items()}
        payload["proofs"] = {a: {k: v for k, v in p.to_json().items() if k != "verdicts"} for a, p in proofs.items()}
    payload["feature_layout"] = data.encoding.layout()
    if args.json:
        dump_json(payload)
        return EXIT_OK
    rows = [(a, s, e.to_json(), None) for a, m in measured.items() for s, e in m.items()]
    console.print(_rate_table(f"{args.network}: individual discrimination, test accuracy {payload['accuracy']:.2%}",
                              rows, args.confidence))
    if args.prove:
        for a, p in proofs.items():
            console.print(f"{a}: {p.proven}/{p.n} test individuals proven fair (tolerance {args.tolerance:g}), "
                          f"{p.violated} with a counterexample, {p.undecided} undecided")
    return EXIT_OK


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cmd_fairness_repair(args: argparse.Namespace) -> int:
    """``fairness repair``: the measured repair, the ONNX and the report."""
    from verirepair.network.onnx_io import load_onnx, save_onnx
    from verirepair.tasks.fairness.repair import FairRepairConfig
    from verirepair.tasks.fairness.report import write_fairness_report
    from verirepair.tasks.fairness.run import FairnessRunConfig, run_fairness_repair

    _check_proof_options(args)
    out = check_output(args.out, "--out", (".onnx",), inputs=[args.network])
    assert out is not None
    report_dir = Path(args.report)
    from verirepair.atomic import check_writable

    check_writable(report_dir, "--report", directory=True)
    network = load_network_file(args.network)
    data = _load_data(args)
    _check_network(network, data, args.network)
    _check_attributes(args.protected, data)
    from verirepair.solvers import list_backends

    if args.solver not in list_backends(only_available=True):
        raise BadInput(f"--solver {args.solver}: not available; available: {', '.join(list_backends(True))}")
    if args.layer is not None and not 0 <= args.layer < network.n_layers:
        raise BadInput(f"--layer {args.layer}: the network has layers 0..{network.n_layers - 1}")
    defaults = FairRepairConfig()
    repair_config = replace(defaults, margin=args.margin, max_rounds=args.max_rounds,
                            max_new_individuals=args.per_round, n_keep=args.keep, layer_index=args.layer,
                            neurons=args.neurons, seed=args.seed,
                            repair=replace(defaults.repair, solver=args.solver, time_limit_s=args.time_limit))
    config = FairnessRunConfig(n_domain=args.n_domain, proof_individuals=args.prove, proof_tolerance=args.tolerance,
                               proof_timeout_s=args.proof_timeout, seed=args.seed, repair=repair_config)
    with console.status("fairness repair ...") as status:
        def progress(message: str) -> None:
            console.print(f"  {message}")
            status.update(message)

        result, report = run_fairness_repair(network, data, args.protected, config, progress)
    save_onnx(result.network, out)
    delivered = load_onnx(out)
    report["network_out"] = str(out)
    report["network_in"] = args.network
    write_fairness_report(report, report_dir)
    rows = [(a, s, report["discrimination_before"][a][s], report["discrimination_after"][a][s])
            for a in report["discrimination_before"] for s in ("data", "domain")]
    console.print(_rate_table(f"{args.network} -> {out}: individual discrimination", rows, config.confidence))
    console.print(f"test accuracy {report['accuracy_before']:.2%} -> {report['accuracy_after']:.2%}; proven "
                  + ", ".join(f"{a} {report['proven_before'][a]:.0%} -> {report['proven_after'][a]:.0%}"
                              for a in report["proven_before"])
                  + f"; change L1 {report['change']['l1']:.4g} in layer {report['change']['layer_index']}; "
                  f"report {report_dir / 'report.md'}")
    _check_delivered(result.network, delivered)
    return EXIT_OK if result.repaired else EXIT_REPAIR_FAILED


def _check_delivered(network: Network, delivered: Network) -> None:
    """The written ONNX must compute what was measured (float32 parameters round-trip exactly)."""
    import numpy as np

    for a, b in zip(network.layers, delivered.layers, strict=True):
        if not (np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)):
            raise RuntimeError("the written ONNX differs from the repaired network (float32 round-trip failed)")
