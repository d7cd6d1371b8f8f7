# syntax=docker/dockerfile:1
# The robot side: the ROS 2 node of ros2_ws/src/robot_parl_ros, which turns camera, joint and pose topics
# into observations, filters every command through robots.safety and owns the control clock. It needs
# only the light part of robot_parl (transport, robots.spec/safety/side: numpy, pyyaml, msgspec,
# eclipse-zenoh). No torch and no CUDA, so the image is small enough for the robot's own computer.
#
# Build from the repository root (the build context must hold robot_parl/ and ros2_ws/):
#   docker build -f docker/robot-side.Dockerfile -t robot-parl/robot-side .

# Jazzy's ros-base on Ubuntu 24.04 (Python 3.12): rclpy, launch, common_interfaces, colcon and rosdep.
FROM ros:jazzy-ros-base-noble

# Every RUN below chains commands or pipes them: stop at the first failure, including one inside a pipe.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Only for the build. As an ENV it would stay set in every container started from the image.
ARG DEBIAN_FRONTEND=noninteractive

# python3-venv (which brings ensurepip) for the virtualenv below, and Ubuntu's numpy, which the
# ROS 2 message packages were built against. Each package is pinned to the release that Ubuntu 24.04
# ships. The wildcard lets Ubuntu's security rebuilds install.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "python3-venv=3.12.3-*" "python3-numpy=1:1.26.4+ds-*" \
    && rm -rf /var/lib/apt/lists/*

# robot_parl and its Python dependencies go into a virtualenv, not into the system Python. There are two
# reasons: Ubuntu 24.04 refuses system-wide pip installs (PEP 668), and pip must not replace packages that
# apt owns. The venv is made with --system-site-packages, so its interpreter still sees the packages apt
# installed: rclpy and the message packages (through PYTHONPATH once /opt/ros/jazzy/setup.bash is
# sourced), colcon, and Ubuntu's numpy and PyYAML.
ENV VIRTUAL_ENV=/opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN python3 -m venv --system-site-packages "$VIRTUAL_ENV"

# robot_parl is installed WITHOUT extras, because the extras (learn, vla, sim, ...) are what pull torch in.
# The install is editable because the robot specs (robot_parl/robots/specs/*.yaml) and calibration/ are
# read from the source tree, and a plain wheel build does not carry them. The source is copied before
# ros2_ws, so that editing the ROS package does not rebuild this layer.
WORKDIR /opt/robot_parl
COPY pyproject.toml README.md ./
COPY robot_parl ./robot_parl
COPY calibration ./calibration
# The constraint holds numpy at Ubuntu's version. The ROS 2 message packages were compiled against
# numpy 1.x, so a numpy 2 pulled in by a dependency would break them at import. With the constraint
# pip fails instead of shadowing it.
# Besides robot_parl: pillow decodes sensor_msgs/CompressedImage topics, and opencv rectifies frames
# when the robot spec names calibration files. Both are pinned to releases that accept numpy 1.26.
# The closing python line makes the build fail if the light part cannot import, or if torch came in
# through a dependency (the design's rule: the robot side never imports torch).
RUN python -c "import numpy; print(f'numpy=={numpy.__version__}')" > /tmp/ubuntu-numpy.txt \
    && pip install --no-cache-dir --constraint /tmp/ubuntu-numpy.txt --editable . \
        "opencv-python-headless==4.11.0.86" "pillow==11.3.0" \
    && rm /tmp/ubuntu-numpy.txt \
    && python -c "import importlib.util as u, cv2, PIL, msgspec, zenoh, robot_parl.transport, \
robot_parl.robots.spec, robot_parl.robots.safety, robot_parl.robots.side; \
assert u.find_spec('torch') is None, 'torch must not be in the robot-side image'"

# The colcon workspace. rosdep installs the ROS dependencies that package.xml declares and ros-base
# lacks. The node's Python dependencies come from the venv above, not from rosdep.
# colcon runs under the venv's interpreter (`python -m colcon`). That way setuptools writes
# /opt/venv/bin/python as the shebang of the node's entry-point scripts, and the node sees robot_parl
# and zenoh. A plain `colcon` would write /usr/bin/python3, which sees neither. The loop checks every
# script, and the last line imports the node the way `ros2 launch` will run it.
WORKDIR /opt/ros2_ws
COPY ros2_ws/src ./src
RUN . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && apt-get update \
    && rosdep update --rosdistro "${ROS_DISTRO}" \
    && rosdep install --from-paths src --ignore-src -y --rosdistro "${ROS_DISTRO}" \
    && rm -rf /var/lib/apt/lists/* /root/.ros/rosdep \
    && python -m colcon build --event-handlers console_direct+ \
    && rm -rf build log \
    && for script in install/robot_parl_ros/lib/robot_parl_ros/*; do \
           head -n 1 "$script" | grep -q "^#!/opt/venv/bin/python" \
               || { echo "$script does not run under /opt/venv/bin/python" >&2; exit 1; }; \
       done \
    && . install/setup.bash \
    && python -c "import robot_parl_ros.robot_side_node"

# A non-root user for the node. It joins dialout and video because serial-attached arms and USB cameras,
# passed in with --device, belong to those groups. The fixed uid lets a host directory be prepared for
# it (chown 10001), and USER names it by number, so that a runtime can see the image is not root without
# reading /etc/passwd.
RUN useradd --create-home --shell /bin/bash --uid 10001 --user-group --groups dialout,video parl

COPY --chmod=0755 docker/robot-side-entrypoint.sh /usr/local/bin/robot-side-entrypoint

USER 10001
WORKDIR /home/parl
# By default ROS 2 discovery stays on this host (the project's network rule). Set it to SUBNET when the
# robot's drivers run on another machine.
ENV ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

ENTRYPOINT ["/usr/local/bin/robot-side-entrypoint"]
CMD ["ros2", "launch", "robot_parl_ros", "robot_side.launch.py"]
