"""PA-RL on the simulated pick task from pixels through the robot's own commands and processes, end to end:

1. ``robot-parl collect``: noisy scripted demonstrations on a simulated robot side;
2. ``robot-parl pretrain``: BC of the diffusion policy and the offline critic (the learner's first checkpoint);
3. ``robot-parl finetune``: a session (sim robot side, learner and actor as processes over loopback zenoh);
4. ``robot-parl eval``: the pretrained and the fine-tuned policy, alone and with the final critic, on layouts
   neither the demonstrations nor the session saw.

The numbers are the commands' own: the eval's results.json and the learner's episode store (every online episode,
its outcome and its probation arm). The session's settings are ``configs/finetune-pick-pixels.yaml``; dotted
overrides go to every command (``actor.device=cuda learner.device=cuda`` on a GPU machine).

    python -m benchmarks.session_pick --json out.json [--seed 0] [--episodes 100] [--eval-episodes 100] [overrides]

Each call adds its run to ``--json`` (a run of the same seed and settings there is replaced), so seeds can be run one
call at a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.files import atomic_write
from robot_parl.rl.trust import probation_arm
from robot_parl.transport.session import free_loopback_endpoints

CONFIG = "configs/finetune-pick-pixels.yaml"
CAMERAS = "cameras=[{name: front, width: 64, height: 64}, {name: wrist, width: 64, height: 64}]"
EXPERT = ["noise=0.3", "hesitation=0.1", "missed_grasp=0.2"]  # the in-process runs' noisy demonstrations
# Layouts: the simulated robot side numbers its layouts from a seed, one per episode. Demonstrations, the session
# and the evaluation start far apart so no layout is seen twice.
DEMO_SEED, EVAL_SEED = 100_000, 1_000_000
# what makes two runs the same run
SETTINGS = ("config", "seed", "overrides", "episodes", "eval_episodes", "bc_steps", "demos")


def cli(args: list[str], log: Path) -> float:
    """Run one robot-parl command (its output appended to ``log``); returns its seconds, exits on failure."""
    started = time.monotonic()
    with open(log, "a") as out:
        code = subprocess.call([sys.executable, "-m", "robot_parl.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"robot-parl {args[0]} exited with {code}; see {log}")
    return round(time.monotonic() - started, 1)


def online_curve(store: EpisodeStore, every: int) -> list[dict]:
    """Per block of ``every`` online episodes: success acting on the critic's choice and on the policy's sample
    (the probation arms while the critic was on probation, rl/trust.py; every episode acts on the critic after)."""
    rollouts = [e for e in store.episodes() if e.source == "rollout"]
    curve = []
    for start in range(0, len(rollouts), every):
        block = rollouts[start:start + every]
        point = {"online_episodes": start + len(block), "success": sum(e.success for e in block) / len(block)}
        for name, episodes in (("critic_arm", [e for e in block if probation_arm(e.episode_id)]),
                               ("policy_arm", [e for e in block if not probation_arm(e.episode_id)])):
            point[f"{name}_episodes"] = len(episodes)
        curve.append(point)
    return curve


def session_args(out: Path, seed: int, overrides: list[str], tiny_vla: bool) -> list[str]:
    """What every command of a run gets after its own arguments: its options, then the dotted overrides."""
    robot, learner = free_loopback_endpoints(2)
    # a session of its own on free ports: benchmark runs (and sessions of yours) side by side do not meet
    link = [f"link.session=bench-{out.name}-{seed}", f"link.robot_endpoint={robot}", f"link.learner_endpoint={learner}"]
    # options first: an option after the dotted overrides would end them for argparse
    return [*["--tiny-vla"] * tiny_vla, f"seed={seed}", f"learner.offline_store={out / 'demos'}", *link, *overrides]


def run(out: Path, config: str, seed: int, episodes: int, eval_episodes: int, bc_steps: int, bc_batch_size: int,
        overrides: list[str], demos: int = 20, tiny_vla: bool = False) -> dict:
    """The four commands in ``out``; returns the results."""
    log = out / "commands.log"
    sets = session_args(out, seed, overrides, tiny_vla)
    seconds = {}
    # Demonstrations and the pretrained checkpoint already in ``out`` are used as they are (another run's, copied
    # there: two sessions that differ in one setting start from the same pretraining).
    if not (out / "demos" / "zarr.json").is_file():
        seconds["collect"] = cli(["collect", "--sim", "pick", "--device", "expert", "--episodes", str(demos),
                                  "--horizon", "60", "--seed", str(DEMO_SEED + seed * 1000), "--store",
                                  str(out / "demos"), CAMERAS, "--expert", *EXPERT], log)
    checkpoints = out / "learner" / "checkpoints"
    if not (checkpoints / "pretrained").is_dir():
        seconds["pretrain"] = cli(["pretrain", "--config", config, "--out", str(out / "learner"), "--bc-steps",
                                   str(bc_steps), "--bc-batch-size", str(bc_batch_size), *sets], log)
    seconds["finetune"] = cli(["finetune", "--config", config, "--out", str(out), *sets,
                               f"actor.episodes={episodes}"], log)
    tuned = checkpoints / (checkpoints / "latest").read_text().strip()
    seconds["eval"] = cli(["eval", "--config", config, "--out", str(out / "eval"), "--episodes", str(eval_episodes),
                           "--policy", f"base={checkpoints / 'pretrained'}", "--policy", f"tuned={tuned}",
                           "--critic", str(tuned), *sets, f"seed={EVAL_SEED + seed * 1000}"], log)
    results = json.loads((out / "eval" / "results.json").read_text())
    store = EpisodeStore(out / "learner" / "episodes")
    return {"seed": seed, "eval": {mode: r["success_rate"] for mode, r in results["modes"].items()},
            "eval_detail": results, "online": online_curve(store, 25), "seconds": seconds,
            "session": json.loads((out / "summary.json").read_text())}


def add_run(path: Path, result: dict) -> None:
    """Write ``result`` into the results file at ``path`` beside its other runs, replacing one of the same seed and
    settings."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    for r in runs:
        r.setdefault("config", CONFIG)  # runs from before --config had the pixel session's
        r.setdefault("demos", 20)  # and before --demos, 20 demonstrations
    runs = [r for r in runs if any(r.get(k) != result[k] for k in SETTINGS)] + [result]
    out = {"benchmark": "session_pick", "runs": runs}
    atomic_write(path, lambda f: f.write(json.dumps(out, indent=1)), mode="w")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=100, help="online episodes of the session")
    p.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes per policy and mode")
    p.add_argument("--config", default=CONFIG, help="the session's config (every command reads it)")
    p.add_argument("--demos", type=int, default=20, help="scripted demonstrations to collect")
    p.add_argument("--bc-steps", type=int, default=1000)
    p.add_argument("--bc-batch-size", type=int, default=128)
    p.add_argument("--tiny-vla", action="store_true", help="write the tiny random VLA a config names if it is missing")
    p.add_argument("--keep", help="keep the session's files in this directory (default: a temporary one)")
    p.add_argument("overrides", nargs="*", help="dotted FinetuneConfig overrides for every command")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        result = run(out, args.config, args.seed, args.episodes, args.eval_episodes, args.bc_steps,
                     args.bc_batch_size, args.overrides, args.demos, args.tiny_vla)
    result.update(config=args.config, overrides=args.overrides, episodes=args.episodes,
                  eval_episodes=args.eval_episodes, bc_steps=args.bc_steps, demos=args.demos,
                  bc_batch_size=args.bc_batch_size)
    add_run(Path(args.json), result)
    print(json.dumps({k: result[k] for k in ("eval", "online", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
