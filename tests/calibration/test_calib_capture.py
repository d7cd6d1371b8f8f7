"""Capture directories (PNG + JSON poses) from any source: iterables, callables, MuJoCo, RealSense."""

import json
import sys

import numpy as np
import pytest

from robot_parl.calibration.capture import (
    CAPTURES_FILE,
    Capture,
    MujocoCamera,
    RealSenseSource,
    RobotSideCamera,
    iter_images,
    read_captures,
    save_captures,
    with_poses,
)
from robot_parl.calibration.geometry import matrix_to_pose7, pose7_to_matrix


def _image(value):
    image = np.zeros((24, 32, 3), np.uint8)
    image[..., 0] = value  # red only: a swapped channel order would show
    return image


def test_saves_images_and_poses_and_reads_them_back(tmp_path):
    pose = pose7_to_matrix([0.3, 0.1, 0.2, 0.0, 0.7071068, 0.0, 0.7071068])
    source = [(_image(10), matrix_to_pose7(pose)), Capture(_image(20), pose), _image(30)]
    records = save_captures(source, tmp_path / "caps", camera="front")
    assert [r.name for r in records] == ["0000.png", "0001.png", "0002.png"]
    index = json.loads((tmp_path / "caps" / CAPTURES_FILE).read_text())
    assert index["camera"] == "front" and index["captures"][2] == {"image": "0002.png", "ee_pose": None}
    loaded = read_captures(tmp_path / "caps")
    np.testing.assert_allclose(loaded[0].ee_pose, pose, atol=1e-7)
    np.testing.assert_allclose(loaded[1].ee_pose, pose, atol=1e-12)
    assert loaded[2].ee_pose is None
    images = dict(iter_images(loaded))
    assert images["0001.png"].shape == (24, 32, 3) and images["0001.png"][0, 0].tolist() == [20, 0, 0]


def test_callable_sources_need_a_count_and_poses_can_be_attached(tmp_path):
    frames = iter(range(100))
    camera = lambda: _image(next(frames))
    with pytest.raises(ValueError, match="needs a count"):
        save_captures(camera, tmp_path / "a")
    seen = []
    posed = with_poses(camera, lambda: np.eye(4))
    save_captures(posed, tmp_path / "a", count=4, on_saved=lambda i, c: seen.append(i))
    assert seen == [0, 1, 2, 3]
    assert all(np.array_equal(r.ee_pose, np.eye(4)) for r in read_captures(tmp_path / "a"))


def test_refuses_to_mix_sessions_and_bad_input(tmp_path):
    save_captures([_image(1)], tmp_path / "a")
    with pytest.raises(FileExistsError, match="not empty"):
        save_captures([_image(2)], tmp_path / "a")
    with pytest.raises(ValueError, match="RGB uint8 HxWx3"):
        save_captures([np.zeros((4, 4), np.float32)], tmp_path / "b")
    bad_pose = np.eye(4)
    bad_pose[0, 0] = 3.0
    with pytest.raises(ValueError, match="end-effector pose: expected a rigid transform"):
        save_captures([(_image(1), bad_pose)], tmp_path / "c")


def test_an_interrupted_capture_leaves_a_readable_directory(tmp_path):
    def source():
        yield _image(1), np.eye(4)
        yield _image(2), np.eye(4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_captures(source(), tmp_path / "caps")
    assert [r.name for r in read_captures(tmp_path / "caps")] == ["0000.png", "0001.png"]


def test_reading_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a capture directory"):
        read_captures(tmp_path)
    save_captures([_image(1), _image(2)], tmp_path / "caps")
    (tmp_path / "caps" / "0001.png").unlink()
    with pytest.raises(FileNotFoundError, match="capture 1 names image '0001.png'"):
        read_captures(tmp_path / "caps")


def test_tabletop_sim_source_gives_the_wrist_view_and_gripper_pose():
    from robot_parl.robots.sim.tabletop import TabletopEnv

    env = TabletopEnv("reach")
    env.reset(seed=3)
    grab = MujocoCamera(env.model, env.data, "wrist", 96, 64, body="gripper")
    try:
        cap = grab()
    finally:
        grab.close()
        env.close()
    assert cap.image.shape == (64, 96, 3) and cap.image.std() > 1
    np.testing.assert_allclose(cap.ee_pose[:3, 3], env.data.body("gripper").xpos)
    # At reset the fingers point down: the gripper frame is the world turned about x by 180 degrees.
    np.testing.assert_allclose(cap.ee_pose[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-6)


def test_realsense_source_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # as on a machine without it
    with pytest.raises(ImportError, match="pip install pyrealsense2"):
        RealSenseSource()


def test_robot_side_source_takes_frames_and_poses_from_observations(zenoh_pair):
    import threading

    from robot_parl.transport.channel import Publisher
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.messages import Observation

    robot_session, calib_session = zenoh_pair
    keys = KeySpace("calib", "r0")
    camera = RobotSideCamera(calib_session, keys, "front", timeout_s=5.0)
    wrist = RobotSideCamera(calib_session, keys, "wrist", timeout_s=5.0)
    publisher = Publisher(robot_session, keys.obs)
    stop = threading.Event()
    pose7 = [0.3, 0.1, 0.2, 0.0, 0.0, 0.3826834, 0.9238795]

    def publish():
        seq = 0
        while not stop.is_set():
            seq += 1
            publisher.put(Observation(seq, seq, {"front": _image(seq % 200)}, ee_pose=np.array(pose7)))
            stop.wait(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        cap = camera()
        assert cap.image.shape == (24, 32, 3)
        np.testing.assert_allclose(cap.ee_pose, pose7_to_matrix(pose7), atol=1e-6)
        with pytest.raises(ValueError, match="no camera 'wrist'; they have \\['front'\\]"):
            wrist()
    finally:
        stop.set()
        thread.join()
        camera.close()
        wrist.close()
        publisher.close()
