"""Demonstrations from files in an in-process run: an .npz laid out as diffusion_policy's ReplayBuffer keeps
episodes, a LeRobot v3 dataset and an episode store all give the same BC data, the actions mapped from the
environment's (asymmetric) bounds into policy space by the formula written here; bad files are refused naming the
config key and what differs; evaluation layouts come from config (real zarr, pyarrow and gymnasium)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore, KeySpec
from robot_parl.data.lerobot import export_lerobot
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig, collect_demos
from robot_parl.typed_config import ConfigError
from tests.runtime.test_gym_env import HIGH, LOW, TINY, LineEnv, line_expert

EPISODES = 5


def record(n=EPISODES):
    """Expert episodes on LineEnv, as a recorder keeps them: per frame the observation and the action taken there
    (environment units); the last frame's action is the one that ended the episode."""
    env, rng = LineEnv(), np.random.default_rng(3)
    episodes = []
    for e in range(n):
        obs, _ = env.reset(seed=100 + e)
        states, actions, success = [obs], [], False
        while not env.ended:
            action = np.clip(line_expert({"state": obs[None]}, rng)[0], LOW, HIGH).astype(np.float32)
            obs, _, success, _, _ = env.step(action)
            actions.append(action)
            states.append(obs)
        # the recorder's frames: observations 0..T-1 with their actions, then s_T with a repeated last action
        episodes.append((np.stack(states), np.stack(actions + actions[-1:]), success))
    return episodes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    episodes = record()
    np.savez(root / "demos.npz", obs=np.concatenate([s for s, _, _ in episodes]),
             action=np.concatenate([a for _, a, _ in episodes]),
             episode_ends=np.cumsum([len(s) for s, _, _ in episodes]),
             success=np.array([ok for _, _, ok in episodes]))
    store = EpisodeStore.create(root / "store", {"timestamp": KeySpec("float64", ()),
                                                 "state": KeySpec("float32", (2,)),
                                                 "action": KeySpec("float32", (2,), units="robot")})
    with store.writer("test") as w:
        for states, actions, ok in episodes:
            w.begin("teleop")
            for t in range(len(states)):
                w.add({"timestamp": 0.1 * t, "state": states[t], "action": actions[t]})
            w.end(ok)
    export_lerobot(root / "store", root / "lerobot", fps=10)
    return root, episodes


def policy_space(actions):
    return (actions - LOW) / (HIGH - LOW) * 2 - 1


@pytest.mark.parametrize("source", ["demos.npz", "store", "lerobot"])
def test_demos_from_a_file_reach_bc_in_policy_space(files, source, tmp_path):
    root, episodes = files
    key_map = ["demos.key_map={obs: state}"] if source.endswith(".npz") else []
    cfg = typed_config.load(LocalRunConfig, overrides=[*TINY, f"demos.source={root / source}", "demos.episodes=4",
                                                       *key_map])
    lines = []
    demos = collect_demos(cfg, lines.append)
    assert lines == [f"demonstrations: the first 4 of the {EPISODES} episodes in {root / source}"]
    assert len(demos) == 4
    for demo, (states, actions, ok) in zip(demos, episodes):
        np.testing.assert_allclose(demo.obs["state"], states, atol=1e-6)
        np.testing.assert_allclose(demo.actions, policy_space(actions[:-1]), atol=1e-5)
        assert demo.success == ok and demo.rewards.tolist() == [-1.0] * (len(actions) - 2) + [0.0 if ok else -1.0]
    run = LocalRun(cfg, tmp_path, log=lambda _: None)
    pre = run.pretrain()
    assert pre["demo_transitions"] == sum(len(s) - 1 for s, _, _ in episodes[:4])
    assert pre["demo_success"] == np.mean([ok for _, _, ok in episodes[:4]])
    assert [e.source for e in run.feed.store.episodes()] == ["teleop"] * 4


def test_bad_demo_files_are_refused_naming_the_key_and_what_differs(files, tmp_path):
    root, _ = files
    missing = typed_config.load(LocalRunConfig, overrides=[*TINY, f"demos.source={root / 'demos.npz'}"])
    with pytest.raises(ConfigError, match=r"demos.source.*episode 0: no 'state'.*demos.key_map"):
        LocalRun(missing, tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    np.savez(tmp_path / "wide.npz", state=np.zeros((6, 2), np.float32), action=np.zeros((6, 3), np.float32),
             episode_ends=np.array([3, 6]))
    wide = typed_config.load(LocalRunConfig, overrides=[*TINY, f"demos.source={tmp_path / 'wide.npz'}"])
    with pytest.raises(ConfigError, match=r"actions have shape \[2, 3\], expected \[T, 2\]"):
        collect_demos(wide, lambda _: None)
    np.savez(tmp_path / "ends.npz", state=np.zeros((6, 2), np.float32), action=np.zeros((6, 2), np.float32),
             episode_ends=np.array([3, 5]))
    ends = typed_config.load(LocalRunConfig, overrides=[*TINY, f"demos.source={tmp_path / 'ends.npz'}"])
    with pytest.raises(ConfigError, match=r"episode_ends must be increasing integers ending at the 6 frames"):
        collect_demos(ends, lambda _: None)
    with pytest.raises(ConfigError, match=r"demos.source.*'expert' or a path.*found nothing"):
        typed_config.load(LocalRunConfig, overrides=[*TINY, f"demos.source={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match=r"demos.key_map"):
        typed_config.load(LocalRunConfig, overrides=[*TINY, "demos.key_map={obs: state}"])


def test_evaluation_layouts_come_from_config_and_never_meet_training_ones(tmp_path):
    cfg = typed_config.load(LocalRunConfig, overrides=[*TINY, "online.eval_seed=7000"])
    run = LocalRun(cfg, tmp_path, log=lambda _: None)
    assert run.eval_seeds == [7000, 7001, 7002, 7003]
    assert cfg.final_eval_seeds(2) == [507000, 507001]
    # seed 10 trains on layouts 1000000.. (demos) and 1050000.. (online): the default evaluation layouts
    with pytest.raises(ConfigError, match=r"online.eval_seed.*learning-curve layouts \(1000000..1000003\) apart "
                                         r"from seed=10's training ones \(1000000..1000005 and 1050000..1050003\)"):
        typed_config.load(LocalRunConfig, overrides=[*TINY, "seed=10"])
    far = typed_config.load(LocalRunConfig, overrides=[*TINY, "online.eval_seed=0", "seed=5"])
    with pytest.raises(ConfigError, match=r"final evaluation layouts \(500000..500099\) apart"):
        far.final_eval_seeds(100)


def test_the_demo_command_takes_an_env_of_ones_own_and_a_file_of_demos(files, tmp_path):
    root, _ = files
    env = "tests.runtime.test_gym_env:test/Line-v0"
    tiny = ["demos.bc_steps=20", "parl.schedule.offline_steps=5", "online.episodes=2", "online.eval_every=2",
            "online.eval_episodes=4", "online.num_envs=2", "gym.horizon=150"]

    def demo(*args):
        return subprocess.run([sys.executable, "-m", "robot_parl.cli", "demo", *args], capture_output=True,
                              text=True, timeout=600)

    res = demo("--out", str(tmp_path / "run"), "--env", env, "--demos", str(root / "demos.npz"),
               "demos.key_map={obs: state}", *tiny)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"demonstrations: the first {EPISODES} of the {EPISODES} episodes" in res.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == env and summary["pretrain"]["demo_transitions"] == sum(
        len(s) - 1 for s, _, _ in files[1])
    res = demo("--out", str(tmp_path / "bad"), "--env", env, "--demos", str(root / "demos.npz"), *tiny)
    assert res.returncode == 2 and "demos.source" in res.stderr and "no 'state'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
