"""In-memory replay of whole episodes, with offline/online mixing.

Episodes reach replay from the zarr episode store (rl/store_episodes.py). They are added
whole so Monte-Carlo returns (for Cal-QL) and n-step returns are computed once, at commit. Each observation is
stored once, as a frame, with the N base-policy candidates drawn at it and the policy version that drew them, so
TD targets and distillation reuse them instead of sampling the policy again; candidates older than a configured
number of versions are re-sampled with the current policy when they are next used. A transition holds its
action, returns and the rows of its frame and bootstrap frame. Each frame keeps its episode's language
instruction (an index into one list of distinct instructions), and batches carry it as ``obs["instruction"]``
(a list of strings), so a VLA trains and resamples on the prompt it acted on.
"""

from __future__ import annotations

from collections import deque
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
    source: str = "rollout"  # as stored (data/episode_store.py SOURCES)
    episode_id: str = ""  # the recorder's id: which probation arm it acted in (rl/trust.py)

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


class ColumnStore:
    """Rows of named tensor columns in host memory; capacity doubles as it fills, rows leave from the front."""

    def __init__(self):
        self.storage: dict[str, torch.Tensor] = {}
        self.size = 0

    @property
    def columns(self) -> dict[str, torch.Tensor]:
        """The stored rows (views of the first ``size``)."""
        return {k: v[: self.size] for k, v in self.storage.items()}

    def add(self, columns: dict[str, torch.Tensor]) -> None:
        count = next(iter(columns.values())).shape[0]
        if self.storage and set(columns) != set(self.storage):
            raise ValueError(f"keys {sorted(columns)} differ from stored {sorted(self.storage)}")
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

    def drop_front(self, count: int) -> None:
        """Remove the first ``count`` rows (the rest move to the front; the memory is reused)."""
        for v in self.storage.values():
            v[: self.size - count] = v[count : self.size].clone()
        self.size -= count


class EpisodeBuffer:
    """Episodes as frames and transitions: each observation (and the candidates drawn at it) is stored once, and a
    transition names its frame and its bootstrap frame by row, as diffusion_policy's ReplayBuffer does with
    episode ends. With a ``capacity`` (transitions), the oldest episodes leave once it is exceeded, down to 90%
    of it, so eviction copies the buffer once every tenth of a capacity, not every episode."""

    def __init__(self, capacity: int = 0):
        self.capacity = capacity
        self.frames = ColumnStore()
        self.transitions = ColumnStore()
        self.episodes: deque[tuple[int, int]] = deque()  # (frames, transitions) of each stored episode
        self.evicted = 0  # transitions dropped so far

    @property
    def size(self) -> int:
        return self.transitions.size

    def add(self, frames: dict[str, torch.Tensor], transitions: dict[str, torch.Tensor]) -> None:
        """One episode: its frames, and its transitions with frame rows counted from the episode's first frame."""
        first = self.frames.size
        self.frames.add(frames)
        self.transitions.add({**transitions, "frame": transitions["frame"] + first,
                              "next_frame": transitions["next_frame"] + first})
        self.episodes.append((next(iter(frames.values())).shape[0], transitions["frame"].shape[0]))
        if self.capacity and self.size > self.capacity:
            self._evict(int(0.9 * self.capacity))

    def _evict(self, keep: int) -> None:
        frames = transitions = 0
        while len(self.episodes) > 1 and self.size - transitions > keep:
            f, t = self.episodes.popleft()
            frames, transitions = frames + f, transitions + t
        self.frames.drop_front(frames)
        self.transitions.drop_front(transitions)
        for column in ("frame", "next_frame"):
            self.transitions.storage[column][: self.size] -= frames
        self.evicted += transitions

    def state_dict(self) -> dict:
        return {"frames": self.frames.columns, "transitions": self.transitions.columns,
                "episodes": torch.tensor(list(self.episodes), dtype=torch.long).reshape(-1, 2)}

    def load_state_dict(self, state: dict) -> None:
        self.frames, self.transitions = ColumnStore(), ColumnStore()
        if state["frames"]:
            self.frames.add(state["frames"])
            self.transitions.add(state["transitions"])
        self.episodes = deque(tuple(row) for row in state["episodes"].tolist())


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
    """Offline and online episode buffers; batches mix them by ``offline_fraction``. Online data is bounded by
    ``online_capacity`` transitions (oldest episodes first; 0: unbounded); offline data is kept whole."""

    def __init__(self, gamma: float, n_step: int = 1, online_capacity: int = 0):
        if n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step}")
        self.gamma = gamma
        self.n_step = n_step
        self.offline = EpisodeBuffer()
        self.online = EpisodeBuffer(online_capacity)
        self.instructions: list[str] = []  # distinct instructions; frames hold an index into it

    def _instruction_id(self, text: str) -> int:
        if text not in self.instructions:
            self.instructions.append(text)
        return self.instructions.index(text)

    def _observations(self, frames: dict[str, torch.Tensor]) -> Obs:
        """The observations of some frames, with their instructions."""
        obs = unflatten_obs({k[len("obs/"):]: v for k, v in frames.items() if k.startswith("obs/")})
        obs["instruction"] = [self.instructions[i] for i in frames["instruction_ids"].tolist()]
        return obs

    def add_episode(self, episode: Episode, online: bool) -> None:
        """Store an episode's frames once and its transitions (n-step and Monte-Carlo returns computed here)."""
        t = episode.actions.shape[0]
        rewards = episode.rewards.float().cpu()
        returns, bootstrap, discounts = n_step_targets(rewards, episode.terminated, self.gamma, self.n_step)
        frames = {f"obs/{k}": v.cpu() for k, v in flatten_obs(episode.obs).items()}  # replay lives in host memory
        frames.update(candidates=episode.candidates.float().cpu(),
                      versions=torch.full((t + 1,), episode.policy_version, dtype=torch.long),
                      instruction_ids=torch.full((t + 1,), self._instruction_id(episode.instruction), dtype=torch.long))
        transitions = dict(frame=torch.arange(t), next_frame=bootstrap, actions=episode.actions.float().cpu(),
                           rewards=returns, discounts=discounts,
                           mc_returns=monte_carlo_returns(rewards, episode.terminated, self.gamma))
        (self.online if online else self.offline).add(frames, transitions)

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
                steps = {k: v[idx] for k, v in buf.transitions.columns.items()}
                if resample is not None:
                    self._refresh(buf, torch.cat([steps["frame"], steps["next_frame"]]), resample, version, max_age)
                frames = buf.frames.columns
                parts.append((steps, {k: v[steps["frame"]] for k, v in frames.items()},
                              {k: v[steps["next_frame"]] for k, v in frames.items()}))
        steps, here, there = ({k: torch.cat([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(3))
        return CriticBatch(self._observations(here), steps["actions"], steps["rewards"], steps["discounts"],
                           self._observations(there), steps["mc_returns"], here["candidates"], there["candidates"])

    def _refresh(self, buf: EpisodeBuffer, rows: torch.Tensor, resample: Callable[[Obs, int], torch.Tensor],
                 version: int, max_age: int) -> None:
        frames = buf.frames.columns
        stale = rows[frames["versions"][rows] < version - max_age].unique()
        if stale.numel() == 0:
            return
        n = frames["candidates"].shape[1]
        buf.frames.storage["candidates"][stale] = resample(self._observations({k: v[stale] for k, v in
                                                                               frames.items()}), n).cpu()
        buf.frames.storage["versions"][stale] = version

    def state_dict(self) -> dict:
        return {"offline": self.offline.state_dict(), "online": self.online.state_dict(),
                "instructions": list(self.instructions)}

    def load_state_dict(self, state: dict) -> None:
        self.instructions = list(state["instructions"])
        self.offline.load_state_dict(state["offline"])
        self.online.load_state_dict(state["online"])
