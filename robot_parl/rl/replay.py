"""In-memory replay of whole episodes, with offline/online mixing.

Episodes reach replay from the zarr episode store (rl/store_episodes.py). They are added
whole so Monte-Carlo returns (for Cal-QL) and n-step returns are computed once, at commit. Each transition keeps the N
base-policy candidates drawn at s and at s' with the policy version that drew them, so TD targets
and distillation reuse them instead of sampling the policy again; candidates older than a configured
number of versions are re-sampled with the current policy when they are next used. Each transition
keeps its episode's language instruction (an index into one list of distinct instructions), and batches
carry it as ``obs["instruction"]`` (a list of strings), so a VLA trains and resamples on the prompt it acted on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robot_parl.models.encoders import Obs, flatten_obs, unflatten_obs
from robot_parl.rl.calql import CriticBatch


@dataclass
class Episode:
    """One episode: T actions, T + 1 observations (the last is s_T), candidates at every observation."""

    obs: Obs  # each array [T + 1, ...]
    actions: torch.Tensor  # [T, A]
    rewards: torch.Tensor  # [T]
    terminated: bool  # the last transition ends in a terminal state (success)
    candidates: torch.Tensor  # [T + 1, N, A]
    policy_version: int = 0
    instruction: str = ""

    def __post_init__(self):
        t = self.actions.shape[0]
        if t == 0:
            raise ValueError("an episode needs at least one step")
        for key, value in flatten_obs(self.obs).items():
            if value.shape[0] != t + 1:
                raise ValueError(f"observation '{key}' has {value.shape[0]} entries, expected T + 1 = {t + 1}")
        if self.rewards.shape != (t,):
            raise ValueError(f"rewards must be [{t}], got {tuple(self.rewards.shape)}")
        if self.candidates.dim() != 3 or self.candidates.shape[0] != t + 1:
            raise ValueError(f"candidates must be [T + 1 = {t + 1}, N, A], got {tuple(self.candidates.shape)}")
        if not torch.isfinite(self.actions).all():
            raise ValueError("episode actions contain NaN or infinite values")


def monte_carlo_returns(rewards: torch.Tensor, terminated: bool, gamma: float) -> torch.Tensor:
    """Discounted returns-to-go; a failed (unterminated) episode gets -1/(1-gamma) everywhere.

    With -1 per step until success, an episode that never succeeds is worth -1 forever: its
    truncated sum would overstate it, so Cal-QL's bound uses the infinite-horizon value instead.
    """
    if not terminated:
        return torch.full_like(rewards, -1.0 / (1.0 - gamma))
    out = torch.empty_like(rewards)
    running = 0.0
    for i in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[i].item() + gamma * running
        out[i] = running
    return out


class TransitionBuffer:
    """A column store of transitions whose capacity doubles as it fills."""

    def __init__(self):
        self.storage: dict[str, torch.Tensor] = {}
        self.size = 0

    @property
    def columns(self) -> dict[str, torch.Tensor]:
        """The stored transitions (views of the first ``size`` rows)."""
        return {k: v[: self.size] for k, v in self.storage.items()}

    def add(self, columns: dict[str, torch.Tensor]) -> None:
        count = next(iter(columns.values())).shape[0]
        if self.storage and set(columns) != set(self.storage):
            raise ValueError(f"transition keys {sorted(columns)} differ from stored {sorted(self.storage)}")
        capacity = next(iter(self.storage.values())).shape[0] if self.storage else 0
        if self.size + count > capacity:
            new_cap = max(2 * capacity, self.size + count, 1024)
            grown = {}
            for k, v in columns.items():
                grown[k] = torch.empty((new_cap, *v.shape[1:]), dtype=v.dtype)
                if self.storage:
                    grown[k][: self.size] = self.storage[k][: self.size]
            self.storage = grown
        for k, v in columns.items():
            self.storage[k][self.size : self.size + count] = v
        self.size += count


def n_step_targets(rewards: torch.Tensor, terminated: bool, gamma: float, n: int) -> tuple[torch.Tensor, ...]:
    """Per step t of an episode: the discounted sum of the next k = min(n, T - t) rewards, the index
    t + k of the bootstrap observation, and its discount (gamma^k, or 0 where s_{t+k} is terminal)."""
    t_len = rewards.shape[0]
    t = torch.arange(t_len)
    k = torch.clamp(t_len - t, max=n)
    returns = torch.zeros(t_len)
    for i in range(n):
        valid = i < k
        returns[valid] += gamma**i * rewards[t[valid] + i]
    discounts = torch.pow(torch.tensor(gamma), k.float())
    if terminated:
        discounts[t + k == t_len] = 0.0
    return returns, t + k, discounts


class Replay:
    """Offline and online transition buffers; batches mix them by ``offline_fraction``."""

    def __init__(self, gamma: float, n_step: int = 1):
        if n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step}")
        self.gamma = gamma
        self.n_step = n_step
        self.offline = TransitionBuffer()
        self.online = TransitionBuffer()
        self.instructions: list[str] = []  # distinct instructions; transitions hold an index into it

    def _instruction_id(self, text: str) -> int:
        if text not in self.instructions:
            self.instructions.append(text)
        return self.instructions.index(text)

    def _observations(self, columns: dict[str, torch.Tensor], prefix: str) -> Obs:
        """The observations of some transitions (columns under ``prefix``), with their instructions."""
        obs = unflatten_obs({k[len(prefix):]: v for k, v in columns.items() if k.startswith(prefix)})
        obs["instruction"] = [self.instructions[i] for i in columns["instruction_ids"].tolist()]
        return obs

    def add_episode(self, episode: Episode, online: bool) -> None:
        """Split an episode into transitions and store them."""
        t = episode.actions.shape[0]
        flat = {k: v.cpu() for k, v in flatten_obs(episode.obs).items()}  # replay lives in host memory
        rewards = episode.rewards.float()
        returns, bootstrap, discounts = n_step_targets(rewards, episode.terminated, self.gamma, self.n_step)
        columns = {f"obs/{k}": v[:-1] for k, v in flat.items()}
        columns.update({f"next_obs/{k}": v[bootstrap] for k, v in flat.items()})
        columns.update(
            actions=episode.actions.float().cpu(),
            rewards=returns,
            discounts=discounts,
            mc_returns=monte_carlo_returns(rewards, episode.terminated, self.gamma),
            candidates=episode.candidates[:-1].float().cpu(),
            next_candidates=episode.candidates[bootstrap].float().cpu(),
            versions=torch.full((t,), episode.policy_version, dtype=torch.long),
            instruction_ids=torch.full((t,), self._instruction_id(episode.instruction), dtype=torch.long),
        )
        (self.online if online else self.offline).add(columns)

    def __len__(self) -> int:
        return self.offline.size + self.online.size

    def sample(
        self,
        batch_size: int,
        offline_fraction: float,
        generator: torch.Generator | None = None,
        resample: Callable[[Obs, int], torch.Tensor] | None = None,
        version: int = 0,
        max_age: int = 0,
    ) -> CriticBatch:
        """A uniform batch; with ``resample``, candidates older than ``max_age`` versions are redrawn."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay")
        if self.online.size == 0:
            n_off = batch_size
        elif self.offline.size == 0:
            n_off = 0
        else:
            n_off = int(round(batch_size * offline_fraction))
        parts = []
        for buf, count in ((self.offline, n_off), (self.online, batch_size - n_off)):
            if count:
                idx = torch.randint(0, buf.size, (count,), generator=generator)
                if resample is not None:
                    self._refresh(buf, idx, resample, version, max_age)
                parts.append({k: v[idx] for k, v in buf.columns.items()})
        cols = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return CriticBatch(self._observations(cols, "obs/"), cols["actions"], cols["rewards"], cols["discounts"],
                           self._observations(cols, "next_obs/"), cols["mc_returns"], cols["candidates"],
                           cols["next_candidates"])

    def _refresh(self, buf: TransitionBuffer, idx: torch.Tensor, resample: Callable[[Obs, int], torch.Tensor],
                 version: int, max_age: int) -> None:
        stale = idx[buf.columns["versions"][idx] < version - max_age].unique()
        if stale.numel() == 0:
            return
        n = buf.columns["candidates"].shape[1]
        rows = {k: v[stale] for k, v in buf.columns.items()}
        for prefix, column in (("obs/", "candidates"), ("next_obs/", "next_candidates")):
            buf.storage[column][stale] = resample(self._observations(rows, prefix), n).cpu()
        buf.storage["versions"][stale] = version

    def state_dict(self) -> dict:
        return {"offline": self.offline.columns, "online": self.online.columns, "instructions": list(self.instructions)}

    def load_state_dict(self, state: dict) -> None:
        self.instructions = list(state["instructions"])
        for name in ("offline", "online"):
            buf = TransitionBuffer()
            if state[name]:
                buf.add(state[name])
            setattr(self, name, buf)
