"""`robot-parl calibrate` on bad input: a clear error naming what is missing, and no file written or changed."""

import json

import numpy as np
import pytest
import yaml
from calib_synth import BASE_T_BOARD, BOARD, D_TRUE, GRIPPER_T_CAMERA, K_TRUE, Renderer, views

from robot_parl.calibration.capture import save_captures
from robot_parl.calibration.cli import main
from robot_parl.calibration.geometry import invert, make_transform, rotation_from_rvec
from robot_parl.robots.camera_calibration import CameraCalibration, save_calibration


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def _capture(directory, renderer, cam_T_boards, seed=0, blank=(), poses=True):
    """Rendered views of the board with the eye-in-hand gripper poses that produce them."""
    rng = np.random.default_rng(seed)
    items = []
    for i, cam_T_board in enumerate(cam_T_boards):
        image = np.full((480, 640, 3), 110, np.uint8) if i in blank else renderer.render(cam_T_board, rng)
        gripper = BASE_T_BOARD @ invert(cam_T_board) @ invert(GRIPPER_T_CAMERA)
        items.append((image, gripper if poses else None))
    save_captures(items, directory)
    return directory


def _stored(path):
    calib = CameraCalibration(rig="bench", camera="wrist", date="2025-01-01T00:00:00+00:00", board=BOARD.name,
                              image_size=[640, 480], camera_matrix=K_TRUE.tolist(), distortion=D_TRUE.tolist())
    return save_calibration(calib, path)


def _one_axis_views(n, rng, tilt=(0.3, 0.2, 0.0)):
    """Board poses that differ only by turns about the board's normal (and position)."""
    centre = np.array([BOARD.width_m / 2, BOARD.height_m / 2, 0.0])
    out = []
    for _ in range(n):
        rotation = rotation_from_rvec(tilt) @ rotation_from_rvec([0.0, 0.0, rng.uniform(-1.0, 1.0)])
        position = np.r_[rng.uniform(-0.05, 0.05, 2), 0.45]
        out.append(make_transform(rotation, position - rotation @ centre))
    return out


def test_intrinsics_with_too_few_views_writes_nothing(tmp_path, renderer, capsys):
    caps = _capture(tmp_path / "caps", renderer, views(5, 0))
    rc = main(["calibrate", "intrinsics", "--captures", str(caps), "--rig", "r", "--camera", "c",
               "--root", str(tmp_path / "cal")])
    assert rc == 2
    assert "at least 8 views showing the board; got 5 of 5" in capsys.readouterr().err
    assert not (tmp_path / "cal").exists()


def test_intrinsics_names_the_image_without_the_board(tmp_path, renderer, capsys):
    caps = _capture(tmp_path / "caps", renderer, views(10, 1, distance=(0.3, 0.55)), blank=(3,))
    args = ["calibrate", "intrinsics", "--captures", str(caps), "--rig", "r", "--camera", "c",
            "--root", str(tmp_path / "cal")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "0003.png" in err and "0002.png" not in err
    assert not (tmp_path / "cal").exists()
    assert main(args + ["--skip-missing"]) == 0
    assert "rejected 0003.png: board not found" in capsys.readouterr().out
    assert (tmp_path / "cal" / "r" / "c.yaml").is_file()


@pytest.mark.parametrize("kind, message", [("one_axis", "about nearly one axis"),
                                           ("translations", "pure translations")])
def test_degenerate_hand_eye_motion_leaves_the_file_unchanged(tmp_path, renderer, capsys, kind, message):
    rng = np.random.default_rng(2)
    poses = _one_axis_views(8, rng)
    if kind == "translations":
        poses = [make_transform(poses[0][:3, :3], p[:3, 3]) for p in poses]  # one orientation for all
    caps = _capture(tmp_path / "caps", renderer, poses)
    path = _stored(tmp_path / "wrist.yaml")
    before = path.read_bytes()
    assert main(["calibrate", "hand-eye", "--captures", str(caps), "--calibration", str(path),
                 "--setup", "eye_in_hand"]) == 2
    assert message in capsys.readouterr().err
    assert path.read_bytes() == before


def test_hand_eye_names_captures_without_poses(tmp_path, renderer, capsys):
    caps = _capture(tmp_path / "caps", renderer, views(6, 3), poses=False)
    path = _stored(tmp_path / "wrist.yaml")
    before = path.read_bytes()
    assert main(["calibrate", "hand-eye", "--captures", str(caps), "--calibration", str(path),
                 "--setup", "eye_in_hand"]) == 2
    assert "without an end-effector pose: 0000.png, 0001.png" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_hand_eye_refuses_when_methods_disagree(tmp_path, renderer, capsys):
    cam_T_boards = views(12, 4, distance=(0.3, 0.55))
    caps = _capture(tmp_path / "caps", renderer, cam_T_boards)
    # Pair three images with the wrong robot poses, as unsynchronised streams would.
    index_path = caps / "captures.json"
    index = json.loads(index_path.read_text())
    entries = index["captures"]
    entries[0]["ee_pose"], entries[1]["ee_pose"], entries[2]["ee_pose"] = (
        entries[1]["ee_pose"], entries[2]["ee_pose"], entries[0]["ee_pose"])
    index_path.write_text(json.dumps(index))
    path = _stored(tmp_path / "wrist.yaml")
    before = path.read_bytes()
    assert main(["calibrate", "hand-eye", "--captures", str(caps), "--calibration", str(path),
                 "--setup", "eye_in_hand"]) == 2
    assert "hand-eye methods disagree" in capsys.readouterr().err
    assert path.read_bytes() == before
    # The same data, correctly paired, is accepted and stored.
    entries[0]["ee_pose"], entries[1]["ee_pose"], entries[2]["ee_pose"] = (
        entries[2]["ee_pose"], entries[0]["ee_pose"], entries[1]["ee_pose"])
    index_path.write_text(json.dumps(index))
    assert main(["calibrate", "hand-eye", "--captures", str(caps), "--calibration", str(path),
                 "--setup", "eye_in_hand"]) == 0
    assert path.read_bytes() != before


def test_board_and_camera_info_commands(tmp_path, capsys):
    assert main(["calibrate", "board", "--out", str(tmp_path), "--dpi", "100"]) == 0
    assert (tmp_path / "charuco_5x7_30mm.png").is_file() and (tmp_path / "charuco_5x7_30mm.pdf").is_file()
    assert "a square measures 30 mm" in capsys.readouterr().out
    path = _stored(tmp_path / "wrist.yaml")
    assert main(["calibrate", "camera-info", "--calibration", str(path)]) == 0
    info = yaml.safe_load(capsys.readouterr().out)
    assert info["k"] == K_TRUE.reshape(-1).tolist() and len(info["p"]) == 12
    assert main(["calibrate", "camera-info", "--calibration", str(path), "--rectified", "100x80"]) == 0
    info = yaml.safe_load(capsys.readouterr().out)
    assert (info["width"], info["height"], info["d"]) == (100, 80, [0.0] * 5)
    assert main(["calibrate", "intrinsics", "--captures", str(tmp_path / "nothing"), "--rig", "r",
                 "--camera", "c", "--root", str(tmp_path)]) == 2
    assert "not a capture directory" in capsys.readouterr().err
