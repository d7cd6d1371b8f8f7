"""Simulation throughput per tabletop task: physics steps/s (state observations) and rendered frames/s
at 100x100 and 224x224 (one camera per frame), single process.

    python -m benchmarks.sim --json out.json [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from robot_parl.files import atomic_write
from robot_parl.robots.sim.tabletop import TASKS, TabletopEnv, mujoco  # mujoco as configured there (EGL)


def _rate(n: int, fn) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t)


def measure(task: str, steps: int) -> dict:
    env = TabletopEnv(task)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(env.action_space.low, env.action_space.high, (steps, 7)).astype(np.float32)
    it = iter(np.concatenate([actions] * 4))
    control = _rate(steps, lambda: env.step(next(it)))
    physics = _rate(steps * 10, lambda: mujoco.mj_step(env.model, env.data))
    out = {"physics_steps_per_s": physics, "control_steps_per_s": control, "substeps": env.substeps}
    for size in (100, 224):
        out[f"frames_per_s_{size}"] = _rate(steps, lambda s=size: env.render_camera("front", s, s))
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    results = {task: measure(task, args.steps) for task in TASKS}
    out = {"benchmark": "sim", "mujoco": mujoco.__version__, "gl": os.environ.get("MUJOCO_GL"),
           "tasks": results}
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), mode="w")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
