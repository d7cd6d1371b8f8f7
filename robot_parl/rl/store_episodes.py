"""Episodes between the episode store and replay: recording them, and feeding committed ones to replay.

Store convention for RL: an episode of T transitions is T + 1 frames. Frame t holds the observation
s_t (flat keys such as ``images/front``, ``proprio``, ``state``), the action a_t, the reward r_t and,
for rollouts, the N candidates drawn at s_t (the optional key ``candidates``). The last frame holds
s_T; its action and reward are zeros and never used. An episode that succeeded ends in a terminal state.
Actions and candidates are stored in robot units (teleop, imports, rollouts and interventions alike); the
policy's action space maps them to policy space here, on their way to replay, and nowhere else. Each
episode's instruction travels with it. Teleop data without candidates gets them from the current policy
when it is fed to replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from robot_parl.data.episode_store import EpisodeInfo, EpisodeStore, EpisodeWriter, Outcome, Source, StoreError
from robot_parl.models.action_space import ActionSpace
from robot_parl.models.encoders import Obs, unflatten_obs
from robot_parl.rl.replay import Episode, Replay

ONLINE_SOURCES: tuple[Source, ...] = ("rollout", "intervention")


def write_episode(writer: EpisodeWriter, obs: dict[str, np.ndarray], actions: np.ndarray, rewards: np.ndarray,
                  success: bool, source: Source, candidates: torch.Tensor | None = None, policy_version: int = 0,
                  instruction: str = "", timestamps: np.ndarray | None = None, critic_version: int = 0,
                  episode_id: str = "", partial: bool = False, outcome: Outcome | None = None) -> int:
    """Commit one episode (obs [T + 1, ...] under flat keys, actions [T, A], rewards [T]); returns its index."""
    t = len(actions)
    timestamps = np.arange(t + 1, dtype=np.float64) if timestamps is None else timestamps
    writer.begin(source, instruction=instruction, policy_version=policy_version, critic_version=critic_version,
                 optional_keys=("candidates",) if candidates is not None else (), episode_id=episode_id)
    pad_action = np.zeros_like(actions[0])
    for i in range(t + 1):
        frame = {k: v[i] for k, v in obs.items()}
        frame.update(timestamp=timestamps[i], action=actions[i] if i < t else pad_action,
                     reward=np.float32(rewards[i] if i < t else 0.0))
        if candidates is not None:
            frame["candidates"] = candidates[i].numpy()
        writer.add(frame)
    return writer.end(success, partial, outcome=outcome or Outcome()).index


def read_episode(store: EpisodeStore, index: int, obs_keys: Sequence[str], action_space: ActionSpace,
                 sample_candidates: Callable[[Obs], torch.Tensor] | None = None) -> Episode:
    """A committed episode as a replay Episode in policy space (``action_space`` maps the stored robot units);
    candidates are drawn with ``sample_candidates`` when the episode has none (teleop, scripted demonstrations)."""
    info = store.info(index)
    if len(info) < 2:
        raise ValueError(f"episode {index} has {len(info)} frame; an RL episode needs s_0 and s_T at least")
    keys = list(obs_keys) + ["action", "reward"] + (["candidates"] if "candidates" in info.keys else [])
    data = store.episode(index, keys)
    obs = unflatten_obs({k: torch.from_numpy(np.ascontiguousarray(data[k])) for k in obs_keys})
    obs["instruction"] = [info.instruction] * len(info)
    if "candidates" in data:
        candidates = torch.from_numpy(action_space.from_robot(data["candidates"]))
    elif sample_candidates is not None:
        candidates = sample_candidates(obs)
    else:
        raise ValueError(f"episode {index} ({info.source}) has no candidates and no policy was given to draw them")
    actions = torch.from_numpy(action_space.from_robot(data["action"][:-1]))
    return Episode(obs, actions, torch.from_numpy(data["reward"][:-1]), info.success, candidates, info.policy_version,
                   info.instruction, info.source, info.episode_id)


class StoreFeed:
    """Hands each committed episode of a store to replay once, in commit order (online: rollouts and
    interventions; offline: teleop and sim data) in policy space; ``select`` chooses which episodes (e.g.
    successes only)."""

    def __init__(self, store: EpisodeStore, obs_keys: Sequence[str], action_space: ActionSpace, position: int = 0,
                 select: Callable[[EpisodeInfo], bool] | None = None):
        self.store = store
        self.obs_keys = list(obs_keys)
        self.action_space = action_space
        self.position = position
        self.select = select

    def new_episodes(self, sample_candidates: Callable[[Obs], torch.Tensor] | None = None,
                     upto: int | None = None) -> list[tuple[Episode, bool]]:
        """(episode, online) for every episode committed since the last call (up to the ``upto``-th)."""
        self.store.refresh()
        out = []
        while self.position < min(len(self.store), len(self.store) if upto is None else upto):
            info = self.store.info(self.position)
            if self.select is None or self.select(info):
                out.append((read_episode(self.store, self.position, self.obs_keys, self.action_space,
                                         sample_candidates),
                            info.source in ONLINE_SOURCES))
            self.position += 1
        return out

    def refill(self, replay: Replay, sample_candidates: Callable[[Obs], torch.Tensor] | None, upto: int) -> None:
        """Put the store's first ``upto`` episodes back into ``replay`` (a resumed run: its checkpoint holds the
        agent and this position, not replay's contents, and its counters already include these episodes)."""
        self.position = 0
        for episode, online in self.new_episodes(sample_candidates, upto):
            replay.add_episode(episode, online)
        if self.position < upto:
            raise StoreError(f"{self.store.path} holds {len(self.store)} episodes, but the checkpoint's replay read "
                             f"{upto} of them: it is not this run's store")
