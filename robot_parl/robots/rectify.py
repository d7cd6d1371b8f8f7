"""Undistort, crop and resize camera frames on the robot side, with maps computed once per camera.

The raw frame is undistorted into the view of an ideal pinhole camera that keeps only valid pixels
(alpha = 0: no black borders), centre-cropped to the output's aspect ratio and scaled to the output
size. All three are folded into one cv2.initUndistortRectifyMap, so each frame costs one cv2.remap;
when the output is more than twice smaller, the remap stops at the crop's full resolution and an
area-averaging resize follows, which avoids aliasing. Depth (16UC1) uses nearest-neighbour sampling
so no depth is invented between surfaces. No torch here: the robot side imports this.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from robot_parl.robots.camera_calibration import (
    CameraCalibration,
    camera_info_fields,
    load_calibration,
    resolve_calibration_path,
)


def _scaled(k: np.ndarray, sx: float, sy: float, ox: float = 0.0, oy: float = 0.0) -> np.ndarray:
    """The camera matrix after cropping at (ox, oy) and scaling by (sx, sy), with pixel centres at integers."""
    out = k.astype(np.float64).copy()
    out[0, 0] *= sx
    out[1, 1] *= sy
    out[0, 2] = sx * (k[0, 2] - ox + 0.5) - 0.5
    out[1, 2] = sy * (k[1, 2] - oy + 0.5) - 0.5
    return out


class Rectifier:
    """Maps raw frames of a calibrated camera to undistorted, cropped, resized frames."""

    def __init__(self, calib: CameraCalibration, out_size: tuple[int, int] | None = None, alpha: float = 0.0,
                 nearest: bool = False, source: str = ""):
        import cv2

        self.calib = calib
        self.source = source or f"the calibration of {calib.camera}"
        w, h = calib.width, calib.height
        out_w, out_h = out_size or (w, h)
        if out_w <= 0 or out_h <= 0:
            raise ValueError(f"output size must be positive, got {out_w}x{out_h}")
        self.out_size = (int(out_w), int(out_h))
        k_valid, _ = cv2.getOptimalNewCameraMatrix(calib.K, calib.D, (w, h), alpha, (w, h))
        # Largest centred window of the output's aspect ratio (floating point: remap needs no whole pixels).
        aspect = out_w / out_h
        crop_w, crop_h = (w, w / aspect) if w / h < aspect else (h * aspect, h)
        ox, oy = (w - crop_w) / 2, (h - crop_h) / 2
        self._interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        self._area = not nearest and out_w < crop_w / 2
        stage = (round(crop_w), round(crop_h)) if self._area else self.out_size
        k_stage = _scaled(k_valid, stage[0] / crop_w, stage[1] / crop_h, ox, oy)
        self._maps = cv2.initUndistortRectifyMap(calib.K, calib.D, None, k_stage, stage, cv2.CV_16SC2)
        self.camera_matrix = _scaled(k_stage, out_w / stage[0], out_h / stage[1]) if self._area else k_stage

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The rectified frame (same dtype and channels, ``out_size``)."""
        import cv2

        h, w = frame.shape[:2]
        if (w, h) != (self.calib.width, self.calib.height):
            raise ValueError(f"camera {self.calib.camera}: frame is {w}x{h} but {self.source} is for "
                             f"{self.calib.width}x{self.calib.height}")
        out = cv2.remap(frame, self._maps[0], self._maps[1], self._interp, borderMode=cv2.BORDER_CONSTANT)
        if self._area:
            out = cv2.resize(out, self.out_size, interpolation=cv2.INTER_AREA)
        return out

    def camera_info(self) -> dict[str, Any]:
        """CameraInfo fields of the rectified frames: no distortion, K = P's left block."""
        k = self.camera_matrix
        return camera_info_fields(self.out_size[0], self.out_size[1], k, np.zeros(5), np.hstack([k, np.zeros((3, 1))]))


def rectifiers_for(cameras: Iterable[Any]) -> dict[str, Rectifier]:
    """A Rectifier per camera spec that names a ``calibration`` file, producing frames of the spec's size."""
    out: dict[str, Rectifier] = {}
    for cam in cameras:
        path = getattr(cam, "calibration", None)
        if not path:
            continue
        resolved = resolve_calibration_path(path)
        out[cam.name] = Rectifier(load_calibration(resolved), (cam.width, cam.height),
                                  nearest=cam.encoding == "16UC1", source=f"calibration file {resolved}")
    return out
