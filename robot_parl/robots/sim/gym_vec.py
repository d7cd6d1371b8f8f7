"""Any gymnasium environment as a batched learning environment (the in-process run's ``env``).

The environment is a registered id (``CartPole-v1``, ``robot_parl/Pick-v0``) or ``module:EnvId`` (the module is
imported first, so it can register its envs). What the run needs of it:
- observations: a Box (the ``state``) or a Dict holding ``state``, ``proprio`` and/or ``images`` (a Dict of HxWx3
  uint8 cameras, all of one square size);
- actions: a Box with any finite bounds; policies act in [-1, 1], mapped linearly onto the bounds here;
- success: ``info["success"]`` on the step that succeeds. Rewards are the project's sparse -1 per step until
  success (the environment's own rewards are not used), and an episode ends on success, when the environment
  ends it, or after ``horizon`` steps (0: only the environment's own limits).
A finished episode is never stepped again: environments that refuse steps past their end are fine.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from robot_parl.robots.sim.vec_env import VecEnv


def make_gym_env(env_id: str) -> gym.Env:
    """``gym.make`` of a registered id, or of ``module:EnvId`` after importing the module."""
    module, sep, name = env_id.partition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"environment {env_id!r}: cannot import module {module!r} ({err})") from None
    try:
        return gym.make(name if sep else env_id)
    except gym.error.Error as err:
        raise ValueError(f"environment {env_id!r}: {err}") from None


class GymVecEnv(VecEnv):
    """``num_envs`` copies of one gymnasium environment, each seeded on its own reset."""

    def __init__(self, env_id: str, num_envs: int, horizon: int = 0):
        self.envs = [make_gym_env(env_id) for _ in range(num_envs)]
        self.num_envs, self.horizon = num_envs, horizon
        space = self.envs[0].action_space
        finite = isinstance(space, gym.spaces.Box) and np.isfinite(space.low).all() and np.isfinite(space.high).all()
        if not finite:
            raise ValueError(f"environment {env_id!r}: actions must be a Box with finite bounds, got {space}")
        self.env_low, self.env_high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.action_low = -np.ones(space.shape, np.float32)
        self.action_high = np.ones(space.shape, np.float32)
        self._describe(env_id, self.envs[0].observation_space)
        self._obs: list[dict[str, np.ndarray]] = [{} for _ in range(num_envs)]
        self._done = [True] * num_envs
        self._steps = [0] * num_envs
        # A batch of fewer episodes than copies leaves some copies unused: they still need an observation to
        # batch (never stepped: an unused copy counts as ended).
        for i in range(num_envs):
            self.reset_one(i, i)
            self._done[i] = True

    def _describe(self, env_id: str, space: gym.Space) -> None:
        if isinstance(space, gym.spaces.Box):
            self.state_dim = int(np.prod(space.shape))
            return
        known = {"state", "proprio", "images"}
        if not isinstance(space, gym.spaces.Dict) or not set(space.spaces) <= known or not space.spaces:
            raise ValueError(f"environment {env_id!r}: observations must be a Box or a Dict of {sorted(known)}, "
                             f"got {space}")
        if "state" in space.spaces:
            self.state_dim = int(np.prod(space["state"].shape))
        if "proprio" in space.spaces:
            self.proprio_dim = int(np.prod(space["proprio"].shape))
        if "images" in space.spaces:
            cameras = space["images"].spaces
            sizes = {tuple(c.shape) for c in cameras.values()}
            if len(sizes) != 1 or next(iter(sizes))[2:] != (3,) or next(iter(sizes))[0] != next(iter(sizes))[1]:
                raise ValueError(f"environment {env_id!r}: cameras must be square HxWx3 images of one size, "
                                 f"got {sizes}")
            self.cameras, self.image_size = tuple(cameras), next(iter(sizes))[0]

    def _flat(self, obs: Any) -> dict[str, np.ndarray]:
        if not isinstance(obs, dict):
            return {"state": np.asarray(obs, np.float32).reshape(-1)}
        out = {k: np.asarray(obs[k], np.float32).reshape(-1) for k in ("state", "proprio") if k in obs}
        out.update({f"images/{c}": np.asarray(image, np.uint8) for c, image in obs.get("images", {}).items()})
        return out

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Policy-space actions ([-1, 1]) in the environment's bounds."""
        a = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
        return (self.env_low + (a + 1.0) * 0.5 * (self.env_high - self.env_low)).astype(np.float32)

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        """Actions in the environment's bounds (an expert's) as policy-space actions."""
        a = (np.asarray(actions, np.float64) - self.env_low) / (self.env_high - self.env_low) * 2.0 - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def reset_one(self, i: int, seed: int) -> None:
        obs, _ = self.envs[i].reset(seed=seed)
        self._obs[i], self._done[i], self._steps[i] = self._flat(obs), False, 0

    def observation(self) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}

    def step(self, actions: np.ndarray):
        rewards = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue  # its episode ended: never stepped again
            obs, _, ended, cut, info = env.step(self.to_env(actions[i]))
            self._steps[i] += 1
            self._obs[i] = self._flat(obs)
            success = bool(info.get("success", False))
            rewards[i] = 0.0 if success else -1.0
            terminated[i] = success
            truncated[i] = not success and (ended or cut or 0 < self.horizon <= self._steps[i])
            self._done[i] = bool(terminated[i] or truncated[i])
        return self.observation(), rewards, terminated, truncated
