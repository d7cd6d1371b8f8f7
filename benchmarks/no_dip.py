"""Does PA-RL ever make the robot worse? Per task, policy class and seed: BC from noisy demonstrations, the offline
critic, then online PA-RL with an evaluation every ``online.eval_every`` episodes, acting with the critic and with
the policy alone. The JSON records each curve's lowest point against the base (the BC policy alone, on the same
layouts) and whether the mean over seeds ever falls more than 5 points below it.

    python -m benchmarks.no_dip --json out.json --tasks pick place --seeds 0 1 2 [overrides...]

Tasks: the MuJoCo tabletop tasks and ``line`` (benchmarks/line_env.py, a gymnasium environment with asymmetric
action bounds and a 150-step horizon that nothing in robot_parl knows about).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import learning_grid
from robot_parl import typed_config
from robot_parl.eval.curves import plot_success_curves
from robot_parl.files import atomic_write
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig

# The pick benchmark's settings (benchmarks/parl_sim.py) on every task, with a shorter online budget.
DEFAULTS = ["online.episodes=75", "online.eval_every=25", "online.eval_episodes=100", "parl.critic.cql_alpha=1.0",
            "parl.schedule.offline_steps=1500", "parl.schedule.critic_utd=4", "parl.critic.ensemble_size=2",
            "parl.num_samples=8"]
TASK_OVERRIDES = {"line": ["env=benchmarks.line_env:Line-v0", "gym.expert=benchmarks.line_env:noisy_expert",
                           "gym.horizon=150"]}


def run_one(task: str, kind: str, seed: int, overrides: list[str], out_dir: Path) -> dict:
    """Pretraining then online PA-RL for one task, policy class and seed."""
    env = TASK_OVERRIDES.get(task, [f"env={task}"])
    cfg = typed_config.load(LocalRunConfig, overrides=[f"seed={seed}", f"policy.kind={kind}", *env, *overrides])
    started = time.monotonic()
    run = LocalRun(cfg, out_dir, log=lambda line: print(f"   {task}/{kind}/{seed}: {line}", flush=True))
    pre = run.pretrain()
    curve = run.finetune()
    base = pre["bc_success"]
    return {"task": task, "policy": kind, "seed": seed, "pretrain": pre, "curve": curve, "base": base,
            "lowest_agent": min(p["agent_success"] for p in curve) - base,
            "lowest_policy": min(p["policy_success"] for p in curve[1:] or curve) - base,
            "minutes": round((time.monotonic() - started) / 60, 1)}


def summarize(runs: list[dict]) -> dict:
    """Per task and policy class: the seeds' mean base and curves, the lowest mean point against the base (acting
    with the critic, and the policy alone after the first online episodes), and whether it holds within 5 points."""
    summary: dict = {}
    for task, kind in dict.fromkeys((r["task"], r["policy"]) for r in runs):
        mine = [r for r in runs if (r["task"], r["policy"]) == (task, kind)]
        s = learning_grid.dip([r["curve"] for r in mine], [r["base"] for r in mine])
        summary[f"{task}/{kind}"] = {"seeds": [r["seed"] for r in mine], **s,
                                     "final_gain": round(s["agent"][-1] - s["base"], 4),
                                     "minutes_per_run": statistics.mean(r["minutes"] for r in mine)}
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", required=True)
    p.add_argument("--tasks", nargs="+", default=["pick", "place", "line"])
    p.add_argument("--policies", nargs="+", default=["diffusion", "autoregressive"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("overrides", nargs="*", help="dotted LocalRunConfig overrides")
    args = p.parse_args()
    overrides = [*DEFAULTS, *args.overrides]
    torch.set_num_threads(1)
    out_path = Path(args.json)
    old = json.loads(out_path.read_text()) if out_path.is_file() else {}
    runs = old.get("runs", []) if old.get("overrides") == overrides else []
    done = {(r["task"], r["policy"], r["seed"]) for r in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for kind in args.policies:
                for seed in args.seeds:
                    if (task, kind, seed) in done:
                        continue
                    print(f"== {task}, {kind}, seed {seed}", flush=True)
                    runs.append(run_one(task, kind, seed, overrides, Path(tmp) / f"{task}_{kind}_{seed}"))
                    text = json.dumps({"benchmark": "no_dip", "overrides": overrides, "summary": summarize(runs),
                                       "runs": runs}, indent=1)
                    atomic_write(out_path, lambda f, text=text: f.write(text), mode="w")
    panels: dict = {}
    for r in runs:
        panel = panels.setdefault(f"{r['task']}/{r['policy']}", {})
        panel.setdefault("agent", []).append(r["curve"])
        panel.setdefault("policy alone", []).append(
            [{**pt, "agent_success": pt["policy_success"]} for pt in r["curve"]])
    plot_success_curves(panels, out_path.with_suffix(".png"), "PA-RL against its base, per task")
    print(json.dumps(summarize(runs), indent=1))


if __name__ == "__main__":
    main()
