"""Cameras read directly by the robot side (no ROS): RealSense through pyrealsense2 (no torch here).

A camera source gives what a robot adapter's ``SensorFrame`` carries: ``images()`` returns
``({camera name: image}, {camera name: capture stamp in ns on the robot side's clock})``.
:class:`WithCameras` puts the images of such sources into the frames of any robot adapter, e.g. a
RealSense on the wrist of an arm whose driver has no cameras of its own.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from robot_parl.cameras.realsense import CameraError, RealSenseCamera, RealSenseFrame, import_pyrealsense2

__all__ = ["CameraError", "CameraSource", "RealSenseCamera", "RealSenseFrame", "WithCameras", "import_pyrealsense2"]


class CameraSource(Protocol):
    """Anything that yields named images with their capture stamps (ns, the robot side's monotonic clock)."""

    def images(self, timeout_s: float = 1.0) -> tuple[dict[str, np.ndarray], dict[str, int]]: ...

    def close(self) -> None: ...


class WithCameras:
    """A robot adapter whose ``read()`` also carries the images of camera sources; all else is the adapter's.

    A camera named like one the adapter already delivers replaces it. ``close()`` closes the sources.
    """

    def __init__(self, adapter: Any, sources: list[CameraSource], timeout_s: float = 1.0):
        self.adapter = adapter
        self.sources = list(sources)
        self.timeout_s = timeout_s

    def read(self) -> Any:
        """The adapter's SensorFrame with every source's latest images and stamps added."""
        frame = self.adapter.read()
        for source in self.sources:
            images, stamps = source.images(self.timeout_s)
            frame.images.update(images)
            frame.image_stamps_ns.update(stamps)
        return frame

    def close(self) -> None:
        """Close every camera source (the adapter stays the caller's)."""
        for source in self.sources:
            source.close()

    def __getattr__(self, name: str) -> Any:
        # spec, apply, hold, reset and an optional teleop() are the adapter's own.
        if name == "adapter":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.adapter, name)
