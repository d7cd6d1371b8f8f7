"""Capture calibration data from any camera source: PNG images plus a JSON of end-effector poses.

A source is an iterable of captures or a callable returning one capture per call. A capture is a
:class:`Capture`, an image, or an ``(image, ee_pose)`` pair, where the image is RGB uint8 HxWx3 and
the pose is the gripper's pose in the robot base (4x4, or xyz + quaternion xyzw; metres) or None.

Sources provided (callables with ``close()``): :class:`MujocoCamera` (the tabletop sim, or
:mod:`robot_parl.calibration.sim_scene`), :class:`RealSenseSource` (pyrealsense2, optional), and
:class:`RobotSideCamera`, a robot side over the transport (its observations carry frames and the
end-effector pose). :func:`with_poses` attaches poses from any
callable (e.g. the robot's forward kinematics) to a pose-less camera source.

Layout of a capture directory: ``0000.png, 0001.png, ...`` and ``captures.json``
(``{"format": "robot-parl-captures", "version": 1, "camera": ..., "captures": [{"image": "0000.png",
"ee_pose": [[4x4]] or null}, ...]}``). The JSON is rewritten atomically after every image, so an
interrupted capture leaves a readable directory.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_parl.calibration.geometry import make_transform, pose7_to_matrix
from robot_parl.files import atomic_write
from robot_parl.robots.camera_calibration import check_rigid

CAPTURES_FILE = "captures.json"
FORMAT = "robot-parl-captures"


@dataclass
class Capture:
    """One image and, when known, the gripper's pose in the robot base (base_T_gripper, 4x4, metres)."""

    image: np.ndarray
    ee_pose: np.ndarray | None = None


@dataclass
class CaptureRecord:
    """One saved capture: its name, image file and pose."""

    name: str
    path: Path
    ee_pose: np.ndarray | None


def as_capture(item: Any) -> Capture:
    """A Capture from a Capture, an image, or an (image, pose) pair; poses as 4x4 or xyz + quaternion xyzw."""
    if isinstance(item, Capture):
        image, pose = item.image, item.ee_pose
    elif isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"expected a capture (image, ee_pose), got a tuple of {len(item)}")
        image, pose = item
    else:
        image, pose = item, None
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
    if pose is not None:
        pose = np.asarray(pose, np.float64)
        pose = check_rigid(pose7_to_matrix(pose) if pose.shape == (7,) else pose, "end-effector pose")
    return Capture(image, pose)


def save_captures(source: Iterable[Any] | Callable[[], Any], out_dir: str | Path, count: int | None = None,
                  camera: str = "", on_saved: Callable[[int, Capture], None] | None = None) -> list[CaptureRecord]:
    """Save captures from ``source`` into the new or empty directory ``out_dir``.

    ``count`` limits an iterable and is required for a callable source (called once per capture);
    ``on_saved(index, capture)`` runs after each save (progress, or moving the robot to its next pose).
    """
    import cv2

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"capture directory {out} is not empty; captures of different sessions must not mix")
    if callable(source) and not isinstance(source, Iterable):
        if count is None:
            raise ValueError("a callable capture source needs a count")
        fn = source
        items: Iterable[Any] = (fn() for _ in range(count))
    else:
        items = source
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"format": FORMAT, "version": 1, "camera": camera,
                             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                             "captures": []}
    records: list[CaptureRecord] = []
    for i, item in enumerate(items):
        if count is not None and i >= count:
            break
        cap = as_capture(item)
        name = f"{i:04d}.png"
        if not cv2.imwrite(str(out / name), cv2.cvtColor(cap.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {out / name}")
        index["captures"].append({"image": name, "ee_pose": None if cap.ee_pose is None else cap.ee_pose.tolist()})
        atomic_write(out / CAPTURES_FILE, lambda f: json.dump(index, f, indent=1), mode="w")
        records.append(CaptureRecord(name, out / name, cap.ee_pose))
        if on_saved is not None:
            on_saved(i, cap)
    return records


def read_captures(directory: str | Path) -> list[CaptureRecord]:
    """The captures saved in ``directory`` (its captures.json), checking that every image file exists."""
    directory = Path(directory)
    index_path = directory / CAPTURES_FILE
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path} not found: not a capture directory (see robot-parl calibrate capture)")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{index_path} is not valid JSON: {err}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("captures"), list):
        raise ValueError(f"{index_path}: expected format {FORMAT!r} with a list of captures")
    records = []
    for i, entry in enumerate(index["captures"]):
        path = directory / str(entry.get("image", ""))
        if not path.is_file():
            raise FileNotFoundError(f"{index_path}: capture {i} names image {path.name!r}, which does not exist")
        pose = entry.get("ee_pose")
        try:
            pose = None if pose is None else check_rigid(np.asarray(pose, np.float64), f"ee_pose of {path.name}")
        except ValueError as err:
            raise ValueError(f"{index_path}: {err}") from None
        records.append(CaptureRecord(path.name, path, pose))
    return records


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 HxWx3."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iter_images(records: Iterable[CaptureRecord]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB image) per record, reading each file only when it is needed."""
    for record in records:
        yield record.name, read_image(record.path)


# sources --------------------------------------------------------------------------------------------


def with_poses(source: Callable[[], Any], pose: Callable[[], Any]) -> Callable[[], Capture]:
    """A source whose captures take their end-effector pose from ``pose()`` (read right after the image)."""
    return lambda: as_capture((as_capture(source()).image, pose()))


class MujocoCamera:
    """Frames of a MuJoCo camera, with ``body``'s pose in the world as the end-effector pose.

    Works with any model, e.g. the tabletop env: ``MujocoCamera(env.model, env.data, "wrist", 640, 480,
    "gripper")``. The model's offscreen buffer must be at least ``width`` x ``height``.
    """

    def __init__(self, model: Any, data: Any, camera: str, width: int, height: int, body: str | None = None):
        import mujoco

        self.data, self.camera = data, camera
        self._body = None
        if body is not None:
            self._body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
            if self._body < 0:
                raise ValueError(f"MuJoCo model has no body named {body!r}")
        self._renderer = mujoco.Renderer(model, height, width)

    def __call__(self) -> Capture:
        self._renderer.update_scene(self.data, camera=self.camera)
        image = self._renderer.render().copy()
        if self._body is None:
            return Capture(image)
        return Capture(image, make_transform(self.data.xmat[self._body].reshape(3, 3), self.data.xpos[self._body]))

    def close(self) -> None:
        self._renderer.close()


class RealSenseSource:
    """Colour frames of an Intel RealSense camera (robot_parl.cameras.realsense) as captures; no poses."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, serial: str | None = None):
        from robot_parl.cameras.realsense import RealSenseCamera

        self.camera = RealSenseCamera(serial, width, height, fps, depth=False)

    def __call__(self) -> Capture:
        return Capture(self.camera.read().color)

    def close(self) -> None:
        self.camera.close()


class RobotSideCamera:
    """The newest frame of ``camera`` and the end-effector pose from a robot side's observations.

    The robot side must send raw frames (no ``calibration`` on that camera in its spec) at the
    resolution to calibrate, and report ``ee_pose`` for hand-eye calibration.
    """

    def __init__(self, session: Any, keys: Any, camera: str, timeout_s: float = 5.0):
        from robot_parl.transport.channel import Inbox, subscribe
        from robot_parl.transport.messages import Observation

        self.keys, self.camera, self.timeout_s = keys, camera, timeout_s
        self._inbox = Inbox(Observation, maxlen=4)
        self._subscriber = subscribe(session, keys.obs, self._inbox)

    def __call__(self) -> Capture:
        self._inbox.drain()  # frames older than this call may predate the robot's last move
        obs = self._inbox.get(timeout=self.timeout_s)
        if obs is None:
            raise TimeoutError(f"no observation on {self.keys.obs} within {self.timeout_s} s: is the robot side "
                               "running?")
        if self.camera not in obs.images:
            raise ValueError(f"observations on {self.keys.obs} have no camera {self.camera!r}; they have "
                           f"{sorted(obs.images)}")
        return as_capture((obs.images[self.camera], obs.ee_pose))

    def close(self) -> None:
        self._subscriber.undeclare()
