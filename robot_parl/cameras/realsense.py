"""Direct Intel RealSense capture with pyrealsense2: colour and depth, depth aligned to colour, device stamps.

A :class:`RealSenseCamera` opens one device (by serial, or the only one connected), a software device
(tests, synthetic rigs) or a recording, and :meth:`RealSenseCamera.read` returns the next
:class:`RealSenseFrame`: RGB uint8 HxWx3, depth uint16 in device units (aligned to the colour image by
default), the colour frame's device timestamp in ns with the clock domain it is in, its frame number, and
the depth scale. Gaps in frame numbers are counted as drops, per stream. :meth:`RealSenseCamera.images`
gives what a robot adapter's ``SensorFrame`` carries (``images`` and ``image_stamps_ns``, stamps on the
robot side's clock, ``time.monotonic_ns``).

pyrealsense2 is imported only when a camera is opened, so this module imports anywhere; no torch.
Recordings: librealsense >= 2.59 plays and records ROS 2 ``.db3`` files; a legacy ROS 1 ``.bag`` is
converted to ``.db3`` in a temporary folder first (librealsense's own converter).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install pyrealsense2 (or pip install -e '.[realsense]')"
# A device stamp on the host's wall clock further than this from the arrival time is not trusted as a
# capture time (a recording played back later, a device whose clock is not synchronised).
_MAX_LATENCY_NS = 1_000_000_000
# Playback ends are noticed between waits of this length instead of after the whole read timeout.
_POLL_MS = 100
# Framesets a recording may run ahead of its reader before librealsense drops the oldest (~0.5 s at 30 fps).
_PLAYBACK_QUEUE = 16


class CameraError(RuntimeError):
    """A camera could not be opened or read; the message names the device and what was expected."""


def import_pyrealsense2() -> Any:
    """Import pyrealsense2, or raise an ImportError that says how to install it."""
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        raise ImportError(
            f"RealSense capture needs the pyrealsense2 package, which could not be imported ({e}): {INSTALL_HINT}. "
            "If it is installed, a shared library it links may be missing (Debian/Ubuntu: apt-get install "
            "libusb-1.0-0).") from e
    return rs


def select_serial(found: list[str], wanted: str | None) -> str:
    """The serial to open among ``found``: ``wanted`` if present, or the only one when ``wanted`` is None."""
    if wanted is not None:
        if wanted not in found:
            raise CameraError(f"RealSense serial {wanted!r} not found; connected: {sorted(found) or 'none'}")
        return wanted
    if not found:
        raise CameraError("no RealSense device found (is it plugged in, and is USB accessible to this user?)")
    if len(found) > 1:
        raise CameraError(f"{len(found)} RealSense devices connected {sorted(found)}: pass serial= to choose one")
    return found[0]


@dataclass
class RealSenseFrame:
    """One colour frame (and its depth) as read from a RealSense device."""

    color: np.ndarray  # uint8 HxWx3, RGB
    depth: np.ndarray | None  # uint16, device units (x depth_scale = metres); colour's HxW when aligned
    stamp_ns: int  # the colour frame's device timestamp, ns, in `clock`
    clock: str  # librealsense timestamp domain: global_time | hardware_clock | system_time
    frame_number: int  # the colour frame's number
    depth_scale: float  # metres per depth unit; 0.0 without depth
    host_ns: int  # time.monotonic_ns() when the frame was read
    robot_stamp_ns: int  # capture time on the robot side's clock (time.monotonic_ns)


def _domain_name(domain: Any) -> str:
    return getattr(domain, "name", str(domain).rsplit(".", 1)[-1])


def _robot_stamp(stamp_ns: int, clock: str, host_ns: int) -> int:
    # global_time and system_time stamps are on the host's wall clock: map them onto the monotonic clock.
    # A hardware_clock stamp counts from the device's power-up and says nothing about host time, so the
    # arrival time stands in for it.
    if clock in ("global_time", "system_time"):
        mapped = stamp_ns - (time.time_ns() - time.monotonic_ns())
        if 0 <= host_ns - mapped <= _MAX_LATENCY_NS:
            return mapped
    return host_ns


def _modes(rs: Any, device: Any, stream: Any) -> list[str]:
    """The device's video modes for one stream, e.g. ['640x480@30 rgb8', ...], for error messages."""
    modes = set()
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() == stream and profile.is_video_stream_profile():
                video = profile.as_video_stream_profile()
                modes.add((video.width(), video.height(), profile.fps(), _domain_name(profile.format())))
    return [f"{w}x{h}@{fps} {fmt}" for w, h, fps, fmt in sorted(modes)]


class RealSenseCamera:
    """One RealSense device streaming colour (rgb8) and optionally depth (z16), read with :meth:`read`.

    ``RealSenseCamera(serial, ...)`` opens a connected device; :meth:`from_device` a ``pyrealsense2``
    device object (a ``software_device`` in tests); :meth:`from_bag` a recording. ``name`` is the camera's
    name in :meth:`images`; ``depth_name``, when set, also puts the depth image there under that name.
    ``context`` is the ``rs.context`` to look devices up in (default: a new one, i.e. the USB devices).

    ``dropped`` counts, per stream, frames missing between the frame numbers seen, including those a
    reader slower than the camera let go: a live pipeline keeps only the newest frameset.
    """

    _running = False
    _tmpdir: str | None = None  # a converted recording, removed on close

    def __init__(self, serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30,
                 depth: bool = True, align_to_color: bool = True, name: str = "front", *,
                 depth_name: str | None = None, context: Any = None, global_time: bool = True):
        rs = import_pyrealsense2()
        ctx = rs.context() if context is None else context
        devices = list(ctx.query_devices())
        found = [d.get_info(rs.camera_info.serial_number) for d in devices]
        chosen = select_serial(found, serial)
        device = devices[found.index(chosen)]
        if global_time:
            # Stamps on the host clock (the device clock tracked by librealsense) rather than the device's
            # free-running counter, so they compare with the robot's own readings.
            for sensor in device.query_sensors():
                if sensor.supports(rs.option.global_time_enabled):
                    sensor.set_option(rs.option.global_time_enabled, 1)
        config = rs.config()
        config.enable_device(chosen)
        self._open(rs, rs.pipeline(ctx), config, device, f"RealSense {chosen}", width, height, fps, depth,
                   align_to_color, name, depth_name)

    @classmethod
    def from_device(cls, device: Any, width: int = 640, height: int = 480, fps: int = 30, depth: bool = True,
                    align_to_color: bool = True, name: str = "front", *,
                    depth_name: str | None = None) -> RealSenseCamera:
        """Stream from a pyrealsense2 device object, e.g. an ``rs.software_device`` fed synthetic frames."""
        rs = import_pyrealsense2()
        self = cls.__new__(cls)
        pipeline = rs.pipeline()
        # The pipeline takes the device itself: librealsense 2.59 does not list software devices added to a
        # context (it keeps only a weak reference to them), so selecting one by serial cannot work.
        pipeline.set_device(device)
        serial = (device.get_info(rs.camera_info.serial_number)
                  if device.supports(rs.camera_info.serial_number) else "device")
        self._open(rs, pipeline, rs.config(), device, f"RealSense {serial}", width, height, fps, depth,
                   align_to_color, name, depth_name)
        return self

    @classmethod
    def from_bag(cls, path: str | Path, depth: bool = True, align_to_color: bool = True, name: str = "front", *,
                 depth_name: str | None = None) -> RealSenseCamera:
        """Play a recording (.db3, or a legacy .bag) once, paced as recorded; :meth:`read` raises EOFError at its end.

        The streams' sizes and rate are the recorded ones. Playback is in real time, like the camera was:
        librealsense's as-fast-as-possible mode stalls behind the pipeline's syncer (2.59).
        """
        rs = import_pyrealsense2()
        path = Path(path)
        if not path.is_file():
            raise CameraError(f"RealSense recording {path} does not exist (expected a .db3 or .bag file)")
        self = cls.__new__(cls)
        if path.suffix == ".bag" and hasattr(rs.context, "convert_bag_to_db3"):
            # librealsense >= 2.59 plays only ROS 2 .db3 recordings and ships a converter for ROS 1 .bag ones.
            self._tmpdir = tempfile.mkdtemp(prefix="robot-parl-realsense-")
            converted = Path(self._tmpdir) / (path.stem + ".db3")
            try:
                rs.context().convert_bag_to_db3(str(path), str(converted))
            except RuntimeError as e:
                self.close()
                raise CameraError(f"RealSense recording {path}: could not convert it from .bag to .db3: {e}") from e
            path = converted
        ctx = rs.context()
        try:
            device = ctx.load_device(str(path))
        except RuntimeError as e:
            self.close()
            raise CameraError(f"RealSense recording {path} cannot be played: {e}") from e
        playback = device.as_playback()
        # Held until every stream has started: the player drops frames of streams not started yet.
        playback.pause()
        pipeline = rs.pipeline(ctx)
        pipeline.set_device(device)
        # Through a queue: the pipeline itself keeps only the newest frameset (what a live robot wants),
        # and would lose frames whenever the reader is a little late.
        try:
            self._open(rs, pipeline, rs.config(), device, f"RealSense recording {path}", 0, 0, 0, depth,
                       align_to_color, name, depth_name, queue_size=_PLAYBACK_QUEUE)
        except CameraError:
            self.close()
            raise
        self._device = device  # the context holds recordings weakly
        self._playback = playback
        playback.resume()
        return self

    def _open(self, rs: Any, pipeline: Any, config: Any, device: Any, label: str, width: int, height: int,
              fps: int, depth: bool, align_to_color: bool, name: str, depth_name: str | None,
              queue_size: int = 0) -> None:
        self._rs = rs
        self.label = label
        self.name = name
        self.depth_name = depth_name
        self.depth = depth
        self.align_to_color = align_to_color
        self._playback: Any = None
        # 0 = whatever the device (or recording) offers.
        config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        if depth:
            # Depth at its own native size; alignment resamples it onto the colour image.
            config.enable_stream(rs.stream.depth, 0, 0, rs.format.z16, fps)
        self._queue = rs.frame_queue(queue_size, keep_frames=True) if queue_size else None
        try:
            self._profile = pipeline.start(config) if self._queue is None else pipeline.start(config, self._queue)
        except RuntimeError as e:
            available = ""
            if device is not None:
                available = f"; colour modes: {_modes(rs, device, rs.stream.color)}"
                if depth:
                    available += f", depth modes: {_modes(rs, device, rs.stream.depth)}"
            raise CameraError(f"{label}: cannot stream colour {width or 'any'}x{height or 'any'}@{fps or 'any'} "
                              f"rgb8{' with z16 depth' if depth else ''} ({e}){available}") from e
        self._pipe = pipeline
        self._running = True
        self._align = rs.align(rs.stream.color) if depth and align_to_color else None
        color = self._profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.width, self.height, self.fps = color.width(), color.height(), color.fps()
        self.dropped = {"color": 0, "depth": 0}  # frames missing between frame numbers seen
        self.skipped = 0  # framesets passed over: no new colour frame, or no new depth frame to pair with it
        self.frames = 0
        self._seen: dict[str, int] = {}
        self._returned: dict[str, int] = {}

    # reading ------------------------------------------------------------------------------------

    def _note(self, stream: str, number: int) -> None:
        last = self._seen.get(stream)
        if last is not None and number > last + 1:
            self.dropped[stream] += number - last - 1
        self._seen[stream] = number  # a smaller number (device restart, replay) starts counting afresh

    def read(self, timeout_s: float = 1.0) -> RealSenseFrame:
        """The next colour frame (with the depth frame paired to it); TimeoutError if none comes in time."""
        if not self._running:
            raise CameraError(f"{self.label} is closed")
        rs = self._rs
        deadline = time.monotonic() + timeout_s
        while True:
            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
            # A recording has ended when nothing comes after the player stopped (frames it sent before
            # stopping may still be on their way through the pipeline).
            ended = self._playback is not None and self._playback.current_status() == rs.playback_status.stopped
            ok, frames = self._wait(min(wait_ms, _POLL_MS) if self._playback else wait_ms)
            if ok:
                frame = self._take(frames)
                if frame is not None:
                    return frame
            elif ended:
                raise EOFError(f"{self.label}: end of recording after {self.frames} frames")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.label}: no new colour{' and depth' if self.depth else ''} frame within "
                                   f"{timeout_s} s (stream {self.width}x{self.height}@{self.fps})")

    def _wait(self, timeout_ms: int) -> tuple[bool, Any]:
        if self._queue is None:
            return self._pipe.try_wait_for_frames(timeout_ms)
        ok, frame = self._queue.try_wait_for_frame(timeout_ms)
        return ok, frame.as_frameset() if ok else None

    def _take(self, frames: Any) -> RealSenseFrame | None:
        color = frames.get_color_frame()
        depth = frames.get_depth_frame() if self.depth else None
        for stream, f in (("color", color), ("depth", depth)):
            if f:
                self._note(stream, f.get_frame_number())
        # The pipeline's syncer may hand out a frame again beside a newer one of the other stream (it
        # always does so in playback): return each colour frame once, with a depth frame not given before
        # and taken within half a frame period of it.
        if (not color or color.get_frame_number() == self._returned.get("color")
                or (self.depth and (not depth or depth.get_frame_number() == self._returned.get("depth")
                                    or abs(depth.get_timestamp() - color.get_timestamp()) > 500.0 / self.fps))):
            self.skipped += 1
            return None
        host_ns = time.monotonic_ns()
        depth_image, depth_scale = None, 0.0
        if depth:
            self._returned["depth"] = depth.get_frame_number()
            if self._align is not None:
                depth = self._align.process(frames).get_depth_frame()
            depth_image = np.asanyarray(depth.get_data()).copy()  # librealsense reuses the buffer
            depth_scale = float(depth.get_units())
        number = color.get_frame_number()
        self._returned["color"] = number
        self.frames += 1
        clock = _domain_name(color.get_frame_timestamp_domain())
        stamp_ns = int(round(color.get_timestamp() * 1e6))  # librealsense stamps are in ms
        return RealSenseFrame(np.asanyarray(color.get_data()).copy(), depth_image, stamp_ns, clock, number,
                              depth_scale, host_ns, _robot_stamp(stamp_ns, clock, host_ns))

    def images(self, timeout_s: float = 1.0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """``({name: colour}, {name: stamp ns})`` for a SensorFrame (plus depth under ``depth_name``)."""
        frame = self.read(timeout_s)
        images, stamps = {self.name: frame.color}, {self.name: frame.robot_stamp_ns}
        if self.depth_name is not None and frame.depth is not None:
            images[self.depth_name] = frame.depth
            stamps[self.depth_name] = frame.robot_stamp_ns
        return images, stamps

    def stats(self) -> dict[str, int]:
        """Counters for a Status message: frames read, drops per stream, framesets skipped."""
        return {"frames": self.frames, "dropped_color": self.dropped["color"], "dropped_depth": self.dropped["depth"],
                "skipped": self.skipped}

    def close(self) -> None:
        """Stop streaming (idempotent) and remove a converted recording."""
        if self._running:
            self._running = False
            try:
                self._pipe.stop()
            except RuntimeError:
                pass  # librealsense stopped the pipeline itself (a device unplugged): nothing is left to stop
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> RealSenseCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
