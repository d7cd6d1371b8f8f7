import numpy as np

from robot_parl import typed_config
from robot_parl.robots.sim.tabletop_vec import TabletopVecEnv, to_normalized, to_physical
from robot_parl.runtime.local_session import LocalSession, SessionConfig, collect_demos

TINY = ["env=pick", "demos.episodes=4", "demos.bc_steps=5", "parl.schedule.offline_steps=2", "online.episodes=2",
        "online.eval_every=2", "online.eval_episodes=2", "online.num_envs=2", "tabletop.horizon=15"]


def test_normalized_actions_map_onto_the_physical_bounds():
    a = np.array([-1, 1, 0, -1, 1, 0, 1], np.float32)
    phys = to_physical(a)
    np.testing.assert_allclose(phys, [-0.03, 0.03, 0.0, -0.2, 0.2, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(to_normalized(phys), a, atol=1e-6)


def test_clean_expert_demos_succeed_with_the_session_reward_convention():
    cfg = typed_config.load(SessionConfig, overrides=["env=place", "demos.episodes=6", "tabletop.expert.noise=0",
                                                      "tabletop.expert.hesitation=0", "tabletop.expert.missed_grasp=0"])
    demos = collect_demos(cfg)
    assert len(demos) == 6 and all(d.success for d in demos)
    for d in demos:  # -1 per step, 0 on the step that succeeds
        assert d.rewards[-1] == 0 and (d.rewards[:-1] == -1).all()
        assert np.abs(d.actions).max() <= 1.0


def test_a_pa_rl_session_runs_on_a_mujoco_task(tmp_path):
    session = LocalSession(typed_config.load(SessionConfig, overrides=TINY), tmp_path, log=lambda _: None)
    assert isinstance(session.train_env, TabletopVecEnv)
    pre = session.pretrain()
    curve = session.finetune()
    assert pre["demo_transitions"] > 0 and [p["online_episodes"] for p in curve] == [0, 2]
    assert session.agent.counters["critic_updates"] > 2 and session.agent.counters["distill_updates"] > 0
