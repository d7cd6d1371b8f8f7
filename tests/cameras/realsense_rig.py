"""A software RealSense for tests (pyrealsense2's software_device): colour and depth sensors whose frames the
test pushes, and synthetic frames. Used by tests/cameras and by the ROS node's tests.

Geometry is chosen float-exact (focal length a power of two, depth units 2**-10 m) so that aligning depth
to a colour stream with the same intrinsics and identity extrinsics must give back the input bit for bit;
with other numbers librealsense's align leaves rounding holes at exact half-pixel boundaries.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

W, H, FPS = 64, 48, 30
DEPTH_UNITS = 2.0**-10

try:
    import pyrealsense2 as rs
except ImportError:  # not installed, or its shared libraries are missing (libusb-1.0-0)
    rs = None
needs_pyrealsense2 = pytest.mark.skipif(rs is None, reason="pyrealsense2 is not importable (pip install pyrealsense2)")


def _intrinsics(width: int, height: int, focal: float):
    i = rs.intrinsics()
    i.width, i.height, i.fx, i.fy, i.ppx, i.ppy = width, height, focal, focal, width / 2, height / 2
    i.model, i.coeffs = rs.distortion.none, [0.0] * 5
    return i


def _stream(kind, uid: int, width: int, height: int, fmt, bpp: int, focal: float):
    s = rs.video_stream()
    s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt = kind, 0, uid, width, height, FPS, bpp, fmt
    s.intrinsics = _intrinsics(width, height, focal)
    return s


class Rig:
    """A software RealSense: a colour and a depth sensor whose frames the test pushes."""

    def __init__(self, serial: str = "SYN0001", color_size=(W, H), depth_size=(W, H)):
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Synthetic RealSense")
        self.color_sensor = self.device.add_sensor("Color")
        self.depth_sensor = self.device.add_sensor("Depth")
        # Focal length in proportion to the image size: both streams see the same field of view.
        cw, ch = color_size
        dw, dh = depth_size
        self.color = self.color_sensor.add_video_stream(
            _stream(rs.stream.color, 0, cw, ch, rs.format.rgb8, 3, float(cw))).as_video_stream_profile()
        self.depth = self.depth_sensor.add_video_stream(
            _stream(rs.stream.depth, 1, dw, dh, rs.format.z16, 2, float(dw))).as_video_stream_profile()
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS)
        identity = rs.extrinsics()
        identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth.register_extrinsics_to(self.color, identity)
        self.device.create_matcher(rs.matchers.default)
        self._alive = []  # the pixel buffers of pushed frames

    def _push(self, sensor, profile, pixels: np.ndarray, bpp: int, stamp_ms: float, number: int, domain) -> None:
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = pixels, pixels.shape[1] * bpp, bpp
        f.timestamp, f.domain, f.frame_number, f.profile = stamp_ms, domain, number, profile
        if bpp == 2:
            f.depth_units = DEPTH_UNITS
        self._alive.append(pixels)
        sensor.on_video_frame(f)

    def push(self, number: int, stamp_ms: float, color: np.ndarray, depth: np.ndarray | None = None,
             domain=None) -> None:
        domain = rs.timestamp_domain.hardware_clock if domain is None else domain
        self._push(self.color_sensor, self.color, color, 3, stamp_ms, number, domain)
        if depth is not None:
            self._push(self.depth_sensor, self.depth, depth, 2, stamp_ms, number, domain)


def color_frame(seed: int, size=(W, H)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def depth_frame(seed: int, size=(W, H)) -> np.ndarray:
    return np.random.default_rng(1000 + seed).integers(1, 65535, (size[1], size[0]), dtype=np.uint16)


class Streaming:
    """Pushes ``color`` on ``rig`` at ``fps`` from a thread, as a live camera keeps delivering frames, until
    closed; frame numbers count from ``first`` (a camera that comes back after a stall goes on counting)."""

    def __init__(self, rig: Rig, color: np.ndarray, fps: float = FPS, first: int = 1):
        self.pushed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(rig, color, 1.0 / fps, first), daemon=True)
        self._thread.start()

    def _run(self, rig: Rig, color: np.ndarray, period: float, first: int) -> None:
        while not self._stop.wait(period):
            rig.push(first + self.pushed, time.monotonic() * 1e3, color)
            self.pushed += 1

    def close(self) -> None:
        """Stop pushing frames."""
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> Streaming:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
