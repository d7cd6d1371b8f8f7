"""`robot-parl`: the command-line entry point, one module per command (each registers its parser and runs it).

Commands import torch only when they run, so `robot-parl --help` answers fast.
"""

from __future__ import annotations

import argparse
import sys

from robot_parl.calibration.cli import add_parser as add_calibrate_parser
from robot_parl.cli import certs, collect, data, demo, reward, robot, session


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `robot-parl`."""
    parser = argparse.ArgumentParser(prog="robot-parl", description="Policy-agnostic RL fine-tuning of robot policies.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (demo, robot, session, certs, collect, data, reward):
        command.add_parser(sub)
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
    if args.command in ("eval", "reward"):
        expected += (FileNotFoundError, ValueError)
    if args.command in ("data", "collect", "pretrain", "learner", "actor", "eval", "reward"):
        from robot_parl.data.episode_store import StoreError, StoreLocked

        expected += (StoreError, StoreLocked)
    if args.command in ("actor", "eval", "collect"):  # the robot side did not answer, or does not fit the spec
        from robot_parl.robots.remote import RobotTimeout, SpecMismatch

        expected += (RobotTimeout, SpecMismatch)
    if args.command in ("learner", "demo"):
        from robot_parl.runtime.resume import CheckpointError

        expected += (CheckpointError,)
    try:
        return args.run(args)
    except expected as err:
        print(f"robot-parl: {err}", file=sys.stderr)
        return 2
