"""The argument parser: one sub-command per task, options validated as they are read.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`).  Defaults come from
the configuration dataclasses and choice lists from the registries.
"""

from __future__ import annotations

import argparse
import math
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from verirepair import __version__

if TYPE_CHECKING:
    pass

from verirepair.cli.backdoor_commands import add_backdoor_parser
from verirepair.cli.campaign_commands import add_campaign_parser
from verirepair.cli.check_commands import add_check_parser
from verirepair.cli.commands import cmd_bench, cmd_info, cmd_localize, cmd_properties_export, cmd_spec, cmd_verify
from verirepair.cli.common import EXIT_BAD_INPUT, EXIT_CODES_HELP, print_error
from verirepair.cli.fairness_commands import add_fairness_parser
from verirepair.cli.repair_commands import cmd_demo, cmd_repair, config_default

# ----------------------------------------------------------------------------- parser
#: Sub-command names, filled by :func:`build_parser`.
COMMANDS: tuple[str, ...] = ()

#: Largest accepted seed (numpy's generators take non-negative integers).
MAX_SEED = 2**32 - 1


def int_in_range(minimum: int, maximum: int | None, what: str) -> Callable[[str], int]:
    """argparse type: an integer in ``[minimum, maximum]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


positive_int = int_in_range(1, None, "a positive integer")
seed_type = int_in_range(0, MAX_SEED, f"a seed in 0..{MAX_SEED}")


def positive_float(what: str) -> Callable[[str], float]:
    """argparse type: a finite number > 0 (``nan``, ``inf``, 0 and negatives are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected {what} (finite, > 0), got {text!r}")
        return value

    return parse


seconds = positive_float("a positive number of seconds")


def layer_type(text: str) -> int | None:
    """argparse type of ``--layer``: ``auto`` (None) or a layer index >= 0."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a layer index, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a layer index >= 0, got {value}")
    return value


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are ONE line on stderr and exit 2.

    argparse prints the usage block and then the error; a user (and a pipe)
    gets one line naming the command, the option and what was expected.
    """

    def error(self, message: str) -> typing.NoReturn:
        print_error(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def print_help_and_fail(parser: argparse.ArgumentParser, kind: str, choices: Sequence[str]) -> int:
    """A command (or group) given without its sub-command: one line naming the choices, exit 2."""
    print_error(f"{parser.prog}: give {kind} ({', '.join(choices)}); see {parser.prog} --help")
    return EXIT_BAD_INPUT


def add_repair_parser(sub: Any) -> None:
    """The ``repair`` command: defaults from the config dataclasses, choices from the registries."""
    from verirepair.decision import list_decision_rules
    from verirepair.repair.config import NORMS
    from verirepair.repair.strategy import list_strategies
    from verirepair.solvers import list_backends
    from verirepair.task import list_tasks
    from verirepair.verify import list_verifiers

    d = config_default
    p = sub.add_parser("repair", help="repair a network until its properties are proven",
                       description="Verify, localize, solve a minimal weight change, apply it to a new "
                                   "network and re-verify every property, round after round. Settings "
                                   "come from the defaults, then --config FILE, then the flags given.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("network", metavar="NET")
    p.add_argument("--property", action="append", metavar="P.vnnlib", help="a property (repeatable)")
    p.add_argument("--task", default="vnnlib", choices=list_tasks(),
                   help="what the properties and samples are: vnnlib (the --property files) or a "
                        "benchmark task (default vnnlib)")
    p.add_argument("--acasxu", action="store_true",
                   help="same as --task acasxu: every ACAS Xu property that applies to the named network")
    p.add_argument("--decision", default=None, choices=list_decision_rules(),
                   help="how outputs become a decision, kept on preservation points and measured by "
                        "fidelity (default: the task's; argmax for vnnlib, argmin for ACAS Xu)")
    p.add_argument("--config", metavar="RUN.toml",
                   help="run configuration (tables verify, localize, repair, loop, delivery; a report's "
                        "config.toml repeats its run); flags given here override it")
    p.add_argument("--out", metavar="OUT.onnx",
                   help="repaired network, written only when certified (default: NET_repaired.onnx)")
    p.add_argument("--report", metavar="DIR", help="report folder (default: OUT_report/)")
    p.add_argument("--layer", type=layer_type, default=None, metavar="auto|INDEX",
                   help="layer to repair: auto (from localization) or a layer index (default auto)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help=f"processes for our verifier's branch and bound in every round (default {d('workers')})")
    p.add_argument("--guilty-neurons", type=positive_int, default=None, metavar="K",
                   help="change only the K most guilty units' rows of the repaired layer and the K most "
                        "guilty units' columns of the layer before (default: the whole layer)")
    p.add_argument("--strategy", default=None, choices=list_strategies(),
                   help=f"how each round's change is found (default {d('strategy')}): lp = minimal change of "
                        "one layer by LP; cover = lp until the verifier leaves a property undecided, then a "
                        "minimal change of the output layer that the LP itself proves on a cover of that "
                        "property's region (thin margins); imitation = BIRDNN retraining of every layer "
                        "(counterexamples imitate their nearest safe samples); finetune = BIRDNN "
                        "fine-tuning of the incoming weights of the neurons whose activations differ most. "
                        "Every strategy ends in the "
                        "same verification of every property")
    p.add_argument("--norm", default=None, choices=NORMS, help=f"weight-change norm (default {d('norm')})")
    p.add_argument("--solver", default=None, choices=list_backends(only_available=False),
                   help=f"LP/MILP backend (default {d('solver')}; available here: "
                        f"{', '.join(list_backends(only_available=True)) or 'none'})")
    p.add_argument("--max-rounds", type=positive_int, default=None, metavar="N",
                   help=f"rounds of repair and re-verification (default {d('max_rounds')})")
    p.add_argument("--timeout", type=seconds, default=None, metavar="S",
                   help="total budget of the whole run, cross-check, fidelity and report included "
                        f"(default {d('timeout'):g})")
    p.add_argument("--verify-timeout", type=seconds, default=None, metavar="S",
                   help=f"budget of one property's verification per round (default {d('verify_timeout'):g}); "
                        "a property not decided in time gets a wider margin in the next round")
    p.add_argument("--cross-check", default=None, choices=[*list_verifiers(), "none"],
                   help=f"final independent check of every property of a certified network, in a child "
                        f"process (default {d('cross_check')}; marabou-split splits the input region for "
                        "Marabou, for properties it cannot decide whole)")
    p.add_argument("--cross-check-timeout", type=seconds, default=None, metavar="S",
                   help="budget of the cross-check per property, within the total --timeout "
                        f"(default {d('cross_check_timeout'):g})")
    p.add_argument("--certificates", action="store_const", const=True, default=None,
                   help="after a repair, write a checkable certificate per proven property of the delivered "
                        "file into REPORT/certificates/ (check them with 'verirepair check REPORT'), within "
                        f"--timeout; writing one takes several times the verification (default "
                        f"{'on' if d('certificates') else 'off'})")
    p.add_argument("--seed", type=seed_type, default=None, help=f"seed (default {d('seed')})")
    p.set_defaults(func=cmd_repair)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-command per pipeline task."""
    from verirepair.localize.config import LocalizeMethod
    from verirepair.run_config import default_of
    from verirepair.verify import list_verifiers
    from verirepair.verify.result import VerifyConfig

    parser = OneLineArgumentParser(
        prog="verirepair",
        description="Repair neural networks (ReLU, leaky and smooth activations) with proof: specify "
                    "(VNN-LIB), verify, localize, repair, re-verify, deliver an ONNX file, a report and a "
                    "certificate.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"verirepair {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show a network's layers, shapes and parameter count",
                       description="Show the layers, shapes and parameter count of an .onnx or .nnet network.")
    p.add_argument("network", metavar="NET", help="network file (.onnx or .nnet)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("spec", help="pretty-print a VNN-LIB property",
                       description="Parse a VNN-LIB file and show its input boxes and unsafe output set.")
    p.add_argument("property", metavar="PROP.vnnlib")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("properties", help="the ACAS Xu properties in physical units",
                       description="Work with the physical-unit ACAS Xu properties in properties/.")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    pe = psub.add_parser("export", help="compile properties/*.toml to vnnlib/acasxu/prop_N.vnnlib",
                         description="Compile the physical-unit properties to normalised VNN-LIB files.")
    pe.add_argument("--src",
                    help="folder of phi*.toml files (default: the ACAS Xu task's data/properties in the package)")
    pe.add_argument("--dest", help="output folder (default: the ACAS Xu task's data/vnnlib in the package)")
    pe.set_defaults(func=cmd_properties_export)
    properties_parser = p
    p.set_defaults(func=lambda args: print_help_and_fail(properties_parser, "an action", list(psub.choices)))

    p = sub.add_parser("verify", help="verify a property on a network",
                       description="Verify a VNN-LIB property on a network. The answer is a proof "
                                   "(holds) or a counterexample re-checked by a forward pass.")
    p.add_argument("network", metavar="NET", help="network file (.onnx or .nnet)")
    p.add_argument("property", metavar="PROP", help="VNN-LIB property file")
    p.add_argument("--engine", default="own", choices=list_verifiers(),
                   help="verifier (default: own; others run in a child process that --timeout stops)")
    p.add_argument("--timeout", type=seconds, default=default_of(VerifyConfig, "timeout_s"), metavar="S",
                   help=f"time budget in seconds (default {default_of(VerifyConfig, 'timeout_s'):g})")
    p.add_argument("--lp", action="store_true", help="tighten bounds with LPs (own engine; slower, tighter)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes for our engine's branch and bound (default 1; a search still open "
                        "after 3 s spreads over N processes)")
    p.add_argument("--seed", type=seed_type, default=0, help="falsifier seed (default 0)")
    p.add_argument("--out", metavar="RESULT", help="write a VNN-COMP result file (sat/unsat/timeout/unknown)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--certificate", metavar="CERT",
                   help="when the property holds, write a certificate that 'verirepair check' verifies "
                        "(own engine; the search runs in one process; every record is first validated "
                        "with the checker, about as long as the search again)")
    p.add_argument("--certificate-unvalidated", action="store_true",
                   help="with --certificate: write the search's records without validating them "
                        "(about half the writing cost; 'verirepair check' then decides; default off)")
    p.set_defaults(func=cmd_verify)
    add_check_parser(sub)

    p = sub.add_parser("bench", help="run a VNN-COMP instances.csv",
                       description="Run every instance of a VNN-COMP instances.csv (onnx,vnnlib,timeout "
                                   "rows, paths relative to the CSV) and summarise.")
    p.add_argument("instances", metavar="INSTANCES.csv")
    p.add_argument("--engine", default="own", choices=list_verifiers(), help="verifier (default own)")
    p.add_argument("--compare", metavar="A,B", help="run two engines and report every disagreement")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="parallel worker processes (default 1)")
    p.add_argument("--timeout-scale", type=positive_float("a positive factor"), default=1.0, metavar="F",
                   help="multiply every instance's timeout by F (default 1)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N instances (default: all)")
    p.add_argument("--out", metavar="results.csv", help="write one CSV row per instance and engine")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("localize", help="rank the neurons that cause a violation",
                       description="Find counterexamples (or read --cex) and rank hidden neurons by "
                                   "their causal effect on the violation (CARE).")
    p.add_argument("network", metavar="NET")
    p.add_argument("property", metavar="PROP")
    p.add_argument("--method", default=LocalizeMethod.CAUSAL.value, choices=[m.value for m in LocalizeMethod],
                   help="localization method (default causal: CARE's interventions)")
    p.add_argument("--top", type=positive_int, default=10, metavar="K", help="rows to show (default 10)")
    p.add_argument("--cex", metavar="FILE", help="counterexamples: a VNN-COMP result file, .npy or .json")
    p.add_argument("--timeout", type=seconds, default=60.0, metavar="S",
                   help="verification budget in seconds (default 60)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the localization as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw top-K effects and a layer-by-neuron heat map")
    p.set_defaults(func=cmd_localize)

    add_repair_parser(sub)
    add_campaign_parser(sub, positive_int, seconds)
    fairness = add_fairness_parser(sub, {"int": positive_int, "seed": seed_type, "seconds": seconds,
                                         "number": positive_float("a positive number")})
    fairness.set_defaults(func=lambda args: print_help_and_fail(fairness, "an action", ["train", "measure",
                                                                                        "repair"]))

    p = sub.add_parser("demo", help="run the whole pipeline on the shipped demo network",
                       description="Verify, localize, repair and re-verify the shipped demo network, "
                                   "which has a planted violation.")
    p.add_argument("--out-dir", default="demo_out", help="where outputs go (default demo_out/)")
    p.add_argument("--max-rounds", type=positive_int, default=5, metavar="N",
                   help="rounds of repair and re-verification (default 5)")
    p.add_argument("--timeout", type=seconds, default=120.0, metavar="S",
                   help="total budget in seconds (default 120)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed (default 0)")
    p.add_argument("--no-cross-check", action="store_true", help="skip the final Marabou check")
    p.set_defaults(func=cmd_demo)
    add_backdoor_parser(sub, positive_int=positive_int, seed_type=seed_type, seconds=seconds,
                        positive_float=positive_float)
    global COMMANDS
    COMMANDS = tuple(sub.choices)
    return parser
