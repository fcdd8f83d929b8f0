"""Fuzz campaign for the VNN-LIB parser: many seeded mutants, counts of each outcome.

The mutants are those of the CI fuzz test (``tests/properties/vnnlib_mutants.py``:
byte flips, random and non-UTF-8 insertions, deletions, token swaps and
replacements, deep nesting, truncation of the committed ACAS Xu files).  Every
mutant must parse to finite properties or raise a VerirepairError with a
one-line message; anything else is an *untyped* exception and a bug.

Usage (from the repository root)::

    .venv/bin/python benchmarks/fuzz_vnnlib.py --count 20000 --seed 1

Exit status 1 when any mutant raised an untyped exception, gave a multi-line
message or a non-finite property.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# The mutant generator lives with the tests that use it in CI.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "spec"))

import vnnlib_mutants  # (imported after the path change above)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-depth", type=int, default=20_000,
                        help="deepest nesting a deep_nesting mutation adds (default 20000)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    campaign = vnnlib_mutants.run(args.count, args.seed, max_depth=args.max_depth)
    elapsed = time.perf_counter() - start
    print(f"mutants: {campaign.total} (seed {args.seed}, max depth {args.max_depth}, "
          f"{elapsed:.1f} s)")
    print(f"parsed ok: {campaign.parsed}")
    print(f"SpecError (typed): {campaign.spec_errors}")
    print(f"untyped exceptions: {campaign.untyped}")
    print(f"multi-line messages: {campaign.multi_line_messages}")
    print(f"non-finite properties: {campaign.bad_properties}")
    print(f"by exception type: {dict(campaign.by_error)}")
    for failure in campaign.failures:
        print(f"  {failure}")
    bad = campaign.untyped + campaign.multi_line_messages + campaign.bad_properties
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
