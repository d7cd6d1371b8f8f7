"""A session whose learner is 2 data-parallel gloo ranks launched by torchrun (rl/data_parallel.py), with a simulated
robot side and an actor as real processes on loopback zenoh; then the same learner resumed."""

import json
import os
import subprocess
import sys
import time

import pytest
from session_processes import LearnerHeartbeat, Proc

from robot_parl.data.episode_store import EpisodeStore
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import free_loopback_endpoints

CAMERA = "robot_overrides=['cameras=[{name: front, width: 32, height: 32}]']"
pytestmark = pytest.mark.slow


def _torchrun(port: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
            "--master-addr", "127.0.0.1", "--master-port", port]


def _finals(text: str) -> dict[str, dict]:
    """Each rank's last line: rank 0's counters and the other rank's agent counters."""
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return {"lead": next(x for x in lines if "instance" in x), "other": next(x for x in lines if x.get("rank") == 1)}


def test_a_two_rank_learner_trains_a_session_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    robot_ep, learner_ep, rendezvous = free_loopback_endpoints(3)
    port = rendezvous.rsplit(":", 1)[1]
    cfg = ["--config", "configs/finetune-tiny-vla.yaml", CAMERA, "policy.kind=gaussian",
           "policy.gaussian.hidden_dims=[32]", "parl.num_samples=4", "parl.top_k=2", "link.session=ranks",
           f"link.robot_endpoint={robot_ep}", f"link.learner_endpoint={learner_ep}", "actor.episodes=3",
           "actor.horizon=20", "actor.live_view=null", "learner.checkpoint_every_s=1"]
    learner_args = ["learner", "--out", str(tmp_path / "learner"), *cfg]
    procs: dict[str, Proc] = {}
    heartbeat = LearnerHeartbeat(learner_ep, "ranks")
    try:
        procs["robot"] = Proc("robot", ["robot", "--sim", "pick", "--spec", "sim_tabletop", "--listen", robot_ep,
                                        "--session", "ranks", "--robot", "robot0",
                                        "cameras=[{name: front, width: 32, height: 32}]"], tmp_path)
        procs["learner"] = learner = Proc("learner", learner_args, tmp_path, launcher=_torchrun(port))
        procs["actor"] = actor = Proc("actor", ["actor", "--out", str(tmp_path / "actor"), "--operator", "none",
                                                *cfg], tmp_path)
        learner.wait_for(lambda t: "2 data-parallel ranks" in t, what="the learner's ranks")
        actor.proc.wait(timeout=240)
        assert actor.proc.returncode == 0, actor.text()[-3000:]
        deadline = time.monotonic() + 120
        while heartbeat.counter("critic_updates") < 40:  # the owed online updates, made by both ranks
            assert time.monotonic() < deadline, learner.text()[-3000:]
            time.sleep(0.1)
        learner.stop()  # SIGTERM to torchrun, which passes it to each rank: rank 0 checkpoints and stops rank 1
        first = _finals(learner.text())
        procs["learner"] = again = Proc("learner2", learner_args, tmp_path, launcher=_torchrun(port))
        again.wait_for(lambda t: "(resumed), 2 data-parallel ranks" in t, what="the ranks resuming")
        again.stop()
    finally:
        for proc in procs.values():
            proc.stop()
        heartbeat.close()
    store = EpisodeStore(tmp_path / "learner" / "episodes")
    assert len(store) == 3 and not any(e.partial for e in store.episodes())
    lead, other = first["lead"]["agent"], first["other"]["agent"]
    assert lead["online_critic_updates"] >= 40 and lead["distill_updates"] >= 1
    # rank 1 made every update rank 0 made, no more, no fewer (its counters came from the same start)
    for key in ("critic_updates", "distill_updates", "policy_version"):
        assert other[key] == lead[key], key
    # resumed: both ranks started from the final checkpoint and stopped with it
    resumed = _finals(again.text())
    assert resumed["other"]["agent"]["critic_updates"] == resumed["lead"]["agent"]["critic_updates"] >= \
        lead["critic_updates"]


def test_an_indexed_cuda_device_under_torchrun_is_refused(tmp_path):
    env = dict(os.environ, WORLD_SIZE="2", RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    done = subprocess.run([sys.executable, "-c", ENTRY, "learner", "--out", str(tmp_path / "learner"), "--config",
                           "configs/finetune-tiny-vla.yaml", "policy.kind=gaussian", "learner.device=cuda:1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == "robot-parl: config key 'learner.device': expected 'cuda' under torchrun (rank r " \
                                  "takes GPU LOCAL_RANK), got 'cuda:1'"
    assert not any(tmp_path.iterdir())  # nothing written
