"""RealSense cameras read by the robot-side node itself (realsense_cameras: camera=serial), beside ROS topics.

librealsense does not list a pyrealsense2 software device among connected ones, and the device lives in the
process that made it, so the frames test runs the node's ``run()`` in this process and opens the software
device for the serial through its ``open_camera`` argument (robot_parl.cameras.realsense_sources' seam). The
error tests run the node as a process with real librealsense, which finds no device on this machine."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import rclpy
from cameras.realsense_rig import Rig, Streaming, needs_pyrealsense2
from rclpy.parameter import Parameter
from robot_parl_ros import robot_side_node

from robot_parl.cameras import CameraError, RealSenseCamera
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.spec import load_spec
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

CAMERAS = "cameras=[{name: front, width: 8, height: 6}, {name: wrist, width: 64, height: 48}]"


@needs_pyrealsense2
def test_a_realsense_feeds_the_node_directly(ros_node, tmp_path):
    rig = Rig("SYN0007", color_size=(640, 480))
    wrist = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    opened = []

    def open_software_device(serial, width, height, fps, name):
        opened.append((serial, width, height, fps, name))
        return RealSenseCamera.from_device(rig.device, width, height, fps, depth=False, name=name)

    endpoint = free_loopback_endpoint()
    overrides = [CAMERAS, "control_rate_hz=20"]
    node = rclpy.create_node("robot_parl_robot_side", parameter_overrides=[
        Parameter("spec", value="widowx"), Parameter("spec_overrides", value=overrides),
        Parameter("listen", value=[endpoint]), Parameter("session", value="rs"),
        Parameter("cameras", value=["front=cam/image_raw"]), Parameter("realsense_cameras", value=["wrist=SYN0007"])])
    stop = threading.Event()
    done = []
    session = open_session(TransportConfig(connect=[endpoint]))
    # 640x480 frames in whole 10x10 blocks: nearest sampling down to the spec's 64x48 must give `wrist` back
    with Streaming(rig, np.kron(wrist, np.ones((10, 10, 1), np.uint8))):
        thread = threading.Thread(target=lambda: done.append(robot_side_node.run(node, stop, open_software_device)))
        thread.start()
        env = RemoteRobotEnv(session, KeySpace("rs", "robot0"), load_spec("widowx", overrides), timeout_s=30)
        try:
            obs, _ = env.reset()
            for _ in range(100):  # the camera's first frame may come a few ticks after the node starts
                if obs["images"]["wrist"].any():
                    break
                obs, *_ = env.step(np.zeros(7, np.float32))
            np.testing.assert_array_equal(obs["images"]["wrist"], wrist)
            # the ROS camera has no publisher: zeros, as before, next to the RealSense's frames
            assert obs["images"]["front"].shape == (6, 8, 3) and not obs["images"]["front"].any()
        finally:
            env.close()
            session.close()
            stop.set()
            thread.join(20)
            node.destroy_node()
    assert not thread.is_alive() and done, "run() did not return"
    assert opened == [("SYN0007", 640, 480, 30, "wrist")]
    adapter = done[0].adapter
    # the ROS adapter counts only the camera it delivers as missing; the RealSense was read on its own thread,
    # which run() stopped before closing the device
    assert adapter.adapter.counters["missing_frames"] == done[0].seq
    assert adapter.readers[0].frames > 0 and not adapter.readers[0]._thread.is_alive()
    assert {"camera_stalls", "camera_errors", "missing_frames"} <= set(done[0].all_counters())  # the diagnostics'
    with pytest.raises(CameraError, match="closed"):
        adapter.sources[0].read(timeout_s=0.1)


def _node_fails(ros_env, *params: str) -> str:
    args = [a for p in params for a in ("-p", p)]
    run = subprocess.run([sys.executable, "-m", "robot_parl_ros.robot_side_node", "--ros-args",
                          "-p", f"spec_overrides:={json.dumps([CAMERAS])}", *args],
                         env=ros_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    return run.stdout + run.stderr


@needs_pyrealsense2
def test_unknown_serials_and_cameras_stop_the_node_with_a_message(ros_env):
    out = _node_fails(ros_env, "realsense_cameras:=['wrist=NOPE']")
    assert "RealSense serial 'NOPE' not found; connected: none" in out
    out = _node_fails(ros_env, "realsense_cameras:=['side=123']")
    assert ("realsense_cameras: cameras ['side'] are not in the robot spec 'widowx' (its cameras: ['front', 'wrist'])"
            in out)
    out = _node_fails(ros_env, "cameras:=['wrist=wrist/image_raw']", "realsense_cameras:=['wrist=123']")
    assert "cameras ['wrist'] are given both as ROS topics (cameras) and as RealSense devices" in out
    out = _node_fails(ros_env, "ee_pose_topic:=/ee_pose", "tf_ee_frame:=tool0")
    assert "pose comes from ee_pose_topic ('/ee_pose') or from TF (tf_ee_frame 'tool0'), not both" in out
