"""`robot-parl collect`: demonstrations through the robot-side protocol into the episode store, with a
simulated robot's scripted expert (robot process + collect process) and the keyboard on a real pty."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from robot_parl.data.episode_store import EpisodeStore, StoreError
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.robots.sim.tabletop import TabletopEnv
from robot_parl.robots.spec import load_spec
from robot_parl.runtime.collect import Collector, open_store_for
from robot_parl.teleop.keyboard import Keyboard
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import free_loopback_endpoint

# Runs a robot-parl command and checks, inside that process, that torch was never imported.
NO_TORCH = ("import sys; from robot_parl import cli; rc = cli.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'imported torch'; sys.exit(rc)")
SMALL_CAMERA = "cameras=[{name: front, width: 32, height: 24}]"


def test_scripted_expert_demonstrations_recorded_over_the_protocol(tmp_path):
    endpoint = free_loopback_endpoint()
    robot = subprocess.Popen([sys.executable, "-c", NO_TORCH, "robot", "--sim", "pick", "--sync", "--expert",
                              "--listen", endpoint, "--session", "c", "--robot", "arm", SMALL_CAMERA],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "robot side" in robot.stdout.readline()
        collect = subprocess.run([sys.executable, "-c", NO_TORCH, "collect", "--store", str(tmp_path / "demos"),
                                  "--device", "expert", "--spec", "sim_tabletop", "--connect", endpoint,
                                  "--session", "c", "--robot", "arm", "--episodes", "3", "--horizon", "80",
                                  SMALL_CAMERA], capture_output=True, text=True, timeout=240)
        assert collect.returncode == 0, collect.stderr[-3000:]
        report = json.loads(collect.stdout.strip().splitlines()[-1])
    finally:
        robot.terminate()
        out, err = robot.communicate(timeout=20)
    assert robot.returncode == 0, err[-2000:]
    assert report["committed"] == 3 and report["successes"] == 3 and report["discarded"] == 0
    robot_counters = json.loads(out.strip().splitlines()[-1])["counters"]
    assert robot_counters["teleop_forwarded"] >= report["frames"] - 3

    store = EpisodeStore(tmp_path / "demos")
    assert [e.source for e in store.episodes()] == ["sim"] * 3 and all(e.success for e in store.episodes())
    assert [e.outcome.source for e in store.episodes()] == ["sim"] * 3  # the simulator said so
    assert store.robot_spec["name"] == "sim_tabletop"
    for index in range(3):
        ep = store.episode(index)
        rewards, actions = ep["reward"], ep["action"]
        assert np.all(np.diff(ep["timestamp"]) > 0)
        assert np.all(rewards[:-2] == -1.0) and rewards[-2] == 0.0 and rewards[-1] == 0.0  # s_T holds no step
        assert np.all(actions[-1] == 0) and ep["images/front"].shape[1:] == (24, 32, 3)
        # The recorded actions, replayed open-loop from the same layout (the robot side's seed for
        # episode i is i + 1: its first reset at start-up uses seed 0), retrace the recorded states and
        # succeed: each action is stored with the observation it answered, nothing shifted or lost.
        env = TabletopEnv("pick")
        env.reset(seed=index + 1)
        for t, action in enumerate(actions[:-1]):
            np.testing.assert_allclose(env.state()[:4], ep["proprio"][t], atol=1e-4)
            env.step(action)
        assert env.success()
        env.close()


@pytest.fixture
def kinematic_robot(zenoh_pair):
    """A real-time kinematic arm's robot side (50 Hz) on one session, a RemoteRobotEnv on the other."""
    robot_session, client_session = zenoh_pair
    spec = load_spec("widowx", [SMALL_CAMERA, "control_rate_hz=50"])
    keys = KeySpace("k", "arm")
    side = RobotSide(KinematicArm(spec, seed=3), robot_session, keys)
    stop = threading.Event()
    thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
    thread.start()
    env = RemoteRobotEnv(client_session, keys, spec, timeout_s=10, action_source="teleop")
    yield spec, env
    env.close()
    stop.set()
    thread.join(10)
    side.close()


def _type(fd: int, keys: str) -> None:
    os.write(fd, keys.encode())


def test_keyboard_operator_records_labels_and_discards_on_a_real_pty(tmp_path, kinematic_robot, wait_for):
    spec, env = kinematic_robot
    master, slave = os.openpty()
    keyboard = Keyboard(spec.action.low, spec.action.high, step=0.5, fd=slave)
    store = open_store_for(tmp_path / "teleop", spec)
    lines: list[str] = []
    with store.writer("test") as writer:
        collector = Collector(env, writer, keyboard, horizon=1000, status=lines.append)
        thread = threading.Thread(target=collector.run, daemon=True)
        thread.start()
        assert wait_for(lambda: any("waiting for start" in line for line in lines), 10)
        _type(master, "\r")
        assert wait_for(lambda: any(line.startswith("episode 0 |") for line in lines), 10)
        x0 = env.last.proprio[0]
        _type(master, "w")
        _type(master, "w")
        _type(master, " ")  # close the gripper
        assert wait_for(lambda: env.last.proprio[0] - x0 > 0.019 and env.last.proprio[6] == 0.0, 10)
        _type(master, "y")  # success: the episode is kept
        assert wait_for(lambda: any("episode 0 kept" in line for line in lines), 10)
        _type(master, "\r")
        assert wait_for(lambda: lines[-1].startswith("episode 1 |"), 10)
        _type(master, "\x7f")  # Backspace: discard
        assert wait_for(lambda: any("discarded" in line and "after" in line for line in lines), 10)
        _type(master, "q")
        thread.join(10)
        assert not thread.is_alive()
    keyboard.close()
    os.close(master)
    os.close(slave)
    report = collector.report
    assert (report.committed, report.successes, report.discarded, report.quit) == (1, 1, 1, True)
    store.refresh()
    assert len(store) == 1
    ep = store.episode(0)
    actions = ep["action"][:-1]
    # two nudges of half the bound on x, whatever control steps they fell in; holds elsewhere
    assert actions[:, 0].sum() == pytest.approx(0.02, abs=1e-7) and np.all(actions[:, 1:6] == 0)
    assert actions[0, 6] == 1.0 and actions[-1, 6] == 0.0  # the gripper closed and stayed closed
    assert ep["reward"][-2] == 0.0 and store.info(0).source == "teleop"
    assert store.info(0).outcome.source == "operator"  # labelled on the keyboard
    assert ep["proprio"][-1, 0] - ep["proprio"][0, 0] == pytest.approx(0.02, abs=1e-6)  # the arm moved 2 cm


def test_a_store_made_for_another_robot_is_refused(tmp_path):
    open_store_for(tmp_path / "s", load_spec("widowx", [SMALL_CAMERA]))
    with pytest.raises(StoreError, match=r"another robot: keys \['images/front'\]"):
        open_store_for(tmp_path / "s", load_spec("widowx", ["cameras=[{name: front, width: 64, height: 24}]"]))
