"""LeRobotDataset v3.0 directories to and from the episode store.

The layout (as written by huggingface/lerobot, codebase_version "v3.0")::

    meta/info.json                        codebase_version, fps, features, totals, path templates
    meta/stats.json                       per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                    task_index, with the task strings as the pandas index ("task")
    meta/episodes/chunk-000/file-000.parquet   one row per episode: tasks, length, the file and row range of
                                          its frames, its frames' time span in each video file, stats/<feature>/*
    data/chunk-CCC/file-FFF.parquet       one row per frame, many episodes per file
    videos/<key>/chunk-CCC/file-FFF.mp4   one camera, many episodes per file; episode e is the frames from
                                          videos/<key>/from_timestamp on, LeRobot's ``timestamp`` = frame_index / fps

Keys: ``images/<cam>`` <-> ``observation.images.<cam>`` (video), ``proprio`` <-> ``observation.state``,
``state`` <-> ``observation.environment_state``, ``action`` <-> ``action``, ``reward`` <-> ``next.reward``; any
other key keeps its name (``/`` becomes ``.``, which LeRobot requires). Our own timestamps travel as the extra
feature ``source_timestamp``, an episode's success as ``next.success`` (set on its last frame), its instruction as
its task. Optional keys (``candidates``) are left out: every LeRobot frame has every feature. A LeRobot feature of
shape (1,) is a scalar column and comes back as a scalar key (shape ()).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import ROBOT_UNITS, SOURCES, EpisodeStore, KeySpec, Source, StoreError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
CHUNKS_SIZE = 1000  # files per chunk directory
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
SOURCE_TIMESTAMP = "source_timestamp"
SUCCESS = "next.success"
EXPORT_NAMES = {"proprio": "observation.state", "state": "observation.environment_state", "action": "action",
                "actions": "action", "reward": "next.reward"}
IMPORT_KEYS = {"observation.state": "proprio", "observation.environment_state": "state", "action": "action",
               "next.reward": "reward"}


class LeRobotError(StoreError):
    """A LeRobot dataset, or an export of a store, that cannot be done as asked."""


@dataclass
class LeRobotReport:
    """What a conversion wrote."""

    path: Path
    episodes: int
    frames: int
    keys: dict[str, str] = field(default_factory=dict)  # source key -> destination key
    skipped: list[str] = field(default_factory=list)  # source keys not carried over


def _position(number: int) -> dict[str, int]:
    """The n-th file of a sequence as LeRobot numbers it: chunk directories of CHUNKS_SIZE files."""
    return {"chunk_index": number // CHUNKS_SIZE, "file_index": number % CHUNKS_SIZE}


def _number(x: float) -> int | float:
    """LeRobot writes its size limits as integers; keep a fractional one as it is."""
    return int(x) if float(x).is_integer() else float(x)


def _sibling(path: Path) -> Path:
    """A new temporary directory next to ``path``, so the final rename stays on one file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))


def _publish(tmp: Path, path: Path) -> None:
    if path.exists():  # created while we worked: rename would replace an empty directory silently
        raise LeRobotError(f"{path} appeared during the conversion; nothing was written there")
    os.rename(tmp, path)


# statistics -------------------------------------------------------------------------------------------------


def _stats(x: np.ndarray, count: int | None = None) -> dict[str, np.ndarray]:
    """LeRobot's statistics over axis 0 (a scalar column keeps a length-1 axis)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0),
           "count": np.array([len(x) if count is None else count])}
    out.update({f"q{round(q * 100):02d}": np.quantile(x, q, axis=0) for q in QUANTILES})
    return out


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics in [0, 1], shaped (3, 1, 1) like LeRobot's; on at most 100 frames, as it samples."""
    picked = frames[np.unique(np.linspace(0, len(frames) - 1, min(len(frames), 100)).round().astype(int))]
    stats = _stats(picked.reshape(-1, 3) / 255.0, count=len(picked))
    return {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in stats.items()}


def _aggregate(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from episode statistics, as LeRobot aggregates them (quantiles: an envelope)."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    w = counts.reshape(-1, *([1] * np.ndim(per_episode[0]["mean"]))) / counts.sum()
    means = np.stack([s["mean"] for s in per_episode])
    mean = (means * w).sum(0)
    var = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2) * w).sum(0)
    out = {"min": np.min([s["min"] for s in per_episode], 0), "max": np.max([s["max"] for s in per_episode], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(counts.sum())])}
    for q in (k for k in per_episode[0] if k.startswith("q")):
        out[q] = (np.min if int(q[1:]) <= 50 else np.max)([s[q] for s in per_episode], 0)
    return out


# export -----------------------------------------------------------------------------------------------------


class _ParquetFiles:
    """Data parquet files: each episode one row group (as LeRobot writes them), a new file past the size limit."""

    def __init__(self, root: Path, limit_mb: float):
        self.root, self.limit, self.number, self.writer, self.bytes = root, limit_mb * 2**20, -1, None, 0

    def append(self, table) -> dict[str, int]:
        import pyarrow.parquet as pq

        if self.writer is None or (self.bytes and self.bytes + table.nbytes > self.limit):
            self.close()
            self.number += 1
            path = self.root / DATA_PATH.format(**_position(self.number))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer, self.bytes = pq.ParquetWriter(path, table.schema, compression="snappy"), 0
        self.writer.write_table(table)
        self.bytes += table.nbytes
        return _position(self.number)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _Mp4Files:
    """One camera's MP4 files (H.264, yuv420p): episodes appended to a file until it passes the size limit."""

    def __init__(self, root: Path, key: str, fps: int, crf: int, limit_mb: float):
        self.root, self.key, self.fps, self.crf, self.limit = root, key, fps, crf, limit_mb * 2**20
        self.number, self.container, self.stream, self.frames, self.bytes = -1, None, None, 0, 0

    def append(self, frames: np.ndarray) -> tuple[dict[str, int], float]:
        """Encode an episode's frames [T, H, W, 3]; returns the file's position and the episode's start time."""
        import av

        if self.container is None or self.bytes >= self.limit:
            self.close()
            self.number += 1
            path = self.root / VIDEO_PATH.format(video_key=self.key, **_position(self.number))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(path), mode="w", format="mp4")
            self.stream = self.container.add_stream("libx264", rate=self.fps)
            self.stream.height, self.stream.width = frames.shape[1:3]
            self.stream.pix_fmt = "yuv420p"
            # A keyframe every 2 frames (LeRobot's default) keeps seeking to an episode cheap; with so short a
            # GOP there is nothing to look ahead to, and zerolatency makes each frame's packet come out at
            # once, so the bytes muxed so far are the file's size when the next episode asks.
            self.stream.options = {"crf": str(self.crf), "g": "2", "tune": "zerolatency"}
            self.frames = self.bytes = 0
        start = self.frames
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
            self._mux(self.stream.encode(frame))
            self.frames += 1
        return _position(self.number), start / self.fps

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes += packet.size
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is not None:
            self._mux(self.stream.encode())
            self.container.close()
            self.container = None


def _arrow_column(values: np.ndarray):
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _export_names(schema: dict[str, KeySpec], key_map: Mapping[str, str | None] | None
                  ) -> tuple[dict[str, str], list[str]]:
    """Store key -> LeRobot feature name for every exported key, and the keys left out."""
    wanted = dict(key_map or {})
    names, skipped = {}, []
    for key, spec in schema.items():
        if key == "timestamp":
            continue
        default = (f"observation.images.{key.removeprefix('images/')}" if spec.is_image else EXPORT_NAMES.get(key, key))
        asked = key in wanted
        name = wanted.pop(key, default.replace("/", "."))
        if spec.optional and asked and name is not None:
            raise LeRobotError(f"{key!r} is optional (only some episodes have it); every LeRobot frame has every "
                               f"feature, so it cannot be exported")
        if name is None or spec.optional:
            skipped.append(key)
            continue
        if "/" in name:
            raise LeRobotError(f"LeRobot feature names cannot contain '/': {key!r} -> {name!r}")
        if not spec.is_image and len(spec.shape) > 1:
            raise LeRobotError(f"{key!r} has shape {spec.shape}; LeRobot features here are scalars or vectors "
                               f"(map it to None to leave it out)")
        if spec.is_image and (spec.shape[0] % 2 or spec.shape[1] % 2 or spec.shape[2] != 3):
            raise LeRobotError(f"{key!r} has shape {spec.shape}; videos here are RGB (H, W, 3) with even H and W "
                               f"(H.264 in yuv420p)")
        names[key] = name
    if wanted:
        raise LeRobotError(f"key_map names keys the store does not have: {sorted(wanted)} (it has {sorted(schema)})")
    taken = [*names.values(), SOURCE_TIMESTAMP, SUCCESS, *INDEX_FEATURES]
    clashes = sorted({n for n in taken if taken.count(n) > 1})
    if clashes:
        raise LeRobotError(f"several store keys would become the LeRobot features {clashes}; choose names in key_map")
    return names, skipped


def _tasks_table(tasks: dict[str, int]):
    import pyarrow as pa

    # LeRobot reads tasks.parquet with pandas and looks tasks up by the index: the pandas metadata below is
    # what DataFrame.to_parquet writes for an index named "task", so pd.read_parquet restores it.
    pandas_meta = {"index_columns": ["task"], "creator": {"library": "pyarrow"},
                   "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                                       "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}]}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _info_features(schema: dict[str, KeySpec], names: dict[str, str], fps: int) -> dict[str, dict]:
    """info.json's features: the exported keys, then ours (source_timestamp, next.success), then LeRobot's own."""
    features: dict[str, dict] = {}
    for key, name in names.items():
        spec = schema[key]
        if spec.is_image:
            h, w, _ = spec.shape
            features[name] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                              "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                                       "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                                       "video.channels": 3, "has_audio": False}}
        else:
            features[name] = {"dtype": spec.dtype, "shape": list(spec.shape or (1,)), "names": None}
    features[SOURCE_TIMESTAMP] = {"dtype": "float64", "shape": [1], "names": None}
    features[SUCCESS] = {"dtype": "bool", "shape": [1], "names": None}
    features.update({k: {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
                     for k in INDEX_FEATURES})
    return features


def export_lerobot(store_path: str | Path, out_dir: str | Path, fps: int,
                   key_map: Mapping[str, str | None] | None = None, robot_type: str | None = None, crf: int = 18,
                   data_file_mb: float = 100.0, video_file_mb: float = 200.0) -> LeRobotReport:
    """Write every committed episode of a store as a new LeRobotDataset v3.0 directory ``out_dir``.

    ``fps`` is the dataset's frame rate (LeRobot's timestamps are frame_index / fps); ``key_map`` overrides the
    feature name of a store key (None leaves the key out). The directory is built next to ``out_dir`` and
    renamed into place at the end, so a failed export leaves nothing; an existing ``out_dir`` is refused.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    if out.exists():
        raise LeRobotError(f"{out} already exists; the export writes a new directory (remove it or pick another)")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps <= 0:
        raise LeRobotError(f"fps must be a positive integer (LeRobot stores an integer frame rate), got {fps!r}")
    fps = int(fps)
    if not (data_file_mb > 0 and video_file_mb > 0):
        raise LeRobotError(f"file size limits must be positive, got {data_file_mb} and {video_file_mb} MB")
    store = EpisodeStore(store_path)
    if len(store) == 0:
        raise LeRobotError(f"{store.path} has no committed episodes to export")
    names, skipped = _export_names(store.schema, key_map)
    cameras = {k: n for k, n in names.items() if store.schema[k].is_image}
    tmp = _sibling(out)
    data = _ParquetFiles(tmp, data_file_mb)
    videos = {n: _Mp4Files(tmp, n, fps, crf, video_file_mb) for n in cameras.values()}
    try:
        tasks: dict[str, int] = {}
        rows, ep_stats, total = [], [], 0
        for e in range(len(store)):
            info, arrays = store.info(e), store.episode(e, ["timestamp", *names])
            n, task = len(info), tasks.setdefault(info.instruction, len(tasks))
            # a (1,) key is a scalar column, as LeRobot stores shape-(1,) features
            columns = {names[k]: v.reshape(n) if v.shape[1:] == (1,) else v
                       for k, v in arrays.items() if k in names and k not in cameras}
            columns[SOURCE_TIMESTAMP] = arrays["timestamp"]
            columns[SUCCESS] = np.arange(n) == n - 1 if info.success else np.zeros(n, bool)
            columns.update(timestamp=(np.arange(n) / fps).astype(np.float32), frame_index=np.arange(n, dtype=np.int64),
                           episode_index=np.full(n, e, np.int64), index=np.arange(total, total + n, dtype=np.int64),
                           task_index=np.full(n, task, np.int64))
            where = data.append(pa.table({k: _arrow_column(np.asarray(v)) for k, v in columns.items()}))
            stats = {k: _stats(v) for k, v in columns.items()}
            row = {"episode_index": e, "tasks": [info.instruction], "length": n,
                   "data/chunk_index": where["chunk_index"], "data/file_index": where["file_index"],
                   "dataset_from_index": total, "dataset_to_index": total + n}
            for key, name in cameras.items():
                where, start = videos[name].append(arrays[key])
                row.update({f"videos/{name}/chunk_index": where["chunk_index"],
                            f"videos/{name}/file_index": where["file_index"],
                            f"videos/{name}/from_timestamp": start, f"videos/{name}/to_timestamp": start + n / fps})
                stats[name] = _image_stats(arrays[key])
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            row.update({f"stats/{f}/{s}": v.tolist() for f, st in stats.items() for s, v in st.items()})
            rows.append(row)
            ep_stats.append(stats)
            total += n
        data.close()
        for video in videos.values():
            video.close()
        (tmp / EPISODES_PATH).parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp / EPISODES_PATH)
        pq.write_table(_tasks_table(tasks), tmp / "meta/tasks.parquet")
        if robot_type is None and isinstance(store.robot_spec, dict):
            robot_type = store.robot_spec.get("name")
        info_json = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(rows),
                     "total_frames": total, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
                     "data_files_size_in_mb": _number(data_file_mb), "video_files_size_in_mb": _number(video_file_mb),
                     "fps": fps, "splits": {"train": f"0:{len(rows)}"}, "data_path": DATA_PATH,
                     "video_path": VIDEO_PATH if cameras else None,
                     "features": _info_features(store.schema, names, fps)}
        (tmp / "meta/info.json").write_text(json.dumps(info_json, indent=4))
        stats_json = {f: {s: v.tolist() for s, v in _aggregate([st[f] for st in ep_stats]).items()}
                      for f in ep_stats[0]}
        (tmp / "meta/stats.json").write_text(json.dumps(stats_json, indent=4))
        _publish(tmp, out)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            data.close()
            for video in videos.values():
                video.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return LeRobotReport(out, len(rows), total, {"timestamp": SOURCE_TIMESTAMP, **names}, skipped)


# import -----------------------------------------------------------------------------------------------------


class _VideoReader:
    """Frames of one MP4 read forward; reopened when an earlier frame is wanted."""

    def __init__(self, path: Path, fps: int):
        self.path, self.fps, self.container, self.frames, self.next = path, fps, None, None, 0

    def take(self, start: int, count: int) -> list[np.ndarray]:
        """Frames start .. start + count - 1 (frame i shown at i / fps); fewer where the video ends or skips."""
        import av

        if self.container is None or start < self.next:
            self.close()
            self.container = av.open(str(self.path))
            self.frames, self.next = self.container.decode(video=0), 0
        out: list[np.ndarray] = []
        for frame in self.frames:
            index = round(frame.time * self.fps) if frame.time is not None else self.next
            self.next = index + 1
            if index >= start:
                if index != start + len(out):
                    break
                out.append(frame.to_ndarray(format="rgb24"))
                if len(out) == count:
                    break
        return out

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _numpy_column(table, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """A parquet column as [rows, *shape], refused when its values do not have the feature's shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        raise LeRobotError(f"{path}: no column {name!r} (meta/info.json lists it; columns: {table.column_names})")
    column = table.column(name).combine_chunks()
    if column.null_count:
        raise LeRobotError(f"{path}: column {name!r} has {column.null_count} missing values")
    width = int(np.prod(shape))
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
        lengths = set(pc.list_value_length(column).to_numpy().tolist())
        if lengths - {width}:
            raise LeRobotError(f"{path}: column {name!r} holds vectors of length {sorted(lengths)}, but "
                               f"meta/info.json gives the feature shape {list(shape)}")
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), *shape)
    if width != 1:
        raise LeRobotError(f"{path}: column {name!r} holds scalars, but meta/info.json gives the feature shape "
                           f"{list(shape)}")
    return column.to_numpy(zero_copy_only=False)


def _import_plan(features: dict, key_map: Mapping[str, str | None] | None) -> tuple[dict[str, str], dict, list]:
    """LeRobot feature -> store key, the store schema, and the features left out."""
    wanted = dict(key_map or {})
    keys, schema, skipped = {}, {"timestamp": KeySpec("float64", ())}, []
    for name, ft in features.items():
        if name in INDEX_FEATURES or name in (SOURCE_TIMESTAMP, SUCCESS):
            continue
        dtype, shape = ft.get("dtype"), tuple(ft.get("shape") or ())
        if dtype == "video":
            rest = name.removeprefix("observation.images.") if name.startswith("observation.images.") else name
            key = wanted.pop(name, "images/" + rest.removeprefix("observation."))
        else:
            key = wanted.pop(name, IMPORT_KEYS.get(name, name))
        if key is None or dtype in ("string", "language"):
            skipped.append(name)
            continue
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise LeRobotError(f"meta/info.json: video feature {name!r} has shape {list(shape)}, expected "
                                   f"[height, width, 3]")
            spec = KeySpec("uint8", shape)
        elif dtype == "image":
            raise LeRobotError(f"meta/info.json: {name!r} keeps its frames as images inside the parquet files; only "
                               f"video features are imported (map it to None to leave it out)")
        else:
            if dtype not in ("bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                             "uint16", "uint32", "uint64") or len(shape) != 1:
                raise LeRobotError(f"meta/info.json: feature {name!r} is {dtype} {list(shape)}; the importer takes "
                                   f"numeric scalars and vectors (map it to None to leave it out)")
            spec = KeySpec(dtype, () if shape == (1,) else shape, units=ROBOT_UNITS if key == "action" else "")
        if key in schema:
            raise LeRobotError(f"features {name!r} and another both map to the store key {key!r}; set key_map")
        keys[name], schema[key] = key, spec
    if wanted:
        raise LeRobotError(f"key_map names features the dataset does not have: {sorted(wanted)}")
    return keys, schema, skipped


def _read_meta(root: Path) -> tuple[dict, dict[int, str], list[dict]]:
    """info.json, task_index -> task, and the episode rows ordered by episode_index; refused when inconsistent."""
    import pyarrow.parquet as pq

    info_path = root / "meta/info.json"
    if not info_path.is_file():
        raise LeRobotError(f"{info_path} is missing: {root} is not a LeRobot dataset")
    info = json.loads(info_path.read_text())
    version = str(info.get("codebase_version", ""))
    if not re.fullmatch(r"v3\.\d+", version):
        raise LeRobotError(f"{info_path}: codebase_version {version!r}; this importer reads LeRobotDataset v3.x "
                           f"(convert older datasets with lerobot's convert_dataset_v21_to_v30 first)")
    missing = [k for k in ("fps", "features", "data_path", "total_episodes", "total_frames") if k not in info]
    if missing:
        raise LeRobotError(f"{info_path}: no {missing}")
    tasks_path = root / "meta/tasks.parquet"
    if not tasks_path.is_file():
        raise LeRobotError(f"{tasks_path} is missing: the task of each frame cannot be read")
    table = pq.read_table(tasks_path)
    pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    text = next((c for c in ["task", *pandas_meta.get("index_columns", [])]
                 if isinstance(c, str) and c in table.column_names), None)
    if text is None or "task_index" not in table.column_names:
        raise LeRobotError(f"{tasks_path}: expected the columns task and task_index, found {table.column_names}")
    tasks = dict(zip(table.column("task_index").to_pylist(), table.column(text).to_pylist()))
    episode_files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not episode_files:
        raise LeRobotError(f"{root / 'meta/episodes'}: no chunk-*/file-*.parquet with the episode table")
    rows = [r for p in episode_files for r in pq.read_table(p).to_pylist()]
    videos = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    if videos and not info.get("video_path"):
        raise LeRobotError(f"{info_path}: video features {videos} but no video_path")
    needed = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
              "dataset_to_index", *(f"videos/{k}/{c}" for k in videos for c in ("chunk_index", "file_index",
                                                                                 "from_timestamp"))]
    absent = sorted({c for r in rows for c in needed if r.get(c) is None})
    if absent:
        raise LeRobotError(f"{root / 'meta/episodes'}: episode rows without {absent}")
    rows.sort(key=lambda r: r["episode_index"])
    frames = sum(r["length"] for r in rows)
    if len(rows) != info["total_episodes"] or frames != info["total_frames"]:
        raise LeRobotError(f"{root / 'meta/episodes'} lists {len(rows)} episodes of {frames} frames, but "
                           f"{info_path} gives {info['total_episodes']} and {info['total_frames']}")
    return info, tasks, rows


class _DatasetReader:
    """An episode's frames from the data files and videos: each file read once, in order."""

    def __init__(self, root: Path, info: dict, keys: dict[str, str], schema: dict[str, KeySpec]):
        self.root, self.info, self.keys, self.schema, self.fps = root, info, keys, schema, int(info["fps"])
        features = info["features"]
        self.clock = SOURCE_TIMESTAMP if SOURCE_TIMESTAMP in features else "timestamp"
        self.columns = {n: tuple(features[n]["shape"]) for n in keys if features[n]["dtype"] != "video"}
        self.columns.update({n: (1,) for n in ("episode_index", "frame_index", "index", "task_index", self.clock)})
        if SUCCESS in features:
            self.columns[SUCCESS] = (1,)
        self.cameras = {n: k for n, k in keys.items() if features[n]["dtype"] == "video"}
        self.videos: dict[Path, _VideoReader] = {}
        self.path: Path | None = None
        self.data: dict[str, np.ndarray] = {}

    def _rows(self, row: dict) -> np.ndarray:
        """An episode's rows in its data file, in frame order, checked against its row in meta/episodes."""
        import pyarrow.parquet as pq

        e, n = row["episode_index"], row["length"]
        path = self.root / self.info["data_path"].format(chunk_index=row["data/chunk_index"],
                                                         file_index=row["data/file_index"])
        if path != self.path:
            if not path.is_file():
                raise LeRobotError(f"{path} (episode {e}'s frames) is missing")
            table = pq.read_table(path)
            self.data = {c: _numpy_column(table, c, s, path) for c, s in self.columns.items()}
            self.path = path
        at = np.flatnonzero(self.data["episode_index"] == e)
        at = at[np.argsort(self.data["frame_index"][at], kind="stable")]
        expected = np.arange(row["dataset_from_index"], row["dataset_to_index"])
        if len(at) != n or not np.array_equal(self.data["index"][at], expected):
            raise LeRobotError(f"{path}: episode {e} has {len(at)} rows with indices {self.data['index'][at][:3]}..., "
                               f"but meta/episodes gives {n} frames from index {row['dataset_from_index']}")
        return at

    def _video(self, row: dict, name: str) -> np.ndarray:
        e, n = row["episode_index"], row["length"]
        path = self.root / self.info["video_path"].format(video_key=name, chunk_index=row[f"videos/{name}/chunk_index"],
                                                          file_index=row[f"videos/{name}/file_index"])
        if not path.is_file():
            raise LeRobotError(f"{path} ({name}, episode {e}) is missing")
        start = round(row[f"videos/{name}/from_timestamp"] * self.fps)
        images = self.videos.setdefault(path, _VideoReader(path, self.fps)).take(start, n)
        if len(images) < n:
            raise LeRobotError(f"{path} ({name}): episode {e} needs {n} frames from frame {start} "
                               f"({start / self.fps:.3f} s), the video has {len(images)} of them")
        shape = self.schema[self.cameras[name]].shape
        if images[0].shape != shape:
            raise LeRobotError(f"{path} ({name}): frames are {images[0].shape}, meta/info.json gives the feature "
                               f"shape {list(shape)}")
        return np.stack(images)

    def episode(self, row: dict) -> tuple[dict[str, np.ndarray], int, bool]:
        """An episode's store keys [length, ...], its first frame's task_index and whether it succeeded."""
        at = self._rows(row)
        n = len(at)
        frames = {k: self.data[col][at].reshape(n, *self.schema[k].shape) for col, k in self.keys.items()
                  if col not in self.cameras}
        frames["timestamp"] = self.data[self.clock][at].astype(np.float64)
        frames.update({k: self._video(row, name) for name, k in self.cameras.items()})
        success = bool(self.data[SUCCESS][at].any()) if SUCCESS in self.data else False
        return frames, int(self.data["task_index"][at[0]]), success

    def close(self) -> None:
        for reader in self.videos.values():
            reader.close()


def import_lerobot(in_dir: str | Path, store_path: str | Path, source: Source = "teleop",
                   key_map: Mapping[str, str | None] | None = None, robot_spec: dict | None = None) -> LeRobotReport:
    """Read a LeRobotDataset v3.x directory into a new episode store, one episode per LeRobot episode.

    Each episode's instruction is its first frame's task, its success ``next.success`` on any frame (False
    without that feature), its timestamps ``source_timestamp`` if present, else LeRobot's. ``key_map`` overrides
    the store key of a LeRobot feature (None leaves it out). The store is built next to ``store_path`` and
    renamed into place at the end, so a refused dataset leaves nothing behind.
    """
    root, dest = Path(in_dir), Path(store_path)
    if dest.exists():
        raise LeRobotError(f"{dest} already exists; the import creates a new store")
    if source not in SOURCES:
        raise LeRobotError(f"source must be one of {SOURCES}, got {source!r}")
    info, tasks, rows = _read_meta(root)
    keys, schema, skipped = _import_plan(info["features"], key_map)
    if robot_spec is None and info.get("robot_type"):
        robot_spec = {"name": info["robot_type"]}
    reader = _DatasetReader(root, info, keys, schema)
    tmp = _sibling(dest)
    try:
        store = EpisodeStore.create(tmp, schema, robot_spec=robot_spec)
        with store.writer(f"robot-parl LeRobot import of {root}") as writer:
            for row in rows:
                frames, task, success = reader.episode(row)
                if task not in tasks:
                    raise LeRobotError(f"episode {row['episode_index']} has task_index {task}, which "
                                       f"{root / 'meta/tasks.parquet'} lacks")
                writer.begin(source, instruction=str(tasks[task]))
                for j in range(row["length"]):
                    writer.add({k: v[j] for k, v in frames.items()})
                writer.end(success)
        _publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
    return LeRobotReport(dest, len(rows), sum(r["length"] for r in rows), {reader.clock: "timestamp", **keys},
                         skipped)
