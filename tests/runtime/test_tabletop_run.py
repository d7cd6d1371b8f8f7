import numpy as np
import torch

from robot_parl import typed_config
from robot_parl.robots.sim.tabletop_vec import TabletopVecEnv, to_normalized, to_physical
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig, collect_demos

# parl.trust_min_z=0: the critic acts and is distilled from the start (two episodes cannot pass the trust test)
TINY = ["env=pick", "demos.episodes=4", "demos.bc_steps=5", "parl.schedule.offline_steps=2", "online.episodes=2",
        "online.eval_every=2", "online.eval_episodes=2", "online.num_envs=2", "tabletop.horizon=15",
        "parl.trust_min_z=0"]


def test_normalized_actions_map_onto_the_physical_bounds():
    a = np.array([-1, 1, 0, -1, 1, 0, 1], np.float32)
    phys = to_physical(a)
    np.testing.assert_allclose(phys, [-0.03, 0.03, 0.0, -0.2, 0.2, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(to_normalized(phys), a, atol=1e-6)


def test_clean_expert_demos_succeed_with_the_session_reward_convention():
    cfg = typed_config.load(LocalRunConfig, overrides=["env=place", "demos.episodes=6", "tabletop.expert.noise=0",
                                                      "tabletop.expert.hesitation=0", "tabletop.expert.missed_grasp=0"])
    demos = collect_demos(cfg)
    assert len(demos) == 6 and all(d.success for d in demos)
    for d in demos:  # -1 per step, 0 on the step that succeeds
        assert d.rewards[-1] == 0 and (d.rewards[:-1] == -1).all()
        assert np.abs(d.actions).max() <= 1.0


def test_a_pa_rl_session_runs_on_a_mujoco_task(tmp_path):
    session = LocalRun(typed_config.load(LocalRunConfig, overrides=TINY), tmp_path, log=lambda _: None)
    assert isinstance(session.train_env, TabletopVecEnv)
    pre = session.pretrain()
    curve = session.finetune()
    assert pre["demo_transitions"] > 0 and [p["online_episodes"] for p in curve] == [0, 2]
    assert session.agent.counters["critic_updates"] > 2 and session.agent.counters["distill_updates"] > 0


def test_image_observations_are_rendered_under_flat_camera_keys():
    env = TabletopVecEnv(2, "pick", obs_mode="images", image_size=32, cameras=("front", "wrist"))
    obs = env.reset([0, 1])
    assert sorted(obs) == ["images/front", "images/wrist", "proprio"]
    assert obs["images/front"].shape == (2, 32, 32, 3) and obs["images/front"].dtype == np.uint8
    assert not np.array_equal(obs["images/front"][0], obs["images/front"][1])  # two layouts, two pictures
    # The scripted experts read the privileged state, whatever the observations are.
    from robot_parl.robots.sim.tabletop_expert import TabletopExpertConfig

    assert env.expert_actions(TabletopExpertConfig(), seed=0).shape == (2, 7)


def test_a_tiny_vla_session_runs_on_images(tmp_path):
    """The whole local pipeline with the tiny VLA: demos, BC, offline critic, online PA-RL, checkpoint."""
    from robot_parl.models.vla.checkpoint import write_random_checkpoint
    from robot_parl.models.vla.policy import VLAPolicy

    checkpoint = write_random_checkpoint(tmp_path / "vla")
    overrides = ["env=pick", "demos.episodes=1", "demos.bc_steps=2", "demos.bc_batch_size=2", "tabletop.horizon=4",
                 "tabletop.obs_mode=images", "tabletop.image_size=32", "policy.kind=vla",
                 f"policy.vla.checkpoint={checkpoint}", "policy.vla.dtype=float32", "policy.vla.instruction=pick",
                 "policy.vla.parl={num_samples: 4, top_k: 2}", "parl.local_steps=1", "parl.trust_min_z=0",
                 "parl.critic={ensemble_size: 2, hidden_dims: [16], embedding_dim: 16, image_encoder: small_cnn, "
                 "image_size: 32, augment_pad: 2, batch_size: 4}", "parl.schedule.offline_steps=2",
                 "parl.schedule.critic_utd=0.5", "parl.schedule.distill_utd=0.25", "online.episodes=1",
                 "online.num_envs=1", "online.eval_every=1", "online.eval_episodes=1"]
    session = LocalRun(typed_config.load(LocalRunConfig, overrides=overrides), tmp_path / "run", log=lambda _: None)
    assert isinstance(session.policy, VLAPolicy)
    assert session.agent.cfg.num_samples == 4  # the card's override of the session's ParlConfig
    before = session.policy.sync_state()
    session.pretrain()
    curve = session.finetune()
    assert [p["online_episodes"] for p in curve] == [0, 1]
    assert session.agent.counters["distill_updates"] >= 1
    after = session.policy.sync_state()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "run" / "checkpoints" / "episode_000001" / "policy.safetensors").is_file()


def test_a_vla_needs_image_observations(tmp_path):
    import pytest

    cfg = typed_config.load(LocalRunConfig, overrides=["env=pick", "policy.kind=vla", "policy.vla.checkpoint=x"])
    with pytest.raises(ValueError, match="the VLA reads camera 'front' but the observations have cameras \\[\\]"):
        LocalRun(cfg, tmp_path, log=lambda _: None)
