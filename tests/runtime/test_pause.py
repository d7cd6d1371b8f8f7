"""An operator's pause longer than the learner's partial_after_s loses nothing: the paused actor keeps reporting its
episode, so a real learner process commits it whole, with its outcome, once the operator resumes and labels it."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore
from robot_parl.robots.side import RobotSide
from robot_parl.robots.sim.kinematic_arm import KinematicArm
from robot_parl.runtime.actor import Actor
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.teleop.keyboard import Keyboard
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

pytestmark = pytest.mark.slow


def _wait(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_pause_longer_than_partial_after_s_keeps_the_episode_whole(tmp_path):
    robot_ep, learner_ep = free_loopback_endpoint(), free_loopback_endpoint()
    overrides = ["robot_spec=widowx", "robot_overrides=['cameras=[{name: front, width: 32, height: 24}]', "
                 "'control_rate_hz=20', 'workspace={low: [], high: []}']", "policy.kind=gaussian",
                 "policy.gaussian.hidden_dims=[16]", "parl.num_samples=4", "parl.top_k=2", "link.session=pause",
                 f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}", "actor.horizon=400",
                 "actor.live_view=null", "learner.partial_after_s=1.0"]
    cfg = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", overrides)
    learner = subprocess.Popen([sys.executable, "-c", ENTRY, "learner", "--config", "configs/finetune-tiny-vla.yaml",
                                "--out", str(tmp_path / "learner"), *overrides],
                               stdout=open(tmp_path / "learner.log", "w"), stderr=subprocess.STDOUT)
    robot_session = open_session(TransportConfig(listen=[robot_ep], connect=[]))
    actor_session = open_session(TransportConfig(connect=[robot_ep, learner_ep]))
    spec = cfg.spec()
    side = RobotSide(KinematicArm(spec, seed=1, goal_tolerance=0.0), robot_session, KeySpace("pause", "robot0"))
    stop = threading.Event()
    side_thread = threading.Thread(target=side.run, args=(stop,), daemon=True)
    side_thread.start()
    master, slave = os.openpty()
    actor = Actor(cfg, tmp_path / "actor", actor_session, log=lambda line: None,
                  operator=Keyboard(spec.action.low, spec.action.high, fd=slave))
    try:
        actor.wait_for_weights(threading.Event())
        result = {}
        thread = threading.Thread(target=lambda: result.update(success=actor.episode()), daemon=True)
        thread.start()
        _wait(lambda: actor.counters["steps_sent"] >= 3, "three steps")
        os.write(master, b"p")
        _wait(lambda: actor.counters["pauses"] == 1, "the pause")
        time.sleep(3.0)  # three times partial_after_s with no steps
        sent = actor.counters["steps_sent"]
        os.write(master, b"p")
        _wait(lambda: actor.counters["steps_sent"] >= sent + 3, "steps after the pause")
        os.write(master, b"y")
        thread.join(30)
        assert result["success"] is True
        store = EpisodeStore(tmp_path / "learner" / "episodes")

        def committed():
            store.refresh()
            return len(store) >= 1
        _wait(committed, "the learner committing the episode")
        info = store.info(0)
        assert not info.partial and info.success and info.episode_id == actor.episode_id
        assert len(info) == actor.counters["steps_sent"]  # every step, before and after the pause
    finally:
        actor.close()
        os.close(master)
        os.close(slave)
        stop.set()
        side_thread.join(10)
        side.close()
        actor_session.close()
        robot_session.close()
        learner.send_signal(signal.SIGTERM)
        learner.wait(timeout=60)
    assert "partial" not in (tmp_path / "learner.log").read_text()
