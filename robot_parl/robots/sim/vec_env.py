"""What the batched learning environments share: ``num_envs`` episodes, each seeded on its own reset."""

from __future__ import annotations

import numpy as np


class VecEnv:
    """Subclasses set ``num_envs`` and what they observe, and implement ``reset_one(i, seed)``, ``observation()``
    and ``step(actions) -> (obs, rewards, terminated, truncated)`` (no auto-reset; ``terminated`` is success)."""

    num_envs: int
    # What each observation holds: ``state`` [state_dim] (0: none), or ``images/<camera>`` [image_size,
    # image_size, 3] uint8 for each of ``cameras`` and ``proprio`` [proprio_dim].
    state_dim: int = 0
    proprio_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 0
    # The action bounds, per dimension (float32 arrays).
    action_low: np.ndarray
    action_high: np.ndarray

    def reset_one(self, i: int, seed: int) -> None:
        raise NotImplementedError

    def observation(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        """Actions in the environment's own units (an expert's, a recorded demonstration's) in policy space; the
        built-in simulators act in policy space already."""
        return np.asarray(actions, np.float32)

    def reset(self, seeds: list[int]) -> dict[str, np.ndarray]:
        """Reset every episode, one seed each."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        for i, seed in enumerate(seeds):
            self.reset_one(i, seed)
        return self.observation()
