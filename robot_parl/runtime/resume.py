"""Checkpoints of a run: ``<root>/<name>/`` holds the agent (critic, target, optimizer, policy, counters, RNG
states) and ``state.json`` (a typed record of what the process needs besides the agent: :class:`LearnerState`
for the learner and ``robot-parl pretrain``, a local run's own for in-process runs). Replay is not saved: the
state records how many of the episode store's episodes it held, and a resumed run reads them back
(``StoreFeed.refill``), so a checkpoint's size does not grow with the session. ``<root>/latest`` names the
newest complete one and is rewritten last, atomically, so a crash mid-save leaves the previous checkpoint in
charge; all of the series but the newest ``keep`` and the best scored one are then removed."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError

from robot_parl import typed_config
from robot_parl.files import atomic_write

STATE_FILE = "state.json"
SCORES_FILE = "scores.json"  # checkpoint name -> score, for keeping the best
State = TypeVar("State")


@dataclass
class LearnerState:
    """A learner checkpoint's own part: how far replay has read the session's store (``store_position``
    episodes) and the offline store, the online critic updates (for the update-to-data cap), whether the
    offline phase is done, and the learner's counters."""

    store_position: int = 0
    offline_position: int = 0
    offline_done: bool = False
    counters: dict[str, int] = field(default_factory=dict)


def save_checkpoint(root: str | Path, name: str, agent, state, keep: int = 0, score: float | None = None) -> Path:
    """Write checkpoint ``name`` (the agent without replay, and ``state``, a dataclass) under ``root``; point
    ``latest`` at it. With ``keep``, only the newest ``keep`` checkpoints and the one with the best ``score``
    (a success rate, say) stay."""
    root = Path(root)
    directory = root / name
    agent.save(directory, replay=False)
    atomic_write(directory / STATE_FILE, lambda f: f.write(json.dumps(typed_config.to_dict(state))), mode="w")
    atomic_write(root / "latest", lambda f: f.write(name), mode="w")
    scores = json.loads((root / SCORES_FILE).read_text()) if (root / SCORES_FILE).is_file() else {}
    if score is not None:
        scores[name] = score
    if keep:
        _prune(root, name, keep, scores)
    atomic_write(root / SCORES_FILE, lambda f: f.write(json.dumps(scores)), mode="w")
    return directory


def _prune(root: Path, newest: str, keep: int, scores: dict[str, float]) -> None:
    """Remove all checkpoints of ``newest``'s series (its name up to the last ``_``: ``update_...``) but the newest
    ``keep`` (by modification time) and the best scored one; others (``pretrained``) always stay."""
    series = newest.rpartition("_")[0] + "_"
    saved = sorted((d for d in root.iterdir() if (d / STATE_FILE).is_file() and d.name.startswith(series)),
                   key=lambda d: d.stat().st_mtime)
    kept = {d.name for d in saved[-keep:]} | {newest}
    if scores:
        kept.add(max(scores, key=lambda n: (scores[n], n)))
    for directory in saved:
        if directory.name not in kept:
            shutil.rmtree(directory)
            scores.pop(directory.name, None)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and what is wrong."""


def load_latest(root: str | Path, agent, state_type: type[State]) -> State | None:
    """Restore the agent from the latest checkpoint and return its state as ``state_type`` (None: none yet)."""
    pointer = Path(root) / "latest"
    if not pointer.is_file():
        return None
    directory = Path(root) / pointer.read_text().strip()
    if not directory.is_dir():
        raise CheckpointError(f"{pointer} names {directory.name!r}, which is not a checkpoint under {root}; point it "
                              f"at one, or remove it to start over")
    try:
        agent.load(directory)
        return typed_config.from_dict(state_type, json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # missing, truncated, foreign
        raise CheckpointError(f"checkpoint {directory} cannot be resumed: {err}") from None
