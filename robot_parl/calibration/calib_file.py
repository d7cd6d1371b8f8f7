"""Calibration files from fits: the measured intrinsics and hand-eye results as the file robots read
(``robot_parl.robots.camera_calibration``)."""

from __future__ import annotations

import dataclasses
import datetime

from robot_parl import typed_config
from robot_parl.calibration.hand_eye import HandEyeResult
from robot_parl.calibration.intrinsics import IntrinsicsResult
from robot_parl.robots.camera_calibration import CameraCalibration, ErrorStats, Extrinsics, plain


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def from_intrinsics(result: IntrinsicsResult, rig: str, camera: str, board: str) -> CameraCalibration:
    """A calibration (no extrinsics yet) from an intrinsics fit (``calibrate_intrinsics``)."""
    calib = CameraCalibration(
        rig=rig, camera=camera, date=_now(), board=board, image_size=[int(v) for v in result.image_size],
        camera_matrix=plain(result.camera_matrix), distortion=plain(result.dist_coeffs),
        errors=ErrorStats(rms_px=float(result.rms_px), views_used=len(result.view_errors),
                          per_view_px=plain(result.view_errors), rejected=dict(result.rejected),
                          std_px=plain(result.std_px)))
    typed_config.validate(calib)
    return calib


def with_extrinsics(calib: CameraCalibration, result: HandEyeResult, spread: tuple[float, float] | None = None
                    ) -> CameraCalibration:
    """A copy of ``calib`` holding a hand-eye solution as its extrinsics.

    ``spread``: the largest rotation (degrees) and translation (mm) disagreement between methods.
    """
    ext = Extrinsics(setup=result.setup, parent_frame=result.parent_frame, camera_pose=plain(result.transform),
                     method=result.method, poses=int(result.poses), date=_now(),
                     rotation_residual_deg=float(result.rotation_residual_deg),
                     translation_residual_mm=float(result.translation_residual_mm),
                     methods_spread_deg=None if spread is None else float(spread[0]),
                     methods_spread_mm=None if spread is None else float(spread[1]))
    out = dataclasses.replace(calib, extrinsics=ext)
    typed_config.validate(out)
    return out
