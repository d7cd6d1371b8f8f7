"""`robot-parl`: the command-line entry point.

Commands import torch only when they run, so `robot-parl --help` answers fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_parl.calibration.cli import add_parser as add_calibrate_parser

DEMO_LINE_EVERY_S = 30.0  # without a terminal, the demo prints a progress line per phase this often
REALSENSE_HELP = ("a RealSense (pyrealsense2, no ROS driver) as this spec camera, by serial; repeat for more. It "
                  "streams 640x480 at 30 fps (a calibrated camera: its calibration's size), resized to the spec's size")


def _demo(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robot_parl import typed_config
    from robot_parl.eval.curves import plot_success_curves
    from robot_parl.files import atomic_write
    from robot_parl.runtime.local_session import LocalSession, SessionConfig

    torch.set_num_threads(args.threads)
    console = Console()
    cfg = typed_config.load(SessionConfig, args.config, args.overrides)
    out = Path(args.out)
    if args.tiny_vla:
        _ensure_tiny_vla(cfg, console)
    console.print(f"[bold]robot-parl demo[/]: PA-RL on {cfg.env} with a {cfg.policy.kind} policy -> {out}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        tasks: dict[str, int] = {}
        said: dict[str, float] = {}  # when each phase last printed a line (bars draw only on a terminal)

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)
            now = time.monotonic()
            due = now - said.get(phase, -DEMO_LINE_EVERY_S) >= DEMO_LINE_EVERY_S
            if not console.is_terminal and (due or done == total):
                said[phase] = now
                console.print(f"{phase}: {done}/{total}")

        session = LocalSession(cfg, out, log=progress.console.print)
        if args.resume and session.resume():
            progress.console.print(f"resumed at {session.agent.counters['online_episodes']} online episodes")
            pre = json.loads((out / "pretrain.json").read_text())
        else:
            pre = session.pretrain(report)
            atomic_write(out / "pretrain.json", lambda f: f.write(json.dumps(pre)), mode="w")
        curve = session.finetune(report)
    summary = {
        "task": cfg.env, "policy": cfg.policy.kind, "method": cfg.method, "seed": cfg.seed,
        "success_before": {"policy": pre["bc_success"], "agent": pre["offline_agent_success"]},
        "success_after": {"policy": curve[-1]["policy_success"], "agent": curve[-1]["agent_success"]},
        "pretrain": pre, "curve": curve,
    }
    atomic_write(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2)), mode="w")
    policy_alone = [{**p, "agent_success": p["policy_success"]} for p in curve]
    plot_success_curves({f"{cfg.policy.kind} policy": {"policy + critic": [curve], "policy alone": [policy_alone]}},
                        out / "learning_curve.png", "PA-RL fine-tuning")
    console.print(f"success before: policy {pre['bc_success']:.1%}, policy + critic {pre['offline_agent_success']:.1%}")
    console.print(f"success after:  policy {curve[-1]['policy_success']:.1%}, "
                  f"policy + critic {curve[-1]['agent_success']:.1%}")
    console.print(f"wrote {out / 'summary.json'} and {out / 'learning_curve.png'}")
    return 0


def _ensure_tiny_vla(cfg, console) -> None:
    """Write a tiny randomly initialised VLA where the config's VLA card points, unless one is there."""
    from robot_parl.models.vla.checkpoint import write_random_checkpoint

    if cfg.policy.kind != "vla":
        raise SystemExit("robot-parl: --tiny-vla needs policy.kind=vla")
    checkpoint = Path(cfg.policy.vla.checkpoint)
    if not (checkpoint / "config.json").is_file():
        write_random_checkpoint(checkpoint, seed=cfg.seed)
        (console.print if console is not None else print)(f"wrote a tiny randomly initialised VLA to {checkpoint}")


def _sim_adapter(task: str, spec, seed: int, expert_overrides: list[str] | None):
    """A MuJoCo tabletop task behind the robot side, hosting its scripted expert when overrides are given."""
    from robot_parl import typed_config
    from robot_parl.robots.sim.sim_adapter import SimAdapter
    from robot_parl.robots.sim.tabletop import TabletopEnv
    from robot_parl.robots.sim.tabletop_expert import TabletopExpertConfig

    expert = None
    if expert_overrides is not None:
        expert = typed_config.from_dict(TabletopExpertConfig, typed_config.apply_overrides({}, expert_overrides))
    return SimAdapter(TabletopEnv(task), spec, seed=seed, expert=expert)


def _robot_adapter(args: argparse.Namespace, spec, command: str, expert_overrides: list[str] | None,
                   open_camera=None) -> tuple[Any, list]:
    """The adapter of a robot side that ``command`` runs (the --sim task, else the kinematic arm) with the
    RealSense cameras of ``--realsense CAMERA=SERIAL`` in its frames, and what to close when it is done (the
    cameras' readers and devices).

    ``open_camera`` is robot_parl.cameras.realsense_sources' (tests open software devices with it).
    """
    sources: list = []
    if args.realsense:
        from robot_parl.cameras import CameraError, WithCameras, realsense_sources

        try:  # before the simulator starts: a wrong serial or camera name fails at once
            sources = realsense_sources(args.realsense, spec, "--realsense", open_camera)
        except (ValueError, CameraError, ImportError) as e:
            raise SystemExit(f"robot-parl {command}: {e}") from None
    if args.sim:
        adapter = _sim_adapter(args.sim, spec, args.seed, expert_overrides)
    else:
        from robot_parl.robots.sim.kinematic_arm import KinematicArm

        adapter = KinematicArm(spec, seed=args.seed)
    if not sources:
        return adapter, []
    with_cameras = WithCameras(adapter, sources)
    return with_cameras, [with_cameras]


def _robot(args: argparse.Namespace) -> int:
    import signal
    import threading

    from robot_parl.robots.side import RobotSide
    from robot_parl.robots.spec import load_spec
    from robot_parl.transport.certs import role_transport
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.session import open_session

    spec = load_spec(args.spec or ("sim_tabletop" if args.sim else "widowx"), args.overrides)
    transport = role_transport("robot", args.certificates, args.listen, args.connect, args.insecure)
    if args.expert is not None and not args.sim:
        raise SystemExit("robot-parl robot: --expert needs --sim (only simulated robots have scripted experts)")
    adapter, to_close = _robot_adapter(args, spec, "robot", args.expert)
    if args.sim:
        args.instruction = args.instruction or adapter.env.instruction
    session = open_session(transport)
    side = RobotSide(adapter, session, KeySpace(args.session, args.robot), synchronous=args.sync,
                     instruction=args.instruction)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    mode = "synchronous" if args.sync else f"{spec.control_rate_hz:g} Hz"
    print(f"robot side {spec.name} ({args.sim or args.adapter}, {mode}) on {args.listen or args.connect}, "
          f"keys robot_parl/{args.session}/{args.robot}/*", flush=True)
    try:
        side.run(stop, max_ticks=args.ticks)
    finally:
        side.close()
        for item in to_close:
            item.close()
        session.close()
    print(json.dumps({"ticks": side.seq, "counters": side.all_counters()}), flush=True)
    return 0


def _collect(args: argparse.Namespace) -> int:
    import threading
    from contextlib import ExitStack

    from robot_parl.robots.remote import RemoteRobotEnv
    from robot_parl.robots.spec import load_spec
    from robot_parl.runtime.collect import Collector, open_store_for
    from robot_parl.teleop.device import Paired
    from robot_parl.teleop.keyboard import HELP, Keyboard
    from robot_parl.transport.certs import role_transport
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

    spec = load_spec(args.spec or ("sim_tabletop" if args.sim else "widowx"), args.overrides)
    keys = KeySpace(args.session, args.robot)
    low, high = spec.action.low, spec.action.high
    if args.realsense and not args.sim:
        raise SystemExit("robot-parl collect: --realsense needs --sim (it adds cameras to the robot side that collect "
                         "starts; give it to `robot-parl robot` or the ROS node's realsense_cameras otherwise)")
    with ExitStack() as stack:
        connect = args.connect
        if args.sim:  # a simulated robot side in this process, on its own zenoh session
            from robot_parl.robots.side import RobotSide

            endpoint = free_loopback_endpoint()
            robot_session = open_session(TransportConfig(listen=[endpoint]))
            stack.callback(robot_session.close)
            adapter, to_close = _robot_adapter(args, spec, "collect", args.expert if args.device == "expert" else None)
            for item in to_close:
                stack.callback(item.close)
            side = RobotSide(adapter, robot_session, keys, synchronous=True, instruction=adapter.env.instruction)
            stop = threading.Event()
            thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
            thread.start()
            stack.callback(side.close)
            stack.callback(thread.join, 10)
            stack.callback(stop.set)
            connect = [endpoint]
        # the in-process robot side is on loopback; a robot side elsewhere is reached as an actor reaches it
        session = open_session(role_transport("actor", "" if args.sim else args.certificates, [], connect,
                                              args.insecure))
        stack.callback(session.close)
        env = RemoteRobotEnv(session, keys, spec, timeout_s=args.timeout, action_source="teleop")
        stack.callback(env.close)
        if args.device in ("robot", "expert"):
            from robot_parl.teleop.robot_forwarded import RobotForwarded

            # the expert answers each observation: wait for its command; a forwarded device is followed live
            device = RobotForwarded(session, keys, wait_s=args.timeout if args.device == "expert" else 0.0)
            if args.device == "robot" and sys.stdin.isatty():
                device = Paired(device, Keyboard(low, high))
        elif args.device == "spacemouse":
            from robot_parl.teleop.spacemouse import SpaceMouse

            device = Paired(SpaceMouse(low, high), Keyboard(low, high))
        else:
            device = Keyboard(low, high)
        stack.callback(device.close)
        # only once the robot side and the device are up: a bad camera or device leaves no empty store behind
        store = open_store_for(args.store, spec)
        writer = stack.enter_context(store.writer(f"robot-parl collect ({device.name})"))
        if args.device != "expert":
            print(HELP, file=sys.stderr)
        collector = Collector(env, writer, device, source="sim" if args.device == "expert" else "teleop",
                              horizon=args.horizon, auto_start=args.device == "expert",
                              status=lambda line: print(f"\r{line:<100}", end="", file=sys.stderr, flush=True))
        report = collector.run(args.episodes)
        print(file=sys.stderr)
    print(json.dumps({"store": str(args.store), **vars(report)}), flush=True)
    return 0


def _add_link_security(parser: argparse.ArgumentParser, role: str) -> None:
    parser.add_argument("--certificates", default="", metavar="DIR",
                        help=f"mutual TLS from this `robot-parl certs` directory (as {role}; tls/ endpoints only)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain tcp endpoints beyond loopback (an isolated, trusted network only)")


def _certs(args: argparse.Namespace) -> int:
    from robot_parl.transport.certs import make_certificates

    for path in make_certificates(args.directory, args.roles, args.hosts):
        print(path)
    return 0


def _log(line: str) -> None:
    """A timestamped log line (processes of a session log to their own files)."""
    import time

    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _stop_on_signals():
    """An event set by SIGINT/SIGTERM: long-running commands stop cleanly (and checkpoint) on either."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _finetune_config(args: argparse.Namespace):
    from robot_parl import typed_config
    from robot_parl.runtime.config import FinetuneConfig

    cfg = typed_config.load(FinetuneConfig, args.config, args.overrides)
    if getattr(args, "tiny_vla", False):
        _ensure_tiny_vla(cfg, None)
    return cfg


def _learner(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.runtime.learner import Learner
    from robot_parl.transport.session import open_session

    torch.set_num_threads(args.threads)
    cfg = _finetune_config(args)
    stop = _stop_on_signals()
    session = open_session(cfg.link.transport("learner", [cfg.link.learner_endpoint], []))
    try:
        learner = Learner(cfg, args.out, session, log=_log)
    except BaseException:
        session.close()  # an open session's threads would keep a failed start from exiting
        raise
    print(f"learner {learner.instance} on {cfg.link.learner_endpoint}, session {cfg.link.session!r}, "
          f"store {learner.out / 'episodes'}" + (" (resumed)" if learner.resumed else ""), flush=True)
    try:
        learner.run(stop)
    finally:
        learner.close()
        session.close()
    print(json.dumps({"instance": learner.instance, "counters": dict(learner.counters),
                      "agent": dict(learner.agent.counters), "rates": learner.rates()}), flush=True)
    return 0


def _actor(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.runtime.actor import Actor
    from robot_parl.transport.session import open_session

    torch.set_num_threads(args.threads)
    cfg = _finetune_config(args)
    stop = _stop_on_signals()
    session = open_session(cfg.link.transport("actor", [], [cfg.link.robot_endpoint, cfg.link.learner_endpoint]))
    operator = None
    if args.operator == "keyboard" or (args.operator == "auto" and sys.stdin.isatty()):
        from robot_parl.teleop.keyboard import HELP, Keyboard

        operator = Keyboard(cfg.spec().action.low, cfg.spec().action.high)
        print(HELP, flush=True)
    elif args.operator == "spacemouse":
        from robot_parl.teleop.device import Paired
        from robot_parl.teleop.keyboard import HELP, Keyboard
        from robot_parl.teleop.spacemouse import SpaceMouse

        low, high = cfg.spec().action.low, cfg.spec().action.high
        operator = Paired(SpaceMouse(low, high), Keyboard(low, high))
        print(HELP, flush=True)
    try:
        actor = Actor(cfg, args.out, session, name=args.name, log=_log, operator=operator)
    except BaseException:
        session.close()  # an open session's threads would keep a failed start from exiting
        if operator is not None:
            operator.close()
        raise
    print(f"actor {args.name} on robot {cfg.link.robot!r} ({cfg.link.robot_endpoint}), learner "
          f"{cfg.link.learner_endpoint}", flush=True)
    try:
        summary = actor.run(stop)
    finally:
        actor.close()
        session.close()
    print(json.dumps(summary), flush=True)
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.runtime.pretrain import pretrain

    torch.set_num_threads(args.threads)
    cfg = _finetune_config(args)
    checkpoint = pretrain(cfg, args.out, bc_steps=args.bc_steps, log=_log)
    print(json.dumps({"checkpoint": str(checkpoint)}), flush=True)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.runtime.evaluate import Evaluation
    from robot_parl.transport.session import open_session

    torch.set_num_threads(args.threads)
    cfg = _finetune_config(args)
    policies = {}
    for item in args.policy:
        name, sep, path = item.partition("=")
        if not name or not sep:
            raise SystemExit(f"robot-parl eval: --policy expects NAME=CHECKPOINT (empty: as configured), got {item!r}")
        policies[name] = path
    session = open_session(cfg.link.transport("actor", [], [cfg.link.robot_endpoint]))
    try:
        evaluation = Evaluation(cfg, args.out, policies, args.critic, session, args.episodes, log=_log)
        summary = evaluation.run(journal=args.journal)
    finally:
        session.close()
    print(json.dumps(summary), flush=True)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from robot_parl import typed_config
    from robot_parl.runtime.supervisor import Supervisor

    cfg = _finetune_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    typed_config.save(cfg, out / "config.yaml")
    supervisor = Supervisor(cfg, out, threads=args.threads, attach=args.attach)
    return supervisor.run(_stop_on_signals())


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
        success = sum(e.success for e in episodes) / len(episodes)
        console.print(f"sources: {dict(sources)}; success {success:.1%}; "
                      f"frames per episode {min(map(len, episodes))}-{max(map(len, episodes))}")
        table = Table("episode", "frames", "source", "success", "policy v", "instruction")
        for e in episodes[-args.last:]:
            table.add_row(str(e.index), str(len(e)), e.source, "yes" if e.success else "no", str(e.policy_version),
                          e.instruction)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `robot-parl`."""
    parser = argparse.ArgumentParser(prog="robot-parl", description="Policy-agnostic RL fine-tuning of robot policies.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="BC -> offline critic -> online PA-RL on a simulated task, with a report")
    demo.add_argument("--config", help="YAML config (SessionConfig); defaults are embedded")
    demo.add_argument("--out", default="runs/demo", help="output directory (config, checkpoints, summary, plot)")
    demo.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    demo.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    demo.add_argument("--tiny-vla", action="store_true",
                      help="policy.kind=vla: write a tiny random VLA at the card's checkpoint path if none is there")
    demo.add_argument("overrides", nargs="*",
                      help="dotted overrides, e.g. online.episodes=100 policy.kind=autoregressive")
    demo.set_defaults(run=_demo)

    robot = sub.add_parser("robot", help="run a robot side (owns the control clock and the safety filter)")
    robot.add_argument("--adapter", default="kinematic", choices=["kinematic"],
                       help="robot adapter (kinematic: a synthetic arm with numpy cameras)")
    robot.add_argument("--sim", choices=["reach", "push", "pick", "place", "stack"], help="run a MuJoCo tabletop task")
    robot.add_argument("--spec", help="robot spec name or YAML path (default: sim_tabletop with --sim, else widowx)")
    robot.add_argument("--session", default="default", help="session name in the key space")
    robot.add_argument("--robot", default="robot0", help="robot name in the key space")
    robot.add_argument("--listen", nargs="*", default=["tcp/127.0.0.1:7447"], help="zenoh endpoints to listen on")
    robot.add_argument("--connect", nargs="*", default=[], help="zenoh endpoints to connect to")
    _add_link_security(robot, "robot")
    robot.add_argument("--sync", action="store_true", help="wait for each action (simulated robots)")
    robot.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    robot.add_argument("--seed", type=int, default=0)
    robot.add_argument("--instruction", default="", help="language instruction sent with observations")
    robot.add_argument("--expert", nargs="*", metavar="KEY=VALUE",
                       help="host the sim task's scripted expert as a teleop device (e.g. --expert noise=0.2)")
    robot.add_argument("--realsense", action="append", default=[], metavar="CAMERA=SERIAL", help=REALSENSE_HELP)
    robot.add_argument("overrides", nargs="*", help="dotted robot spec overrides, e.g. control_rate_hz=10")
    robot.set_defaults(run=_robot)

    for name, run, text in (("finetune", _finetune, "an online session: learner + actor (+ a sim robot side), "
                                                    "with a live console view"),
                            ("learner", _learner, "the learner: episode store, critic and distillation, weights"),
                            ("pretrain", _pretrain, "the offline phase alone (BC, offline critic) into the learner's "
                                                    "first checkpoint"),
                            ("eval", _eval, "evaluation rollouts: policies alone and with critic selection, "
                                            "interleaved; JSON, videos and an HTML report"),
                            ("actor", _actor, "the actor: acts on a robot side, streams steps, hot-swaps weights")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help="session YAML (runtime.config.FinetuneConfig); one file for all processes")
        cmd.add_argument("--out", required=True, help="output directory of this process (or session)")
        cmd.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        cmd.add_argument("--tiny-vla", action="store_true",
                         help="policy.kind=vla: write a tiny random VLA at the card's checkpoint path if none is there")
        if name == "actor":
            cmd.add_argument("--name", default="actor0", help="this actor's name (one per robot)")
            cmd.add_argument("--operator", default="auto", choices=["auto", "keyboard", "spacemouse", "none"],
                             help="operator device: labels, takeover, pause, e-stop (auto: the keyboard on a terminal)")
        if name == "pretrain":
            cmd.add_argument("--bc-steps", type=int, default=0, help="behaviour-cloning steps before the critic")
        if name == "finetune":
            cmd.add_argument("--attach", action="store_true", help="start nothing: watch a running session")
        if name == "eval":
            cmd.add_argument("--policy", action="append", default=[], metavar="NAME=CHECKPOINT",
                             help="a policy under test: a learner checkpoint directory, or empty for the policy as "
                                  "the config builds it (repeat for several)")
            cmd.add_argument("--critic", required=True, help="checkpoint whose critic the +critic modes use")
            cmd.add_argument("--episodes", type=int, default=10, help="episodes per mode")
            cmd.add_argument("--journal", help="an actor's journal (or learner store) for the learning curve")
        cmd.add_argument("overrides", nargs="*", help="dotted overrides, e.g. actor.episodes=10")
        cmd.set_defaults(run=run)

    certs = sub.add_parser("certs", help="a CA and certificates for a session's links between machines (openssl)")
    certs.add_argument("directory", help="where to write ca.pem/ca.key and ROLE.pem/ROLE.key (a CA there is reused)")
    certs.add_argument("--roles", nargs="+", default=["robot", "learner", "actor"],
                       help="the processes to make certificates for (robot, learner, actor)")
    certs.add_argument("--hosts", nargs="*", default=[],
                       help="host names and addresses the processes are reached at (localhost is always in)")
    certs.set_defaults(run=_certs)
    collect = sub.add_parser("collect", help="record demonstrations from a robot side with a teleop device")
    collect.add_argument("--store", required=True, help="episode store directory (created for this robot if missing)")
    collect.add_argument("--device", default="keyboard", choices=["keyboard", "spacemouse", "robot", "expert"],
                         help="robot: Teleop messages the robot side forwards (ROS 2 topics); expert: a simulated "
                              "robot's scripted expert (episodes start by themselves)")
    collect.add_argument("--sim", choices=["reach", "push", "pick", "place", "stack"],
                         help="run a MuJoCo tabletop robot side in this process (synchronous)")
    collect.add_argument("--expert", nargs="*", default=[], metavar="KEY=VALUE",
                         help="scripted expert quality with --sim --device expert, e.g. noise=0.2 hesitation=0.1")
    collect.add_argument("--realsense", action="append", default=[], metavar="CAMERA=SERIAL",
                         help=REALSENSE_HELP + " (with --sim)")
    collect.add_argument("--spec", help="robot spec name or YAML path (default: sim_tabletop with --sim, else widowx)")
    collect.add_argument("--session", default="default", help="session name in the key space")
    collect.add_argument("--robot", default="robot0", help="robot name in the key space")
    collect.add_argument("--connect", nargs="*", default=["tcp/127.0.0.1:7447"], help="the robot side's endpoints")
    _add_link_security(collect, "actor")
    collect.add_argument("--episodes", type=int, default=None, help="stop after this many kept episodes")
    collect.add_argument("--horizon", type=int, default=300, help="steps before an episode ends as a failure")
    collect.add_argument("--timeout", type=float, default=10.0, help="seconds without an observation before failing")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("overrides", nargs="*", help="dotted robot spec overrides, e.g. control_rate_hz=10")
    collect.set_defaults(run=_collect)

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
    convert.add_argument("--source", default="teleop", choices=["teleop", "rollout", "intervention", "sim"])
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
    imp.add_argument("--source", default="teleop", choices=["teleop", "rollout", "intervention", "sim"])
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
    add_calibrate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `robot-parl` console script."""
    args = build_parser().parse_args(argv)
    from robot_parl.typed_config import ConfigError

    expected: tuple[type[Exception], ...] = (ConfigError,)
    if args.command == "certs":
        from robot_parl.transport.certs import CertificateError

        expected += (CertificateError,)
    if args.command == "eval":
        expected += (FileNotFoundError, ValueError)
    if args.command in ("data", "collect", "pretrain", "learner", "actor", "eval"):
        from robot_parl.data.episode_store import StoreError, StoreLocked

        expected += (StoreError, StoreLocked)
    if args.command in ("learner", "demo"):
        from robot_parl.runtime.checkpoints import CheckpointError

        expected += (CheckpointError,)
    try:
        return args.run(args)
    except expected as err:
        print(f"robot-parl: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
