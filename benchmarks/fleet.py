"""A fleet of simulated robots against one learner, through `robot-parl finetune` (link.fleet, learner.ranks).

Each run starts 1, 2 or 4 simulated pick robots running in real time at a real robot's control rate (5 Hz), an actor
for each and one learner, with the pixel session's policy and critic (configs/finetune-pick-pixels.yaml). The
learner is asked for far more critic updates than it can make (``critic_utd`` 8) and the actors never wait for it
(``min_critic_utd`` 0), so the update rate it reaches is its capacity beside the fleet, and the robots' holds are
the actors' own. Reported per run, from the processes' own counters and logs:

- steps ingested per second (every robot's steps reaching the learner), learner critic updates per second and the
  update-to-data ratio it reached;
- weight-sync latency per actor (from the learner's announcement of a version to acting with it);
- robot idle: control periods a robot held for want of an action, per step it took; and the actors' waits for the
  learner between episodes.

One run repeats 2 robots with a 2-rank data-parallel learner (gloo). Every process shares this machine's cores, so
the rates are this machine's, not a learner GPU's; docs/fleet.md turns them into how many robots one learner serves.

    python -m benchmarks.fleet --json benchmarks/results/fleet.json [--episodes 4] [--horizon 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.files import atomic_write
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import free_loopback_endpoints

CONFIG = "configs/finetune-pick-pixels.yaml"
RUNS = ((1, 1), (2, 1), (4, 1), (2, 2))  # (robots, learner ranks)
CONTROL_HZ = 5.0
CAMERAS = "cameras=[{name: front, width: 64, height: 64}, {name: wrist, width: 64, height: 64}]"


def run(out: Path, robots: int, ranks: int, episodes: int, horizon: int) -> dict:
    """One `robot-parl finetune` of ``robots`` simulated robots and a learner of ``ranks`` ranks; its numbers."""
    learner_ep, *robot_eps = free_loopback_endpoints(1 + robots)
    names = [f"robot{i}" for i in range(robots)]
    fleet = ", ".join(f"{{name: {n}, endpoint: '{e}'}}" for n, e in zip(names, robot_eps))
    args = ["finetune", "--config", CONFIG, "--out", str(out), f"link.session=fleet-{out.name}",
            f"link.learner_endpoint={learner_ep}", f"link.fleet=[{fleet}]", f"learner.ranks={ranks}",
            "sim_realtime=true", f"robot_overrides=['{CAMERAS}', 'control_rate_hz={CONTROL_HZ}']",
            f"actor.episodes={episodes}", f"actor.horizon={horizon}", "actor.live_view=null",
            "parl.schedule.offline_steps=0", "parl.schedule.warmup_episodes=0", "parl.schedule.critic_utd=8",
            "parl.schedule.min_critic_utd=0", "parl.trust_min_z=0", "learner.publish_policy_every=5",
            "learner.publish_critic_every=10"]
    started = time.monotonic()
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo")  # the learner's ranks talk over loopback
    done = subprocess.run([sys.executable, "-c", ENTRY, *args], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"robot-parl finetune exited with {done.returncode}: {done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    learner = summary["learner"]
    store = EpisodeStore(out / "learner" / "episodes")
    episodes = store.episodes()
    steps = {n: sum(len(e) - 1 for e in episodes if e.robot == n) for n in names}  # frames: steps + 1
    stamps = [store.episode(e.index, ["timestamp"])["timestamp"] for e in episodes]  # the robots' clocks, s
    acting_s = max(t[-1] for t in stamps) - min(t[0] for t in stamps)  # every robot's first step to the last one
    training_s = max(e.wall_end for e in episodes) - min(e.wall_end for e in episodes)  # first commit to last
    updates, train_s = learner["agent"]["critic_updates"], learner["counters"]["train_ms"] / 1e3
    per_robot = {}
    for n in names:
        actor, side = summary[f"actor-{n}"], summary[f"robot-{n}"]
        missed = side["counters"].get("missed_deadline", 0)
        per_robot[n] = {"episodes": actor["episodes"], "steps": steps[n],
                        "weight_sync_ms": round(actor["latency_ms"].get("weight_sync", float("nan")), 1),
                        "held_periods": missed, "held_per_step": round(missed / max(steps[n], 1), 3),
                        "waited_for_learner_s": actor["counters"].get("waited_for_learner_ms", 0) / 1e3}
    total = sum(steps.values())
    return {"robots": robots, "learner_ranks": ranks, "wall_s": round(wall, 1), "acting_s": round(acting_s, 1),
            "steps": total, "steps_ingested_per_s": round(total / acting_s, 2),
            "critic_updates": updates, "distill_updates": learner["agent"]["distill_updates"],
            # the learner's own busy time: what one update pair costs beside the fleet, so its capacity
            "learner_busy_s": round(train_s, 1), "updates_per_busy_s": round(updates / train_s, 2),
            # over the time it had data, from the first commit to the last
            "critic_updates_per_s": round(updates / training_s, 2) if training_s else None,
            "update_to_data": round(updates / max(total, 1), 3), "per_robot": per_robot}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--episodes", type=int, default=4, help="episodes per robot")
    p.add_argument("--horizon", type=int, default=30, help="steps per episode (at 5 Hz: 6 s)")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        for robots, ranks in RUNS:
            result = run(Path(tmp) / f"r{robots}x{ranks}", robots, ranks, args.episodes, args.horizon)
            print(json.dumps(result), flush=True)
            results.append(result)
    out = {"benchmark": "fleet", "config": CONFIG, "control_rate_hz": CONTROL_HZ, "episodes_per_robot": args.episodes,
           "horizon": args.horizon, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "runs": results}
    atomic_write(Path(args.json), lambda f: f.write(json.dumps(out, indent=1)), mode="w")


if __name__ == "__main__":
    main()
