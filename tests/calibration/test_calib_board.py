"""Board definitions and printable boards at true physical scale."""

import re

import numpy as np
import pytest
from PIL import Image

from robot_parl.calibration.board import BOARDS_DIR, BoardSpec, load_board, printable_pixels, write_printable
from robot_parl.calibration.detect import BoardDetector
from robot_parl.typed_config import ConfigError


def test_bundled_boards_load_and_name_their_file():
    names = sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))
    assert "charuco_5x7_30mm" in names
    for name in names:
        board = load_board(name)
        assert board.name == name
    board = load_board("charuco_5x7_30mm")
    assert (board.squares_x, board.squares_y, board.square_length_m) == (5, 7, 0.03)
    assert board.corner_count == 24


@pytest.mark.parametrize("override, key", [
    ({"marker_length_m": 0.03}, "marker_length_m"),
    ({"square_length_m": 30.0, "marker_length_m": 22.0}, "square_length_m"),
    ({"dictionary": "DICT_5X5_1OO"}, "dictionary"),
    ({"dictionary": "DICT_4X4_50", "squares_x": 11, "squares_y": 11}, "dictionary"),
    ({"squares_x": 2}, "squares_x"),
])
def test_impossible_boards_are_refused_naming_the_key(tmp_path, override, key):
    path = tmp_path / "board.yaml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in override.items()))
    with pytest.raises(ConfigError) as err:
        load_board(path)
    assert err.value.key == key


def test_unknown_board_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="charuco_5x7_30mm"):
        load_board("no_such_board")


@pytest.mark.parametrize("dpi", [150.0, 300.0])
def test_printable_board_has_true_physical_size(tmp_path, dpi):
    board = BoardSpec()
    png, pdf = write_printable(board, tmp_path, dpi)
    # PNG: pixels = size in inches x dpi, and the dpi is stored so that it prints at that size.
    image = Image.open(png)
    inches = np.array([board.width_m, board.height_m]) / 0.0254
    assert np.all(np.abs(np.array(image.size) - inches * dpi) <= 0.5)
    assert image.size == printable_pixels(board, dpi)
    # PNG stores whole pixels per metre: 150 dpi reads back as 150.012 (0.02 mm over the board).
    assert image.info["dpi"] == pytest.approx((dpi, dpi), rel=1e-3)
    # PDF: one page exactly the size of the board, in points (1/72 inch).
    text = pdf.read_bytes().decode("latin-1")
    boxes = re.findall(r"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", text)
    assert len(boxes) == 1
    assert [float(v) for v in boxes[0]] == pytest.approx(list(inches * 72), abs=0.01)


def test_printed_board_is_detected_with_every_corner(tmp_path):
    board = BoardSpec()
    png, _ = write_printable(board, tmp_path, 100.0)
    grey = np.array(Image.open(png).convert("L"))
    # A sheet lies on something darker than paper; the board's outer squares need contrast around them.
    framed = np.pad(grey, 40, constant_values=255)
    found = BoardDetector(board).detect(np.pad(framed, 20, constant_values=60))
    assert found is not None and sorted(found.ids.tolist()) == list(range(board.corner_count))
