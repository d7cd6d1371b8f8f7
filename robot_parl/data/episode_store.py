"""The episode store: a zarr v3 group of per-key arrays concatenated over time, and an episode table.

Layout::

    zarr.json               attributes: schema_version, schema (key -> dtype, shape, optional),
                            robot_spec, committed = {"episodes": n, "frames": t}
    data/<key>              [T_total, *shape]; images chunked one frame per chunk
    meta/episodes/<column>  one row per episode: start, end, success, source, versions, instruction, ...
    writer.lock             held (flock) by the one writer; names its holder

Crash safety: zarr's local store writes every file through a temporary file and a rename, so each
chunk and each metadata document is either old or new, never torn. A writer appends an episode's frames
beyond the committed end, then its table row, and commits by rewriting the ``committed`` attribute:
the single atomic step. Readers only look below the committed counts. A crash before the commit leaves
the partial episode's frames beyond the committed end; the next writer drops them on open (the
documented handling of a partial episode), so a store is never broken and committed episodes never change.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import zarr

from robot_parl.data.stats import key_stats

SCHEMA_VERSION = 2  # 2: episode_id and partial columns
Source = Literal["teleop", "rollout", "intervention", "sim"]
SOURCES: tuple[Source, ...] = ("teleop", "rollout", "intervention", "sim")
LOCK_FILE = "writer.lock"
TABLE_CHUNK = 1024
FRAME_CHUNK = 256
ROBOT_UNITS = "robot"  # KeySpec.units of actions: the robot spec's physical units


class StoreError(ValueError):
    """A store, frame or episode that cannot be used as given."""


class StoreLocked(RuntimeError):
    """Another writer holds the store."""


@dataclass(frozen=True)
class KeySpec:
    """One per-step key: dtype, per-step shape, whether only some episodes have it, and its units.

    ``units`` = "robot" marks actions in the robot's physical units (the robot spec's action names and units,
    never a policy's normalized space); "" says nothing (observations, timestamps in seconds, rewards).
    """

    dtype: str
    shape: tuple[int, ...]
    optional: bool = False
    units: str = ""

    @property
    def is_image(self) -> bool:
        return self.dtype == "uint8" and len(self.shape) == 3


OUTCOME_SOURCES = ("operator", "classifier", "sim", "scripted", "horizon")


@dataclass(frozen=True)
class Outcome:
    """Who gave an episode its outcome: an operator's label, a success classifier, a simulator, a scripted run, or
    the horizon passing unlabelled (a failure); and, where a classifier watched, its version and its own call
    (0 or 1; -1: none watched), which differs from the outcome where an operator overrode it."""

    source: str = ""  # one of OUTCOME_SOURCES; "": not recorded (episodes committed before it was)
    classifier_version: int = 0
    classifier_success: int = -1


@dataclass(frozen=True)
class EpisodeInfo:
    """A row of the episode table: frames [start, end) of every ``data/<key>`` array."""

    index: int
    start: int
    end: int
    success: bool
    source: Source
    policy_version: int
    critic_version: int
    instruction: str
    wall_start: float
    wall_end: float
    keys: tuple[str, ...]  # the optional keys this episode has
    episode_id: str = ""  # the recorder's id (actors: unique per episode, used to never commit one twice)
    partial: bool = False  # cut short by a crash of its recorder: no outcome, not terminal
    outcome: Outcome = Outcome()  # who gave it its outcome
    robot: str = ""  # the robot that recorded it (a fleet's robots feed one learner); "": not recorded

    def __len__(self) -> int:
        return self.end - self.start


_COLUMNS = {"start": "int64", "end": "int64", "success": "bool", "source": "uint8", "policy_version": "int64",
            "critic_version": "int64", "instruction": str, "wall_start": "float64", "wall_end": "float64",
            "keys": str, "episode_id": str, "partial": "bool"}
# Added to schema 2's table later: a store without them reads the defaults, and its writer adds them (defaults for
# the rows before) at its next commit.
_LATER_COLUMNS = {"outcome_source": (str, ""), "classifier_version": ("int64", 0), "classifier_success": ("int8", -1),
                  "robot": (str, "")}


def rl_schema(obs_keys: dict[str, KeySpec], action_dim: int, num_candidates: int = 0) -> dict[str, KeySpec]:
    """The schema of RL episodes (see rl/store_episodes.py) with these observation keys; rollouts may
    add ``num_candidates`` base-policy samples per step (none: 0) and a success classifier's probabilities."""
    schema = {"timestamp": KeySpec("float64", ()), **obs_keys,
              "action": KeySpec("float32", (action_dim,), units=ROBOT_UNITS), "reward": KeySpec("float32", ())}
    if num_candidates:
        schema["candidates"] = KeySpec("float32", (num_candidates, action_dim), optional=True, units=ROBOT_UNITS)
        # a success classifier's probability for each frame, in episodes one watched (-1: a frame it did not score)
        schema["success_probability"] = KeySpec("float32", (), optional=True)
    return schema


def _row_info(index: int, row: dict) -> EpisodeInfo:
    """An episode-table row as stored (source as its index, optional keys as JSON) -> EpisodeInfo."""
    return EpisodeInfo(index=index, start=int(row["start"]), end=int(row["end"]), success=bool(row["success"]),
                       source=SOURCES[int(row["source"])], policy_version=int(row["policy_version"]),
                       critic_version=int(row["critic_version"]), instruction=str(row["instruction"]),
                       wall_start=float(row["wall_start"]), wall_end=float(row["wall_end"]),
                       keys=tuple(json.loads(str(row["keys"]))), episode_id=str(row["episode_id"]),
                       partial=bool(row["partial"]),
                       outcome=Outcome(str(row.get("outcome_source", "")), int(row.get("classifier_version", 0)),
                                       int(row.get("classifier_success", -1))), robot=str(row.get("robot", "")))


def _schema_from_attrs(raw: dict) -> dict[str, KeySpec]:
    return {k: KeySpec(v["dtype"], tuple(v["shape"]), v["optional"], v.get("units", "")) for k, v in raw.items()}


@contextmanager
def _reading(path: Path, what: str):
    """Errors from damaged files (truncated JSON or chunks, removed arrays) as one StoreError naming them."""
    try:
        yield
    except StoreError:
        raise
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as err:
        raise StoreError(f"{path}: {what} cannot be read ({type(err).__name__}: {err}); the store is damaged") from None


class EpisodeStore:
    """A reader of committed episodes; :meth:`writer` opens the one writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path} is not an episode store (no zarr.json); create one with EpisodeStore.create")
        with _reading(self.path, "its metadata"):
            self.root = zarr.open_group(self.path, mode="r")
            version = self.root.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema_version {version!r}, this code reads {SCHEMA_VERSION}")
            self.schema = _schema_from_attrs(self.root.attrs["schema"])
            self.robot_spec = self.root.attrs.get("robot_spec")
            # every array is there and its metadata reads: a damaged store is refused here, not mid-session
            for name in [f"meta/episodes/{c}" for c in _COLUMNS] + [f"data/{k}" for k in self.schema]:
                if not isinstance(self.root.get(name), zarr.Array):
                    raise KeyError(f"no array {name}")
        self.refresh()

    @classmethod
    def create(cls, path: str | Path, schema: dict[str, KeySpec], robot_spec: dict | None = None) -> EpisodeStore:
        """A new, empty store with the given per-step keys (``timestamp`` is required, float64 seconds)."""
        path = Path(path)
        if (path / "zarr.json").exists():
            raise StoreError(f"{path} already holds a store; open it instead of creating it")
        if "timestamp" not in schema or schema["timestamp"] != KeySpec("float64", ()):
            raise StoreError("the schema needs 'timestamp': KeySpec('float64', ()) to order and align frames")
        # Built beside ``path`` and renamed into place: a process killed while creating leaves no half-made store
        # (a root without its schema) that the next one would take for a store.
        building = path.with_name(f".{path.name}.creating-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        root = zarr.open_group(building, mode="w", zarr_format=3)
        for key, spec in schema.items():
            chunk = 1 if spec.is_image else FRAME_CHUNK
            root.create_array(f"data/{key}", shape=(0, *spec.shape), chunks=(chunk, *spec.shape), dtype=spec.dtype,
                              fill_value=np.nan if np.dtype(spec.dtype).kind == "f" else 0)
        for column, dtype in _COLUMNS.items():
            root.create_array(f"meta/episodes/{column}", shape=(0,), chunks=(TABLE_CHUNK,), dtype=dtype)
        for column, (dtype, default) in _LATER_COLUMNS.items():
            root.create_array(f"meta/episodes/{column}", shape=(0,), chunks=(TABLE_CHUNK,), dtype=dtype,
                              fill_value=default)
        root.attrs.update({"schema_version": SCHEMA_VERSION, "robot_spec": robot_spec,
                           "schema": {k: {"dtype": v.dtype, "shape": list(v.shape), "optional": v.optional,
                                          "units": v.units} for k, v in schema.items()},
                           "committed": {"episodes": 0, "frames": 0}})
        if path.exists():  # an empty directory, or what a creation killed before this one left
            shutil.rmtree(path)
        os.rename(building, path)
        return cls(path)

    # reading --------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the committed counts (a writer may have committed more episodes)."""
        with _reading(self.path, "its metadata"):
            self.root = zarr.open_group(self.path, mode="r")
            committed = self.root.attrs["committed"]
            self.num_episodes, self.num_frames = committed["episodes"], committed["frames"]

    def __len__(self) -> int:
        return self.num_episodes

    def info(self, index: int) -> EpisodeInfo:
        """The table row of a committed episode."""
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} is not committed (the store has {self.num_episodes})")
        with _reading(self.path, f"episode {index}'s table row"):
            table = self.root["meta/episodes"]
            columns = [*_COLUMNS, *(c for c in _LATER_COLUMNS if isinstance(table.get(c), zarr.Array))]
            return _row_info(index, {c: table[c][index] for c in columns})

    def episodes(self) -> list[EpisodeInfo]:
        """Every committed episode's row."""
        return [self.info(i) for i in range(self.num_episodes)]

    def episode(self, index: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """A committed episode's arrays (its optional keys only where it has them)."""
        info = self.info(index)
        wanted = [k for k, s in self.schema.items() if not s.optional or k in info.keys] if keys is None else keys
        for k in wanted:
            if k not in self.schema:
                raise KeyError(f"unknown key {k!r}; the store has {sorted(self.schema)}")
        with _reading(self.path, f"episode {index}'s frames"):
            return {k: self.root[f"data/{k}"][info.start:info.end] for k in wanted}

    def writer(self, holder: str) -> EpisodeWriter:
        """The store's one writer; raises :class:`StoreLocked` naming the current holder."""
        return EpisodeWriter(self.path, holder)

    def norm_stats(self) -> dict[str, dict[str, list]]:
        """The saved normalization statistics ({key: {q01, q99, mean, std, min, max, ...}}); raises when
        none are saved or episodes were committed after they were computed."""
        saved = self.root.attrs.get("norm_stats")
        if not saved:
            raise StoreError(f"{self.path}: no normalization statistics saved; run `robot-parl data stats`")
        if saved["frames"] != self.num_frames:
            raise StoreError(f"{self.path}: statistics cover {saved['frames']} frames but {self.num_frames} are "
                             f"committed; recompute them (`robot-parl data stats`)")
        return saved["keys"]


class EpisodeWriter:
    """Appends episodes; holds ``writer.lock`` until :meth:`close` (or the process ends)."""

    def __init__(self, path: Path, holder: str):
        self.path = path
        self._lock = open(path / LOCK_FILE, "a+")  # noqa: SIM115 (held for the writer's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            owner = self._lock.read().strip() or "an unnamed writer"
            self._lock.close()
            raise StoreLocked(f"{path} is held by {owner}; one writer at a time") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(json.dumps({"holder": holder, "pid": os.getpid(), "host": socket.gethostname(),
                                     "since": time.time()}))
        self._lock.flush()
        self.root = zarr.open_group(path, mode="r+")
        self.schema = _schema_from_attrs(self.root.attrs["schema"])
        committed = self.root.attrs["committed"]
        self.episodes, self.frames = committed["episodes"], committed["frames"]
        self.dropped_frames = self._drop_partial()
        for leftover in self.path.rglob("*.partial"):  # a killed writer's unfinished chunk files
            leftover.unlink(missing_ok=True)
        self._recording: _Recording | None = None

    def _drop_partial(self) -> int:
        """Cut every array back to the committed counts: a crashed writer's partial episode goes."""
        dropped = 0
        for key in self.schema:
            arr = self.root[f"data/{key}"]
            if arr.shape[0] > self.frames:
                dropped = max(dropped, arr.shape[0] - self.frames)
                arr.resize((self.frames, *arr.shape[1:]))
        for column in [*_COLUMNS, *_LATER_COLUMNS]:
            arr = self.root.get(f"meta/episodes/{column}")
            if isinstance(arr, zarr.Array) and arr.shape[0] > self.episodes:
                arr.resize((self.episodes,))
        return dropped

    def begin(self, source: Source, instruction: str = "", policy_version: int = 0, critic_version: int = 0,
              optional_keys: tuple[str, ...] = (), episode_id: str = "", robot: str = "") -> None:
        """Start an episode (``robot``: the robot recording it); the previous one must have been ended or
        discarded."""
        if self._recording is not None:
            raise StoreError("an episode is already being recorded; end() or discard() it first")
        if source not in SOURCES:
            raise StoreError(f"source must be one of {SOURCES}, got {source!r}")
        for k in optional_keys:
            if k not in self.schema or not self.schema[k].optional:
                raise StoreError(f"{k!r} is not an optional key of this store "
                                 f"(optional: {sorted(k for k, s in self.schema.items() if s.optional)})")
        self._recording = _Recording(source, instruction, policy_version, critic_version, tuple(optional_keys),
                                     time.time(), episode_id, robot)

    def add(self, frame: dict[str, np.ndarray | float]) -> None:
        """Append one step; a bad frame raises :class:`StoreError` and nothing of it is kept."""
        rec = self._require_recording()
        wanted = {k for k, s in self.schema.items() if not s.optional or k in rec.optional_keys}
        missing, extra = wanted - set(frame), set(frame) - wanted
        if missing or extra:
            raise StoreError(f"frame keys differ from the episode's: missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        checked = {}
        for key in wanted:
            spec = self.schema[key]
            value = np.asarray(frame[key])
            if value.shape != spec.shape:
                raise StoreError(f"{key!r} has shape {value.shape}, expected {spec.shape}")
            if not np.can_cast(value.dtype, spec.dtype, "same_kind"):
                raise StoreError(f"{key!r} has dtype {value.dtype}, expected {spec.dtype}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise StoreError(f"{key!r} contains NaN or infinite values")
            checked[key] = value.astype(spec.dtype, copy=False)
        t = float(checked["timestamp"])
        if rec.frames and t <= rec.last_timestamp:
            raise StoreError(f"timestamp {t} is not after the previous frame's {rec.last_timestamp}")
        rec.last_timestamp = t
        for key, value in checked.items():
            rec.buffer.setdefault(key, []).append(value)
        rec.frames += 1
        if len(rec.buffer["timestamp"]) >= FRAME_CHUNK:
            self._flush(rec)

    def _flush(self, rec: _Recording) -> None:
        n = len(rec.buffer.get("timestamp", []))
        if n == 0:
            return
        start = self.frames + rec.flushed
        for key, spec in self.schema.items():
            arr = self.root[f"data/{key}"]
            arr.resize((start + n, *spec.shape))
            if key in rec.buffer:
                arr[start:start + n] = np.stack(rec.buffer[key])
        rec.flushed += n
        rec.buffer = {}

    def end(self, success: bool, partial: bool = False, source: Source | None = None,
            outcome: Outcome = Outcome()) -> EpisodeInfo:
        """Write the episode and commit it atomically; returns its table row. ``partial``: what survived of an
        episode whose recorder crashed (kept for its transitions, flagged, never counted as an outcome).
        ``source`` replaces the one given to :meth:`begin` (a rollout an operator took over: intervention);
        ``outcome`` says who gave the outcome."""
        rec = self._require_recording()
        if outcome.source not in ("", *OUTCOME_SOURCES) or outcome.classifier_success not in (-1, 0, 1):
            raise StoreError(f"outcome source must be one of {OUTCOME_SOURCES} and classifier_success -1, 0 or 1, "
                             f"got {outcome}")
        if source is not None:
            if source not in SOURCES:
                raise StoreError(f"source must be one of {SOURCES}, got {source!r}")
            rec.source = source
        if rec.frames == 0:
            raise StoreError("an episode needs at least one frame; discard() an empty one")
        if partial and success:
            raise StoreError("a partial episode has no outcome: it cannot be marked a success")
        self._flush(rec)
        index, start, end = self.episodes, self.frames, self.frames + rec.frames
        row = {"start": start, "end": end, "success": bool(success), "source": SOURCES.index(rec.source),
               "policy_version": rec.policy_version, "critic_version": rec.critic_version,
               "instruction": rec.instruction, "wall_start": rec.wall_start, "wall_end": time.time(),
               "keys": json.dumps(list(rec.optional_keys)), "episode_id": rec.episode_id, "partial": partial,
               "outcome_source": outcome.source, "classifier_version": outcome.classifier_version,
               "classifier_success": outcome.classifier_success, "robot": rec.robot}
        for column, value in row.items():
            arr = self.root.get(f"meta/episodes/{column}")
            if not isinstance(arr, zarr.Array):  # a column this store was made without
                dtype, default = _LATER_COLUMNS[column]
                arr = self.root.create_array(f"meta/episodes/{column}", shape=(index,), chunks=(TABLE_CHUNK,),
                                             dtype=dtype, fill_value=default)
            arr.resize((index + 1,))
            arr[index] = value
        self.root.attrs["committed"] = {"episodes": index + 1, "frames": end}  # the commit point
        self.episodes, self.frames = index + 1, end
        self._recording = None
        return _row_info(index, row)

    def save_norm_stats(self, keys: list[str], masks: dict[str, list[bool]] | None = None) -> dict:
        """Compute statistics of ``keys`` over every committed frame and save them in the store."""
        if self._recording is not None:
            raise StoreError("finish or discard the episode being recorded before computing statistics")
        out = {}
        for key in keys:
            spec = self.schema.get(key)
            if spec is None or spec.optional or spec.is_image:
                raise StoreError(f"statistics are for numeric per-step keys every episode has; {key!r} is "
                                 f"{'unknown' if spec is None else 'optional' if spec.optional else 'an image'}")
            with _reading(self.path, f"the frames of {key!r}"):
                frames = self.root[f"data/{key}"][: self.frames]
            out[key] = key_stats(frames, (masks or {}).get(key))
        self.root.attrs["norm_stats"] = {"frames": self.frames, "keys": out}
        return out

    def discard(self) -> None:
        """Drop the episode being recorded; frames already flushed are cut back."""
        self._require_recording()
        self._recording = None
        self._drop_partial()

    def _require_recording(self) -> _Recording:
        if self._recording is None:
            raise StoreError("no episode is being recorded; call begin() first")
        return self._recording

    def close(self) -> None:
        """Release the lock; an episode still being recorded is discarded."""
        if self._recording is not None:
            self.discard()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Recording:
    source: Source
    instruction: str
    policy_version: int
    critic_version: int
    optional_keys: tuple[str, ...]
    wall_start: float
    episode_id: str
    robot: str
    frames: int = 0
    flushed: int = 0
    last_timestamp: float = float("-inf")
    buffer: dict[str, list[np.ndarray]] = field(default_factory=dict)
