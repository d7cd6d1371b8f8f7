"""`robot-parl certs`: a session's CA and role certificates for links between machines."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Register the command's parser."""
    certs = sub.add_parser("certs", help="a CA and certificates for a session's links between machines (openssl)")
    certs.add_argument("directory", help="where to write ca.pem/ca.key and ROLE.pem/ROLE.key (a CA there is reused)")
    certs.add_argument("--roles", nargs="+", default=["robot", "learner", "actor"],
                       help="the processes to make certificates for (robot, learner, actor)")
    certs.add_argument("--hosts", nargs="*", default=[],
                       help="host names and addresses the processes are reached at (localhost is always in)")
    certs.set_defaults(run=_certs)


def _certs(args: argparse.Namespace) -> int:
    from robot_parl.transport.certs import make_certificates

    for path in make_certificates(args.directory, args.roles, args.hosts):
        print(path)
    return 0
