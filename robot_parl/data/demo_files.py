"""Demonstrations from files: an episode store, a LeRobot v3 dataset, or an ``.npz`` of arrays.

Each gives episodes of T + 1 observations under flat keys (``state``, ``proprio``, ``images/<camera>``), the T actions
taken between them in the environment's (robot) units, and whether the episode succeeded:
- an episode store directory (``zarr.json``): frame t holds s_t and a_t, the last frame s_T (data/episode_store.py);
- a LeRobot v3 dataset directory (``meta/info.json``), read through the store's importer and its key mapping
  (``observation.environment_state`` -> ``state``, ``observation.state`` -> ``proprio``, ``observation.images.<c>``
  -> ``images/<c>``; data/lerobot.py); its success is ``next.success``, else the episode counts as a failure;
- an ``.npz``, laid out as diffusion_policy's ReplayBuffer keeps episodes: every episode's frames concatenated
  under each key, ``action`` [F, A] and ``episode_ends`` [E] (each episode's end, exclusive, in frames), plus an
  optional ``success`` [E] (without it every episode counts as a success, as demonstrations usually are).
In the last two, each frame pairs an observation with the action taken there, so an episode's last frame serves as
its final observation and its action is not used. ``key_map`` renames a file's keys (LeRobot feature or ``.npz``
array name -> flat key). Nothing is unpickled: ``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import EpisodeStore, KeySpec, StoreError
from robot_parl.data.lerobot import import_lerobot


class DemoFileError(StoreError):
    """A demonstration file that cannot be read as the run needs it; the message names the file and what differs."""


@dataclass
class DemoEpisode:
    obs: dict[str, np.ndarray]  # each [T + 1, ...]
    actions: np.ndarray  # [T, A] in the environment's units
    success: bool


def demo_file_kind(path: str | Path) -> str:
    """``store``, ``lerobot`` or ``npz``, from what is at ``path``."""
    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        return "npz"
    if (p / "zarr.json").is_file():
        return "store"
    if (p / "meta" / "info.json").is_file():
        return "lerobot"
    raise DemoFileError(f"demonstrations {str(p)!r}: expected an episode store directory (zarr.json), a LeRobot v3 "
                        f"dataset directory (meta/info.json) or an .npz file, found "
                        f"{'nothing' if not p.exists() else 'neither'}")


def load_demos(path: str | Path, keys: Mapping[str, KeySpec], action_dim: int, limit: int,
               key_map: Mapping[str, str] | None = None) -> tuple[list[DemoEpisode], int]:
    """The first ``limit`` episodes at ``path`` with the observation ``keys`` (shapes checked) and ``action_dim``;
    returns them and how many episodes the file holds."""
    kind = demo_file_kind(path)
    if kind == "npz":
        episodes = _npz_episodes(Path(path), dict(key_map or {}))
        total, episodes = len(episodes), episodes[:limit]
    elif kind == "store":
        if key_map:
            raise DemoFileError(f"demonstrations {str(path)!r}: key_map renames LeRobot or .npz keys; an episode "
                                f"store already uses the run's keys")
        episodes, total = _store_episodes(EpisodeStore(path), list(keys), limit)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            import_lerobot(path, Path(tmp) / "store", key_map=dict(key_map) if key_map else None)
            episodes, total = _store_episodes(EpisodeStore(Path(tmp) / "store"), list(keys), limit)
    for i, ep in enumerate(episodes):
        _check(path, i, ep, keys, action_dim)
    return episodes, total


def _store_episodes(store: EpisodeStore, keys: list[str], limit: int) -> tuple[list[DemoEpisode], int]:
    """The store's first ``limit`` episodes (only those are read) and how many it holds."""
    missing = [k for k in [*keys, "action"] if k not in store.schema]
    if missing:
        raise DemoFileError(f"demonstrations {str(store.path)!r} lack {missing}; they have {sorted(store.schema)}")
    out = []
    for index in range(min(limit, len(store))):
        data = store.episode(index, [*keys, "action"])
        out.append(DemoEpisode({k: data[k] for k in keys}, data["action"][:-1], store.info(index).success))
    return out, len(store)


def _npz_episodes(path: Path, key_map: dict[str, str]) -> list[DemoEpisode]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key_map.get(name, name): f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DemoFileError(f"demonstrations {str(path)!r}: cannot read it as an .npz of arrays ({err})") from None
    for name in ("action", "episode_ends"):
        if name not in arrays:
            raise DemoFileError(f"demonstrations {str(path)!r} lack the array {name!r}; they have {sorted(arrays)}")
    ends = arrays.pop("episode_ends")
    frames = len(arrays["action"])
    if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer) or len(ends) == 0 or ends[0] < 2 \
            or np.any(np.diff(ends) < 2) or ends[-1] != frames:
        raise DemoFileError(f"demonstrations {str(path)!r}: episode_ends must be increasing integers ending at the "
                            f"{frames} frames of 'action', each episode 2 frames at least; got {ends.tolist()[:10]}")
    success = arrays.pop("success", np.ones(len(ends), bool))
    if success.shape != ends.shape:
        raise DemoFileError(f"demonstrations {str(path)!r}: success must be [{len(ends)}] (one per episode), got "
                            f"{list(success.shape)}")
    for name, x in arrays.items():
        if len(x) != frames:
            raise DemoFileError(f"demonstrations {str(path)!r}: {name!r} has {len(x)} frames, 'action' {frames}")
    starts = np.concatenate([[0], ends[:-1]])
    return [DemoEpisode({k: x[s:e] for k, x in arrays.items() if k != "action"}, arrays["action"][s:e - 1],
                        bool(ok)) for s, e, ok in zip(starts, ends, success)]


def _check(path, index: int, ep: DemoEpisode, keys: Mapping[str, KeySpec], action_dim: int) -> None:
    where = f"demonstrations {str(path)!r}, episode {index}"
    for key, spec in keys.items():
        if key not in ep.obs:
            raise DemoFileError(f"{where}: no {key!r} (the environment observes {sorted(keys)}; set demos.key_map "
                                f"to rename a key)")
        got = ep.obs[key]
        if got.shape[1:] != tuple(spec.shape):
            raise DemoFileError(f"{where}: {key!r} has shape {list(got.shape[1:])} per frame, the environment's "
                                f"is {list(spec.shape)}")
        if spec.dtype == "uint8" and got.dtype != np.uint8:
            raise DemoFileError(f"{where}: {key!r} is {got.dtype}, expected uint8 images")
    if ep.actions.ndim != 2 or ep.actions.shape[1] != action_dim:
        raise DemoFileError(f"{where}: actions have shape {list(ep.actions.shape)}, expected [T, {action_dim}]")
    if not np.isfinite(ep.actions).all():
        raise DemoFileError(f"{where}: actions hold NaN or infinite values")
    ep.obs = {k: ep.obs[k] for k in keys}
    ep.actions = ep.actions.astype(np.float32)
