"""The robot-side node with real rclpy (Jazzy wheels, Fast DDS, discovery limited to this host, a random
domain): the simulated robot node publishes MuJoCo camera images and joint states, the robot-side node
forwards them over zenoh to a RemoteRobotEnv (an actor stand-in) and turns its actions into
TwistStamped commands the sim executes; teleop topics are forwarded; an e-stop topic latches; the node
publishes diagnostics."""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from std_msgs.msg import Bool

from .conftest import wait_until

CAMERA = "cameras=[{name: front, width: 48, height: 48}]"
NO_BOX = "workspace={low: [], high: []}"


def test_sim_robot_through_the_robot_side_node(robot_side, ros_node, tmp_path):
    robot_side.spawn("sim_robot_node", "task:=pick", "cameras:=['front']", "width:=48", "height:=48", "rate_hz:=20.0")
    side = robot_side("ros", "sim_tabletop", [CAMERA, "control_rate_hz=20"],
                      "cameras:=['front=front/image_raw']", "joint_state_topic:=joint_states",
                      "ee_pose_topic:=ee_pose", "twist_topic:=cmd_vel", "reset_service:=reset",
                      "estop_topic:=estop", "teleop_twist_topic:=teleop/twist")
    env, node = side.env, ros_node
    diagnostics = []
    node.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, 10)
    teleop_pub = node.create_publisher(Twist, "teleop/twist", 10)
    estop_pub = node.create_publisher(Bool, "estop", 10)
    # images come from MuJoCo through ROS: wait until the node has frames and joints

    def ready():
        obs, _ = env.reset()
        return obs["images"]["front"].std() > 5 and obs["proprio"][2] > 0.05
    wait_until(ready, 60, "camera frames and joint states through the node")
    obs, _ = env.reset()
    assert obs["images"]["front"].shape == (48, 48, 3)
    for _ in range(4):  # the sim's topics catch up with its reset (the node reads the newest messages)
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))
    start = obs["proprio"].copy()
    for _ in range(6):
        obs, *_ = env.step(np.array([0.02, 0, 0, 0, 0, 0, 1], np.float32))
    time.sleep(0.2)
    obs, *_ = env.step(np.zeros(7, np.float32))
    moved = obs["proprio"][:3] - start[:3]
    # 6 commands of 2 cm along x through TwistStamped (two clocks at 20 Hz: a command may be overwritten)
    assert 0.04 < moved[0] < 0.14 and abs(moved[1]) < 0.02 and abs(moved[2]) < 0.03, moved

    # teleop topics are forwarded as Teleop messages (delta = twist x period)
    msg = Twist()
    msg.linear.y = 0.2
    wait_until(lambda: (teleop_pub.publish(msg), side.teleop.inbox.pending() > 0)[1], 20, "a forwarded teleop message")
    values = side.teleop.poll().values
    np.testing.assert_allclose(values[:3], [0, 0.01, 0], atol=1e-6)

    # an e-stop topic latches the e-stop: the robot holds, the status says so
    estop_pub.publish(Bool(data=True))
    wait_until(lambda: (rclpy.spin_once(node, timeout_sec=0.05), env.robot_status is not None
                   and env.robot_status.estop)[1], 20, "the e-stop in the robot's status")
    def latched():
        rclpy.spin_once(node, timeout_sec=0.1)
        return [s for d in diagnostics for s in d.status if s.message == "e-stop latched"]
    wait_until(latched, 20, "diagnostics reporting the e-stop")
    status = latched()[-1]
    counters = {kv.key: int(kv.value) for kv in status.values}
    assert counters["applied"] >= 6 and counters["estops"] == 1 and status.level == status.ERROR
    assert "robot side sim_tabletop" in (tmp_path / "robot_side_node.log").read_text()


def test_gripper_trajectory_stamped_teleop_and_camera_info(robot_side, ros_node, tmp_path):
    from geometry_msgs.msg import TwistStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from trajectory_msgs.msg import JointTrajectory

    from robot_parl.robots.camera_calibration import CameraCalibration, save_calibration

    k = [[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]]
    calibration = save_calibration(CameraCalibration(rig="test", camera="front", date="2026-01-01T00:00:00+00:00",
                                                     board="b", image_size=[64, 48], camera_matrix=k,
                                                     distortion=[-0.1, 0.01, 0.0, 0.0, 0.0]), tmp_path / "front.yaml")
    camera = f"cameras=[{{name: front, width: 48, height: 48, calibration: {calibration}}}]"
    # no pose source here: without a workspace box the node needs no pose to command the arm
    side = robot_side("grip", "widowx", [camera, "control_rate_hz=20", NO_BOX], "cameras:=['front=cam/image_raw']",
                      "gripper_topic:=gripper/trajectory", "gripper_joints:=['left', 'right']",
                      "teleop_twist_topic:=spacenav/twist", "teleop_twist_stamped:=true")
    env, node = side.env, ros_node
    trajectories = []
    node.create_subscription(JointTrajectory, "gripper/trajectory", trajectories.append, 10)
    frames = node.create_publisher(Image, "cam/image_raw", qos_profile_sensor_data)
    frame = Image(encoding="rgb8", height=48, width=64, step=192, data=b"\x40" * (48 * 192))
    teleop_pub = node.create_publisher(TwistStamped, "spacenav/twist", 10)
    infos = {}
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    for topic in ("robot_parl/front/camera_info", "robot_parl/front/rectified/camera_info"):
        node.create_subscription(CameraInfo, topic, lambda m, t=topic: infos.__setitem__(t, m), latched)
    env.reset()
    # the camera has sent nothing yet: the node holds rather than act on a black image
    wait_until(lambda: (env.step(np.array([0, 0, 0, 0, 0, 0, 0.25], np.float32)), env.robot_status is not None and
                        env.robot_status.counters.get("camera_stale_holds", 0) >= 3)[1], 20, "holds without frames")
    rclpy.spin_once(node, timeout_sec=0.1)
    assert not trajectories and env.robot_status.counters["missing_frames"] >= 3
    # keep commanding (with frames) until discovery has matched the test's subscriber (earlier commands are not
    # queued); spinning must not block: an action answering an observation a tick old is dropped as stale
    wait_until(lambda: (frames.publish(frame), env.step(np.array([0, 0, 0, 0, 0, 0, 0.25], np.float32)),
                        rclpy.spin_once(node, timeout_sec=0), trajectories)[3], 20, "a gripper trajectory")
    assert trajectories[-1].joint_names == ["left", "right"]
    assert list(trajectories[-1].points[0].positions) == [0.25, 0.25]
    msg = TwistStamped()
    msg.twist.angular.z = 1.0
    wait_until(lambda: (teleop_pub.publish(msg), side.teleop.inbox.pending() > 0)[1], 20, "a forwarded stamped twist")
    np.testing.assert_allclose(side.teleop.poll().values[3:6], [0, 0, 0.05], atol=1e-6)  # 1 rad/s x 50 ms
    # CameraInfo of the calibrated camera: raw (its driver's images) and rectified (what robot-parl sends)
    wait_until(lambda: (rclpy.spin_once(node, timeout_sec=0.05), len(infos) == 2)[1], 20, "camera infos")
    raw, rectified = infos["robot_parl/front/camera_info"], infos["robot_parl/front/rectified/camera_info"]
    assert (raw.width, raw.height) == (64, 48) and (rectified.width, rectified.height) == (48, 48)
    np.testing.assert_allclose(np.reshape(raw.k, (3, 3)), k)
    np.testing.assert_allclose(raw.d, [-0.1, 0.01, 0, 0, 0])
    np.testing.assert_allclose(rectified.d, 0)
    obs, *_ = env.step(np.zeros(7, np.float32))
    assert obs["images"]["front"].shape == (48, 48, 3)  # rectified and resized to the spec's size
    # the camera stops: after camera_stall_s (0.5 s) the node holds again and says why
    stalled = env.robot_status.counters.get("stalled_frames", 0)
    wait_until(lambda: (env.step(np.zeros(7, np.float32)),
                        env.robot_status.counters.get("stalled_frames", 0) > stalled)[1], 20, "a stalled camera")
    assert "camera front: no frame for" in (tmp_path / "robot_side_node.log").read_text()


def test_commands_arrive_clipped_and_the_watchdog_sends_zero_twist(robot_side, ros_node):
    from geometry_msgs.msg import PoseStamped, TwistStamped

    env = robot_side("clip", "widowx", ["cameras=[]", "control_rate_hz=20"], "twist_topic:=arm/cmd_vel",
                     "ee_pose_topic:=arm/ee_pose").env
    node = ros_node
    twists = []
    node.create_subscription(TwistStamped, "arm/cmd_vel", twists.append, 100)
    pose_pub = node.create_publisher(PoseStamped, "arm/ee_pose", 10)
    pose = PoseStamped()
    pose.header.frame_id = "base_link"
    pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.w = 0.3, 0.2, 1.0  # inside the workspace
    env.reset()
    # no pose heard yet: the workspace box cannot be checked, so the node holds (zero twists) whatever comes
    wait_until(lambda: (env.step(np.array([5.0, 0, 0, 0, 0, 0, 1], np.float32)), rclpy.spin_once(node, timeout_sec=0),
                        len(twists) >= 3)[2], 20, "twists while the pose is unknown")
    assert all(t.twist.linear.x == 0 for t in twists)
    # far out of bounds on x: arrives as the bound (2 cm per 50 ms period = 0.4 m/s), in the arm's frame
    wait_until(lambda: (pose_pub.publish(pose), env.step(np.array([5.0, 0, 0, 0, 0, 0, 1], np.float32)),
                        rclpy.spin_once(node, timeout_sec=0), any(t.twist.linear.x > 0 for t in twists))[3],
               20, "a clipped twist")
    moving = [t for t in twists if t.twist.linear.x > 0]
    assert max(t.twist.linear.x for t in moving) == pytest.approx(0.02 / 0.05)
    assert moving[-1].header.frame_id == "base_link"
    # the actor stops answering: every later tick misses its deadline and the node sends zero twists
    twists.clear()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert len(twists) >= 5 and all(t.twist.linear.x == 0 and t.twist.angular.z == 0 for t in twists[-5:])


def test_bad_frames_and_commands_are_dropped_and_counted_and_the_node_lives_on(robot_side, ros_node, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    cameras = "cameras=[{name: front, width: 8, height: 6}, {name: wrist, width: 8, height: 6}]"
    side = robot_side("bad", "widowx", [cameras, "control_rate_hz=20"],
                      "cameras:=['front=cam/image_raw', 'wrist=wrist/image_raw/compressed']")
    env, node = side.env, ros_node
    diagnostics = []
    node.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, 10)
    raw = node.create_publisher(Image, "cam/image_raw", qos_profile_sensor_data)
    compressed = node.create_publisher(CompressedImage, "wrist/image_raw/compressed", qos_profile_sensor_data)

    def image(encoding="rgb8", step=24, data=b"\x07" * 144, age_s=0.0):
        msg = Image(encoding=encoding, height=6, width=8, step=step, data=data)
        msg.header.stamp = rclpy.time.Time(nanoseconds=node.get_clock().now().nanoseconds - int(age_s * 1e9)).to_msg()
        return msg

    def counters():
        rclpy.spin_once(node, timeout_sec=0.05)
        if not diagnostics:
            return {}
        return {kv.key: int(kv.value) for kv in diagnostics[-1].status[0].values}

    env.reset()
    # until discovery has matched our publishers, keep sending each kind of bad input
    wait_until(lambda: (raw.publish(image(encoding="yuv422")), raw.publish(image(step=10)),
                   raw.publish(image(data=b"")), raw.publish(image(age_s=5.0)),
                   compressed.publish(CompressedImage(format="jpeg", data=b"not a jpeg")),
                   env.step(np.array([np.nan, 0, 0, 0, 0, 0, 1], np.float32)),
                   (c := counters()).get("bad_frames", 0) >= 4 and c.get("stale_frames", 0) >= 1
                   and c.get("nonfinite_rejected", 0) >= 1)[-1], 30, "bad input counted in diagnostics")
    # a good frame still gets through afterwards
    wait_until(lambda: (raw.publish(image()), env.step(np.zeros(7, np.float32))[0]["images"]["front"].max() == 7)[1],
          20, "a good frame after the bad ones")
    assert side.process.poll() is None
    text = (tmp_path / "robot_side_node.log").read_text()
    # rate-limited warnings that name the camera and what was wrong (one per kind within 5 s)
    assert "stale frame" in text and any(w in text for w in ("not supported", "too small", "empty", "cannot identify"))
