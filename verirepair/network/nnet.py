"""Read Stanford ``.nnet`` files (the original ACAS Xu distribution format).

Pipeline position: ``file.nnet --load_nnet--> Network``, an alternative to
``load_onnx`` at the start of the pipeline.

Format (Kyle Julian, Stanford 2016), comma-separated with trailing commas:

1. header comment lines starting with ``//``;
2. ``n_layers, n_inputs, n_outputs, max_layer_size``;
3. the ``n_layers + 1`` layer sizes, input first;
4. an unused flag line;
5. input minima, input maxima (``n_inputs`` each);
6. means and ranges (``n_inputs + 1`` each; the last entry is the output's);
7. per layer: ``out`` weight rows of ``in`` values, then ``out`` bias lines.

The network keeps the raw weights, i.e. it works on *normalised* inputs and
emits raw outputs; the header goes into :class:`Normalization`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from verirepair.errors import NetworkFormatError
from verirepair.network.model import AffineLayer, Network, Normalization, SourceGraph

__all__ = ["load_nnet"]

#: Longest excerpt of a bad line quoted in an error message.
_EXCERPT_CHARS = 60


def _show(path: str | os.PathLike) -> str:
    """The path as given, or its repr when it holds a newline or control character."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _excerpt(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "...")


class _Lines:
    """Numbered, comment-free lines of a ``.nnet`` file, read as float rows."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self._lines: Iterator[tuple[int, str]] = (
            # split on "\n" only, so that line numbers are an editor's (splitlines
            # would also break at form feeds and other separators)
            (number, line) for number, line in enumerate(text.split("\n"), start=1)
            if line.strip() and not line.lstrip().startswith("//"))
        self.line = 0

    def error(self, message: str, line: int | None = None) -> NetworkFormatError:
        return NetworkFormatError(f"{self.path}: line {line or self.line}: {message}")

    def row(self, count: int | None, what: str) -> list[float]:
        """The next line's values; exactly ``count`` of them unless ``count`` is None."""
        try:
            self.line, text = next(self._lines)
        except StopIteration:
            if not self.line:
                raise NetworkFormatError(f"{self.path}: no data lines (only comments or blank "
                                         f"lines) while reading {what}") from None
            raise self.error(f"unexpected end of file while reading {what}") from None
        fields = [field.strip() for field in text.split(",")]
        if fields and fields[-1] == "":
            fields.pop()  # the format ends every line with a comma
        try:
            if any("_" in field for field in fields):  # float() would read "1_0" as 10
                raise ValueError("digit separator")
            values = [float(field) for field in fields]
        except ValueError:
            raise self.error(f"{what}: expected comma-separated numbers, got "
                             f"{_excerpt(text)}") from None
        if count is not None and len(values) != count:
            raise self.error(f"{what}: expected {count} values, got {len(values)}")
        if not all(np.isfinite(values)):
            raise self.error(f"{what}: values must be finite")
        return values

    def remaining(self) -> int | None:
        """Line number of the first unread non-comment line, if any."""
        for number, _ in self._lines:
            return number
        return None


def _sizes(lines: _Lines) -> list[int]:
    head = lines.row(None, "the sizes line (n_layers, n_inputs, n_outputs, max_size)")
    if len(head) < 3 or any(v != int(v) or v < 1 for v in head[:3]):
        raise lines.error("the sizes line must start with three positive integers")
    n_layers, n_inputs, n_outputs = (int(v) for v in head[:3])
    values = lines.row(n_layers + 1, "the layer sizes")
    if any(v != int(v) or v < 1 for v in values):
        raise lines.error("layer sizes must be positive integers")
    sizes = [int(v) for v in values]
    if sizes[0] != n_inputs or sizes[-1] != n_outputs:
        raise lines.error(f"layer sizes {sizes} disagree with {n_inputs} inputs and "
                          f"{n_outputs} outputs")
    return sizes


def _normalization(lines: _Lines, n_inputs: int) -> Normalization:
    lines.row(None, "the unused flag line")
    minima = lines.row(n_inputs, "the input minima")
    maxima = lines.row(n_inputs, "the input maxima")
    means = lines.row(n_inputs + 1, "the means (inputs, then output)")
    ranges = lines.row(n_inputs + 1, "the ranges (inputs, then output)")
    if any(r == 0 for r in ranges):
        raise lines.error("ranges must be non-zero")
    return Normalization(tuple(minima), tuple(maxima), tuple(means[:-1]), tuple(ranges[:-1]),
                         means[-1], ranges[-1])


def load_nnet(path: str | os.PathLike) -> Network:
    """Read a Stanford ``.nnet`` network.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    Network
        Raw weights ``(out, in)`` per layer, ReLU after every layer but the
        last; ``normalization`` holds the header; ``source`` is an ``"nnet"``
        :class:`SourceGraph`; the name is the file stem.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    NetworkFormatError
        For a directory, an empty file, bytes that are not UTF-8 text, or
        malformed content (non-numeric, wrong counts, truncated, trailing
        data); the message is one line and names the file and line.
    """
    path = Path(path)
    where = _show(path)
    if path.is_dir():
        raise NetworkFormatError(f"{where}: is a directory, not a .nnet network file")
    if not path.is_file():
        raise FileNotFoundError(2, ".nnet network file not found", str(path))
    data = path.read_bytes()
    if not data.strip():
        raise NetworkFormatError(f"{where}: the file is empty, not a .nnet network")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise NetworkFormatError(f"{where}: line {line}, column {column}: byte "
                                 f"0x{data[exc.start]:02x} is not UTF-8 text; a .nnet file "
                                 "is comma-separated text") from None
    try:
        return _parse(text, path, where)
    except (ValueError, TypeError, OverflowError, IndexError) as exc:  # safety net only
        raise NetworkFormatError(f"{where}: malformed .nnet file ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]})") from exc


def _parse(text: str, path: Path, where: str) -> Network:
    """The network in ``text`` (the content of ``path``)."""
    lines = _Lines(text, where)
    sizes = _sizes(lines)
    normalization = _normalization(lines, sizes[0])
    layers = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        weight = [lines.row(fan_in, f"layer {index} weight row {r}") for r in range(fan_out)]
        bias = [lines.row(1, f"layer {index} bias {r}")[0] for r in range(fan_out)]
        layers.append(AffineLayer(np.array(weight), np.array(bias), relu=index < len(sizes) - 2))
    extra = lines.remaining()
    if extra is not None:
        raise lines.error("unexpected content after the last layer", line=extra)
    return Network(tuple(layers), path.stem, normalization, SourceGraph("nnet", str(path)))
