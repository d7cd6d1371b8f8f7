#!/usr/bin/env bash
# Builds the message packages here into a virtualenv that has ROS 2 from PyPI wheels (usage:
# build.sh VENV [DISTRO], DISTRO jazzy by default). PyPI has no tf2_msgs wheel, but it has the interface generators, so the message is
# generated and compiled the way a ROS install does it (cmake and a C compiler; about 10 s).
set -euo pipefail
venv=$(cd "$1" && pwd)
d=ros-${2:-jazzy}
here=$(cd "$(dirname "$0")" && pwd)
# The generators' wheels leave out some of the CMake packages they load (and catkin_pkg).
"$venv/bin/python" -m pip install -q $d-ament-cmake $d-ament-cmake-ros $d-ament-package \
    $d-ament-cmake-include-directories $d-ament-cmake-gmock $d-ament-cmake-gtest \
    $d-ament-cmake-pytest $d-rosidl-default-generators $d-rosidl-core-generators catkin_pkg
# Jazzy's generators also load python_cmake_module; Kilted's use FindPython3 and ament_cmake_ros_core.
if [ "$d" = ros-jazzy ]; then "$venv/bin/python" -m pip install -q $d-python-cmake-module
else "$venv/bin/python" -m pip install -q $d-ament-cmake-ros-core; fi
for package in tf2_msgs; do
    build=$(mktemp -d)
    PATH="$venv/bin:$PATH" cmake -S "$here/$package" -B "$build" -DCMAKE_PREFIX_PATH="$venv" \
        -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF >"$build/log" \
        || { cat "$build/log"; exit 1; }
    cmake --build "$build" -j 2 >>"$build/log" || { tail -50 "$build/log"; exit 1; }
    cmake --install "$build" >>"$build/log" || { tail -50 "$build/log"; exit 1; }
    rm -rf "$build"
done
