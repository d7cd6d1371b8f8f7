"""What the learning benchmarks share: their command line, the policy x seed grid, and the JSON + PNG output.

A grid takes CPU-hours on this kind of machine, so it is resumable: the results file is rewritten after every
(policy class, seed) run, and a later call with the same overrides keeps the runs the file already holds and
runs only the missing ones (e.g. one seed per session: ``--seeds 1``, then ``--seeds 2``). Runs made in parallel
processes (one per core, each with its own ``--json``) are combined with ``--merge``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from robot_parl import typed_config
from robot_parl.eval.curves import plot_success_curves
from robot_parl.files import atomic_write
from robot_parl.runtime.local_run import LocalRunConfig


def parser(description: str) -> argparse.ArgumentParser:
    """--json, --seeds, --policies, --quick and dotted LocalRunConfig overrides."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", required=True, help="where to write the results (a PNG goes next to it)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--policies", nargs="+", default=["diffusion", "autoregressive"])
    p.add_argument("--quick", action="store_true", help="one seed, one policy, a short budget (smoke run)")
    p.add_argument("--fresh", action="store_true", help="ignore the runs an existing --json file holds")
    p.add_argument("--merge", nargs="+", default=[], metavar="FILE",
                   help="results files of other processes, made with the same settings: their runs are kept too")
    p.add_argument("overrides", nargs="*", help="dotted LocalRunConfig overrides")
    return p


def previous_runs(path: str, **settings) -> list[dict]:
    """The runs an earlier results file at ``path`` holds, if its ``settings`` (fields of the file, e.g.
    ``overrides``) are the same as now; else none."""
    if not Path(path).exists():
        return []
    changed = _changed_settings(path, settings)
    if changed:
        print(f"{path} was made with other settings ({changed}): not resuming from it", flush=True)
        return []
    return list(json.loads(Path(path).read_text())["runs"])


def kept_runs(args: argparse.Namespace, **settings) -> list[dict]:
    """The runs a grid keeps: those of ``--json`` (unless ``--fresh``) and of every ``--merge`` file, one per
    (policy class, seed), the first seen. A merge file made with other settings is an error, not skipped."""
    runs = [] if args.fresh else previous_runs(args.json, **settings)
    for path in args.merge:
        if not Path(path).is_file():
            raise SystemExit(f"--merge {path}: no such results file")
        changed = _changed_settings(path, settings)
        if changed:
            raise SystemExit(f"--merge {path} was made with other settings: {changed} (expected {settings})")
        runs += json.loads(Path(path).read_text())["runs"]
    first: dict[tuple[str, int], dict] = {}
    for r in runs:
        first.setdefault((r["policy"], r["seed"]), r)
    return list(first.values())


def _changed_settings(path: str, settings: dict) -> dict:
    old = json.loads(Path(path).read_text())
    return {k: old.get(k) for k, v in settings.items() if old.get(k) != v}


def run_grid(policies: list[str], seeds: list[int], overrides: list[str], run: Callable[[LocalRunConfig, Path], dict],
             save: Callable[[list[dict], LocalRunConfig], None], previous: list[dict] = ()) -> list[dict]:
    """``run`` once per policy class and seed (1 CPU thread) that ``previous`` has no run of, calling
    ``save(all runs so far, config)`` after each and once at the end (so kept or merged runs are written even
    when nothing is left to run); returns all runs (``previous`` first)."""
    torch.set_num_threads(1)
    runs = list(previous)
    done = {(r["policy"], r["seed"]) for r in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in policies:
            for seed in seeds:
                cfg = typed_config.load(LocalRunConfig, overrides=[f"seed={seed}", f"policy.kind={kind}", *overrides])
                if (kind, seed) in done:
                    print(f"== {kind}, seed {seed}: kept from the results file", flush=True)
                    continue
                print(f"== {kind}, seed {seed}", flush=True)
                runs.append(run(cfg, Path(tmp) / f"{kind}_{seed}"))
                save(runs, cfg)
    if runs:
        save(runs, cfg)
    return runs


MAX_DIP = 0.05  # the most the seeds' mean may fall below the base at any evaluation point


def base_estimate(curve: list[dict], bc_success: float) -> float:
    """The BC policy's success on a curve's layouts from every evaluation of it there: right after BC, the policy
    alone at episode 0 and, while the critic is not trusted, the agent at 0 (it acts with the policy's first sample).
    Each alone carries one evaluation's sampling noise (about 5 points of standard error on 100 layouts, as large as
    the dip allowed); their mean carries less."""
    first = curve[0]
    evaluations = [bc_success, first["policy_success"]]
    if first.get("critic_trusted") is False:
        evaluations.append(first["agent_success"])
    return statistics.mean(evaluations)


def dip(curves: list[list[dict]], bc_successes: list[float]) -> dict:
    """The seeds' mean curves, acting with the critic and with the policy alone, against their mean base (the BC
    policy alone on the same layouts, :func:`base_estimate`): the lowest point of either (the policy alone from the
    first online episodes on, since at 0 it is the base itself) and whether it stays within MAX_DIP of the base."""
    points = min(len(c) for c in curves)
    base = statistics.mean(base_estimate(c, b) for c, b in zip(curves, bc_successes))
    agent = [statistics.mean(c[i]["agent_success"] for c in curves) for i in range(points)]
    policy = [statistics.mean(c[i]["policy_success"] for c in curves) for i in range(points)]
    low = min(min(agent), min(policy[1:] or policy)) - base
    return {"base": base, "agent": agent, "policy_alone": policy, "lowest_vs_base": round(low, 4),
            "goal_no_dip": low >= -MAX_DIP}


def episodes_to_reach(curve: list[dict], target: float) -> int | None:
    """The online episodes at the first evaluation whose success (acting as the method acts) reaches ``target``;
    None if none does."""
    return next((p["online_episodes"] for p in curve if p["agent_success"] >= target), None)


def write_results(path: str, out: dict, curve_methods: tuple[str, ...], title: str) -> None:
    """The JSON (``out`` holds "runs" and "summary") and a PNG: a panel per policy class, a line per method
    (mean success over the seeds, their range shaded)."""
    atomic_write(path, lambda f: f.write(json.dumps(out, indent=1)), mode="w")
    panels: dict[str, dict[str, list[list[dict]]]] = {}
    for r in out["runs"]:
        for m in curve_methods:
            panels.setdefault(r["policy"], {}).setdefault(m, []).append(r[m])
    plot_success_curves(panels, Path(path).with_suffix(".png"), title)
    print(json.dumps(out["summary"], indent=1))
