"""`robot-parl robot`: a robot side without ROS (the kinematic arm or a MuJoCo task) on zenoh."""

from __future__ import annotations

import argparse
import json

from robot_parl.cli.common import ADAPTERS, REALSENSE_HELP, add_link_security, robot_adapter
from robot_parl.robots.sim import TASKS


def add_parser(sub) -> None:
    """Register the command's parser."""
    robot = sub.add_parser("robot", help="run a robot side (owns the control clock and the safety filter)")
    robot.add_argument("--adapter", default="kinematic", choices=list(ADAPTERS),
                       help="robot adapter: " + "; ".join(f"{k}: {v}" for k, v in ADAPTERS.items()))
    robot.add_argument("--sim", choices=TASKS, help="run a MuJoCo tabletop task")
    robot.add_argument("--spec", help="robot spec name or YAML path (default: sim_tabletop with --sim, else widowx)")
    robot.add_argument("--session", default="default", help="session name in the key space")
    robot.add_argument("--robot", default="robot0", help="robot name in the key space")
    robot.add_argument("--listen", nargs="*", default=["tcp/127.0.0.1:7447"], help="zenoh endpoints to listen on")
    robot.add_argument("--connect", nargs="*", default=[], help="zenoh endpoints to connect to")
    add_link_security(robot, "robot")
    robot.add_argument("--sync", action="store_true", help="wait for each action (simulated robots)")
    robot.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    robot.add_argument("--seed", type=int, default=0)
    robot.add_argument("--instruction", default="", help="language instruction sent with observations")
    robot.add_argument("--expert", nargs="*", metavar="KEY=VALUE",
                       help="host the sim task's scripted expert as a teleop device (e.g. --expert noise=0.2)")
    robot.add_argument("--realsense", action="append", default=[], metavar="CAMERA=SERIAL", help=REALSENSE_HELP)
    robot.add_argument("overrides", nargs="*", help="dotted robot spec overrides, e.g. control_rate_hz=10")
    robot.set_defaults(run=_robot)


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
    adapter, to_close = robot_adapter(args, spec, "robot", args.expert)
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
