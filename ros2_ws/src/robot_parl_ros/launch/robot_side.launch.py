"""The robot-side node with its parameters file (config/robot_side.yaml unless params_file is given)."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default = str(Path(get_package_share_directory("robot_parl_ros")) / "config" / "robot_side.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default),
        Node(package="robot_parl_ros", executable="robot_side", name="robot_parl_robot_side", output="screen",
             parameters=[LaunchConfiguration("params_file")]),
    ])
