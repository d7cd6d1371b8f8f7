"""The ament_python package is well formed: package.xml validates (catkin_pkg), its console scripts name
modules with a main(), launch files and the parameters file parse, and the parameters file names only
parameters the node declares."""

import ast
import importlib
import re

import yaml
from catkin_pkg.package import parse_package
from robot_parl_ros.params import RobotSideParams

from .conftest import PACKAGE_SRC


def test_package_metadata_entry_points_launch_and_parameters():
    package = parse_package(str(PACKAGE_SRC))
    package.validate()
    assert package.name == "robot_parl_ros" and package.get_build_type() == "ament_python"
    assert {d.name for d in package.exec_depends} >= {"rclpy", "sensor_msgs", "geometry_msgs", "std_srvs", "tf2_msgs"}
    setup = (PACKAGE_SRC / "setup.py").read_text()
    for module, func in re.findall(r"= (robot_parl_ros\.\w+):(\w+)", setup):
        assert callable(getattr(importlib.import_module(module), func))
    assert (PACKAGE_SRC / "resource" / "robot_parl_ros").is_file()
    for launch in (PACKAGE_SRC / "launch").glob("*.launch.py"):
        tree = ast.parse(launch.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    params = yaml.safe_load((PACKAGE_SRC / "config" / "robot_side.yaml").read_text())
    given = params["robot_parl_robot_side"]["ros__parameters"]
    assert set(given) <= set(RobotSideParams.__dataclass_fields__)


def test_colcon_builds_the_workspace(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copytree(PACKAGE_SRC.parent, tmp_path / "src")
    run = subprocess.run([sys.executable, "-m", "colcon", "build", "--base-paths", "src"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    installed = tmp_path / "install" / "robot_parl_ros"
    for script in ("robot_side", "sim_robot"):
        # the console scripts run with the Python that built them (the one with robot_parl and zenoh)
        assert (installed / "lib" / "robot_parl_ros" / script).read_text().startswith(f"#!{sys.executable}")
    share = installed / "share" / "robot_parl_ros"
    assert {p.name for p in (share / "launch").iterdir()} == {"robot_side.launch.py", "sim_session.launch.py"}
    assert (share / "config" / "robot_side.yaml").is_file() and (share / "package.xml").is_file()
    assert (installed / "share" / "ament_index" / "resource_index" / "packages" / "robot_parl_ros").is_file()
