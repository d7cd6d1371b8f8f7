"""Learned success detection on the sim's pick task from 64 px images: a classifier (robot_parl/runtime/success.py)
trained on 20 scripted demonstrations and 50 labelled rollouts, then checked on 200 held-out episodes whose outcomes
come from the simulator: precision and recall of the episode outcomes it gives (goal: both >= 95%).

Episodes are recorded as an operator ends them: a successful one ``--linger`` control steps after the task
succeeded (the frames from success on show the cube held up), a failed one at the horizon. Demonstrations are the
scripted expert with a little noise; rollouts and held-out episodes the same expert made clumsy (noise, hesitations
and missed grasps: about half fail, most after closing the gripper beside the cube and lifting it empty).

    python -m benchmarks.success_detection --json benchmarks/results/success_detection.json [--quick] [--save FILE]

``--save`` keeps the trained classifier (for a session's ``actor.classifier``: its cameras and sizes are those of
configs/finetune-pick-pixels.yaml).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_parl.data.episode_store import EpisodeStore, KeySpec, Source, rl_schema
from robot_parl.files import atomic_write
from robot_parl.robots.sim.tabletop import PROPRIO_DIM, TabletopEnv
from robot_parl.robots.sim.tabletop_expert import TabletopExpert, TabletopExpertConfig
from robot_parl.runtime.success import SuccessTrainConfig, check_store, outcome_metrics, train_success

DEMO = TabletopExpertConfig(noise=0.2, hesitation=0.05, missed_grasp=0.0)
CLUMSY = TabletopExpertConfig(noise=0.5, hesitation=0.15, missed_grasp=0.5)
GOAL = 0.95


def record(path: Path, seeds: list[int], expert_cfg: TabletopExpertConfig, source: Source, image_size: int = 64,
           cameras: tuple[str, ...] = ("front", "wrist"), horizon: int = 60, linger: int = 4) -> EpisodeStore:
    """Scripted pick episodes into a new store, one per seed (frame t: s_t, a_t, r_t; the last frame s_T)."""
    env = TabletopEnv("pick", "images", image_size, cameras, horizon=horizon + linger)
    keys = {f"images/{c}": KeySpec("uint8", (image_size, image_size, 3)) for c in cameras}
    store = EpisodeStore.create(path, rl_schema({**keys, "proprio": KeySpec("float32", (PROPRIO_DIM,))}, 7))
    with store.writer("benchmarks.success_detection") as writer:
        for seed in seeds:
            expert = TabletopExpert("pick", expert_cfg, seed)
            obs, _ = env.reset(seed=seed)
            writer.begin(source)
            succeeded_at, t, done = None, 0, False
            while not done:
                action = expert.act(env.state())
                shown = obs
                obs, _, success, _, _ = env.step(action)
                succeeded_at = t if success and succeeded_at is None else succeeded_at
                done = t - succeeded_at >= linger if succeeded_at is not None else t + 1 >= horizon
                writer.add(_frame(shown, action, 0.0 if done and succeeded_at is not None else -1.0, t))
                t += 1
            writer.add(_frame(obs, np.zeros(7, np.float32), 0.0, t))
            writer.end(succeeded_at is not None)
    env.close()
    store.refresh()
    return store


def _frame(obs: dict, action: np.ndarray, reward: float, t: int) -> dict:
    return {**{f"images/{c}": image for c, image in obs["images"].items()}, "proprio": obs["proprio"],
            "action": np.asarray(action, np.float32), "reward": np.float32(reward), "timestamp": 0.1 * t}


def run(out: Path, demos: int, rollouts: int, held_out: int, cfg: SuccessTrainConfig, linger: int,
        save: str | None = None) -> dict:
    """Record, train, check (and with ``save``, write the classifier there); returns the results."""
    started = time.monotonic()
    train = [record(out / "demos", list(range(demos)), DEMO, "sim", linger=linger),
             record(out / "rollouts", [10_000 + i for i in range(rollouts)], CLUMSY, "rollout", linger=linger)]
    test = record(out / "held_out", [100_000 + i for i in range(held_out)], CLUMSY, "rollout", linger=linger)
    recorded = time.monotonic()
    classifier, report = train_success(train, cfg)
    if save:
        classifier.save(save)
    records = check_store(classifier, test)
    metrics = outcome_metrics([r["classifier"] for r in records], [r["stored"] for r in records])
    return {"benchmark": "success_detection", "task": "pick", "cameras": list(classifier.cameras),
            "image_size": cfg.image_size, "linger": linger, "config": vars(cfg) | {"cameras": list(cfg.cameras)},
            "train_episodes": {"demos": demos, "rollouts": rollouts,
                               "rollout_successes": sum(e.success for e in train[1].episodes())},
            "held_out": {**metrics, "successes": sum(r["stored"] for r in records)},
            "training": report, "goal_precision": (metrics["precision"] or 0) >= GOAL,
            "goal_recall": (metrics["recall"] or 0) >= GOAL,
            "disagreements": [r for r in records if r["stored"] != r["classifier"]],
            "record_seconds": round(recorded - started, 1), "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True)
    p.add_argument("--quick", action="store_true", help="a small smoke run (not the benchmark's numbers)")
    p.add_argument("--linger", type=int, default=4)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--save", help="write the trained classifier here (.safetensors)")
    args = p.parse_args()
    torch.set_num_threads(1)
    sizes = (4, 8, 12) if args.quick else (20, 50, 200)
    # the last linger + 1 frames of a success show the cube held up; the two before it are left out
    cfg = SuccessTrainConfig(steps=50 if args.quick else args.steps, positive_frames=args.linger + 1,
                             negative_gap=args.linger + 3)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), *sizes, cfg, args.linger, args.save)
    atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=1)), mode="w")
    print(json.dumps({k: result[k] for k in ("held_out", "goal_precision", "goal_recall", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
