"""Episode store and replay throughput, as ratios against what the rest of the system needs.

- replay: batches of 256 transitions with 100x100 images sampled from the in-memory replay (fed from
  an episode store) per second, divided by the learner steps per second that consume them (one Cal-QL
  critic step with the default ResNet-18 encoder at batch 256, on this machine). Goal: >= 10.
- append: frames per second the store's writer sustains for 2 cameras at 640x480 plus proprio and
  action, committed as episodes, divided by a 30 fps camera. Goal: > 1 with headroom.

    python -m benchmarks.replay --json out.json [--frames 150] [--learner-steps 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_parl.data.episode_store import EpisodeStore, KeySpec, rl_schema
from robot_parl.files import atomic_write
from robot_parl.models.base import ObsSpec
from robot_parl.models.gaussian import GaussianConfig, GaussianPolicy
from robot_parl.rl.agent import ParlAgent
from robot_parl.rl.config import ParlConfig
from robot_parl.rl.critic import QEnsemble
from robot_parl.rl.store_episodes import StoreFeed, write_episode

BATCH = 256
ACTION_DIM = 7


def camera_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Camera-like frames (smooth shading, a moving object, sensor noise): they compress like real ones,
    unlike pure noise (incompressible) or constants (free)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 // width, y * 200 // height, np.full_like(x, 90)], -1).astype(np.int16)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frame = base.copy()
        cy, cx = int(height * (0.3 + 0.4 * np.sin(i / 9))), int(width * (0.3 + 0.4 * np.cos(i / 7)))
        frame[max(cy - 20, 0):cy + 20, max(cx - 20, 0):cx + 20] = (220, 40, 40)
        frame += rng.integers(-4, 5, frame.shape, dtype=np.int16)
        frames[i] = np.clip(frame, 0, 255)
    return frames


def append_throughput(root: Path, frames: int, episode_len: int = 50) -> dict:
    """2 cameras at 640x480: frames/s through EpisodeWriter.add and end (the commit)."""
    camera = KeySpec("uint8", (480, 640, 3))
    schema = rl_schema({"images/front": camera, "images/wrist": camera, "proprio": KeySpec("float32", (7,))},
                       ACTION_DIM)
    store = EpisodeStore.create(root / "append", schema)
    images = camera_frames(64, 480, 640)
    started = time.perf_counter()
    with store.writer("benchmark") as writer:
        for i in range(frames):
            if i % episode_len == 0:
                writer.begin("teleop")
            writer.add({"images/front": images[i % 64], "images/wrist": images[(i + 7) % 64],
                        "proprio": np.zeros(7, np.float32), "action": np.zeros(ACTION_DIM, np.float32),
                        "reward": np.float32(-1), "timestamp": i / 30.0})
            if i % episode_len == episode_len - 1 or i == frames - 1:
                writer.end(False)
    seconds = time.perf_counter() - started
    on_disk = sum(f.stat().st_size for f in (root / "append").rglob("*") if f.is_file())
    fps = frames / seconds
    return {"frames": frames, "seconds": seconds, "frames_per_s": fps, "realtime_ratio_30fps": fps / 30.0,
            "bytes_per_frame_on_disk": on_disk / frames, "raw_bytes_per_frame": 2 * 480 * 640 * 3}


def _agent() -> ParlAgent:
    spec = ObsSpec(proprio_dim=4, cameras=("front",))
    cfg = ParlConfig()
    cfg.critic.batch_size = BATCH
    policy = GaussianPolicy(spec, ACTION_DIM, GaussianConfig())
    low, high = -torch.ones(ACTION_DIM), torch.ones(ACTION_DIM)
    return ParlAgent(policy, QEnsemble(spec, ACTION_DIM, cfg.critic), cfg, low, high)


def replay_vs_learner(root: Path, episodes: int, learner_steps: int) -> dict:
    """Batches of 256 from replay per second, against learner steps per second at the same batch."""
    agent = _agent()
    n = agent.cfg.num_samples
    store = EpisodeStore.create(root / "replay", rl_schema({"images/front": KeySpec("uint8", (100, 100, 3)),
                                                            "proprio": KeySpec("float32", (4,))}, ACTION_DIM, n))
    t = 50
    images = camera_frames(t + 1, 100, 100)
    rng = np.random.default_rng(0)
    with store.writer("benchmark") as writer:
        for i in range(episodes):
            obs = {"images/front": images, "proprio": rng.standard_normal((t + 1, 4)).astype(np.float32)}
            candidates = torch.rand(t + 1, n, ACTION_DIM) * 2 - 1
            write_episode(writer, obs, rng.uniform(-1, 1, (t, ACTION_DIM)).astype(np.float32),
                          -np.ones(t, np.float32), False, "rollout" if i % 2 else "teleop", candidates)
    started = time.perf_counter()
    for episode, online in StoreFeed(store, ["images/front", "proprio"]).new_episodes():
        agent.add_episode(episode, online)
    ingest_s = time.perf_counter() - started
    transitions = len(agent.replay)

    def sample():
        return agent.replay.sample(BATCH, 0.5, agent.generator)

    sample()
    reps = 50
    started = time.perf_counter()
    for _ in range(reps):
        sample()
    batches_per_s = reps / (time.perf_counter() - started)
    agent.critic_update()  # warm-up
    started = time.perf_counter()
    for _ in range(learner_steps):
        agent.critic_update()
    learner_steps_per_s = learner_steps / (time.perf_counter() - started)
    return {"transitions": transitions, "ingest_transitions_per_s": transitions / ingest_s,
            "replay_batches_per_s": batches_per_s, "learner_steps_per_s": learner_steps_per_s,
            "ratio_replay_to_learner": batches_per_s / learner_steps_per_s,
            "learner": "Cal-QL critic step, ResNet-18 (GroupNorm) encoder, 100x100, batch 256, "
                       f"{torch.get_num_threads()} torch threads"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--frames", type=int, default=150, help="frames appended (2 cameras at 640x480)")
    parser.add_argument("--episodes", type=int, default=40, help="episodes of 50 steps in replay")
    parser.add_argument("--learner-steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {"benchmark": "replay", "batch": BATCH,
               "append": append_throughput(Path(tmp), args.frames),
               "replay": replay_vs_learner(Path(tmp), args.episodes, args.learner_steps)}
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), mode="w")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
