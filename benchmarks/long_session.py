"""A long online session on the simulated robot: does the learner's memory stay flat and its disk bounded?

`robot-parl finetune`'s processes (simulated pick robot side with two 64 px cameras, learner, actor with a small
Gaussian policy so that acting is cheap and the machine spends its time on the data path) run for ``--steps``
environment steps (default 36,000: two hours at 5 Hz), as fast as the machine allows. Every ``--every`` seconds
it samples the learner's resident memory, its replay size and the size of its checkpoint directory. With
``parl.schedule.online_capacity`` the replay stops growing once full, so the learner's memory should stop
growing there; with ``learner.keep_checkpoints`` the checkpoints' disk should stay bounded (the episode store
keeps every episode: that is the session's data, and grows by design). JSON and a PNG of the curves.

    python -m benchmarks.long_session --json benchmarks/results/long_session.json [--steps 36000]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from robot_parl import typed_config
from robot_parl.files import atomic_write
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.supervisor import Supervisor, Watch
from robot_parl.transport.session import free_loopback_endpoint, open_session

CAPACITY = 5000
HORIZON = 60
CAMERAS = "cameras=[{name: front, width: 64, height: 64}, {name: wrist, width: 64, height: 64}]"


def session_config(steps: int, capacity: int) -> FinetuneConfig:
    return typed_config.load(FinetuneConfig, overrides=[
        "sim=pick", f"robot_overrides=['{CAMERAS}']", "policy.kind=gaussian", "policy.gaussian.hidden_dims=[64]",
        "parl.num_samples=4", "parl.top_k=2", "parl.local_steps=1",
        "parl.critic.ensemble_size=2", "parl.critic.hidden_dims=[64]", "parl.critic.embedding_dim=64",
        "parl.critic.image_encoder=small_cnn", "parl.critic.image_size=64", "parl.critic.batch_size=32",
        "parl.schedule.offline_steps=0", "parl.schedule.critic_utd=0.1", "parl.schedule.distill_utd=0.02",
        f"parl.schedule.online_capacity={capacity}", "learner.keep_checkpoints=3", "learner.checkpoint_every_s=20",
        f"actor.episodes={math.ceil(steps / HORIZON)}", f"actor.horizon={HORIZON}", "actor.live_view=null",
        f"link.robot_endpoint={free_loopback_endpoint()}", f"link.learner_endpoint={free_loopback_endpoint()}",
        "link.session=long"])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def run(steps: int, capacity: int, every_s: float, out: Path) -> dict:
    cfg = session_config(steps, capacity)
    out.mkdir(parents=True, exist_ok=True)
    typed_config.save(cfg, out / "config.yaml")
    supervisor = Supervisor(cfg, out, threads=1)
    supervisor.print_every_s = 30.0
    stop = threading.Event()
    runner = threading.Thread(target=lambda: supervisor.run(stop), daemon=True)
    started = time.monotonic()
    runner.start()
    session = open_session(cfg.link.transport("actor", [], [cfg.link.learner_endpoint]))
    watch = Watch(session, cfg)
    samples = []
    try:
        while runner.is_alive():
            time.sleep(every_s)
            learner = supervisor.procs.get("learner")
            beat = watch.latest.get("learner")
            if learner is None or learner.poll() is not None or beat is None:
                continue
            samples.append({"seconds": round(time.monotonic() - started, 1),
                            "env_steps": beat.counters.get("online_env_steps", 0),
                            "learner_rss_mb": round(_rss_mb(learner.pid), 1),
                            "checkpoints_mb": round(_size_mb(out / "learner" / "checkpoints"), 1),
                            "checkpoints": len([d for d in (out / "learner" / "checkpoints").glob("update_*")]),
                            "store_mb": round(_size_mb(out / "learner" / "episodes"), 1),
                            "critic_updates": beat.counters.get("critic_updates", 0)})
            print(json.dumps(samples[-1]), flush=True)
    finally:
        stop.set()
        runner.join(300)
        watch.close()
        session.close()
    return {"steps_goal": steps, "online_capacity": capacity, "samples": samples,
            "seconds": round(time.monotonic() - started, 1)}


def summarize(result: dict) -> dict:
    """Memory growth while replay fills and once it is full (medians of the first and last thirds of each part:
    checkpoints briefly add their save buffers), and the checkpoints' largest footprint."""
    samples = result["samples"]
    capacity = result["online_capacity"]

    def growth_per_1k(part: list[dict]) -> float | None:
        third = len(part) // 3
        if third < 1:
            return None
        first, last = part[:third], part[-third:]
        steps = np.median([s["env_steps"] for s in last]) - np.median([s["env_steps"] for s in first])
        rss = np.median([s["learner_rss_mb"] for s in last]) - np.median([s["learner_rss_mb"] for s in first])
        return round(float(rss * 1000 / steps), 2) if steps else None

    filling = [s for s in samples if s["env_steps"] <= capacity]
    full = [s for s in samples if s["env_steps"] > capacity]
    return {"env_steps": samples[-1]["env_steps"] if samples else 0,
            "rss_mb_per_1k_steps_while_filling": growth_per_1k(filling),
            "rss_mb_per_1k_steps_once_full": growth_per_1k(full),
            "learner_rss_mb_median_once_full": round(float(np.median([s["learner_rss_mb"] for s in full])), 1)
            if full else None,
            "checkpoints_mb_max": max((s["checkpoints_mb"] for s in samples), default=None),
            "checkpoints_max": max((s["checkpoints"] for s in samples), default=None),
            "store_mb_last": samples[-1]["store_mb"] if samples else None}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    steps = [s["env_steps"] for s in samples]
    fig, (ram, disk) = plt.subplots(1, 2, figsize=(10, 3.5))
    ram.plot(steps, [s["learner_rss_mb"] for s in samples])
    ram.axvline(result["online_capacity"], color="grey", linestyle="--", label="replay full")
    ram.set(xlabel="environment steps", ylabel="learner RSS (MB)", title="learner memory")
    ram.legend()
    disk.plot(steps, [s["checkpoints_mb"] for s in samples], label="checkpoints")
    disk.plot(steps, [s["store_mb"] for s in samples], label="episode store")
    disk.set(xlabel="environment steps", ylabel="MB", title="disk")
    disk.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=36_000)
    parser.add_argument("--capacity", type=int, default=CAPACITY)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.steps, args.capacity, args.every, Path(tmp) / "session")
    result["summary"] = summarize(result)
    atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2)), mode="w")
    plot(result, args.json.with_suffix(".png"))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
