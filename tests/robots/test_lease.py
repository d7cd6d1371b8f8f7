"""One controller at a time: a second peer on the robot side's endpoint can neither move the arm, nor clear an
e-stop the first one latched, nor take over its episode with a stray start; once the holder falls silent for
the lease timeout, a new controller may take over."""

import threading
import time

import numpy as np
import pytest

from robot_parl.robots.remote import RemoteRobotEnv, RobotTimeout
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.robots.spec import load_spec
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, Control
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session


def _move(x):
    return np.array([x, 0, 0, 0, 0, 0, 1], np.float32)


@pytest.fixture
def robot():
    endpoint = free_loopback_endpoint()
    spec = load_spec("widowx", ["cameras=[{name: front, width: 16, height: 12}]", "control_rate_hz=20",
                                "workspace={low: [], high: []}"])
    sessions = [open_session(TransportConfig(listen=[endpoint], connect=[]))]
    arm = KinematicArm(spec, goal_tolerance=0.0)
    side = RobotSide(arm, sessions[0], KeySpace("lease", "arm"), synchronous=True, sync_timeout_s=60.0,
                     lease_timeout_s=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
    thread.start()
    envs = []

    def controller():
        sessions.append(open_session(TransportConfig(connect=[endpoint])))
        envs.append(RemoteRobotEnv(sessions[-1], KeySpace("lease", "arm"), spec, timeout_s=2.0))
        return envs[-1]

    yield side, arm, controller
    for env in envs:
        env.close()
    stop.set()
    thread.join(10)
    side.close()
    for session in reversed(sessions):
        session.close()


def test_a_second_peer_cannot_command_clear_or_take_over(robot):
    side, arm, controller = robot
    first, second = controller(), controller()
    first.reset()
    x0 = arm.pos[0]
    for _ in range(3):
        first.step(_move(0.005))
    assert arm.pos[0] == pytest.approx(x0 + 0.015)
    # a stray start for another episode is refused: the second peer never sees its episode begin
    with pytest.raises(RobotTimeout):
        second.reset()
    assert side.lease == first.peer and side.all_counters()["lease_refused"] >= 2
    # the second peer's actions for the current tick never reach the arm; the first peer's episode goes on
    for _ in range(3):
        second._action.put(Action(first.last.seq, _move(-0.01), peer=second.peer))
        first.step(_move(0.005))
    assert arm.pos[0] == pytest.approx(x0 + 0.03)
    # an e-stop from anyone latches; only the holder clears it
    second.estop()
    deadline = time.monotonic() + 5
    while not side.safety.estopped:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second._control.put(Control("clear_estop", peer=second.peer))
    time.sleep(0.5)
    assert side.safety.estopped
    first._control.put(Control("clear_estop", peer=first.peer))
    deadline = time.monotonic() + 5
    while side.safety.estopped:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # the holder falls silent: a new controller asking at once is refused, then takes over once the lease lapses
    second.timeout_s = 10.0
    started = time.monotonic()
    second.reset()
    assert side.lease == second.peer and side.all_counters()["lease_taken"] == 2
    assert time.monotonic() - started < 5.0  # within a retry or two of the 1 s lease timeout
