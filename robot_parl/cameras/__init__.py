"""Cameras read directly by the robot side (no ROS): RealSense through pyrealsense2 (no torch here).

A camera source gives what a robot adapter's ``SensorFrame`` carries: ``images()`` returns
``({camera name: image}, {camera name: capture stamp in ns on the robot side's clock})``.
:class:`WithCameras` puts the images of such sources into the frames of any robot adapter, e.g. a
RealSense on the wrist of an arm whose driver has no cameras of its own; :func:`realsense_sources` opens
the RealSense cameras named ``camera=serial`` on the command line or in the ROS node's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from robot_parl.cameras.realsense import CameraError, RealSenseCamera, RealSenseFrame, import_pyrealsense2

if TYPE_CHECKING:
    from robot_parl.robots.spec import RobotSpec

__all__ = ["CameraError", "CameraSource", "RealSenseCamera", "RealSenseFrame", "WithCameras", "camera_items",
           "delivered_sizes", "import_pyrealsense2", "realsense_sources", "resize_nearest"]

# A colour mode every RealSense D400 camera offers. Frames reach the robot side resized to the spec
# camera's size; a calibrated camera streams at its calibration's image size instead (the robot side's
# rectifier undistorts, crops and resizes those).
REALSENSE_MODE = (640, 480, 30)


class CameraSource(Protocol):
    """Anything that yields named images with their capture stamps (ns, the robot side's monotonic clock)."""

    def images(self, timeout_s: float = 1.0) -> tuple[dict[str, np.ndarray], dict[str, int]]: ...

    def close(self) -> None: ...


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (HxW or HxWxC) at height x width by nearest-neighbour sampling; the image itself if it fits."""
    if image.shape[:2] == (height, width):
        return image
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def delivered_sizes(spec: RobotSpec) -> dict[str, tuple[int, int]]:
    """(width, height) of the frames an adapter delivers, per camera of ``spec``: a calibrated camera's raw
    (calibrated) size, which the robot side rectifies to the spec's size, else the spec's size."""
    from robot_parl.calibration.calib_file import load_calibration, resolve_calibration_path

    return {c.name: (tuple(load_calibration(resolve_calibration_path(c.calibration)).image_size) if c.calibration
                     else (c.width, c.height)) for c in spec.cameras}


def camera_items(items: list[str], spec: RobotSpec, what: str) -> dict[str, str]:
    """``["camera=value", ...]`` as ``{camera: value}``; ValueError naming a malformed item, a camera given
    twice or one that ``spec`` does not have (``what`` names the option in the messages)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not (sep and name and value):
            raise ValueError(f"{what}: expected CAMERA=VALUE, got {item!r}")
        if name in out:
            raise ValueError(f"{what}: camera {name!r} is given twice")
        out[name] = value
    unknown = sorted(set(out) - {c.name for c in spec.cameras})
    if unknown:
        raise ValueError(f"{what}: cameras {unknown} are not in the robot spec {spec.name!r} "
                         f"(its cameras: {[c.name for c in spec.cameras]})")
    return out


def _open_realsense(serial: str, width: int, height: int, fps: int, name: str) -> CameraSource:
    return RealSenseCamera(serial, width, height, fps, depth=False, name=name)


def realsense_sources(items: list[str], spec: RobotSpec, what: str = "realsense",
                      open_camera: Callable[..., CameraSource] | None = None) -> list[CameraSource]:
    """An opened colour RealSense per ``"camera=serial"`` item, delivering that camera of ``spec``.

    Each streams 640x480 at 30 fps (a calibrated camera: at its calibration's image size); :class:`WithCameras`
    resizes the frames to the spec's size. ``open_camera(serial, width, height, fps, name)`` opens one; by
    default a connected device, found by serial. Tests pass one that opens a pyrealsense2 software device,
    which librealsense does not list among devices. Raises ValueError (bad items) or CameraError (a serial
    not connected, a mode the device lacks); cameras opened before the failure are closed.
    """
    serials = camera_items(items, spec, what)
    sizes = delivered_sizes(spec)
    by_name = {c.name: c for c in spec.cameras}
    opened: list[CameraSource] = []
    try:
        for name, serial in serials.items():
            width, height = sizes[name] if by_name[name].calibration else REALSENSE_MODE[:2]
            opened.append((open_camera or _open_realsense)(serial, width, height, REALSENSE_MODE[2], name))
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened


class WithCameras:
    """A robot adapter whose ``read()`` also carries the images of camera sources; all else is the adapter's.

    A camera named like one the adapter already delivers replaces it, at the size the adapter would have
    delivered (see :func:`delivered_sizes`); other images are added as they come. ``close()`` closes the
    sources.
    """

    def __init__(self, adapter: Any, sources: list[CameraSource], timeout_s: float = 1.0):
        self.adapter = adapter
        self.sources = list(sources)
        self.timeout_s = timeout_s
        self._sizes = delivered_sizes(adapter.spec)

    def read(self) -> Any:
        """The adapter's SensorFrame with every source's latest images and stamps added."""
        frame = self.adapter.read()
        for source in self.sources:
            images, stamps = source.images(self.timeout_s)
            for name, image in images.items():
                if name in self._sizes:
                    width, height = self._sizes[name]
                    images[name] = resize_nearest(image, height, width)
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
