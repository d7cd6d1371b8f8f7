"""The robot-side node (rclpy, Fast DDS) against an independent ROS 2 wire peer (Cyclone DDS, no rclpy): the
peer's camera images reach the actor pixel for pixel, an out-of-bounds action reaches the peer as a
TwistStamped clipped to the bound, and the watchdog's zero twists reach it once the actor stops stepping."""

import importlib.metadata
import importlib.util
import time

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
# Measured here: on Kilted (Fast DDS 3) the Cyclone peer's Image topic never matches the node's, while simple
# types do (shared/FIELD-NOTES.md); the node's own ROS tests run on Kilted all the same.
if importlib.util.find_spec("rclpy") and any(d.metadata["Name"] == "ros-kilted-rclpy" for d in
                                              importlib.metadata.distributions()):
    pytest.skip("Cyclone (Python) <-> Fast DDS 3 Image topics do not match on Kilted", allow_module_level=True)

from .conftest import wait_until  # noqa: E402
from .dds_peer import DdsPeer, peer_image  # noqa: E402

HEIGHT, WIDTH, SEED = 48, 64, 8
CAMERA = f"cameras=[{{name: front, width: {WIDTH}, height: {HEIGHT}}}]"


@pytest.fixture
def peer(ros_env, tmp_path):
    """A Cyclone DDS peer on the test's ROS domain: publishes rgb8 images on cam/image_raw at 20 Hz and
    records the TwistStamped commands on arm/cmd_vel; must exit cleanly at teardown."""
    p = DdsPeer(int(ros_env["ROS_DOMAIN_ID"]), "cam/image_raw", "arm/cmd_vel", SEED, HEIGHT, WIDTH,
                log=tmp_path / "dds_peer.log")
    yield p
    code = p.close()
    assert code == 0, (tmp_path / "dds_peer.log").read_text()[-3000:]


def test_a_cyclone_peer_drives_the_robot_side_node_over_the_ros_wire(robot_side, peer):
    # no pose source on the peer: without a workspace box the node needs no pose to command the arm
    env = robot_side("dds", "widowx", [CAMERA, "control_rate_hz=20", "workspace={low: [], high: []}"],
                     "cameras:=['front=cam/image_raw']", "twist_topic:=arm/cmd_vel").env
    expected = peer_image(SEED, HEIGHT, WIDTH)
    # until discovery has matched the peer's writer the node sends black frames for the camera
    wait_until(lambda: np.array_equal(env.reset()[0]["images"]["front"], expected), 30, "the peer's image at the actor")
    obs, *_ = env.step(np.zeros(7, np.float32))
    np.testing.assert_array_equal(obs["images"]["front"], expected)

    # far out of bounds on x: arrives at the peer as the bound, 2 cm per 50 ms period = 0.4 m/s
    wait_until(lambda: (env.step(np.array([5.0, 0, 0, 0, 0, 0, 1], np.float32)),
                        any(t["linear"][0] > 0 for t in peer.twists))[1], 30, "a clipped twist at the peer")
    moving = [t for t in peer.twists if t["linear"][0] > 0]
    assert max(t["linear"][0] for t in moving) == pytest.approx(0.02 / 0.05)
    assert all(t["linear"][1:] == [0, 0] and t["angular"] == [0, 0, 0] for t in moving)
    assert moving[-1]["frame_id"] == "base_link"

    # the actor stops stepping: every later tick misses its deadline and the node sends zero twists
    before = len(peer.twists)
    time.sleep(1.0)
    held = peer.twists[before:]
    assert len(held) >= 5 and all(t["linear"] == [0, 0, 0] and t["angular"] == [0, 0, 0] for t in held[-5:]), held
