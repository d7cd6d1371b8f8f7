"""Episodes go to the zarr episode store and reach replay from there, exactly as they were."""

import numpy as np
import pytest
import torch

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore, KeySpec, rl_schema
from robot_parl.models.action_space import LinearActionSpace
from robot_parl.rl.store_episodes import StoreFeed, read_episode, write_episode
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig

OBS = {"images/front": KeySpec("uint8", (8, 8, 3)), "proprio": KeySpec("float32", (2,))}
UNITS = LinearActionSpace([-0.1, 0.0, -2.0], [0.1, 1.0, 2.0])  # robot units of the stored actions


def _episode(t, seed):
    rng = np.random.default_rng(seed)
    obs = {"images/front": rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8),
           "proprio": rng.standard_normal((t + 1, 2)).astype(np.float32)}
    actions = rng.uniform(-1, 1, (t, 3)).astype(np.float32)
    rewards = np.full(t, -1.0, np.float32)
    return obs, actions, rewards


def test_episodes_round_trip_through_the_store(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", rl_schema(OBS, action_dim=3, num_candidates=4))
    assert store.schema["action"].units == store.schema["candidates"].units == "robot"
    obs, actions, rewards = _episode(5, 0)
    candidates = torch.rand(6, 4, 3) * 2 - 1
    with store.writer("test") as w:  # stored in robot units, as actors, collect and importers write them
        write_episode(w, obs, UNITS.to_robot(actions), rewards, True, "rollout",
                      torch.from_numpy(UNITS.to_robot(candidates.numpy())), policy_version=7,
                      instruction="stack the cups")
        write_episode(w, *_episode(3, 1), False, "teleop")
    reader = EpisodeStore(tmp_path / "s")
    assert reader.schema["action"].units == "robot"
    ep = read_episode(reader, 0, list(OBS), UNITS)
    assert torch.equal(ep.obs["images"]["front"], torch.from_numpy(obs["images/front"]))
    assert torch.equal(ep.obs["proprio"], torch.from_numpy(obs["proprio"]))
    # replay gets policy space back (the stored robot units differ from it: a linear map over the bounds)
    assert not np.allclose(reader.episode(0, ["action"])["action"][:-1], actions, atol=0.05)
    np.testing.assert_allclose(ep.actions.numpy(), actions, atol=1e-6)
    assert torch.equal(ep.rewards, torch.from_numpy(rewards))
    np.testing.assert_allclose(ep.candidates.numpy(), candidates.numpy(), atol=1e-6)
    assert ep.terminated and ep.policy_version == 7
    assert ep.instruction == "stack the cups" and ep.obs["instruction"] == ["stack the cups"] * 6
    with pytest.raises(ValueError, match="has no candidates and no policy"):
        read_episode(reader, 1, list(OBS), UNITS)
    drawn = read_episode(reader, 1, list(OBS), UNITS,
                         sample_candidates=lambda o: torch.zeros(o["proprio"].shape[0], 4, 3))
    assert drawn.candidates.shape == (4, 4, 3) and not drawn.terminated


def test_the_feed_hands_over_each_committed_episode_once(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", rl_schema(OBS, action_dim=3, num_candidates=4))
    feed = StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS)
    draw = lambda o: torch.zeros(o["proprio"].shape[0], 4, 3)  # noqa: E731
    assert feed.new_episodes(draw) == []
    with store.writer("test") as w:
        write_episode(w, *_episode(2, 0), False, "teleop")
        write_episode(w, *_episode(4, 1), True, "rollout", torch.zeros(5, 4, 3))
        got = feed.new_episodes(draw)
        assert [(len(e.actions), online) for e, online in got] == [(2, False), (4, True)]
        write_episode(w, *_episode(3, 2), False, "intervention", torch.zeros(4, 4, 3))
        w.begin("rollout")  # not committed: never handed over
        assert [(len(e.actions), online) for e, online in feed.new_episodes(draw)] == [(3, True)]


def test_the_feed_chooses_episodes_as_the_learner_config_says(tmp_path):
    from robot_parl.runtime.config import LearnerConfig

    store = EpisodeStore.create(tmp_path / "s", rl_schema(OBS, action_dim=3, num_candidates=4))
    draw = lambda o: torch.zeros(o["proprio"].shape[0], 4, 3)  # noqa: E731
    with store.writer("test") as w:
        write_episode(w, *_episode(2, 0), False, "teleop")
        write_episode(w, *_episode(4, 1), True, "teleop")
        write_episode(w, *_episode(3, 2), True, "sim")
    select = LearnerConfig(offline_sources=["teleop"], offline_successes_only=True).offline_selection()
    feed = StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS, select=select)
    assert [len(e.actions) for e, _ in feed.new_episodes(draw)] == [4] and feed.position == 3
    everything = StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS, select=LearnerConfig().offline_selection())
    assert [len(e.actions) for e, _ in everything.new_episodes(draw)] == [2, 4, 3]


def test_a_resumed_session_feeds_episodes_committed_after_its_checkpoint(tmp_path):
    overrides = ["demos.bc_steps=5", "parl.schedule.offline_steps=2", "online.episodes=2", "online.eval_every=2",
                 "online.eval_episodes=2", "online.checkpoint_every=2", "online.num_envs=2"]
    cfg = typed_config.load(LocalRunConfig, overrides=overrides)
    first = LocalRun(cfg, tmp_path, log=lambda _: None)
    first.pretrain()
    first.finetune()
    assert first.agent.counters["online_episodes"] == 2
    # An episode collected after the last checkpoint, then the process dies.
    obs = {"state": np.zeros((4, 4), np.float32)}
    write_episode(first.writer, obs, np.zeros((3, 2), np.float32), -np.ones(3, np.float32), False, "rollout",
                  torch.zeros(4, cfg.parl.num_samples, 2))
    first.writer.close()
    resumed = LocalRun(typed_config.load(LocalRunConfig, overrides=overrides[:-5] + ["online.episodes=3",
                           "online.eval_every=3", "online.eval_episodes=2", "online.checkpoint_every=3",
                           "online.num_envs=1"]), tmp_path, log=lambda _: None)
    assert resumed.resume()
    replay_before = len(resumed.agent.replay)
    resumed.finetune()
    assert resumed.agent.counters["online_episodes"] == 3  # the extra episode counted, no new one needed
    assert len(resumed.agent.replay) == replay_before + 3
    assert len(EpisodeStore(tmp_path / "episodes")) == 20 + 3  # demos + rollouts, each once


def test_a_resumed_run_refills_replay_from_the_store_without_counting_it_again(tmp_path):
    from robot_parl.data.episode_store import StoreError
    from robot_parl.rl.replay import Replay

    store = EpisodeStore.create(tmp_path / "s", rl_schema(OBS, action_dim=3, num_candidates=4))
    with store.writer("test") as w:
        for i, source in enumerate(["teleop", "rollout", "rollout"]):
            obs, actions, rewards = _episode(4, i)
            write_episode(w, obs, UNITS.to_robot(actions), rewards, True, source,
                          torch.from_numpy(UNITS.to_robot((torch.rand(5, 4, 3) * 2 - 1).numpy())))
    live = Replay(0.99)
    feed = StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS)
    for episode, online in feed.new_episodes(upto=2):  # what the run had read when it saved its checkpoint
        live.add_episode(episode, online)
    assert feed.position == 2
    rebuilt = Replay(0.99)
    resumed = StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS)
    resumed.refill(rebuilt, None, upto=2)
    assert resumed.position == 2 and (rebuilt.offline.size, rebuilt.online.size) == (4, 4)
    for name in ("offline", "online"):
        for part in ("frames", "transitions"):
            for key, column in getattr(getattr(live, name), part).columns.items():
                assert torch.equal(getattr(getattr(rebuilt, name), part).columns[key], column), key
    assert [online for _, online in resumed.new_episodes()] == [True]  # the third arrives as new data
    with pytest.raises(StoreError, match="holds 3 episodes, but the checkpoint's replay read 5"):
        StoreFeed(EpisodeStore(tmp_path / "s"), list(OBS), UNITS).refill(Replay(0.99), None, upto=5)


def test_checkpoints_leave_replay_out_and_keep_the_newest_and_the_best(tmp_path):
    from robot_parl.runtime.local_run import LocalRunState
    from robot_parl.runtime.resume import load_latest, save_checkpoint

    cfg = typed_config.load(LocalRunConfig, overrides=["demos.episodes=1"])
    session = LocalRun(cfg, tmp_path / "run", log=lambda _: None)
    save_checkpoint(tmp_path / "ckpt", "pretrained", session.agent, LocalRunState())  # not of the series: stays
    for i, score in enumerate([0.2, 0.9, 0.1, 0.3, 0.4]):
        session.agent.counters["online_episodes"] = i
        save_checkpoint(tmp_path / "ckpt", f"update_{i}", session.agent, LocalRunState(store_position=i), keep=2,
                        score=score)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.is_dir()) == ["pretrained", "update_1",
                                                                                   "update_3", "update_4"]
    assert not list((tmp_path / "ckpt").rglob("replay.safetensors"))
    state = load_latest(tmp_path / "ckpt", session.agent, LocalRunState)
    assert state.store_position == 4 and session.agent.counters["online_episodes"] == 4
