"""Synthetic calibration data with known ground truth: boards rendered through a known camera, robot poses."""

from __future__ import annotations

import cv2
import numpy as np

from robot_parl.calibration.board import BoardSpec, board_image
from robot_parl.calibration.detect import BoardDetection
from robot_parl.calibration.geometry import from_rvec_tvec, invert, make_transform, rotation_from_rvec
from robot_parl.calibration.sim_scene import sample_view

BOARD = BoardSpec()
SIZE = (640, 480)
K_TRUE = np.array([[600.0, 0.0, 322.0], [0.0, 605.0, 236.0], [0.0, 0.0, 1.0]])
D_TRUE = np.array([-0.12, 0.05, 0.001, -0.0008, 0.0])


class Renderer:
    """Draws ``board`` as camera (K, dist) sees it at a pose: homography at 2x, area downsampling, lens
    distortion by remapping, grey background and Gaussian pixel noise."""

    def __init__(self, board: BoardSpec = BOARD, k: np.ndarray = K_TRUE, dist: np.ndarray = D_TRUE,
                 size: tuple[int, int] = SIZE, px_per_square: int = 100, margin_squares: float = 0.3):
        self.board, self.k, self.dist, self.size = board, k, dist, size
        margin = round(margin_squares * px_per_square)
        image = board_image(board, board.squares_x * px_per_square, board.squares_y * px_per_square)
        self.texture = np.pad(image, margin, constant_values=255)
        m = board.square_length_m / px_per_square
        # texture pixel centre (bx, by) -> board metres, the white margin sitting outside the board's frame
        self.texture_to_board = np.array([[m, 0, (0.5 - margin) * m], [0, m, (0.5 - margin) * m], [0, 0, 1]])
        w, h = size
        grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
        # For each distorted output pixel, where it comes from in the ideal (undistorted) image.
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-6)
        points = grid.reshape(-1, 1, 2)
        if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4: the iterating variant has its own name
            ideal = cv2.undistortPointsIter(points, k, dist, None, k, criteria)
        else:
            ideal = cv2.undistortPoints(points, k, dist, R=None, P=k, criteria=criteria)
        self.map = ideal.reshape(h, w, 2).astype(np.float32)

    def render(self, cam_T_board: np.ndarray, rng: np.random.Generator, noise: float = 2.0,
               background: int = 110) -> np.ndarray:
        w, h = self.size
        s = 2.0
        k2 = self.k.copy()
        k2[:2] *= s
        k2[:2, 2] = s * (self.k[:2, 2] + 0.5) - 0.5
        hom = k2 @ np.column_stack([cam_T_board[:3, 0], cam_T_board[:3, 1], cam_T_board[:3, 3]]) @ self.texture_to_board
        big = cv2.warpPerspective(self.texture, hom, (int(s * w), int(s * h)), flags=cv2.INTER_LINEAR,
                                  borderValue=background)
        ideal = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
        distorted = cv2.remap(ideal, self.map[..., 0], self.map[..., 1], cv2.INTER_LINEAR,
                              borderValue=background).astype(np.float64)
        distorted += rng.normal(0.0, noise, distorted.shape)
        grey = np.clip(distorted, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)


def views(n: int, seed: int, board: BoardSpec = BOARD, k: np.ndarray = K_TRUE, size: tuple[int, int] = SIZE,
          distance: tuple[float, float] = (0.35, 0.6), max_tilt_deg: float = 40.0) -> list[np.ndarray]:
    """``n`` random camera_T_board poses that keep the whole board in the image."""
    rng = np.random.default_rng(seed)
    return [sample_view(board, k, size, rng, distance, max_tilt_deg) for _ in range(n)]


def projected_detection(cam_T_board: np.ndarray, rng: np.random.Generator, sigma_px: float = 0.2,
                        board: BoardSpec = BOARD, k: np.ndarray = K_TRUE, dist: np.ndarray = D_TRUE) -> BoardDetection:
    """All ChArUco corners projected through the camera, with Gaussian noise of ``sigma_px``."""
    corners = np.zeros(((board.squares_x - 1) * (board.squares_y - 1), 3))
    ids = np.arange(len(corners), dtype=np.int32)
    cols = board.squares_x - 1
    corners[:, 0] = (ids % cols + 1) * board.square_length_m
    corners[:, 1] = (ids // cols + 1) * board.square_length_m
    rvec, _ = cv2.Rodrigues(cam_T_board[:3, :3])
    pixels, _ = cv2.projectPoints(corners, rvec, cam_T_board[:3, 3], k, dist)
    return BoardDetection(pixels.reshape(-1, 2) + rng.normal(0.0, sigma_px, (len(ids), 2)), ids, len(ids) // 2)


def jitter(pose: np.ndarray, rng: np.random.Generator, deg: float, metres: float) -> np.ndarray:
    """``pose`` with a small random rotation (``deg`` std per axis) and translation error."""
    return pose @ make_transform(rotation_from_rvec(rng.normal(0, np.radians(deg), 3)), rng.normal(0, metres, 3))


# Ground truth for hand-eye: a camera 8 cm ahead of and tilted on the gripper; a board on the table; a
# fixed camera looking at the workspace from the front; a board on the gripper.
GRIPPER_T_CAMERA = from_rvec_tvec([0.3, -0.2, 0.1], [0.05, -0.03, 0.08])
BASE_T_BOARD = make_transform(np.diag([1.0, -1.0, -1.0]), [0.4, 0.1, 0.0])
BASE_T_CAMERA = make_transform(rotation_from_rvec([0.0, -2.0, 0.0]) @ rotation_from_rvec([0.0, 0.0, -np.pi / 2]),
                               [1.1, 0.05, 0.5])
GRIPPER_T_BOARD = from_rvec_tvec([np.pi, 0.0, 0.0], [-0.075, 0.105, -0.02])


def hand_eye_data(setup: str, n: int, seed: int, sigma_px: float = 0.2, robot_deg: float = 0.01,
                  robot_m: float = 1e-4) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(base_T_gripper, camera_T_board from PnP on noisy corners) for ``n`` captures of ``setup``."""
    from robot_parl.calibration.detect import BoardDetector

    rng = np.random.default_rng(seed)
    detector = BoardDetector(BOARD)
    robot, boards = [], []
    for cam_T_board in views(n, seed, distance=(0.3, 0.6)):
        if setup == "eye_in_hand":
            gripper = BASE_T_BOARD @ invert(cam_T_board) @ invert(GRIPPER_T_CAMERA)
        else:
            gripper = BASE_T_CAMERA @ cam_T_board @ invert(GRIPPER_T_BOARD)
        robot.append(jitter(gripper, rng, robot_deg, robot_m))
        boards.append(detector.pose(projected_detection(cam_T_board, rng, sigma_px), K_TRUE, D_TRUE)[0])
    return robot, boards
