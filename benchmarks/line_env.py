"""A gymnasium task nothing in robot_parl knows about, for benchmarks: stop a sliding block on a goal.

The block has momentum (the action is a force, with friction); success is being within 0.02 of the goal while
almost still. Actions are asymmetric and off-centre (force = action[0] - 1.5; action[1] is ignored), the horizon
is 150 steps, success is ``info["success"]``, and stepping an ended episode raises. ``noisy_expert`` is a
PD controller with noise, as a teleoperator would be.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

LOW, HIGH = np.array([0.5, -3.0], np.float32), np.array([2.5, -1.0], np.float32)
HORIZON = 150


class LineEnv(gym.Env):
    """Observation [position, velocity, goal]; action [force + 1.5, unused]."""

    observation_space = gym.spaces.Box(-5.0, 5.0, (3,), np.float32)
    action_space = gym.spaces.Box(LOW, HIGH)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v, self.t, self.ended = 0.0, 0.0, 0, False
        self.goal = float(self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(0.3, 1.0))
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.v, self.goal], np.float32)

    def step(self, action):
        if self.ended:
            raise RuntimeError("stepped after the episode ended")
        force = float(np.clip(action[0] - 1.5, -1.0, 1.0))
        self.v = 0.9 * self.v + 0.01 * force
        self.x += self.v
        self.t += 1
        success = abs(self.x - self.goal) < 0.02 and abs(self.v) < 0.002
        self.ended = success or self.t >= HORIZON
        return self._obs(), 0.0, success, self.t >= HORIZON, {"success": success}


def noisy_expert(obs, rng):
    """A PD controller towards the goal with noisy force, in the environment's action units."""
    x, v, goal = obs["state"][:, 0], obs["state"][:, 1], obs["state"][:, 2]
    force = np.clip(2.0 * (goal - x) - 25.0 * v, -1.0, 1.0) + rng.normal(0.0, 0.5, len(x))
    return np.stack([np.clip(force, -1.0, 1.0) + 1.5, np.full(len(x), -2.0)], axis=1)


gym.register("Line-v0", entry_point=LineEnv)
