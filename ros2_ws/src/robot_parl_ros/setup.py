from glob import glob

from setuptools import setup

PACKAGE = "robot_parl_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robot-parl developers",
    maintainer_email="robot-parl@example.org",
    description="robot-parl's robot side for ROS 2",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "robot_side = robot_parl_ros.robot_side_node:main",
        "sim_robot = robot_parl_ros.sim_robot_node:main",
    ]},
)
