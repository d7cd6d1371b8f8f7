"""The per-camera calibration file, calibration/<rig>/<camera>.yaml, and the CameraInfo it implies.

The data model robots read (a robot side rectifies frames with it, the ROS node publishes its CameraInfo);
``robot_parl.calibration`` is the tool that measures and writes these files.

One YAML file per camera: image size, camera matrix, plumb-bob distortion (k1 k2 p1 p2 k3), the error
statistics of the fit, the date, and optionally the extrinsics (the camera's pose in the robot base
or gripper frame, from hand-eye calibration). The camera frame is OpenCV's optical frame: x right,
y down, z forward. Files are written atomically (temporary file + rename): a failed or refused
calibration never leaves a partial or changed file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from robot_parl import typed_config
from robot_parl.files import atomic_write
from robot_parl.typed_config import require

SCHEMA_VERSION = 1
# Relative calibration paths are looked up from the working directory, then from a checkout's top (an
# editable install; the directory that holds robot_parl/).
CHECKOUT = Path(__file__).resolve().parents[2]
CALIBRATION_ROOT = Path("calibration")


def check_rigid(transform: np.ndarray, what: str, tol: float = 1e-4) -> np.ndarray:
    """``transform`` as a float64 4x4 array, or ValueError naming ``what`` if it is not a rigid transform."""
    t = np.asarray(transform, np.float64)
    if t.shape != (4, 4):
        raise ValueError(f"{what}: expected a 4x4 transform, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    r = t[:3, :3]
    if not np.allclose(t[3], [0, 0, 0, 1], atol=tol) or not np.allclose(r.T @ r, np.eye(3), atol=tol) \
            or np.linalg.det(r) < 0:
        raise ValueError(f"{what}: expected a rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)")
    return t


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


@dataclass
class ErrorStats:
    """How well the intrinsics fit the views they were computed from."""

    rms_px: float = 0.0
    views_used: int = 0
    per_view_px: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # view -> why it was left out
    std_px: list[float] = field(default_factory=list)  # standard deviations of fx, fy, cx, cy


@dataclass
class Extrinsics:
    """The camera's pose from hand-eye calibration: ``camera_pose`` = parent_T_camera (4x4, metres)."""

    setup: Literal["eye_in_hand", "eye_to_hand"] = "eye_to_hand"
    parent_frame: Literal["base", "gripper"] = "base"
    camera_pose: list[list[float]] = field(default_factory=lambda: np.eye(4).tolist())
    method: str = "tsai"
    poses: int = 0
    date: str = ""
    rotation_residual_deg: float = 0.0
    translation_residual_mm: float = 0.0
    # Largest disagreement between hand-eye methods on the same data (None: not compared).
    methods_spread_deg: float | None = None
    methods_spread_mm: float | None = None

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.camera_pose, np.float64)

    def validate(self) -> None:
        expected = "gripper" if self.setup == "eye_in_hand" else "base"
        require(self.parent_frame == expected, "parent_frame", f"{expected!r} for {self.setup}", self.parent_frame)
        try:
            check_rigid(self.matrix, "camera_pose", tol=1e-5)
        except ValueError as err:
            raise typed_config.ConfigError("camera_pose", str(err)) from None


@dataclass
class CameraCalibration:
    """One camera's calibration, as stored in calibration/<rig>/<camera>.yaml."""

    schema_version: int = SCHEMA_VERSION
    rig: str = ""
    camera: str = ""
    date: str = ""
    board: str = ""
    image_size: list[int] = field(default_factory=lambda: [0, 0])  # width, height in pixels
    distortion_model: Literal["plumb_bob"] = "plumb_bob"
    camera_matrix: list[list[float]] = field(default_factory=lambda: np.eye(3).tolist())
    distortion: list[float] = field(default_factory=lambda: [0.0] * 5)  # k1 k2 p1 p2 k3
    errors: ErrorStats = field(default_factory=ErrorStats)
    extrinsics: Extrinsics | None = None

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the standard symbol
        return np.asarray(self.camera_matrix, np.float64)

    @property
    def D(self) -> np.ndarray:  # noqa: N802
        return np.asarray(self.distortion, np.float64)

    @property
    def width(self) -> int:
        return self.image_size[0]

    @property
    def height(self) -> int:
        return self.image_size[1]

    def validate(self) -> None:
        require(self.schema_version == SCHEMA_VERSION, "schema_version", f"{SCHEMA_VERSION}", self.schema_version)
        require(_valid_name(self.rig), "rig", "a rig name without '/'", self.rig)
        require(_valid_name(self.camera), "camera", "a camera name without '/'", self.camera)
        require(len(self.image_size) == 2 and min(self.image_size) > 0, "image_size",
                "[width, height] in pixels", self.image_size)
        k = np.asarray(self.camera_matrix, np.float64)
        require(k.shape == (3, 3), "camera_matrix", "a 3x3 matrix", self.camera_matrix)
        require(k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1]) and k[1, 0] == 0, "camera_matrix",
                "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with positive focal lengths", self.camera_matrix)
        require(0 <= k[0, 2] <= self.image_size[0] and 0 <= k[1, 2] <= self.image_size[1], "camera_matrix",
                f"a principal point inside the {self.image_size[0]}x{self.image_size[1]} image", k[:2, 2].tolist())
        require(len(self.distortion) == 5, "distortion", "5 plumb-bob coefficients k1 k2 p1 p2 k3", self.distortion)


def calibration_path(rig: str, camera: str, root: str | Path = CALIBRATION_ROOT) -> Path:
    """Where a rig's camera calibration lives: ``<root>/<rig>/<camera>.yaml``."""
    for what, name in (("rig", rig), ("camera", camera)):
        if not _valid_name(name):
            raise ValueError(f"{what} name {name!r} must be non-empty and free of '/'")
    return Path(root) / rig / f"{camera}.yaml"


def resolve_calibration_path(path: str | Path) -> Path:
    """An existing calibration file: absolute, or relative to the working directory or the repository top."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, CHECKOUT / p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"calibration file {str(path)!r} not found (looked at "
                            f"{', '.join(str(c) for c in candidates)})")


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read and validate a calibration file (relative paths as in :func:`resolve_calibration_path`)."""
    return typed_config.load(CameraCalibration, resolve_calibration_path(path))


def plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (safe_dump refuses numpy types)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_calibration(calib: CameraCalibration, path: str | Path) -> Path:
    """Validate ``calib`` and write it to ``path`` atomically; returns the path."""
    typed_config.validate(calib)
    path = Path(path)
    text = (f"# Camera calibration of {calib.camera} on rig {calib.rig} (robot-parl calibrate; OpenCV optical frame,"
            " metres).\n" + yaml.safe_dump(plain(typed_config.to_dict(calib)), sort_keys=False,
                                           default_flow_style=None, width=120))
    atomic_write(path, lambda f: f.write(text), mode="w")
    return path


def camera_info_fields(width: int, height: int, k: np.ndarray, d: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """sensor_msgs/CameraInfo fields as plain lists: width, height, distortion_model, d, k, r (identity), p."""
    return {"width": int(width), "height": int(height), "distortion_model": "plumb_bob",
            "d": [float(v) for v in np.asarray(d, np.float64).reshape(-1)],
            "k": [float(v) for v in np.asarray(k, np.float64).reshape(9)],
            "r": [float(v) for v in np.eye(3).reshape(9)],
            "p": [float(v) for v in np.asarray(p, np.float64).reshape(12)]}


def camera_info(calib: CameraCalibration, alpha: float = 0.0) -> dict[str, Any]:
    """CameraInfo fields for the camera's raw (distorted) images.

    ``p`` is the projection of the rectified image, [K' | 0], where K' comes from
    getOptimalNewCameraMatrix with ``alpha`` (0: only valid pixels, as ROS's camera_calibration does).
    For frames already rectified on the robot side use ``Rectifier.camera_info()`` instead.
    """
    import cv2

    size = (calib.width, calib.height)
    new_k, _ = cv2.getOptimalNewCameraMatrix(calib.K, calib.D, size, alpha, size)
    return camera_info_fields(calib.width, calib.height, calib.K, calib.D, np.hstack([new_k, np.zeros((3, 1))]))
