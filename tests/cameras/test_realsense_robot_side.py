"""RealSense cameras feeding a robot side started by `robot-parl robot` / `robot-parl collect` (--realsense
CAMERA=SERIAL): frames of a pyrealsense2 software device reach a RemoteRobotEnv; wrong names and serials fail
before anything runs, with messages that say what to fix."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import numpy as np
import pytest
from realsense_rig import Rig, Streaming, color_frame, needs_pyrealsense2

from robot_parl import cli
from robot_parl.cameras import (
    CameraError,
    RealSenseCamera,
    WithCameras,
    camera_items,
    realsense_sources,
    resize_nearest,
)
from robot_parl.cli.common import robot_adapter
from robot_parl.robots.remote import RemoteRobotEnv
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.robots.spec import load_spec
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import Action, Control, Observation, Status

CAMERAS = "cameras=[{name: front, width: 32, height: 24}, {name: wrist, width: 64, height: 48}]"


def _blocks(small: np.ndarray, factor: int) -> np.ndarray:
    """``small`` scaled up by whole blocks: nearest sampling back to the small size must return it exactly."""
    return np.kron(small, np.ones((factor, factor, 1), np.uint8))


def test_camera_items_name_what_is_wrong():
    spec = load_spec("sim_tabletop")
    assert camera_items(["wrist=123", "front=a=b"], spec, "--realsense") == {"wrist": "123", "front": "a=b"}
    with pytest.raises(ValueError, match=r"--realsense: cameras \['side'\] are not in the robot spec 'sim_tabletop' "
                                         r"\(its cameras: \['front', 'wrist'\]\)"):
        camera_items(["side=123"], spec, "--realsense")
    with pytest.raises(ValueError, match=r"--realsense: expected CAMERA=VALUE, got 'wrist'"):
        camera_items(["wrist"], spec, "--realsense")
    with pytest.raises(ValueError, match=r"camera 'wrist' is given twice"):
        camera_items(["wrist=1", "wrist=2"], spec, "--realsense")


def test_resize_nearest_keeps_whole_blocks():
    small = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_nearest(_blocks(small, 10), 48, 64), small)
    assert resize_nearest(small, 48, 64) is small
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(resize_nearest(depth, 6, 8)[::2, ::2], depth)


@needs_pyrealsense2
def test_a_sim_robot_side_with_a_realsense_wrist_camera_sends_its_frames(zenoh_pair):
    # librealsense does not list software devices among connected ones, so a serial cannot select one: the
    # test opens the device the serial names through realsense_sources' open_camera (the only stand-in here).
    rigs = {"SYN0042": Rig("SYN0042", color_size=(640, 480))}
    opened = []

    def open_software_device(serial, width, height, fps, name):
        opened.append((serial, width, height, fps, name))
        return RealSenseCamera.from_device(rigs[serial].device, width, height, fps, depth=False, name=name)

    args = cli.build_parser().parse_args(["robot", "--sim", "pick", "--sync", "--realsense", "wrist=SYN0042", CAMERAS])
    spec = load_spec("sim_tabletop", args.overrides)
    wrist = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    robot_session, client_session = zenoh_pair
    keys = KeySpace("rs", "arm")
    with Streaming(rigs["SYN0042"], _blocks(wrist, 10)):
        adapter, to_close = robot_adapter(args, spec, "robot", None, open_camera=open_software_device)
        side = RobotSide(adapter, robot_session, keys, synchronous=True)
        stop = threading.Event()
        thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
        thread.start()
        env = RemoteRobotEnv(client_session, keys, spec, timeout_s=30)
        try:
            obs, _ = env.reset()
            for _ in range(100):  # the camera's first frame may come a few steps after the robot side starts
                if obs["images"]["wrist"].any():
                    break
                obs, *_ = env.step(np.zeros(7, np.float32))
            for _ in range(3):
                obs, *_ = env.step(np.zeros(7, np.float32))
                # the RealSense's 640x480 frames, resized to the spec's 64x48 wrist camera
                np.testing.assert_array_equal(obs["images"]["wrist"], wrist)
                assert obs["images"]["front"].shape == (24, 32, 3) and obs["images"]["front"].std() > 5  # MuJoCo
        finally:
            env.close()
            stop.set()
            thread.join(10)
            side.close()
            for item in to_close:
                item.close()
    assert opened == [("SYN0042", 640, 480, 30, "wrist")]
    assert adapter.sources[0].stats()["frames"] >= 4


class CountingArm(KinematicArm):
    """The kinematic arm, counting the commands that reach it."""

    def __init__(self, spec):
        super().__init__(spec)
        self.applied = 0

    def apply(self, values: np.ndarray) -> None:
        self.applied += 1
        super().apply(values)


@needs_pyrealsense2
def test_a_stalled_or_failed_camera_holds_the_arm_until_frames_come_back(zenoh_pair, wait_for, caplog):
    caplog.set_level(logging.WARNING, logger="robot_parl.cameras")
    spec = load_spec("widowx", ["control_rate_hz=20", CAMERAS])
    arm = CountingArm(spec)
    rig = Rig("SYN0009")
    camera = RealSenseCamera.from_device(rig.device, 64, 48, 30, depth=False, name="wrist")
    adapter = WithCameras(arm, [camera])  # stale after 0.5 s without a frame
    robot_session, actor_session = zenoh_pair
    keys = KeySpace("stall", "arm")
    side = RobotSide(adapter, robot_session, keys, status_every=5)
    answer = Publisher(actor_session, keys.action, block=True)
    statuses = Inbox(Status, maxlen=1000)
    subs = [subscribe(actor_session, keys.obs, Inbox(Observation, on_message=lambda obs: answer.put(
                Action(obs.seq, np.array([0.0, 0, 0, 0, 0, 0, 1], np.float32))))),
            subscribe(actor_session, keys.status, statuses)]
    control = Publisher(actor_session, keys.control, block=True)
    stop = threading.Event()
    thread = threading.Thread(target=side.run, args=(stop,), daemon=True)

    def held_while_stale() -> None:
        # once the robot side holds for the stale camera, it keeps ticking and holding: nothing is applied
        holds = side.safety.counters["camera_stale_holds"]
        assert wait_for(lambda: side.safety.counters["camera_stale_holds"] >= holds + 3, 15), side.all_counters()
        applied, seq = arm.applied, side.seq
        assert wait_for(lambda: side.seq >= seq + 10, 15) and thread.is_alive()
        assert arm.applied == applied, side.all_counters()

    try:
        thread.start()
        control.put(Control("start", episode_id="ep"))
        # no frame yet: the robot side holds, and a silence past the stall time counts as a stall
        held_while_stale()
        assert wait_for(lambda: adapter.counters["camera_stalls"] >= 1, 15)
        assert arm.applied == 0 and side.safety.counters["applied"] == 0
        with Streaming(rig, color_frame(1)) as streaming:
            assert wait_for(lambda: arm.applied >= 5, 15), side.all_counters()
        # the camera goes silent: held, whatever the actor answers, and counted
        held_while_stale()
        assert adapter.counters["camera_stalls"] >= 2
        # frames again: acting resumes by itself
        with Streaming(rig, color_frame(2), first=streaming.pushed + 1):
            applied = arm.applied
            assert wait_for(lambda: arm.applied >= applied + 5, 15), side.all_counters()
            # the device goes away (librealsense raises on a stopped pipeline, as for an unplugged camera)
            camera._pipe.stop()
            assert wait_for(lambda: adapter.counters["camera_errors"] >= 1, 15)
            held_while_stale()
        assert adapter.counters["camera_stalls"] >= 3 and side.all_counters()["camera_stalls"] >= 3
        # the stalls and failures reach the Status the robot side publishes
        assert wait_for(lambda: any(s.counters.get("camera_stalls", 0) >= 3 and s.counters["camera_errors"] >= 1
                                    for s in statuses.drain()), 15)
    finally:
        stop.set()
        thread.join(10)
        side.close()
        for sub in subs:
            sub.undeclare()
        # close() stops the camera's reader thread (it is not left reading)
        closer = threading.Thread(target=adapter.close)
        closer.start()
        closer.join(10)
    assert not thread.is_alive() and not closer.is_alive() and not adapter.readers[0]._thread.is_alive()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("camera 'wrist' (RealSense SYN0009) no frame within" in w for w in warnings), warnings
    assert any("camera 'wrist' (RealSense SYN0009) failed (RuntimeError: " in w for w in warnings), warnings


@needs_pyrealsense2
def test_cameras_opened_before_a_failing_one_are_closed():
    rig = Rig("SYN0001", color_size=(640, 480))
    opened = []

    def open_camera(serial, width, height, fps, name):
        if serial != "SYN0001":
            raise CameraError(f"RealSense serial {serial!r} not found")
        opened.append(RealSenseCamera.from_device(rig.device, width, height, fps, depth=False, name=name))
        return opened[-1]

    with pytest.raises(CameraError, match="'NOPE' not found"):
        realsense_sources(["front=SYN0001", "wrist=NOPE"], load_spec("widowx"), open_camera=open_camera)
    with pytest.raises(CameraError, match="closed"):
        opened[0].read(timeout_s=0.1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_parl.cli", *args], capture_output=True, text=True, timeout=120)


@needs_pyrealsense2
def test_unknown_cameras_and_serials_fail_before_the_robot_side_runs(tmp_path):
    run = _cli("robot", "--sim", "pick", "--ticks", "1", "--realsense", "side=123")
    assert run.returncode != 0
    assert ("robot-parl robot: --realsense: cameras ['side'] are not in the robot spec 'sim_tabletop' "
            "(its cameras: ['front', 'wrist'])") in run.stderr
    # this machine has no RealSense connected: librealsense lists none
    run = _cli("robot", "--sim", "pick", "--ticks", "1", "--realsense", "wrist=NOPE")
    assert run.returncode != 0
    assert "robot-parl robot: RealSense serial 'NOPE' not found; connected: none" in run.stderr
    assert "robot side" not in run.stdout
    run = _cli("collect", "--store", str(tmp_path / "demos"), "--realsense", "wrist=123")
    assert run.returncode != 0 and "robot-parl collect: --realsense needs --sim" in run.stderr
    assert not (tmp_path / "demos").exists()
    run = _cli("collect", "--store", str(tmp_path / "demos"), "--sim", "pick", "--device", "expert",
               "--realsense", "wrist=NOPE")
    assert run.returncode != 0 and "robot-parl collect: RealSense serial 'NOPE' not found" in run.stderr
    assert not (tmp_path / "demos").exists()  # refused before a store was made
