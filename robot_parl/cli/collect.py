"""`robot-parl collect`: record demonstrations from a robot side with a teleop device."""

from __future__ import annotations

import argparse
import json
import sys

from robot_parl.cli.common import (
    DEVICES,
    REALSENSE_HELP,
    add_link_security,
    robot_adapter,
    start_sim_robot_side,
    teleop_device,
)
from robot_parl.robots.sim import TASKS


def add_parser(sub) -> None:
    """Register the command's parser."""
    collect = sub.add_parser("collect", help="record demonstrations from a robot side with a teleop device")
    collect.add_argument("--store", required=True, help="episode store directory (created for this robot if missing)")
    collect.add_argument("--device", default="keyboard", choices=list(DEVICES),
                         help="; ".join(f"{k}: {v}" for k, v in DEVICES.items()) + " (episodes start by themselves)")
    collect.add_argument("--sim", choices=TASKS,
                         help="run a MuJoCo tabletop robot side in this process (synchronous)")
    collect.add_argument("--expert", nargs="*", default=[], metavar="KEY=VALUE",
                         help="scripted expert quality with --sim --device expert, e.g. noise=0.2 hesitation=0.1")
    collect.add_argument("--realsense", action="append", default=[], metavar="CAMERA=SERIAL",
                         help=REALSENSE_HELP + " (with --sim)")
    collect.add_argument("--spec", help="robot spec name or YAML path (default: sim_tabletop with --sim, else widowx)")
    collect.add_argument("--session", default="default", help="session name in the key space")
    collect.add_argument("--robot", default="robot0", help="robot name in the key space")
    collect.add_argument("--connect", nargs="*", default=["tcp/127.0.0.1:7447"], help="the robot side's endpoints")
    add_link_security(collect, "actor")
    collect.add_argument("--episodes", type=int, default=None, help="stop after this many kept episodes")
    collect.add_argument("--horizon", type=int, default=300, help="steps before an episode ends as a failure")
    collect.add_argument("--timeout", type=float, default=10.0, help="seconds without an observation before failing")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("overrides", nargs="*", help="dotted robot spec overrides, e.g. control_rate_hz=10")
    collect.set_defaults(run=_collect)


def _collect(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from robot_parl.robots.remote import RemoteRobotEnv
    from robot_parl.robots.spec import load_spec
    from robot_parl.runtime.collect import Collector, open_store_for
    from robot_parl.teleop.keyboard import HELP
    from robot_parl.transport.certs import role_transport
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.session import open_session

    spec = load_spec(args.spec or ("sim_tabletop" if args.sim else "widowx"), args.overrides)
    keys = KeySpace(args.session, args.robot)
    low, high = spec.action.low, spec.action.high
    if args.realsense and not args.sim:
        raise SystemExit("robot-parl collect: --realsense needs --sim (it adds cameras to the robot side that collect "
                         "starts; give it to `robot-parl robot` or the ROS node's realsense_cameras otherwise)")
    with ExitStack() as stack:
        connect = args.connect
        if args.sim:  # a simulated robot side in this process, on its own zenoh session
            adapter, to_close = robot_adapter(args, spec, "collect", args.expert if args.device == "expert" else None)
            for item in to_close:
                stack.callback(item.close)
            connect = [start_sim_robot_side(stack, adapter, keys)]
        # the in-process robot side is on loopback; a robot side elsewhere is reached as an actor reaches it
        session = open_session(role_transport("actor", "" if args.sim else args.certificates, [], connect,
                                              args.insecure))
        stack.callback(session.close)
        env = RemoteRobotEnv(session, keys, spec, timeout_s=args.timeout, action_source="teleop")
        stack.callback(env.close)
        device = teleop_device(args.device, low, high, session, keys, wait_s=args.timeout)
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
