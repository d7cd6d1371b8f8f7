"""PointReach: a batched numpy point mass that must reach a goal disc within a horizon.

State = (x, y, goal_x, goal_y) in [-1, 1]; action = a velocity command in [-1, 1]^2 scaled by
``max_step`` per step. Reward -1 per step and 0 on the step that reaches the goal, which ends the
episode; the horizon truncates it otherwise. It is a state-based, sparse-reward stand-in for a robot
while the simulated arms are built: cheap enough to run PA-RL end to end in CPU-minutes.

The scripted expert is deliberately cautious: it heads for the goal at a fraction of full speed,
with noise and hesitations, like a careful teleoperator. A policy cloned from it is slow and fails
the far goals; RL fine-tuning has to make it faster than its demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_parl.robots.sim.vec_env import VecEnv
from robot_parl.typed_config import require

STATE_DIM = 4
ACTION_DIM = 2


@dataclass
class PointReachConfig:
    horizon: int = 20
    max_step: float = 0.1
    goal_radius: float = 0.1
    min_distance: float = 0.3
    max_distance: float = 1.6

    def validate(self) -> None:
        require(self.horizon >= 1, "horizon", "an integer >= 1", self.horizon)
        require(self.max_step > 0, "max_step", "a positive number", self.max_step)
        require(self.goal_radius > 0, "goal_radius", "a positive number", self.goal_radius)
        require(0 < self.min_distance <= self.max_distance, "min_distance",
                f"a number in (0, max_distance={self.max_distance}]", self.min_distance)
        require(self.max_distance <= 2.0, "max_distance", "a number <= 2 (start and goal lie in [-1, 1]^2)",
                self.max_distance)


@dataclass
class ExpertConfig:
    speed: float = 0.6
    noise: float = 0.1
    hesitation: float = 0.1

    def validate(self) -> None:
        require(0 < self.speed <= 1, "speed", "a number in (0, 1]", self.speed)
        require(self.noise >= 0, "noise", "a number >= 0", self.noise)
        require(0 <= self.hesitation < 1, "hesitation", "a probability in [0, 1)", self.hesitation)


class PointReachVecEnv(VecEnv):
    """``num_envs`` independent episodes stepped together; each is seeded on reset."""

    action_low = np.full(ACTION_DIM, -1.0, dtype=np.float32)
    action_high = np.full(ACTION_DIM, 1.0, dtype=np.float32)
    state_dim = STATE_DIM

    def __init__(self, num_envs: int, cfg: PointReachConfig | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.cfg = cfg or PointReachConfig()
        self.num_envs = num_envs
        self.pos = np.zeros((num_envs, 2), dtype=np.float32)
        self.goal = np.zeros((num_envs, 2), dtype=np.float32)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.clipped_actions = 0

    def _state(self) -> dict[str, np.ndarray]:
        return {"state": np.concatenate([self.pos, self.goal], axis=1).astype(np.float32)}

    def reset_one(self, i: int, seed: int) -> None:
        """Start episode ``i`` from the layout of ``seed`` (same seed, same start and goal)."""
        rng = np.random.default_rng(seed)
        while True:
            pos, goal = rng.uniform(-0.9, 0.9, size=(2, 2))
            if self.cfg.min_distance <= np.linalg.norm(goal - pos) <= self.cfg.max_distance:
                break
        self.pos[i], self.goal[i], self.steps[i] = pos, goal, 0

    def observation(self) -> dict[str, np.ndarray]:
        """The current observations {"state": [M, 4]}."""
        return self._state()

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """Apply actions [M, 2]; returns (obs, rewards, terminated, truncated). Does not auto-reset."""
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(f"actions must be [{self.num_envs}, {ACTION_DIM}], got {actions.shape}")
        if not np.isfinite(actions).all():
            raise ValueError(f"actions contain NaN or infinite values: {actions[~np.isfinite(actions).all(1)]}")
        clipped = np.clip(actions, self.action_low, self.action_high)
        self.clipped_actions += int((clipped != actions).any(axis=1).sum())
        self.pos = np.clip(self.pos + self.cfg.max_step * clipped, -1.0, 1.0)
        self.steps += 1
        success = np.linalg.norm(self.pos - self.goal, axis=1) <= self.cfg.goal_radius
        rewards = np.where(success, 0.0, -1.0).astype(np.float32)
        truncated = ~success & (self.steps >= self.cfg.horizon)
        return self.observation(), rewards, success, truncated


def expert_actions(state: np.ndarray, cfg: ExpertConfig, rng: np.random.Generator) -> np.ndarray:
    """The cautious scripted expert: speed towards the goal, Gaussian noise, random hesitations."""
    delta = state[:, 2:4] - state[:, 0:2]
    direction = delta / np.maximum(np.linalg.norm(delta, axis=1, keepdims=True), 1e-6)
    actions = cfg.speed * direction + cfg.noise * rng.standard_normal(direction.shape)
    pause = rng.random(len(state)) < cfg.hesitation
    actions[pause] = cfg.noise * rng.standard_normal((int(pause.sum()), 2))
    return np.clip(actions, -1.0, 1.0).astype(np.float32)
