"""Fixtures shared by the ROS 2 tests: a ROS environment limited to this host on a random domain, the test's
own rclpy node, and the robot-side node started with an actor stand-in (RemoteRobotEnv) connected to it."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.spec import load_spec
from robot_parl.teleop.robot_forwarded import RobotForwarded
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

# the ament_python package's sources, importable without a colcon build
PACKAGE_SRC = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "robot_parl_ros"
sys.path.insert(0, str(PACKAGE_SRC))


def wait_until(condition, timeout=30.0, what=""):
    """Poll ``condition()`` every 20 ms until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def ros_env(monkeypatch):
    """Discovery limited to this host and a random domain (for rclpy here and the processes we start);
    returns the environment for those processes."""
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(random.randint(1, 100)),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
           "PYTHONPATH": os.pathsep.join([str(PACKAGE_SRC), os.environ.get("PYTHONPATH", "")])}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return os.environ.copy()


@pytest.fixture
def ros_node(ros_env):
    """The test's own rclpy node (publishes inputs, subscribes to what the robot side sends)."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("robot_parl_test")
    yield node
    node.destroy_node()
    rclpy.shutdown()


@dataclass
class Side:
    """A running robot-side node and the actor stand-in connected to it over zenoh."""
    process: subprocess.Popen
    keys: KeySpace
    env: RemoteRobotEnv
    teleop: RobotForwarded


@pytest.fixture
def robot_side(ros_env, tmp_path):
    """start(session, spec, overrides, *params) runs `robot_side_node` with those ROS parameters (plus the
    zenoh listen endpoint), connects a RemoteRobotEnv and a teleop reader to it and waits for the node's
    first observation. At teardown every node
    started (also by spawn) gets SIGINT and must exit with 0 and no traceback."""
    processes, closers = [], []

    def spawn(module, *params):
        log = open(tmp_path / f"{module}.log", "w")
        args = [a for p in params for a in ("-p", p)]
        proc = subprocess.Popen([sys.executable, "-m", f"robot_parl_ros.{module}", "--ros-args", *args],
                                env=ros_env, stdout=log, stderr=subprocess.STDOUT)
        processes.append((proc, tmp_path / f"{module}.log"))
        return proc

    def start(session_name, spec, overrides, *params):
        endpoint = free_loopback_endpoint()
        proc = spawn("robot_side_node", f"spec:={spec}", f"spec_overrides:={json.dumps(overrides)}",
                     f"listen:=['{endpoint}']", f"session:={session_name}", *params)
        session = open_session(TransportConfig(connect=[endpoint]))
        keys = KeySpace(session_name, "robot0")
        env = RemoteRobotEnv(session, keys, load_spec(spec, overrides), timeout_s=30)
        teleop = RobotForwarded(session, keys)
        closers.extend([session.close, env.close, teleop.close])
        wait_until(lambda: env.observations.received > 0, 60, "the robot-side node")
        return Side(proc, keys, env, teleop)

    start.spawn = spawn
    yield start
    for close in reversed(closers):
        close()
    for proc, _ in processes:
        proc.send_signal(signal.SIGINT)
    for proc, log in processes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        text = log.read_text()
        assert proc.returncode == 0 and "Traceback" not in text, text[-3000:]
