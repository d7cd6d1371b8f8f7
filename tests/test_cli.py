import json
import subprocess
import sys

TINY = ["demos.bc_steps=20", "parl.schedule.offline_steps=5", "online.episodes=4", "online.eval_every=2",
        "online.eval_episodes=10", "online.checkpoint_every=2", "online.num_envs=2"]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "robot_parl.cli", *args], capture_output=True, text=True, timeout=600)


def test_help_does_not_import_torch():
    code = "import sys; from robot_parl import cli; cli.build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "demo" in _run("--help").stdout


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "run"
    res = _run("demo", "--out", str(out), *TINY)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "point_reach"
    assert [p["online_episodes"] for p in summary["curve"]] == [0, 2, 4]
    assert 0.0 <= summary["success_after"]["agent"] <= 1.0
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "config.yaml").is_file()
    assert (out / "checkpoints" / "latest").read_text() == "episode_000004"
    res = _run("demo", "--out", str(out), "--resume", *TINY[:-3], "online.episodes=6", "online.eval_every=2",
               "online.checkpoint_every=2")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [p["online_episodes"] for p in summary["curve"]] == [0, 2, 4, 6]
    # a fresh run into it would make the old run's episodes its data: refused, nothing touched
    before = (out / "config.yaml").read_text()
    res = _run("demo", "--out", str(out), *TINY)
    assert res.returncode == 2 and "already holds a run" in res.stderr and "--resume" in res.stderr
    assert (out / "config.yaml").read_text() == before


def test_make_demo_config_runs_pick_with_a_diffusion_policy(tmp_path):
    # `make demo`'s part 1 on a tiny budget: its config file loads and runs the MuJoCo pick task end to end
    out = tmp_path / "pick"
    res = _run("demo", "--out", str(out), "--config", "configs/demo-pick.yaml", *TINY, "tabletop.horizon=20")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["task"], summary["policy"], summary["method"]) == ("pick", "diffusion", "parl")
    assert [p["online_episodes"] for p in summary["curve"]] == [0, 2, 4]
    assert summary["curve"][-1]["critic_updates"] == 5 + 4 * summary["curve"][-1]["env_steps"]
    assert "success before: policy" in res.stdout and "success after:" in res.stdout
    # four episodes cannot fill the trust test's window: the agent's figures are the policy's, and say so
    assert res.stdout.count("critic on probation, policy's sample") == 2 and "policy + critic" not in res.stdout
    # without a terminal (no live bars) each phase says where it is as it starts, every 30 s, and when done
    for line in ("bc: 1/", "offline critic: 5/5", "online: 4/4"):
        assert line in res.stdout, res.stdout[-2000:]


def test_bad_config_fails_before_running(tmp_path):
    res = _run("demo", "--out", str(tmp_path / "x"), "parl.top_k=0")
    assert res.returncode == 2
    assert "parl.top_k" in res.stderr and "num_samples" in res.stderr
    assert not (tmp_path / "x").exists()


def test_data_inspect_and_stats(tmp_path):
    import numpy as np

    from robot_parl.data.episode_store import EpisodeStore, KeySpec, Outcome

    store = EpisodeStore.create(tmp_path / "s", {"timestamp": KeySpec("float64", ()),
                                                 "action": KeySpec("float32", (3,))})
    with store.writer("test") as w:
        for e in range(2):
            w.begin("teleop", instruction="stack the cups")
            for j in range(4):
                w.add({"timestamp": float(j), "action": np.array([j, -j, e], np.float32)})
            # the second: the classifier called it a failure, the operator a success
            w.end(success=e == 1, outcome=Outcome("operator", 7, 0) if e else Outcome("classifier", 7, 0))
    res = _run("data", "inspect", str(tmp_path / "s"))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())  # rich wraps lines to the pipe's width
    assert "2 episodes, 8 frames" in text and "stack the cups" in text and "success 50.0%" in text
    assert "outcomes given by {'classifier': 1, 'operator': 1}" in text
    assert "1 outcomes differ from the success classifier's own call" in text
    res = _run("data", "stats", str(tmp_path / "s"), "--keys", "action", "--not-normalized", "action:2")
    assert res.returncode == 0, res.stderr
    stats = EpisodeStore(tmp_path / "s").norm_stats()["action"]
    assert stats["max"] == [3.0, 0.0, 1.0] and stats["mask"] == [True, True, False]
    res = _run("data", "stats", str(tmp_path / "s"), "--keys", "images")
    assert res.returncode == 2 and "'images' is unknown" in res.stderr
    res = _run("data", "inspect", str(tmp_path / "nothing"))
    assert res.returncode == 2 and "is not an episode store" in res.stderr


def test_data_export_video(tmp_path):
    import numpy as np

    from robot_parl.data.episode_store import EpisodeStore, KeySpec
    from robot_parl.data.video import read_mp4

    store = EpisodeStore.create(tmp_path / "s", {"timestamp": KeySpec("float64", ()),
                                                 "images/front": KeySpec("uint8", (16, 16, 3))})
    with store.writer("test") as w:
        for e in range(2):
            w.begin("teleop")
            for j in range(3 + e):
                w.add({"timestamp": j * 0.2, "images/front": np.full((16, 16, 3), 40 * j, np.uint8)})
            w.end(success=True)
    res = _run("data", "export-video", str(tmp_path / "s"), "--out", str(tmp_path / "videos"))
    assert res.returncode == 0, res.stderr
    assert "5.0 fps" in res.stdout
    assert read_mp4(tmp_path / "videos" / "episode_000001_front.mp4").shape == (4, 16, 16, 3)
    res = _run("data", "export-video", str(tmp_path / "s"), "--out", str(tmp_path / "v"), "--camera", "wrist")
    assert res.returncode != 0 and "no camera ['images/wrist']" in res.stderr
