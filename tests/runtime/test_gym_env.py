"""An in-process run on a gymnasium environment written here, not one of the repo's tasks: asymmetric action
bounds, a 150-step horizon, success in ``info``, and an environment that raises if stepped after its episode
ended. Demonstrations come from a scripted expert named ``module:function``; the repo's own pick task also
loads through ``module:EnvId``."""

import gymnasium as gym
import numpy as np
import pytest

from robot_parl import typed_config
from robot_parl.robots.sim.gym_vec import GymVecEnv
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig
from robot_parl.typed_config import ConfigError

LOW, HIGH = np.array([0.5, -3.0], np.float32), np.array([2.5, -1.0], np.float32)  # asymmetric, off-centre


class LineEnv(gym.Env):
    """Reach a goal on a line; the action's first entry is a velocity offset by 1.5 (the second is ignored)."""

    observation_space = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
    action_space = gym.spaces.Box(LOW, HIGH)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.goal = 0.0, float(self.np_random.uniform(-1.0, 1.0))
        self.ended, self.t = False, 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.goal], np.float32)

    def step(self, action):
        if self.ended:
            raise RuntimeError("stepped after the episode ended")
        assert np.all(action >= LOW - 1e-6) and np.all(action <= HIGH + 1e-6), action
        self.x += 0.1 * float(np.clip(action[0] - 1.5, -1.0, 1.0))
        self.t += 1
        success = abs(self.x - self.goal) < 0.05
        self.ended = success or self.t >= 150
        return self._obs(), 0.0, success, self.t >= 150, {"success": success}


def line_expert(obs, rng):
    """Heads for the goal, with some noise (actions in the environment's units)."""
    state = obs["state"]
    velocity = np.clip((state[:, 1] - state[:, 0]) / 0.1, -1.0, 1.0) + rng.normal(0, 0.3, len(state))
    return np.stack([velocity + 1.5, np.full(len(velocity), -2.0)], axis=1)


gym.register("test/Line-v0", entry_point=LineEnv)
TINY = ["env=test/Line-v0", f"gym.expert={__name__}:line_expert", "gym.horizon=150", "demos.episodes=6",
        "demos.bc_steps=30", "parl.schedule.offline_steps=5", "online.episodes=4", "online.eval_every=4",
        "online.eval_episodes=4", "online.num_envs=2", "online.checkpoint_every=4"]


def test_a_run_on_a_gymnasium_env_of_ones_own(tmp_path):
    cfg = typed_config.load(LocalRunConfig, overrides=TINY)
    run = LocalRun(cfg, tmp_path, log=lambda _: None)
    assert run.train_env.state_dim == 2 and run.train_env.action_low.tolist() == [-1.0, -1.0]
    pre = run.pretrain()
    assert pre["demo_success"] > 0.5  # the expert, mapped into policy space and back, still reaches the goal
    curve = run.finetune()
    assert [p["online_episodes"] for p in curve] == [0, 4] and 0.0 <= curve[-1]["agent_success"] <= 1.0
    assert run.agent.counters["online_episodes"] == 4


def test_the_adapter_maps_bounds_never_steps_an_ended_episode_and_loads_module_ids():
    env = GymVecEnv("test/Line-v0", 2, horizon=3)
    np.testing.assert_allclose(env.to_env(np.array([[-1.0, 1.0], [0.0, 0.0]])), [[0.5, -1.0], [1.5, -2.0]])
    np.testing.assert_allclose(env.from_env(env.to_env(np.array([[0.3, -0.7]]))), [[0.3, -0.7]], atol=1e-6)
    env.reset([0, 1])
    for _ in range(5):  # the horizon ends both episodes at step 3; LineEnv would raise if stepped after
        _, rewards, terminated, truncated = env.step(np.zeros((2, 2), np.float32))
    assert not rewards.any() and not terminated.any() and not truncated.any()  # ended: nothing more happens
    three = GymVecEnv("test/Line-v0", 3)
    three.reset_one(0, 7)  # a batch of one episode on three copies: the unused ones still batch, never step
    assert three.observation()["state"].shape == (3, 2)
    three.step(np.zeros((3, 2), np.float32))
    pick = GymVecEnv("robot_parl.robots.sim:robot_parl/Pick-v0", 1)
    pick.reset([0])
    assert pick.state_dim > 0 and pick.observation()["state"].shape == (1, pick.state_dim)
    with pytest.raises(ConfigError, match="gym.expert"):
        typed_config.load(LocalRunConfig, overrides=["env=test/Line-v0"])
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        GymVecEnv("no_such_module:Env-v0", 1)
