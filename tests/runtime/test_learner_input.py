"""No Step can kill the learner: a real `robot-parl learner` process is sent well-formed but wrong steps (each one
that crashed it before), then an episode whose stamps go backwards, then a good episode. It refuses the bad ones
(counted in its heartbeat), acknowledges the refused episode so its actor stops resending it, and commits the
good one."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_parl.data.episode_store import EpisodeStore, KeySpec, Outcome, rl_schema
from robot_parl.runtime.steps import write_steps
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.channel import Inbox, Publisher, subscribe
from robot_parl.transport.keys import KeySpace
from robot_parl.transport.messages import LearnerStatus, Step
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

pytestmark = pytest.mark.slow
N = 4


def _step(episode, index, stamp=None, **changes):
    fields = dict(actor="fuzz", episode_id=episode, index=index, stamp_ns=1_000_000 * (index + 1) if stamp is None
                  else stamp, images={"front": np.zeros((32, 32, 3), np.uint8)}, proprio=np.zeros(4, np.float32),
                  action=np.zeros(7, np.float32), candidates=np.zeros((N, 7), np.float32), reward=-1.0)
    fields.update(changes)
    return Step(**fields)


def _episode(episode_id, steps=3, stamps=None, **outcome):
    stamps = stamps or [None] * (steps + 1)
    out = [_step(episode_id, i, stamps[i]) for i in range(steps)]
    return out + [_step(episode_id, steps, stamps[steps], final=True, success=True, reward=0.0, **outcome)]


BAD = [
    ("lone final step", _step("e1", 0, final=True)),
    ("proprio of another length", _step("e2", 1, proprio=np.zeros(6, np.float32))),
    ("final step without candidates", _step("e3", 3, final=True, candidates=None)),
    ("camera missing", _step("e4", 0, images={})),
    ("unknown camera", _step("e5", 0, images={"side": np.zeros((32, 32, 3), np.uint8)})),
    ("image of another size", _step("e6", 0, images={"front": np.zeros((16, 32, 3), np.uint8)})),
    ("NaN action", _step("e7", 0, action=np.full(7, np.nan, np.float32))),
    ("inf reward", _step("e8", 0, reward=float("inf"))),
    ("wrong N", _step("e9", 0, candidates=np.zeros((N + 1, 7), np.float32))),
    ("action of another length", _step("e10", 0, action=np.zeros(3, np.float32))),
]


def test_wrong_steps_are_refused_and_the_learner_lives_on(tmp_path):
    endpoint = free_loopback_endpoint()
    out = tmp_path / "learner"
    learner = subprocess.Popen([sys.executable, "-c", ENTRY, "learner", "--config", "configs/finetune-tiny-vla.yaml",
                                "--out", str(out), "robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']",
                                "policy.kind=gaussian", "policy.gaussian.hidden_dims=[16]", f"parl.num_samples={N}",
                                "parl.top_k=2", "link.session=fuzz", f"link.learner_endpoint={endpoint}"],
                               stdout=open(tmp_path / "learner.log", "w"), stderr=subprocess.STDOUT)
    session = None
    try:
        deadline = time.monotonic() + 120
        while "learner " not in (tmp_path / "learner.log").read_text():
            assert learner.poll() is None and time.monotonic() < deadline, (tmp_path / "learner.log").read_text()
            time.sleep(0.1)
        session = open_session(TransportConfig(connect=[endpoint]))
        status = Inbox(LearnerStatus, maxlen=1000)
        sub = subscribe(session, KeySpace("fuzz", "learner").status, status)
        steps = Publisher(session, KeySpace("fuzz", "robot0").step, block=True)
        assert steps.matched(30)
        for _, step in BAD:
            steps.put(step)
        for step in _episode("backwards", stamps=[4_000_000, 3_000_000, 2_000_000, 1_000_000]):
            steps.put(step)
        for step in _episode("unknown outcome source", outcome_source="guess"):
            steps.put(step)
        for step in _episode("good", outcome_source="classifier", classifier_version=77, classifier_success=1):
            steps.put(step)

        def heard(counter, value):
            while time.monotonic() < deadline:
                beat = status.get(timeout=1.0)
                if beat is not None and beat.counters.get(counter, 0) >= value:
                    return beat
            raise AssertionError(f"no heartbeat with {counter} >= {value}: {(tmp_path / 'learner.log').read_text()}")

        deadline = time.monotonic() + 60
        beat = heard("episodes", 1)
        assert learner.poll() is None
        assert beat.counters["refused_steps"] == len(BAD) and beat.counters["refused_episodes"] == 2
        assert {"good", "backwards", "unknown outcome source"} <= set(beat.committed)  # refused ones are acknowledged
        sub.undeclare()
        steps.close()
    finally:
        if session is not None:
            session.close()
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=60) == 0
    log = (tmp_path / "learner.log").read_text()
    # one line for the first refusal; the flood after it is counted, not logged line by line
    assert "step 0 of episode 'e1' from 'fuzz' refused: index 0 is final: an episode needs s_0 and a final s_T" in log
    assert log.count("refused") < len(BAD)
    store = EpisodeStore(out / "episodes")
    assert [e.episode_id for e in store.episodes()] == ["good"] and len(store.info(0)) == 4
    assert store.info(0).outcome == Outcome("classifier", 77, 1)


@pytest.mark.parametrize("damage", ["latest names nothing", "truncated agent file"])
def test_a_learner_with_a_broken_checkpoint_stops_at_once_with_one_line(tmp_path, damage):
    out = tmp_path / "learner"
    args = [sys.executable, "-c", ENTRY, "learner", "--config", "configs/finetune-tiny-vla.yaml", "--out", str(out),
            "robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']", "policy.kind=gaussian",
            "policy.gaussian.hidden_dims=[16]", f"parl.num_samples={N}", "parl.top_k=2", "link.session=broken",
            f"link.learner_endpoint={free_loopback_endpoint()}"]
    (out / "checkpoints" / "update_00000010").mkdir(parents=True)
    (out / "checkpoints" / "latest").write_text("update_00000009" if damage == "latest names nothing"
                                                 else "update_00000010")
    (out / "checkpoints" / "update_00000010" / "agent.safetensors").write_bytes(b"\x10\x00\x00\x00")
    started = time.monotonic()
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    said = [line for line in run.stderr.splitlines() if line.startswith("robot-parl:")]
    assert run.returncode == 2 and len(said) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "update_000000" in said[0] and time.monotonic() - started < 60


def test_classifier_probabilities_are_stored_where_the_store_has_room_for_them(tmp_path):
    keys = {"images/front": KeySpec("uint8", (4, 4, 3)), "proprio": KeySpec("float32", (2,))}

    def steps(probabilities):
        return [Step(actor="a", episode_id=f"e{len(probabilities)}", index=t, stamp_ns=t,
                     images={"front": np.zeros((4, 4, 3), np.uint8)}, proprio=np.zeros(2, np.float32),
                     action=np.zeros(3, np.float32), candidates=np.zeros((2, 3), np.float32), reward=-1.0,
                     final=t == len(probabilities) - 1, success_probability=p) for t, p in enumerate(probabilities)]

    new = EpisodeStore.create(tmp_path / "new", rl_schema(keys, 3, 2))
    old_schema = {k: v for k, v in rl_schema(keys, 3, 2).items() if k != "success_probability"}
    old = EpisodeStore.create(tmp_path / "old", old_schema)  # made before probabilities were kept
    for store in (new, old):
        with store.writer("test") as writer:
            write_steps(writer, steps([0.1, 0.7, 0.95]))
            write_steps(writer, steps([-1.0, -1.0]))  # nobody watched
        store.refresh()
    assert new.episode(0, ["success_probability"])["success_probability"].tolist() == pytest.approx([0.1, 0.7, 0.95])
    assert "success_probability" not in new.info(1).keys
    assert len(old) == 2 and "success_probability" not in old.info(0).keys
