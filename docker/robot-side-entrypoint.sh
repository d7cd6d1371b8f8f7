#!/bin/bash
# Entrypoint of the robot-side image: make the ROS 2 underlay (/opt/ros/jazzy) and the colcon-built
# overlay (robot_parl_ros) visible, then run the command in place of this shell, so that it is the
# process that receives SIGINT/SIGTERM from `docker stop` and the robot side can hold the robot and
# shut down cleanly.
#
# No `set -u`: the ROS setup scripts read variables that may be unset.
set -e
# shellcheck disable=SC1091  # generated at build time, not in the repository
source "/opt/ros/${ROS_DISTRO:-jazzy}/setup.bash"
# shellcheck disable=SC1091
source /opt/ros2_ws/install/setup.bash
exec "$@"
