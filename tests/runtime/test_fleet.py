"""A fleet: three simulated robot sides, an actor for each and one learner, as real processes on loopback zenoh.

Every robot's episodes reach the one learner and are committed exactly once with the robot's name; killing one actor
and another robot's side, each mid-episode, stops neither the learner nor the third robot, whose episodes keep
coming; the two episodes the dead left under way are kept as partial ones.
"""

import json
import signal
import subprocess
import sys
import time

import pytest
from session_processes import LearnerHeartbeat, Proc

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import free_loopback_endpoints

CAMERA = "robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']"
ROBOTS = ("robot0", "robot1", "robot2")
pytestmark = pytest.mark.slow


def _committed(text: str, robot: str) -> int:
    return text.count(f" on {robot}: ")


def test_three_robots_feed_one_learner_and_lose_only_what_died(tmp_path):
    learner_ep, *robot_eps = free_loopback_endpoints(1 + len(ROBOTS))
    common = ["--config", "configs/finetune-tiny-vla.yaml", CAMERA, "policy.kind=gaussian",
              "policy.gaussian.hidden_dims=[32]", "parl.num_samples=4", "parl.top_k=2", "link.session=fleet",
              f"link.learner_endpoint={learner_ep}", "actor.episodes=0", "actor.live_view=null",
              "learner.partial_after_s=2", "learner.publish_critic_every=5"]
    procs: dict[str, Proc] = {}
    heartbeat = LearnerHeartbeat(learner_ep, "fleet")
    try:
        for i, (robot, endpoint) in enumerate(zip(ROBOTS, robot_eps)):
            procs[f"side{i}"] = Proc(f"side{i}", ["robot", "--sim", "pick", "--spec", "sim_tabletop", "--listen",
                                                  endpoint, "--session", "fleet", "--robot", robot, "--seed", str(i),
                                                  "--sync", "cameras=[{name: front, width: 32, height: 32}]"],
                                     tmp_path)
        procs["learner"] = learner = Proc("learner", ["learner", "--out", str(tmp_path / "learner"), *common],
                                          tmp_path)
        for i, (robot, endpoint) in enumerate(zip(ROBOTS, robot_eps)):
            # the robots that will lose a part run long episodes, so a kill a few steps into one lands in it
            horizon = 20 if robot == "robot0" else 200
            procs[f"actor{i}"] = Proc(f"actor{i}", ["actor", "--out", str(tmp_path / f"actor{i}"), "--name",
                                                    f"actor{i}", "--operator", "none", *common, f"link.robot={robot}",
                                                    f"link.robot_endpoint={endpoint}", f"actor.horizon={horizon}"],
                                      tmp_path)
        learner.wait_for(lambda t: all(_committed(t, r) >= 1 for r in ROBOTS), timeout=240,
                         what="an episode from every robot")
        for robot, dies in (("robot1", "actor1"), ("robot2", "side2")):  # an actor, then another robot's side
            deadline = time.monotonic() + 60
            while not 2 <= heartbeat.counter(f"open_steps/{robot}") <= 100:  # a few steps into one of its episodes
                assert time.monotonic() < deadline, f"no episode of {robot} under way"
                time.sleep(0.01)
            procs[dies].stop(signal.SIGKILL)
        at_kill = _committed(learner.text(), "robot0")
        learner.wait_for(lambda t: _committed(t, "robot0") >= at_kill + 3, timeout=240,
                         what="robot0's episodes going on")
        time.sleep(3.0)  # past partial_after_s: what the dead left open is committed as partial
    finally:
        for proc in procs.values():
            proc.stop()
        heartbeat.close()
    store = EpisodeStore(tmp_path / "learner" / "episodes")
    episodes = store.episodes()
    ids = [e.episode_id for e in episodes]
    assert len(ids) == len(set(ids))  # nothing committed twice
    assert {e.robot for e in episodes} == set(ROBOTS)
    for i, robot in enumerate(ROBOTS):
        journal = EpisodeStore(tmp_path / f"actor{i}" / "journal" / "episodes")
        mine = {e.episode_id: e for e in episodes if e.robot == robot}
        # every episode an actor finished is the learner's once, under its robot's name
        assert {e.episode_id for e in journal.episodes()} <= set(mine)
        assert sum(not e.partial for e in mine.values()) >= 1
    assert sum(e.robot == "robot0" and not e.partial for e in episodes) >= at_kill + 3
    # what the dead left under way is kept, flagged partial; the survivor lost nothing
    assert {r: sum(e.partial for e in episodes if e.robot == r) for r in ROBOTS} == \
        {"robot0": 0, "robot1": 1, "robot2": 1}
    # the learner counts each robot's episodes (its last line: its counters)
    counters = json.loads(procs["learner"].text().strip().splitlines()[-1])["counters"]
    assert procs["learner"].proc.returncode == 0
    assert {r: counters[f"episodes/{r}"] for r in ROBOTS} == \
        {r: sum(e.robot == r and not e.partial for e in episodes) for r in ROBOTS}


def test_an_actor_whose_robot_does_not_fit_the_session_is_refused_at_start(tmp_path):
    learner_ep, robot_ep = free_loopback_endpoints(2)
    side = Proc("side", ["robot", "--sim", "pick", "--spec", "sim_tabletop", "--listen", robot_ep, "--session",
                         "fleet", "--robot", "odd", "cameras=[{name: front, width: 48, height: 32}]"], tmp_path)
    try:
        side.wait_for(lambda t: "robot side" in t, what="the robot side")
        started = time.monotonic()
        actor = Proc("actor", ["actor", "--out", str(tmp_path / "actor"), "--operator", "none", "--config",
                               "configs/finetune-tiny-vla.yaml", CAMERA, "policy.kind=gaussian", "link.session=fleet",
                               "link.robot=odd", f"link.robot_endpoint={robot_ep}",
                               f"link.learner_endpoint={learner_ep}"], tmp_path)
        assert actor.proc.wait(timeout=60) == 2
    finally:
        side.stop()
    assert time.monotonic() - started < 30
    assert actor.text().strip().splitlines()[-1] == (
        "robot-parl: robot 'odd' does not fit this session's robot spec 'sim_tabletop': camera 'front' is 32x32 "
        "here, 48x32 on robot 'odd'")
    assert not (tmp_path / "actor").exists()  # nothing written


def test_finetune_runs_a_fleet_with_a_two_rank_learner(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    learner_ep, *robot_eps = free_loopback_endpoints(3)
    fleet = ", ".join(f"{{name: {r}, endpoint: '{e}'}}" for r, e in zip(ROBOTS[:2], robot_eps))
    out = tmp_path / "session"
    run = subprocess.run([sys.executable, "-c", ENTRY, "finetune", "--config", "configs/finetune-tiny-vla.yaml",
                          "--out", str(out), CAMERA, "policy.kind=gaussian", "policy.gaussian.hidden_dims=[32]",
                          "parl.num_samples=4", "parl.top_k=2", "link.session=fleet2",
                          f"link.learner_endpoint={learner_ep}", f"link.fleet=[{fleet}]", "learner.ranks=2",
                          "actor.episodes=2", "actor.horizon=10", "actor.live_view=127.0.0.1:0"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for robot in ROBOTS[:2]:
        assert summary[f"actor-{robot}"]["episodes"] == 2 and summary[f"actor-{robot}"]["unacknowledged"] == 0
        assert f"live view of actor-{robot}: http://127.0.0.1:" in run.stdout
        assert f">actor-{robot}</a>" in (out / "fleet.html").read_text()
    assert "2 data-parallel ranks" in (out / "learner.log").read_text()
    store = EpisodeStore(out / "learner" / "episodes")
    assert sorted(e.robot for e in store.episodes()) == ["robot0", "robot0", "robot1", "robot1"]
    assert summary["learner"]["agent"]["online_episodes"] == 4
    # rank 1 made each of rank 0's updates (the supervisor starts ranks as torchrun does; rank 0 stops them)
    for key in ("critic_updates", "distill_updates"):
        assert summary["learner-rank1"]["agent"][key] == summary["learner"]["agent"][key] > 0
