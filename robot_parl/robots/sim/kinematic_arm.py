"""A kinematic stand-in arm for the robot side: an end effector that integrates 7-D deltas, seen by
synthetic cameras (numpy, no rendering library), succeeding when it reaches a goal point.

It exercises the protocol, safety filter and clocks end to end with the payload sizes of a real
rig (for example two 640x480 RGB cameras) at a fraction of MuJoCo's cost; it is not a physics model.
"""

from __future__ import annotations

import time

import numpy as np

from robot_parl.robots.side import SensorFrame
from robot_parl.robots.spec import RobotSpec


class KinematicArm:
    """A RobotAdapter; ``goal_tolerance`` in metres."""

    def __init__(self, spec: RobotSpec, seed: int = 0, goal_tolerance: float = 0.02):
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.goal_tolerance = goal_tolerance
        self.home = np.asarray(spec.home_pose[:3], np.float64)
        self.reset()

    def reset(self) -> None:
        self.pos = self.home.copy()
        self.rpy = np.zeros(3)
        self.gripper = 1.0
        ws = self.spec.workspace
        low, high = (np.asarray(ws.low), np.asarray(ws.high)) if ws.enabled else (self.home - 0.1, self.home + 0.1)
        self.goal = self.rng.uniform(low, high)

    def apply(self, values: np.ndarray) -> None:
        self.pos = self.pos + values[:3]
        self.rpy = self.rpy + values[3:6]
        self.gripper = float(values[6]) if len(values) > 6 else self.gripper

    def hold(self) -> None:
        """Nothing moves unless commanded."""

    def _image(self, height: int, width: int) -> np.ndarray:
        img = np.full((height, width, 3), 40, np.uint8)
        for point, colour in ((self.goal, (0, 200, 0)), (self.pos, (220, 40, 40))):
            u = int(np.clip((point[1] + 0.5) * width, 0, width - 1))
            v = int(np.clip((1.0 - point[0] / 0.6) * height, 0, height - 1))
            img[max(v - 3, 0):v + 4, max(u - 3, 0):u + 4] = colour
        return img

    def read(self) -> SensorFrame:
        now = time.monotonic_ns()
        images = {c.name: self._image(c.height, c.width) for c in self.spec.cameras}
        proprio = np.r_[self.pos, self.rpy, self.gripper].astype(np.float32)
        quat = np.array([0.0, 0.0, 0.0, 1.0])
        return SensorFrame(now, proprio, images, {name: now for name in images}, np.r_[self.pos, quat],
                           success=bool(np.linalg.norm(self.pos - self.goal) <= self.goal_tolerance))
