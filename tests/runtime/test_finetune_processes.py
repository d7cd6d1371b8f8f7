"""Online fine-tuning with real processes on loopback: a simulated robot side, an actor and a learner.

The session test runs `robot-parl finetune` (the supervisor) with the tiny VLA. The fault test runs the
processes itself so it can SIGKILL them: the learner mid-session (the actor keeps acting; the restarted
learner resumes from its checkpoint and receives the episodes journaled during the outage), then the
actor mid-episode (the robot side holds; the learner flags the partial episode).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from session_processes import LearnerHeartbeat, Proc

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.models.vla.checkpoint import write_random_checkpoint
from robot_parl.rl.trust import probation_arm
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.tensor_tree import load_tree
from robot_parl.transport.session import free_loopback_endpoints

CAMERA = "robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']"
pytestmark = pytest.mark.slow


def test_finetune_session_streams_steps_trains_and_syncs_weights(tmp_path):
    robot_ep, learner_ep = free_loopback_endpoints(2)
    checkpoint = write_random_checkpoint(tmp_path / "vla", seed=0)
    out = tmp_path / "session"
    run = subprocess.run([sys.executable, "-c", ENTRY, "finetune", "--config", "configs/finetune-tiny-vla.yaml",
                          "--out", str(out), CAMERA, f"policy.vla.checkpoint={checkpoint}", "link.session=e2e",
                          f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}",
                          "actor.episodes=3", "actor.horizon=8", "learner.publish_critic_every=5",
                          "parl.trust_min_z=2"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    actor, learner = summary["actor"], summary["learner"]
    assert actor["episodes"] == 3 and actor["unacknowledged"] == 0
    assert actor["versions"]["critic"] >= 1  # the actor acted with weights the learner trained
    assert learner["agent"]["online_episodes"] == 3 and learner["agent"]["critic_updates"] >= 5
    assert set(actor["latency_ms"]) >= {"sample", "encode", "optimize", "obs_wait", "send", "swap", "weight_sync"}
    assert 0 < actor["latency_ms"]["weight_sync"] < 60_000
    store = EpisodeStore(out / "learner" / "episodes")
    journal = EpisodeStore(out / "actor" / "journal" / "episodes")
    assert sorted(e.episode_id for e in store.episodes()) == sorted(e.episode_id for e in journal.episodes())
    for info in store.episodes():
        assert info.source == "rollout" and "candidates" in info.keys and not info.partial
        ep = store.episode(info.index)
        assert ep["candidates"].shape[1:] == (8, 7) and np.all(np.abs(ep["action"]) <= 1.0)
        assert np.all(np.diff(ep["timestamp"]) > 0)
    # the policy the actor used moved with the learner: later episodes carry newer versions
    assert [e.critic_version for e in store.episodes()] == sorted(e.critic_version for e in store.episodes())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    actor_log = EventAccumulator(str(out / "actor" / "tensorboard")).Reload()
    assert {"actor/success", "actor/candidate_q_spread", "actor/critic_gain", "actor/critic_sure",
            "actor/latency_ms/sample"} <= set(actor_log.Tags()["scalars"])
    assert len(actor_log.Scalars("actor/success")) == 3
    # on probation (rl/trust.py): each episode's arm, chosen by the actor from its id, is the one the learner
    # counted as evidence, with its outcome and return
    ids = [e.episode_id for e in store.episodes()]
    arms = [probation_arm(i) for i in ids]
    assert [bool(s.value) for s in actor_log.Scalars("actor/critic_acted")] == arms
    checkpoint = out / "learner" / "checkpoints" / (out / "learner" / "checkpoints" / "latest").read_text().strip()
    returns = [float(store.episode(e.index, ["reward"])["reward"][:-1].sum()) for e in store.episodes()]
    assert load_tree(checkpoint / "agent.safetensors")["probation"] == [
        [a, e.success, pytest.approx(r)] for a, e, r in zip(arms, store.episodes(), returns)]


def _count(text: str, needle: str) -> int:
    return text.count(needle)


def test_learner_and_actor_crashes_lose_nothing(tmp_path):
    robot_ep, learner_ep = free_loopback_endpoints(2)
    cfg = ["--config", "configs/finetune-tiny-vla.yaml", CAMERA, "policy.kind=gaussian",
           "policy.gaussian.hidden_dims=[32]", "parl.num_samples=8", "parl.top_k=4", "link.session=faults",
           f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}", "actor.episodes=0",
           "actor.horizon=40", "learner.checkpoint_every_s=0.5", "learner.partial_after_s=2",
           "learner.publish_critic_every=5"]
    procs = {}
    learner_status = LearnerHeartbeat(learner_ep, "faults")
    try:
        procs["robot"] = Proc("robot", ["robot", "--sim", "pick", "--spec", "sim_tabletop", "--listen", robot_ep,
                                         "--session", "faults", "--robot", "robot0",
                                         "cameras=[{name: front, width: 32, height: 32}]", "control_rate_hz=20"],
                               tmp_path)
        procs["learner"] = learner = Proc("learner", ["learner", "--out", str(tmp_path / "learner"), *cfg], tmp_path)
        procs["actor"] = actor = Proc("actor", ["actor", "--out", str(tmp_path / "actor"), *cfg], tmp_path)
        learner.wait_for(lambda t: _count(t, "committed episode") >= 2, what="two committed episodes")
        learner.wait_for(lambda t: True)
        assert (tmp_path / "learner" / "checkpoints" / "latest").is_file()
        store = EpisodeStore(tmp_path / "learner" / "episodes")
        first = store.episode(0)

        learner.stop(signal.SIGKILL)
        done_at_kill = _count(actor.text(), ": failure") + _count(actor.text(), ": success")
        actor.wait_for(lambda t: _count(t, ": failure") + _count(t, ": success") >= done_at_kill + 2,
                       what="the actor acting on while the learner is down")
        procs["learner"] = learner = Proc("learner2", ["learner", "--out", str(tmp_path / "learner"), *cfg], tmp_path)
        learner.wait_for(lambda t: "resumed from checkpoint" in t, what="the learner resuming")
        journal = EpisodeStore(tmp_path / "actor" / "journal" / "episodes")

        def all_arrived(_):
            journal.refresh()
            store.refresh()
            return len(journal) >= done_at_kill + 2 and \
                {e.episode_id for e in journal.episodes()} <= {e.episode_id for e in store.episodes()}
        learner.wait_for(all_arrived, what="the journaled episodes arriving")

        # kill the actor a few steps into an episode (the learner's heartbeat shows the open episode)
        deadline = time.monotonic() + 60
        while not 2 <= learner_status.counter("open_steps") <= 15:
            assert time.monotonic() < deadline, "no episode in progress seen"
            time.sleep(0.02)
        actor.stop(signal.SIGKILL)
        learner.wait_for(lambda t: "committed partial episode" in t, what="the partial episode")
        time.sleep(1.0)
    finally:
        for name in ("actor", "learner", "robot"):
            if name in procs:
                procs[name].stop()
        learner_status.close()
    robot = json.loads(procs["robot"].text().strip().splitlines()[-1])
    assert robot["counters"]["missed_deadline"] >= 1  # the robot held once the actions stopped
    store.refresh()
    ids = [e.episode_id for e in store.episodes()]
    assert len(ids) == len(set(ids))  # nothing committed twice, despite resends
    journal.refresh()
    assert {e.episode_id for e in journal.episodes()} <= set(ids)  # nothing lost
    partial = [e for e in store.episodes() if e.partial]
    assert len(partial) == 1 and not partial[0].success and partial[0].episode_id not in \
        {e.episode_id for e in journal.episodes()}
    again = store.episode(0)
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value)  # committed episodes never change
    assert os.path.getsize(tmp_path / "learner" / "checkpoints" / "latest") > 0
