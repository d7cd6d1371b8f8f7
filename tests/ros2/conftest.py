import sys
from pathlib import Path

# the ament_python package's sources, importable without a colcon build
PACKAGE_SRC = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "robot_parl_ros"
sys.path.insert(0, str(PACKAGE_SRC))
