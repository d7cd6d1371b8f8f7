"""The online update schedule: how many critic and distillation updates the data seen so far has earned.

One meaning per knob (``ScheduleConfig``): ``critic_utd`` critic updates and ``distill_utd`` distillation updates
per online environment step, once ``warmup_episodes`` online episodes are in. An in-process run trains what is
owed after each episode; the learner process trains what is owed as data arrives, one update at a time, and never
runs ahead of the data; ``min_critic_utd`` is what an actor waits for between episodes when the learner falls behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from robot_parl.rl.config import ScheduleConfig


@dataclass(frozen=True)
class Owed:
    critic: int
    distill: int


def owed_updates(cfg: ScheduleConfig, counters: dict[str, int]) -> Owed:
    """Updates owed by an agent with these counters (online episodes and steps, online critic and distill updates,
    distillation waived while the critic was not trusted)."""
    if counters["online_episodes"] < cfg.warmup_episodes:
        return Owed(0, 0)
    steps = counters["online_env_steps"]
    # the small tolerance keeps 0.1 x 30 steps at 3 updates, not 2 (the float product is 2.9999...)
    critic = math.floor(steps * cfg.critic_utd + 1e-9) - counters["online_critic_updates"]
    distill = math.floor(steps * cfg.distill_utd + 1e-9) - counters["distill_updates"] - counters["distill_waived"]
    return Owed(max(critic, 0), max(distill, 0))


def update_rates(counters: dict[str, int]) -> dict[str, float]:
    """The update-to-data ratios so far: online critic and distillation updates per online environment step."""
    steps = max(counters["online_env_steps"], 1)
    return {"critic_utd": counters["online_critic_updates"] / steps, "distill_utd": counters["distill_updates"] / steps}
