"""Camera intrinsics (camera matrix, plumb-bob distortion) from many views of a ChArUco board.

Every image must show the board (a missing board usually means a wrong board definition or camera),
unless ``allow_missing``. Views whose reprojection error stands out are rejected one at a time, the
worst first, and the camera refit without them. The result refuses to exist when it is not trustworthy:
too few views, an overall error above ``max_rms_px``, or focal lengths the views do not pin down
(all views fronto-parallel).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from robot_parl.calibration.board import BoardSpec
from robot_parl.calibration.detect import MIN_CORNERS, BoardDetection, BoardDetector
from robot_parl.calibration.errors import CalibrationError
from robot_parl.calibration.geometry import axis_spread_deg, from_rvec_tvec, rotation_from_rvec

# Fewer views than this leave the distortion poorly determined; 15-30 varied views are better.
MIN_VIEWS = 8
# RMS angle of the board's normals (camera frame) around their mean direction: below this, the views
# are all nearly parallel and the focal length is undetermined.
MIN_TILT_SPREAD_DEG = 8.0
# Views tried for rejection per round (worst first): bounds the refits on a poor capture.
MAX_SUSPECTS = 5


@dataclass
class IntrinsicsResult:
    """A fitted camera and how well it fits each view it kept."""

    camera_matrix: np.ndarray  # 3x3
    dist_coeffs: np.ndarray  # (5,) plumb bob: k1 k2 p1 p2 k3
    image_size: tuple[int, int]  # width, height
    rms_px: float
    view_errors: dict[str, float]  # per kept view: RMS reprojection error, pixels
    rejected: dict[str, str]  # per dropped view: why
    board_poses: dict[str, np.ndarray]  # per kept view: camera_T_board (4x4, metres)
    std_px: np.ndarray  # (4,) standard deviations of fx, fy, cx, cy (pixels)


def detect_views(views: Iterable[tuple[str, np.ndarray]], detector: BoardDetector
                 ) -> tuple[dict[str, BoardDetection], list[str], tuple[int, int]]:
    """Detect the board in each named image: (detections, names without the board, image size w x h)."""
    detections: dict[str, BoardDetection] = {}
    missing: list[str] = []
    size: tuple[int, int] | None = None
    first = ""
    for name, image in views:
        image_size = (int(image.shape[1]), int(image.shape[0]))
        if size is None:
            size, first = image_size, name
        elif image_size != size:
            raise CalibrationError(f"image {name} is {image_size[0]}x{image_size[1]} but {first} is "
                                   f"{size[0]}x{size[1]}: a calibration uses one camera at one resolution")
        found = detector.detect(image)
        if found is None:
            missing.append(name)
        else:
            detections[name] = found
    if size is None:
        raise CalibrationError("no images to calibrate from")
    return detections, missing, size


def calibrate_intrinsics(views: Iterable[tuple[str, np.ndarray]], board: BoardSpec, *, min_views: int = MIN_VIEWS,
                         allow_missing: bool = False, k_coefficients: int = 2, outlier_factor: float = 3.0,
                         min_reject_px: float = 0.5, max_rms_px: float = 1.0,
                         max_focal_std_pct: float = 1.0,
                         min_tilt_spread_deg: float = MIN_TILT_SPREAD_DEG) -> IntrinsicsResult:
    """Fit intrinsics to named RGB images of ``board``.

    ``k_coefficients`` = 2 fits k1, k2 (and tangential p1, p2) with k3 fixed at 0, as ROS's calibrator
    does by default: enough for most lenses and far less prone to overfitting; 3 frees k3 too.
    A view is rejected when its RMS error under a fit of the other views exceeds
    max(``min_reject_px``, ``outlier_factor`` x that fit's median view error).
    The board's normals must spread by ``min_tilt_spread_deg`` and the focal lengths' standard
    deviations stay under ``max_focal_std_pct``.
    Raises CalibrationError (naming the images or values at fault) instead of returning a bad fit.
    """
    import cv2

    if k_coefficients not in (2, 3):
        raise ValueError(f"k_coefficients must be 2 or 3, got {k_coefficients}")
    detector = BoardDetector(board)
    detections, missing, size = detect_views(views, detector)
    rejected: dict[str, str] = {}
    if missing and not allow_missing:
        raise CalibrationError(
            f"board {board.name!r} not found (fewer than {MIN_CORNERS} ChArUco corners) in {len(missing)} "
            f"image(s): {', '.join(missing)}; check that the board definition ({board.squares_x}x{board.squares_y}, "
            f"{board.dictionary}) matches the printed board, or skip these images (--skip-missing, allow_missing=True)")
    rejected.update({name: "board not found" for name in missing})
    total = len(detections) + len(missing)
    if len(detections) < min_views:
        where = f" (board not found in {', '.join(missing)})" if missing else ""
        raise CalibrationError(f"intrinsics need at least {min_views} views showing the board; got {len(detections)} "
                               f"of {total} image(s){where}")

    flags = cv2.CALIB_FIX_K3 if k_coefficients == 2 else 0

    def fit(names: list[str]) -> tuple:
        obj = [detector.object_points(detections[n]).astype(np.float32) for n in names]
        img = [detections[n].corners.astype(np.float32) for n in names]
        rms, k, dist, rvecs, tvecs, std_intr, _, per_view = cv2.calibrateCameraExtended(
            obj, img, size, None, None, flags=flags)
        return rms, k, dist, rvecs, tvecs, std_intr, np.asarray(per_view, np.float64).reshape(-1)

    used = list(detections)
    while True:
        rms, k, dist, rvecs, tvecs, std_intr, errors = fit(used)
        # A bad view also drags the fit towards itself, spreading its error over good views; so judge
        # each suspect by how well the fit of the other views explains it (held-out error).
        suspects = sorted((i for i in range(len(used)) if errors[i] > min_reject_px), key=lambda i: -errors[i])
        worst, worst_score, worst_error, worst_limit = -1, 1.0, 0.0, 0.0
        for i in suspects[:MAX_SUSPECTS] if len(used) > min_views else suspects[:1]:
            others = used[:i] + used[i + 1:]
            _, k_o, dist_o, _, _, _, errors_o = fit(others)
            held_out = detector.pose(detections[used[i]], k_o, dist_o)[1]
            limit = max(min_reject_px, outlier_factor * float(np.median(errors_o)))
            if held_out / limit > worst_score:
                worst, worst_score, worst_error, worst_limit = i, held_out / limit, held_out, limit
        if worst < 0:
            break
        name = used[worst]
        if len(used) - 1 < min_views:
            raise CalibrationError(f"view {name} has a reprojection error of {worst_error:.2f} px under the other "
                                   f"views' fit (limit {worst_limit:.2f} px), and dropping it would leave "
                                   f"{len(used) - 1} views, fewer than {min_views}; capture more sharp views")
        rejected[name] = f"reprojection error {worst_error:.2f} px under the other views' fit > {worst_limit:.2f} px"
        used.pop(worst)

    if rms > max_rms_px:
        raise CalibrationError(f"overall reprojection error {rms:.2f} px exceeds {max_rms_px} px over {len(used)} "
                               "views: blurred or motion-smeared images, a board that is not flat, or frames "
                               "from different cameras or resolutions")
    # Zhang's method needs board planes that are not all parallel: otherwise focal length trades
    # against distance, and the fit (and its own error estimate) can be confidently wrong.
    normals = [rotation_from_rvec(r)[:, 2] for r in rvecs]
    tilt_spread, _ = axis_spread_deg(normals)
    if tilt_spread < min_tilt_spread_deg:
        raise CalibrationError(f"the board is at nearly the same angle in all {len(used)} views (its normal "
                               f"spreads {tilt_spread:.1f} < {min_tilt_spread_deg} degrees), so the focal length "
                               "cannot be determined: tilt the board 20-45 degrees in different directions")
    std = np.asarray(std_intr, np.float64).reshape(-1)[:4]
    focal_std_pct = 100.0 * std[:2] / np.diag(k)[:2]
    if not np.all(np.isfinite(focal_std_pct)) or focal_std_pct.max() > max_focal_std_pct:
        raise CalibrationError(f"focal lengths poorly determined (standard deviation {focal_std_pct.max():.2f}% > "
                               f"{max_focal_std_pct}%) by {len(used)} views: tilt the board 20-45 degrees in "
                               "different directions and vary its distance")
    return IntrinsicsResult(
        camera_matrix=np.asarray(k, np.float64), dist_coeffs=np.asarray(dist, np.float64).reshape(-1)[:5],
        image_size=size, rms_px=float(rms), view_errors={n: float(e) for n, e in zip(used, errors)},
        rejected=rejected, board_poses={n: from_rvec_tvec(r, t) for n, r, t in zip(used, rvecs, tvecs)},
        std_px=std)
