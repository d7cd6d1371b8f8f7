"""Hand-eye calibration against known camera mounts, method agreement, and degenerate robot motions."""

import numpy as np
import pytest
from calib_synth import BASE_T_BOARD, BASE_T_CAMERA, GRIPPER_T_BOARD, GRIPPER_T_CAMERA, hand_eye_data

from robot_parl.calibration.errors import CalibrationError
from robot_parl.calibration.geometry import make_transform, pose_difference, rotation_from_rvec
from robot_parl.calibration.hand_eye import calibrate_all_methods, calibrate_hand_eye, check_motion
from robot_parl.calibration.verify import consistency_checks

# Andreff's linear method is left out: with realistic noise its translation drifts past 5 mm.
ACCURATE = ("tsai", "park", "horaud", "daniilidis")
TRUTH = {"eye_in_hand": (GRIPPER_T_CAMERA, BASE_T_BOARD), "eye_to_hand": (BASE_T_CAMERA, GRIPPER_T_BOARD)}


@pytest.mark.parametrize("setup", ["eye_in_hand", "eye_to_hand"])
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_the_camera_mount_within_1_degree_and_5_mm(setup, seed):
    robot, boards = hand_eye_data(setup, 15, seed)
    results = calibrate_all_methods(robot, boards, setup, ACCURATE)
    camera, target = TRUTH[setup]
    for method, result in results.items():
        deg, metres = pose_difference(result.transform, camera)
        assert deg < 1.0 and metres < 0.005, (method, deg, metres * 1e3)
        # The board's fixed pose comes out too, and every capture agrees with it to noise level.
        deg, metres = pose_difference(result.target, target)
        assert deg < 1.0 and metres < 0.005, (method, deg, metres * 1e3)
        assert result.rotation_residual_deg < 0.5 and result.translation_residual_mm < 2.0
        assert result.poses == 15 and result.method == method
    assert not any(c.exceeded for c in consistency_checks(results))


def test_camera_in_base_for_both_setups():
    robot, boards = hand_eye_data("eye_to_hand", 10, 2)
    result = calibrate_hand_eye(robot, boards, "eye_to_hand", "park")
    assert result.parent_frame == "base"
    assert pose_difference(result.camera_in_base(), BASE_T_CAMERA)[1] < 0.005
    robot, boards = hand_eye_data("eye_in_hand", 10, 2)
    result = calibrate_hand_eye(robot, boards, "eye_in_hand", "park")
    assert result.parent_frame == "gripper"
    assert pose_difference(result.camera_in_base(robot[3]), robot[3] @ GRIPPER_T_CAMERA)[1] < 0.005
    with pytest.raises(ValueError, match="depends on the gripper pose"):
        result.camera_in_base()


def test_methods_disagree_when_poses_and_images_are_out_of_step():
    robot, boards = hand_eye_data("eye_in_hand", 15, 3)
    robot[0], robot[1], robot[2] = robot[1], robot[2], robot[0]  # three images paired with the wrong poses
    results = calibrate_all_methods(robot, boards, "eye_in_hand", ("tsai", "park", "horaud"))
    exceeded = [c.name for c in consistency_checks(results) if c.exceeded]
    assert any("translation spread" in name for name in exceeded)
    assert results["tsai"].translation_residual_mm > 20


def _poses_about(axes, rng, n=10):
    """Gripper poses whose rotations are all about the given axes, with varied positions."""
    poses = []
    for i in range(n):
        axis = np.asarray(axes[i % len(axes)], np.float64)
        angle = np.radians(rng.uniform(-40, 40))
        poses.append(make_transform(rotation_from_rvec(axis / np.linalg.norm(axis) * angle),
                                    [0.4, 0.0, 0.3] + rng.uniform(-0.1, 0.1, 3)))
    return poses


def test_rotations_about_a_single_axis_are_degenerate():
    poses = _poses_about([[0, 0, 1]], np.random.default_rng(0))
    with pytest.raises(CalibrationError, match="about nearly one axis"):
        check_motion(poses)
    check_motion(_poses_about([[0, 0, 1], [1, 0, 0]], np.random.default_rng(0)))  # two axes are enough


def test_pure_translations_are_degenerate():
    rng = np.random.default_rng(1)
    poses = [make_transform(np.eye(3), [0.4, 0.0, 0.3] + rng.uniform(-0.1, 0.1, 3)) for _ in range(10)]
    with pytest.raises(CalibrationError, match="pure translations"):
        check_motion(poses)


def test_too_few_poses_and_millimetres_are_refused():
    robot, boards = hand_eye_data("eye_in_hand", 4, 4)
    with pytest.raises(CalibrationError, match="at least 5 robot poses.*got 4"):
        calibrate_hand_eye(robot, boards, "eye_in_hand")
    robot, boards = hand_eye_data("eye_in_hand", 8, 4)
    in_mm = [make_transform(p[:3, :3], p[:3, 3] * 1000) for p in robot]
    with pytest.raises(CalibrationError, match="millimetres"):
        calibrate_hand_eye(in_mm, boards, "eye_in_hand")


def test_bad_arguments_are_named():
    robot, boards = hand_eye_data("eye_in_hand", 6, 5)
    with pytest.raises(ValueError, match="unknown hand-eye method 'shah'"):
        calibrate_hand_eye(robot, boards, "eye_in_hand", "shah")
    with pytest.raises(ValueError, match="unknown hand-eye setup"):
        calibrate_hand_eye(robot, boards, "eye_on_table")
    with pytest.raises(ValueError, match="6 robot poses but 5 board poses"):
        calibrate_hand_eye(robot, boards[:5])
    robot[2] = robot[2].copy()
    robot[2][:3, :3] *= 2
    with pytest.raises(ValueError, match="robot pose 2: expected a rigid transform"):
        calibrate_hand_eye(robot, boards)
