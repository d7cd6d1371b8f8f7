import json
import subprocess
import sys

import numpy as np
import pytest

from robot_parl.robots.remote import RemoteRobotEnv, RobotTimeout, SpecMismatch
from robot_parl.robots.spec import load_spec
from robot_parl.transport.channel import Publisher
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Control
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

# Runs `robot-parl robot` and checks, inside that process, that torch was never imported.
ROBOT = ("import sys; from robot_parl import cli; rc = cli.main(sys.argv[1:]); "
         "assert 'torch' not in sys.modules, 'the robot side imported torch'; sys.exit(rc)")


@pytest.fixture
def robot_process():
    endpoint = free_loopback_endpoint()
    procs = []

    def start(*extra):
        proc = subprocess.Popen([sys.executable, "-c", ROBOT, "robot", "--listen", endpoint, "--session", "t",
                                 "--robot", "arm", "--ticks", "3000", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "robot side" in proc.stdout.readline()
        return endpoint, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)


def _finish(proc):
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_remote_env_drives_a_robot_process_through_the_protocol(robot_process, wait_for):
    endpoint, proc = robot_process("--sync", "cameras=[{name: front, width: 64, height: 48}]")
    session = open_session(TransportConfig(connect=[endpoint]))
    spec = load_spec("widowx", ["cameras=[{name: front, width: 64, height: 48}]"])
    env = RemoteRobotEnv(session, KeySpace("t", "arm"), spec, timeout_s=10, horizon=5)
    obs, info = env.reset(seed=0)
    assert obs["images"]["front"].shape == (48, 64, 3) and obs["proprio"].shape == (7,)
    start = obs["proprio"][:3].copy()
    first_seq = info["seq"]
    for i in range(5):
        obs, reward, terminated, truncated, info = env.step(np.array([0.01, 0, 0.5, 0, 0, 0, 1], np.float32))
        assert info["seq"] > first_seq + i
    # x moved 5 x 1 cm; z was clipped to the 2 cm bound per step
    np.testing.assert_allclose(obs["proprio"][:3] - start, [0.05, 0.0, 0.10], atol=1e-5)
    assert truncated and not terminated and reward == 0.0
    assert env.clock_offset_ns is not None and abs(env.clock_offset_ns) < 5e9  # one host: same monotonic clock
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    # an operator label decides success
    Publisher(session, KeySpace("t", "arm").control, block=True).put(Control("label", True, env.episode_id))
    assert wait_for(lambda: env.labels.pending() >= 1, 5)  # delivery is asynchronous, even within a session
    _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
    assert terminated and reward == 1.0 and info["labelled"]
    env.close()
    session.close()
    result = _finish(proc)
    assert result["counters"]["clipped"] == 5 and result["counters"]["control_start"] == 1


def test_a_robot_whose_spaces_differ_from_the_session_spec_is_refused_by_name(robot_process):
    endpoint, proc = robot_process("--sync", "cameras=[{name: front, width: 64, height: 48}]")
    session = open_session(TransportConfig(connect=[endpoint]))
    spec = load_spec("widowx", ["cameras=[{name: front, width: 32, height: 32}, {name: wrist, width: 32, height: "
                                "32}]", "action.high=[0.02, 0.02, 0.02, 0.1, 0.1, 0.2, 1.0]"])
    env = RemoteRobotEnv(session, KeySpace("t", "arm"), spec, timeout_s=10)
    with pytest.raises(SpecMismatch) as refused:
        env.connect()
    said = str(refused.value)
    assert "robot 'arm' does not fit this session's robot spec 'widowx'" in said
    assert "camera 'front' is 32x32 here, 64x48 on robot 'arm'" in said
    assert "camera 'wrist' is missing on robot 'arm'" in said
    assert "action high are [0.02, 0.02, 0.02, 0.1, 0.1, 0.2, 1.0] here, [0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0]" in said
    assert "proprio" not in said and "action names" not in said  # what matches is not named
    # the same robot with the spec it has: accepted
    fits = RemoteRobotEnv(session, KeySpace("t", "arm"), load_spec(
        "widowx", ["cameras=[{name: front, width: 64, height: 48}]"]), timeout_s=10)
    fits.connect()
    for e in (env, fits):
        e.close()
    session.close()
    _finish(proc)


def test_remote_env_times_out_with_a_clear_error():
    endpoint = free_loopback_endpoint()
    session = open_session(TransportConfig(listen=[endpoint], connect=[]))
    env = RemoteRobotEnv(session, KeySpace("t", "nobody"), load_spec("widowx"), timeout_s=0.5)
    with pytest.raises(RobotTimeout, match="robot_parl/t/nobody/obs"):
        env.reset()
    env.close()
    session.close()


def test_realtime_robot_process_keeps_its_clock_without_an_actor(robot_process):
    endpoint, proc = robot_process("control_rate_hz=50", "--ticks", "50")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ticks"] == 50


def test_sim_robot_process_behind_the_same_protocol(robot_process):
    endpoint, proc = robot_process("--sim", "pick", "--sync")
    session = open_session(TransportConfig(connect=[endpoint]))
    env = RemoteRobotEnv(session, KeySpace("t", "arm"), load_spec("sim_tabletop"), timeout_s=20)
    obs, _ = env.reset()
    assert obs["images"]["front"].shape == (128, 128, 3) and obs["images"]["wrist"].std() > 0
    assert obs["instruction"] == "pick up the red cube"
    z0 = obs["proprio"][2]
    for _ in range(3):
        obs, _, terminated, _, _ = env.step(np.array([0, 0, 0.2, 0, 0, 0, 1], np.float32))
    assert obs["proprio"][2] - z0 == pytest.approx(0.09, abs=0.01)  # clipped to 3 cm per step
    assert not terminated
    env.close()
    session.close()
    assert _finish(proc)["counters"]["clipped"] == 3
