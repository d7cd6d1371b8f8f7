"""The no-dip benchmark: a tiny run on the third-party-style line task end to end, and its summary's arithmetic."""

import json
import subprocess
import sys

import pytest

from benchmarks.learning_grid import base_estimate
from benchmarks.no_dip import summarize


def _run(task, seed, base, agent, policy):
    curve = [{"online_episodes": 25 * i, "agent_success": a, "policy_success": p}
             for i, (a, p) in enumerate(zip(agent, policy))]
    return {"task": task, "policy": "diffusion", "seed": seed, "base": base, "curve": curve, "minutes": 1.0}


def test_the_summary_finds_the_lowest_mean_point_against_the_base():
    runs = [_run("pick", 0, 0.5, [0.5, 0.40, 0.9], [0.5, 0.60, 0.9]),
            _run("pick", 1, 0.4, [0.4, 0.50, 0.8], [0.4, 0.38, 0.8])]
    s = summarize(runs)["pick/diffusion"]
    # mean base 0.45; agent means 0.45, 0.45, 0.85; the policy alone after the first online episodes 0.49, 0.85
    assert s["agent"] == pytest.approx([0.45, 0.45, 0.85]) and s["lowest_vs_base"] == pytest.approx(0.0)
    assert s["goal_no_dip"] and s["final_gain"] == pytest.approx(0.4)
    runs.append(_run("pick", 2, 0.45, [0.45, 0.1, 0.9], [0.45, 0.45, 0.9]))
    s = summarize(runs)["pick/diffusion"]
    assert s["lowest_vs_base"] == pytest.approx(0.3333 - 0.45, abs=1e-3) and not s["goal_no_dip"]


def test_the_base_is_every_evaluation_of_the_bc_policy_on_the_curves_layouts():
    # after BC 0.64; at episode 0 the policy alone 0.46 and the untrusted agent (the policy's first sample) 0.70
    first = {"online_episodes": 0, "agent_success": 0.70, "policy_success": 0.46, "critic_trusted": False}
    assert base_estimate([first], 0.64) == pytest.approx(0.60)
    assert base_estimate([{**first, "critic_trusted": True}], 0.64) == pytest.approx(0.55)  # the critic acted: not it


def test_a_tiny_run_on_the_line_task(tmp_path):
    out = tmp_path / "no_dip.json"
    tiny = ["online.episodes=2", "online.eval_every=2", "online.eval_episodes=4", "online.num_envs=2",
            "demos.episodes=4", "demos.bc_steps=5", "parl.schedule.offline_steps=2", "gym.horizon=20"]
    res = subprocess.run([sys.executable, "-m", "benchmarks.no_dip", "--json", str(out), "--tasks", "line",
                          "--policies", "diffusion", "--seeds", "0", "--", *tiny], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert [p["online_episodes"] for p in run["curve"]] == [0, 2]
    assert {"critic_trusted", "trust_z", "critic_gain", "critic_gain_spread"} <= set(run["curve"][-1])
    assert set(result["summary"]) == {"line/diffusion"} and out.with_suffix(".png").is_file()
