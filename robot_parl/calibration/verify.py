"""Verification: reprojection error, agreement between hand-eye methods, and drift against a stored file.

The drift check compares a fresh capture with the stored calibration: the fresh images' reprojection
error under the stored intrinsics, and, when the capture allows, a fresh fit's focal lengths,
principal point and extrinsics against the stored ones. Each comparison is a :class:`Check` against a
threshold; any exceeded check is reported with a :class:`CalibrationDriftWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from robot_parl.calibration.detect import BoardDetection, BoardDetector
from robot_parl.calibration.errors import CalibrationDriftWarning, CalibrationError
from robot_parl.calibration.geometry import pose_difference
from robot_parl.calibration.hand_eye import HandEyeResult
from robot_parl.robots.camera_calibration import CameraCalibration


@dataclass
class DriftThresholds:
    """How far a fresh capture may disagree with the stored calibration before it is called drift."""

    focal_pct: float = 1.0  # relative change of fx or fy, percent
    principal_px: float = 5.0  # shift of the principal point, pixels
    # Fresh views' RMS error under the stored intrinsics may reach max(reprojection_px,
    # reprojection_factor x the stored fit's own RMS). Each view's own board pose absorbs much of a
    # focal-length change, so this check mostly catches lens changes (distortion, refocus); a fresh
    # fit from enough views is what compares focal lengths.
    reprojection_px: float = 0.5
    reprojection_factor: float = 3.0
    rotation_deg: float = 1.0  # extrinsics, and the spread between hand-eye methods
    translation_mm: float = 5.0
    # Intrinsics changes within this many standard deviations of the two fits' difference are noise.
    noise_sigmas: float = 3.0


@dataclass
class Check:
    """One measured disagreement and the threshold it is held to."""

    name: str
    value: float
    threshold: float
    unit: str

    @property
    def exceeded(self) -> bool:
        return not self.value <= self.threshold  # NaN counts as exceeded

    def __str__(self) -> str:
        mark = "DRIFT" if self.exceeded else "ok"
        return f"{self.name}: {self.value:.3f} {self.unit} (threshold {self.threshold:g} {self.unit}) {mark}"


@dataclass
class DriftReport:
    """The checks of one verification; ``drifted`` when any exceeds its threshold."""

    checks: list[Check] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(c.exceeded for c in self.checks)

    @property
    def exceeded(self) -> list[Check]:
        return [c for c in self.checks if c.exceeded]

    def summary(self) -> str:
        return "\n".join(str(c) for c in self.checks)


def reprojection_errors(detections: Mapping[str, BoardDetection], detector: BoardDetector,
                        calib: CameraCalibration) -> dict[str, float]:
    """Per view: RMS error (px) of the best board pose under ``calib``'s intrinsics (PnP per view)."""
    return {name: detector.pose(det, calib.K, calib.D)[1] for name, det in detections.items()}


def methods_spread(results: Mapping[str, HandEyeResult]) -> tuple[float, float]:
    """The largest pairwise disagreement between hand-eye solutions: (degrees, millimetres)."""
    items = list(results.values())
    worst_deg, worst_mm = 0.0, 0.0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            deg, metres = pose_difference(items[i].transform, items[j].transform)
            worst_deg, worst_mm = max(worst_deg, deg), max(worst_mm, 1e3 * metres)
    return worst_deg, worst_mm


def consistency_checks(results: Mapping[str, HandEyeResult],
                       thresholds: DriftThresholds | None = None) -> list[Check]:
    """Checks that the hand-eye methods agree: a spread beyond the thresholds means noisy or bad data."""
    if len(results) < 2:
        raise ValueError(f"comparing hand-eye methods needs at least two results, got {list(results)}")
    t = thresholds or DriftThresholds()
    deg, mm = methods_spread(results)
    names = "/".join(results)
    return [Check(f"hand-eye methods ({names}) rotation spread", deg, t.rotation_deg, "deg"),
            Check(f"hand-eye methods ({names}) translation spread", mm, t.translation_mm, "mm")]


def _std(calib: CameraCalibration) -> np.ndarray:
    """Standard deviations of fx, fy, cx, cy of a fit (zeros when the file does not record them)."""
    std = np.asarray(calib.errors.std_px, np.float64)
    return std[:4] if std.shape == (4,) else np.zeros(4)


def compare_calibrations(stored: CameraCalibration, fresh: CameraCalibration,
                         thresholds: DriftThresholds | None = None) -> list[Check]:
    """Checks of a fresh calibration's intrinsics (and extrinsics, when both have them) against the stored one."""
    t = thresholds or DriftThresholds()
    if stored.image_size != fresh.image_size:
        raise CalibrationError(f"fresh capture is {fresh.width}x{fresh.height} but the stored calibration of "
                               f"{stored.camera} is for {stored.width}x{stored.height}; capture at the stored size")
    ks, kf = stored.K, fresh.K
    # Two fits of an unchanged camera differ by their estimation noise: a change counts as drift only
    # past the threshold and past ``noise_sigmas`` standard deviations of that difference.
    noise = np.hypot(_std(stored), _std(fresh))  # of fx, fy, cx, cy, pixels
    checks = [Check("focal length fx change", 100 * abs(kf[0, 0] / ks[0, 0] - 1),
                    max(t.focal_pct, 100 * t.noise_sigmas * noise[0] / ks[0, 0]), "%"),
              Check("focal length fy change", 100 * abs(kf[1, 1] / ks[1, 1] - 1),
                    max(t.focal_pct, 100 * t.noise_sigmas * noise[1] / ks[1, 1]), "%"),
              Check("principal point shift", float(np.hypot(kf[0, 2] - ks[0, 2], kf[1, 2] - ks[1, 2])),
                    max(t.principal_px, t.noise_sigmas * float(np.hypot(noise[2], noise[3]))), "px")]
    if stored.extrinsics is not None and fresh.extrinsics is not None:
        if stored.extrinsics.setup != fresh.extrinsics.setup:
            raise CalibrationError(f"stored extrinsics are {stored.extrinsics.setup} but the fresh ones are "
                                   f"{fresh.extrinsics.setup}")
        deg, metres = pose_difference(stored.extrinsics.matrix, fresh.extrinsics.matrix)
        checks += [Check("extrinsics rotation change", deg, t.rotation_deg, "deg"),
                   Check("extrinsics translation change", 1e3 * metres, t.translation_mm, "mm")]
    return checks


def check_drift(stored: CameraCalibration, fresh: CameraCalibration | None = None,
                view_errors: Mapping[str, float] | None = None, thresholds: DriftThresholds | None = None,
                extra: Iterable[Check] = (), warn: bool = True) -> DriftReport:
    """The drift report of a fresh capture against ``stored``; warns (CalibrationDriftWarning) on drift.

    ``fresh``: a calibration fitted to the fresh capture (intrinsics, optionally extrinsics);
    ``view_errors``: the fresh views' RMS reprojection errors under the stored intrinsics
    (:func:`reprojection_errors`); ``extra``: further checks, e.g. :func:`consistency_checks`.
    """
    t = thresholds or DriftThresholds()
    checks = list(extra)
    if view_errors:
        errors = np.asarray(list(view_errors.values()), np.float64)
        limit = max(t.reprojection_px, t.reprojection_factor * stored.errors.rms_px)
        checks.insert(0, Check(f"reprojection error under the stored intrinsics ({len(errors)} views)",
                               float(np.sqrt(np.mean(errors**2))), limit, "px"))
    if fresh is not None:
        checks += compare_calibrations(stored, fresh, t)
    if not checks:
        raise ValueError("check_drift needs a fresh calibration, fresh view errors or extra checks")
    report = DriftReport(checks)
    if warn and report.drifted:
        warnings.warn(f"calibration drift of {stored.camera} on rig {stored.rig} (stored {stored.date}): "
                      + "; ".join(str(c) for c in report.exceeded), CalibrationDriftWarning, stacklevel=2)
    return report
