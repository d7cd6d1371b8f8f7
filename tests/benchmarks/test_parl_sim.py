"""The pick learning benchmark's plumbing on a tiny budget: every method runs from the shared pretraining,
the self-imitation baseline trains only on successes, and the summary states the goal honestly."""

import json

import pytest
import torch

from benchmarks.parl_sim import METHODS, run_seed, summarize
from robot_parl import typed_config
from robot_parl.runtime.compare import filtered_bc
from robot_parl.runtime.local_run import LocalRun, LocalRunConfig

TINY = ["env=pick", "demos.episodes=4", "demos.bc_steps=20", "parl.schedule.offline_steps=2", "online.episodes=4",
        "online.eval_every=2", "online.eval_episodes=2", "online.num_envs=2", "tabletop.horizon=20"]


def test_run_seed_reports_every_method_on_the_final_layouts(tmp_path):
    cfg = typed_config.load(LocalRunConfig, overrides=TINY)
    result = run_seed(cfg, tmp_path, final_episodes=3)
    assert set(METHODS) | {"parl_policy_alone", "episodes"} == set(result["final_eval"])
    assert all(0.0 <= result["final_eval"][m] <= 1.0 for m in METHODS)
    for method in ("parl", "rerank", "filtered_bc"):
        assert [p["online_episodes"] for p in result[method]] == [0, 2, 4]


def test_filtered_bc_trains_on_demos_and_its_own_successes(tmp_path):
    cfg = typed_config.load(LocalRunConfig, overrides=TINY)
    session = LocalRun(cfg, tmp_path / "pre", log=lambda _: None)
    session.pretrain()
    session.agent.save(tmp_path / "pretrained")
    before = {k: v.clone() for k, v in session.policy.state_dict().items()}
    out = filtered_bc(cfg, tmp_path / "pretrained", tmp_path / "fbc", final_episodes=2, log=lambda _: None)
    curve = out["curve"]
    assert [p["online_episodes"] for p in curve] == [0, 2, 4]
    assert curve[1]["successful_episodes"] <= 2 and curve[2]["successful_episodes"] <= 4
    assert curve[2]["successful_episodes"] >= curve[1]["successful_episodes"]
    # the saved pretrained policy is untouched; the baseline trained a copy
    fresh = LocalRun(cfg, tmp_path / "check", log=lambda _: None)
    fresh.agent.load(tmp_path / "pretrained")
    assert all(torch.equal(before[k], v) for k, v in fresh.policy.state_dict().items())


def _run(kind, seed, base, rerank, parl, fbc):
    def curve(final):  # halfway there after 50 episodes; the policy alone dips 0.1 below the base at 50
        return [{"online_episodes": n, "agent_success": base + (final - base) * f, "policy_success": base + p}
                for n, f, p in ((0, 0.0, 0.0), (50, 0.5, -0.1), (100, 1.0, 0.0))]

    return {"policy": kind, "seed": seed, "parl_seconds": 60.0, "pretrain_seconds": 30.0,
            "pretrain": {"bc_success": base},
            "parl": curve(parl), "rerank": curve(rerank), "filtered_bc": curve(fbc),
            "final_eval": {"base": base, "rerank": rerank, "parl": parl, "filtered_bc": fbc,
                           "parl_policy_alone": parl}}


def test_summary_means_gains_and_goal():
    runs = [_run("diffusion", 0, 0.3, 0.4, 0.8, 0.5), _run("diffusion", 1, 0.3, 0.4, 0.9, 0.5),
            _run("autoregressive", 0, 0.2, 0.5, 0.6, 0.3)]
    s = summarize(runs)
    d = s["diffusion"]
    assert abs(d["parl"] - 0.85) < 1e-9 and abs(d["parl_gain"] - 0.55) < 1e-9 and abs(d["rerank_gain"] - 0.1) < 1e-9
    assert d["goal_parl_at_least_80"] and d["goal_twice_rerank_gain"] and d["minutes_per_run"] == 1.5
    # 80% of PA-RL's final success: 0.64 (seed 0; its curve 0.3, 0.55, 0.8) and 0.72 (seed 1; 0.3, 0.6, 0.9)
    assert d["no_dip"]["lowest_vs_base"] == pytest.approx(-0.1) and not d["no_dip"]["goal_no_dip"]
    assert d["no_dip"]["agent"] == pytest.approx([0.3, 0.575, 0.85])
    assert d["episodes_to_80pct_of_parl"] == {"parl": [100, 100], "rerank": [None, None], "filtered_bc": [None, None]}
    a = s["autoregressive"]
    assert not a["goal_parl_at_least_80"] and not a["goal_twice_rerank_gain"]  # gain 0.4 < 2 x 0.3
    # 80% of 0.6 is 0.48: PA-RL (0.2, 0.4, 0.6) at 100 episodes, re-ranking (0.2, 0.35, 0.5) at 100, filtered BC never
    assert a["episodes_to_80pct_of_parl"] == {"parl": [100], "rerank": [100], "filtered_bc": [None]}
    # no gain at all never counts as "twice re-ranking's gain"
    assert not summarize([_run("diffusion", 0, 0.3, 0.3, 0.3, 0.3)])["diffusion"]["goal_twice_rerank_gain"]


def test_a_summary_without_filtered_bc_from_pixels_runs():
    runs = [_run("diffusion", 0, 0.4, 0.5, 0.7, 0.0)]
    for r in runs:  # the pixel runs have no filtered BC
        del r["filtered_bc"], r["final_eval"]["filtered_bc"]
    d = summarize(runs)["diffusion"]
    assert "filtered_bc" not in d and "filtered_bc_gain" not in d
    assert d["episodes_to_80pct_of_parl"] == {"parl": [100], "rerank": [None]}
    assert d["goal_parl_gain_at_least_20_points"] and abs(d["parl_gain"] - 0.3) < 1e-9


def test_the_grid_saves_after_every_run_and_resumes_with_the_same_settings(tmp_path):
    from benchmarks import learning_grid

    path, overrides = str(tmp_path / "grid.json"), ["env=pick", "online.episodes=4"]
    ran, saved = [], []

    class SessionEnded(Exception):
        pass

    def run(cfg, out_dir):
        if (cfg.policy.kind, cfg.seed) == ("autoregressive", 1):
            raise SessionEnded  # the session ends mid-grid
        ran.append((cfg.policy.kind, cfg.seed))
        return {"policy": cfg.policy.kind, "seed": cfg.seed, "final": cfg.online.episodes}

    def save(runs, cfg):
        saved.append(len(runs))
        (tmp_path / "grid.json").write_text(json.dumps({"overrides": overrides, "runs": runs}))

    with pytest.raises(SessionEnded):
        learning_grid.run_grid(["diffusion", "autoregressive"], [0, 1], overrides, run, save,
                               learning_grid.previous_runs(path, overrides=overrides))
    assert ran == [("diffusion", 0), ("diffusion", 1), ("autoregressive", 0)] and saved == [1, 2, 3]
    # the next session runs only what is missing, and the file ends with every run once
    ran.clear()
    runs = learning_grid.run_grid(["diffusion"], [0, 1, 2], overrides, run, save,
                                  learning_grid.previous_runs(path, overrides=overrides))
    assert ran == [("diffusion", 2)] and len(runs) == 4
    assert {(r["policy"], r["seed"]) for r in json.loads((tmp_path / "grid.json").read_text())["runs"]} == \
        {("diffusion", 0), ("diffusion", 1), ("autoregressive", 0), ("diffusion", 2)}
    # other settings: nothing is kept
    assert learning_grid.previous_runs(path, overrides=["env=push"]) == []


def test_runs_of_parallel_processes_are_merged_once_each_and_other_settings_are_refused(tmp_path):
    from benchmarks import learning_grid

    overrides = ["env=pick", "online.episodes=4"]

    def results(name, runs, settings=overrides):
        path = tmp_path / name
        path.write_text(json.dumps({"overrides": settings, "runs": [{"policy": k, "seed": s} for k, s in runs]}))
        return str(path)

    main = results("main.json", [("diffusion", 0)])
    other = results("other.json", [("autoregressive", 0), ("diffusion", 0)])
    args = learning_grid.parser("").parse_args(["--json", main, "--merge", other])
    kept = learning_grid.kept_runs(args, overrides=overrides)
    assert [(r["policy"], r["seed"]) for r in kept] == [("diffusion", 0), ("autoregressive", 0)]
    # merged runs are written even when nothing is left to run
    written = []
    learning_grid.run_grid(["diffusion", "autoregressive"], [0], overrides, None,
                           lambda runs, cfg: written.append(runs), kept)
    assert written == [kept]
    fresh = learning_grid.parser("").parse_args(["--json", main, "--fresh", "--merge", other])
    assert [(r["policy"], r["seed"]) for r in learning_grid.kept_runs(fresh, overrides=overrides)] == \
        [("autoregressive", 0), ("diffusion", 0)]
    stale = results("stale.json", [("diffusion", 1)], settings=["env=push"])
    with pytest.raises(SystemExit, match="stale.json was made with other settings"):
        learning_grid.kept_runs(learning_grid.parser("").parse_args(["--json", main, "--merge", stale]),
                                overrides=overrides)
    with pytest.raises(SystemExit, match="no such results file"):
        learning_grid.kept_runs(learning_grid.parser("").parse_args(["--json", main, "--merge", str(tmp_path / "x")]),
                                overrides=overrides)
