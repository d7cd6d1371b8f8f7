"""`robot-parl eval` on a simulated robot process: interleaved modes, Wilson intervals, videos, a report,
resuming after an interruption; bad checkpoints and mismatched action spaces refused before any rollout."""

import json
import subprocess
import sys

import pytest
import torch

from robot_parl import cli, typed_config
from robot_parl.data.video import read_mp4
from robot_parl.eval.stats import wilson_interval
from robot_parl.models.vla.checkpoint import write_random_checkpoint
from robot_parl.runtime.config import FinetuneConfig, build_agent
from robot_parl.runtime.evaluate import Evaluation
from robot_parl.runtime.resume import LearnerState, save_checkpoint
from robot_parl.runtime.supervisor import ENTRY
from robot_parl.transport.session import free_loopback_endpoint

CAMERA = "cameras=[{name: front, width: 32, height: 32}]"


def _overrides(endpoint=""):
    return [f"robot_overrides=['{CAMERA}']", "policy.kind=gaussian", "policy.gaussian.hidden_dims=[16]",
            "parl.num_samples=4", "parl.top_k=2", "actor.horizon=5", "link.session=eval", "sim=''",
            f"link.robot_endpoint={endpoint or 'tcp/127.0.0.1:1'}"]


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="within"):
        wilson_interval(3, 2)


def test_eval_two_policies_on_a_sim_robot_and_resume(tmp_path, capsys):
    endpoint = free_loopback_endpoint()
    cfg = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", _overrides(endpoint))
    tuned, _ = build_agent(cfg, cfg.spec())
    for p in tuned.policy.parameters():  # a "fine-tuned" policy: other weights, same architecture
        torch.nn.init.normal_(p, std=0.5)
    checkpoint = save_checkpoint(tmp_path / "learner", "tuned", tuned, LearnerState())
    robot = subprocess.Popen([sys.executable, "-c", ENTRY, "robot", "--sim", "pick", "--sync", "--listen", endpoint,
                              "--session", "eval", "--robot", "robot0", CAMERA],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    args = ["eval", "--config", "configs/finetune-tiny-vla.yaml", "--out", str(tmp_path / "eval"),
            "--policy", "base=", "--policy", f"tuned={checkpoint}", "--critic", str(checkpoint),
            "--episodes", "2", *_overrides(endpoint)]
    try:
        assert "robot side" in robot.stdout.readline()
        assert cli.main(args) == 0
        lines = (tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()
        # interrupted before the last episode: the next run does only that one
        (tmp_path / "eval" / "episodes.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
        capsys.readouterr()
        assert cli.main(args) == 0
        assert "resuming: 7 of 8 episodes" in capsys.readouterr().out
    finally:
        robot.terminate()
        robot.wait(timeout=20)
    records = [json.loads(line) for line in (tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()
               if line.startswith("{") and line.endswith("}")]
    assert len(records) == 8
    modes = ["base", "base+critic", "tuned", "tuned+critic"]
    assert [r["mode"] for r in records[:4]] == modes and [r["mode"] for r in records[4:7]] == modes[1:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["modes"]
    for mode in modes:
        r = results[mode]
        assert r["episodes"] == 2 and r["wilson95"] == pytest.approx(list(wilson_interval(r["successes"], 2)))
    video = read_mp4(tmp_path / "eval" / records[0]["videos"]["front"])
    assert video.shape == (records[0]["length"] + 1, 32, 32, 3) and video.std() > 0
    report = (tmp_path / "eval" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 2 + 4 and "tuned+critic" in report


def test_bad_checkpoints_and_action_spaces_are_refused_before_any_rollout(tmp_path):
    cfg = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", _overrides())
    with pytest.raises(FileNotFoundError, match="policy 'tuned'.*missing"):
        Evaluation(cfg, tmp_path / "e", {"tuned": str(tmp_path / "nowhere")}, str(tmp_path / "nowhere"), None, 1)
    other = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml",
                              _overrides() + ["policy.gaussian.hidden_dims=[8, 8]"])
    checkpoint = save_checkpoint(tmp_path / "learner", "other", build_agent(other, other.spec())[0], LearnerState())
    with pytest.raises(ValueError, match="do not fit"):
        Evaluation(cfg, tmp_path / "e", {"tuned": str(checkpoint)}, str(checkpoint), None, 1)
    vla = typed_config.load(FinetuneConfig, "configs/finetune-tiny-vla.yaml", [
        f"policy.vla.checkpoint={write_random_checkpoint(tmp_path / 'vla')}",
        "robot_overrides=['" + CAMERA + "', 'action={names: [x, y, z, g], units: [m, m, m, \"1\"], "
        "low: [-0.03, -0.03, -0.03, 0], high: [0.03, 0.03, 0.03, 1], max_change: [0.06, 0.06, 0.06, 1]}']"])
    with pytest.raises(ValueError, match="acts in 7"):
        Evaluation(vla, tmp_path / "e", {"base": ""}, str(checkpoint), None, 1)
    assert not (tmp_path / "e").exists()
