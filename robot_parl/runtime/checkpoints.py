"""Checkpoints of a run: ``<root>/<name>/`` holds the agent (critic, target, optimizer, policy, replay,
counters, RNG states) and ``state.json`` (a typed record of what the process needs besides the agent:
:class:`LearnerState` for the learner and ``robot-parl pretrain``, a local run's own for in-process runs);
``<root>/latest`` names the newest complete one and is rewritten last, atomically, so a crash mid-save
leaves the previous checkpoint in charge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError

from robot_parl import typed_config
from robot_parl.files import atomic_write

STATE_FILE = "state.json"
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


def save_checkpoint(root: str | Path, name: str, agent, state) -> Path:
    """Write checkpoint ``name`` (the agent and ``state``, a dataclass) under ``root``; point ``latest`` at it."""
    directory = Path(root) / name
    agent.save(directory)
    atomic_write(directory / STATE_FILE, lambda f: f.write(json.dumps(typed_config.to_dict(state))), mode="w")
    atomic_write(Path(root) / "latest", lambda f: f.write(name), mode="w")
    return directory


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
