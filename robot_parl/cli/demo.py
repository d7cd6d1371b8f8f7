"""`robot-parl demo`: BC -> offline critic -> online PA-RL on a simulated task, with progress and a report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from robot_parl.cli.common import ensure_tiny_vla

DEMO_LINE_EVERY_S = 30.0  # without a terminal, the demo prints a progress line per phase this often


def _acting(success: float, trusted: bool) -> str:
    """How the agent acted in an evaluation: on the critic's choice, or on the policy's sample while the critic is
    on probation (rl/trust.py), which a reader would otherwise take for the critic's result."""
    return f"policy + critic {success:.1%}" if trusted else f"critic on probation, policy's sample {success:.1%}"


def add_parser(sub) -> None:
    """Register the command's parser."""
    demo = sub.add_parser("demo", help="BC -> offline critic -> online PA-RL on a simulated task, with a report")
    demo.add_argument("--config", help="YAML config (LocalRunConfig); defaults are embedded")
    demo.add_argument("--out", default="runs/demo", help="output directory (config, checkpoints, summary, plot)")
    demo.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    demo.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    demo.add_argument("--tiny-vla", action="store_true",
                      help="policy.kind=vla: write a tiny random VLA at the card's checkpoint path if none is there")
    demo.add_argument("--env", help="the environment (env=...): point_reach, pick, place, stack, a gymnasium id or "
                                    "module:EnvId (give its expert as gym.expert=module:function, or --demos)")
    demo.add_argument("--demos", help="demonstrations (demos.source=...): an episode store, a LeRobot v3 dataset or "
                                      "an .npz of arrays (see robot_parl/data/demo_files.py)")
    demo.add_argument("overrides", nargs="*",
                      help="dotted overrides, e.g. online.episodes=100 policy.kind=autoregressive")
    demo.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robot_parl import typed_config
    from robot_parl.eval.curves import plot_success_curves
    from robot_parl.files import atomic_write
    from robot_parl.runtime.local_run import LocalRun, LocalRunConfig
    from robot_parl.typed_config import ConfigError

    torch.set_num_threads(args.threads)
    console = Console()
    flags = [f"env={args.env}"] * bool(args.env) + [f"demos.source={args.demos}"] * bool(args.demos)
    cfg = typed_config.load(LocalRunConfig, args.config, [*flags, *args.overrides])
    out = Path(args.out)
    if not args.resume and (out / "episodes" / "zarr.json").exists():
        raise ConfigError("", f"{out} already holds a run: continue it with --resume, or give another --out")
    if args.tiny_vla:
        ensure_tiny_vla(cfg, console)
    console.print(f"[bold]robot-parl demo[/]: PA-RL on {cfg.env} with a {cfg.policy.kind} policy -> {out}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        tasks: dict[str, int] = {}
        said: dict[str, float] = {}  # when each phase last printed a line (bars draw only on a terminal)

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)
            now = time.monotonic()
            due = now - said.get(phase, -DEMO_LINE_EVERY_S) >= DEMO_LINE_EVERY_S
            if not console.is_terminal and (due or done == total):
                said[phase] = now
                console.print(f"{phase}: {done}/{total}")

        session = LocalRun(cfg, out, log=progress.console.print)
        if args.resume and session.resume():
            progress.console.print(f"resumed at {session.agent.counters['online_episodes']} online episodes")
            pre = json.loads((out / "pretrain.json").read_text())
        else:
            pre = session.pretrain(report)
            atomic_write(out / "pretrain.json", lambda f: f.write(json.dumps(pre)), mode="w")
        curve = session.finetune(report)
    summary = {
        "task": cfg.env, "policy": cfg.policy.kind, "method": cfg.method, "seed": cfg.seed,
        "success_before": {"policy": pre["bc_success"], "agent": pre["offline_agent_success"]},
        "success_after": {"policy": curve[-1]["policy_success"], "agent": curve[-1]["agent_success"]},
        "pretrain": pre, "curve": curve,
    }
    atomic_write(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2)), mode="w")
    policy_alone = [{**p, "agent_success": p["policy_success"]} for p in curve]
    plot_success_curves({f"{cfg.policy.kind} policy": {"policy + critic": [curve], "policy alone": [policy_alone]}},
                        out / "learning_curve.png", "PA-RL fine-tuning")
    console.print(f"success before: policy {pre['bc_success']:.1%}, "
                  f"{_acting(pre['offline_agent_success'], curve[0]['critic_trusted'])}")
    console.print(f"success after:  policy {curve[-1]['policy_success']:.1%}, "
                  f"{_acting(curve[-1]['agent_success'], curve[-1]['critic_trusted'])}")
    console.print(f"wrote {out / 'summary.json'} and {out / 'learning_curve.png'}")
    return 0
