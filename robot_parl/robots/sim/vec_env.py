"""What the batched learning environments share: ``num_envs`` episodes, each seeded on its own reset."""

from __future__ import annotations

import numpy as np


class VecEnv:
    """Subclasses set ``num_envs`` and implement ``reset_one(i, seed)``, ``observation()`` and ``step(actions)``."""

    num_envs: int

    def reset_one(self, i: int, seed: int) -> None:
        raise NotImplementedError

    def observation(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def reset(self, seeds: list[int]) -> dict[str, np.ndarray]:
        """Reset every episode, one seed each."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        for i, seed in enumerate(seeds):
            self.reset_one(i, seed)
        return self.observation()
