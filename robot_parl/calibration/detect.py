"""ChArUco corners in one image, and the board's pose in the camera from them (PnP).

Images follow the project's convention: RGB uint8 HxWx3 (or grey HxW).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_parl.calibration.board import BoardSpec, cv_board
from robot_parl.calibration.geometry import from_rvec_tvec

# Fewer corners than this (or all on one line) make a view useless for calibration and for PnP.
MIN_CORNERS = 6


@dataclass
class BoardDetection:
    """ChArUco corners found in one image: pixel positions (N, 2) and corner ids (N,)."""

    corners: np.ndarray
    ids: np.ndarray
    markers: int  # ArUco markers found (corners are interpolated from them)

    def __len__(self) -> int:
        return len(self.ids)


class BoardDetector:
    """Finds one board's ChArUco corners and estimates the board's pose in the camera."""

    def __init__(self, spec: BoardSpec):
        import cv2

        self.spec = spec
        self.board = cv_board(spec)
        self._detector = cv2.aruco.CharucoDetector(self.board)
        self._object = np.asarray(self.board.getChessboardCorners(), np.float64)

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        """The board's corners in ``image``, or None when fewer than MIN_CORNERS usable corners show."""
        import cv2

        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected an RGB uint8 HxWx3 or grey HxW image, got {image.dtype} {image.shape}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, marker_corners, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) < MIN_CORNERS:
            return None
        if self.board.checkCharucoCornersCollinear(ids):
            return None
        return BoardDetection(corners.reshape(-1, 2).astype(np.float64), ids.reshape(-1).astype(np.int32),
                              0 if marker_corners is None else len(marker_corners))

    def object_points(self, detection: BoardDetection) -> np.ndarray:
        """The detected corners' positions on the board (N, 3), metres, board frame."""
        return self._object[detection.ids]

    def pose(self, detection: BoardDetection, camera_matrix: np.ndarray,
             dist_coeffs: np.ndarray) -> tuple[np.ndarray, float]:
        """The board's pose in the camera (4x4, camera_T_board) and the fit's RMS reprojection error (px)."""
        import cv2

        obj = self.object_points(detection)
        img = detection.corners
        # IPPE is exact for planar targets and returns the right one of the two mirror solutions;
        # Levenberg-Marquardt then polishes it against lens distortion.
        ok, rvec, tvec = cv2.solvePnP(obj, img, camera_matrix, dist_coeffs, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            raise ValueError(f"PnP failed on {len(detection)} corners")
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, camera_matrix, dist_coeffs, rvec, tvec)
        return from_rvec_tvec(rvec, tvec), reprojection_rms(obj, img, rvec, tvec, camera_matrix, dist_coeffs)


def reprojection_rms(object_points: np.ndarray, image_points: np.ndarray, rvec: Any, tvec: Any,
                     camera_matrix: np.ndarray, dist_coeffs: np.ndarray) -> float:
    """RMS distance in pixels between ``image_points`` and the projection of ``object_points``."""
    import cv2

    projected, _ = cv2.projectPoints(np.asarray(object_points, np.float64), rvec, tvec, camera_matrix, dist_coeffs)
    diff = projected.reshape(-1, 2) - np.asarray(image_points, np.float64).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum(diff**2, axis=1))))
