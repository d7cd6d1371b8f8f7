"""Drift check: a fresh capture against the stored calibration, warning past thresholds and only then."""

import dataclasses
import warnings

import numpy as np
import pytest
from calib_synth import BOARD, D_TRUE, K_TRUE, Renderer, views

from robot_parl.calibration.detect import BoardDetector
from robot_parl.calibration.errors import CalibrationDriftWarning, CalibrationError
from robot_parl.calibration.geometry import make_transform, rotation_from_rvec
from robot_parl.calibration.verify import DriftThresholds, check_drift, reprojection_errors
from robot_parl.robots.camera_calibration import CameraCalibration, Extrinsics

CAMERA_POSE = make_transform(rotation_from_rvec([0.1, -1.9, 0.2]), [1.0, 0.1, 0.5])


def _calib(k=K_TRUE, dist=D_TRUE, pose=CAMERA_POSE) -> CameraCalibration:
    return CameraCalibration(rig="bench", camera="front", date="2025-01-01T00:00:00+00:00", board=BOARD.name,
                             image_size=[640, 480], camera_matrix=np.asarray(k).tolist(),
                             distortion=np.asarray(dist).tolist(),
                             extrinsics=Extrinsics(camera_pose=np.asarray(pose).tolist(), poses=12))


def _scaled_focal(pct):
    k = K_TRUE.copy()
    k[0, 0] *= 1 + pct / 100
    return k


def _shifted_pose(deg=0.0, mm=0.0):
    return CAMERA_POSE @ make_transform(rotation_from_rvec(np.radians(deg) * np.array([0.0, 0.6, 0.8])),
                                        [mm / 1e3, 0.0, 0.0])


def _no_warning(stored, fresh, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationDriftWarning)
        return check_drift(stored, fresh, **kw)


@pytest.mark.parametrize("fresh, what", [
    (_calib(k=_scaled_focal(2.0)), "focal length fx change"),
    (_calib(pose=_shifted_pose(deg=2.0)), "extrinsics rotation change"),
    (_calib(pose=_shifted_pose(mm=10.0)), "extrinsics translation change"),
])
def test_drift_past_a_threshold_warns_and_names_it(fresh, what):
    with pytest.warns(CalibrationDriftWarning, match=what):
        report = check_drift(_calib(), fresh)
    assert report.drifted and [c.name for c in report.exceeded] == [what]


@pytest.mark.parametrize("fresh", [_calib(k=_scaled_focal(0.5)), _calib(pose=_shifted_pose(deg=0.5)),
                                   _calib(pose=_shifted_pose(mm=3.0))])
def test_changes_below_the_thresholds_do_not_warn(fresh):
    report = _no_warning(_calib(), fresh)
    assert not report.drifted and len(report.checks) == 5


def test_thresholds_are_configurable():
    fresh = _calib(k=_scaled_focal(0.5))
    with pytest.warns(CalibrationDriftWarning):
        assert check_drift(_calib(), fresh, thresholds=DriftThresholds(focal_pct=0.25)).drifted


def test_principal_point_shift():
    k = K_TRUE.copy()
    k[0, 2] += 8.0
    with pytest.warns(CalibrationDriftWarning, match="principal point shift"):
        check_drift(_calib(), _calib(k=k))
    k[0, 2] = K_TRUE[0, 2] + 3.0
    assert not _no_warning(_calib(), _calib(k=k)).drifted


@pytest.fixture(scope="module")
def fresh_detections():
    renderer, rng, detector = Renderer(), np.random.default_rng(7), BoardDetector(BOARD)
    poses = views(4, 7, distance=(0.25, 0.4))
    found = {f"{i}.png": detector.detect(renderer.render(p, rng)) for i, p in enumerate(poses)}
    assert all(d is not None for d in found.values())
    return detector, found


def test_fresh_images_under_the_stored_intrinsics(fresh_detections):
    """Few fresh images suffice to notice a changed lens: their error under the stored model grows."""
    detector, found = fresh_detections
    good = reprojection_errors(found, detector, _calib())
    assert max(good.values()) < 0.3
    assert not _no_warning(_calib(), None, view_errors=good).drifted
    changed_lens = _calib(dist=D_TRUE + [0.4, 0.0, 0.0, 0.0, 0.0])
    bad = reprojection_errors(found, detector, changed_lens)
    with pytest.warns(CalibrationDriftWarning, match="reprojection error under the stored intrinsics"):
        assert check_drift(changed_lens, None, view_errors=bad).drifted
    # The limit follows what the stored fit itself achieved.
    sloppy = dataclasses.replace(changed_lens, errors=dataclasses.replace(changed_lens.errors, rms_px=0.5))
    assert not _no_warning(sloppy, None, view_errors=bad).drifted


def test_comparing_different_cameras_is_an_error():
    other = dataclasses.replace(_calib(), image_size=[1280, 720])
    with pytest.raises(CalibrationError, match="1280x720 but the stored calibration of front is for 640x480"):
        check_drift(_calib(), other)
    with pytest.raises(ValueError, match="needs a fresh calibration"):
        check_drift(_calib())


def test_intrinsics_changes_within_the_fits_noise_are_not_drift():
    """Two fits of an unchanged camera differ by their noise; only changes beyond it (and the threshold) count."""
    from robot_parl.robots.camera_calibration import ErrorStats

    def with_std(calib, std):
        return dataclasses.replace(calib, errors=ErrorStats(rms_px=0.1, views_used=10, std_px=std))

    noisy = [10.0, 10.0, 4.0, 4.0]  # 3 sigma of the difference: 42 px = 7% of fx
    report = _no_warning(with_std(_calib(), noisy), with_std(_calib(k=_scaled_focal(2.0)), noisy))
    focal = report.checks[0]
    assert focal.value == pytest.approx(2.0) and focal.threshold == pytest.approx(300 * np.hypot(10, 10) / 600)
    precise = [0.5, 0.5, 0.3, 0.3]
    with pytest.warns(CalibrationDriftWarning, match="focal length fx change"):
        check_drift(with_std(_calib(), precise), with_std(_calib(k=_scaled_focal(2.0)), precise))
