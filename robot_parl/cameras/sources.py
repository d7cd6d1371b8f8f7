"""Cameras read directly by the robot side (no ROS): RealSense through pyrealsense2 (no torch here).

A camera source gives what a robot adapter's ``SensorFrame`` carries: ``images()`` returns
``({camera name: image}, {camera name: capture stamp in ns on the robot side's clock})``, waiting for the next
frame. :class:`WithCameras` puts the images of such sources into the frames of any robot adapter, e.g. a
RealSense on the wrist of an arm whose driver has no cameras of its own, reading each source on its own thread
(:class:`LatestFrames`) so that the control tick never waits for a camera; :func:`realsense_sources` opens the
RealSense cameras named ``camera=serial`` on the command line or in the ROS node's parameters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from robot_parl.cameras.realsense import RealSenseCamera

if TYPE_CHECKING:
    from robot_parl.robots.spec import RobotSpec

log = logging.getLogger(__name__)

# A colour mode every RealSense D400 camera offers. Frames reach the robot side resized to the spec
# camera's size; a calibrated camera streams at its calibration's image size instead (the robot side's
# rectifier undistorts, crops and resizes those).
REALSENSE_MODE = (640, 480, 30)
# A camera silent for longer than this is stale: the robot side holds rather than act on what it last saw.
# 15 frame periods at 30 fps, so a frame or two lost over USB does not stop the arm.
DEFAULT_STALL_S = 0.5
# A reader thread waits at most this long per read, so close() does not hang on a camera that sends nothing.
_READ_POLL_S = 0.1
# close() waits this long beyond a read poll for the reader thread to finish its read.
_CLOSE_GRACE_S = 2.0
# A source that raised (a device unplugged) is read again after this long, not in a tight loop.
_RETRY_S = 0.5
# A camera's stall and failure warnings come at most this often; the counters count every one.
_WARN_EVERY_S = 5.0


class CameraSource(Protocol):
    """Anything that yields named images with their capture stamps (ns, the robot side's monotonic clock).

    ``name`` is the camera's name among the images, ``label`` the device for messages (e.g. "RealSense 123").
    ``images(timeout_s)`` waits for the next frame and raises TimeoutError if none comes in time.
    """

    name: str
    label: str

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
    from robot_parl.robots.camera_calibration import load_calibration, resolve_calibration_path

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


class LatestFrames:
    """One camera source read on its own thread: :meth:`latest` gives its newest images at once, never waiting.

    A source whose read times out is read again; one that raises (a device unplugged: pyrealsense2 raises
    RuntimeError) too, a little later, the failures counted in ``errors``. The camera is *stale* while it has
    delivered no frame for longer than ``stall_s``, none yet, or failed since its last frame. Each stale spell
    that lasts past ``stall_s`` or comes from a failure counts one stall in ``stalls``; stalls and failures are
    logged as warnings (at most every few seconds per camera and kind) naming the camera and the device.
    :meth:`close` stops the thread within about one read poll, then closes the source.
    """

    def __init__(self, source: CameraSource, stall_s: float = DEFAULT_STALL_S):
        if not stall_s > 0:
            raise ValueError(f"camera stall time must be > 0 s, got {stall_s}")
        self.source = source
        self.stall_s = stall_s
        self.what = f"camera {source.name!r} ({source.label})"
        self.frames = 0  # frames the thread received
        self.errors = 0  # reads that raised
        self.stalls = 0
        self._lock = threading.Lock()
        self._images: dict[str, np.ndarray] = {}
        self._stamps: dict[str, int] = {}
        # the silence before a first frame counts from here
        self._arrived = time.monotonic()
        self._error = ""
        self._failed = False  # the source raised since its last frame
        self._counted = False  # this stale spell is already counted as a stall
        self._errors_seen = 0
        self._warned: dict[str, float] = {}  # kind of warning -> when last given
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera {source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Short reads: close() must not wait for a camera that delivers nothing.
        poll_s = min(_READ_POLL_S, self.stall_s)
        while not self._stop.is_set():
            try:
                images, stamps = self.source.images(poll_s)
            except TimeoutError:
                continue  # staleness is judged from the arrival time, in latest()
            except Exception as e:  # any failure of a device must leave the control loop running
                with self._lock:
                    self.errors += 1
                    self._error = f"{type(e).__name__}: {e}"
                    self._failed = True
                self._stop.wait(_RETRY_S)
                continue
            with self._lock:
                self._images, self._stamps = images, stamps
                self._arrived = time.monotonic()
                self._failed = False
                self.frames += 1

    def latest(self) -> tuple[dict[str, np.ndarray], dict[str, int], bool]:
        """``(images, capture stamps, stale)``: the newest frame delivered (empty before the first) and whether
        it is stale. Meant for one caller, the control loop: it counts stalls and warns."""
        now = time.monotonic()
        with self._lock:
            images, stamps, arrived = dict(self._images), dict(self._stamps), self._arrived
            errors, error, failed = self.errors, self._error, self._failed
        silent_s = now - arrived
        # after a failure the last frame may be the device's last: hold at once rather than after stall_s
        stale = not images or failed or silent_s > self.stall_s
        if not stale:
            if self._counted:
                log.info("%s delivers again", self.what)
            self._counted = False
        elif (failed or silent_s > self.stall_s) and not self._counted:
            self._counted = True
            self.stalls += 1
            self._warn("stall", now, f"no new frame for {silent_s:.2f} s" if images else
                       f"no frame within {silent_s:.2f} s")
        if errors > self._errors_seen:
            self._errors_seen = errors
            self._warn("failure", now, f"failed ({error})")
        return images, stamps, stale

    def _warn(self, kind: str, now: float, what: str) -> None:
        # per kind: a stall warned about a moment ago must not hide that the device then failed
        if now - self._warned.get(kind, -float("inf")) >= _WARN_EVERY_S:
            self._warned[kind] = now
            log.warning("%s %s: the robot holds while it has no current frame (%d stalls, %d failed reads so far)",
                        self.what, what, self.stalls, self._errors_seen)

    def stats(self) -> dict[str, int]:
        """Frames received, stalls and failed reads of this camera."""
        return {"frames": self.frames, "stalls": self.stalls, "errors": self.errors}

    def close(self) -> None:
        """Stop the reader thread, then close the source (idempotent; the thread never reads a closed source)."""
        self._stop.set()
        self._thread.join(_READ_POLL_S + _CLOSE_GRACE_S)
        if self._thread.is_alive():
            # a driver stuck in a read: closing its device is the only way left to free it (the thread is a daemon)
            log.warning("%s: reader still in a read %.1f s after close; closing the device under it", self.what,
                        _READ_POLL_S + _CLOSE_GRACE_S)
        self.source.close()


class WithCameras:
    """A robot adapter whose ``read()`` also carries the images of camera sources; all else is the adapter's.

    Each source is read on its own thread (:class:`LatestFrames`), so ``read()`` never waits for a camera: it
    adds the newest frame each camera has, with its capture stamp. A camera without a new frame for longer than
    ``stall_s``, without a first frame yet, or whose device fails, is named in the frame's ``stale_cameras``
    (the robot side then holds the arm: see robot_parl.robots.safety) and keeps its last image; before its first
    frame a camera of the spec is black. Stalls and failed reads reach the robot side's Status as
    ``camera_stalls`` and ``camera_errors`` (see :attr:`counters`).

    A camera named like one the adapter already delivers replaces it, at the size the adapter would have
    delivered (see :func:`delivered_sizes`); other images are added as they come. ``close()`` stops the readers
    and closes the sources.
    """

    def __init__(self, adapter: Any, sources: list[CameraSource], stall_s: float = DEFAULT_STALL_S):
        self.adapter = adapter
        self.sources = list(sources)
        self.readers = [LatestFrames(source, stall_s) for source in self.sources]
        self._sizes = delivered_sizes(adapter.spec)

    def read(self) -> Any:
        """The adapter's SensorFrame with every camera's newest images and stamps added, stale ones named."""
        frame = self.adapter.read()
        for reader in self.readers:
            images, stamps, stale = reader.latest()
            if not images and reader.source.name in self._sizes:
                # the policy expects every camera of the spec; the frame says this one is not seen yet
                width, height = self._sizes[reader.source.name]
                images, stamps = {reader.source.name: np.zeros((height, width, 3), np.uint8)}, {
                    reader.source.name: frame.stamp_ns}
            for name, image in images.items():
                if name in self._sizes:
                    width, height = self._sizes[name]
                    images[name] = resize_nearest(image, height, width)
            frame.images.update(images)
            frame.image_stamps_ns.update(stamps)
            if stale:
                frame.stale_cameras.append(reader.source.name)
        return frame

    @property
    def counters(self) -> dict[str, int]:
        """The adapter's counters (if it has any) with the cameras' ``camera_stalls`` and ``camera_errors``."""
        return dict(getattr(self.adapter, "counters", {})) | {
            "camera_stalls": sum(r.stalls for r in self.readers), "camera_errors": sum(r.errors for r in self.readers)}

    def close(self) -> None:
        """Stop every camera's reader and close its source (the adapter stays the caller's)."""
        for reader in self.readers:
            reader.close()

    def __getattr__(self, name: str) -> Any:
        # spec, apply, hold, reset and an optional teleop() are the adapter's own.
        if name == "adapter":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.adapter, name)
