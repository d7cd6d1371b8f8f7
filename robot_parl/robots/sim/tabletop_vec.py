"""Tabletop tasks batched for learning runs, with the PointReach conventions the local session uses.

Actions are normalized to [-1, 1]^7 (mapped linearly onto the env's physical bounds, as a policy
card's normalization would), rewards are -1 per step and 0 on the step that succeeds (so Cal-QL's
Monte-Carlo returns mean the same as on PointReach), and each episode is seeded on reset.
"""

from __future__ import annotations

import numpy as np

from robot_parl.robots.sim.tabletop import ACTION_HIGH, ACTION_LOW, PROPRIO_DIM, STATE_DIM, TabletopEnv
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
    """``num_envs`` tabletop episodes stepped together.

    Observations are the privileged state (``obs_mode="state"``: {"state": [M, S]}) or camera images
    and proprio under flat keys ({"images/front": uint8 [M, H, W, 3], "proprio": [M, 4]}); the scripted
    experts always read the privileged state.
    """

    action_low = np.full(ACTION_DIM, -1.0, dtype=np.float32)
    action_high = np.full(ACTION_DIM, 1.0, dtype=np.float32)

    def __init__(self, num_envs: int, task: str, horizon: int = 60, obs_mode: str = "state", image_size: int = 64,
                 cameras: tuple[str, ...] = ("front",)):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.task = task
        self.obs_mode = obs_mode
        self.image_size = image_size
        self.envs = [TabletopEnv(task, obs_mode=obs_mode, image_size=image_size, cameras=cameras, horizon=horizon)
                     for _ in range(num_envs)]
        self.instruction = self.envs[0].instruction
        self.state_dim = STATE_DIM if obs_mode == "state" else 0
        self.cameras = tuple(cameras) if obs_mode == "images" else ()
        self.proprio_dim = PROPRIO_DIM if obs_mode == "images" else 0
        self._state = np.zeros((num_envs, STATE_DIM), np.float32)
        self._obs: list[dict] = [{} for _ in range(num_envs)]
        self.experts: list[TabletopExpert] | None = None

    @property
    def clipped_actions(self) -> int:
        return sum(env.clipped_actions for env in self.envs)

    def reset_one(self, i: int, seed: int) -> None:
        """Start episode ``i`` from the layout of ``seed``."""
        self._set(i, self.envs[i].reset(seed=seed)[0])
        if self.experts is not None:
            self.experts[i].reset()

    def _set(self, i: int, obs: dict) -> None:
        self._state[i] = self.envs[i].state()
        self._obs[i] = {"state": obs["state"]} if self.obs_mode == "state" else \
            {**{f"images/{c}": im for c, im in obs["images"].items()}, "proprio": obs["proprio"]}

    def observation(self) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}

    def step(self, actions: np.ndarray):
        """Normalized actions [M, 7] -> (obs, rewards, terminated, truncated); does not auto-reset."""
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(f"actions must be [{self.num_envs}, {ACTION_DIM}], got {actions.shape}")
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            obs, _, terminated[i], truncated[i], _ = env.step(to_physical(actions[i]))
            self._set(i, obs)
        rewards = np.where(terminated, 0.0, -1.0).astype(np.float32)
        return self.observation(), rewards, terminated, truncated

    def expert_actions(self, cfg: TabletopExpertConfig, seed: int) -> np.ndarray:
        """Normalized actions of one scripted expert per env (created on first use, reset with its env)."""
        if self.experts is None:
            self.experts = [TabletopExpert(self.task, cfg, seed=seed * 1000 + i) for i in range(self.num_envs)]
        return np.stack([to_normalized(e.act(s)) for e, s in zip(self.experts, self._state)])
