"""ROS 2 bags (rosbag2, MCAP or sqlite3, read with rosbags) into the episode store.

One bag becomes one episode. Each store key is fed by one or more topics (several are concatenated,
e.g. ``action`` = a Twist command and a gripper Float64). One key is the clock: every message of its
topic is a candidate frame, and every other topic contributes the message whose stamp is nearest,
if it lies within the tolerance. Frames without such a match are dropped and counted per key;
messages that arrived (log time) later than the tolerance after their header stamp are counted as late.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import ROBOT_UNITS, EpisodeStore, EpisodeWriter, KeySpec, Source, StoreError
from robot_parl.data.ros_images import compressed_to_rgb, image_to_rgb


@dataclass
class BagImportReport:
    """What an import kept and what it could not align."""

    clock_messages: int
    frames: int
    dropped: dict[str, int] = field(default_factory=dict)  # key -> frames dropped for lack of a match
    late: dict[str, int] = field(default_factory=dict)  # topic -> messages logged later than the tolerance
    max_skew_s: float = 0.0  # the largest |stamp difference| among the kept matches
    episode: int = -1


def _image(msg) -> np.ndarray:
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


def _compressed(msg) -> np.ndarray:
    return compressed_to_rgb(msg.format, msg.data)


def _vector(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


_CONVERTERS = {
    "sensor_msgs/msg/Image": _image,
    "sensor_msgs/msg/CompressedImage": _compressed,
    "sensor_msgs/msg/JointState": lambda m: np.asarray(m.position, dtype=np.float32),
    "sensor_msgs/msg/Joy": lambda m: np.asarray(m.axes, dtype=np.float32),
    "geometry_msgs/msg/Twist": lambda m: _vector(m.linear.x, m.linear.y, m.linear.z,
                                                 m.angular.x, m.angular.y, m.angular.z),
    "geometry_msgs/msg/PoseStamped": lambda m: _vector(m.pose.position.x, m.pose.position.y, m.pose.position.z,
                                                       m.pose.orientation.x, m.pose.orientation.y,
                                                       m.pose.orientation.z, m.pose.orientation.w),
    "std_msgs/msg/Float64": lambda m: _vector(m.data),
    "std_msgs/msg/Float32": lambda m: _vector(m.data),
}
_CONVERTERS["geometry_msgs/msg/TwistStamped"] = lambda m: _CONVERTERS["geometry_msgs/msg/Twist"](m.twist)


@dataclass
class _Stream:
    stamps: np.ndarray  # int64 ns, sorted
    values: list[np.ndarray]


def read_topics(bag: str | Path, topics: Sequence[str], tolerance_s: float) -> tuple[dict[str, _Stream],
                                                                                       dict[str, int]]:
    """Every message of ``topics`` as arrays, ordered by stamp (header stamp, else log time), and the
    number of messages per topic logged later than the tolerance after their stamp."""
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(bag)]) as reader:
        available = {c.topic: c for c in reader.connections}
        missing = sorted(set(topics) - set(available))
        if missing:
            raise ValueError(f"{bag}: no topics {missing}; the bag has {sorted(available)}")
        raw: dict[str, list[tuple[int, np.ndarray]]] = {t: [] for t in topics}
        late = dict.fromkeys(topics, 0)
        conns = [available[t] for t in topics]
        for t in topics:
            if available[t].msgtype not in _CONVERTERS:
                raise ValueError(f"topic {t}: message type {available[t].msgtype} is not supported "
                                 f"({sorted(_CONVERTERS)})")
        for conn, log_ns, data in reader.messages(connections=conns):
            msg = reader.deserialize(data, conn.msgtype)
            header = getattr(msg, "header", None)
            stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec if header is not None else log_ns
            if log_ns - stamp > tolerance_s * 1e9:
                late[conn.topic] += 1
            raw[conn.topic].append((stamp, _CONVERTERS[conn.msgtype](msg)))
    streams = {}
    for topic, items in raw.items():
        items.sort(key=lambda item: item[0])
        streams[topic] = _Stream(np.array([s for s, _ in items], dtype=np.int64), [v for _, v in items])
    return streams, late


def _nearest(stamps: np.ndarray, t: int) -> int:
    """Index of the stamp nearest to t (-1 for no stamps)."""
    if len(stamps) == 0:
        return -1
    j = int(np.searchsorted(stamps, t))
    if j == len(stamps) or (j > 0 and t - stamps[j - 1] <= stamps[j] - t):
        j -= 1
    return j


def import_bag(bag: str | Path, writer: EpisodeWriter, mapping: Mapping[str, Sequence[str]], clock: str,
               tolerance_s: float, source: Source = "teleop", instruction: str = "",
               success: bool = False) -> BagImportReport:
    """Align the mapped topics on the clock key's topic and commit the frames as one episode."""
    if clock not in mapping:
        raise ValueError(f"the clock key {clock!r} is not among the mapped keys {sorted(mapping)}")
    if tolerance_s <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance_s} s")
    unknown = sorted(set(mapping) - set(writer.schema))
    if unknown or "timestamp" in mapping:
        raise StoreError(f"keys {unknown or ['timestamp']} cannot be imported; the store's keys are "
                         f"{sorted(k for k in writer.schema if k != 'timestamp')}")
    topics = sorted({t for ts in mapping.values() for t in ts})
    streams, late = read_topics(bag, topics, tolerance_s)
    clock_stream = streams[mapping[clock][0]]
    tol = int(tolerance_s * 1e9)
    report = BagImportReport(clock_messages=len(clock_stream.stamps), frames=0, dropped=dict.fromkeys(mapping, 0),
                             late={t: n for t, n in late.items() if n})
    writer.begin(source, instruction=instruction)
    last = None
    try:
        for t in clock_stream.stamps:
            if last is not None and t <= last:
                continue  # a repeated stamp: one frame per instant
            frame, skew, missing = {"timestamp": t / 1e9}, 0, None
            for key, key_topics in mapping.items():
                parts = []
                for topic in key_topics:
                    stream = streams[topic]
                    j = _nearest(stream.stamps, int(t))
                    if j < 0 or abs(int(stream.stamps[j]) - int(t)) > tol:
                        missing = key
                        break
                    skew = max(skew, abs(int(stream.stamps[j]) - int(t)))
                    parts.append(stream.values[j])
                if missing:
                    break
                frame[key] = parts[0] if len(parts) == 1 else np.concatenate([np.ravel(p) for p in parts])
            if missing:
                report.dropped[missing] += 1
                continue
            writer.add(frame)
            last = t
            report.frames += 1
            report.max_skew_s = max(report.max_skew_s, skew / 1e9)
        if report.frames == 0:
            raise ValueError(f"{bag}: no frame could be aligned within {tolerance_s} s (dropped per key: "
                             f"{report.dropped})")
        report.episode = writer.end(success).index
    except BaseException:
        writer.discard()
        raise
    return report


def infer_schema(bag: str | Path, mapping: Mapping[str, Sequence[str]], tolerance_s: float) -> dict[str, KeySpec]:
    """A store schema for the mapped keys, from the first message of each topic."""
    streams, _ = read_topics(bag, sorted({t for ts in mapping.values() for t in ts}), tolerance_s)
    schema = {"timestamp": KeySpec("float64", ())}
    for key, topics in mapping.items():
        firsts = [streams[t].values[0] for t in topics if streams[t].values]
        if len(firsts) != len(topics):
            raise ValueError(f"key {key!r}: some of its topics {list(topics)} have no messages")
        value = firsts[0] if len(firsts) == 1 else np.concatenate([np.ravel(v) for v in firsts])
        schema[key] = KeySpec(str(value.dtype), tuple(value.shape), units=ROBOT_UNITS if key == "action" else "")
    return schema


def open_or_create(path: str | Path, schema: dict[str, KeySpec]) -> EpisodeStore:
    """The store at ``path``, created with ``schema`` if there is none."""
    path = Path(path)
    return EpisodeStore(path) if (path / "zarr.json").is_file() else EpisodeStore.create(path, schema)
