"""Hand-eye calibration: where a camera sits relative to the robot, from robot poses and board poses.

- eye-in-hand: the camera rides on the gripper, the board stays put in the robot's world. Result: the
  camera's pose in the gripper frame (gripper_T_camera); its pose in the base is base_T_gripper @ that.
- eye-to-hand: the camera stays put, the board rides on the gripper. Result: the camera's pose in the
  robot base frame (base_T_camera), i.e. the camera-to-base extrinsics.

Inputs are, per capture, the gripper's pose in the base (base_T_gripper, from the robot's forward
kinematics, metres) and the board's pose in the camera (camera_T_board, from PnP). OpenCV's
calibrateHandEye solves AX = XB with one of five methods. Motions must rotate about at least two
different axes, or the problem is degenerate; :func:`check_motion` refuses such input with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robot_parl.calibration.errors import CalibrationError
from robot_parl.calibration.geometry import (
    axis_spread_deg,
    invert,
    make_transform,
    mean_transform,
    pose_difference,
    rvec_from_rotation,
)
from robot_parl.robots.camera_calibration import check_rigid

Setup = Literal["eye_in_hand", "eye_to_hand"]
SETUPS: tuple[str, ...] = ("eye_in_hand", "eye_to_hand")
# OpenCV's hand-eye methods by the names used in files and on the command line.
METHODS: dict[str, str] = {"tsai": "CALIB_HAND_EYE_TSAI", "park": "CALIB_HAND_EYE_PARK",
                           "horaud": "CALIB_HAND_EYE_HORAUD", "andreff": "CALIB_HAND_EYE_ANDREFF",
                           "daniilidis": "CALIB_HAND_EYE_DANIILIDIS"}
MIN_POSES = 5
# Relative motions rotating less than this carry too little rotation to tell their axis from noise.
MIN_ROTATION_DEG = 5.0
# RMS angle of the motions' rotation axes from their dominant axis: below this they are one axis.
MIN_AXIS_SPREAD_DEG = 10.0
# Robot translations far beyond a robot's reach mean millimetres where metres are expected.
MAX_TRANSLATION_M = 5.0


@dataclass
class HandEyeResult:
    """A hand-eye solution and how consistently it explains every capture."""

    setup: str
    method: str
    transform: np.ndarray  # eye_in_hand: gripper_T_camera; eye_to_hand: base_T_camera (4x4, metres)
    target: np.ndarray  # the board's fixed pose: eye_in_hand: base_T_board; eye_to_hand: gripper_T_board
    rotation_residual_deg: float  # RMS over captures of each capture's board pose from ``target``
    translation_residual_mm: float
    poses: int

    @property
    def parent_frame(self) -> str:
        """The frame ``transform`` is expressed in."""
        return "gripper" if self.setup == "eye_in_hand" else "base"

    def camera_in_base(self, base_T_gripper: np.ndarray | None = None) -> np.ndarray:
        """The camera's pose in the robot base (eye-in-hand: at the given gripper pose)."""
        if self.setup == "eye_to_hand":
            return self.transform.copy()
        if base_T_gripper is None:
            raise ValueError("eye-in-hand: the camera's pose in the base depends on the gripper pose; pass it")
        return check_rigid(base_T_gripper, "base_T_gripper") @ self.transform


def _check_setup(setup: str, method: str) -> None:
    if setup not in SETUPS:
        raise ValueError(f"unknown hand-eye setup {setup!r}; expected one of {list(SETUPS)}")
    if method not in METHODS:
        raise ValueError(f"unknown hand-eye method {method!r}; expected one of {list(METHODS)}")


def _robot_motions(gripper_poses: Sequence[np.ndarray], setup: str) -> list[np.ndarray]:
    """The robot poses OpenCV takes as 'gripper to base' for ``setup`` (inverted for eye-to-hand)."""
    poses = [check_rigid(p, f"robot pose {i}") for i, p in enumerate(gripper_poses)]
    return poses if setup == "eye_in_hand" else [invert(p) for p in poses]


def check_motion(gripper_poses: Sequence[np.ndarray], min_poses: int = MIN_POSES,
                 min_rotation_deg: float = MIN_ROTATION_DEG, min_axis_spread_deg: float = MIN_AXIS_SPREAD_DEG) -> None:
    """Raise CalibrationError unless the robot poses can determine a hand-eye transform.

    Needs ``min_poses`` poses, translations in metres, and relative rotations between poses of at
    least ``min_rotation_deg`` about axes that spread by at least ``min_axis_spread_deg`` (RMS angle
    from the dominant axis): rotations about one axis leave the transform's translation along that
    axis undetermined, and pure translations leave its rotation undetermined.
    """
    poses = [check_rigid(p, f"robot pose {i}") for i, p in enumerate(gripper_poses)]
    if len(poses) < min_poses:
        raise CalibrationError(f"hand-eye calibration needs at least {min_poses} robot poses with the board "
                               f"detected; got {len(poses)} (10-20 varied poses are better)")
    reach = float(np.median([np.linalg.norm(p[:3, 3]) for p in poses]))
    if reach > MAX_TRANSLATION_M:
        raise CalibrationError(f"robot pose translations have a median length of {reach:.1f}; expected metres "
                               f"(under {MAX_TRANSLATION_M} m): are they in millimetres?")
    axes, largest = [], 0.0
    for i in range(len(poses)):
        for j in range(i + 1, len(poses)):
            rvec = rvec_from_rotation(poses[i][:3, :3].T @ poses[j][:3, :3])
            angle = float(np.degrees(np.linalg.norm(rvec)))
            largest = max(largest, angle)
            if angle >= min_rotation_deg:
                axes.append(rvec / np.linalg.norm(rvec))
    if not axes:
        raise CalibrationError(f"degenerate hand-eye motion: the gripper turns by at most {largest:.1f} degrees "
                               f"between any two of the {len(poses)} poses (pure translations); rotate it by "
                               "15-45 degrees about at least two different axes between captures")
    spread, line = axis_spread_deg(axes)
    if spread < min_axis_spread_deg:
        axis = np.round(line, 2).tolist()
        raise CalibrationError(f"degenerate hand-eye motion: all rotations between the {len(poses)} poses are about "
                               f"nearly one axis ({axis}; spread {spread:.1f} < "
                               f"{min_axis_spread_deg} degrees); rotate the gripper about at least two different "
                               "axes between captures")


def calibrate_hand_eye(gripper_poses: Sequence[np.ndarray], board_poses: Sequence[np.ndarray],
                       setup: Setup = "eye_in_hand", method: str = "tsai", min_poses: int = MIN_POSES) -> HandEyeResult:
    """Solve hand-eye from paired base_T_gripper and camera_T_board poses (see the module docstring)."""
    import cv2

    _check_setup(setup, method)
    if len(gripper_poses) != len(board_poses):
        raise ValueError(f"got {len(gripper_poses)} robot poses but {len(board_poses)} board poses; expected pairs")
    robot = _robot_motions(gripper_poses, setup)
    check_motion(robot, min_poses)
    boards = [check_rigid(p, f"board pose {i}") for i, p in enumerate(board_poses)]
    rotation, translation = cv2.calibrateHandEye(
        [p[:3, :3] for p in robot], [p[:3, 3] for p in robot], [p[:3, :3] for p in boards],
        [p[:3, 3] for p in boards], method=getattr(cv2, METHODS[method]))
    if rotation is None or not np.isfinite(rotation).all() or not np.isfinite(translation).all():
        raise CalibrationError(f"hand-eye method {method!r} found no solution for these {len(robot)} poses")
    transform = make_transform(rotation, translation)
    # The board is fixed in the base (eye-in-hand) or in the gripper (eye-to-hand): each capture's estimate
    # of that fixed pose should agree; their spread is the solution's residual.
    estimates = [r @ transform @ b for r, b in zip(robot, boards)]
    target = mean_transform(estimates)
    diffs = np.asarray([pose_difference(target, e) for e in estimates])
    return HandEyeResult(setup, method, transform, target, float(np.sqrt(np.mean(diffs[:, 0] ** 2))),
                         float(1e3 * np.sqrt(np.mean(diffs[:, 1] ** 2))), len(robot))


def calibrate_all_methods(gripper_poses: Sequence[np.ndarray], board_poses: Sequence[np.ndarray],
                          setup: Setup = "eye_in_hand", methods: Sequence[str] = tuple(METHODS),
                          min_poses: int = MIN_POSES) -> dict[str, HandEyeResult]:
    """:func:`calibrate_hand_eye` with each of ``methods`` on the same data (compare them with verify)."""
    return {m: calibrate_hand_eye(gripper_poses, board_poses, setup, m, min_poses) for m in methods}
