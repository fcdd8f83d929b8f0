"""load_nnet: the Stanford format, a hand-written file and malformed variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.errors import NetworkFormatError
from verirepair.network import load_nnet

# 2 inputs -> 3 hidden (ReLU) -> 1 output
TINY = """\
// a comment
// another comment
2,2,1,3,
2,3,1,
0,
-1.0,0.0,
1.0,10.0,
0.5,5.0,7.0,
2.0,10.0,4.0,
1.0,0.0,
0.0,1.0,
1.0,1.0,
0.0,
-1.0,
0.5,
1.0,-1.0,2.0,
0.25,
"""


def _write(tmp_path: Path, text: str, name: str = "tiny.nnet") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tiny_file_gives_the_hand_written_network(tmp_path) -> None:
    network = load_nnet(_write(tmp_path, TINY))
    assert network.name == "tiny" and network.source.format == "nnet"
    assert [layer.relu for layer in network.layers] == [True, False]
    np.testing.assert_array_equal(network.layers[0].weight, [[1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(network.layers[0].bias, [0, -1, 0.5])
    np.testing.assert_array_equal(network.layers[1].weight, [[1, -1, 2]])
    np.testing.assert_array_equal(network.layers[1].bias, [0.25])
    # x = (2, 3): h = relu(2, 2, 5.5) -> y = 2 - 2 + 11 + 0.25 = 11.25 (no normalisation applied)
    np.testing.assert_array_equal(network.forward(np.array([[2.0, 3.0]])), [[11.25]])


def test_header_goes_into_normalization(tmp_path) -> None:
    norm = load_nnet(_write(tmp_path, TINY)).normalization
    assert norm.input_min == (-1.0, 0.0) and norm.input_max == (1.0, 10.0)
    assert norm.input_mean == (0.5, 5.0) and norm.input_range == (2.0, 10.0)
    assert (norm.output_mean, norm.output_range) == (7.0, 4.0)
    # (clip(3, -1, 1) - 0.5) / 2 = 0.25 and (clip(-4, 0, 10) - 5) / 10 = -0.5
    np.testing.assert_array_equal(norm.normalize_inputs(np.array([[3.0, -4.0]])), [[0.25, -0.5]])
    np.testing.assert_array_equal(norm.denormalize_outputs(np.array([[1.0]])), [[11.0]])


def _replace_line(text: str, line: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("line,new,match", [
    (3, "x,2,1,3,", "line 3: .*comma-separated numbers"),
    (4, "2,3,", "line 4: the layer sizes: expected 3 values, got 2"),
    (4, "3,3,1,", "line 4: layer sizes .* disagree"),
    (7, "1.0,", "line 7: the input maxima: expected 2 values, got 1"),
    (9, "2.0,0.0,4.0,", "line 9: ranges must be non-zero"),
    (11, "0.0,1.0,5.0,", "line 11: layer 0 weight row 1: expected 2 values, got 3"),
    (14, "nan,", "line 14: layer 0 bias 1: .*finite"),
    (16, "1.0,-1.0,", "line 16: layer 1 weight row 0: expected 3 values"),
])
def test_malformed_lines_are_reported_with_their_number(line, new, match, tmp_path) -> None:
    with pytest.raises(NetworkFormatError, match=match):
        load_nnet(_write(tmp_path, _replace_line(TINY, line, new)))


def test_truncated_file_reports_end_of_file(tmp_path) -> None:
    with pytest.raises(NetworkFormatError, match="line 16: unexpected end of file.*layer 1 bias 0"):
        load_nnet(_write(tmp_path, _replace_line(TINY, 17, None)))


def test_trailing_content_is_rejected(tmp_path) -> None:
    with pytest.raises(NetworkFormatError, match="line 18: unexpected content"):
        load_nnet(_write(tmp_path, TINY + "1.0,\n"))


def test_missing_file_and_binary_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.nnet"):
        load_nnet(tmp_path / "absent.nnet")
    (tmp_path / "binary.nnet").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(NetworkFormatError, match="binary.nnet"):
        load_nnet(tmp_path / "binary.nnet")
