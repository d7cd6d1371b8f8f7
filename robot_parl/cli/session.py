"""The session's processes: `robot-parl finetune` (all of them), `learner`, `actor`, `pretrain` and `eval`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_parl.cli.common import (
    finetune_config,
    log_line,
    sim_adapter,
    start_sim_robot_side,
    stop_on_signals,
    teleop_device,
)

OPERATOR_DEVICES = ("keyboard", "spacemouse")  # of cli.common.DEVICES, the ones an operator holds at the actor


def add_parser(sub) -> None:
    """Register the command's parser."""
    for name, run, text in (("finetune", _finetune, "an online session: learner + actor (+ a sim robot side), "
                                                    "with a live console view"),
                            ("learner", _learner, "the learner: episode store, critic and distillation, weights"),
                            ("pretrain", _pretrain, "the offline phase alone (BC, offline critic) into the learner's "
                                                    "first checkpoint"),
                            ("eval", _eval, "evaluation rollouts: policies alone and with critic selection, "
                                            "interleaved; JSON, videos and an HTML report (with the config's "
                                            "sim, on a simulated robot in this process)"),
                            ("actor", _actor, "the actor: acts on a robot side, streams steps, hot-swaps weights")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help="session YAML (runtime.config.FinetuneConfig); one file for all processes")
        cmd.add_argument("--out", required=True, help="output directory of this process (or session)")
        cmd.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        cmd.add_argument("--tiny-vla", action="store_true",
                         help="policy.kind=vla: write a tiny random VLA at the card's checkpoint path if none is there")
        if name == "actor":
            cmd.add_argument("--name", default="actor0", help="this actor's name (one per robot)")
            cmd.add_argument("--operator", default="auto", choices=["auto", *OPERATOR_DEVICES, "none"],
                             help="operator device: labels, takeover, pause, e-stop (auto: the keyboard on a terminal)")
        if name == "pretrain":
            cmd.add_argument("--bc-steps", type=int, default=0, help="behaviour-cloning steps before the critic")
            cmd.add_argument("--bc-batch-size", type=int, default=64, help="demonstration steps per BC step")
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


def _learner(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.rl.data_parallel import Ranks
    from robot_parl.runtime.learner import Learner, follow_lead
    from robot_parl.transport.session import open_session

    torch.set_num_threads(args.threads)
    cfg = finetune_config(args)
    ranks = Ranks.from_env(cfg.device("learner"))  # launched by torchrun: a data-parallel learner
    stop = stop_on_signals()
    if ranks is not None and not ranks.lead:  # a signal only sets ``stop``: rank 0 decides when its ranks stop
        counters = follow_lead(cfg, args.out, ranks)
        print(json.dumps({"rank": ranks.rank, "agent": counters}), flush=True)
        return 0
    session = open_session(cfg.link.transport("learner", [cfg.link.learner_endpoint], []))
    try:
        learner = Learner(cfg, args.out, session, log=log_line)
        if ranks is not None:
            learner.agent.join(ranks)
    except BaseException:
        session.close()  # an open session's threads would keep a failed start from exiting
        raise
    print(f"learner {learner.instance} on {cfg.link.learner_endpoint}, session {cfg.link.session!r}, "
          f"store {learner.out / 'episodes'}" + (" (resumed)" if learner.resumed else "")
          + (f", {ranks.world} data-parallel ranks" if ranks else ""), flush=True)
    try:
        learner.run(stop)
    finally:
        learner.close()
        session.close()
        if ranks is not None:
            ranks.announce("stop")
            ranks.close()
    print(json.dumps({"instance": learner.instance, "counters": dict(learner.counters),
                      "agent": dict(learner.agent.counters), "rates": learner.rates()}), flush=True)
    return 0


def _actor(args: argparse.Namespace) -> int:
    import torch

    from robot_parl.runtime.actor import Actor
    from robot_parl.transport.session import open_session

    torch.set_num_threads(args.threads)
    cfg = finetune_config(args)
    stop = stop_on_signals()
    session = open_session(cfg.link.transport("actor", [], [cfg.link.robot_endpoint, cfg.link.learner_endpoint]))
    operator = None
    chosen = "keyboard" if args.operator == "auto" and sys.stdin.isatty() else args.operator
    if chosen in OPERATOR_DEVICES:
        from robot_parl.teleop.keyboard import HELP

        operator = teleop_device(chosen, cfg.spec().action.low, cfg.spec().action.high)
        print(HELP, flush=True)
    try:
        actor = Actor(cfg, args.out, session, name=args.name, log=log_line, operator=operator)
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
    cfg = finetune_config(args)
    checkpoint = pretrain(cfg, args.out, bc_steps=args.bc_steps, bc_batch_size=args.bc_batch_size, log=log_line)
    print(json.dumps({"checkpoint": str(checkpoint)}), flush=True)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    import torch

    from robot_parl.runtime.evaluate import Evaluation
    from robot_parl.transport.keys import KeySpace
    from robot_parl.transport.session import TransportConfig, open_session

    torch.set_num_threads(args.threads)
    cfg = finetune_config(args)
    policies = {}
    for item in args.policy:
        name, sep, path = item.partition("=")
        if not name or not sep:
            raise SystemExit(f"robot-parl eval: --policy expects NAME=CHECKPOINT (empty: as configured), got {item!r}")
        policies[name] = path
    with ExitStack() as stack:
        robot = [cfg.link.robot_endpoint]
        if cfg.sim:  # the config's simulated robot, in this process (as `finetune` starts it for a session)
            spec = cfg.spec()
            robot = [start_sim_robot_side(stack, sim_adapter(cfg.sim, spec, cfg.seed, None),
                                          KeySpace(cfg.link.session, cfg.link.robot))]
        session = open_session(cfg.link.transport("actor", [], robot) if not cfg.sim else
                               TransportConfig(connect=robot))
        stack.callback(session.close)
        evaluation = Evaluation(cfg, args.out, policies, args.critic, session, args.episodes, log=log_line)
        summary = evaluation.run(journal=args.journal)
    print(json.dumps(summary), flush=True)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from robot_parl import typed_config
    from robot_parl.runtime.supervisor import Supervisor

    cfg = finetune_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    typed_config.save(cfg, out / "config.yaml")
    supervisor = Supervisor(cfg, out, threads=args.threads, attach=args.attach)
    return supervisor.run(stop_on_signals())
