import numpy as np
import pytest

from robot_parl.eval.rollouts import run_episodes, success_rate
from robot_parl.robots.sim.point_reach import ExpertConfig, PointReachConfig, PointReachVecEnv, expert_actions

SEEDS = list(range(200))


def test_same_seed_same_layout():
    a, b = PointReachVecEnv(3), PointReachVecEnv(3)
    assert np.array_equal(a.reset([1, 2, 3])["state"], b.reset([1, 2, 3])["state"])
    assert not np.array_equal(a.reset([4, 5, 6])["state"], b.reset([1, 2, 3])["state"])


def test_clean_full_speed_expert_succeeds_and_random_mostly_fails():
    env = PointReachVecEnv(50)
    rng = np.random.default_rng(0)
    clean = ExpertConfig(speed=1.0, noise=0.0, hesitation=0.0)
    assert success_rate(env, SEEDS, lambda o: (expert_actions(o["state"], clean, rng), None)) >= 0.95
    random = success_rate(env, SEEDS, lambda o: (rng.uniform(-1, 1, (50, 2)).astype(np.float32), None))
    assert random <= 0.10


def test_cautious_expert_is_weak():
    env = PointReachVecEnv(50)
    rng = np.random.default_rng(0)
    rate = success_rate(env, SEEDS, lambda o: (expert_actions(o["state"], ExpertConfig(), rng), None))
    assert 0.3 <= rate <= 0.8


def test_success_exactly_when_inside_the_goal_and_reward_structure():
    cfg = PointReachConfig(horizon=5)
    env = PointReachVecEnv(1, cfg)
    env.reset([0])
    env.pos[:] = env.goal + np.array([cfg.goal_radius + 0.05, 0.0], dtype=np.float32)
    _, r, term, trunc = env.step(np.array([[-0.4, 0.0]], dtype=np.float32))  # moves 0.04: still outside
    assert not term[0] and r[0] == -1.0
    _, r, term, trunc = env.step(np.array([[-0.2, 0.0]], dtype=np.float32))  # now within the radius
    assert term[0] and r[0] == 0.0 and not trunc[0]


def test_horizon_truncates_and_out_of_bounds_actions_are_clipped_and_counted():
    env = PointReachVecEnv(2, PointReachConfig(horizon=3))
    push = np.array([[5.0, 0.0], [0.0, 0.0]], dtype=np.float32)  # the first is far outside [-1, 1]
    rollouts = run_episodes(env, [0, 1], lambda o: (push, None))
    assert all(len(r) <= 3 for r in rollouts)
    assert env.clipped_actions >= 1
    assert all(r.obs["state"].shape[0] == len(r) + 1 for r in rollouts)


def test_bad_actions_are_refused_with_the_value():
    env = PointReachVecEnv(2)
    env.reset([0, 1])
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([[0.0, np.nan], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        env.step(np.zeros((2, 3)))
