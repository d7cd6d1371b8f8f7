"""The session benchmark's own arithmetic (the commands it runs are tested where they live and by `make demo`): the
arguments it gives them, the online curve read back from a learner's store, with each block's probation arms, and
results files that collect one run per seed and settings."""

import json

import numpy as np

from benchmarks.session_pick import CONFIG, add_run, online_curve, session_args
from robot_parl.cli import build_parser
from robot_parl.data.episode_store import EpisodeStore, KeySpec, rl_schema
from robot_parl.rl.trust import probation_arm


def test_every_command_takes_the_runs_options_and_overrides(tmp_path):
    sets = session_args(tmp_path / "run", 3, ["parl.local_steps=0"], tiny_vla=True)
    for command in (["pretrain", "--config", CONFIG, "--out", "o", "--bc-steps", "5", *sets],
                    ["finetune", "--config", CONFIG, "--out", "o", *sets, "actor.episodes=7"],
                    ["eval", "--config", CONFIG, "--out", "o", "--critic", "c", *sets, "seed=9"]):
        args = build_parser().parse_args(command)
        assert args.tiny_vla, command[0]
        assert args.overrides[0] == "seed=3" and "parl.local_steps=0" in args.overrides
        assert f"learner.offline_store={tmp_path / 'run' / 'demos'}" in args.overrides
    assert args.overrides[-1] == "seed=9"  # the evaluation's own layouts, given last, win


def test_the_online_curve_counts_rollouts_per_block_and_their_arms(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", rl_schema({"proprio": KeySpec("float32", (2,))}, 3))
    ids = [f"e{i}" for i in range(5)]
    outcomes = [False, True, True, False, True]
    with store.writer("test") as w:
        w.begin("sim")  # a demonstration in the same store is not an online episode
        for t in range(2):
            w.add({"proprio": np.zeros(2, np.float32), "action": np.zeros(3, np.float32), "reward": np.float32(-1),
                   "timestamp": float(t)})
        w.end(True)
        for episode_id, success in zip(ids, outcomes):
            w.begin("rollout", episode_id=episode_id)
            for t in range(2):
                w.add({"proprio": np.zeros(2, np.float32), "action": np.zeros(3, np.float32),
                       "reward": np.float32(-1), "timestamp": float(t)})
            w.end(success)
    store.refresh()
    curve = online_curve(store, 2)
    assert [p["online_episodes"] for p in curve] == [2, 4, 5]
    assert [p["success"] for p in curve] == [0.5, 0.5, 1.0]
    critic = [sum(probation_arm(i) for i in ids[k:k + 2]) for k in (0, 2, 4)]
    assert [p["critic_arm_episodes"] for p in curve] == critic
    assert [p["critic_arm_episodes"] + p["policy_arm_episodes"] for p in curve] == [2, 2, 1]


def test_results_keep_one_run_per_seed_and_settings(tmp_path):
    path = tmp_path / "results.json"
    settings = {"config": CONFIG, "overrides": [], "episodes": 100, "eval_episodes": 100, "bc_steps": 1000,
                "demos": 20}
    # a run from before --config and --demos: the pixel session's, 20 demonstrations
    old = {k: v for k, v in settings.items() if k not in ("config", "demos")}
    path.write_text(json.dumps({"runs": [{"seed": 0, **old, "eval": {"tuned": 0.3}}]}))
    add_run(path, {"seed": 0, **settings, "eval": {"tuned": 0.5}})  # the same run: replaced
    add_run(path, {"seed": 1, **settings, "eval": {"tuned": 0.6}})
    add_run(path, {"seed": 0, **settings, "eval": {"tuned": 0.7}})  # seed 0 again: replaced
    add_run(path, {"seed": 0, **settings, "episodes": 50, "eval": {"tuned": 0.4}})  # other settings: kept beside
    add_run(path, {"seed": 0, **settings, "config": "configs/other.yaml", "eval": {"tuned": 0.2}})  # another config
    add_run(path, {"seed": 0, **settings, "demos": 100, "eval": {"tuned": 0.1}})  # other demonstrations
    runs = json.loads(path.read_text())["runs"]
    assert [(r["seed"], r["episodes"], r["config"], r["demos"], r["eval"]["tuned"]) for r in runs] == [
        (1, 100, CONFIG, 20, 0.6), (0, 100, CONFIG, 20, 0.7), (0, 50, CONFIG, 20, 0.4),
        (0, 100, "configs/other.yaml", 20, 0.2), (0, 100, CONFIG, 100, 0.1)]
