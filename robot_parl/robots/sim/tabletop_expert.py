"""Scripted experts for the tabletop tasks, with a quality knob: action noise, hesitations, missed grasps.

Each expert reads the privileged state (tool centre point, finger opening, cube, target) and keeps
a little memory of its phase, so one instance serves one episode; ``reset()`` starts the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_parl.robots.sim.tabletop import ACTION_HIGH, ACTION_LOW, CUBE_HALF, TCP_Z
from robot_parl.typed_config import require

CARRY_Z = 0.12  # tool height while carrying a cube


@dataclass
class TabletopExpertConfig:
    noise: float = 0.0  # std of Gaussian noise on xyz, as a fraction of the per-step bound
    hesitation: float = 0.0  # probability of a step that does nothing useful
    missed_grasp: float = 0.0  # probability per grasp of aiming off by a cube's width

    def validate(self) -> None:
        require(self.noise >= 0, "noise", "a number >= 0", self.noise)
        require(0 <= self.hesitation < 1, "hesitation", "a probability in [0, 1)", self.hesitation)
        require(0 <= self.missed_grasp <= 1, "missed_grasp", "a probability in [0, 1]", self.missed_grasp)


def _towards(delta: np.ndarray, gain: float = 1.0) -> np.ndarray:
    return np.clip(gain * delta, ACTION_LOW[:3], ACTION_HIGH[:3])


class TabletopExpert:
    """``act(state) -> action[7]`` for one task."""

    def __init__(self, task: str, cfg: TabletopExpertConfig | None = None, seed: int = 0):
        self.task = task
        self.cfg = cfg or TabletopExpertConfig()
        self.cfg.validate()
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.grasp_offset = np.zeros(3)
        self.closed_steps = 0

    def act(self, state: np.ndarray) -> np.ndarray:
        tcp, cube, target = state[0:3], state[4:7], state[7:10]
        move, grip = getattr(self, f"_{self.task}")(tcp, cube, target)
        action = np.zeros(7, np.float32)
        action[:3] = move + self.cfg.noise * ACTION_HIGH[:3] * self.rng.standard_normal(3)
        action[6] = grip
        if self.rng.random() < self.cfg.hesitation:
            action[:3] = self.cfg.noise * ACTION_HIGH[:3] * self.rng.standard_normal(3)
        return np.clip(action, ACTION_LOW, ACTION_HIGH)

    def _reach(self, tcp, cube, target):
        return _towards(target - tcp), 1.0

    def _push(self, tcp, cube, target):
        direction = target[:2] - cube[:2]
        direction /= max(np.linalg.norm(direction), 1e-6)
        behind = np.r_[cube[:2] - direction * (CUBE_HALF + 0.035), TCP_Z[0]]
        if self.phase == 0:  # go above the point behind the cube, then down
            above = behind + [0, 0, 0.06]
            if np.linalg.norm(tcp[:2] - behind[:2]) > 0.01:
                return _towards(above - tcp), 0.0
            if tcp[2] > behind[2] + 0.01:
                return _towards(behind - tcp), 0.0
            self.phase = 1
        off_line = np.linalg.norm(np.cross(np.r_[direction, 0], np.r_[tcp[:2] - cube[:2], 0]))
        if off_line > 0.02:  # lost the cube: start over
            self.phase = 0
            return _towards(np.r_[tcp[:2], 0.1] - tcp), 0.0
        goal = np.r_[target[:2] - direction * (CUBE_HALF + 0.02), TCP_Z[0]]
        return _towards(goal - tcp, 0.7), 0.0

    def _pick(self, tcp, cube, target):
        if self.phase == 0:
            if self.rng.random() < self.cfg.missed_grasp:
                self.grasp_offset = np.r_[self.rng.choice([-1, 1], 2) * CUBE_HALF * 1.5, 0.0]
            self.phase = 1
        aim = cube + self.grasp_offset
        if self.phase == 1:  # above the cube, open
            above = np.r_[aim[:2], aim[2] + 0.06]
            if np.linalg.norm(tcp[:2] - aim[:2]) > 0.006:
                return _towards(above - tcp), 1.0
            self.phase = 2
        if self.phase == 2:  # down to the cube
            if tcp[2] > max(aim[2], TCP_Z[0]) + 0.004:
                return _towards(np.r_[aim[:2], aim[2]] - tcp), 1.0
            self.phase = 3
        if self.phase == 3:  # close
            self.closed_steps += 1
            if self.closed_steps < 4:
                return np.zeros(3), 0.0
            self.phase = 4
        return _towards(np.r_[tcp[:2], 0.2] - tcp), 0.0

    def _place(self, tcp, cube, target, release_z: float = CUBE_HALF + 0.004):
        if self.phase < 4:  # grasp as in pick
            move, grip = self._pick(tcp, cube, target)
            if self.phase < 4:
                return move, grip
        if self.phase == 4 and tcp[2] < CARRY_Z - 0.01:  # lift to the carry height
            return _towards(np.r_[tcp[:2], CARRY_Z] - tcp), 0.0
        if self.phase == 4:  # carry over the target
            if np.linalg.norm(cube[:2] - target[:2]) > 0.004:
                return _towards(np.r_[tcp[:2] + target[:2] - cube[:2], CARRY_Z] - tcp), 0.0
            self.phase = 5
        if self.phase == 5:  # lower until the cube sits at the release height
            if cube[2] > release_z:
                return _towards(np.r_[tcp[:2] + target[:2] - cube[:2], tcp[2] - (cube[2] - release_z)] - tcp,
                                0.7), 0.0
            self.phase = 6
        return _towards(np.r_[tcp[:2], tcp[2] + 0.03] - tcp), 1.0  # release and back off upwards

    def _stack(self, tcp, cube, target):
        return self._place(tcp, cube, target, release_z=target[2] + 2 * CUBE_HALF + 0.004)
