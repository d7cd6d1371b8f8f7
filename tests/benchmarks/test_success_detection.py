"""The success-detection benchmark's plumbing on a tiny budget: episodes recorded as an operator ends them (a
success a few steps after the simulator said so), a classifier trained and checked, the goal stated per metric."""

import numpy as np

from benchmarks.success_detection import CLUMSY, DEMO, record, run
from robot_parl import typed_config
from robot_parl.models.success import SuccessClassifier
from robot_parl.robots.sim.tabletop import LIFT_HEIGHT, TabletopEnv
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.success import SuccessTrainConfig


def test_episodes_end_linger_steps_after_success(tmp_path):
    store = record(tmp_path / "demos", [0, 1], DEMO, "sim", linger=2)
    env = TabletopEnv("pick", "state")
    for info, seed in zip(store.episodes(), [0, 1]):
        assert info.success and info.source == "sim"
        # replaying the stored actions: the cube is up for exactly the last 3 frames (the first success + 2)
        env.reset(seed=seed)
        lifted = [env.cube_pos[2] >= LIFT_HEIGHT]
        for action in store.episode(info.index, ["action"])["action"][:-1]:
            env.step(action)
            lifted.append(env.cube_pos[2] >= LIFT_HEIGHT)
        assert lifted[-3:] == [True] * 3 and not any(lifted[:-3])
        assert store.episode(info.index, ["reward"])["reward"][-2] == 0.0


def test_a_tiny_run_reports_precision_recall_and_goals(tmp_path):
    cfg = SuccessTrainConfig(steps=20, positive_frames=3, negative_gap=5)
    saved = tmp_path / "classifier.safetensors"
    result = run(tmp_path, 2, 10, 6, cfg, linger=2, save=str(saved))  # 10 clumsy rollouts: both outcomes
    held = result["held_out"]
    assert held["episodes"] == 6 and 0 <= held["successes"] <= 6
    assert result["goal_precision"] == ((held["precision"] or 0) >= 0.95)
    assert result["training"]["train_episodes"] + result["training"]["holdout_episodes"] == 12
    assert all(d["stored"] != d["classifier"] for d in result["disagreements"])
    assert np.isfinite(result["seconds"]) and CLUMSY.missed_grasp > 0
    # the saved classifier is the one checked, and fits the pixel session's robot (configs/finetune-pick-pixels.yaml)
    classifier = SuccessClassifier.load(saved)
    assert classifier.version == result["training"]["version"]
    session = typed_config.load(FinetuneConfig, "configs/finetune-pick-pixels.yaml")
    classifier.check_fits(session.spec().observation_keys())
