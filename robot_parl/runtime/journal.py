"""The actor's journal: every episode it runs, on local disk, until the learner acknowledges it.

It is an episode store (crash-safe commits, see data/episode_store.py) plus the set of episode ids the
learner has acknowledged (``acked.json``, rewritten atomically). Episodes not acknowledged are sent
again when the learner is reachable, so steps made while it was down or restarting are never lost;
the learner never commits an episode id twice, so a resend of an acknowledged episode is harmless.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from robot_parl.data.episode_store import EpisodeInfo, EpisodeStore, KeySpec, StoreError, rl_schema
from robot_parl.files import atomic_write
from robot_parl.runtime.steps import begin_episode, frame_step, step_frame, step_outcome
from robot_parl.transport.messages import Step


class Journal:
    """Records an actor's episodes step by step and tracks which ones the learner has."""

    def __init__(self, directory: str | Path, obs_keys: dict[str, KeySpec], action_dim: int, num_candidates: int,
                 holder: str):
        self.dir = Path(directory)
        store_path = self.dir / "episodes"
        self.store = EpisodeStore(store_path) if (store_path / "zarr.json").is_file() else \
            EpisodeStore.create(store_path, rl_schema(obs_keys, action_dim, num_candidates))
        self.writer = self.store.writer(holder)
        self.obs_keys = list(obs_keys)
        self.acked = _read_acked(self.dir / "acked.json")
        self.sent_at: dict[str, float] = {}  # episode id -> when it was last sent
        self.ids = {e.episode_id for e in self.store.episodes()}
        self._intervened = False
        self._watched = False  # the episode being recorded keeps a classifier's probabilities

    def record(self, step: Step) -> None:
        """Append one step (the first begins the episode, the final one commits it)."""
        if step.index == 0:
            self._watched = begin_episode(self.writer, step)
            self._intervened = False
        self._intervened |= step.source == "intervention"
        self.writer.add(step_frame(step, self._watched))
        if step.final:
            self.writer.end(step.success, source="intervention" if self._intervened else "rollout",
                            outcome=step_outcome(step))
            self.ids.add(step.episode_id)
            self.sent_at[step.episode_id] = time.monotonic()

    def acknowledge(self, committed: list[str]) -> int:
        """Mark episodes the learner reports as committed; returns how many were newly acknowledged."""
        new = (set(committed) - self.acked) & self.ids
        if new:
            self.acked |= new
            atomic_write(self.dir / "acked.json", lambda f: f.write(json.dumps(sorted(self.acked))), mode="w")
        return len(new)

    def unacknowledged(self, older_than_s: float) -> list[EpisodeInfo]:
        """Committed episodes the learner has not acknowledged, sent more than ``older_than_s`` ago."""
        if self.ids <= self.acked:
            return []
        self.store.refresh()
        now = time.monotonic()
        return [e for e in self.store.episodes() if e.episode_id not in self.acked
                and now - self.sent_at.get(e.episode_id, 0.0) > older_than_s]

    def steps(self, info: EpisodeInfo, actor: str) -> Iterator[Step]:
        """An episode as the Step messages that carried it."""
        data = self.store.episode(info.index)
        self.sent_at[info.episode_id] = time.monotonic()
        for t in range(len(info)):
            yield frame_step(data, t, info, actor)

    def close(self) -> None:
        self.writer.close()


def _read_acked(path: Path) -> set[str]:
    """The episode ids the learner acknowledged (none yet: no file)."""
    if not path.is_file():
        return set()
    try:
        ids = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        ids = err
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise StoreError(f"{path} is not a JSON list of episode ids ({ids}); remove it and every journaled episode "
                         f"is sent again (the learner skips those it has)")
    return set(ids)
