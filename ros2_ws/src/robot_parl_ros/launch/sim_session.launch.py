"""A whole session on one machine: the simulated robot node, the robot-side node wired to it, and
robot-parl's learner and actor (`robot-parl finetune` without its own robot side) from a session config."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    config, out = LaunchConfiguration("config"), LaunchConfiguration("out")
    return LaunchDescription([
        DeclareLaunchArgument("config", description="robot-parl session YAML (FinetuneConfig, sim: '')"),
        DeclareLaunchArgument("out", default_value="runs/ros_session"),
        Node(package="robot_parl_ros", executable="sim_robot", name="robot_parl_sim_robot", output="screen",
             parameters=[{"task": "pick", "cameras": ["front"], "width": 64, "height": 64, "rate_hz": 10.0}]),
        Node(package="robot_parl_ros", executable="robot_side", name="robot_parl_robot_side", output="screen",
             parameters=[{"spec": "sim_tabletop", "cameras": ["front=front/image_raw"],
                          "spec_overrides": ["cameras=[{name: front, width: 64, height: 64}]"],
                          "joint_state_topic": "joint_states", "ee_pose_topic": "ee_pose", "twist_topic": "cmd_vel",
                          "gripper_topic": "gripper/command", "reset_service": "reset",
                          "listen": ["tcp/127.0.0.1:7447"]}]),
        ExecuteProcess(cmd=["robot-parl", "finetune", "--config", config, "--out", out], output="screen"),
    ])
