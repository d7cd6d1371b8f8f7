"""Intrinsics from rendered board images with known camera matrix, distortion and poses."""

import numpy as np
import pytest
from calib_synth import BOARD, K_TRUE, Renderer, views

from robot_parl.calibration.errors import CalibrationError
from robot_parl.calibration.intrinsics import MIN_VIEWS, calibrate_intrinsics


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def _images(renderer, n, seed, **kw):
    rng = np.random.default_rng(seed)
    return [(f"{i:04d}.png", renderer.render(pose, rng)) for i, pose in enumerate(views(n, seed, **kw))]


def _errors_pct(k):
    """Relative errors (%) of fx, fy, cx, cy against the truth."""
    idx = ([0, 1, 0, 1], [0, 1, 2, 2])
    return 100 * np.abs(k[idx] / K_TRUE[idx] - 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_focal_length_principal_point_and_distortion(renderer, seed):
    result = calibrate_intrinsics(_images(renderer, 14, seed, distance=(0.3, 0.55)), BOARD)
    assert np.all(_errors_pct(result.camera_matrix) < 1.0), _errors_pct(result.camera_matrix)
    assert result.rms_px < 0.3
    assert result.rejected == {}
    assert len(result.view_errors) == 14 and max(result.view_errors.values()) < 0.5
    assert result.image_size == (640, 480)
    # The distortion is recovered too: undistorting a point near the image corner lands where the truth puts it.
    import cv2

    corner = np.array([[[20.0, 20.0]]])
    ideal_true = cv2.undistortPoints(corner, K_TRUE, renderer.dist, P=K_TRUE)
    ideal_fit = cv2.undistortPoints(corner, result.camera_matrix, result.dist_coeffs, P=result.camera_matrix)
    assert np.linalg.norm(ideal_fit - ideal_true) < 3.0
    # Each kept view's board pose is in the result, in metres.
    assert set(result.board_poses) == set(result.view_errors)
    assert all(0.2 < np.linalg.norm(p[:3, 3]) < 0.8 for p in result.board_poses.values())


def test_a_view_from_another_lens_is_rejected_by_name(renderer):
    images = _images(renderer, 12, 1, distance=(0.3, 0.55))
    other = Renderer(k=np.array([[700.0, 0, 300], [0, 700, 250], [0, 0, 1]]), dist=np.array([-0.6, 0.3, 0, 0, 0]))
    images.append(("other_lens.png", other.render(views(1, 101, distance=(0.3, 0.35))[0], np.random.default_rng(5))))
    result = calibrate_intrinsics(images, BOARD)
    assert list(result.rejected) == ["other_lens.png"]
    assert "reprojection error" in result.rejected["other_lens.png"]
    assert "other_lens.png" not in result.view_errors
    assert np.all(_errors_pct(result.camera_matrix) < 1.0)


def test_too_few_views_are_refused_with_the_minimum(renderer):
    with pytest.raises(CalibrationError, match=f"at least {MIN_VIEWS} views.*got 5 of 5"):
        calibrate_intrinsics(_images(renderer, 5, 2), BOARD)


def test_image_without_the_board_is_named(renderer):
    images = _images(renderer, 10, 3)
    images.insert(4, ("empty_table.png", np.full((480, 640, 3), 110, np.uint8)))
    with pytest.raises(CalibrationError, match="not found .* in 1 image\\(s\\): empty_table.png"):
        calibrate_intrinsics(images, BOARD)
    result = calibrate_intrinsics(images, BOARD, allow_missing=True)
    assert result.rejected == {"empty_table.png": "board not found"}


def test_wrong_board_definition_finds_nothing(renderer):
    from robot_parl.calibration.board import BoardSpec

    other = BoardSpec(name="other", dictionary="DICT_4X4_50")
    with pytest.raises(CalibrationError, match="board 'other' not found"):
        calibrate_intrinsics(_images(renderer, 8, 4), other)


def test_parallel_views_cannot_determine_the_focal_length(renderer):
    with pytest.raises(CalibrationError, match="same angle in all 10 views"):
        calibrate_intrinsics(_images(renderer, 10, 5, max_tilt_deg=0.0), BOARD)


def test_mixed_resolutions_are_refused(renderer):
    images = _images(renderer, 8, 6)
    images.append(("small.png", np.zeros((240, 320, 3), np.uint8)))
    with pytest.raises(CalibrationError, match="small.png is 320x240 but 0000.png is 640x480"):
        calibrate_intrinsics(images, BOARD)
