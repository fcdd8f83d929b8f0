"""Fuzz: 2000 seeded mutants of the committed VNN-LIB files raise only typed errors.

The mutants (byte flips, random and non-UTF-8 insertions, deletions, token
swaps and replacements, deep nesting, truncation) come from
``vnnlib_mutants.py``; ``benchmarks/fuzz_vnnlib.py`` runs the same generator
for longer.  Every mutant either parses to finite properties or raises a
VerirepairError whose message is one line.
"""

from __future__ import annotations

import vnnlib_mutants

COUNT = 2000
SEED = 20240609
#: Added nesting of at most this depth keeps the test near 10 s; depth 100000 has its
#: own tests in test_vnnlib_hardening.py and the benchmark campaign goes to 20000.
MAX_DEPTH = 5000


def test_2000_mutants_raise_only_typed_one_line_errors() -> None:
    campaign = vnnlib_mutants.run(COUNT, SEED, max_depth=MAX_DEPTH)
    assert campaign.total == COUNT
    assert campaign.untyped == 0, campaign.failures
    assert campaign.multi_line_messages == 0, campaign.failures
    assert campaign.bad_properties == 0, campaign.failures
    # The mutants are neither all rejected nor all harmless.
    assert campaign.parsed > COUNT // 10 and campaign.spec_errors > COUNT // 2


def test_mutants_are_reproducible() -> None:
    import numpy as np

    seeds = vnnlib_mutants.seed_files()
    first = [vnnlib_mutants.mutant(np.random.default_rng(7), seeds) for _ in range(3)]
    again = [vnnlib_mutants.mutant(np.random.default_rng(7), seeds) for _ in range(3)]
    assert first == again
