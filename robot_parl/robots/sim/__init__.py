"""Simulated robots: the MuJoCo tabletop tasks (tabletop.py) with scripted experts and their robot-side adapter,
a numpy point mass (point_reach.py), and a kinematic stand-in arm.

Importing this package registers the tabletop tasks with gymnasium (``robot_parl/Reach-v0`` ... ``Stack-v0``),
as gymnasium plugin packages do; MuJoCo is imported only when one of them is made.
"""

from __future__ import annotations

import gymnasium as gym

TASKS = ("reach", "push", "pick", "place", "stack")


def register_envs() -> None:
    """Register ``robot_parl/<Task>-v0`` for every tabletop task (idempotent)."""
    for task in TASKS:
        env_id = f"robot_parl/{task.capitalize()}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="robot_parl.robots.sim.tabletop:TabletopEnv", kwargs={"task": task},
                         disable_env_checker=True)


register_envs()
