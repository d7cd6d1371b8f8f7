"""The MuJoCo tabletop with a ChArUco board: the whole calibration pipeline against known ground truth.

The scene is the tabletop task's own model (robot_parl/robots/sim/tabletop.py: its front camera, its
gripper with the wrist camera) plus a textured board, either lying on the table (eye-in-hand: the
wrist camera moves around it) or fixed to the gripper (eye-to-hand: the front camera watches it).
The gripper is placed kinematically at sampled poses that keep the board in view. The true camera
matrix follows from each camera's field of view, the true extrinsics from the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Literal

# Headless rendering, as in the tabletop env.
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robot_parl.calibration.board import BoardSpec, board_image  # noqa: E402
from robot_parl.calibration.capture import Capture, MujocoCamera  # noqa: E402
from robot_parl.calibration.geometry import (  # noqa: E402
    invert,
    make_transform,
    quat_from_rotation,
    rotation_from_rvec,
)

Mount = Literal["table", "gripper"]
# MuJoCo cameras look along -z with y up; OpenCV's optical frame looks along +z with y down.
_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])
# A box geom's textured top face to the board frame (origin at the top-left board corner, z into the board).
_FACE_TO_BOARD = _MJ_TO_CV
_THICKNESS = 0.002
# Where the board sits on the gripper: its face turned away from the fingers, just behind the palm.
_GRIPPER_PLATE = make_transform(_MJ_TO_CV, [0.0, 0.0, -0.012 - _THICKNESS / 2])
_TABLE_PLATE_CENTRE = (0.45, 0.0)
# The camera that sees the board in each mount: eye-in-hand (wrist) or eye-to-hand (front).
CAMERA_FOR_MOUNT = {"table": "wrist", "gripper": "front"}


class BoardScene:
    """The tabletop with ``board`` on the table or on the gripper; render with :meth:`source`."""

    def __init__(self, board: BoardSpec, mount: Mount = "table", width: int = 640, height: int = 480,
                 px_per_square: int = 80, margin_squares: float = 0.25):
        import mujoco

        from robot_parl.robots.sim import tabletop

        if mount not in CAMERA_FOR_MOUNT:
            raise ValueError(f"unknown board mount {mount!r}; expected one of {list(CAMERA_FOR_MOUNT)}")
        self.board, self.mount, self.size = board, mount, (width, height)
        xml = tabletop.MJCF.format(width=width, height=height, open=tabletop.FINGER_OPEN, cube=tabletop.CUBE_HALF,
                                   cube_z=tabletop.CUBE_HALF, tcp=tabletop.TCP_OFFSET)
        spec = mujoco.MjSpec.from_string(xml)
        # A white margin around the board, as on a printed sheet, keeps its outer squares detectable.
        margin_px = round(margin_squares * px_per_square)
        image = board_image(board, board.squares_x * px_per_square, board.squares_y * px_per_square)
        image = np.pad(image, margin_px, constant_values=255)
        texture = spec.add_texture(name="charuco", type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1],
                                   height=image.shape[0], nchannel=3)
        texture.data = np.repeat(image[:, :, None], 3, axis=2).tobytes()
        material = spec.add_material(name="charuco", texrepeat=[1, 1], texuniform=False)
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "charuco"
        margin_m = margin_px / px_per_square * board.square_length_m
        half = [board.width_m / 2 + margin_m, board.height_m / 2 + margin_m, _THICKNESS / 2]
        # The board's frame relative to the plate geom's frame.
        self._plate_to_board = make_transform(_FACE_TO_BOARD, [-board.width_m / 2, board.height_m / 2, _THICKNESS / 2])
        if mount == "table":
            parent, plate = spec.worldbody, make_transform(np.eye(3), [*_TABLE_PLATE_CENTRE, _THICKNESS / 2])
        else:
            parent, plate = spec.body("gripper"), _GRIPPER_PLATE
        parent.add_geom(name="charuco", type=mujoco.mjtGeom.mjGEOM_BOX, size=half, pos=plate[:3, 3],
                        quat=np.roll(quat_from_rotation(plate[:3, :3]), 1), material="charuco", contype=0,
                        conaffinity=0, mass=0.01)
        self._plate = plate
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._mujoco = mujoco
        # Clear the board of the task's objects and marker.
        self.model.site_rgba[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "target")] = 0
        self.data.joint("cube").qpos[:3] = [0.62, 0.25, tabletop.CUBE_HALF]
        self.data.joint("base").qpos[:3] = [0.62, -0.25, tabletop.CUBE_HALF]
        self._sources: dict[str, MujocoCamera] = {}
        self.set_gripper_pose(make_transform(np.diag([1.0, -1.0, -1.0]), [0.45, 0.3, 0.35]))

    # ground truth -------------------------------------------------------------------------------

    def camera_matrix(self, camera: str) -> np.ndarray:
        """The ideal pinhole camera matrix of ``camera`` at the scene's image size (square pixels)."""
        cam = self.model.camera(camera)
        w, h = self.size
        f = 0.5 * h / np.tan(np.radians(float(cam.fovy[0])) / 2)
        return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])

    def camera_pose(self, camera: str) -> np.ndarray:
        """world_T_camera (OpenCV optical frame) now; the world is the robot base."""
        cam = self.data.camera(camera)
        return make_transform(cam.xmat.reshape(3, 3) @ _MJ_TO_CV, cam.xpos)

    def gripper_pose(self) -> np.ndarray:
        """world_T_gripper now."""
        body = self.data.body("gripper")
        return make_transform(body.xmat.reshape(3, 3), body.xpos)

    def camera_in_gripper(self, camera: str = "wrist") -> np.ndarray:
        """gripper_T_camera: the eye-in-hand ground truth for a camera on the gripper."""
        return invert(self.gripper_pose()) @ self.camera_pose(camera)

    def board_pose(self) -> np.ndarray:
        """world_T_board now (the board frame of OpenCV's CharucoBoard)."""
        parent = self.gripper_pose() if self.mount == "gripper" else np.eye(4)
        return parent @ self._plate @ self._plate_to_board

    # motion and images --------------------------------------------------------------------------

    def set_gripper_pose(self, world_T_gripper: np.ndarray) -> None:
        """Place the gripper (and its mocap target) at a pose and update the scene."""
        quat_wxyz = np.roll(quat_from_rotation(world_T_gripper[:3, :3]), 1)
        self.data.joint("gripper").qpos[:3] = world_T_gripper[:3, 3]
        self.data.joint("gripper").qpos[3:] = quat_wxyz
        self.data.mocap_pos[0] = world_T_gripper[:3, 3]
        self.data.mocap_quat[0] = quat_wxyz
        self._mujoco.mj_forward(self.model, self.data)

    def sample_gripper_poses(self, n: int, rng: np.random.Generator, distance: tuple[float, float] | None = None,
                             max_tilt_deg: float = 35.0) -> list[np.ndarray]:
        """``n`` gripper poses from which the mount's camera sees the whole board, tilted up to ``max_tilt_deg``."""
        camera = CAMERA_FOR_MOUNT[self.mount]
        k = self.camera_matrix(camera)
        if distance is None:
            distance = (0.22, 0.4) if self.mount == "table" else (0.45, 0.75)
        gripper_T_camera = self.camera_in_gripper(camera)
        gripper_T_board = invert(self.gripper_pose()) @ self.board_pose()
        world_T_camera = self.camera_pose(camera)
        world_T_board = self.board_pose()
        poses: list[np.ndarray] = []
        while len(poses) < n:
            cam_T_board = sample_view(self.board, k, self.size, rng, distance, max_tilt_deg)
            if self.mount == "table":
                poses.append(world_T_board @ invert(cam_T_board) @ invert(gripper_T_camera))
            else:
                poses.append(world_T_camera @ cam_T_board @ invert(gripper_T_board))
        return poses

    def source(self, camera: str) -> MujocoCamera:
        """A capture source rendering ``camera`` with the gripper's pose attached."""
        if camera not in self._sources:
            self._sources[camera] = MujocoCamera(self.model, self.data, camera, *self.size, body="gripper")
        return self._sources[camera]

    def captures(self, camera: str, poses: list[np.ndarray]) -> Iterator[Capture]:
        """A capture at each gripper pose in turn."""
        grab = self.source(camera)
        for pose in poses:
            self.set_gripper_pose(pose)
            yield grab()

    def close(self) -> None:
        for grab in self._sources.values():
            grab.close()
        self._sources.clear()


def sample_view(board: BoardSpec, camera_matrix: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                distance: tuple[float, float], max_tilt_deg: float, off_axis: float = 0.4,
                margin_px: float = 10.0) -> np.ndarray:
    """A random camera_T_board with the whole board in the image: centre at ``distance``, tilted, rolled.

    The board's centre lies up to ``off_axis`` (tangent of the angle) from the optical axis, so that
    views reach the image's edges, where the lens distortion shows.
    """
    w, h = size
    outline = np.array([[0, 0, 0], [board.width_m, 0, 0], [0, board.height_m, 0],
                        [board.width_m, board.height_m, 0]], np.float64)
    centre = np.array([board.width_m / 2, board.height_m / 2, 0.0])
    for _ in range(1000):
        tilt_axis = np.r_[rng.normal(size=2), 0.0]
        tilt = rotation_from_rvec(tilt_axis / np.linalg.norm(tilt_axis) * np.radians(rng.uniform(0, max_tilt_deg)))
        roll = rotation_from_rvec([0.0, 0.0, rng.uniform(-np.pi, np.pi)])
        rotation = tilt @ roll
        direction = np.r_[rng.uniform(-off_axis, off_axis, 2), 1.0]
        position = direction / np.linalg.norm(direction) * rng.uniform(*distance)
        pose = make_transform(rotation, position - rotation @ centre)
        points = (pose[:3, :3] @ outline.T).T + pose[:3, 3]
        pixels = (camera_matrix @ (points / points[:, 2:3]).T).T[:, :2]
        if np.all(points[:, 2] > 0.05) and np.all(pixels >= margin_px) and np.all(pixels <= [w - margin_px,
                                                                                              h - margin_px]):
            return pose
    raise RuntimeError(f"no view of the whole board at distances {distance} fits a {w}x{h} image")
