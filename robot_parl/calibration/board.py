"""ChArUco board definitions (YAML in this package's boards/) and printable boards at true physical scale.

A board is ``squares_x`` columns by ``squares_y`` rows of chessboard squares with ArUco markers in the
white squares. Its frame (OpenCV's): origin at the board's top-left outer corner as printed, x along
the columns, y down the rows, z into the board; units are metres. ChArUco corners are the inner
chessboard corners, (squares_x - 1) * (squares_y - 1) of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_parl import typed_config
from robot_parl.typed_config import require

BOARDS_DIR = Path(__file__).resolve().parent / "boards"  # package data: a non-editable install carries them
METRES_PER_INCH = 0.0254
POINTS_PER_INCH = 72.0

# Markers per predefined dictionary (OpenCV's cv2.aruco.DICT_* names).
_SPECIAL_DICTIONARIES = {"DICT_ARUCO_ORIGINAL": 1024, "DICT_APRILTAG_16h5": 30, "DICT_APRILTAG_25h9": 35,
                         "DICT_APRILTAG_36h10": 2320, "DICT_APRILTAG_36h11": 587}
_SIZED_DICTIONARY = re.compile(r"DICT_([4-7])X\1_(50|100|250|1000)")


def dictionary_size(name: str) -> int | None:
    """How many markers the predefined dictionary ``name`` holds, or None if it is not one we know."""
    if name in _SPECIAL_DICTIONARIES:
        return _SPECIAL_DICTIONARIES[name]
    match = _SIZED_DICTIONARY.fullmatch(name)
    return int(match.group(2)) if match else None


@dataclass
class BoardSpec:
    """A ChArUco board as printed: squares, their side, the marker side and the ArUco dictionary."""

    name: str = "charuco_5x7_30mm"
    squares_x: int = 5
    squares_y: int = 7
    square_length_m: float = 0.03
    marker_length_m: float = 0.022
    dictionary: str = "DICT_5X5_100"
    # Boards made with OpenCV < 4.6 (or calib.io's older generator) start with a marker on even rows.
    legacy_pattern: bool = False

    @property
    def width_m(self) -> float:
        return self.squares_x * self.square_length_m

    @property
    def height_m(self) -> float:
        return self.squares_y * self.square_length_m

    @property
    def corner_count(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    @property
    def marker_count(self) -> int:
        return self.squares_x * self.squares_y // 2

    def validate(self) -> None:
        require(bool(self.name) and "/" not in self.name, "name", "a non-empty board name without '/'", self.name)
        require(self.squares_x >= 3 and self.squares_y >= 3, "squares_x", "at least 3 squares in each direction",
                (self.squares_x, self.squares_y))
        require(self.square_length_m > 0, "square_length_m", "a positive length in metres", self.square_length_m)
        require(self.square_length_m < 1.0, "square_length_m", "metres (a square under 1 m; is it in mm?)",
                self.square_length_m)
        require(0 < self.marker_length_m < self.square_length_m, "marker_length_m",
                f"a length in metres between 0 and the square length {self.square_length_m}", self.marker_length_m)
        size = dictionary_size(self.dictionary)
        require(size is not None, "dictionary", "a predefined ArUco dictionary such as DICT_5X5_100 or "
                f"one of {sorted(_SPECIAL_DICTIONARIES)}", self.dictionary)
        require(size is None or size >= self.marker_count, "dictionary",
                f"a dictionary with at least the board's {self.marker_count} markers", self.dictionary)


def load_board(name_or_path: str | Path) -> BoardSpec:
    """A board by name (boards/<name>.yaml in this package) or by path to a YAML file."""
    return typed_config.load_named(BoardSpec, name_or_path, BOARDS_DIR, "board")


def cv_board(spec: BoardSpec) -> Any:
    """The OpenCV ``cv2.aruco.CharucoBoard`` for ``spec``."""
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    board = cv2.aruco.CharucoBoard((spec.squares_x, spec.squares_y), spec.square_length_m, spec.marker_length_m,
                                   dictionary)
    board.setLegacyPattern(spec.legacy_pattern)
    return board


def board_image(spec: BoardSpec, width_px: int, height_px: int) -> np.ndarray:
    """The board drawn edge to edge as a uint8 grey image of ``height_px`` x ``width_px`` pixels."""
    image = cv_board(spec).generateImage((int(width_px), int(height_px)), marginSize=0, borderBits=1)
    return np.ascontiguousarray(image, np.uint8)


def printable_pixels(spec: BoardSpec, dpi: float) -> tuple[int, int]:
    """Width and height in pixels of the board printed at ``dpi`` (rounded to whole pixels)."""
    return (round(spec.width_m / METRES_PER_INCH * dpi), round(spec.height_m / METRES_PER_INCH * dpi))


def write_printable(spec: BoardSpec, out_dir: str | Path, dpi: float = 300.0) -> tuple[Path, Path]:
    """Write ``<name>.png`` (its DPI in the PNG metadata) and ``<name>.pdf`` (page = board size) to ``out_dir``.

    Print either at 100% scale ("actual size", no fit-to-page) and measure a square: it must be
    ``square_length_m``.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from PIL import Image

    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width_px, height_px = printable_pixels(spec, dpi)
    image = board_image(spec, width_px, height_px)
    png = out_dir / f"{spec.name}.png"
    Image.fromarray(image).save(png, dpi=(dpi, dpi))
    pdf = out_dir / f"{spec.name}.pdf"
    # The page is exactly the board, in inches; the image fills it without resampling.
    fig = Figure(figsize=(spec.width_m / METRES_PER_INCH, spec.height_m / METRES_PER_INCH))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="none", aspect="auto")
    with PdfPages(pdf, metadata={"Title": f"ChArUco board {spec.name}", "Subject": _describe(spec)}) as pages:
        pages.savefig(fig)
    return png, pdf


def _describe(spec: BoardSpec) -> str:
    return (f"{spec.squares_x}x{spec.squares_y} squares of {spec.square_length_m * 1e3:g} mm, markers "
            f"{spec.marker_length_m * 1e3:g} mm, {spec.dictionary}; print at 100% scale")
