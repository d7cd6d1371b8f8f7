"""Tabletop tasks batched for learning runs, with the PointReach conventions the local session uses.

Actions are normalized to [-1, 1]^7 (mapped linearly onto the env's physical bounds, as a policy
card's normalization would), rewards are -1 per step and 0 on the step that succeeds (so Cal-QL's
Monte-Carlo returns mean the same as on PointReach), and each episode is seeded on reset.
"""

from __future__ import annotations

import numpy as np

from robot_parl.robots.sim.tabletop import ACTION_HIGH, ACTION_LOW, STATE_DIM, TabletopEnv
from robot_parl.robots.sim.tabletop_expert import TabletopExpert, TabletopExpertConfig
from robot_parl.robots.sim.vec_env import VecEnv

ACTION_DIM = 7


def to_physical(actions: np.ndarray) -> np.ndarray:
    """Normalized [-1, 1] actions -> the env's physical units."""
    return ACTION_LOW + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (ACTION_HIGH - ACTION_LOW)


def to_normalized(actions: np.ndarray) -> np.ndarray:
    """Physical actions -> [-1, 1]."""
    return (2.0 * (actions - ACTION_LOW) / (ACTION_HIGH - ACTION_LOW) - 1.0).astype(np.float32)


class TabletopVecEnv(VecEnv):
    """``num_envs`` state-based tabletop episodes stepped together."""

    action_low = np.full(ACTION_DIM, -1.0, dtype=np.float32)
    action_high = np.full(ACTION_DIM, 1.0, dtype=np.float32)
    state_dim = STATE_DIM

    def __init__(self, num_envs: int, task: str, horizon: int = 60):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.task = task
        self.envs = [TabletopEnv(task, horizon=horizon) for _ in range(num_envs)]
        self._obs = np.zeros((num_envs, STATE_DIM), np.float32)
        self.experts: list[TabletopExpert] | None = None

    @property
    def clipped_actions(self) -> int:
        return sum(env.clipped_actions for env in self.envs)

    def reset_one(self, i: int, seed: int) -> None:
        """Start episode ``i`` from the layout of ``seed``."""
        self._obs[i] = self.envs[i].reset(seed=seed)[0]["state"]
        if self.experts is not None:
            self.experts[i].reset()

    def observation(self) -> dict[str, np.ndarray]:
        return {"state": self._obs.copy()}

    def step(self, actions: np.ndarray):
        """Normalized actions [M, 7] -> (obs, rewards, terminated, truncated); does not auto-reset."""
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(f"actions must be [{self.num_envs}, {ACTION_DIM}], got {actions.shape}")
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            obs, _, terminated[i], truncated[i], _ = env.step(to_physical(actions[i]))
            self._obs[i] = obs["state"]
        rewards = np.where(terminated, 0.0, -1.0).astype(np.float32)
        return self.observation(), rewards, terminated, truncated

    def expert_actions(self, cfg: TabletopExpertConfig, seed: int) -> np.ndarray:
        """Normalized actions of one scripted expert per env (created on first use, reset with its env)."""
        if self.experts is None:
            self.experts = [TabletopExpert(self.task, cfg, seed=seed * 1000 + i) for i in range(self.num_envs)]
        return np.stack([to_normalized(e.act(s)) for e, s in zip(self.experts, self._obs)])
