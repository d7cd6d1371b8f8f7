"""Cameras read directly by the robot side (no ROS): RealSense through pyrealsense2 (no torch here).

``sources``: camera sources in any robot adapter's frames (WithCameras, LatestFrames, realsense_sources);
``realsense``: the RealSense device (pyrealsense2).
"""

from robot_parl.cameras.realsense import CameraError, RealSenseCamera, RealSenseFrame, import_pyrealsense2
from robot_parl.cameras.sources import (
    DEFAULT_STALL_S,
    CameraSource,
    LatestFrames,
    WithCameras,
    camera_items,
    delivered_sizes,
    realsense_sources,
    resize_nearest,
)

__all__ = ["DEFAULT_STALL_S", "CameraError", "CameraSource", "LatestFrames", "RealSenseCamera", "RealSenseFrame",
           "WithCameras", "camera_items", "delivered_sizes", "import_pyrealsense2", "realsense_sources",
           "resize_nearest"]
