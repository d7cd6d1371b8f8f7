"""Checkpoints of a run: ``<root>/<name>/`` holds the agent (critic, target, optimizer, policy, replay,
counters, RNG states) and ``session.json`` (what the process needs besides the agent); ``<root>/latest``
names the newest complete one and is rewritten last, atomically, so a crash mid-save leaves the
previous checkpoint in charge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robot_parl.files import atomic_write


def save_checkpoint(root: str | Path, name: str, agent, session: dict[str, Any]) -> Path:
    """Write checkpoint ``name`` under ``root`` and point ``latest`` at it."""
    directory = Path(root) / name
    agent.save(directory)
    atomic_write(directory / "session.json", lambda f: f.write(json.dumps(session)), mode="w")
    atomic_write(Path(root) / "latest", lambda f: f.write(name), mode="w")
    return directory


def load_latest(root: str | Path, agent) -> dict[str, Any] | None:
    """Restore the agent from the latest checkpoint and return its session data (None: no checkpoint)."""
    pointer = Path(root) / "latest"
    if not pointer.is_file():
        return None
    directory = Path(root) / pointer.read_text().strip()
    agent.load(directory)
    return json.loads((directory / "session.json").read_text())
