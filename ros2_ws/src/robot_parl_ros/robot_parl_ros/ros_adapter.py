"""A RobotAdapter over ROS 2 topics: cameras, joint states and the end-effector pose (a PoseStamped topic,
or TF) in; velocity (twist) or pose-target commands and the gripper out; reset by a Trigger service or the
home pose; e-stop and teleop topics forwarded to the robot side.

Frames are grouped at each control tick: the newest frame of every camera, stamped with its arrival
on this machine's monotonic clock (the robot side's clock); a frame older than the newest by more than
``max_skew_s`` is counted late, frames superseded before a tick are counted dropped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState, Joy
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_parl.cameras import camera_items, delivered_sizes, resize_nearest
from robot_parl.data.ros_images import compressed_to_rgb, image_to_rgb
from robot_parl.robots.side import SensorFrame
from robot_parl.robots.spec import RobotSpec
from robot_parl.transport.messages import Teleop
from robot_parl_ros.convert import compose_pose, quat_to_rpy
from robot_parl_ros.params import RobotSideParams
from robot_parl_ros.tf_tree import TransformTree

POSE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw")
# As tf2's listener: /tf keeps a backlog for bursts; /tf_static is latched, so late joiners get it.
TF_QOS = QoSProfile(depth=100)
TF_STATIC_QOS = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RosAdapter:
    """RobotAdapter for a robot whose drivers speak ROS 2; ``side`` is set by the node once created."""

    def __init__(self, node: Node, spec: RobotSpec, params: RobotSideParams):
        self.node = node
        self.spec = spec
        self.params = params
        self.side = None
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[np.ndarray, int]] = {}
        self._arrived: Counter[str] = Counter()
        self._joints: dict[str, float] = {}
        self._pose: np.ndarray | None = None  # xyz + quaternion xyzw
        self._target: np.ndarray | None = None
        self.gripper = float(spec.action.high[-1])
        # a calibrated camera's frames go to the robot side raw (its rectifier undistorts, crops and resizes)
        self._sizes = delivered_sizes(spec)
        cameras = camera_items(params.cameras, spec, "cameras")
        # cameras read directly (the node wraps this adapter in WithCameras): not this adapter's to deliver
        self._direct = set(camera_items(params.realsense_cameras, spec, "realsense_cameras"))
        both = sorted(self._direct & set(cameras))
        if both:
            raise ValueError(f"cameras {both} are given both as ROS topics (cameras) and as RealSense devices "
                             "(realsense_cameras): choose one source per camera")
        for name, topic in cameras.items():
            compressed = topic.endswith("/compressed")
            node.create_subscription(CompressedImage if compressed else Image, topic,
                                     lambda msg, n=name, c=compressed: self._on_image(n, msg, c),
                                     qos_profile_sensor_data)
        if params.joint_state_topic:
            node.create_subscription(JointState, params.joint_state_topic, self._on_joints, qos_profile_sensor_data)
        if params.ee_pose_topic and params.tf_ee_frame:
            raise ValueError(f"the end-effector pose comes from ee_pose_topic ({params.ee_pose_topic!r}) or from TF "
                             f"(tf_ee_frame {params.tf_ee_frame!r}), not both: set the other one to ''")
        if params.ee_pose_topic:
            node.create_subscription(PoseStamped, params.ee_pose_topic, self._on_pose, qos_profile_sensor_data)
        self._tf = TransformTree() if params.tf_ee_frame else None
        if self._tf is not None:
            node.create_subscription(TFMessage, "/tf", lambda msg: self._on_tf(msg, False), TF_QOS)
            node.create_subscription(TFMessage, "/tf_static", lambda msg: self._on_tf(msg, True), TF_STATIC_QOS)
        node.create_subscription(Bool, params.estop_topic, self._on_estop, 10)
        if params.teleop_twist_topic:
            node.create_subscription(TwistStamped if params.teleop_twist_stamped else Twist, params.teleop_twist_topic,
                                     self._on_teleop_twist, 10)
        if params.teleop_joy_topic:
            node.create_subscription(Joy, params.teleop_joy_topic, self._on_joy, 10)
        if spec.command_mode == "velocity":
            self._twist = node.create_publisher(TwistStamped if params.twist_stamped else Twist, params.twist_topic, 10)
        else:
            self._pose_pub = node.create_publisher(PoseStamped, params.pose_topic, 10)
        self._gripper = node.create_publisher(JointTrajectory if params.gripper_joints else Float64,
                                              params.gripper_topic, 10)
        self._reset = node.create_client(Trigger, params.reset_service) if params.reset_service else None

    # sensors --------------------------------------------------------------------------------------

    def _on_image(self, name: str, msg, compressed: bool) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        age_s = (self.node.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        if stamp_ns and age_s > self.params.max_frame_age_s:
            self.counters["stale_frames"] += 1
            self.node.get_logger().warning(f"camera {name}: stale frame stamped {age_s:.2f} s ago dropped "
                                           f"(max_frame_age_s {self.params.max_frame_age_s})",
                                           throttle_duration_sec=5.0)
            return
        try:
            if compressed:
                image = compressed_to_rgb(msg.format, msg.data)
            else:
                image = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
            if image.size == 0:
                raise ValueError(f"empty {image.shape} frame")
        except (ValueError, OSError) as err:  # OSError: Pillow cannot decode the bytes
            self.counters["bad_frames"] += 1
            self.node.get_logger().warning(f"camera {name}: {err}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._frames[name] = (image, time.monotonic_ns())
            self._arrived[name] += 1

    def _on_joints(self, msg: JointState) -> None:
        with self._lock:
            self._joints.update(zip(msg.name, msg.position))

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        with self._lock:
            self._pose = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        with self._lock:
            for t in msg.transforms:
                p, q = t.transform.translation, t.transform.rotation
                self._tf.set(t.header.frame_id, t.child_frame_id, np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w]),
                             t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec, static)

    def _refresh_tf_pose(self) -> None:
        """The end effector's pose in the base frame from TF now; unknown (None, counted and warned about at a
        limited rate) while TF lacks a link of the chain or has only stale ones."""
        now_ns = self.node.get_clock().now().nanoseconds
        with self._lock:
            try:
                self._pose = self._tf.lookup(self.params.tf_base_frame, self.params.tf_ee_frame, now_ns,
                                             self.params.tf_max_age_s)
                return
            except LookupError as err:
                self._pose = None
                error = err
        self.counters["tf_pose_unknown"] += 1
        self.node.get_logger().warning(f"end-effector pose of {self.params.tf_ee_frame!r} in "
                                       f"{self.params.tf_base_frame!r} from TF: {error}", throttle_duration_sec=5.0)

    def read(self) -> SensorFrame:
        now = time.monotonic_ns()
        if self._tf is not None:
            self._refresh_tf_pose()
        with self._lock:
            frames, arrived = dict(self._frames), dict(self._arrived)
            self._arrived.clear()
            joints, pose = dict(self._joints), self._pose
        images, stamps, stale = {}, {}, []
        newest = max((stamp for _, stamp in frames.values()), default=now)
        for camera in self.spec.cameras:
            if camera.name in self._direct:
                continue
            width, height = self._sizes[camera.name]
            if camera.name not in frames:
                self.counters["missing_frames"] += 1
                images[camera.name], stamps[camera.name] = np.zeros((height, width, 3), np.uint8), now
                stale.append(camera.name)
                continue
            image, stamp = frames[camera.name]
            if now - stamp > self.params.camera_stall_s * 1e9:
                # the driver stopped (or lost its frames): acting on an old image would act on the past
                self.counters["stalled_frames"] += 1
                stale.append(camera.name)
                self.node.get_logger().warning(f"camera {camera.name}: no frame for {(now - stamp) * 1e-9:.2f} s "
                                               f"(camera_stall_s {self.params.camera_stall_s}): holding the arm",
                                               throttle_duration_sec=5.0)
            if image.ndim == 2:  # depth is not an RGB camera input
                image = np.repeat((image >> 8).astype(np.uint8)[..., None], 3, axis=2)
            images[camera.name] = resize_nearest(image, height, width)
            stamps[camera.name] = stamp
            self.counters["dropped_frames"] += max(arrived.get(camera.name, 0) - 1, 0)
            if newest - stamp > self.params.max_skew_s * 1e9:
                self.counters["late_frames"] += 1
        return SensorFrame(now, self._proprio(joints, pose), images, stamps, pose, stale_cameras=stale)

    def _proprio(self, joints: dict[str, float], pose: np.ndarray | None) -> np.ndarray:
        values = []
        pose6 = None if pose is None else np.r_[pose[:3], quat_to_rpy(pose[3:7])]
        for name in self.spec.proprio:
            if name in joints:
                values.append(joints[name])
            elif name in POSE_NAMES and pose6 is not None:
                values.append(pose6[POSE_NAMES.index(name)])
            elif name == "gripper":
                values.append(self.gripper)
            else:
                self.counters["missing_proprio"] += 1
                values.append(0.0)
        return np.asarray(values, np.float32)

    # commands -------------------------------------------------------------------------------------

    def _publish_twist(self, linear: np.ndarray, angular: np.ndarray) -> None:
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in linear)
        twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in angular)
        if self.params.twist_stamped:
            msg = TwistStamped()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.header.frame_id = self.params.frame_id
            msg.twist = twist
            self._twist.publish(msg)
        else:
            self._twist.publish(twist)

    def _publish_pose(self, pose: np.ndarray) -> None:
        msg = PoseStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = self.params.frame_id
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (float(v) for v in pose[:3])
        q.x, q.y, q.z, q.w = (float(v) for v in pose[3:7])
        self._pose_pub.publish(msg)

    def apply(self, values: np.ndarray) -> None:
        """Velocity: twist = delta / control period; pose: target = current pose composed with the delta."""
        if self.spec.command_mode == "velocity":
            self._publish_twist(values[:3] / self.spec.period_s, values[3:6] / self.spec.period_s)
        else:
            with self._lock:
                pose = self._pose
            if pose is None:
                self.counters["pose_unknown"] += 1
                return
            self._target = compose_pose(pose, values[:6])
            self._publish_pose(self._target)
        if len(values) > 6:
            self.gripper = float(values[6])
            self._publish_gripper()

    def _publish_gripper(self) -> None:
        if not self.params.gripper_joints:
            self._gripper.publish(Float64(data=self.gripper))
            return
        point = JointTrajectoryPoint(positions=[self.gripper] * len(self.params.gripper_joints))
        point.time_from_start.nanosec = int(self.spec.period_s * 1e9)
        self._gripper.publish(JointTrajectory(joint_names=list(self.params.gripper_joints), points=[point]))

    def hold(self) -> None:
        """Zero twist, or the last pose target again."""
        if self.spec.command_mode == "velocity":
            self._publish_twist(np.zeros(3), np.zeros(3))
        elif self._target is not None:
            self._publish_pose(self._target)

    def reset(self) -> None:
        """Home: the stack's Trigger service if configured, else (pose mode) the spec's home pose."""
        self.hold()
        if self._reset is not None:
            if not self._reset.wait_for_service(timeout_sec=5.0):
                self.counters["reset_unavailable"] += 1
                self.node.get_logger().error(f"reset service {self.params.reset_service} is not available")
                return
            future = self._reset.call_async(Trigger.Request())
            deadline = time.monotonic() + 30.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not future.done() or not future.result().success:
                self.counters["reset_failed"] += 1
        elif self.spec.command_mode == "pose":
            self._target = np.asarray(self.spec.home_pose, np.float64)
            self._publish_pose(self._target)
        else:
            self.counters["reset_by_operator"] += 1

    # operator topics ------------------------------------------------------------------------------

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and self.side is not None:
            self.side.safety.estop("ros_topic")
            self.hold()

    def _forward(self, device: str, values: np.ndarray, buttons: dict[str, bool] | None = None) -> None:
        if self.side is None:
            return
        values = np.clip(values, self.spec.action.low, self.spec.action.high).astype(np.float32)
        self.side.forward_teleop(Teleop(time.monotonic_ns(), device, values, bool(np.any(values[:6])),
                                        buttons or {}))

    def _on_teleop_twist(self, msg: Twist | TwistStamped) -> None:
        t = msg.twist if isinstance(msg, TwistStamped) else msg
        delta = np.r_[[t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]]
        self._forward("ros_twist", np.r_[delta * self.spec.period_s, self.gripper])

    def _on_joy(self, msg: Joy) -> None:
        axes = np.zeros(6)
        axes[: min(6, len(msg.axes))] = msg.axes[:6]
        high, low = np.asarray(self.spec.action.high[:6]), np.asarray(self.spec.action.low[:6])
        motion = np.where(axes > 0, axes * high, -axes * low)
        buttons = {name: bool(msg.buttons[i]) for i, name in enumerate(self.params.joy_buttons)
                   if i < len(msg.buttons)}
        self._forward("ros_joy", np.r_[motion, self.gripper], buttons)
