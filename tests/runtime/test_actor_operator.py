"""The actor's operator: takeover (recorded as intervention), a success label that settles the last
step's reward, pause (the robot holds, then the episode goes on) and e-stop (latched on the robot side),
with the keyboard on a real pty, a real robot side (kinematic arm, 20 Hz) and real zenoh."""

import os
import threading
import time

import numpy as np
import pytest

from robot_parl import typed_config
from robot_parl.data.episode_store import EpisodeStore
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.transport.messages import Step

CAMERA = "cameras=[{name: front, width: 32, height: 24}]"


@pytest.fixture
def session_parts(actor_on_arm):
    return actor_on_arm(typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", [
        "robot_spec=widowx", f"robot_overrides=['{CAMERA}', 'control_rate_hz=20']", "policy.kind=gaussian",
        "policy.gaussian.hidden_dims=[16]", "parl.num_samples=4", "parl.top_k=2", "link.session=op",
        "actor.horizon=200"]))


def _wait(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_takeover_label_pause_and_estop(session_parts, tmp_path):
    actor, side, steps, keys = session_parts
    result = {}
    thread = threading.Thread(target=lambda: result.update(success=actor.episode()), daemon=True)
    thread.start()
    received: list[Step] = []

    def got(n):
        received.extend(steps.drain())
        return len(received) >= n

    _wait(lambda: got(3))
    os.write(keys, b"w")  # take over for one step: +x at half the bound
    _wait(lambda: actor.counters["intervention_steps"] >= 1)
    os.write(keys, b"p")  # pause: the robot holds
    _wait(lambda: actor.counters["pauses"] == 1 and not side.running)
    held_at = len(received) + steps.pending()
    time.sleep(0.3)
    assert len(received) + steps.pending() <= held_at + 1  # nothing acted while paused
    os.write(keys, b"p")  # go on
    _wait(lambda: side.running)
    _wait(lambda: got(held_at + 3))
    os.write(keys, b"y")  # success
    thread.join(20)
    assert result["success"] is True
    _wait(lambda: got(1) and received[-1].final)
    episode = [s for s in received if s.episode_id == actor.episode_id]
    assert [s.index for s in episode] == list(range(len(episode)))  # in order, nothing lost across the pause
    interventions = [s for s in episode if s.source == "intervention"]
    assert len(interventions) == 1
    np.testing.assert_allclose(interventions[0].action[:3], [0.01, 0, 0], atol=1e-6)  # stored in robot units
    assert episode[-1].success and episode[-2].reward == 0.0 and all(s.reward == -1.0 for s in episode[:-2])
    journal = EpisodeStore(tmp_path / "actor" / "journal" / "episodes")
    assert journal.info(0).source == "intervention" and journal.info(0).success

    # e-stop during the next episode: latched on the robot side, the actor stops
    thread = threading.Thread(target=actor.episode, daemon=True)
    thread.start()
    _wait(lambda: side.running)
    os.write(keys, b"x")
    thread.join(20)
    assert actor.quit and actor.counters["estops"] == 1
    _wait(lambda: side.safety.estopped)  # latched at the robot side's next tick
