"""Mutants of real VNN-LIB files, for the parser's fuzz test and ``benchmarks/fuzz_vnnlib.py``.

The seeds are the ten ACAS Xu properties shipped in ``verirepair/tasks/acasxu/data/vnnlib`` plus a
small multi-box file.  A mutant applies one to three random edits: byte flips,
insertions of random bytes (often not UTF-8), deletions, token swaps,
duplications and replacements (with a dictionary of awkward tokens), deep
nesting (valid and unbalanced) and truncation.  Everything is driven by one
``numpy`` generator, so a seed fixes the whole campaign.
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from verirepair.errors import VerirepairError

#: A parser under test: bytes and a file name to properties.
Parse = Callable[[bytes, str], list]

REPO = Path(__file__).resolve().parents[2]

_MULTI_BOX = b"""; two boxes, one disjunction of outputs
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (or (and (>= X_0 -1) (<= X_0 0) (>= X_1 0) (<= X_1 .5))
            (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1))))
(assert (or (<= (+ (* 2 Y_0) (- Y_1)) 1e-3) (> (/ Y_1 4) (- Y_0 1))))
(check-sat)
"""

#: Tokens that exercise the reader's corners when swapped into a file.
AWKWARD_TOKENS = [
    b"(", b")", b"()", b"(or)", b"(and)", b"or", b"and", b"assert", b"declare-const", b"Real",
    b"Int", b"X_0", b"X_4", b"X_5", b"X_99", b"Y_0", b"Y_9", b"X_01", b"X_-1", b"x_0",
    b"X_\xc2\xb2", b"X_" + b"9" * 40, b"1e999", b"-1e999", b"1e308", b"-1e308", b"1e-400",
    b"-0", b"0", b"nan", b"inf", b"-inf", b"1.2.3", b"1e", b".", b"-", b"+", b"*", b"/", b"=",
    b"<", b"<=", b">=", b";", b"\xff", b"\xc3", b"\xed\xb2\x80", b"\x00", b"\xef\xbb\xbf",
    b"\xe2\x80\xa8", b"\r", b"\t", b"1" * 400, b"(* 1e300 1e300)", b"(/ 1 0)",
    b"(* Y_0 Y_1)", b"(+ X_0 Y_0)", b"(check-sat)", b"(set-info :status unknown)",
]

_TOKEN = re.compile(rb"[()]|[^\s();]+")


def seed_files() -> list[tuple[str, bytes]]:
    """``(name, content)`` of every seed file."""
    files = sorted((REPO / "verirepair" / "tasks" / "acasxu" / "data" / "vnnlib").glob("*.vnnlib"))
    seeds = [(p.name, p.read_bytes()) for p in files]
    return seeds + [("multi_box.vnnlib", _MULTI_BOX)]


def _random_bytes(rng: np.random.Generator, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def flip_byte(rng: np.random.Generator, data: bytes) -> bytes:
    """Replace one byte by a random one."""
    i = int(rng.integers(len(data)))
    return data[:i] + _random_bytes(rng, 1) + data[i + 1:]


def insert_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    """Insert 1-8 random bytes (mostly not valid UTF-8)."""
    i = int(rng.integers(len(data) + 1))
    return data[:i] + _random_bytes(rng, int(rng.integers(1, 9))) + data[i:]


def insert_in_comment(rng: np.random.Generator, data: bytes) -> bytes:
    """Insert random high bytes into a comment (or add a comment line holding them)."""
    junk = bytes(int(b) | 0x80 for b in _random_bytes(rng, int(rng.integers(1, 6))))
    at = data.find(b";")
    if at < 0:
        return b"; " + junk + b"\n" + data
    return data[:at + 1] + junk + data[at + 1:]


def delete_span(rng: np.random.Generator, data: bytes) -> bytes:
    """Delete 1-20 bytes."""
    i = int(rng.integers(len(data)))
    return data[:i] + data[i + int(rng.integers(1, 21)):]


def _spans(data: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(data)]


def swap_tokens(rng: np.random.Generator, data: bytes) -> bytes:
    """Exchange two tokens."""
    spans = _spans(data)
    (a0, a1), (b0, b1) = sorted(spans[int(k)] for k in rng.choice(len(spans), 2, replace=False))
    return data[:a0] + data[b0:b1] + data[a1:b0] + data[a0:a1] + data[b1:]


def delete_token(rng: np.random.Generator, data: bytes) -> bytes:
    """Remove one token."""
    spans = _spans(data)
    start, end = spans[int(rng.integers(len(spans)))]
    return data[:start] + data[end:]


def duplicate_token(rng: np.random.Generator, data: bytes) -> bytes:
    """Repeat one token 1-3 times."""
    spans = _spans(data)
    start, end = spans[int(rng.integers(len(spans)))]
    return data[:end] + (b" " + data[start:end]) * int(rng.integers(1, 4)) + data[end:]


def replace_token(rng: np.random.Generator, data: bytes) -> bytes:
    """Replace one token by an awkward one."""
    spans = _spans(data)
    start, end = spans[int(rng.integers(len(spans)))]
    return data[:start] + AWKWARD_TOKENS[int(rng.integers(len(AWKWARD_TOKENS)))] + data[end:]


def duplicate_line(rng: np.random.Generator, data: bytes) -> bytes:
    """Repeat one line (a declaration twice, an assert twice, ...)."""
    lines = data.split(b"\n")
    k = int(rng.integers(len(lines)))
    return b"\n".join(lines[:k + 1] + [lines[k]] + lines[k + 1:])


def deep_nesting(rng: np.random.Generator, data: bytes, max_depth: int = 20_000) -> bytes:
    """Wrap a formula in up to ``max_depth`` ``(and``/``(or`` levels, or open or close many."""
    depth = int(rng.integers(1, max_depth + 1))
    kind = int(rng.integers(4))
    at = data.find(b"(assert (")
    if kind == 0 and at >= 0:  # valid: (assert (and (and ... formula)))
        body = at + len(b"(assert ")
        end = _matching(data, body)
        if end is not None:
            op = b"(and " if rng.random() < 0.5 else b"(or "
            return data[:body] + op * depth + data[body:end] + b")" * depth + data[end:]
    i = int(rng.integers(len(data) + 1))
    chunk = {0: b"(", 1: b"(", 2: b")", 3: b"(+ "}[kind]
    return data[:i] + chunk * depth + data[i:]


_PAREN = re.compile(rb"[()]")


def _matching(data: bytes, start: int) -> int | None:
    """Offset just after the ``)`` closing the ``(`` at ``start`` (comments ignored)."""
    depth = 0
    for match in _PAREN.finditer(data, start):
        depth += 1 if match[0] == b"(" else -1
        if depth == 0:
            return match.end()
    return None


def truncate(rng: np.random.Generator, data: bytes) -> bytes:
    """Cut the file anywhere."""
    return data[:int(rng.integers(len(data) + 1))]


MUTATIONS: dict[str, Callable[[np.random.Generator, bytes], bytes]] = {
    f.__name__: f for f in (flip_byte, insert_bytes, insert_in_comment, delete_span,
                            swap_tokens, delete_token, duplicate_token, replace_token,
                            duplicate_line, deep_nesting, truncate)
}


def _has_two_tokens(data: bytes) -> bool:
    return len(data) >= 2 and len(list(islice(_TOKEN.finditer(data), 2))) == 2


def mutant(rng: np.random.Generator, seeds: list[tuple[str, bytes]],
           max_depth: int = 20_000) -> tuple[str, bytes]:
    """One mutant: ``(description, bytes)``, from 1-3 random mutations of a random seed.

    ``max_depth`` bounds the nesting that :func:`deep_nesting` adds.
    """
    name, data = seeds[int(rng.integers(len(seeds)))]
    names = []
    for _ in range(int(rng.integers(1, 4))):
        kind = list(MUTATIONS)[int(rng.integers(len(MUTATIONS)))]
        if not _has_two_tokens(data):
            kind = "insert_bytes"
        if kind == "deep_nesting":
            data = deep_nesting(rng, data, max_depth)
        else:
            data = MUTATIONS[kind](rng, data)
        names.append(kind)
    return f"{name}: {'+'.join(names)}", data


@dataclass
class Campaign:
    """Counts of a fuzz run and the first few failures."""

    parsed: int = 0
    spec_errors: int = 0
    untyped: int = 0
    multi_line_messages: int = 0
    bad_properties: int = 0
    by_error: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Mutants tried."""
        return self.parsed + self.spec_errors + self.untyped

    def note(self, what: str, description: str, detail: str, keep: int = 10) -> None:
        if len(self.failures) < keep:
            self.failures.append(f"{what} [{description}]: {detail}")


def check(description: str, data: bytes, campaign: Campaign, parse: Parse) -> None:
    """Parse one mutant with ``parse`` and record the outcome in ``campaign``."""
    try:
        props = parse(data, "mutant.vnnlib")
    except VerirepairError as exc:
        campaign.spec_errors += 1
        campaign.by_error[type(exc).__name__] += 1
        text = str(exc)
        if "\n" in text or "\r" in text or len(text.splitlines()) != 1:
            campaign.multi_line_messages += 1
            campaign.note("multi-line message", description, repr(text[:200]))
        return
    except Exception as exc:  # noqa: BLE001 -- counting these is the point
        campaign.untyped += 1
        campaign.by_error[type(exc).__name__] += 1
        campaign.note("untyped", description,
                      "".join(traceback.format_exception_only(exc)).strip()[:300])
        return
    campaign.parsed += 1
    for prop in props:
        finite = all(np.isfinite(box.lower).all() and np.isfinite(box.upper).all()
                     for box in prop.input_boxes)
        finite = finite and all(np.isfinite(p.A).all() and np.isfinite(p.b).all()
                                for p in prop.unsafe)
        if not finite:
            campaign.bad_properties += 1
            campaign.note("non-finite property", description, prop.name)


def run(count: int, seed: int, parse: Parse | None = None, max_depth: int = 20_000) -> Campaign:
    """Parse ``count`` mutants drawn with ``seed`` (default parser: ``parse_vnnlib_bytes``)."""
    if parse is None:
        from verirepair.properties.vnnlib import parse_vnnlib_bytes as parse
    rng = np.random.default_rng(seed)
    seeds = seed_files()
    campaign = Campaign()
    for _ in range(count):
        description, data = mutant(rng, seeds, max_depth)
        check(description, data, campaign, parse)
    return campaign
