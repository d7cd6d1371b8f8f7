"""The whole pipeline on the MuJoCo tabletop through the CLI: capture, intrinsics, hand-eye, verify.

Ground truth comes from the model: each camera's field of view gives its camera matrix, and the model
gives the wrist camera's pose on the gripper and the front camera's pose in the world (the base).
"""

import numpy as np
import pytest
import yaml

from robot_parl.calibration.board import BoardSpec
from robot_parl.calibration.cli import main
from robot_parl.calibration.geometry import pose_difference
from robot_parl.calibration.sim_scene import BoardScene
from robot_parl.robots.camera_calibration import load_calibration

CASES = {"eye_in_hand": ("wrist", "table"), "eye_to_hand": ("front", "gripper")}


@pytest.mark.parametrize("setup", list(CASES))
def test_sim_rig_calibrates_to_the_model(tmp_path, setup, capsys):
    camera, mount = CASES[setup]
    caps, fresh, root = tmp_path / "caps", tmp_path / "fresh", tmp_path / "calibration"
    assert main(["calibrate", "capture", "--source", "sim", "--camera", camera, "--count", "14", "--out",
                 str(caps), "--seed", "1"]) == 0
    assert main(["calibrate", "intrinsics", "--captures", str(caps), "--rig", "sim", "--camera", camera,
                 "--root", str(root), "--skip-missing"]) == 0
    path = root / "sim" / f"{camera}.yaml"
    assert main(["calibrate", "hand-eye", "--captures", str(caps), "--calibration", str(path), "--setup", setup,
                 "--skip-missing"]) == 0
    calib = load_calibration(path)

    scene = BoardScene(BoardSpec(), mount)
    k_true = scene.camera_matrix(camera)
    idx = ([0, 1, 0, 1], [0, 1, 2, 2])
    assert np.all(100 * np.abs(calib.K[idx] / k_true[idx] - 1) < 1.0), (calib.K, k_true)
    truth = scene.camera_in_gripper(camera) if setup == "eye_in_hand" else scene.camera_pose(camera)
    deg, metres = pose_difference(calib.extrinsics.matrix, truth)
    assert deg < 1.0 and metres < 0.005, (deg, metres * 1e3)
    assert calib.extrinsics.setup == setup and calib.extrinsics.methods_spread_mm is not None

    # A fresh capture of the unchanged rig passes verification; a stored file that has drifted does not.
    assert main(["calibrate", "capture", "--source", "sim", "--camera", camera, "--count", "10", "--out",
                 str(fresh), "--seed", "2"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "verify", "--captures", str(fresh), "--calibration", str(path)]) == 0
    report = capsys.readouterr().out
    assert "extrinsics translation change" in report and "DRIFT" not in report
    assert "extrinsics rotation change" in report and "(threshold 1 deg)" in report
    data = yaml.safe_load(path.read_text())
    data["camera_matrix"][0][0] *= 1.03
    path.write_text(yaml.safe_dump(data))
    assert main(["calibrate", "verify", "--captures", str(fresh), "--calibration", str(path)]) == 1
    out = capsys.readouterr()
    assert "focal length fx change" in out.err and "DRIFT" in out.out
