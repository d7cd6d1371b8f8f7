"""Fixtures of the runtime tests."""

import os
import threading

import pytest

from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.teleop.keyboard import Keyboard
from robot_parl.transport.channel import Inbox, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Step


@pytest.fixture
def robot_side():
    """robot_side(session, cfg) -> a running robot side (a kinematic arm) for ``cfg``'s robot on that zenoh session,
    stopped after the test."""
    made = []

    def make(session, cfg: FinetuneConfig) -> RobotSide:
        side = RobotSide(KinematicArm(cfg.spec(), seed=1), session, KeySpace(cfg.link.session, cfg.link.robot))
        stop = threading.Event()
        thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
        thread.start()
        made.append((side, stop, thread))
        return side

    yield make
    for side, stop, thread in made:
        stop.set()
        thread.join(10)
        side.close()


@pytest.fixture
def actor_on_arm(zenoh_pair, tmp_path, learner_link, robot_side):
    """actor_on_arm(cfg) -> (actor, robot side, steps inbox, keyboard pty fd): an Actor with the keyboard on a real
    pty, acting on a running robot side (kinematic arm) over real zenoh, with its first weights from a learner."""
    robot_session, actor_session = zenoh_pair
    made = []

    def make(cfg: FinetuneConfig):
        spec = cfg.spec()
        keys = KeySpace(cfg.link.session, cfg.link.robot)
        side = robot_side(robot_session, cfg)
        steps = Inbox(Step, maxlen=10_000)
        sub = subscribe(robot_session, keys.step, steps)
        publisher = learner_link(robot_session, cfg.link.session)  # the learner's part
        master, slave = os.openpty()
        actor = Actor(cfg, tmp_path / "actor", actor_session, log=lambda line: None,
                      operator=Keyboard(spec.action.low, spec.action.high, step=0.5, fd=slave))
        made.append((actor, sub, master, slave))
        assert publisher.weights.matched(10)
        learner, _ = build_agent(cfg, spec)
        publisher.publish("policy", "L", 0, learner.policy.sync_state())
        publisher.publish("critic", "L", 0, learner.critic.state_dict())
        actor.wait_for_weights(threading.Event())
        return actor, side, steps, master

    yield make
    for actor, sub, master, slave in made:
        actor.close()
        os.close(master)
        os.close(slave)
        sub.undeclare()
