"""A simulated robot as a ROS 2 node, for CI and for trying the robot-side node without hardware: the
MuJoCo tabletop (robot_parl/robots/sim) publishes camera images (rgb8), the end effector as a joint
state (x, y, z, gripper) and a pose, and takes a velocity command (TwistStamped, applied for one
period: a velocity-controlled arm stops when commands stop), a gripper command (Float64) and a reset
service (std_srvs/Trigger: the next layout).
"""

from __future__ import annotations

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from robot_parl.robots.sim.tabletop import TabletopEnv
from robot_parl_ros.convert import rgb_to_image_fields


class SimRobotNode(Node):
    def __init__(self):
        super().__init__("robot_parl_sim_robot")
        self.task = self.declare_parameter("task", "pick").value
        self.cameras = list(self.declare_parameter("cameras", ["front"]).value)
        self.width = self.declare_parameter("width", 64).value
        self.height = self.declare_parameter("height", 64).value
        self.rate_hz = self.declare_parameter("rate_hz", 10.0).value
        self.seed = self.declare_parameter("seed", 0).value
        self.env = TabletopEnv(self.task)
        self.env.reset(seed=self.seed)
        self.twist = np.zeros(6)
        self.gripper = 1.0
        self.images = {c: self.create_publisher(Image, f"{c}/image_raw", qos_profile_sensor_data)
                       for c in self.cameras}
        self.joints = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.pose = self.create_publisher(PoseStamped, "ee_pose", qos_profile_sensor_data)
        self.create_subscription(TwistStamped, "cmd_vel", self._on_twist, 10)
        self.create_subscription(Float64, "gripper/command", lambda m: setattr(self, "gripper", m.data), 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_timer(1.0 / self.rate_hz, self._tick)

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        self.twist = np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])

    def _on_reset(self, request, response):
        self.seed += 1
        self.env.reset(seed=self.seed)
        self.twist[:] = 0
        self.gripper = 1.0
        response.success, response.message = True, f"layout {self.seed}"
        return response

    def _tick(self) -> None:
        delta = self.twist / self.rate_hz
        self.twist = np.zeros(6)
        self.env.step(np.r_[delta, self.gripper].astype(np.float32))
        stamp = self.get_clock().now().to_msg()
        for camera, pub in self.images.items():
            msg = Image(**rgb_to_image_fields(self.env.render_camera(camera, self.height, self.width)))
            msg.header.stamp, msg.header.frame_id = stamp, camera
            pub.publish(msg)
        state = self.env.state()
        self.joints.publish(JointState(name=["x", "y", "z", "gripper"], position=[float(v) for v in state[:4]]))
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "world"
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in state[:3])
        pose.pose.orientation.w = 1.0
        self.pose.publish(pose)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = SimRobotNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
