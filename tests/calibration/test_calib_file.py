"""The per-camera calibration file: round trip, validation, atomic writes and CameraInfo fields."""

import dataclasses

import numpy as np
import pytest
import yaml
from calib_synth import D_TRUE, K_TRUE

from robot_parl.calibration.geometry import from_rvec_tvec
from robot_parl.robots.camera_calibration import (
    CameraCalibration,
    ErrorStats,
    Extrinsics,
    calibration_path,
    camera_info,
    load_calibration,
    resolve_calibration_path,
    save_calibration,
)
from robot_parl.robots.rectify import Rectifier
from robot_parl.typed_config import ConfigError


def _calib(**kw) -> CameraCalibration:
    base = CameraCalibration(
        rig="bench", camera="front", date="2025-01-01T00:00:00+00:00", board="charuco_5x7_30mm",
        image_size=[640, 480], camera_matrix=K_TRUE.tolist(), distortion=D_TRUE.tolist(),
        errors=ErrorStats(rms_px=0.12, views_used=2, per_view_px={"0000.png": 0.1, "0001.png": 0.14},
                          rejected={"0002.png": "board not found"}, std_px=[0.3, 0.3, 0.2, 0.2]),
        extrinsics=Extrinsics(setup="eye_to_hand", parent_frame="base",
                              camera_pose=from_rvec_tvec([0.1, -1.9, 0.2], [1.0, 0.1, 0.5]).tolist(), poses=12))
    return dataclasses.replace(base, **kw)


def test_round_trip_keeps_every_value(tmp_path):
    path = save_calibration(_calib(), calibration_path("bench", "front", tmp_path))
    assert path == tmp_path / "bench" / "front.yaml"
    loaded = load_calibration(path)
    assert loaded == _calib()
    np.testing.assert_array_equal(loaded.K, K_TRUE)
    np.testing.assert_array_equal(loaded.D, D_TRUE)
    raw = yaml.safe_load(path.read_text())
    assert raw["camera_matrix"][0] == K_TRUE[0].tolist() and raw["distortion_model"] == "plumb_bob"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("change, key", [
    ({"image_size": [640]}, "image_size"),
    ({"distortion": [0.1, 0.0, 0.0, 0.0]}, "distortion"),
    ({"camera_matrix": [[600.0, 0, 900.0], [0, 600.0, 240.0], [0, 0, 1]]}, "camera_matrix"),
    ({"rig": "a/b"}, "rig"),
])
def test_invalid_calibrations_are_refused_and_not_written(tmp_path, change, key):
    path = tmp_path / "front.yaml"
    with pytest.raises(ConfigError) as err:
        save_calibration(_calib(**change), path)
    assert err.value.key == key
    assert not path.exists()


def test_a_broken_file_names_the_key(tmp_path):
    path = save_calibration(_calib(), tmp_path / "front.yaml")
    data = yaml.safe_load(path.read_text())
    data["extrinsics"]["camera_pose"][0][0] = 5.0
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="extrinsics.*camera_pose: expected a rigid transform"):
        load_calibration(path)
    data["extrinsics"] = {**data["extrinsics"], "camera_pose": np.eye(4).tolist(), "parent_frame": "gripper"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="extrinsics.*'base' for eye_to_hand"):
        load_calibration(path)


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    save_calibration(_calib(), tmp_path / "rig" / "front.yaml")
    monkeypatch.chdir(tmp_path)
    assert resolve_calibration_path("rig/front.yaml") == tmp_path / "rig" / "front.yaml"
    with pytest.raises(FileNotFoundError, match="'rig/back.yaml' not found"):
        load_calibration("rig/back.yaml")


def test_camera_info_fields():
    info = camera_info(_calib())
    assert (info["width"], info["height"], info["distortion_model"]) == (640, 480, "plumb_bob")
    assert info["d"] == D_TRUE.tolist() and info["k"] == K_TRUE.reshape(-1).tolist()
    assert info["r"] == np.eye(3).reshape(-1).tolist()
    p = np.array(info["p"]).reshape(3, 4)
    assert np.all(p[:, 3] == 0) and p[2, 2] == 1
    # P describes the rectified image: the one the robot side's Rectifier produces at full size.
    np.testing.assert_allclose(p[:, :3], Rectifier(_calib()).camera_matrix)
    assert all(isinstance(v, float) for key in "dkrp" for v in info[key])
