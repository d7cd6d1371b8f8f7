"""A tabletop sim behind the robot side: the same protocol, safety filter and watchdog as a real arm.

With an expert configuration, the sim also hosts its scripted expert as a teleop device: each tick the
expert's action for the current state is forwarded as a Teleop message, which ``robot-parl collect``
follows to record demonstrations over the protocol, as it would follow a SpaceMouse.
"""

from __future__ import annotations

import time

import numpy as np

from robot_parl.robots.side import SensorFrame
from robot_parl.robots.sim.tabletop import TabletopEnv
from robot_parl.robots.sim.tabletop_expert import TabletopExpert, TabletopExpertConfig
from robot_parl.robots.spec import RobotSpec
from robot_parl.transport.messages import Teleop


class SimAdapter:
    """RobotAdapter over a TabletopEnv; each reset uses the next seed from ``seed``."""

    def __init__(self, env: TabletopEnv, spec: RobotSpec, seed: int = 0, expert: TabletopExpertConfig | None = None):
        self.env = env
        self.spec = spec
        self.seed = seed
        self.gripper = 1.0
        self.expert = None if expert is None else TabletopExpert(env.cfg.task, expert, seed=seed)
        self.reset()

    def reset(self) -> None:
        self.env.reset(seed=self.seed)
        self.seed += 1
        self.gripper = 1.0
        if self.expert is not None:
            self.expert.reset()

    def teleop(self, frame: SensorFrame) -> Teleop | None:
        """The scripted expert's action for the state just read (None without an expert)."""
        if self.expert is None:
            return None
        return Teleop(frame.stamp_ns, "scripted", self.expert.act(self.env.state()).astype(np.float32))

    def read(self) -> SensorFrame:
        now = time.monotonic_ns()
        images = {c.name: self.env.render_camera(c.name, c.height, c.width) for c in self.spec.cameras}
        state = self.env.state()
        return SensorFrame(now, state[:4], images, {name: now for name in images},
                           np.r_[state[:3], 0.0, 0.0, 0.0, 1.0], success=self.env.success())

    def apply(self, values: np.ndarray) -> None:
        self.gripper = float(values[6])
        self.env.step(values)

    def hold(self) -> None:
        """Physics goes on; the gripper stays where it is and keeps its opening."""
        self.env.step(np.r_[np.zeros(6), self.gripper].astype(np.float32))
