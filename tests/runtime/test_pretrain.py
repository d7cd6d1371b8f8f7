"""`robot-parl pretrain` on demonstrations recorded by `robot-parl collect` (the scripted expert over the
protocol), then a learner that resumes from its checkpoint and goes straight online."""

import json
import subprocess
import sys
import threading

from robot_parl import cli, typed_config
from robot_parl.runtime.config import FinetuneConfig
from robot_parl.runtime.learner import Learner
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import TransportConfig, free_loopback_endpoint, open_session

CAMERA = "cameras=[{name: front, width: 32, height: 32}]"
CONFIG = ["--config", "configs/finetune-tiny-vla.yaml", f"robot_overrides=['{CAMERA}']", "policy.kind=diffusion",
          "policy.diffusion.hidden_dim=32", "policy.diffusion.num_blocks=1", "parl.num_samples=8", "parl.top_k=4",
          "parl.schedule.offline_steps=30"]


def test_pretrain_from_collected_demonstrations_then_the_learner_resumes(tmp_path, capsys):
    demos = tmp_path / "demos"
    run = subprocess.run([sys.executable, "-c", ENTRY, "collect", "--store", str(demos), "--sim", "pick",
                          "--device", "expert", "--episodes", "3", "--horizon", "60", CAMERA],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert cli.main(["pretrain", "--out", str(tmp_path / "learner"), "--bc-steps", "20", *CONFIG,
                     f"learner.offline_store={demos}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["checkpoint"].endswith("pretrained")

    cfg = typed_config.load(FinetuneConfig, CONFIG[1], CONFIG[2:] + [f"learner.offline_store={demos}"])
    session = open_session(TransportConfig(listen=[free_loopback_endpoint()], connect=[]))
    learner = Learner(cfg, tmp_path / "learner", session, log=lambda line: None)
    try:
        assert learner.resumed and learner.offline_done
        assert learner.agent.counters["critic_updates"] == 30 and learner.agent.policy.updates == 20
        assert learner.agent.replay.offline.size > 0 and learner.offline.position == 3
        learner.pretrain(threading.Event())  # already done: no further offline updates
        assert learner.agent.counters["critic_updates"] == 30
        learner.ingest()  # the offline store is not fed twice
        assert learner.offline.position == 3
    finally:
        learner.close()
        session.close()


def test_pretrain_refuses_a_store_for_another_robot_and_a_missing_store(tmp_path, capsys):
    from robot_parl.data.episode_store import EpisodeStore, KeySpec, rl_schema

    EpisodeStore.create(tmp_path / "other", rl_schema({"state": KeySpec("float32", (3,))}, 7))
    assert cli.main(["pretrain", "--out", str(tmp_path / "l"), *CONFIG,
                     f"learner.offline_store={tmp_path / 'other'}"]) == 2
    assert "lacks keys ['images/front', 'proprio']" in capsys.readouterr().err
    assert cli.main(["pretrain", "--out", str(tmp_path / "l"), *CONFIG]) == 2
    assert "learner.offline_store" in capsys.readouterr().err
    assert not (tmp_path / "l" / "checkpoints").exists()
