"""The robot-side node reads the end-effector pose from TF (real rclpy, tf2_msgs/TFMessage on /tf and a latched
/tf_static): the actor stand-in's proprio shows the pose composed along the chain; a disconnected or stale chain
leaves the pose unknown, counted in diagnostics and warned about at a limited rate, and the node lives on."""

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from tf2_msgs.msg import TFMessage

from .conftest import wait_until

CAMERA = "cameras=[{name: front, width: 8, height: 6}]"


def _transform(node, parent: str, child: str, xyz, quat_xyzw, age_s: float = 0.0) -> TransformStamped:
    t = TransformStamped()
    t.header.stamp = rclpy.time.Time(nanoseconds=node.get_clock().now().nanoseconds - int(age_s * 1e9)).to_msg()
    t.header.frame_id, t.child_frame_id = parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in xyz)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in quat_xyzw)
    return t


def test_end_effector_pose_from_tf(robot_side, ros_node, tmp_path):
    node = ros_node
    # base -> shoulder: 0.2 m forward, 0.1 m up, turned 90 degrees about z; latched before the robot side exists
    static = node.create_publisher(TFMessage, "/tf_static",
                                   QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    s = np.sqrt(0.5)
    static.publish(TFMessage(transforms=[_transform(node, "base", "shoulder", [0.2, 0, 0.1], [0, 0, s, s])]))
    tf = node.create_publisher(TFMessage, "/tf", 100)
    # shoulder -> ee: 0.1 m along the shoulder's x, 0.05 up, pitched 0.5 rad about y
    pitch = [0, np.sin(0.25), 0, np.cos(0.25)]
    side = robot_side("tf", "widowx", [CAMERA, "control_rate_hz=20"], "tf_ee_frame:=ee", "tf_base_frame:=base",
                      "tf_max_age_s:=0.5")
    env = side.env
    diagnostics = []
    node.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, 10)

    def unknown_count() -> int:
        rclpy.spin_once(node, timeout_sec=0.05)
        values = {kv.key: kv.value for d in diagnostics[-1:] for kv in d.status[0].values}
        return int(values.get("tf_pose_unknown", 0))

    def proprio(*transforms: TransformStamped) -> np.ndarray:
        tf.publish(TFMessage(transforms=list(transforms)))
        return env.reset()[0]["proprio"]

    # ee hangs under an 'elbow' nothing connects to the base: the pose is unknown (zeros), counted and warned
    # about (at most every 5 s: wait for the warning that names this failure)
    log = tmp_path / "robot_side_node.log"
    disconnected = "frames 'ee' and 'base' are not connected: 'ee' leads up to 'elbow', 'base' has no parent"
    wait_until(lambda: (proprio(_transform(node, "elbow", "ee", [0.1, 0, 0.05], pitch)),
                        disconnected in log.read_text())[1], 30, "a warning about the disconnected chain")
    assert np.all(proprio()[:6] == 0) and unknown_count() >= 1
    # ee re-published under the shoulder: x, y, z, roll, pitch, yaw of the composed chain (worked by hand: the
    # shoulder's x axis is the base's y axis)
    expected = [0.2, 0.1, 0.15, 0.0, 0.5, np.pi / 2]
    wait_until(lambda: np.allclose(proprio(_transform(node, "shoulder", "ee", [0.1, 0, 0.05], pitch))[:6], expected,
                                   atol=1e-5), 20, "the pose composed along base -> shoulder -> ee")
    before = unknown_count()
    np.testing.assert_allclose(proprio(_transform(node, "shoulder", "ee", [0.1, 0, 0.05], pitch))[:6], expected,
                               atol=1e-5)
    # only stale transforms (stamped 2 s ago) for the moving link: unknown again, counted, the node lives on
    wait_until(lambda: np.all(proprio(_transform(node, "shoulder", "ee", [0.1, 0, 0.05], pitch, age_s=2.0))[:6] == 0),
               20, "a stale chain to leave the pose unknown")
    wait_until(lambda: unknown_count() > before + 5, 20, "stale lookups counted")
    assert side.process.poll() is None
    warnings = [line for line in log.read_text().splitlines() if "end-effector pose of 'ee' in 'base' from TF" in line]
    # rate-limited: one warning per 5 s, not one per failed tick (20 a second)
    assert 2 <= len(warnings) < unknown_count() / 10, warnings


def test_the_test_venvs_tf2_msgs_has_jazzys_type_hash(ros_node):
    # tf2_msgs is built from its definition for the test virtualenv (tests/ros2/msgs): the graph's type hash must
    # be the one of ROS 2 Jazzy's own tf2_msgs/msg/TFMessage (computed independently by rosbags)
    from rosbags.typesys import Stores, get_typestore

    ros_node.create_publisher(TFMessage, "/tf", 10)
    wait_until(lambda: ros_node.get_publishers_info_by_topic("/tf"), 10, "the publisher in the graph")
    graph_hash = str(ros_node.get_publishers_info_by_topic("/tf")[0].topic_type_hash)
    assert graph_hash == get_typestore(Stores.ROS2_JAZZY).hash_rihs01("tf2_msgs/msg/TFMessage")
