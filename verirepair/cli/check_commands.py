"""The certificate commands: ``verify --certificate`` (write one) and ``check`` (check one).

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`).
``check`` uses only :mod:`verirepair.checker`, which shares no code with the verifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from verirepair.cli.common import EXIT_BAD_INPUT, EXIT_OK, BadInput, console, existing_file, print_error

if TYPE_CHECKING:
    from verirepair.network.model import Network
    from verirepair.properties.property import Property
    from verirepair.verify.result import VerificationResult, VerifyConfig

#: Exit code of ``check`` when the certificate does not prove the property for those files.
EXIT_REJECTED = 1


def verify_with_certificate(args: argparse.Namespace, network: Network, props: list[Property],
                            config: VerifyConfig) -> VerificationResult:
    """Run our engine with a recorder and write ``args.certificate`` when the property holds."""
    from verirepair.verify.certificate_writer import certify

    if args.engine != "own":
        raise BadInput(f"--certificate needs the own engine (got --engine {args.engine})")
    validate = not getattr(args, "certificate_unvalidated", False)
    done = certify(network, props, config, Path(args.network), Path(args.property), Path(args.certificate),
                   validate)
    if done.path is not None:
        how = "validated with the checker" if validate else "not validated: run 'verirepair check' on it"
        console.print(f"  certificate written to {done.path} ({done.size_bytes} bytes, "
                      f"{sum(s['leaves'] for s in done.summary)} leaves, {how}; writing took {done.write_s:.2f} s)")
    else:
        console.print(f"  {done.reason}")
    return done.result


def cmd_check(args: argparse.Namespace) -> int:
    """Check a certificate: exit 0 when it proves the property for exactly these files, 1 otherwise."""
    from verirepair.checker import Rejected, check_certificate

    if Path(args.certificate).is_dir() and args.network is None:
        return _check_report(Path(args.certificate), args)
    if args.network is None or args.property is None:
        raise BadInput("check needs CERT NET PROP, or a repair report folder")
    cert, network, prop = (existing_file(p) for p in (args.certificate, args.network, args.property))
    exact = "all" if args.exact else ("sample" if args.exact_sample else "none")
    try:
        result = check_certificate(cert, network, prop, exact=exact, sample=args.exact_sample or 0)
    except Rejected as exc:
        print_error(f"certificate rejected: {exc}")
        return EXIT_REJECTED
    except (OSError, ValueError) as exc:
        print_error(f"{exc}")
        return EXIT_BAD_INPUT
    exact_note = f", {result.exact_evidence} also in exact arithmetic" if result.exact_evidence else ""
    console.print(f"[green]CERTIFICATE ACCEPTED[/green]  {prop.name} holds on {network.name}: "
                  f"{result.leaves} leaves, {result.evidence} exclusions checked (outward-rounded float64"
                  f"{exact_note}) in {result.time_s:.2f} s")
    return EXIT_OK


def _check_report(folder: Path, args: argparse.Namespace) -> int:
    """``check REPORT_DIR``: every certificate listed in the report's certificate.json."""
    import json

    from verirepair.checker import Rejected, check_certificate

    summary_path = folder / "certificate.json"
    if not summary_path.is_file():
        raise BadInput(f"{folder} has no certificate.json (not a repair report folder)")
    try:
        listed = json.loads(summary_path.read_text())["checkable_certificates"]
        network, entries = Path(listed["network"]), listed["entries"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInput(f"{summary_path}: no checkable_certificates list ({exc})") from None
    exact = "all" if args.exact else ("sample" if args.exact_sample else "none")
    failures = []
    for entry in entries:
        if not entry.get("certificate"):
            failures.append(f"{entry.get('property')}: no certificate ({entry.get('reason', 'none written')})")
            continue
        try:
            result = check_certificate(folder / entry["certificate"], network, folder / entry["vnnlib"],
                                       exact=exact, sample=args.exact_sample or 0)
            console.print(f"[green]accepted[/green]  {entry['property']}: {result.leaves} leaves, "
                          f"{result.evidence} exclusions, {result.time_s:.2f} s")
        except (Rejected, OSError) as exc:
            failures.append(f"{entry.get('property')}: {exc}")
    if failures:
        print_error(f"{len(failures)} of {len(entries)} certificates not accepted: {failures[0]}")
        return EXIT_REJECTED
    console.print(f"[green]ALL {len(entries)} CERTIFICATES ACCEPTED[/green] for {network}")
    return EXIT_OK


def add_check_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``check``."""
    p = sub.add_parser("check", help="check a HOLDS certificate with the independent checker",
                       description="Check that CERT (written by verify --certificate) proves PROP for NET. "
                                   "The checker re-reads both files and recomputes every bound itself. "
                                   "Exit 0: proven; 1: rejected (one line says why); 2: bad input.")
    p.add_argument("certificate", metavar="CERT", help="certificate file (.npz), or a repair report folder "
                                                       "(checks every certificate its certificate.json lists)")
    p.add_argument("network", metavar="NET", nargs="?", help="the ONNX network")
    p.add_argument("property", metavar="PROP", nargs="?", help="the VNN-LIB property")
    p.add_argument("--exact", action="store_true",
                   help="also check every exclusion in exact rational arithmetic (slow: about a minute each "
                        "on ACAS Xu)")
    p.add_argument("--exact-sample", type=int, default=0, metavar="N",
                   help="also check N randomly chosen exclusions per property exactly (default 0)")
    p.set_defaults(func=cmd_check)
