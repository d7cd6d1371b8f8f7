"""What several commands share: session configs, logging and signals, link security flags, and the registries
of robot adapters and teleop devices (a command picks from these; it never builds one of its own)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REALSENSE_HELP = ("a RealSense (pyrealsense2, no ROS driver) as this spec camera, by serial; repeat for more. It "
                  "streams 640x480 at 30 fps (a calibrated camera: its calibration's size), resized to the spec's size")
# Robot adapters a robot side can run without ROS (--adapter); a MuJoCo task (--sim, robots.sim.TASKS) replaces it.
ADAPTERS = {"kinematic": "a synthetic arm with numpy cameras"}
# Teleop devices: an operator's at the actor (labels, takeover, pause, e-stop), or a demonstrator's for collect.
DEVICES = {"keyboard": "this terminal's keys", "spacemouse": "a 3Dconnexion SpaceMouse (HID), keys alongside",
           "robot": "Teleop messages the robot side forwards (ROS 2 topics)",
           "expert": "a simulated robot's scripted expert (answers each observation)"}


def teleop_device(name: str, low, high, session=None, keys=None, wait_s: float = 0.0):
    """The teleop device ``name`` (DEVICES) for a robot with action bounds ``low``/``high``; ``robot`` and
    ``expert`` read the robot side's forwarded commands on ``session`` (the expert waits up to ``wait_s`` for
    each)."""
    from robot_parl.teleop.device import Paired
    from robot_parl.teleop.keyboard import Keyboard

    if name == "keyboard":
        return Keyboard(low, high)
    if name == "spacemouse":
        from robot_parl.teleop.spacemouse import SpaceMouse

        return Paired(SpaceMouse(low, high), Keyboard(low, high))
    from robot_parl.teleop.robot_forwarded import RobotForwarded

    if name == "expert":
        return RobotForwarded(session, keys, wait_s=wait_s)
    forwarded = RobotForwarded(session, keys, wait_s=0.0)  # followed live
    return Paired(forwarded, Keyboard(low, high)) if sys.stdin.isatty() else forwarded


def ensure_tiny_vla(cfg, console) -> None:
    """Write a tiny randomly initialised VLA where the config's VLA card points, unless one is there."""
    from robot_parl.models.vla.checkpoint import write_random_checkpoint

    if cfg.policy.kind != "vla":
        raise SystemExit("robot-parl: --tiny-vla needs policy.kind=vla")
    checkpoint = Path(cfg.policy.vla.checkpoint)
    if not (checkpoint / "config.json").is_file():
        write_random_checkpoint(checkpoint, seed=cfg.seed)
        (console.print if console is not None else print)(f"wrote a tiny randomly initialised VLA to {checkpoint}")


def sim_adapter(task: str, spec, seed: int, expert_overrides: list[str] | None):
    """A MuJoCo tabletop task behind the robot side, hosting its scripted expert when overrides are given."""
    from robot_parl import typed_config
    from robot_parl.robots.sim.sim_adapter import SimAdapter
    from robot_parl.robots.sim.tabletop import TabletopEnv
    from robot_parl.robots.sim.tabletop_expert import TabletopExpertConfig

    expert = None
    if expert_overrides is not None:
        expert = typed_config.from_dict(TabletopExpertConfig, typed_config.apply_overrides({}, expert_overrides))
    return SimAdapter(TabletopEnv(task), spec, seed=seed, expert=expert)


def robot_adapter(args: argparse.Namespace, spec, command: str, expert_overrides: list[str] | None,
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
        adapter = sim_adapter(args.sim, spec, args.seed, expert_overrides)
    else:
        from robot_parl.robots.sim.kinematic_arm import KinematicArm

        adapter = {"kinematic": KinematicArm}[args.adapter](spec, seed=args.seed)
    if not sources:
        return adapter, []
    with_cameras = WithCameras(adapter, sources)
    return with_cameras, [with_cameras]


def start_sim_robot_side(stack, adapter, keys) -> str:
    """A synchronous robot side for ``adapter`` (a simulator) in this process, on a zenoh session of its own at a
    free loopback endpoint, stopped and closed by ``stack``; returns the endpoint to connect to."""
    import threading

    from robot_parl.robots.side import RobotSide
    from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

    endpoint = free_loopback_endpoint()
    session = open_session(TransportConfig(listen=[endpoint], connect=[]))
    stack.callback(session.close)
    side = RobotSide(adapter, session, keys, synchronous=True, instruction=adapter.env.instruction)
    stop = threading.Event()
    thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
    thread.start()
    stack.callback(side.close)
    stack.callback(thread.join, 10)
    stack.callback(stop.set)
    return endpoint


def add_link_security(parser: argparse.ArgumentParser, role: str) -> None:
    parser.add_argument("--certificates", default="", metavar="DIR",
                        help=f"mutual TLS from this `robot-parl certs` directory (as {role}; tls/ endpoints only)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain tcp endpoints beyond loopback (an isolated, trusted network only)")


def log_line(line: str) -> None:
    """A timestamped log line (processes of a session log to their own files)."""
    import time

    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def stop_on_signals():
    """An event set by SIGINT/SIGTERM: long-running commands stop cleanly (and checkpoint) on either."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def finetune_config(args: argparse.Namespace):
    from robot_parl import typed_config
    from robot_parl.runtime.config import FinetuneConfig

    cfg = typed_config.load(FinetuneConfig, args.config, args.overrides)
    if getattr(args, "tiny_vla", False):
        ensure_tiny_vla(cfg, None)
    return cfg
