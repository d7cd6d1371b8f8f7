"""Running episodes on a batched environment: one seed per episode, slots refilled as episodes end.

The environment offers ``num_envs``, ``reset_one(i, seed)``, ``observation()`` and
``step(actions) -> (obs, rewards, terminated, truncated)`` without auto-reset. Observations are dicts
of numpy arrays with a leading env dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

ObsNp = dict[str, np.ndarray]
# obs -> (actions [M, A], candidates [M, N, A] or None)
ActFn = Callable[[ObsNp], tuple[np.ndarray, "torch.Tensor | None"]]


@dataclass
class Rollout:
    """One finished episode: T actions, T + 1 observations, the candidates drawn at each observation."""

    seed: int
    obs: ObsNp  # each [T + 1, ...]
    actions: np.ndarray  # [T, A]
    rewards: np.ndarray  # [T]
    terminated: bool
    candidates: torch.Tensor | None  # [T + 1, N, A]

    @property
    def success(self) -> bool:
        return self.terminated

    def __len__(self) -> int:
        return len(self.actions)


def _take(obs: ObsNp, i: int) -> ObsNp:
    return {k: v[i] for k, v in obs.items()}


def run_episodes(env, seeds: Sequence[int], act: ActFn,
                 final_candidates: Callable[[ObsNp], torch.Tensor] | None = None,
                 on_episode: Callable[[Rollout], None] | None = None,
                 on_start: Callable[[int, int], None] | None = None) -> list[Rollout]:
    """Run one episode per seed; returns them in the order they finished.

    ``final_candidates`` draws candidates at each episode's last observation (needed for TD targets
    of truncated episodes); ``on_episode`` sees each episode as it ends, ``on_start`` (env index, seed) each as
    it starts, before its first action.
    """
    queue = list(seeds)[::-1]
    m = env.num_envs
    slots: list[dict | None] = [None] * m

    def start(i: int) -> None:
        if queue:
            seed = queue.pop()
            env.reset_one(i, seed)
            if on_start is not None:
                on_start(i, seed)
            slots[i] = {"seed": seed, "obs": [], "actions": [], "rewards": [], "candidates": []}
        else:
            slots[i] = None

    for i in range(m):
        start(i)
    finished: list[Rollout] = []
    obs = env.observation()
    action_dim = len(env.action_low)
    while any(s is not None for s in slots):
        actions, candidates = act(obs)
        active = np.array([s is not None for s in slots])
        actions = np.where(active[:, None], actions, 0.0).astype(np.float32)
        next_obs, rewards, terminated, truncated = env.step(actions.reshape(m, action_dim))
        ended = [i for i in range(m) if slots[i] is not None and (terminated[i] or truncated[i])]
        final = None
        if ended and final_candidates is not None:
            final = final_candidates({k: v[ended] for k, v in next_obs.items()})
        for i, slot in enumerate(slots):
            if slot is None:
                continue
            slot["obs"].append(_take(obs, i))
            slot["actions"].append(actions[i])
            slot["rewards"].append(rewards[i])
            if candidates is not None:
                slot["candidates"].append(candidates[i])
        for j, i in enumerate(ended):
            slot = slots[i]
            slot["obs"].append(_take(next_obs, i))
            if final is not None:
                slot["candidates"].append(final[j])
            rollout = Rollout(
                seed=slot["seed"],
                obs={k: np.stack([o[k] for o in slot["obs"]]) for k in next_obs},
                actions=np.stack(slot["actions"]),
                rewards=np.asarray(slot["rewards"], dtype=np.float32),
                terminated=bool(terminated[i]),
                candidates=torch.stack(slot["candidates"]) if final is not None else None,
            )
            finished.append(rollout)
            if on_episode is not None:
                on_episode(rollout)
            start(i)
        obs = env.observation()
    return finished


def success_rate(env, seeds: Sequence[int], act: ActFn) -> float:
    """Share of the seeded episodes that succeed."""
    rollouts = run_episodes(env, seeds, act)
    return sum(r.success for r in rollouts) / len(rollouts)
