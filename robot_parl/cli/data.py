"""`robot-parl data ...`: episode stores (inspect, statistics, bag import, videos, LeRobot v3 import and export)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from robot_parl.data.episode_store import SOURCES


def add_parser(sub) -> None:
    """Register the command's parser."""
    data_parser = sub.add_parser("data", help="episode stores: inspect, statistics, bag import, videos, "
                                              "LeRobot v3 import/export")
    data = data_parser.add_subparsers(dest="data", required=True)
    inspect = data.add_parser("inspect", help="schema, episode counts and the last episodes of a store")
    inspect.add_argument("store", help="episode store directory")
    inspect.add_argument("--last", type=int, default=10, help="how many of the last episodes to list")
    inspect.set_defaults(run=_data_inspect)
    stats = data.add_parser("stats", help="compute and save normalization statistics (takes the writer lock)")
    stats.add_argument("store", help="episode store directory")
    stats.add_argument("--keys", nargs="+", default=["action"], help="numeric per-step keys (default: action)")
    stats.add_argument("--not-normalized", nargs="*", default=[], metavar="KEY:DIMS",
                       help="dimensions left un-normalized, e.g. action:6 for a gripper")
    stats.set_defaults(run=_data_stats)
    convert = data.add_parser("convert", help="ROS 2 bags (MCAP or sqlite3) into an episode store, one episode each")
    convert.add_argument("bags", nargs="+", help="rosbag2 directories")
    convert.add_argument("--to", required=True, help="episode store directory (created if missing)")
    convert.add_argument("--map", nargs="+", required=True, metavar="KEY=TOPIC[,TOPIC]",
                         help="store key from topics, e.g. images/front=/camera/image_raw action=/cmd_vel,/gripper")
    convert.add_argument("--clock", help="the key whose topic paces the frames (default: the first image key)")
    convert.add_argument("--tolerance", type=float, default=0.02, help="largest stamp difference matched, seconds")
    convert.add_argument("--source", default="teleop", choices=SOURCES)
    convert.add_argument("--instruction", default="", help="the episodes' language instruction")
    convert.add_argument("--success", action="store_true", help="label the episodes successful")
    convert.set_defaults(run=_data_convert)
    video = data.add_parser("export-video", help="one MP4 (H.264) per episode and camera")
    video.add_argument("store", help="episode store directory")
    video.add_argument("--out", required=True, help="output directory")
    video.add_argument("--episode", type=int, nargs="*", default=[], help="episode indices (default: all)")
    video.add_argument("--camera", nargs="*", default=[], help="camera names (default: all)")
    video.add_argument("--fps", type=float, default=0.0, help="frame rate (default: from the timestamps)")
    video.set_defaults(run=_data_export_video)
    imp = data.add_parser("import-lerobot", help="a LeRobotDataset v3 directory into a new episode store")
    imp.add_argument("dataset", help="LeRobot dataset directory (meta/, data/, videos/)")
    imp.add_argument("--to", required=True, help="new episode store directory (must not exist)")
    imp.add_argument("--source", default="teleop", choices=SOURCES)
    imp.add_argument("--map", nargs="*", default=[], metavar="FEATURE=KEY",
                     help="store key of a LeRobot feature; FEATURE= leaves it out")
    imp.set_defaults(run=_data_import_lerobot)
    exp = data.add_parser("export-lerobot", help="an episode store as a new LeRobotDataset v3 directory")
    exp.add_argument("store", help="episode store directory")
    exp.add_argument("--out", required=True, help="new dataset directory (must not exist)")
    exp.add_argument("--fps", type=int, required=True, help="frame rate (LeRobot timestamps are frame_index / fps)")
    exp.add_argument("--map", nargs="*", default=[], metavar="KEY=FEATURE",
                     help="LeRobot feature name of a store key; KEY= leaves it out")
    exp.add_argument("--robot-type", default=None, help="info.json robot_type (default: the store's robot spec name)")
    exp.add_argument("--crf", type=int, default=18, help="H.264 quality (lower: better, larger)")
    exp.set_defaults(run=_data_export_lerobot)


def _key_map(items: list[str], command: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not src or not sep:
            raise SystemExit(f"robot-parl data {command}: --map expects SRC=DST (an empty DST leaves SRC out), "
                             f"got {item!r}")
        out[src] = dst or None
    return out


def _data_import_lerobot(args: argparse.Namespace) -> int:
    from robot_parl.data.lerobot import import_lerobot

    r = import_lerobot(args.dataset, args.to, source=args.source, key_map=_key_map(args.map, "import-lerobot"))
    print(f"{r.path}: {r.episodes} episodes, {r.frames} frames; keys {r.keys}; left out {r.skipped}")
    return 0


def _data_export_lerobot(args: argparse.Namespace) -> int:
    from robot_parl.data.lerobot import export_lerobot

    r = export_lerobot(args.store, args.out, fps=args.fps, key_map=_key_map(args.map, "export-lerobot"),
                       robot_type=args.robot_type, crf=args.crf)
    print(f"{r.path}: {r.episodes} episodes, {r.frames} frames; features {r.keys}; left out {r.skipped}")
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from robot_parl.data.episode_store import EpisodeStore

    store = EpisodeStore(args.store)
    episodes = store.episodes()
    console = Console()
    console.print(f"[bold]{store.path}[/]: {len(episodes)} episodes, {store.num_frames} frames")
    if store.robot_spec:
        console.print(f"robot spec: {store.robot_spec.get('name', store.robot_spec)}")
    keys = Table("key", "dtype", "shape", "optional")
    for key, spec in store.schema.items():
        keys.add_row(key, spec.dtype, str(tuple(spec.shape)), "yes" if spec.optional else "")
    console.print(keys)
    if episodes:
        sources = Counter(e.source for e in episodes)
        given = Counter(e.outcome.source or "unrecorded" for e in episodes)
        overridden = sum(e.outcome.classifier_success not in (-1, int(e.success)) for e in episodes)
        success = sum(e.success for e in episodes) / len(episodes)
        console.print(f"sources: {dict(sources)}; outcomes given by {dict(given)}; success {success:.1%}; "
                      f"frames per episode {min(map(len, episodes))}-{max(map(len, episodes))}")
        if overridden:
            console.print(f"{overridden} outcomes differ from the success classifier's own call")
        table = Table("episode", "frames", "source", "success", "given by", "policy v", "instruction")
        for e in episodes[-args.last:]:
            table.add_row(str(e.index), str(len(e)), e.source, "yes" if e.success else "no",
                          e.outcome.source or "-", str(e.policy_version), e.instruction)
        console.print(table)
    return 0


def _data_stats(args: argparse.Namespace) -> int:
    from robot_parl.data.episode_store import EpisodeStore

    store = EpisodeStore(args.store)
    masks: dict[str, list[bool]] = {}
    for item in args.not_normalized:
        key, _, dims = item.partition(":")
        if key not in store.schema or not dims:
            raise SystemExit(f"robot-parl data stats: --not-normalized expects KEY:DIM[,DIM] with a key of the "
                             f"store {sorted(store.schema)}, got {item!r}")
        size = int(np.prod(store.schema[key].shape))
        mask = masks.setdefault(key, [True] * size)
        for d in dims.split(","):
            if not d.isdigit() or int(d) >= size:
                raise SystemExit(f"robot-parl data stats: dimension {d!r} of {key!r} is not in [0, {size})")
            mask[int(d)] = False
    with store.writer(f"robot-parl data stats (pid {os.getpid()})") as writer:
        stats = writer.save_norm_stats(args.keys, masks)
    for key, values in stats.items():
        shown = {name: [round(x, 4) if isinstance(x, float) else x for x in v] for name, v in values.items()}
        print(f"{key}: " + ", ".join(f"{name} {v}" for name, v in shown.items()))
    return 0


def _data_export_video(args: argparse.Namespace) -> int:
    from robot_parl.data.episode_store import EpisodeStore
    from robot_parl.data.video import write_mp4

    store = EpisodeStore(args.store)
    cameras = [k for k, s in store.schema.items() if s.is_image]
    chosen = [f"images/{c}" if not c.startswith("images/") else c for c in args.camera] or cameras
    unknown = sorted(set(chosen) - set(cameras))
    if unknown:
        raise SystemExit(f"robot-parl data export-video: no camera {unknown} in the store (cameras: {cameras})")
    episodes = args.episode if args.episode else range(len(store))
    for index in episodes:
        data = store.episode(index, ["timestamp", *chosen])
        steps = np.diff(data["timestamp"])
        fps = args.fps or (1.0 / float(np.median(steps)) if len(steps) else 10.0)
        for key in chosen:
            path = write_mp4(Path(args.out) / f"episode_{index:06d}_{key.split('/', 1)[1]}.mp4", data[key], fps)
            print(f"{path} ({len(data[key])} frames, {fps:.1f} fps)")
    return 0


def _data_convert(args: argparse.Namespace) -> int:
    from robot_parl.data.rosbag_import import import_bag, infer_schema, open_or_create

    mapping: dict[str, list[str]] = {}
    for item in args.map:
        key, _, topics = item.partition("=")
        if not key or not topics:
            raise SystemExit(f"robot-parl data convert: --map expects KEY=TOPIC[,TOPIC...], got {item!r}")
        mapping[key] = topics.split(",")
    clock = args.clock or next((k for k in mapping if k.startswith("images/")), None)
    if clock is None:
        raise SystemExit("robot-parl data convert: name the key whose topic paces the frames with --clock")
    store = open_or_create(args.to, infer_schema(args.bags[0], mapping, args.tolerance))
    with store.writer(f"robot-parl data convert (pid {os.getpid()})") as writer:
        for bag in args.bags:
            r = import_bag(bag, writer, mapping, clock, args.tolerance, args.source, args.instruction, args.success)
            print(f"{bag}: episode {r.episode}, {r.frames} of {r.clock_messages} frames kept "
                  f"(max skew {r.max_skew_s * 1e3:.1f} ms); dropped per key {r.dropped}; late messages {r.late}")
    return 0
