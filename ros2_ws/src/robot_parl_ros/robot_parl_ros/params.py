"""The robot-side node's ROS parameters (see config/robot_side.yaml for a commented example)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class RobotSideParams:
    spec: str = "widowx"  # robot spec name or YAML path (robot_parl/robots/specs)
    spec_overrides: list[str] = field(default_factory=list)  # dotted overrides, e.g. control_rate_hz=10
    session: str = "default"
    robot: str = "robot0"
    listen: list[str] = field(default_factory=lambda: ["tcp/127.0.0.1:7447"])  # zenoh endpoints
    connect: list[str] = field(default_factory=list)
    # mutual TLS (tls/ endpoints): a `robot-parl certs` directory; the node presents robot.pem, lets in the actor
    certificates: str = ""
    insecure: bool = False  # allow plain tcp endpoints beyond loopback (an isolated, trusted network only)
    synchronous: bool = False  # wait for each action (simulated robots only)
    instruction: str = ""
    cameras: list[str] = field(default_factory=list)  # "name=topic"; a topic ending in /compressed: CompressedImage
    max_skew_s: float = 0.05  # frames older than the newest by more than this are counted late
    max_frame_age_s: float = 1.0  # frames whose header stamp is older than this (ROS clock) are dropped as stale
    joint_state_topic: str = ""  # sensor_msgs/JointState: proprio entries found by joint name
    ee_pose_topic: str = ""  # geometry_msgs/PoseStamped: x, y, z, roll, pitch, yaw for proprio; workspace check
    tf_ee_frame: str = ""  # or, if given, the pose of this frame in tf_base_frame from /tf and /tf_static
    tf_base_frame: str = "base_link"
    tf_max_age_s: float = 0.5  # a /tf transform on the chain older than this (ROS clock) leaves the pose unknown
    realsense_cameras: list[str] = field(default_factory=list)  # "name=serial": read by pyrealsense2, no ROS driver
    # a camera (topic or RealSense) without a new frame for this long, or none yet, holds the arm until it delivers
    camera_stall_s: float = 0.5
    twist_topic: str = "cmd_vel"  # velocity mode
    twist_stamped: bool = True  # TwistStamped (else Twist)
    pose_topic: str = "target_pose"  # pose mode: geometry_msgs/PoseStamped targets
    frame_id: str = "base_link"
    gripper_topic: str = "gripper/command"  # std_msgs/Float64 position ...
    gripper_joints: list[str] = field(default_factory=list)  # ... or, if given, a JointTrajectory for these joints
    reset_service: str = ""  # std_srvs/Trigger of your stack; else pose mode publishes the spec's home pose
    estop_topic: str = "estop"  # std_msgs/Bool; true latches the e-stop (cleared by a clear_estop control)
    teleop_twist_topic: str = ""  # forwarded as Teleop messages (delta = twist x control period)
    teleop_twist_stamped: bool = False  # the teleop topic carries TwistStamped (else Twist)
    teleop_joy_topic: str = ""  # sensor_msgs/Joy: axes 0-5 scaled to the action bounds, buttons by joy_buttons
    joy_buttons: list[str] = field(default_factory=lambda: ["start", "success", "failure", "discard"])
    diagnostics_topic: str = "diagnostics"


def declare(node) -> RobotSideParams:
    """Declare every parameter on ``node`` with its default and read the values given."""
    out = RobotSideParams()
    for f in fields(RobotSideParams):
        default = getattr(out, f.name)
        value = node.declare_parameter(f.name, default if default != [] else [""]).value
        if isinstance(default, list):
            value = [v for v in (value or []) if v != ""]  # an empty string list cannot be typed in ROS 2
        setattr(out, f.name, value)
    return out
